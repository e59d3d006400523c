//! The exchange and queue classes: declare, delete, bind, unbind, purge. Each waits for its
//! commit and answers with its -ok (unless nowait).

use amq_protocol::protocol::{exchange, queue, AMQPClass};

use super::wire::{refuse, short, REPLY_ACCESS_REFUSED, REPLY_PRECONDITION_FAILED};
use super::Conn;
use crate::broker::command::{Command, Refusal, Reply};
use crate::broker::exchange::{field_table_pairs, ExchangeKind};

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
                        REPLY_PRECONDITION_FAILED,
                        format!(
                            "PRECONDITION_FAILED - invalid exchange type '{}'",
                            d.kind.as_str()
                        ),
                    ));
                };
                let command = Command::ExchangeDeclare {
                    name: d.exchange.as_str().to_string(),
                    kind,
                    passive: d.passive,
                    durable: d.durable,
                    auto_delete: d.auto_delete,
                    internal: d.internal,
                    arguments: field_table_pairs(&d.arguments),
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
            M::Bind(b) => {
                let command = Command::ExchangeBind {
                    destination: b.destination.as_str().to_string(),
                    source: b.source.as_str().to_string(),
                    routing_key: b.routing_key.as_str().to_string(),
                    arguments: field_table_pairs(&b.arguments),
                };
                (command, b.nowait, M::BindOk(exchange::BindOk {}))
            }
            M::Unbind(u) => {
                let command = Command::ExchangeUnbind {
                    destination: u.destination.as_str().to_string(),
                    source: u.source.as_str().to_string(),
                    routing_key: u.routing_key.as_str().to_string(),
                    arguments: field_table_pairs(&u.arguments),
                };
                (command, u.nowait, M::UnbindOk(exchange::UnbindOk {}))
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
        let conn = self.id;
        let (command, nowait, ok) = match m {
            M::Declare(d) => {
                let nowait = d.nowait;
                (self.queue_declare(d)?, nowait, None)
            }
            M::Bind(b) => {
                let command = Command::QueueBind {
                    queue: b.queue.as_str().to_string(),
                    exchange: b.exchange.as_str().to_string(),
                    routing_key: b.routing_key.as_str().to_string(),
                    arguments: field_table_pairs(&b.arguments),
                    conn,
                };
                (command, b.nowait, Some(M::BindOk(queue::BindOk {})))
            }
            M::Unbind(u) => {
                let command = Command::QueueUnbind {
                    queue: u.queue.as_str().to_string(),
                    exchange: u.exchange.as_str().to_string(),
                    routing_key: u.routing_key.as_str().to_string(),
                    arguments: field_table_pairs(&u.arguments),
                    conn,
                };
                // queue.unbind has no nowait.
                (command, false, Some(M::UnbindOk(queue::UnbindOk {})))
            }
            M::Purge(p) => {
                let name = p.queue.as_str().to_string();
                (Command::QueuePurge { name, conn }, p.nowait, None)
            }
            M::Delete(d) => {
                let command = Command::QueueDelete {
                    name: d.queue.as_str().to_string(),
                    if_unused: d.if_unused,
                    if_empty: d.if_empty,
                    conn,
                };
                (command, d.nowait, None)
            }
            other => return Err(not_implemented(&AMQPClass::Queue(other))),
        };
        let is_purge = matches!(command, Command::QueuePurge { .. });
        let reply = self.propose_reply(command).await?;
        if nowait {
            return Ok(());
        }
        let ok = match (reply, ok) {
            (_, Some(ok)) => ok,
            (
                Reply::QueueDeclared {
                    name,
                    message_count,
                    consumer_count,
                },
                None,
            ) => M::DeclareOk(queue::DeclareOk {
                queue: short(&name),
                message_count,
                consumer_count,
            }),
            (Reply::Counted { message_count }, None) if is_purge => {
                M::PurgeOk(queue::PurgeOk { message_count })
            }
            (Reply::Counted { message_count }, None) => {
                M::DeleteOk(queue::DeleteOk { message_count })
            }
            _ => return Ok(()),
        };
        self.send_method(ch, &AMQPClass::Queue(ok));
        Ok(())
    }
}

impl Conn {
    /// The command for a queue.declare: a server-generated name when the client gave none;
    /// names under `amq.` are the server's (403 for a client's non-passive declare).
    fn queue_declare(&mut self, d: queue::Declare) -> Result<Command, Refusal> {
        let name = if d.queue.as_str().is_empty() {
            let n = self.next_queue_name;
            self.next_queue_name += 1;
            format!("amq.gen-{}-{n}", self.id)
        } else if d.queue.as_str().starts_with("amq.") && !d.passive {
            return Err(refuse(
                REPLY_ACCESS_REFUSED,
                format!(
                    "ACCESS_REFUSED - queue name '{}' contains reserved prefix 'amq.*'",
                    d.queue.as_str()
                ),
            ));
        } else {
            d.queue.as_str().to_string()
        };
        Ok(Command::QueueDeclare {
            name,
            passive: d.passive,
            durable: d.durable,
            exclusive: d.exclusive,
            auto_delete: d.auto_delete,
            arguments: field_table_pairs(&d.arguments),
            conn: self.id,
        })
    }
}

/// A method Warren does not implement (yet): a channel error 540.
pub(super) fn not_implemented(method: &AMQPClass) -> Refusal {
    refuse(
        super::wire::REPLY_NOT_IMPLEMENTED,
        format!("NOT_IMPLEMENTED - {:?}", method.get_amqp_method_id()),
    )
}
