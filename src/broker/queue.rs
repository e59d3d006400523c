//! One queue's message bookkeeping: ready messages, checkouts to consumers, credit.
//!
//! A message is in exactly one place: `ready` (waiting), `unacked` (checked out to one
//! consumer's channel) or gone (settled). Assignment is deterministic: consumers are served
//! round-robin in the order they were added, each up to its prefetch (or, for no_ack and
//! prefetch-0 consumers, its credit window), the highest consumer priority first (a lower
//! one only while every higher one is blocked), so every node applying the same commands
//! makes the same deliveries. Bodies live elsewhere; this type only moves ids.
//! A channel's own limit (basic.qos global=true) is asked through [`ChannelCredit`] at every
//! delivery and told of every consumer delivery that comes back.
//!
//! A message that dies here (rejected, expired, dropped or refused by a full queue, returned
//! too often) is set aside in `dying`, still held, until the state dead-letters or drops it:
//! the queue never decides where a message goes after it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::args::QueueLimits;
use super::channel_limit::ChannelCredit;
use super::dead_letter::DeathReason;
use super::ready::{Ready, ReadyList, RequeueTo};
use crate::limits::CONSUMER_CREDIT_WINDOW;

/// Identifies a consumer: the connection and channel that hold it, and its tag.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ConsumerKey {
    pub conn: u64,
    pub channel: u16,
    pub tag: String,
}

/// A registered consumer and its credit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consumer {
    pub key: ConsumerKey,
    /// Numbered in the order consumers were added, never reused: a consumer that takes
    /// the tag of a cancelled one is another consumer, and gets none of its credit.
    pub id: u64,
    /// Most unacked deliveries at once; 0 means unlimited (AMQP's prefetch_count 0).
    pub prefetch: u32,
    /// With no_ack a delivery is settled as it is made.
    pub no_ack: bool,
    /// basic.consume(exclusive): no other consumer while this one is registered.
    pub exclusive: bool,
    pub n_unacked: u32,
    /// For a consumer its prefetch does not bound (no_ack or prefetch 0, see [`windowed`]):
    /// the deliveries it may still be handed before its connection says it wrote earlier
    /// ones to the socket (`Command::Credit`). Without it one apply could move a whole
    /// backlog into one connection's memory. Unused for the others.
    pub n_credit: u32,
    /// basic.consume's `x-priority` (machine version 4; 0 before): a consumer is served only
    /// while no consumer of a higher priority may take the message (RabbitMQ's consumer
    /// priorities). Not in the serialized layout of snapshot formats 5 and 6: format 7
    /// carries it apart (`state_extras.rs`), so the older layouts stay as they were.
    #[serde(skip)]
    pub priority: i32,
}

/// A message checked out to a consumer, waiting for its settle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unacked {
    pub consumer: ConsumerKey,
    /// The [`Consumer::id`] it was delivered to, whose credit its settle frees (if that
    /// consumer is still there), as well as its channel's; None when basic.get took it (no
    /// prefetch counts that).
    pub consumer_id: Option<u64>,
    pub delivery_count: u32,
    /// Kept for a requeue: a checked-out message does not expire, a returned one may.
    pub expires_at_ms: Option<u64>,
    pub body_bytes: u64,
    /// Kept for a requeue: `Ready::priority` (not serialized either, `state_extras.rs`).
    #[serde(skip)]
    pub priority: u8,
}

/// An assignment made by the queue: the holder of `consumer`'s channel delivers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub msg_id: u64,
    pub consumer: ConsumerKey,
    pub redelivered: bool,
    pub delivery_count: u32,
    /// True for no_ack deliveries: the queue let go of the message as it handed it out.
    pub settled: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queue {
    ready: ReadyList,
    unacked: BTreeMap<u64, Unacked>,
    consumers: Vec<Consumer>,
    /// Index into `consumers` of the next one to serve (round-robin).
    next_consumer: usize,
    /// The id the next consumer added gets.
    next_consumer_id: u64,
    /// Whether a consumer was ever added: an auto-delete queue goes only after that.
    had_consumer: bool,
    /// The entry time of the latest command that touched the queue (never goes back).
    now_ms: u64,
    /// Messages that died here and are still held, waiting for the state to dead-letter
    /// or drop them, in the order they died.
    dying: Vec<(u64, DeathReason)>,
    limits: QueueLimits,
    /// `x-max-priority` (machine version 4): a priority queue, whose ready messages go out
    /// highest priority first. Not in the serialized layout of snapshot formats 5 and 6:
    /// format 7 carries it apart (`state_extras.rs`).
    #[serde(skip)]
    max_priority: Option<u8>,
    /// `x-single-active-consumer` (machine version 4): only the earliest registered
    /// consumer still here is served; the next takes over when it goes. Carried apart as
    /// `max_priority` is.
    #[serde(skip)]
    single_active: bool,
}

