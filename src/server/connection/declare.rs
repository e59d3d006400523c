//! The exchange and queue classes: declare, delete, bind, purge. Each waits for its commit
//! and answers with its -ok (unless nowait).

use amq_protocol::protocol::{exchange, queue, AMQPClass};
use amq_protocol::types::AMQPValue;

use super::wire::{refuse, short, REPLY_COMMAND_INVALID};
use super::Conn;
use crate::broker::command::{Command, Refusal, Reply};
use crate::broker::exchange::ExchangeKind;

impl Conn {
    pub(super) async fn exchange_class(
        &mut self,
        ch: u16,
        m: exchange::AMQPMethod,
    ) -> Result<(), Refusal> {
        use exchange::AMQPMethod as M;
        let (command, nowait, ok) = match m {
            M::Declare(d) => {
                let Some(kind) = ExchangeKind::parse(d.kind.as_str()) else {
                    return Err(refuse(
                        REPLY_COMMAND_INVALID,
                        format!(
                            "COMMAND_INVALID - unknown exchange type '{}'",
                            d.kind.as_str()
                        ),
                    ));
                };
                let alternate_exchange = match d.arguments.inner().get("alternate-exchange") {
                    Some(AMQPValue::LongString(s)) => Some(s.to_string()),
                    Some(AMQPValue::ShortString(s)) => Some(s.as_str().to_string()),
                    _ => None,
                };
                let command = Command::ExchangeDeclare {
                    name: d.exchange.as_str().to_string(),
                    kind,
                    passive: d.passive,
                    alternate_exchange,
                };
                (command, d.nowait, M::DeclareOk(exchange::DeclareOk {}))
            }
            M::Delete(d) => {
                let command = Command::ExchangeDelete {
                    name: d.exchange.as_str().to_string(),
                    if_unused: d.if_unused,
                };
                (command, d.nowait, M::DeleteOk(exchange::DeleteOk {}))
            }
            other => return Err(not_implemented(&AMQPClass::Exchange(other))),
        };
        self.propose_reply(command).await?;
        if !nowait {
            self.send_method(ch, &AMQPClass::Exchange(ok));
        }
        Ok(())
    }

    pub(super) async fn queue_class(
        &mut self,
        ch: u16,
        m: queue::AMQPMethod,
    ) -> Result<(), Refusal> {
        use queue::AMQPMethod as M;
        let (command, nowait) = match m {
            M::Declare(d) => {
                let name = if d.queue.as_str().is_empty() {
                    let n = self.next_queue_name;
                    self.next_queue_name += 1;
                    format!("amq.gen-{}-{n}", self.id)
                } else {
                    d.queue.as_str().to_string()
                };
                let command = Command::QueueDeclare {
                    name,
                    passive: d.passive,
                    exclusive_conn: d.exclusive.then_some(self.id),
                };
                (command, d.nowait)
            }
            M::Bind(b) => {
                let command = Command::QueueBind {
                    queue: b.queue.as_str().to_string(),
                    exchange: b.exchange.as_str().to_string(),
                    routing_key: b.routing_key.as_str().to_string(),
                };
                (command, b.nowait)
            }
            M::Purge(p) => {
                let name = p.queue.as_str().to_string();
                (Command::QueuePurge { name }, p.nowait)
            }
            M::Delete(d) => {
                let command = Command::QueueDelete {
                    name: d.queue.as_str().to_string(),
                    if_unused: d.if_unused,
                    if_empty: d.if_empty,
                };
                (command, d.nowait)
            }
            other => return Err(not_implemented(&AMQPClass::Queue(other))),
        };
        let is_bind = matches!(command, Command::QueueBind { .. });
        let is_purge = matches!(command, Command::QueuePurge { .. });
        let reply = self.propose_reply(command).await?;
        if nowait {
            return Ok(());
        }
        let ok = match reply {
            Reply::QueueDeclared {
                name,
                message_count,
                consumer_count,
            } => M::DeclareOk(queue::DeclareOk {
                queue: short(&name),
                message_count,
                consumer_count,
            }),
            Reply::Counted { message_count } if is_purge => {
                M::PurgeOk(queue::PurgeOk { message_count })
            }
            Reply::Counted { message_count } => M::DeleteOk(queue::DeleteOk { message_count }),
            _ if is_bind => M::BindOk(queue::BindOk {}),
            _ => return Ok(()),
        };
        self.send_method(ch, &AMQPClass::Queue(ok));
        Ok(())
    }
}

/// A method Warren does not implement (yet): a channel error 540.
pub(super) fn not_implemented(method: &AMQPClass) -> Refusal {
    refuse(
        super::wire::REPLY_NOT_IMPLEMENTED,
        format!("NOT_IMPLEMENTED - {:?}", method.get_amqp_method_id()),
    )
}
