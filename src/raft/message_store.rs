//! A disk node's stored messages, out of memory: a sled tree keyed by message id (big-endian,
//! so keys iterate in id order), each value one whole message: its record (everything but
//! the body, `message_record.rs`) and its body.
//!
//! The state machine moves each message here after the entry that stored it, and the broker
//! state keeps nothing of it in memory but, for a message several queues hold, its holder
//! count (`broker/messages.rs`). sled is not a durability barrier (its `flush` is not an
//! fsync of the device): the snapshot file and the fsync'd Raft log are. So this tree is a
//! cache of what those two hold: at open it is emptied and refilled from the snapshot file,
//! and log replay re-applies the rest (docs/durability.md 5a).
//!
//! Message ids are never reused, so a key is written once and later only removed; the
//! holder count in a record is the one it had when written and is not read back.

use std::io;
use std::path::Path;

use bytes::Bytes;

use super::message_record;
use crate::broker::messages::{ColdIter, ColdStore};
use crate::broker::state::StoredMessage;
use crate::limits::{MESSAGE_STORE_OPEN_ATTEMPTS_MAX, MESSAGE_STORE_OPEN_RETRY_MS};

/// sled's page cache: what this store may hold in memory. Small on purpose: a message is
/// read once or twice (dead-lettering, delivery), and the point of the store is to keep the
/// backlog out of memory.
const CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// A value: `[record_len u32 LE][record][body]`.
const RECORD_LEN_BYTES: usize = 4;

fn is_locked(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock || e.to_string().contains("lock")
}

/// The message tree of one state machine.
#[derive(Clone, Debug)]
pub struct MessageStore {
    db: sled::Db,
}

fn key(msg_id: u64) -> [u8; 8] {
    msg_id.to_be_bytes()
}

