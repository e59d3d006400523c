//! The envelope of an entry's payload: what lets a node tell an entry it cannot read from
//! one it can, and stop rather than skip it.
//!
//! ```text
//! [entry format u8 = 1][machine version u16 LE][postcard(Batch)]
//! ```
//! The format byte says how the rest is laid out; the machine version says which commands
//! the batch may hold. The cluster runs one machine version at a time, moved forward by a
//! log entry ([`crate::broker::command::Command::SetMachineVersion`]) once every member
//! supports the new one (rabbit_fifo's machine versions): the proposer encodes at the
//! cluster's version, so during a rolling upgrade no entry reaches a member that cannot
//! read it. A node that meets one anyway (a binary rolled back, a member skipped) stops with
//! the entry's version and its own in the log: a skipped entry would leave its state
//! different from its peers' with no error.

use super::state_machine::Batch;
use super::types::Request;
use crate::broker::command::Command;

/// The layout of an entry's payload this build writes and reads.
pub const ENTRY_FORMAT: u8 = 1;
/// The newest state-machine version this build applies (and every older one).
/// 2: vhosts, users and permissions (`Command::InVhost` and the commands after it).
/// 3: RabbitMQ 3.10's requeue order and unbind-ok (`Command::COMPAT_MACHINE_VERSION`): no
/// new command, the same commands applied by newer rules.
/// 4: issue 16's queue features (`Command::QUEUE_FEATURES_MACHINE_VERSION`): consumer
/// priorities (`Command::ConsumeWithPriority`).
pub const MACHINE_VERSION: u16 = 4;
/// The machine version a new cluster starts at.
pub const MACHINE_VERSION_FIRST: u16 = 1;
const _: () = assert!(MACHINE_VERSION_FIRST <= MACHINE_VERSION);
const _: () = assert!(MACHINE_VERSION == Command::NEWEST_MACHINE_VERSION);
const HEADER_LEN: usize = 3;

/// Why an entry cannot be applied here.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum UndecodableEntry {
    #[error("the entry is shorter than its {HEADER_LEN}-byte envelope")]
    Truncated,
    #[error("entry format {found}, this build reads format {ENTRY_FORMAT}")]
    Format { found: u8 },
    #[error("entry of machine version {found}, this build applies up to {MACHINE_VERSION}")]
    MachineVersion { found: u16 },
    #[error("entry of machine version {version} does not decode ({error})")]
    Payload { version: u16, error: String },
}

/// The payload for `batch`, encoded at `machine_version`.
pub fn encode(batch: &Batch, machine_version: u16) -> Request {
    debug_assert!(machine_version <= MACHINE_VERSION);
    let mut out = Vec::with_capacity(HEADER_LEN + 64);
    out.push(ENTRY_FORMAT);
    out.extend_from_slice(&machine_version.to_le_bytes());
    // A Vec writer cannot fail; an Err here would be a serde bug, and an empty payload
    // would then stop every node at apply instead of being skipped.
    match postcard::to_extend(batch, out) {
        Ok(out) => Request(out),
        Err(_) => Request(Vec::new()),
    }
}

/// The batch an entry holds and the machine version it was encoded at.
pub fn decode(request: &Request) -> Result<(u16, Batch), UndecodableEntry> {
    let bytes = &request.0;
    let (Some(&format), Some(version)) = (bytes.first(), bytes.get(1..HEADER_LEN)) else {
        return Err(UndecodableEntry::Truncated);
    };
    if format != ENTRY_FORMAT {
        return Err(UndecodableEntry::Format { found: format });
    }
    let version = u16::from_le_bytes([version[0], version[1]]);
    if version > MACHINE_VERSION {
        return Err(UndecodableEntry::MachineVersion { found: version });
    }
    match postcard::from_bytes(&bytes[HEADER_LEN..]) {
        Ok(batch) => Ok((version, batch)),
        Err(e) => Err(UndecodableEntry::Payload {
            version,
            error: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::command::Command;

    fn batch() -> Batch {
        Batch {
            time_ms: 7,
            commands: vec![Command::Tick],
            origin: None,
        }
    }

    #[test]
    fn a_batch_round_trips_with_its_version() {
        let request = encode(&batch(), MACHINE_VERSION);
        let (version, decoded) = decode(&request).expect("decodes");
        assert_eq!(version, MACHINE_VERSION);
        assert_eq!(decoded.time_ms, 7);
        assert_eq!(decoded.commands.len(), 1);
    }

    #[test]
    fn a_newer_machine_version_is_refused_not_skipped() {
        let mut request = encode(&batch(), MACHINE_VERSION);
        request.0[1..3].copy_from_slice(&(MACHINE_VERSION + 1).to_le_bytes());
        let found = MACHINE_VERSION + 1;
        assert_eq!(
            decode(&request).map(|_| ()),
            Err(UndecodableEntry::MachineVersion { found })
        );
    }

    #[test]
    fn another_format_a_short_entry_and_garbage_are_refused() {
        let mut request = encode(&batch(), MACHINE_VERSION);
        request.0[0] = ENTRY_FORMAT + 1;
        let found = ENTRY_FORMAT + 1;
        assert_eq!(
            decode(&request).map(|_| ()),
            Err(UndecodableEntry::Format { found })
        );
        let short = Request(vec![ENTRY_FORMAT, 1]);
        assert_eq!(decode(&short).map(|_| ()), Err(UndecodableEntry::Truncated));
        let garbage = Request(vec![ENTRY_FORMAT, 1, 0, 0xFF, 0xFF, 0xFF]);
        assert!(matches!(
            decode(&garbage),
            Err(UndecodableEntry::Payload { version: 1, .. })
        ));
    }
}
