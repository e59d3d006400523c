//! The broker's replicated state and its pure `apply`.
//!
//! Every node applies the same commands in log order and reaches the same state: no clock,
//! no randomness, no I/O here (architecture invariant 1), but for the reads of a disk node's
//! stored messages behind [`Messages`], which never fail silently. Bad input is an outcome
//! with a reply code, never a panic (STYLE habit 2). A message routed to several queues is
//! stored once, with a count of the queues still holding it.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::access::Access;
use super::args::{Arguments, QueueArgs};
use super::channel_limit::ChannelLimits;
use super::command::{Command, Content, Outcome, Refusal, Reply};
use super::dead_letter::{Death, DeathReason};
use super::exchange::{Destination, Exchange, HeaderValue};
use super::messages::Messages;
use super::queue::{ConsumerKey, Delivery, Queue};
use super::ready::RequeueTo;
use super::state_declare::QueueDeclare;
use super::state_messages::{Consume, Published};
use super::vhost::{scope_of, Scope, Vhost, DEFAULT_VHOST};

/// A queue and what it was declared with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueueEntry {
    pub queue: Queue,
    pub durable: bool,
    pub auto_delete: bool,
    pub exclusive_conn: Option<u64>,
    /// The declare arguments as received, for the equivalence check of a redeclare.
    pub arguments: Arguments,
    /// The same arguments, parsed: what the queue acts on.
    pub args: QueueArgs,
}

/// A message as the state stores it: once, however many queues hold it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredMessage {
    pub content: Content,
    /// Where it was published: basic.deliver and basic.get-ok carry both.
    pub exchange: String,
    pub routing_key: String,
    /// How many queues hold it (ready, unacked or dying); at 0 it is dropped.
    pub n_holders: u32,
    /// The publish's headers, for routing a dead-lettered copy through a headers exchange;
    /// kept only when a queue it reached has a dead-letter exchange (else empty).
    pub headers: Vec<(String, HeaderValue)>,
    /// Its deaths so far, newest first (the front end's `x-death`); empty unless this is a
    /// dead-lettered copy.
    pub deaths: Vec<Death>,
    /// (queue, reason, exchange) of its first death: `x-first-death-queue`, `-reason` and
    /// `-exchange`.
    pub first_death: Option<(String, DeathReason, String)>,
}

