//! The state's stored messages, wherever the node keeps them.
//!
//! A RAM node keeps every stored message in memory (`hot`). A disk node keeps in memory only
//! its newest messages, up to a byte budget: after each entry its state machine moves the
//! oldest ones beyond it, whole, to its [`ColdStore`] ([`Messages::move_cold`]), so the
//! node's memory does not grow with its backlog, and a message consumed soon after it was
//! published (a queue that keeps up) is never written to the store at all. What stays in memory per cold message is nothing, except the holder
//! count of one routed to more than one queue (`shared`; absent means 1): a cold record is
//! written once and never rewritten, and message ids are never reused.
//!
//! The model reads a cold message (dead-lettering, basic.get) through [`Messages::get`]. It
//! never writes the store and never sees an I/O error: a failed read is recorded
//! ([`Messages::take_fault`]) and the state machine then fails the entry, so a node whose
//! store fails stops instead of applying the entry differently from its peers.
//!
//! Must never: count a message held by several queues in a way that depends on where it is
//! kept; let a dropped message's record go before a snapshot build that may read it is done
//! (the state machine deletes `doomed` records, and holds that during builds).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::state::StoredMessage;

/// Cold messages in id order, as a store yields them.
pub type ColdIter<'a> = Box<dyn Iterator<Item = io::Result<(u64, StoredMessage)>> + 'a>;

/// Where a disk node keeps its stored messages out of memory. Read-only to the model; the
/// state machine writes it between entries.
pub trait ColdStore: Send + Sync + fmt::Debug {
    /// The message stored under `msg_id`, body included. Its `n_holders` means nothing: the
    /// count lives in [`Messages`].
    fn get(&self, msg_id: u64) -> io::Result<Option<StoredMessage>>;
    /// The messages with ids in `from..below`, in id order.
    fn range(&self, from: u64, below: u64) -> ColdIter<'_>;
}

/// The stored messages of a [`BrokerState`](super::state::BrokerState).
#[derive(Debug)]
pub struct Messages {
    /// In memory: all of them on a RAM node; on a disk node the newest ones, within the state
    /// machine's budget (ids above every cold one).
    hot: BTreeMap<u64, StoredMessage>,
    /// What the hot messages weigh ([`weight`]).
    hot_bytes: u64,
    /// `None` on a RAM node.
    cold: Option<Arc<dyn ColdStore>>,
    n_cold: u64,
    /// Cold messages held by more than one queue, and by how many.
    shared: BTreeMap<u64, u32>,
    /// Cold messages dropped whose records are still in the store: the state machine deletes
    /// them after the entry (or after a snapshot build).
    doomed: BTreeSet<u64>,
    /// Ids from here on are not this state's: a snapshot build's view of a store that
    /// applies go on writing.
    below: u64,
    /// A view's cold messages are the store's below this id: the messages the view holds in
    /// memory may be moved to the store after it was taken, and must not be read twice.
    cold_below: u64,
    /// The first failed read of the store since the state machine last looked.
    fault: Mutex<Option<io::Error>>,
}

impl Default for Messages {
    fn default() -> Messages {
        Messages {
            hot: BTreeMap::new(),
            hot_bytes: 0,
            cold: None,
            n_cold: 0,
            shared: BTreeMap::new(),
            doomed: BTreeSet::new(),
            below: u64::MAX,
            cold_below: u64::MAX,
            fault: Mutex::new(None),
        }
    }
}

impl Messages {
    /// A disk node's messages, `n_cold` of them all in `store`; `shared` are the holder counts
    /// above 1.
    pub fn cold(store: Arc<dyn ColdStore>, n_cold: u64, shared: BTreeMap<u64, u32>) -> Messages {
        debug_assert!(shared.values().all(|n| *n > 1));
        debug_assert!(shared.len() as u64 <= n_cold);
        Messages {
            cold: Some(store),
            n_cold,
            shared,
            ..Messages::default()
        }
    }

    /// How many messages are stored.
    pub fn len(&self) -> usize {
        self.hot.len() + self.n_cold as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many messages are in memory (a disk node: only its newest ones).
    pub fn n_hot(&self) -> usize {
        self.hot.len()
    }

    /// What the messages in memory weigh, as the disk node's budget counts them.
    pub fn hot_bytes(&self) -> u64 {
        self.hot_bytes
    }

    /// How many cold messages have a holder count kept in memory (held by several queues).
    pub fn n_shared(&self) -> usize {
        self.shared.len()
    }

    fn holders_of_cold(&self, msg_id: u64) -> u32 {
        self.shared.get(&msg_id).copied().unwrap_or(1)
    }

    /// The message `msg_id`, read from the store when it is cold. A failed read is recorded
    /// for the state machine ([`Messages::take_fault`]) and gives `None`.
    pub fn get(&self, msg_id: u64) -> Option<Cow<'_, StoredMessage>> {
        if let Some(m) = self.hot.get(&msg_id) {
            return Some(Cow::Borrowed(m));
        }
        if msg_id >= self.below || self.doomed.contains(&msg_id) {
            return None;
        }
        let mut m = self.read_cold(msg_id)?;
        m.n_holders = self.holders_of_cold(msg_id);
        Some(Cow::Owned(m))
    }

