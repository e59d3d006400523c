//! Where a node's message bodies live while the state machine applies: in the broker state
//! (a RAM node), or moved to the [`BodyStore`] (a disk node), with a reference left behind.
//!
//! The broker model stays pure: it stores a published body inline, as any state does, and
//! copies a message's body reference when it dead-letters it. After every command, this
//! layer moves the bodies of the messages that command stored into the body store and puts a
//! `BodyRef` (key, length) in their place, so between commands every stored message of a
//! disk node has its body in the store under its own id. Bodies of messages the state
//! dropped are deleted after the batch (its deliveries may still read them), and not before
//! a running snapshot build has read them ([`Bodies::hold_deletes`]).
//! Everything that reads a body goes through [`Bodies::body_of`].

use std::collections::HashMap;
use std::io;

use bytes::Bytes;

use super::body_store::BodyStore;
use crate::broker::command::{Outcome, Reply};
use crate::broker::state::{BodyRef, BrokerState, StoredMessage};

/// The bodies of one state machine.
#[derive(Debug, Default)]
pub struct Bodies {
    /// `None` on a RAM node: bodies stay in the state.
    store: Option<BodyStore>,
    /// Bodies moved to the store during the batch being applied, so the batch's deliveries
    /// do not read them back.
    fresh: HashMap<u64, Bytes>,
    /// Ids of dropped messages whose bodies are still in the store.
    doomed: Vec<u64>,
    /// A snapshot build is reading the store: deletions wait for it.
    deletes_held: bool,
}

impl Bodies {
    pub fn new(store: Option<BodyStore>) -> Bodies {
        Bodies {
            store,
            ..Bodies::default()
        }
    }

    pub fn store(&self) -> Option<&BodyStore> {
        self.store.as_ref()
    }

    /// After one command: moves the bodies of the messages it stored (ids from
    /// `first_new_id`) to the store, and fills a basic.get reply's body from it.
    pub fn after_command(
        &mut self,
        broker: &mut BrokerState,
        first_new_id: u64,
        outcome: &mut Outcome,
    ) -> io::Result<()> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        for msg_id in first_new_id..broker.next_msg_id() {
            let Some(message) = broker.message(msg_id) else {
                continue; // not stored: no queue took it, or it was delivered no_ack
            };
            let body = match message.body_at {
                None => message.content.body.clone(),
                Some(at) if at.key == msg_id => continue,
                // A dead-lettered copy refers to its original's body: give it its own, so
                // each body is deleted with its one message.
                Some(at) => self.read(at.key)?,
            };
            store.insert(msg_id, &body)?;
            let at = BodyRef {
                key: msg_id,
                len_bytes: body.len() as u64,
                crc32c: crc32c::crc32c(&body),
            };
            broker.set_body_at(msg_id, at);
            self.fresh.insert(msg_id, body);
        }
        if let Ok(Reply::Got {
            msg_id, content, ..
        }) = &mut outcome.reply
        {
            // The state held the message with its body in the store (between commands
            // every stored message does).
            if content.body.is_empty() {
                if let Some(body) = self.fresh.get(msg_id).cloned() {
                    content.body = body;
                } else if let Some(body) = store.get(*msg_id)? {
                    content.body = body;
                }
            }
        }
        Ok(())
    }

    /// After a batch and its observer: forgets the batch's bodies and deletes those of the
    /// messages the state dropped, unless a snapshot build holds deletions.
    pub fn after_batch(&mut self, broker: &mut BrokerState) -> io::Result<()> {
        self.fresh.clear();
        let removed = broker.take_removed();
        if self.store.is_none() {
            return Ok(());
        }
        self.doomed.extend(removed);
        if self.deletes_held {
            return Ok(());
        }
        self.delete_doomed()
    }

    /// Holds deletions while a snapshot build reads bodies of the state it copied.
    pub fn hold_deletes(&mut self) {
        self.deletes_held = true;
    }

    /// Ends [`Bodies::hold_deletes`]: deletes what waited.
    pub fn release_deletes(&mut self) -> io::Result<()> {
        self.deletes_held = false;
        self.delete_doomed()
    }

    fn delete_doomed(&mut self) -> io::Result<()> {
        let Some(store) = &self.store else {
            self.doomed.clear();
            return Ok(());
        };
        for msg_id in self.doomed.drain(..) {
            store.remove(msg_id)?;
        }
        Ok(())
    }

    /// The body stored under `key`: this batch's, or the store's.
    fn read(&self, key: u64) -> io::Result<Bytes> {
        if let Some(body) = self.fresh.get(&key) {
            return Ok(body.clone());
        }
        let store = self.store.as_ref().ok_or_else(|| missing(key))?;
        store.get(key)?.ok_or_else(|| missing(key))
    }

    /// `message`'s body, wherever it lives.
    pub fn body_of(&self, message: &StoredMessage) -> io::Result<Bytes> {
        match message.body_at {
            None => Ok(message.content.body.clone()),
            Some(at) => self.read(at.key),
        }
    }

    /// `message` with its body in place (for a delivery).
    pub fn with_body(&self, message: &StoredMessage) -> io::Result<StoredMessage> {
        let mut whole = message.clone();
        whole.content.body = self.body_of(message)?;
        whole.body_at = None;
        Ok(whole)
    }
}

fn missing(key: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("body of message {key} missing from the body store"),
    )
}