impl Queue {
    /// An empty queue that enforces `limits`.
    pub fn new(limits: QueueLimits) -> Queue {
        Queue {
            limits,
            ..Queue::default()
        }
    }

    /// Makes this a priority queue of `max_priority` (`x-max-priority`, at its declare),
    /// or not (None).
    pub fn set_max_priority(&mut self, max_priority: Option<u8>) {
        debug_assert!(self.ready.is_empty() && self.unacked.is_empty());
        self.max_priority = max_priority;
    }

    /// As [`Queue::set_max_priority`], on a queue read back from a snapshot, which may
    /// already hold messages.
    pub fn restore_max_priority(&mut self, max_priority: Option<u8>) {
        self.max_priority = max_priority;
    }

    /// `x-max-priority`, for a priority queue.
    pub fn max_priority(&self) -> Option<u8> {
        self.max_priority
    }

    /// Makes this a single-active-consumer queue (`x-single-active-consumer`), or not; at
    /// its declare, or loading a snapshot.
    pub fn set_single_active(&mut self, single_active: bool) {
        self.single_active = single_active;
    }

    pub fn single_active(&self) -> bool {
        self.single_active
    }

    /// (id, priority) of every message held, ready or checked out, whose priority is not 0,
    /// in id order (a snapshot's extras, `state_extras.rs`).
    pub fn message_priorities(&self) -> Vec<(u64, u8)> {
        let unacked = self.unacked.iter().filter(|(_, u)| u.priority != 0);
        let unacked = unacked.map(|(&id, u)| (id, u.priority));
        let mut all: Vec<(u64, u8)> = self.ready.priorities().chain(unacked).collect();
        all.sort_unstable();
        all
    }

    /// Sets the priority of each message `by_id` names, ready or checked out (loading a
    /// snapshot); an error when one is not held here.
    pub fn restore_message_priorities(&mut self, by_id: &BTreeMap<u64, u8>) -> Result<(), String> {
        let mut n_found = self.ready.restore_priorities(by_id);
        for (id, unacked) in self.unacked.iter_mut() {
            if let Some(&priority) = by_id.get(id) {
                unacked.priority = priority;
                n_found += 1;
            }
        }
        match n_found == by_id.len() {
            true => Ok(()),
            false => Err("a priority for a message the queue does not hold".to_string()),
        }
    }

    pub fn n_ready(&self) -> usize {
        self.ready.len()
    }

    pub fn n_unacked(&self) -> usize {
        self.unacked.len()
    }

    /// The registered consumers, in the order they were added.
    pub fn consumers(&self) -> &[Consumer] {
        &self.consumers
    }

    pub fn n_consumers(&self) -> usize {
        self.consumers.len()
    }

    /// True for a queue that had consumers and has none left (auto-delete's trigger).
    pub fn lost_all_consumers(&self) -> bool {
        self.had_consumer && self.consumers.is_empty()
    }

    /// The keys of the registered consumers.
    pub fn consumer_keys(&self) -> impl Iterator<Item = &ConsumerKey> {
        self.consumers.iter().map(|c| &c.key)
    }

    /// Advances the queue's clock to `now_ms` and expires ready messages at the head. Only
    /// the head is checked, as in RabbitMQ: a longer-lived head shields those behind it.
    pub fn touch(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        while let Some(ready) = self.ready.pop_front() {
            if !self.is_expired(&ready) {
                self.ready.push_front(ready);
                break;
            }
            self.dying.push((ready.msg_id, DeathReason::Expired));
        }
    }

    /// When the head ready message expires, if it does.
    pub fn head_expires_at(&self) -> Option<u64> {
        self.ready.front().and_then(|r| r.expires_at_ms)
    }

    /// Takes the messages that died so far; the caller dead-letters or releases them.
    pub fn take_dying(&mut self) -> Vec<(u64, DeathReason)> {
        std::mem::take(&mut self.dying)
    }

    /// True when a consume (`exclusive` or not) must be refused: the queue has an exclusive
    /// consumer, or an exclusive one asks while others are registered.
    pub fn in_exclusive_use(&self, exclusive: bool) -> bool {
        let has_exclusive = self.consumers.iter().any(|c| c.exclusive);
        has_exclusive || (exclusive && !self.consumers.is_empty())
    }

