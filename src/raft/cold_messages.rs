//! Where a node's stored messages live between entries: in the broker state (a RAM node), or
//! moved to the [`MessageStore`] (a disk node).
//!
//! The broker model stays pure of writes: it stores a published message in memory, as any
//! state does. After every entry and its deliveries, this layer moves the oldest messages in
//! memory, whole, into the store ([`Messages::move_cold`]) until what stays weighs at most
//! the node's budget (`HOT_MESSAGES_BYTES_MAX`), so between entries a disk node holds only
//! its newest messages in memory, and one acked while there never touches the store. The
//! records of messages the state dropped are deleted then too (the entry's deliveries may
//! still have read them), and not before a running snapshot build has read them
//! ([`ColdMessages::hold_deletes`]). The store is a cache either way: the log and the
//! snapshot file are what is durable, and a snapshot build reads the messages in memory as
//! it reads those in the store.
//!
//! [`Messages::move_cold`]: crate::broker::messages::Messages::move_cold

use std::io;
use std::sync::Arc;

use super::message_store::MessageStore;
use crate::broker::messages::Messages;
use crate::broker::state::BrokerState;

/// The cold side of one state machine's messages.
#[derive(Debug, Default)]
pub struct ColdMessages {
    /// `None` on a RAM node: messages stay in the state.
    store: Option<MessageStore>,
    /// A snapshot build is reading the store: deletions wait for it.
    deletes_held: bool,
}

impl ColdMessages {
    pub fn new(store: Option<MessageStore>) -> ColdMessages {
        ColdMessages {
            store,
            deletes_held: false,
        }
    }

    pub fn store(&self) -> Option<&MessageStore> {
        self.store.as_ref()
    }

    /// Points a state with no stored message at this node's store (a disk node starting
    /// without a snapshot).
    pub fn attach(&self, broker: &mut BrokerState) {
        if let Some(store) = &self.store {
            debug_assert!(broker.messages.is_empty());
            broker.messages = Messages::cold(Arc::new(store.clone()), 0, Default::default());
        }
    }

    /// After an entry and its deliveries: moves the oldest messages in memory to the store
    /// until those left weigh at most `keep_bytes`, and deletes those of the messages the
    /// state dropped, unless a snapshot build holds deletions.
    pub fn after_entry(&mut self, broker: &mut BrokerState, keep_bytes: u64) -> io::Result<()> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        broker
            .messages
            .move_cold(keep_bytes, |msg_id, message| store.insert(msg_id, message))?;
        if self.deletes_held {
            return Ok(());
        }
        self.delete_doomed(broker)
    }

    /// Holds deletions while a snapshot build reads messages of the state it copied.
    pub fn hold_deletes(&mut self) {
        self.deletes_held = true;
    }

    /// Ends [`ColdMessages::hold_deletes`]: deletes what waited.
    pub fn release_deletes(&mut self, broker: &mut BrokerState) -> io::Result<()> {
        self.deletes_held = false;
        self.delete_doomed(broker)
    }

    fn delete_doomed(&mut self, broker: &mut BrokerState) -> io::Result<()> {
        let doomed = broker.messages.take_doomed();
        let Some(store) = &self.store else {
            debug_assert!(doomed.is_empty(), "a RAM node has no cold message to drop");
            return Ok(());
        };
        for msg_id in doomed {
            store.remove(msg_id)?;
        }
        Ok(())
    }
}
