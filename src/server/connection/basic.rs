//! The basic class apart from publishing: qos, consume, cancel, get, ack, nack, reject,
//! recover.

use std::collections::BTreeMap;

use amq_protocol::protocol::{basic, confirm, AMQPClass};

use super::completion::Then;
use super::declare::not_implemented;
use super::wire::{
    conn_close, refuse, short, Failure, MethodId, REPLY_NOT_ALLOWED, REPLY_NOT_IMPLEMENTED,
    REPLY_PRECONDITION_FAILED,
};
use super::Conn;
use crate::broker::args;
use crate::broker::command::{Command, Refusal, Reply};
use crate::broker::exchange::field_table_pairs;
use crate::broker::queue::ConsumerKey;

const BASIC_ACK: MethodId = MethodId {
    class_id: 60,
    method_id: 80,
};
const BASIC_REJECT: MethodId = MethodId {
    class_id: 60,
    method_id: 90,
};
const BASIC_NACK: MethodId = MethodId {
    class_id: 60,
    method_id: 120,
};

/// Deliveries taken off a channel by an ack/nack/reject, grouped by queue.
type Taken = Vec<(String, Vec<u64>)>;

impl Conn {
    pub(super) async fn basic_class(
        &mut self,
        ch: u16,
        m: basic::AMQPMethod,
    ) -> Result<(), Failure> {
        use basic::AMQPMethod as M;
        match m {
            M::Publish(p) => self.start_publish(ch, p)?,
            M::Qos(q) => self.qos(ch, q).await?,
            M::Consume(c) => self.consume(ch, c).await?,
            M::Cancel(c) => self.cancel(ch, c).await?,
            M::Get(g) => self.get(ch, g).await?,
            M::Ack(a) => {
                let taken = self.take_tags(ch, a.delivery_tag, a.multiple)?;
                self.settle(ch, taken, Settle::Ack, BASIC_ACK).await?;
            }
            M::Nack(n) => {
                let taken = self.take_tags(ch, n.delivery_tag, n.multiple)?;
                let how = Settle::reject(n.requeue);
                self.settle(ch, taken, how, BASIC_NACK).await?;
            }
            M::Reject(r) => {
                let taken = self.take_tags(ch, r.delivery_tag, false)?;
                let how = Settle::reject(r.requeue);
                self.settle(ch, taken, how, BASIC_REJECT).await?;
            }
            M::Recover(r) => {
                self.recover(ch, r.requeue).await?;
                self.send_method(ch, &AMQPClass::Basic(M::RecoverOk(basic::RecoverOk {})));
            }
            M::RecoverAsync(r) => self.recover(ch, r.requeue).await?,
            other => return Err(not_implemented(&AMQPClass::Basic(other)).into()),
        }
        Ok(())
    }

    pub(super) fn confirm_class(&mut self, ch: u16, m: confirm::AMQPMethod) -> Result<(), Refusal> {
        let confirm::AMQPMethod::Select(s) = m else {
            return Err(not_implemented(&AMQPClass::Confirm(m)));
        };
        let state = self.state(ch)?;
        if state.tx.is_some() {
            return Err(refuse(
                REPLY_PRECONDITION_FAILED,
                "PRECONDITION_FAILED - cannot switch from tx to confirm mode",
            ));
        }
        state.confirms = true;
        if !s.nowait {
            let ok = confirm::AMQPMethod::SelectOk(confirm::SelectOk {});
            self.reply_in_order(ch, AMQPClass::Confirm(ok));
        }
        Ok(())
    }

    /// basic.qos, as RabbitMQ 3.3 and later read it. global=false: the prefetch of the
    /// consumers created afterwards on the channel, kept here and sent with each
    /// basic.consume. global=true: the channel's own limit over all its consumers, which the
    /// state enforces (`broker/channel_limit.rs`): qos-ok once the command is applied.
    /// amq-protocol drops prefetch_size while parsing, so the 540 RabbitMQ sends for
    /// prefetch_size != 0 cannot be sent (docs/amqp-coverage.md).
    async fn qos(&mut self, ch: u16, q: basic::Qos) -> Result<(), Refusal> {
        let prefetch = u32::from(q.prefetch_count);
        let state = self.state(ch)?;
        if q.global {
            let command = Command::ChannelQos {
                conn: self.id,
                channel: ch,
                prefetch,
            };
            // Deliveries a raise releases reach this task after the qos-ok, as for consume.
            self.propose_reply(command).await?;
        } else {
            state.prefetch = prefetch;
        }
        let ok = basic::AMQPMethod::QosOk(basic::QosOk {});
        self.reply_in_order(ch, AMQPClass::Basic(ok));
        Ok(())
    }