    fn is_expired(&self, ready: &Ready) -> bool {
        ready.expires_at_ms.is_some_and(|at| at <= self.now_ms)
    }

    /// The head ready message that has not expired; expired ones on the way are set aside.
    fn pop_live(&mut self) -> Option<Ready> {
        self.touch(self.now_ms);
        self.ready.pop_front()
    }

    /// Registers a consumer (its tag must be unique on its channel, and exclusive use is
    /// checked with `in_exclusive_use`: the caller does both).
    pub fn add_consumer(
        &mut self,
        key: ConsumerKey,
        prefetch: u32,
        no_ack: bool,
        exclusive: bool,
        credit: &mut impl ChannelCredit,
    ) -> Vec<Delivery> {
        self.add_consumer_with_priority(key, prefetch, no_ack, exclusive, 0, credit)
    }

    /// As [`Queue::add_consumer`], with a consumer priority (`x-priority`).
    pub fn add_consumer_with_priority(
        &mut self,
        key: ConsumerKey,
        prefetch: u32,
        no_ack: bool,
        exclusive: bool,
        priority: i32,
        credit: &mut impl ChannelCredit,
    ) -> Vec<Delivery> {
        debug_assert!(self.consumers.iter().all(|c| c.key != key));
        debug_assert!(!self.in_exclusive_use(exclusive));
        self.had_consumer = true;
        let id = self.next_consumer_id;
        self.next_consumer_id += 1;
        self.consumers.push(Consumer {
            key,
            id,
            prefetch,
            no_ack,
            exclusive,
            n_unacked: 0,
            n_credit: CONSUMER_CREDIT_WINDOW,
            priority,
        });
        self.assign(credit)
    }

    /// Removes a consumer. Its unacked messages stay checked out to its channel until they
    /// are settled or the channel closes, as in AMQP.
    pub fn cancel_consumer(&mut self, key: &ConsumerKey) -> bool {
        let Some(index) = self.consumers.iter().position(|c| &c.key == key) else {
            return false;
        };
        self.consumers.remove(index);
        if self.next_consumer > index {
            self.next_consumer -= 1;
        }
        true
    }

    /// Consumer `key`'s connection wrote `n` of its deliveries to the socket: a windowed
    /// consumer gets that credit back (never past the window) and is served. Anything else
    /// (a consumer gone, or one its prefetch bounds) changes nothing.
    pub fn add_credit(
        &mut self,
        key: &ConsumerKey,
        n: u32,
        credit: &mut impl ChannelCredit,
    ) -> Vec<Delivery> {
        let Some(consumer) = self.consumers.iter_mut().find(|c| &c.key == key) else {
            return Vec::new();
        };
        if !windowed(consumer) {
            return Vec::new();
        }
        consumer.n_credit = consumer
            .n_credit
            .saturating_add(n)
            .min(CONSUMER_CREDIT_WINDOW);
        self.assign(credit)
    }

    /// Takes the head message for basic.get; with `no_ack` it is settled at once.
    pub fn get(&mut self, holder: ConsumerKey, no_ack: bool) -> Option<Delivery> {
        let ready = self.pop_live()?;
        if !no_ack {
            let unacked = Unacked {
                consumer: holder.clone(),
                consumer_id: None,
                delivery_count: ready.delivery_count,
                expires_at_ms: ready.expires_at_ms,
                body_bytes: ready.body_bytes,
                priority: ready.priority,
            };
            self.unacked.insert(ready.msg_id, unacked);
        }
        Some(delivery(ready, holder, no_ack))
    }

    /// Settles a checked-out message (consumer ack). Returns false when the message is not
    /// checked out to `holder`'s channel.
    pub fn settle(
        &mut self,
        msg_id: u64,
        conn: u64,
        channel: u16,
        credit: &mut impl ChannelCredit,
    ) -> (bool, Vec<Delivery>) {
        self.check_in(msg_id, conn, channel, None, credit)
    }

    /// nack/reject without requeue: the checked-out message dies here (reason rejected).
    pub fn reject(
        &mut self,
        msg_id: u64,
        conn: u64,
        channel: u16,
        credit: &mut impl ChannelCredit,
    ) -> (bool, Vec<Delivery>) {
        self.check_in(msg_id, conn, channel, Some(DeathReason::Rejected), credit)
    }

