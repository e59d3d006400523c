//! Messages through the state: publish (routing, TTL, overflow), consume, settle, reject
//! and basic.get.
//!
//! A message routed to several queues is stored once with a count of its holders; each
//! queue only moves ids. Expiry is fixed at enqueue from the entry's time.

use std::borrow::Cow;

use super::command::{Content, Refusal, Reply};
use super::exchange::{route, HeaderValue};
use super::message_priority::message_priority;
use super::queue::{ConsumerKey, Offer};
use super::state::{BrokerState, Effects, StoredMessage};

/// A publish's message and its metadata, on its way to the queues.
pub(super) struct Published {
    pub content: Content,
    pub exchange: String,
    pub routing_key: String,
    pub expiration_ms: Option<u64>,
}

/// A basic.consume as the state applies it (`Command::Consume`, `ConsumeWithPriority`).
pub(super) struct Consume {
    pub consumer: ConsumerKey,
    pub prefetch: u32,
    pub no_ack: bool,
    pub exclusive: bool,
    /// `x-priority`; 0 for a plain `Consume`.
    pub priority: i32,
}

impl Consume {
    pub fn new(consumer: ConsumerKey, prefetch: u32, no_ack: bool, exclusive: bool) -> Consume {
        Consume {
            consumer,
            prefetch,
            no_ack,
            exclusive,
            priority: 0,
        }
    }
}

impl BrokerState {
    pub(super) fn publish(
        &mut self,
        message: Published,
        headers: &[(String, HeaderValue)],
        fx: &mut Effects,
    ) -> Result<Reply, Refusal> {
        let (exchange, routing_key) = (&message.exchange, &message.routing_key);
        if self
            .here
            .exchanges
            .get(exchange)
            .is_some_and(|x| x.internal)
        {
            return Err(Refusal::access_refused(format!(
                "cannot publish to internal exchange '{exchange}' in vhost '{}'",
                self.here_name
            )));
        }
        let Some(queues) = self.route_to_queues(exchange, routing_key, headers) else {
            return Err(Refusal::no_exchange(&self.here_name, exchange));
        };
        // Headers are kept only where a dead-letter copy may need them (headers exchanges).
        let dead_letters = |q: &String| {
            let entry = self.here.queues.get(q);
            entry.is_some_and(|e| e.args.dead_letter_exchange.is_some())
        };
        let headers = match queues.iter().any(dead_letters) {
            true => headers.to_vec(),
            false => Vec::new(),
        };
        let stored = StoredMessage {
            content: message.content,
            exchange: message.exchange,
            routing_key: message.routing_key,
            n_holders: 0,
            headers,
            deaths: Vec::new(),
            first_death: None,
        };
        let n_queues = queues.len() as u32;
        let (msg_id, rejected_by) =
            self.enqueue_message(stored, &queues, message.expiration_ms, fx);
        Ok(Reply::Published {
            msg_id,
            n_queues,
            rejected_by,
        })
    }

    /// The queues a message published to `exchange` reaches, each once; None when the
    /// exchange does not exist. The default exchange ("") reaches the queue named by the
    /// routing key, when there is one.
    pub(super) fn route_to_queues(
        &self,
        exchange: &str,
        routing_key: &str,
        headers: &[(String, HeaderValue)],
    ) -> Option<Vec<String>> {
        if exchange.is_empty() {
            let queue = self.here.queues.contains_key(routing_key);
            return Some(queue.then(|| routing_key.to_string()).into_iter().collect());
        }
        if !self.here.exchanges.contains_key(exchange) {
            return None;
        }
        let queues = route(&self.here.exchanges, exchange, routing_key, headers);
        Some(queues.into_iter().collect())
    }

    /// Stores `message` under a new id and offers it to `queues`; returns the id and how many
    /// queues refused it (x-overflow reject-publish*). A message no queue holds is not
    /// stored, but its id is used up all the same.
    pub(super) fn enqueue_message(
        &mut self,
        mut message: StoredMessage,
        queues: &[String],
        expiration_ms: Option<u64>,
        fx: &mut Effects,
    ) -> (u64, u32) {
        debug_assert_eq!(message.n_holders, 0);
        let msg_id = self.next_msg_id;
        self.next_msg_id += 1;
        let body_bytes = message.body_len();
        // Read from the properties only for a priority queue, and once.
        let mut priority = None;
        let (mut n_holders, mut rejected_by) = (0u32, 0u32);
        for name in queues {
            let Some(entry) = self.here.queues.get_mut(name) else {
                continue;
            };
            entry.queue.touch(self.now_ms);
            // The message lives for the shorter of the queue's and its own TTL.
            let ttl_ms = match (entry.args.message_ttl_ms, expiration_ms) {
                (Some(q), Some(m)) => Some(q.min(m)),
                (q, m) => q.or(m),
            };
            let expires_at_ms = ttl_ms.map(|ttl| self.now_ms.saturating_add(ttl));
            let mut gate = self.channel_limits.gate(name);
            let priority = match entry.queue.max_priority() {
                Some(_) => {
                    *priority.get_or_insert_with(|| message_priority(&message.content.properties))
                }
                None => 0,
            };
            match entry.queue.offer_with_priority(
                msg_id,
                expires_at_ms,
                body_bytes,
                priority,
                &mut gate,
            ) {
                Offer::Taken(deliveries) => {
                    n_holders += 1;
                    fx.deliver(name, deliveries);
                }
                Offer::Refused { dead_letter } => {
                    rejected_by += 1;
                    n_holders += u32::from(dead_letter);
                }
            }
        }
        if n_holders > 0 {
            message.n_holders = n_holders;
            self.messages.insert(msg_id, message);
        }
        (msg_id, rejected_by)
    }