    async fn consume(&mut self, ch: u16, c: basic::Consume) -> Result<(), Refusal> {
        let tag = if c.consumer_tag.as_str().is_empty() {
            let n = self.next_consumer_tag;
            self.next_consumer_tag += 1;
            format!("amq.ctag-{}-{n}", self.id)
        } else {
            c.consumer_tag.as_str().to_string()
        };
        let queue = c.queue.as_str().to_string();
        let arguments = field_table_pairs(&c.arguments);
        let priority = args::consumer_priority(&self.vhost, &queue, &arguments)?;
        let state = self.state(ch)?;
        if state.consumers.contains_key(&tag) {
            return Err(refuse(
                REPLY_NOT_ALLOWED,
                format!("NOT_ALLOWED - attempt to reuse consumer tag '{tag}'"),
            ));
        }
        let prefetch = state.prefetch;
        state.consumers.insert(tag.clone(), queue.clone());
        // The state gives such a consumer a credit window (`queue.rs`'s `windowed`).
        if c.no_ack || prefetch == 0 {
            state.written.insert(tag.clone(), 0);
        }
        let consumer = ConsumerKey {
            conn: self.id,
            channel: ch,
            tag: tag.clone(),
        };
        // Deliveries caused by this command reach this task through its dispatch queue,
        // which is read only after this method returns: they follow the consume-ok.
        // A cluster below the machine version of consumer priorities ignores x-priority,
        // as it always did (a rolling upgrade); priority 0 is the plain command everywhere.
        let version = self.proposer.node().state_machine.machine_version();
        let prioritised = priority != 0 && version >= Command::QUEUE_FEATURES_MACHINE_VERSION;
        let (no_ack, exclusive) = (c.no_ack, c.exclusive);
        let command = match prioritised {
            true => Command::ConsumeWithPriority {
                queue,
                consumer,
                prefetch,
                no_ack,
                exclusive,
                priority,
            },
            false => Command::Consume {
                queue,
                consumer,
                prefetch,
                no_ack,
                exclusive,
            },
        };
        if let Err(refusal) = self.propose_reply(command).await {
            let state = self.state(ch)?;
            state.consumers.remove(&tag);
            state.written.remove(&tag);
            return Err(refusal);
        }
        if !c.nowait {
            let ok = basic::ConsumeOk {
                consumer_tag: short(&tag),
            };
            self.send_method(ch, &AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(ok)));
        }
        Ok(())
    }

    async fn cancel(&mut self, ch: u16, c: basic::Cancel) -> Result<(), Refusal> {
        let tag = c.consumer_tag.as_str().to_string();
        let state = self.state(ch)?;
        state.written.remove(&tag);
        if let Some(queue) = state.consumers.remove(&tag) {
            let consumer = ConsumerKey {
                conn: self.id,
                channel: ch,
                tag: tag.clone(),
            };
            self.propose_reply(Command::Cancel { queue, consumer })
                .await?;
        }
        if !c.nowait {
            let ok = basic::CancelOk {
                consumer_tag: short(&tag),
            };
            self.send_method(ch, &AMQPClass::Basic(basic::AMQPMethod::CancelOk(ok)));
        }
        Ok(())
    }

    async fn get(&mut self, ch: u16, g: basic::Get) -> Result<(), Refusal> {
        let holder = ConsumerKey {
            conn: self.id,
            channel: ch,
            tag: String::new(),
        };
        let queue = g.queue.as_str().to_string();
        let command = Command::Get {
            queue: queue.clone(),
            holder,
            no_ack: g.no_ack,
        };
        match self.propose_reply(command).await? {
            Reply::Got {
                msg_id,
                redelivered,
                delivery_count,
                message_count,
                content,
                exchange,
                routing_key,
                // Not rendered yet: x-death and x-first-death-* headers.
                deaths,
                first_death,
            } => {
                let got = super::deliver::Got {
                    queue,
                    msg_id,
                    redelivered,
                    delivery_count,
                    message_count,
                    exchange,
                    routing_key,
                    deaths,
                    first_death,
                    no_ack: g.no_ack,
                };
                self.basic_get_ok(ch, got, content)?
            }
            _ => {
                let empty = basic::AMQPMethod::GetEmpty(basic::GetEmpty {});
                self.send_method(ch, &AMQPClass::Basic(empty));
            }
        }
        Ok(())
    }

    /// recover: every unacked delivery of the channel goes back to its queue, redelivered.
    async fn recover(&mut self, ch: u16, requeue: bool) -> Result<(), Failure> {
        if !requeue {
            let text = "NOT_IMPLEMENTED - requeue=false";
            return Err(conn_close(REPLY_NOT_IMPLEMENTED, text).into());
        }
        // The state requeues everything checked out to the channel; its tags are void.
        self.state(ch)?.unacked.clear();
        let command = Command::Recover {
            conn: self.id,
            channel: ch,
        };
        self.propose_reply(command).await?;
        Ok(())
    }

    /// Acks, nacks and rejects are pipelined (or buffered in a transaction): only a refusal
    /// comes back, and it closes the channel.
    /// `cause`: the method, named in the channel.close of a refusal.
    async fn settle(
        &mut self,
        ch: u16,
        taken: Taken,
        how: Settle,
        cause: MethodId,
    ) -> Result<(), Refusal> {
        let commands = self.settle_commands(ch, taken, how);
        if commands.is_empty() {
            return Ok(());
        }
        if let Some(tx) = self.state(ch)?.tx.as_mut() {
            tx.buffer_settles(commands);
            return Ok(());
        }
        self.pipeline(commands, Then::Quiet { ch, cause }).await;
        Ok(())
    }

    fn settle_commands(&self, ch: u16, taken: Taken, how: Settle) -> Vec<Command> {
        let (conn, channel) = (self.id, ch);
        taken
            .into_iter()
            .map(|(queue, msg_ids)| match how {
                Settle::Requeue => Command::Requeue {
                    queue,
                    msg_ids,
                    conn,
                    channel,
                },
                Settle::Ack => Command::Settle {
                    queue,
                    msg_ids,
                    conn,
                    channel,
                },
                // Dead-lettered by the queue's x-dead-letter-exchange, or dropped.
                Settle::Drop => Command::Reject {
                    queue,
                    msg_ids,
                    conn,
                    channel,
                },
            })
            .collect()
    }

    /// Removes the deliveries acknowledged by (`tag`, `multiple`), grouped by queue.
    /// `multiple` with tag 0 means every unacked delivery of the channel.
    fn take_tags(&mut self, ch: u16, tag: u64, multiple: bool) -> Result<Taken, Refusal> {
        let state = self.state(ch)?;
        let tags: Vec<u64> = if multiple {
            let upto = if tag == 0 { u64::MAX } else { tag };
            state.unacked.range(..=upto).map(|(t, _)| *t).collect()
        } else if state.unacked.contains_key(&tag) {
            vec![tag]
        } else {
            Vec::new()
        };
        if tags.is_empty() && !(multiple && tag == 0) {
            return Err(refuse(
                REPLY_PRECONDITION_FAILED,
                format!("PRECONDITION_FAILED - unknown delivery tag {tag}"),
            ));
        }
        let mut by_queue: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for t in tags {
            if let Some((queue, msg_id)) = state.unacked.remove(&t) {
                if let Some(tx) = state.tx.as_mut() {
                    tx.remember_taken(t, (queue.clone(), msg_id));
                }
                by_queue.entry(queue).or_default().push(msg_id);
            }
        }
        Ok(by_queue.into_iter().collect())
    }
}

#[derive(Clone, Copy)]
enum Settle {
    Ack,
    Requeue,
    Drop,
}

impl Settle {
    fn reject(requeue: bool) -> Settle {
        if requeue {
            Settle::Requeue
        } else {
            Settle::Drop
        }
    }
}