    fn check_in(
        &mut self,
        msg_id: u64,
        conn: u64,
        channel: u16,
        death: Option<DeathReason>,
        credit: &mut impl ChannelCredit,
    ) -> (bool, Vec<Delivery>) {
        let Some(unacked) = self.take_unacked(msg_id, conn, channel) else {
            return (false, Vec::new());
        };
        self.credit(&unacked, credit);
        self.dying.extend(death.map(|reason| (msg_id, reason)));
        (true, self.assign(credit))
    }

    /// Returns checked-out messages to the queue, where `to` says, with one more delivery
    /// count.
    pub fn requeue(
        &mut self,
        msg_ids: &[u64],
        conn: u64,
        channel: u16,
        to: RequeueTo,
        credit: &mut impl ChannelCredit,
    ) -> Vec<Delivery> {
        // Walk backwards so the returned messages keep their relative order at the head.
        for &msg_id in msg_ids.iter().rev() {
            self.requeue_one(msg_id, conn, channel, to, credit);
        }
        self.drop_head_while_over_limit();
        self.assign(credit)
    }

    /// One return; past `x-delivery-limit` (RabbitMQ: a count above the limit) the message
    /// dies instead.
    fn requeue_one(
        &mut self,
        msg_id: u64,
        conn: u64,
        channel: u16,
        to: RequeueTo,
        credit: &mut impl ChannelCredit,
    ) {
        let Some(unacked) = self.take_unacked(msg_id, conn, channel) else {
            return;
        };
        self.credit(&unacked, credit);
        let delivery_count = unacked.delivery_count.saturating_add(1);
        let limit = self.limits.delivery_limit;
        if limit.is_some_and(|limit| u64::from(delivery_count) > limit) {
            self.dying.push((msg_id, DeathReason::DeliveryLimit));
            return;
        }
        let ready = Ready {
            msg_id,
            delivery_count,
            expires_at_ms: unacked.expires_at_ms,
            body_bytes: unacked.body_bytes,
            priority: unacked.priority,
        };
        self.ready.put_back(ready, to);
    }

    /// basic.recover(requeue=true): every message checked out to the channel goes back
    /// (where `to` says) as redelivered; its consumers stay and may get them again at once.
    pub fn recover(
        &mut self,
        conn: u64,
        channel: u16,
        to: RequeueTo,
        credit: &mut impl ChannelCredit,
    ) -> Vec<Delivery> {
        let held = self.checked_out_to(conn, channel);
        self.requeue(&held, conn, channel, to, credit)
    }

    /// A channel closed: drop its consumers and return everything checked out to it.
    pub fn channel_closed(
        &mut self,
        conn: u64,
        channel: u16,
        to: RequeueTo,
        credit: &mut impl ChannelCredit,
    ) -> Vec<Delivery> {
        self.holder_gone(|k| k.conn == conn && k.channel == channel, to, credit)
    }

    /// A connection closed: the same for all its channels.
    pub fn connection_closed(
        &mut self,
        conn: u64,
        to: RequeueTo,
        credit: &mut impl ChannelCredit,
    ) -> Vec<Delivery> {
        self.holder_gone(|k| k.conn == conn, to, credit)
    }

    /// Drops the consumers `gone` matches and returns their channels' checked-out messages
    /// to the queue (where `to` says), in id order, as redelivered.
    fn holder_gone(
        &mut self,
        gone: impl Fn(&ConsumerKey) -> bool,
        to: RequeueTo,
        credit: &mut impl ChannelCredit,
    ) -> Vec<Delivery> {
        let held: Vec<(u64, u64, u16)> = self
            .unacked
            .iter()
            .filter(|(_, u)| gone(&u.consumer))
            .map(|(&id, u)| (id, u.consumer.conn, u.consumer.channel))
            .collect();
        let keys: Vec<ConsumerKey> = self
            .consumers
            .iter()
            .filter(|c| gone(&c.key))
            .map(|c| c.key.clone())
            .collect();
        for key in &keys {
            self.cancel_consumer(key);
        }
        // Backwards with push_front (inside requeue), so the ids keep their order.
        for &(id, conn, channel) in held.iter().rev() {
            self.requeue_one(id, conn, channel, to, credit);
        }
        self.drop_head_while_over_limit();
        self.assign(credit)
    }

