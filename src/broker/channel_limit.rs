//! Channel prefetch: `basic.qos` with `global=true`, as RabbitMQ (3.3 and later) does it.
//!
//! A channel with a limit holds at most `prefetch` unacked deliveries over all its consumers,
//! whatever their queues. A delivery needs credit from its consumer (the `global=false`
//! prefetch fixed at basic.consume) and from its channel. no_ack consumers and basic.get are
//! neither limited nor counted. The limit is replicated state because the state machine
//! decides every delivery: the front end only proposes it (`Command::ChannelQos`).
//!
//! Freed channel credit goes first to the queues that were held back for the lack of it,
//! longest waiting first: a queue that waited takes precedence over the one whose ack freed
//! the credit, so one busy queue cannot starve the channel's other consumers. Everything is
//! ordered (`BTreeMap`, `VecDeque`), so every node makes the same deliveries.
//!
//! Must never: read a clock, or let a count drift. A consumer delivery counts from its
//! delivery until it is settled, rejected, returned or its queue goes; the property test
//! checks every count against the queues.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use super::queue::ConsumerKey;

/// A channel as consumers are keyed: (connection, channel number).
pub type ChannelId = (u64, u16);

/// What a queue asks of the channels its consumers are on. The queue keeps each consumer's
/// own credit; this keeps the channel's.
pub trait ChannelCredit {
    /// Whether `consumer`'s channel lets one more delivery out of this queue.
    fn may_deliver(&self, consumer: &ConsumerKey) -> bool;
    /// A delivery to `consumer` that must be settled went out: it counts until it is back.
    fn delivered(&mut self, consumer: &ConsumerKey);
    /// A consumer delivery is back: settled, rejected or returned to its queue.
    fn returned(&mut self, consumer: &ConsumerKey);
    /// This queue has a message `consumer` could take, but its channel refused it.
    fn held_back(&mut self, consumer: &ConsumerKey);
}

/// No channel limits: a queue on its own, in its unit tests.
#[cfg(test)]
pub struct Unlimited;

#[cfg(test)]
impl ChannelCredit for Unlimited {
    fn may_deliver(&self, _: &ConsumerKey) -> bool {
        true
    }
    fn delivered(&mut self, _: &ConsumerKey) {}
    fn returned(&mut self, _: &ConsumerKey) {}
    fn held_back(&mut self, _: &ConsumerKey) {}
}

/// One channel's limit and how much of it is in use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelLimit {
    /// Most unacked consumer deliveries at once; never 0 (no limit means no entry).
    pub prefetch: u32,
    /// The channel's consumer deliveries not yet back, over every queue. May exceed
    /// `prefetch` after the limit was lowered.
    pub n_unacked: u32,
    /// Queues held back for lack of this channel's credit, each once, longest waiting first.
    pub waiting: VecDeque<String>,
}

impl ChannelLimit {
    fn has_credit(&self) -> bool {
        self.n_unacked < self.prefetch
    }
}

/// Every channel limit in force.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelLimits {
    by_channel: BTreeMap<ChannelId, ChannelLimit>,
    /// Channels that gained credit during the command being applied: their waiting queues
    /// are served before the command ends. Empty between commands, so never serialized.
    #[serde(skip)]
    freed: BTreeSet<ChannelId>,
}

impl ChannelLimits {
    pub fn get(&self, id: ChannelId) -> Option<&ChannelLimit> {
        self.by_channel.get(&id)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&ChannelId, &ChannelLimit)> {
        self.by_channel.iter()
    }

    /// Sets the limit of a channel that has one (`prefetch` > 0); a raise frees credit.
    /// Returns false when the channel has none yet: the caller counts its deliveries and
    /// calls [`ChannelLimits::insert`].
    pub fn update(&mut self, id: ChannelId, prefetch: u32) -> bool {
        debug_assert!(prefetch > 0);
        let Some(limit) = self.by_channel.get_mut(&id) else {
            return false;
        };
        if prefetch > limit.prefetch {
            self.freed.insert(id);
        }
        limit.prefetch = prefetch;
        true
    }

