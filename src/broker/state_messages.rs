//! Messages through the state: publish (routing, TTL), settle and basic.get.
//!
//! A message routed to several queues is stored once with a count of its holders; each
//! queue only moves ids. Expiry is fixed at enqueue from the entry's time.

use super::command::{Content, Refusal, Reply};
use super::exchange::{route, HeaderValue};
use super::queue::ConsumerKey;
use super::state::{BrokerState, Effects, StoredMessage};

/// A publish's message and its metadata, on its way to the queues.
pub(super) struct Published {
    pub content: Content,
    pub exchange: String,
    pub routing_key: String,
    pub expiration_ms: Option<u64>,
}

impl BrokerState {
    pub(super) fn publish(
        &mut self,
        message: Published,
        headers: &[(String, HeaderValue)],
        fx: &mut Effects,
    ) -> Result<Reply, Refusal> {
        let (exchange, routing_key) = (&message.exchange, &message.routing_key);
        let queues: Vec<String> = if exchange.is_empty() {
            self.queues
                .contains_key(routing_key)
                .then(|| routing_key.to_string())
                .into_iter()
                .collect()
        } else {
            let Some(x) = self.exchanges.get(exchange) else {
                return Err(Refusal::no_exchange(exchange));
            };
            if x.internal {
                return Err(Refusal::access_refused(format!(
                    "cannot publish to internal exchange '{exchange}' in vhost '/'"
                )));
            }
            route(&self.exchanges, exchange, routing_key, headers)
                .into_iter()
                .collect()
        };
        let msg_id = self.next_msg_id;
        self.next_msg_id += 1;
        let n_queues = queues.len() as u32;
        if n_queues > 0 {
            let stored = StoredMessage {
                content: message.content,
                exchange: message.exchange,
                routing_key: message.routing_key,
                n_holders: n_queues,
            };
            self.messages.insert(msg_id, stored);
        }
        for name in queues {
            if let Some(entry) = self.queues.get_mut(&name) {
                entry.queue.touch(self.now_ms);
                // The message lives for the shorter of the queue's and its own TTL.
                let ttl_ms = match (entry.args.message_ttl_ms, message.expiration_ms) {
                    (Some(q), Some(m)) => Some(q.min(m)),
                    (q, m) => q.or(m),
                };
                let expires_at_ms = ttl_ms.map(|ttl| self.now_ms.saturating_add(ttl));
                let deliveries = entry.queue.enqueue(msg_id, expires_at_ms);
                fx.deliver(&name, deliveries);
            }
        }
        Ok(Reply::Published { msg_id, n_queues })
    }

    pub(super) fn settle(
        &mut self,
        queue: &str,
        msg_ids: &[u64],
        conn: u64,
        channel: u16,
        fx: &mut Effects,
    ) -> Result<Reply, Refusal> {
        let entry = self.queue_mut(queue, conn)?;
        let mut settled = Vec::new();
        for &id in msg_ids {
            let (ok, more) = entry.queue.settle(id, conn, channel);
            if ok {
                settled.push(id);
            }
            fx.deliver(queue, more);
        }
        self.release(&settled);
        Ok(Reply::Done)
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
        let Some(message) = self.message(delivery.msg_id).cloned() else {
            // Every queued id has a stored message (release drops one only when no queue
            // holds it); a miss is a bug, answered as empty rather than a panic in apply.
            debug_assert!(false, "queued message {} without content", delivery.msg_id);
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
        })
    }
}