    /// The connections holding consumers or checked-out messages of this queue.
    pub fn holder_conns(&self) -> impl Iterator<Item = u64> + '_ {
        let consumers = self.consumers.iter().map(|c| c.key.conn);
        consumers.chain(self.unacked.values().map(|u| u.consumer.conn))
    }

    /// Whether a consumer of `conn` is registered here.
    pub fn has_consumer_of(&self, conn: u64) -> bool {
        self.consumers.iter().any(|c| c.key.conn == conn)
    }

    /// Whether a message is checked out here to a channel of `conn`.
    pub fn has_checkout_of(&self, conn: u64) -> bool {
        self.unacked.values().any(|u| u.consumer.conn == conn)
    }

    /// Drops every ready message (queue.purge); returns the ids that went.
    pub fn purge(&mut self) -> Vec<u64> {
        self.ready.drain().into_iter().map(|r| r.msg_id).collect()
    }

    /// Ids of every message the queue holds, ready or checked out (for queue.delete).
    pub fn all_msg_ids(&self) -> Vec<u64> {
        let ready = self.ready.iter().map(|r| r.msg_id);
        let dying = self.dying.iter().map(|(id, _)| *id);
        ready
            .chain(self.unacked.keys().copied())
            .chain(dying)
            .collect()
    }

    /// The ids checked out to a channel (consumer deliveries and basic.get alike), in id
    /// order.
    pub fn checked_out_to(&self, conn: u64, channel: u16) -> Vec<u64> {
        let held = self.unacked.iter();
        let mine = held.filter(|(_, u)| u.consumer.conn == conn && u.consumer.channel == channel);
        mine.map(|(id, _)| *id).collect()
    }

    /// Whether `delivery` still stands: a message checked out is still checked out to the
    /// same consumer, at the same delivery count; a no_ack one's consumer is still here.
    pub fn still_holds(&self, delivery: &Delivery) -> bool {
        if delivery.settled {
            return self.consumers.iter().any(|c| c.key == delivery.consumer);
        }
        self.unacked.get(&delivery.msg_id).is_some_and(|u| {
            u.consumer == delivery.consumer && u.delivery_count == delivery.delivery_count
        })
    }

    fn take_unacked(&mut self, msg_id: u64, conn: u64, channel: u16) -> Option<Unacked> {
        match self.unacked.get(&msg_id) {
            Some(u) if u.consumer.conn == conn && u.consumer.channel == channel => {
                self.unacked.remove(&msg_id)
            }
            _ => None,
        }
    }

    /// The holder of `unacked` has it no more: the consumer it went to (if still
    /// registered) and its channel get the credit back. basic.get took no credit.
    fn credit(&mut self, unacked: &Unacked, credit: &mut impl ChannelCredit) {
        let Some(id) = unacked.consumer_id else {
            return;
        };
        credit.returned(&unacked.consumer);
        if let Some(consumer) = self.consumers.iter_mut().find(|c| c.id == id) {
            debug_assert!(consumer.n_unacked > 0);
            consumer.n_unacked = consumer.n_unacked.saturating_sub(1);
        }
    }

    /// The consumers of the messages checked out to consumers (not by basic.get), one key
    /// per message: what the channels count.
    pub fn consumer_checkouts(&self) -> impl Iterator<Item = &ConsumerKey> {
        let delivered = self.unacked.values().filter(|u| u.consumer_id.is_some());
        delivered.map(|u| &u.consumer)
    }

    /// Hands ready messages to consumers with credit of their own and from their channel
    /// (no_ack consumers need only their own): each to the highest-priority consumer that
    /// may take it, round-robin among equals. Called after every change that can make a
    /// delivery possible, and by the state when a channel gains credit.
    pub fn assign(&mut self, credit: &mut impl ChannelCredit) -> Vec<Delivery> {
        let mut out = Vec::new();
        let top = self.consumers.iter().map(|c| c.priority).max();
        // Each pass over the consumers either delivers or proves no one has credit: bounded.
        while !self.ready.is_empty() && !self.consumers.is_empty() {
            let may_serve =
                |c: &Consumer| has_credit(c) && (c.no_ack || credit.may_deliver(&c.key));
            let Some(index) = self.next_to_serve(top, may_serve) else {
                self.hold_back(credit);
                break;
            };
            self.next_consumer = (index + 1) % self.consumers.len();
            let Some(ready) = self.pop_live() else {
                break;
            };
            let consumer = &mut self.consumers[index];
            if windowed(consumer) {
                debug_assert!(consumer.n_credit > 0);
                consumer.n_credit -= 1;
            }
            if !consumer.no_ack {
                consumer.n_unacked += 1;
                credit.delivered(&consumer.key);
                let unacked = Unacked {
                    consumer: consumer.key.clone(),
                    consumer_id: Some(consumer.id),
                    delivery_count: ready.delivery_count,
                    expires_at_ms: ready.expires_at_ms,
                    body_bytes: ready.body_bytes,
                    priority: ready.priority,
                };
                self.unacked.insert(ready.msg_id, unacked);
            }
            out.push(delivery(ready, consumer.key.clone(), consumer.no_ack));
        }
        out
    }

    /// The index of the consumer to serve next: of those `may_serve` admits, the ones of
    /// the highest priority, and of these the first from `next_consumer` on (round-robin).
    /// With every priority equal (the only case before machine version 4) this is the
    /// first consumer `may_serve` admits from `next_consumer` on, as it always was. `top` is
    /// the highest priority registered: a consumer of it ends the search.
    fn next_to_serve(
        &self,
        top: Option<i32>,
        may_serve: impl Fn(&Consumer) -> bool,
    ) -> Option<usize> {
        let n = self.consumers.len();
        if self.single_active {
            // The consumers are in registration order: the first is the active one, and
            // no other is served while it is registered, blocked or not.
            return self.consumers.first().is_some_and(&may_serve).then_some(0);
        }
        let mut best: Option<usize> = None;
        for index in (0..n).map(|i| (self.next_consumer + i) % n) {
            let consumer = &self.consumers[index];
            let better = best.is_none_or(|b| consumer.priority > self.consumers[b].priority);
            if better && may_serve(consumer) {
                best = Some(index);
                if Some(consumer.priority) == top {
                    break;
                }
            }
        }
        best
    }

    /// The priority of every consumer whose priority is not 0, by consumer id (a snapshot's
    /// extras, `state_extras.rs`).
    pub fn consumer_priorities(&self) -> Vec<(u64, i32)> {
        let prioritised = self.consumers.iter().filter(|c| c.priority != 0);
        prioritised.map(|c| (c.id, c.priority)).collect()
    }

    /// Sets consumer `id`'s priority (loading a snapshot); false when there is no such
    /// consumer.
    pub fn set_consumer_priority(&mut self, id: u64, priority: i32) -> bool {
        let Some(consumer) = self.consumers.iter_mut().find(|c| c.id == id) else {
            return false;
        };
        consumer.priority = priority;
        true
    }

    /// Ready messages wait while every consumer is out of credit: tells the channels that
    /// refused a consumer with credit of its own, so they serve this queue when they can.
    /// (In a single-active-consumer queue only the active one counts.)
    fn hold_back(&self, credit: &mut impl ChannelCredit) {
        let n_serving = match self.single_active {
            true => 1,
            false => self.consumers.len(),
        };
        let serving = self.consumers.iter().take(n_serving);
        let refused = serving.filter(|c| !c.no_ack && has_credit(c));
        refused.for_each(|c| credit.held_back(&c.key));
    }
}