    /// The message `msg_id` if it is in memory.
    pub fn get_hot(&self, msg_id: u64) -> Option<&StoredMessage> {
        self.hot.get(&msg_id)
    }

    /// For a delivery: the message `msg_id`, also when the entry being applied dropped it
    /// from a disk node's store (its record stays until after the entry's deliveries). A
    /// dropped message that was in memory is not here: the outcome's `released` has it.
    pub fn get_for_delivery(&self, msg_id: u64) -> Option<Cow<'_, StoredMessage>> {
        if let Some(m) = self.hot.get(&msg_id) {
            return Some(Cow::Borrowed(m));
        }
        self.read_cold(msg_id).map(Cow::Owned)
    }

    fn read_cold(&self, msg_id: u64) -> Option<StoredMessage> {
        match self.cold.as_ref()?.get(msg_id) {
            Ok(m) => m,
            Err(error) => {
                self.note_fault(error);
                None
            }
        }
    }

    fn note_fault(&self, error: io::Error) {
        let mut fault = self.fault.lock().unwrap_or_else(|p| p.into_inner());
        fault.get_or_insert(error);
    }

    /// The first read of the store that failed since the last call. The state machine fails
    /// the entry on one: what the model did without the message is not what its peers did.
    pub fn take_fault(&self) -> Option<io::Error> {
        let mut fault = self.fault.lock().unwrap_or_else(|p| p.into_inner());
        fault.take()
    }

    /// Whether a read failed (not yet taken): an expected message missing is then no bug of
    /// the model.
    pub fn read_failed(&self) -> bool {
        self.fault
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// Stores a new message (in memory until the state machine moves it).
    pub fn insert(&mut self, msg_id: u64, message: StoredMessage) {
        debug_assert!(message.n_holders > 0, "message {msg_id} stored unheld");
        debug_assert!(self.cold_ids_below(msg_id), "message id {msg_id} reused");
        self.hot_bytes += weight(&message);
        let earlier = self.hot.insert(msg_id, message);
        debug_assert!(earlier.is_none(), "message id {msg_id} reused");
    }

    /// Every cold id is below `msg_id` (as far as memory can tell).
    fn cold_ids_below(&self, msg_id: u64) -> bool {
        let above = |set_max: Option<&u64>| set_max.is_none_or(|max| *max < msg_id);
        above(self.shared.keys().next_back()) && above(self.doomed.iter().next_back())
    }

    /// One queue let go of `msg_id`; returns whether that dropped it (no queue holds it).
    /// Unknown ids are ignored on a RAM node. A disk node cannot tell an unknown cold id from
    /// a held one without a read: the model only releases what a queue held.
    pub fn release(&mut self, msg_id: u64) -> bool {
        if let Some(m) = self.hot.get_mut(&msg_id) {
            m.n_holders = m.n_holders.saturating_sub(1);
            if m.n_holders > 0 {
                return false;
            }
            if let Some(gone) = self.hot.remove(&msg_id) {
                self.hot_bytes -= weight(&gone);
            }
            return true;
        }
        if self.cold.is_none() || msg_id >= self.below {
            return false;
        }
        if self.doomed.contains(&msg_id) {
            debug_assert!(false, "message {msg_id} released after it was dropped");
            return false;
        }
        match self.shared.get_mut(&msg_id) {
            Some(n) => {
                *n -= 1;
                if *n <= 1 {
                    self.shared.remove(&msg_id);
                }
                false
            }
            None => {
                debug_assert!(self.n_cold > 0, "release of {msg_id} with no cold message");
                self.n_cold = self.n_cold.saturating_sub(1);
                self.doomed.insert(msg_id);
                true
            }
        }
    }

    /// Every message in id order, cold ones read from the store.
    pub fn iter(&self) -> impl Iterator<Item = io::Result<(u64, Cow<'_, StoredMessage>)>> {
        let cold = self.cold.iter().flat_map(move |store| {
            store
                .range(0, self.below.min(self.cold_below))
                .filter_map(move |item| match item {
                    Ok((id, _)) if self.doomed.contains(&id) => None,
                    Ok((id, mut m)) => {
                        m.n_holders = self.holders_of_cold(id);
                        Some(Ok((id, Cow::Owned(m))))
                    }
                    Err(e) => Some(Err(e)),
                })
        });
        // Hot ids were all taken after every cold one was moved: chaining keeps id order.
        let hot = self
            .hot
            .range(..self.below)
            .map(|(id, m)| Ok((*id, Cow::Borrowed(m))));
        cold.chain(hot)
    }

    /// Moves the oldest in-memory messages to the cold store through `write` (the state
    /// machine's write of one record), in id order, until those left in memory weigh at most
    /// `keep_bytes` (0: all of them go). A disk node does this after each entry. Oldest
    /// first keeps every cold id below every hot one.
    pub fn move_cold(
        &mut self,
        keep_bytes: u64,
        mut write: impl FnMut(u64, &StoredMessage) -> io::Result<()>,
    ) -> io::Result<()> {
        debug_assert!(
            self.cold.is_some(),
            "a RAM node keeps its messages in memory"
        );
        while self.hot_bytes > keep_bytes {
            let Some(entry) = self.hot.first_entry() else {
                break;
            };
            // Written before it leaves memory: a failed write loses nothing.
            write(*entry.key(), entry.get())?;
            let (msg_id, message) = entry.remove_entry();
            self.hot_bytes -= weight(&message);
            self.n_cold += 1;
            if message.n_holders > 1 {
                self.shared.insert(msg_id, message.n_holders);
            }
        }
        Ok(())
    }

    /// Takes the ids of the dropped cold messages, for the state machine to delete them.
    pub fn take_doomed(&mut self) -> BTreeSet<u64> {
        std::mem::take(&mut self.doomed)
    }

    /// What a snapshot build reads: these messages as they are now, ids from `below` on
    /// excluded. It shares the store (no message is copied), so it stays right only while
    /// the records of messages dropped after it stay in the store (the state machine holds
    /// their deletion until the build ends).
    pub fn view(&self, below: u64) -> Messages {
        Messages {
            hot: self.hot.clone(),
            hot_bytes: self.hot_bytes,
            cold: self.cold.clone(),
            n_cold: self.n_cold,
            shared: self.shared.clone(),
            doomed: self.doomed.clone(),
            below: below.min(self.below),
            cold_below: self
                .hot
                .keys()
                .next()
                .map_or(u64::MAX, |id| *id)
                .min(self.cold_below),
            fault: Mutex::new(None),
        }
    }
}