impl StoredMessage {
    pub fn body_len(&self) -> u64 {
        self.content.body.len() as u64
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BrokerState {
    /// Every vhost's exchanges and queues (`vhost.rs`).
    pub vhosts: BTreeMap<String, Vhost>,
    /// Users and their permissions (`access.rs`).
    pub access: Access,
    /// Stored messages: in memory, or (a disk node) in its cold store (`messages.rs`).
    pub messages: Messages,
    pub(super) next_msg_id: u64,
    /// The leader timestamp of the latest entry applied (never goes back).
    pub(super) now_ms: u64,
    /// Channel prefetch limits (basic.qos global=true) and their use.
    pub channel_limits: ChannelLimits,
    /// The exchanges and queues of the vhost a command is being applied in, moved out of
    /// `vhosts` for the time of the command (`vhost.rs`); empty between commands.
    #[serde(skip, default = "Vhost::empty")]
    pub(super) here: Vhost,
    /// The name of the vhost in `here`, for reply texts.
    #[serde(skip)]
    pub(super) here_name: String,
    /// The machine version the cluster runs, which picks the rules where versions differ
    /// (`Command::COMPAT_MACHINE_VERSION`). The state machine sets it from its replicated
    /// copy before every entry, so it is not part of the state's layout; a state on its own
    /// follows the newest rules.
    #[serde(skip, default = "newest_machine_version")]
    pub machine_version: u16,
}

fn newest_machine_version() -> u16 {
    Command::NEWEST_MACHINE_VERSION
}

impl Default for BrokerState {
    /// A fresh cluster's state: the vhost `/` with its predeclared exchanges, no user yet
    /// (the first leader writes the default one: `Command::InitAccess`).
    fn default() -> Self {
        let vhosts = [(DEFAULT_VHOST.to_string(), Vhost::with_builtins())];
        BrokerState {
            vhosts: vhosts.into_iter().collect(),
            access: Access::default(),
            messages: Messages::default(),
            next_msg_id: 1,
            now_ms: 0,
            channel_limits: ChannelLimits::default(),
            here: Vhost::empty(),
            here_name: String::new(),
            machine_version: newest_machine_version(),
        }
    }
}

/// Equal states hold the same; the working place (`here`) is empty between commands and
/// its name a leftover, so neither counts.
impl PartialEq for BrokerState {
    fn eq(&self, other: &BrokerState) -> bool {
        self.vhosts == other.vhosts
            && self.access == other.access
            && self.messages == other.messages
            && self.next_msg_id == other.next_msg_id
            && self.now_ms == other.now_ms
            && self.channel_limits == other.channel_limits
    }
}

/// What one command caused besides its reply, gathered while it is applied.
#[derive(Debug, Default)]
pub(super) struct Effects {
    pub deliveries: Vec<(String, Delivery)>,
    pub cancelled: Vec<(String, ConsumerKey)>,
}

impl Effects {
    pub fn deliver(&mut self, queue: &str, deliveries: Vec<Delivery>) {
        let named = deliveries.into_iter().map(|d| (queue.to_string(), d));
        self.deliveries.extend(named);
    }
}

impl BrokerState {
    /// Applies one command at `now_ms`, the leader's timestamp in its log entry (the only
    /// clock apply may read). Total: every input gives an outcome.
    pub fn apply(&mut self, now_ms: u64, command: Command) -> Outcome {
        // Leader clocks may step back across an election; message expiry must not.
        self.now_ms = self.now_ms.max(now_ms);
        match scope_of(command) {
            (Scope::In(vhost), command) => self.apply_in(&vhost, command),
            (Scope::Everywhere, command) => self.apply_everywhere(command),
            (Scope::Cluster, command) => self.apply_cluster_wide(command),
        }
    }

    /// Applies a command in the vhost in the working place (`vhost.rs`).
    pub(super) fn apply_here(&mut self, command: Command) -> Outcome {
        let mut fx = Effects::default();
        let reply = self.dispatch(command, &mut fx);
        self.finish(reply, fx)
    }

    /// What follows every command in a vhost: waiting queues served, dying messages
    /// dead-lettered, messages let go of while delivering released.
    pub(super) fn finish(&mut self, reply: Result<Reply, Refusal>, mut fx: Effects) -> Outcome {
        // Before dead-lettering: serving may expire messages, dead-lettering frees no credit.
        self.serve_waiting(&mut fx);
        self.dead_letter_dying(&mut fx);
        let settled: Vec<u64> = fx
            .deliveries
            .iter()
            .filter(|(_, d)| d.settled)
            .map(|(_, d)| d.msg_id)
            .collect();
        // A disk node's cold message stays readable until after the entry (its record is
        // deleted then): only one in memory must travel with the outcome.
        let released = settled
            .iter()
            .filter_map(|id| Some((*id, self.messages.get_hot(*id)?.clone())))
            .collect();
        self.release(&settled);
        Outcome {
            reply,
            deliveries: fx.deliveries,
            released,
            cancelled: fx.cancelled,
            vhost_deleted: None,
        }
    }

    fn dispatch(&mut self, command: Command, fx: &mut Effects) -> Result<Reply, Refusal> {
        match command {
            Command::ExchangeDeclare {
                name,
                kind,
                passive,
                durable,
                auto_delete,
                internal,
                arguments,
            } => {
                let mut x = Exchange::new(kind);
                x.durable = durable;
                x.auto_delete = auto_delete;
                x.internal = internal;
                x.alternate_exchange = super::args::alternate_exchange(&arguments);
                self.exchange_declare(name, x, passive)
            }
            Command::ExchangeDelete { name, if_unused } => self.exchange_delete(&name, if_unused),
            Command::QueueDeclare {
                name,
                passive,
                durable,
                exclusive,
                auto_delete,
                arguments,
                conn,
            } => {
                let declare = QueueDeclare {
                    durable,
                    exclusive,
                    auto_delete,
                    arguments,
                    conn,
                };
                self.queue_declare(name, passive, declare)
            }
            Command::QueueDelete {
                name,
                if_unused,
                if_empty,
                conn,
            } => self.queue_delete(&name, if_unused, if_empty, conn, fx),
            Command::QueuePurge { name, conn } => self.queue_purge(&name, conn),
            Command::QueueBind {
                queue,
                exchange,
                routing_key,
                arguments,
                conn,
            } => {
                let destination = Destination::Queue(queue);
                self.bind(&exchange, destination, routing_key, arguments, conn, true)
            }
            Command::QueueUnbind {
                queue,
                exchange,
                routing_key,
                arguments,
                conn,
            } => {
                let destination = Destination::Queue(queue);
                self.bind(&exchange, destination, routing_key, arguments, conn, false)
            }
            Command::ExchangeBind {
                destination,
                source,
                routing_key,
                arguments,
            } => {
                let destination = Destination::Exchange(destination);
                self.bind(&source, destination, routing_key, arguments, 0, true)
            }
            Command::ExchangeUnbind {
                destination,
                source,
                routing_key,
                arguments,
            } => {
                let destination = Destination::Exchange(destination);
                self.bind(&source, destination, routing_key, arguments, 0, false)
            }
            Command::Publish {
                exchange,
                routing_key,
                mandatory: _,
                headers,
                content,
                expiration_ms,
            } => {
                let message = Published {
                    content,
                    exchange,
                    routing_key,
                    expiration_ms,
                };
                self.publish(message, &headers, fx)
            }
            Command::Consume {
                queue,
                consumer,
                prefetch,
                no_ack,
                exclusive,
            } => {
                let consume = Consume::new(consumer, prefetch, no_ack, exclusive);
                self.consume(&queue, consume, fx)
            }
            Command::ConsumeWithPriority {
                queue,
                consumer,
                prefetch,
                no_ack,
                exclusive,
                priority,
            } => {
                let consume = Consume {
                    priority,
                    ..Consume::new(consumer, prefetch, no_ack, exclusive)
                };
                self.consume(&queue, consume, fx)
            }
            Command::Cancel { queue, consumer } => {
                let (entry, limits) = self.queue_and_limits(&queue, consumer.conn)?;
                entry.queue.cancel_consumer(&consumer);
                // The next consumer of a single-active-consumer queue takes over at once.
                // (In any other queue a cancel frees nothing: no assignment, as before.)
                if entry.queue.single_active() {
                    let deliveries = entry.queue.assign(&mut limits.gate(&queue));
                    fx.deliver(&queue, deliveries);
                }
                self.auto_delete_queues(fx);
                Ok(Reply::Done)
            }
            Command::Settle {
                queue,
                msg_ids,
                conn,
                channel,
            } => self.settle(&queue, &msg_ids, conn, channel, fx),
            Command::Requeue {
                queue,
                msg_ids,
                conn,
                channel,
            } => {
                let to = RequeueTo::at(self.machine_version);
                let (entry, limits) = self.queue_and_limits(&queue, conn)?;
                let mut gate = limits.gate(&queue);
                let deliveries = entry.queue.requeue(&msg_ids, conn, channel, to, &mut gate);
                fx.deliver(&queue, deliveries);
                Ok(Reply::Done)
            }
            Command::Get {
                queue,
                holder,
                no_ack,
            } => self.get(&queue, holder, no_ack),
            Command::ChannelClosed { conn, channel } => {
                self.channel_closed(conn, channel, fx);
                Ok(Reply::Done)
            }
            Command::ConnectionClosed { conn } => {
                self.connection_closed(conn, fx);
                Ok(Reply::Done)
            }
            // Only an entry of the deciding leader's term gets here (the state machine
            // drops the others).
            Command::NodeDown { conns, .. } => {
                conns
                    .into_iter()
                    .for_each(|c| self.connection_closed(c, fx));
                Ok(Reply::Done)
            }
            // The state machine's, not the model's (`raft/envelope.rs`).
            Command::SetMachineVersion { .. } => Ok(Reply::Done),
            Command::Tick => {
                let now_ms = self.now_ms;
                self.here
                    .queues
                    .values_mut()
                    .for_each(|e| e.queue.touch(now_ms));
                Ok(Reply::Done)
            }
            Command::Recover { conn, channel } => {
                let to = RequeueTo::at(self.machine_version);
                for (name, entry) in self.here.queues.iter_mut() {
                    let mut gate = self.channel_limits.gate(name);
                    fx.deliver(name, entry.queue.recover(conn, channel, to, &mut gate));
                }
                Ok(Reply::Done)
            }
            Command::Reject {
                queue,
                msg_ids,
                conn,
                channel,
            } => self.reject(&queue, &msg_ids, conn, channel, fx),
            Command::ChannelQos {
                conn,
                channel,
                prefetch,
            } => {
                self.channel_qos((conn, channel), prefetch, fx);
                Ok(Reply::Done)
            }
            Command::Credit { queue, consumer, n } => {
                self.credit(&queue, &consumer, n, fx);
                Ok(Reply::Done)
            }
            // `scope_of` unwraps one InVhost and routes the cluster-wide commands elsewhere:
            // what is left is a vhost inside a vhost, or a bug.
            other => Err(Refusal::precondition_failed(format!(
                "not a command for a vhost: {}",
                other.name()
            ))),
        }
    }

    /// The earliest time a queue's head message expires: when a `Tick` has work to do.
    pub fn next_expiry(&self) -> Option<u64> {
        self.all_queues()
            .filter_map(|(_, _, e)| e.queue.head_expires_at())
            .min()
    }

    /// Every queue of every vhost: (vhost, name, entry).
    pub fn all_queues(&self) -> impl Iterator<Item = (&str, &str, &QueueEntry)> {
        self.vhosts.iter().flat_map(|(v, vhost)| {
            vhost
                .queues
                .iter()
                .map(move |(name, entry)| (v.as_str(), name.as_str(), entry))
        })
    }

    /// Queue `name` of vhost `vhost`.
    pub fn queue(&self, vhost: &str, name: &str) -> Option<&QueueEntry> {
        self.vhosts.get(vhost)?.queues.get(name)
    }

    /// Every connection the state refers to: consumers, checked-out messages and exclusive
    /// queue owners (so a restarted node can close those of its earlier lives).
    pub fn connections(&self) -> std::collections::BTreeSet<u64> {
        let mut conns = std::collections::BTreeSet::new();
        for (_, _, entry) in self.all_queues() {
            conns.extend(entry.queue.holder_conns());
            conns.extend(entry.exclusive_conn);
        }
        conns.extend(self.channel_limits.conns());
        conns
    }

    /// Whether `conn` is in [`BrokerState::connections`]. Consumers, exclusive owners and
    /// channel limits are looked at first: they are few, and a connection that settles
    /// usually still has a consumer.
    pub fn names_conn(&self, conn: u64) -> bool {
        let queues = || self.all_queues().map(|(_, _, entry)| entry);
        queues().any(|e| e.exclusive_conn == Some(conn) || e.queue.has_consumer_of(conn))
            || self.channel_limits.conns().any(|c| c == conn)
            || queues().any(|e| e.queue.has_checkout_of(conn))
    }

    /// A stored message, read from the node's cold store when it is there (a failed read is
    /// recorded in `messages` and gives `None`).
    pub fn message(&self, msg_id: u64) -> Option<Cow<'_, StoredMessage>> {
        self.messages.get(msg_id)
    }

    /// The id the next stored message gets: the messages a command stored have ids from
    /// this value before it to this value after it.
    pub fn next_msg_id(&self) -> u64 {
        self.next_msg_id
    }

    /// A copy for a snapshot build: everything in memory is copied, a disk node's cold
    /// messages are not ([`Messages::view`]: the build reads them from the store, which only
    /// ever gains records with ids from `next_msg_id` on).
    pub fn copy_for_build(&self) -> BrokerState {
        BrokerState {
            vhosts: self.vhosts.clone(),
            access: self.access.clone(),
            messages: self.messages.view(self.next_msg_id),
            next_msg_id: self.next_msg_id,
            now_ms: self.now_ms,
            channel_limits: self.channel_limits.clone(),
            here: Vhost::empty(),
            here_name: String::new(),
            machine_version: self.machine_version,
        }
    }

    /// Feeds a canonical encoding of the state to `out`, every message's body included,
    /// wherever the node keeps it: equal states give equal bytes on every node.
    pub fn digest_into(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        let head = (
            &self.vhosts,
            &self.access,
            self.next_msg_id,
            self.now_ms,
            &self.channel_limits,
        );
        postcard::to_io(&head, &mut *out).map_err(std::io::Error::other)?;
        // What the layout above leaves out (consumer priorities), only when there is any:
        // a state without it digests as an older build's does.
        let extras = self.extras();
        if !extras.is_empty() {
            postcard::to_io(&extras, &mut *out).map_err(std::io::Error::other)?;
        }
        for item in self.messages.iter() {
            let (id, m) = item?;
            let meta = (
                id,
                &m.content.properties,
                &m.exchange,
                &m.routing_key,
                m.n_holders,
                &m.headers,
                &m.deaths,
                &m.first_death,
                m.body_len(),
            );
            postcard::to_io(&meta, &mut *out).map_err(std::io::Error::other)?;
            out.write_all(&m.content.body)?;
        }
        Ok(())
    }

    /// The queue `name` for a command from connection `conn`: 404 when it does not exist,
    /// 405 when another connection owns it exclusively.
    pub(super) fn queue_mut(&mut self, name: &str, conn: u64) -> Result<&mut QueueEntry, Refusal> {
        self.queue_and_limits(name, conn).map(|(entry, _)| entry)
    }

    /// As [`BrokerState::queue_mut`], with the channel limits beside it, for the commands
    /// that deliver or take deliveries back.
    pub(super) fn queue_and_limits(
        &mut self,
        name: &str,
        conn: u64,
    ) -> Result<(&mut QueueEntry, &mut ChannelLimits), Refusal> {
        let entry = self
            .here
            .queues
            .get_mut(name)
            .ok_or_else(|| Refusal::no_queue(&self.here_name, name))?;
        entry.queue.touch(self.now_ms);
        if entry.exclusive_conn.is_some_and(|owner| owner != conn) {
            return Err(Refusal::resource_locked(&self.here_name, name));
        }
        Ok((entry, &mut self.channel_limits))
    }

    /// One queue let go of each message; a message no queue holds is dropped.
    pub(super) fn release(&mut self, msg_ids: &[u64]) {
        for id in msg_ids {
            self.messages.release(*id);
        }
    }
}

pub(super) fn declared(name: String, queue: &Queue) -> Reply {
    Reply::QueueDeclared {
        name,
        message_count: queue.n_ready() as u32,
        consumer_count: queue.n_consumers() as u32,
    }
}

#[cfg(test)]
#[path = "state_prop_tests.rs"]
mod state_prop_tests;
#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