/// Whether `consumer` may take one more delivery as far as its own limit goes: its credit
/// window when its prefetch does not bound it, else its prefetch.
fn has_credit(consumer: &Consumer) -> bool {
    if windowed(consumer) {
        return consumer.n_credit > 0;
    }
    consumer.n_unacked < consumer.prefetch
}

/// Whether `consumer` is bounded by a credit window (its connection tops it up as it
/// writes) rather than by its prefetch: no_ack settles as it delivers and prefetch 0 is
/// unlimited, so neither would ever stop taking messages.
pub fn windowed(consumer: &Consumer) -> bool {
    consumer.no_ack || consumer.prefetch == 0
}

fn delivery(ready: Ready, consumer: ConsumerKey, settled: bool) -> Delivery {
    Delivery {
        settled,
        msg_id: ready.msg_id,
        consumer,
        redelivered: ready.delivery_count > 0,
        delivery_count: ready.delivery_count,
    }
}

#[path = "queue_limits.rs"]
mod limits;
pub use limits::Offer;

#[cfg(test)]
#[path = "queue_credit_tests.rs"]
mod credit_tests;
#[cfg(test)]
#[path = "queue_max_priority_tests.rs"]
mod max_priority_tests;
#[cfg(test)]
#[path = "queue_priority_tests.rs"]
mod priority_tests;
#[cfg(test)]
#[path = "queue_prop_tests.rs"]
mod prop_tests;
#[cfg(test)]
#[path = "queue_single_active_tests.rs"]
mod single_active_tests;
#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