/// A copy in memory: a disk node's cold messages are read from its store (for tests and
/// checks; a snapshot build takes a [`Messages::view`]). A failed read leaves the copy
/// short and marked, and it compares unequal to anything.
impl Clone for Messages {
    fn clone(&self) -> Messages {
        let copy = Messages::default();
        let mut hot = BTreeMap::new();
        for item in self.iter() {
            match item {
                Ok((id, m)) => {
                    hot.insert(id, m.into_owned());
                }
                Err(e) => {
                    copy.note_fault(e);
                    break;
                }
            }
        }
        if self.read_failed() {
            copy.note_fault(io::Error::other("copied from messages with a failed read"));
        }
        let hot_bytes = hot.values().map(weight).sum();
        Messages {
            hot,
            hot_bytes,
            ..copy
        }
    }
}

/// Equal when they hold the same messages with the same holder counts, wherever each keeps
/// them.
impl PartialEq for Messages {
    fn eq(&self, other: &Messages) -> bool {
        if self.read_failed() || other.read_failed() || self.len() != other.len() {
            return false;
        }
        let same = |(a, b)| matches!((a, b), (Ok(a), Ok(b)) if a == b);
        self.iter().zip(other.iter()).all(same)
    }
}

/// Only messages in memory serialize (a RAM node's, or a test's state): a disk node's are
/// streamed one record at a time into a snapshot file, never as one value.
impl Serialize for Messages {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.n_cold > 0 {
            let why = "a disk node's stored messages are streamed, not serialized";
            return Err(serde::ser::Error::custom(why));
        }
        self.hot.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Messages {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Messages, D::Error> {
        let hot: BTreeMap<u64, StoredMessage> = BTreeMap::deserialize(deserializer)?;
        let hot_bytes = hot.values().map(weight).sum();
        Ok(Messages {
            hot,
            hot_bytes,
            ..Messages::default()
        })
    }
}

/// What a message in memory counts for against a disk node's budget: its content and names,
/// and a fixed allowance for the rest (the map's node, the struct, the headers' vectors).
fn weight(message: &StoredMessage) -> u64 {
    const OVERHEAD: usize = 256;
    let content = message.content.body.len() + message.content.properties.len();
    let names = message.exchange.len() + message.routing_key.len();
    (content + names + OVERHEAD) as u64
}

#[cfg(test)]
#[path = "messages_tests.rs"]
mod tests;