fn bad(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// The message a stored value holds; its body shares sled's buffer (no copy).
fn decode(msg_id: u64, value: sled::IVec) -> io::Result<StoredMessage> {
    let head = value.get(..RECORD_LEN_BYTES);
    let head = head.ok_or_else(|| bad(format!("message {msg_id}: value cut short")))?;
    let mut len = [0u8; RECORD_LEN_BYTES];
    len.copy_from_slice(head);
    let record_end = RECORD_LEN_BYTES + u32::from_le_bytes(len) as usize;
    if record_end > value.len() {
        return Err(bad(format!(
            "message {msg_id}: record longer than its value"
        )));
    }
    let value = Bytes::from_owner(value);
    let body = value.slice(record_end..);
    message_record::decode(&value[RECORD_LEN_BYTES..record_end], body)
}

fn id_of(key: &[u8]) -> io::Result<u64> {
    let key: [u8; 8] = key
        .try_into()
        .map_err(|_| bad("message store: a key is not a message id".into()))?;
    Ok(u64::from_be_bytes(key))
}

impl MessageStore {
    /// Opens (or creates) the store in `dir` and empties it: its content is rebuilt from the
    /// snapshot file and the log.
    pub fn open_empty(dir: &Path) -> io::Result<MessageStore> {
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
        let mut attempts_left = MESSAGE_STORE_OPEN_ATTEMPTS_MAX;
        let db = loop {
            match config.open() {
                Ok(db) => break db,
                Err(sled::Error::Io(e)) if attempts_left > 1 && is_locked(&e) => {
                    attempts_left -= 1;
                    std::thread::sleep(std::time::Duration::from_millis(
                        MESSAGE_STORE_OPEN_RETRY_MS,
                    ));
                }
                Err(e) => return Err(e.into()),
            }
        };
        Ok(MessageStore { db })
    }

    /// Removes every message (before a snapshot's messages replace them).
    pub fn clear(&self) -> io::Result<()> {
        Ok(self.db.clear()?)
    }

    /// Stores `message` under `msg_id`.
    pub fn insert(&self, msg_id: u64, message: &StoredMessage) -> io::Result<()> {
        let record = message_record::encode(message)?;
        self.insert_record(msg_id, &record, &message.content.body)
    }

    /// Stores an encoded record and its body under `msg_id` (a snapshot's message).
    pub fn insert_record(&self, msg_id: u64, record: &[u8], body: &[u8]) -> io::Result<()> {
        let record_len = u32::try_from(record.len())
            .map_err(|_| bad(format!("message {msg_id}: record over 4 GiB")))?;
        let mut value = Vec::with_capacity(RECORD_LEN_BYTES + record.len() + body.len());
        value.extend_from_slice(&record_len.to_le_bytes());
        value.extend_from_slice(record);
        value.extend_from_slice(body);
        self.db.insert(key(msg_id), value)?;
        Ok(())
    }

    pub fn remove(&self, msg_id: u64) -> io::Result<()> {
        self.db.remove(key(msg_id))?;
        Ok(())
    }

    /// How many messages the store holds (tests; a full scan).
    pub fn len(&self) -> usize {
        self.db.len()
    }

    pub fn is_empty(&self) -> bool {
        self.db.is_empty()
    }
}

impl ColdStore for MessageStore {
    fn get(&self, msg_id: u64) -> io::Result<Option<StoredMessage>> {
        match self.db.get(key(msg_id))? {
            Some(value) => decode(msg_id, value).map(Some),
            None => Ok(None),
        }
    }

    fn range(&self, from: u64, below: u64) -> ColdIter<'_> {
        if from >= below {
            return Box::new(std::iter::empty());
        }
        let entries = self.db.range(key(from)..key(below));
        Box::new(entries.map(|entry| {
            let (k, value) = entry?;
            let msg_id = id_of(&k)?;
            Ok((msg_id, decode(msg_id, value)?))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::command::Content;

    fn message(body: &'static [u8], n_holders: u32) -> StoredMessage {
        StoredMessage {
            content: Content {
                properties: Bytes::from_static(b"\x00\x00"),
                body: Bytes::from_static(body),
            },
            exchange: "amq.direct".into(),
            routing_key: "k".into(),
            n_holders,
            headers: Vec::new(),
            deaths: Vec::new(),
            first_death: None,
        }
    }

    #[test]
    fn messages_round_trip_in_id_order_and_open_starts_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = MessageStore::open_empty(dir.path()).expect("open");
        let big = message(&[1u8; 100_000], 2);
        store
            .insert(300, &message(b"three hundred", 1))
            .expect("insert");
        store.insert(7, &message(b"seven", 1)).expect("insert");
        store.insert(8, &big).expect("insert");
        store.insert(9, &message(b"", 1)).expect("insert");
        let got = store.get(8).expect("get").expect("stored");
        assert_eq!(got, big);
        store.remove(7).expect("remove");
        assert_eq!(store.get(7).expect("get"), None);
        let ids: Vec<u64> = store.range(0, 300).map(|r| r.expect("read").0).collect();
        assert_eq!(ids, vec![8, 9], "id order, 300 excluded");
        assert_eq!(store.range(9, 9).count(), 0);
        assert_eq!(store.len(), 3);
        drop(store);
        let store = MessageStore::open_empty(dir.path()).expect("reopen");
        assert!(
            store.is_empty(),
            "a reopened store is rebuilt from the snapshot"
        );
    }

    #[test]
    fn a_damaged_value_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = MessageStore::open_empty(dir.path()).expect("open");
        store.db.insert(key(1), &[9u8, 0][..]).expect("insert");
        store
            .db
            .insert(key(2), &[200u8, 0, 0, 0, 1][..])
            .expect("insert");
        store
            .db
            .insert(key(3), &[1u8, 0, 0, 0, 0xff][..])
            .expect("insert");
        for msg_id in 1..=3 {
            assert!(store.get(msg_id).is_err(), "value of {msg_id} accepted");
        }
    }
}
