//! The broker's replicated state and its pure `apply`.
//!
//! Every node applies the same commands in log order and reaches the same state: no clock,
//! no randomness, no I/O here (architecture invariant 1). Bad input is an outcome with a
//! reply code, never a panic (STYLE habit 2). A message routed to several queues is stored
//! once, with a count of the queues still holding it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::command::{Command, Content, Outcome, Refusal, Reply};
use super::exchange::{route, Binding, Destination, Exchange, ExchangeKind};
use super::queue::{ConsumerKey, Delivery, Queue};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueueEntry {
    pub queue: Queue,
    pub exclusive_conn: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredMessage {
    pub content: Content,
    pub n_holders: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BrokerState {
    pub exchanges: BTreeMap<String, Exchange>,
    pub queues: BTreeMap<String, QueueEntry>,
    pub messages: BTreeMap<u64, StoredMessage>,
    next_msg_id: u64,
}

impl Default for BrokerState {
    /// The predeclared exchanges every RabbitMQ vhost has.
    fn default() -> Self {
        let builtin = [
            ("amq.direct", ExchangeKind::Direct),
            ("amq.fanout", ExchangeKind::Fanout),
            ("amq.topic", ExchangeKind::Topic),
            ("amq.headers", ExchangeKind::Headers),
            ("amq.match", ExchangeKind::Headers),
        ];
        let exchanges = builtin
            .iter()
            .map(|(n, k)| (n.to_string(), Exchange::new(*k)))
            .collect();
        BrokerState {
            exchanges,
            queues: BTreeMap::new(),
            messages: BTreeMap::new(),
            next_msg_id: 1,
        }
    }
}

type Applied = (Result<Reply, Refusal>, Vec<(String, Delivery)>);

impl BrokerState {
    /// Applies one command. Total: every input gives an outcome.
    pub fn apply(&mut self, command: Command) -> Outcome {
        let (reply, deliveries) = match command {
            Command::ExchangeDeclare {
                name,
                kind,
                passive,
                alternate_exchange,
            } => (
                self.exchange_declare(name, kind, passive, alternate_exchange),
                Vec::new(),
            ),
            Command::ExchangeDelete { name, if_unused } => {
                (self.exchange_delete(&name, if_unused), Vec::new())
            }
            Command::QueueDeclare {
                name,
                passive,
                exclusive_conn,
            } => (
                self.queue_declare(name, passive, exclusive_conn),
                Vec::new(),
            ),
            Command::QueueDelete {
                name,
                if_unused,
                if_empty,
            } => self.queue_delete(&name, if_unused, if_empty),
            Command::QueuePurge { name } => self.queue_purge(&name),
            Command::QueueBind {
                queue,
                exchange,
                routing_key,
            } => (self.queue_bind(queue, &exchange, routing_key), Vec::new()),
            Command::Publish {
                exchange,
                routing_key,
                mandatory: _,
                headers,
                content,
            } => self.publish(&exchange, &routing_key, &headers, content),
            Command::Consume {
                queue,
                consumer,
                prefetch,
                no_ack,
            } => self.with_queue(&queue, |q| {
                (Ok(Reply::Done), q.add_consumer(consumer, prefetch, no_ack))
            }),
            Command::Cancel { queue, consumer } => self.with_queue(&queue, |q| {
                q.cancel_consumer(&consumer);
                (Ok(Reply::Done), Vec::new())
            }),
            Command::Settle {
                queue,
                msg_ids,
                conn,
                channel,
            } => self.settle(&queue, &msg_ids, conn, channel),
            Command::Requeue {
                queue,
                msg_ids,
                conn,
                channel,
            } => self.with_queue(&queue, |q| {
                (Ok(Reply::Done), q.requeue(&msg_ids, conn, channel))
            }),
            Command::Get {
                queue,
                holder,
                no_ack,
            } => (self.get(&queue, holder, no_ack), Vec::new()),
            Command::ChannelClosed { conn, channel } => {
                (Ok(Reply::Done), self.channel_closed(conn, channel))
            }
        };
        let settled: Vec<u64> = deliveries
            .iter()
            .filter(|(_, d)| d.settled)
            .map(|(_, d)| d.msg_id)
            .collect();
        let released = settled
            .iter()
            .filter_map(|id| Some((*id, self.content(*id)?.clone())))
            .collect();
        self.release(&settled);
        Outcome {
            reply,
            deliveries,
            released,
        }
    }

    /// The body and properties of a stored message, for the node delivering it.
    pub fn content(&self, msg_id: u64) -> Option<&Content> {
        self.messages.get(&msg_id).map(|m| &m.content)
    }

    fn exchange_declare(
        &mut self,
        name: String,
        kind: ExchangeKind,
        passive: bool,
        alternate_exchange: Option<String>,
    ) -> Result<Reply, Refusal> {
        match self.exchanges.get(&name) {
            Some(x)
                if passive || (x.kind == kind && x.alternate_exchange == alternate_exchange) =>
            {
                Ok(Reply::Done)
            }
            Some(_) => Err(Refusal::precondition_failed(format!(
                "inequivalent arg 'type' for exchange '{name}'"
            ))),
            None if passive => Err(Refusal::not_found(&format!("exchange '{name}'"))),
            None => {
                let mut x = Exchange::new(kind);
                x.alternate_exchange = alternate_exchange;
                self.exchanges.insert(name, x);
                Ok(Reply::Done)
            }
        }
    }

    fn exchange_delete(&mut self, name: &str, if_unused: bool) -> Result<Reply, Refusal> {
        let Some(x) = self.exchanges.get(name) else {
            return Err(Refusal::not_found(&format!("exchange '{name}'")));
        };
        if if_unused && !x.bindings.is_empty() {
            return Err(Refusal::precondition_failed(format!(
                "exchange '{name}' in use"
            )));
        }
        self.exchanges.remove(name);
        Ok(Reply::Done)
    }

    fn queue_declare(
        &mut self,
        name: String,
        passive: bool,
        exclusive_conn: Option<u64>,
    ) -> Result<Reply, Refusal> {
        if let Some(entry) = self.queues.get(&name) {
            if entry.exclusive_conn.is_some() && entry.exclusive_conn != exclusive_conn {
                return Err(Refusal::resource_locked(&name));
            }
            return Ok(declared(name, &entry.queue));
        }
        if passive {
            return Err(Refusal::not_found(&format!("queue '{name}'")));
        }
        let entry = QueueEntry {
            queue: Queue::default(),
            exclusive_conn,
        };
        let reply = declared(name.clone(), &entry.queue);
        self.queues.insert(name, entry);
        Ok(reply)
    }

    fn queue_delete(&mut self, name: &str, if_unused: bool, if_empty: bool) -> Applied {
        let Some(entry) = self.queues.get(name) else {
            return (
                Err(Refusal::not_found(&format!("queue '{name}'"))),
                Vec::new(),
            );
        };
        if if_unused && entry.queue.n_consumers() > 0 {
            return (
                Err(Refusal::precondition_failed(format!(
                    "queue '{name}' in use"
                ))),
                Vec::new(),
            );
        }
        if if_empty && entry.queue.n_ready() + entry.queue.n_unacked() > 0 {
            return (
                Err(Refusal::precondition_failed(format!(
                    "queue '{name}' not empty"
                ))),
                Vec::new(),
            );
        }
        let Some(entry) = self.queues.remove(name) else {
            return (Ok(Reply::Done), Vec::new());
        };
        let ids = entry.queue.all_msg_ids();
        let message_count = entry.queue.n_ready() as u32;
        self.release(&ids);
        for x in self.exchanges.values_mut() {
            x.bindings
                .retain(|b| b.destination != Destination::Queue(name.to_string()));
        }
        (Ok(Reply::Counted { message_count }), Vec::new())
    }

    fn queue_purge(&mut self, name: &str) -> Applied {
        let Some(entry) = self.queues.get_mut(name) else {
            return (
                Err(Refusal::not_found(&format!("queue '{name}'"))),
                Vec::new(),
            );
        };
        let ids = entry.queue.purge();
        self.release(&ids);
        (
            Ok(Reply::Counted {
                message_count: ids.len() as u32,
            }),
            Vec::new(),
        )
    }

    fn queue_bind(
        &mut self,
        queue: String,
        exchange: &str,
        routing_key: String,
    ) -> Result<Reply, Refusal> {
        if !self.queues.contains_key(&queue) {
            return Err(Refusal::not_found(&format!("queue '{queue}'")));
        }
        let Some(x) = self.exchanges.get_mut(exchange) else {
            return Err(Refusal::not_found(&format!("exchange '{exchange}'")));
        };
        let destination = Destination::Queue(queue);
        if !x
            .bindings
            .iter()
            .any(|b| b.destination == destination && b.routing_key == routing_key)
        {
            x.bindings.push(Binding {
                destination,
                routing_key,
                match_all: true,
                match_headers: Vec::new(),
            });
        }
        Ok(Reply::Done)
    }

    fn publish(
        &mut self,
        exchange: &str,
        routing_key: &str,
        headers: &[(String, super::exchange::HeaderValue)],
        content: Content,
    ) -> Applied {
        let queues: Vec<String> = if exchange.is_empty() {
            self.queues
                .contains_key(routing_key)
                .then(|| routing_key.to_string())
                .into_iter()
                .collect()
        } else if !self.exchanges.contains_key(exchange) {
            return (
                Err(Refusal::not_found(&format!("exchange '{exchange}'"))),
                Vec::new(),
            );
        } else {
            route(&self.exchanges, exchange, routing_key, headers)
                .into_iter()
                .collect()
        };
        let msg_id = self.next_msg_id;
        self.next_msg_id += 1;
        let n_queues = queues.len() as u32;
        if n_queues > 0 {
            self.messages.insert(
                msg_id,
                StoredMessage {
                    content,
                    n_holders: n_queues,
                },
            );
        }
        let mut deliveries = Vec::new();
        for name in queues {
            if let Some(entry) = self.queues.get_mut(&name) {
                deliveries.extend(
                    entry
                        .queue
                        .enqueue(msg_id)
                        .into_iter()
                        .map(|d| (name.clone(), d)),
                );
            }
        }
        (Ok(Reply::Published { msg_id, n_queues }), deliveries)
    }

    fn settle(&mut self, queue: &str, msg_ids: &[u64], conn: u64, channel: u16) -> Applied {
        let Some(entry) = self.queues.get_mut(queue) else {
            return (
                Err(Refusal::not_found(&format!("queue '{queue}'"))),
                Vec::new(),
            );
        };
        let mut settled = Vec::new();
        let mut deliveries = Vec::new();
        for &id in msg_ids {
            let (ok, more) = entry.queue.settle(id, conn, channel);
            if ok {
                settled.push(id);
            }
            deliveries.extend(more.into_iter().map(|d| (queue.to_string(), d)));
        }
        self.release(&settled);
        (Ok(Reply::Done), deliveries)
    }

    fn get(&mut self, queue: &str, holder: ConsumerKey, no_ack: bool) -> Result<Reply, Refusal> {
        let Some(entry) = self.queues.get_mut(queue) else {
            return Err(Refusal::not_found(&format!("queue '{queue}'")));
        };
        let Some(delivery) = entry.queue.get(holder, no_ack) else {
            return Ok(Reply::GetEmpty);
        };
        let message_count = entry.queue.n_ready() as u32;
        let Some(content) = self.content(delivery.msg_id).cloned() else {
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
            message_count,
            content,
        })
    }

    fn channel_closed(&mut self, conn: u64, channel: u16) -> Vec<(String, Delivery)> {
        let mut deliveries = Vec::new();
        for (name, entry) in self.queues.iter_mut() {
            deliveries.extend(
                entry
                    .queue
                    .channel_closed(conn, channel)
                    .into_iter()
                    .map(|d| (name.clone(), d)),
            );
        }
        deliveries
    }

    fn with_queue(
        &mut self,
        name: &str,
        f: impl FnOnce(&mut Queue) -> (Result<Reply, Refusal>, Vec<Delivery>),
    ) -> Applied {
        match self.queues.get_mut(name) {
            Some(entry) => {
                let (reply, deliveries) = f(&mut entry.queue);
                (
                    reply,
                    deliveries
                        .into_iter()
                        .map(|d| (name.to_string(), d))
                        .collect(),
                )
            }
            None => (
                Err(Refusal::not_found(&format!("queue '{name}'"))),
                Vec::new(),
            ),
        }
    }

    /// One queue let go of each message; a message no queue holds is dropped.
    fn release(&mut self, msg_ids: &[u64]) {
        for id in msg_ids {
            if let Some(m) = self.messages.get_mut(id) {
                m.n_holders = m.n_holders.saturating_sub(1);
                if m.n_holders == 0 {
                    self.messages.remove(id);
                }
            }
        }
    }
}

fn declared(name: String, queue: &Queue) -> Reply {
    Reply::QueueDeclared {
        name,
        message_count: queue.n_ready() as u32,
        consumer_count: queue.n_consumers() as u32,
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