    pub(super) fn settle(
        &mut self,
        queue: &str,
        msg_ids: &[u64],
        conn: u64,
        channel: u16,
        fx: &mut Effects,
    ) -> Result<Reply, Refusal> {
        let (entry, limits) = self.queue_and_limits(queue, conn)?;
        let mut settled = Vec::new();
        for &id in msg_ids {
            let (ok, more) = entry
                .queue
                .settle(id, conn, channel, &mut limits.gate(queue));
            if ok {
                settled.push(id);
            }
            fx.deliver(queue, more);
        }
        self.release(&settled);
        Ok(Reply::Done)
    }

    /// nack/reject with requeue=false: each message checked out to the channel dies in the
    /// queue (dead-lettered after the command, or dropped).
    pub(super) fn reject(
        &mut self,
        queue: &str,
        msg_ids: &[u64],
        conn: u64,
        channel: u16,
        fx: &mut Effects,
    ) -> Result<Reply, Refusal> {
        let (entry, limits) = self.queue_and_limits(queue, conn)?;
        for &id in msg_ids {
            let (_, more) = entry
                .queue
                .reject(id, conn, channel, &mut limits.gate(queue));
            fx.deliver(queue, more);
        }
        Ok(Reply::Done)
    }

    /// basic.consume; 530 when the consumer's tag is already in use on its channel (on any
    /// queue), 403 when the queue is in exclusive use (RabbitMQ's texts).
    pub(super) fn consume(
        &mut self,
        queue: &str,
        consume: Consume,
        fx: &mut Effects,
    ) -> Result<Reply, Refusal> {
        let Consume {
            consumer,
            prefetch,
            no_ack,
            exclusive,
            priority,
        } = consume;
        let in_use = self
            .here
            .queues
            .values()
            .any(|e| e.queue.consumer_keys().any(|k| *k == consumer));
        if in_use {
            return Err(Refusal {
                reply_code: 530,
                reply_text: format!(
                    "NOT_ALLOWED - attempt to reuse consumer tag '{}'",
                    consumer.tag
                ),
            });
        }
        let (entry, limits) = self.queue_and_limits(queue, consumer.conn)?;
        if entry.queue.in_exclusive_use(exclusive) {
            return Err(Refusal::access_refused(format!(
                "queue '{queue}' in vhost '{}' in exclusive use",
                self.here_name
            )));
        }
        let mut gate = limits.gate(queue);
        let deliveries = entry
            .queue
            .add_consumer_with_priority(consumer, prefetch, no_ack, exclusive, priority, &mut gate);
        fx.deliver(queue, deliveries);
        Ok(Reply::Done)
    }

    /// Credit back for `consumer` (`Command::Credit`). Fire-and-forget from the connection,
    /// so it answers nothing: a queue gone by then is no error.
    pub(super) fn credit(&mut self, queue: &str, consumer: &ConsumerKey, n: u32, fx: &mut Effects) {
        let Some(entry) = self.here.queues.get_mut(queue) else {
            return;
        };
        entry.queue.touch(self.now_ms);
        let mut gate = self.channel_limits.gate(queue);
        fx.deliver(queue, entry.queue.add_credit(consumer, n, &mut gate));
    }

    pub(super) fn get(
        &mut self,
        queue: &str,
        holder: ConsumerKey,
        no_ack: bool,
    ) -> Result<Reply, Refusal> {
        let entry = self.queue_mut(queue, holder.conn)?;
        let Some(delivery) = entry.queue.get(holder, no_ack) else {
            return Ok(Reply::GetEmpty);
        };
        let message_count = entry.queue.n_ready() as u32;
        let Some(message) = self.message(delivery.msg_id).map(Cow::into_owned) else {
            // Every queued id has a stored message (release drops one only when no queue
            // holds it); a miss is a bug, or a failed read of a disk node's store (which
            // fails the entry). Answered as empty rather than a panic in apply.
            let read_failed = self.messages.read_failed();
            debug_assert!(read_failed, "queued message {} missing", delivery.msg_id);
            return Ok(Reply::GetEmpty);
        };
        if no_ack {
            self.release(&[delivery.msg_id]);
        }
        Ok(Reply::Got {
            msg_id: delivery.msg_id,
            redelivered: delivery.redelivered,
            delivery_count: delivery.delivery_count,
            message_count,
            content: message.content,
            exchange: message.exchange,
            routing_key: message.routing_key,
            deaths: message.deaths,
            first_death: message.first_death,
        })
    }
}

#[cfg(test)]
#[path = "state_messages_tests.rs"]
mod tests;
