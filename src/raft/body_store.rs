//! A disk node's message bodies, out of memory: a sled tree keyed by message id.
//!
//! The state machine moves each stored message's body here after the command that stored
//! it, and the broker state keeps a reference (key and length) in its place, so a disk
//! node's memory does not grow with its backlog. sled is not a durability barrier (its
//! `flush` is not an fsync of the device): the snapshot file and the fsync'd Raft log are.
//! So this tree is a cache of what those two hold: at open it is cleared and refilled from
//! the snapshot file, and log replay re-applies the rest (docs/durability.md).
//!
//! Message ids are never reused, so a key is written once and later only removed.

use std::io;
use std::path::Path;

use bytes::Bytes;

/// sled's page cache: what this store may hold in memory. Small on purpose: bodies are read
/// once (at delivery), and the point of the store is to keep them out of memory.
const CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// How often, and how far apart, opening retries while the store is locked.
const OPEN_ATTEMPTS_MAX: u32 = 100;
const OPEN_RETRY_MS: u64 = 50;

fn is_locked(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock || e.to_string().contains("lock")
}

/// The body tree of one state machine.
#[derive(Clone, Debug)]
pub struct BodyStore {
    db: sled::Db,
}

fn key(msg_id: u64) -> [u8; 8] {
    msg_id.to_be_bytes()
}

impl BodyStore {
    /// Opens (or creates) the store in `dir` and empties it: its content is rebuilt from the
    /// snapshot file and the log.
    pub fn open_empty(dir: &Path) -> io::Result<BodyStore> {
        // Removing the files is much faster than clearing a big tree key by key.
        match std::fs::remove_dir_all(dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let config = sled::Config::new()
            .path(dir)
            .cache_capacity(CACHE_BYTES)
            .mode(sled::Mode::HighThroughput);
        // sled locks its directory; a state machine of this process that was just shut
        // down (a restart in place) may take a moment to drop its handle.
        let mut attempts_left = OPEN_ATTEMPTS_MAX;
        let db = loop {
            match config.open() {
                Ok(db) => break db,
                Err(sled::Error::Io(e)) if attempts_left > 1 && is_locked(&e) => {
                    attempts_left -= 1;
                    std::thread::sleep(std::time::Duration::from_millis(OPEN_RETRY_MS));
                }
                Err(e) => return Err(e.into()),
            }
        };
        Ok(BodyStore { db })
    }

    /// Removes every body (before a snapshot's bodies replace them).
    pub fn clear(&self) -> io::Result<()> {
        Ok(self.db.clear()?)
    }

    pub fn insert(&self, msg_id: u64, body: &[u8]) -> io::Result<()> {
        self.db.insert(key(msg_id), body)?;
        Ok(())
    }

    /// The body stored under `msg_id`, shared with sled's buffer (no copy).
    pub fn get(&self, msg_id: u64) -> io::Result<Option<Bytes>> {
        Ok(self.db.get(key(msg_id))?.map(Bytes::from_owner))
    }

    pub fn remove(&self, msg_id: u64) -> io::Result<()> {
        self.db.remove(key(msg_id))?;
        Ok(())
    }

    /// How many bodies the store holds (tests; a full scan).
    pub fn len(&self) -> usize {
        self.db.len()
    }

    pub fn is_empty(&self) -> bool {
        self.db.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_round_trip_and_open_starts_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BodyStore::open_empty(dir.path()).expect("open");
        store.insert(7, b"seven").expect("insert");
        store.insert(8, &[1u8; 100_000]).expect("insert");
        assert_eq!(store.get(7).expect("get").as_deref(), Some(&b"seven"[..]));
        assert_eq!(store.get(8).expect("get").map(|b| b.len()), Some(100_000));
        store.remove(7).expect("remove");
        assert_eq!(store.get(7).expect("get"), None);
        assert_eq!(store.len(), 1);
        drop(store);
        let store = BodyStore::open_empty(dir.path()).expect("reopen");
        assert!(
            store.is_empty(),
            "a reopened store is rebuilt from the snapshot"
        );
    }
}