    /// A first limit for a channel that already holds `n_unacked` consumer deliveries.
    pub fn insert(&mut self, id: ChannelId, prefetch: u32, n_unacked: u32) {
        debug_assert!(prefetch > 0);
        let limit = ChannelLimit {
            prefetch,
            n_unacked,
            waiting: VecDeque::new(),
        };
        let earlier = self.by_channel.insert(id, limit);
        debug_assert!(earlier.is_none());
    }

    /// Drops a channel's limit; returns the queues that waited for its credit.
    pub fn remove(&mut self, id: ChannelId) -> Vec<String> {
        self.freed.remove(&id);
        let limit = self.by_channel.remove(&id);
        limit.map(|l| l.waiting.into()).unwrap_or_default()
    }

    /// Drops the limits of every channel of `conn`.
    pub fn remove_connection(&mut self, conn: u64) {
        self.by_channel.retain(|(c, _), _| *c != conn);
        self.freed.retain(|(c, _)| *c != conn);
    }

    /// The connections that have a channel limit.
    pub fn conns(&self) -> impl Iterator<Item = u64> + '_ {
        self.by_channel.keys().map(|(conn, _)| *conn)
    }

    /// The channel credit as `queue` sees it.
    pub fn gate<'a>(&'a mut self, queue: &'a str) -> ChannelGate<'a> {
        ChannelGate {
            limits: self,
            queue,
        }
    }

    /// The channels that gained credit since the last call.
    pub fn take_freed(&mut self) -> BTreeSet<ChannelId> {
        std::mem::take(&mut self.freed)
    }

    /// The queue to serve next with `id`'s credit: the longest waiting, if the channel has
    /// credit to give.
    pub fn next_waiting(&self, id: ChannelId) -> Option<String> {
        let limit = self.by_channel.get(&id).filter(|l| l.has_credit())?;
        limit.waiting.front().cloned()
    }

    /// `queue` was served with `id`'s credit. Still first in line with credit left, it
    /// took none: it no longer needs the channel, and leaves the line. (A queue that took
    /// credit left the line then, and rejoined at the back if it wanted more.)
    pub fn served(&mut self, id: ChannelId, queue: &str) {
        let Some(limit) = self.by_channel.get_mut(&id) else {
            return;
        };
        if limit.has_credit() && limit.waiting.front().is_some_and(|q| q == queue) {
            limit.waiting.pop_front();
        }
    }
}

/// The channel credit as one queue sees it: [`ChannelCredit`] over [`ChannelLimits`].
pub struct ChannelGate<'a> {
    limits: &'a mut ChannelLimits,
    queue: &'a str,
}

impl ChannelCredit for ChannelGate<'_> {
    fn may_deliver(&self, consumer: &ConsumerKey) -> bool {
        let Some(limit) = self
            .limits
            .by_channel
            .get(&(consumer.conn, consumer.channel))
        else {
            return true;
        };
        // Queues that waited go first.
        let in_turn = limit.waiting.front().is_none_or(|q| q == self.queue);
        limit.has_credit() && in_turn
    }

    fn delivered(&mut self, consumer: &ConsumerKey) {
        let id = (consumer.conn, consumer.channel);
        let Some(limit) = self.limits.by_channel.get_mut(&id) else {
            return;
        };
        debug_assert!(limit.has_credit(), "delivered without channel credit");
        limit.n_unacked = limit.n_unacked.saturating_add(1);
        // Served now: the queue leaves the line (it was first, or the line was empty).
        if limit.waiting.front().is_some_and(|q| q == self.queue) {
            limit.waiting.pop_front();
        }
    }

    fn returned(&mut self, consumer: &ConsumerKey) {
        let id = (consumer.conn, consumer.channel);
        let Some(limit) = self.limits.by_channel.get_mut(&id) else {
            return;
        };
        debug_assert!(
            limit.n_unacked > 0,
            "channel {id:?} unacked count underflow"
        );
        limit.n_unacked = limit.n_unacked.saturating_sub(1);
        if limit.has_credit() {
            self.limits.freed.insert(id);
        }
    }

    fn held_back(&mut self, consumer: &ConsumerKey) {
        let id = (consumer.conn, consumer.channel);
        let Some(limit) = self.limits.by_channel.get_mut(&id) else {
            return;
        };
        if !limit.waiting.iter().any(|q| q == self.queue) {
            limit.waiting.push_back(self.queue.to_string());
        }
    }
}
