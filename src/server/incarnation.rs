//! Incarnations: what makes ids of this start of the node differ from every earlier one's.
//! Connection ids carry the node id and the node's incarnation; the proposer's id carries
//! the start time. Nothing of an earlier life (a connection the cluster still holds, a
//! proposer sequence) is mistaken for this one's.

use crate::raft::node::wall_clock_ms;

/// This start's proposer id base: the node id in the top 8 bits, the start time (ms, 40
/// bits) below, 16 bits left for the sequencer's epochs. No two starts share it, even a RAM
/// node's whose data directory was wiped.
pub(super) fn proposer_base(node_id: u64) -> u64 {
    ((node_id & 0xFF) << 56) | ((wall_clock_ms() & ((1 << 40) - 1)) << 16)
}

/// Connection ids: the node id in the top 8 bits (so every node's ids differ and a node's
/// consumers can be found after it is lost), its incarnation in the next 24 (so no id is
/// reused across restarts), then a counter.
pub(super) fn first_conn_id(node_id: u64, incarnation: u32) -> u64 {
    ((node_id & 0xFF) << 56) | ((u64::from(incarnation) & 0xFF_FFFF) << 32) | 1
}

/// The node that holds connection `conn`.
pub fn conn_node(conn: u64) -> u64 {
    conn >> 56
}

/// Reads, bumps and durably rewrites the node's incarnation number (file `incarnation` in
/// the data directory): each start of the node gets a new one. It never falls below the
/// wall clock in 10 ms units (the 24 bits a connection id keeps: they wrap every 46 hours):
/// a node wiped and repaired from its peers has lost the file, and starting again from 1,
/// its first life's number, would give its new connections the ids of connections the
/// cluster still holds for its earlier life, which then could not be told apart and closed.
/// Those are closed within seconds of the new life seeing them, so the wrap does not
/// matter.
pub(super) fn next_incarnation(dir: &std::path::Path) -> anyhow::Result<u32> {
    use anyhow::Context;
    use std::io::Write;
    std::fs::create_dir_all(dir).context("create data directory")?;
    let path = dir.join("incarnation");
    let last = match std::fs::read_to_string(&path) {
        Ok(text) => text
            .trim()
            .parse::<u32>()
            .with_context(|| format!("{} is not a number", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e).context("read incarnation"),
    };
    let clock = (wall_clock_ms() / 10) & 0xFF_FFFF;
    let next = last
        .checked_add(1)
        .context("incarnation number exhausted")?
        .max(clock as u32);
    let tmp = dir.join("incarnation.tmp");
    let mut file = std::fs::File::create(&tmp).context("write incarnation")?;
    file.write_all(format!("{next}\n").as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(next)
}

#[cfg(test)]
#[path = "incarnation_tests.rs"]
mod tests;
