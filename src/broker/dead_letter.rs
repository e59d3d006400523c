//! Dead-lettering (`x-dead-letter-exchange`, `x-dead-letter-routing-key`), as RabbitMQ 3.10's
//! `rabbit_dead_letter` does it.
//!
//! A message that dies in a queue (rejected, expired, dropped by a full queue, returned too
//! often) is set aside by the queue as dying; after each command the state takes the dying
//! messages of every queue and, for a queue with a dead-letter exchange, publishes a copy
//! there: a new stored message (the content's bytes are shared, not copied) with the death
//! added to its `deaths` (the front end's `x-death`). Then the queue's hold on the original is
//! released. Dead-lettering never refuses: a missing exchange, no route, or a cycle of
//! automatic deaths drops the message.
//!
//! Must never: read a clock (a death's time is the entry's time), or loop without a bound
//! (dead-letter topologies can cycle; see `DEAD_LETTER_ROUNDS_MAX`).

use serde::{Deserialize, Serialize};

use super::state::{BrokerState, Effects, StoredMessage};

/// Why a message died: the `reason` of its `x-death` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeathReason {
    /// basic.nack or basic.reject with requeue=false.
    Rejected,
    /// Its TTL ran out at the head of the queue.
    Expired,
    /// Dropped (drop-head) or refused (reject-publish-dlx) by a full queue.
    Maxlen,
    /// Returned more often than the queue's `x-delivery-limit`.
    DeliveryLimit,
}

impl DeathReason {
    /// The reason as RabbitMQ writes it in `x-death` and `x-first-death-reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeathReason::Rejected => "rejected",
            DeathReason::Expired => "expired",
            DeathReason::Maxlen => "maxlen",
            DeathReason::DeliveryLimit => "delivery_limit",
        }
    }
}

/// One entry of a message's `x-death`: its deaths in one queue for one reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Death {
    pub queue: String,
    pub reason: DeathReason,
    /// Where the message had been published before its first death in this entry.
    pub exchange: String,
    pub routing_keys: Vec<String>,
    /// How many times it died in `queue` for `reason`.
    pub count: u64,
    /// The entry time of the first death of this entry (RabbitMQ keeps it on a repeat).
    pub time_ms: u64,
}

/// Dead-lettering rounds in one command: a round takes every dying message and may make
/// more die downstream (a full or expiring dead-letter queue). RabbitMQ's cycle rule ends
/// chains of automatic deaths; this bounds what it does not (copies multiplied by fanout
/// dead-letter exchanges over many queues). Past it, dying messages are dropped.
pub const DEAD_LETTER_ROUNDS_MAX: usize = 16;

/// Adds `death` (count 1) to `deaths`, newest first. A death in the same queue for the same
/// reason as an earlier entry increments that entry's count and moves it to the front,
/// keeping its other fields (RabbitMQ's `update_x_death_header`).
pub fn record_death(deaths: &mut Vec<Death>, death: Death) {
    debug_assert_eq!(death.count, 1);
    let same = |d: &Death| d.queue == death.queue && d.reason == death.reason;
    let entry = match deaths.iter().position(same) {
        Some(index) => {
            let mut earlier = deaths.remove(index);
            earlier.count = earlier.count.saturating_add(1);
            earlier
        }
        None => death,
    };
    deaths.insert(0, entry);
}

/// RabbitMQ's `is_cycle`: dead-lettering into `queue` closes a cycle when the message died
/// there before and no death since then (that one included) was a rejection, i.e. the
/// cycle is "fully automatic" and would go round for ever.
pub fn is_cycle(queue: &str, deaths: &[Death]) -> bool {
    let Some(index) = deaths.iter().position(|d| d.queue == queue) else {
        return false;
    };
    deaths[..=index]
        .iter()
        .all(|d| d.reason != DeathReason::Rejected)
}

impl BrokerState {
    /// Dead-letters or drops what died in any queue during this command, including what
    /// dies downstream on the way, round by round (bounded).
    pub(super) fn dead_letter_dying(&mut self, fx: &mut Effects) {
        for _round in 0..DEAD_LETTER_ROUNDS_MAX {
            let dying = self.take_dying();
            if dying.is_empty() {
                return;
            }
            for (queue, msg_id, reason) in dying {
                self.dead_letter(&queue, msg_id, reason, fx);
            }
        }
        let rest: Vec<u64> = self.take_dying().into_iter().map(|(_, id, _)| id).collect();
        self.release(&rest);
    }

    /// Every queue's dying messages, in queue-name order then the order they died.
    fn take_dying(&mut self) -> Vec<(String, u64, DeathReason)> {
        let mut dying = Vec::new();
        for (name, entry) in self.here.queues.iter_mut() {
            let named = entry.queue.take_dying().into_iter();
            dying.extend(named.map(|(id, reason)| (name.clone(), id, reason)));
        }
        dying
    }

    /// Publishes the dead-lettered copy of `msg_id`, if it has somewhere to go, then
    /// releases `queue`'s hold on the original.
    fn dead_letter(&mut self, queue: &str, msg_id: u64, reason: DeathReason, fx: &mut Effects) {
        let copy = self.dead_letter_copy(queue, msg_id, reason);
        self.release(&[msg_id]);
        if let Some((message, targets)) = copy {
            self.enqueue_message(message, &targets, None, fx);
        }
    }

    /// The copy of `msg_id` dying in `queue` and the queues it reaches, or None when it is
    /// dropped: no dead-letter exchange, the exchange does not exist, no route, or every
    /// route closes an automatic cycle.
    fn dead_letter_copy(
        &self,
        queue: &str,
        msg_id: u64,
        reason: DeathReason,
    ) -> Option<(StoredMessage, Vec<String>)> {
        let args = &self.here.queues.get(queue)?.args;
        let dlx = args.dead_letter_exchange.as_ref()?;
        let Some(message) = self.messages.get(msg_id) else {
            // A bug, or a failed read of a disk node's store (which fails the entry).
            let read_failed = self.messages.read_failed();
            debug_assert!(read_failed, "dying message {msg_id} missing");
            return None;
        };
        let routing_key = match &args.dead_letter_routing_key {
            Some(key) => key.clone(),
            None => message.routing_key.clone(),
        };
        let death = Death {
            queue: queue.to_string(),
            reason,
            exchange: message.exchange.clone(),
            routing_keys: vec![message.routing_key.clone()],
            count: 1,
            time_ms: self.now_ms,
        };
        let mut deaths = message.deaths.clone();
        record_death(&mut deaths, death);
        let first_death = match &message.first_death {
            Some(first) => first.clone(),
            None => (queue.to_string(), reason, message.exchange.clone()),
        };
        // Unlike a client's publish, a dead letter may go through an internal exchange.
        let targets: Vec<String> = self
            .route_to_queues(dlx, &routing_key, &message.headers)?
            .into_iter()
            .filter(|q| reason == DeathReason::Rejected || !is_cycle(q, &deaths))
            .collect();
        if targets.is_empty() {
            return None;
        }
        let copy = StoredMessage {
            content: message.content.clone(),
            exchange: dlx.clone(),
            routing_key,
            n_holders: 0,
            headers: message.headers.clone(),
            deaths,
            first_death: Some(first_death),
        };
        Some((copy, targets))
    }
}

#[cfg(test)]
#[path = "dead_letter_tests.rs"]
mod tests;
