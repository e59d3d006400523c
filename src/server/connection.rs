//! One client connection: handshake, then methods in, frames out.
//!
//! The task only proposes commands and acts on their outcomes; deliveries arrive as
//! [`Dispatch`]es from the proposer. Every byte from the network is untrusted: bad input
//! closes the channel or connection with an AMQP reply code, never panics.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use amq_protocol::protocol::{basic, channel, confirm, connection, exchange, queue, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldTable, LongString, ShortString};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::proposer::{Dispatch, Proposer};
use crate::amqp::frame::{
    check_protocol_header, decode_frame, encode_frame, method_frame, parse_method, ContentHeader,
    Frame, FRAME_MIN_SIZE, FRAME_OVERHEAD, PROTOCOL_HEADER,
};
use crate::broker::command::{Command, Content, Refusal, Reply};
use crate::broker::exchange::{field_table_pairs, ExchangeKind, HeaderValue};
use crate::broker::queue::ConsumerKey;
use crate::config::NodeConfig;
use crate::limits;

const REPLY_ACCESS_REFUSED: u16 = 403;
const REPLY_PRECONDITION_FAILED: u16 = 406;
const REPLY_NOT_ALLOWED: u16 = 530;
const REPLY_CHANNEL_ERROR: u16 = 504;
const REPLY_UNEXPECTED_FRAME: u16 = 505;
const REPLY_COMMAND_INVALID: u16 = 503;
const REPLY_NOT_IMPLEMENTED: u16 = 540;

/// Why the connection must end: a connection.close to send (code, text, class, method).
struct ConnClose {
    code: u16,
    text: String,
    class_id: u16,
    method_id: u16,
}

fn conn_close(code: u16, text: impl Into<String>) -> ConnClose {
    ConnClose {
        code,
        text: text.into(),
        class_id: 0,
        method_id: 0,
    }
}

/// A publish waiting for its content header and body frames.
struct PendingPublish {
    method: basic::Publish,
    header: Option<ContentHeader>,
    body: BytesMut,
}

#[derive(Default)]
struct ChannelState {
    /// We sent channel.close and wait for close-ok; everything else is dropped.
    closing: bool,
    prefetch: u32,
    confirms: bool,
    next_publish_seq: u64,
    next_delivery_tag: u64,
    /// delivery tag -> (queue, msg_id) of unacked deliveries.
    unacked: BTreeMap<u64, (String, u64)>,
    /// consumer tag -> queue.
    consumers: HashMap<String, String>,
    pending: Option<PendingPublish>,
}

enum Phase {
    AwaitStartOk,
    AwaitTuneOk,
    AwaitOpen,
    Open,
}

struct Conn {
    id: u64,
    config: Arc<NodeConfig>,
    proposer: Arc<Proposer>,
    phase: Phase,
    frame_max: u32,
    heartbeat_s: u16,
    channels: HashMap<u16, ChannelState>,
    out: BytesMut,
    next_queue_name: u64,
    next_consumer_tag: u64,
    /// The client sent connection.close (or we finished closing): stop after flushing.
    done: bool,
}

/// Runs one connection to completion.
pub async fn run(
    mut socket: TcpStream,
    config: Arc<NodeConfig>,
    proposer: Arc<Proposer>,
) -> anyhow::Result<()> {
    let _ = socket.set_nodelay(true);
    let mut header = [0u8; 8];
    socket.read_exact(&mut header).await?;
    if let Err(e) = check_protocol_header(&header) {
        tracing::debug!(error = %e, "bad protocol header");
        socket.write_all(PROTOCOL_HEADER).await?;
        let _ = socket.shutdown().await;
        return Ok(());
    }

    let (id, dispatches) = proposer.register();
    let mut conn = Conn {
        id,
        frame_max: config.frame_max,
        heartbeat_s: 0,
        config,
        proposer: Arc::clone(&proposer),
        phase: Phase::AwaitStartOk,
        channels: HashMap::new(),
        out: BytesMut::new(),
        next_queue_name: 1,
        next_consumer_tag: 1,
        done: false,
    };
    let result = conn.serve(&mut socket, dispatches).await;
    // Return every unacked delivery and drop every consumer of this connection.
    let open: Vec<u16> = conn.channels.keys().copied().collect();
    for channel in open {
        proposer
            .propose(Command::ChannelClosed { conn: id, channel })
            .await;
    }
    proposer.unregister(id);
    result
}

impl Conn {
    async fn serve(
        &mut self,
        socket: &mut TcpStream,
        mut dispatches: mpsc::Receiver<Dispatch>,
    ) -> anyhow::Result<()> {
        self.send_method(0, &start_method(&self.config));
        socket.write_all(&self.out).await?;
        self.out.clear();

        let mut inbuf = BytesMut::with_capacity(8192);
        let mut heartbeat = tokio::time::interval(Duration::from_secs(3600));
        let mut heartbeat_armed = 0u16;
        loop {
            if self.heartbeat_s != heartbeat_armed {
                heartbeat_armed = self.heartbeat_s;
                let period = Duration::from_millis(u64::from(heartbeat_armed.max(1)) * 500);
                heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            }
            tokio::select! {
                read = socket.read_buf(&mut inbuf) => {
                    if read? == 0 {
                        return Ok(());
                    }
                    if let Err(close) = self.handle_input(&mut inbuf).await {
                        self.send_conn_close(close);
                        socket.write_all(&self.out).await?;
                        let _ = socket.shutdown().await;
                        return Ok(());
                    }
                }
                Some(dispatch) = dispatches.recv() => {
                    self.deliver(dispatch);
                }
                _ = heartbeat.tick(), if heartbeat_armed > 0 => {
                    encode_frame(&Frame::Heartbeat, &mut self.out);
                }
            }
            if !self.out.is_empty() {
                socket.write_all(&self.out).await?;
                self.out.clear();
            }
            if self.done {
                let _ = socket.shutdown().await;
                return Ok(());
            }
        }
    }

    async fn handle_input(&mut self, inbuf: &mut BytesMut) -> Result<(), ConnClose> {
        loop {
            let frame = match decode_frame(inbuf, self.frame_max) {
                Ok(Some(frame)) => frame,
                Ok(None) => return Ok(()),
                Err(e) => return Err(conn_close(e.reply_code(), format!("FRAME_ERROR - {e}"))),
            };
            self.handle_frame(frame).await?;
            if self.done {
                return Ok(());
            }
        }
    }

    async fn handle_frame(&mut self, frame: Frame) -> Result<(), ConnClose> {
        match frame {
            Frame::Heartbeat => Ok(()),
            Frame::Method { channel, payload } => {
                let method = parse_method(&payload)
                    .map_err(|e| conn_close(e.reply_code(), format!("FRAME_ERROR - {e}")))?;
                if channel == 0 {
                    self.connection_method(method)
                } else {
                    self.channel_method(channel, method).await
                }
            }
            Frame::Header { channel, payload } => {
                let header = ContentHeader::parse(payload)
                    .map_err(|e| conn_close(e.reply_code(), format!("FRAME_ERROR - {e}")))?;
                self.content_header(channel, header).await
            }
            Frame::Body { channel, payload } => self.content_body(channel, payload).await,
        }
    }

    fn connection_method(&mut self, method: AMQPClass) -> Result<(), ConnClose> {
        use connection::AMQPMethod as M;
        let AMQPClass::Connection(m) = method else {
            return Err(conn_close(
                REPLY_COMMAND_INVALID,
                "COMMAND_INVALID - non-connection method on channel 0",
            ));
        };
        match (&self.phase, m) {
            (Phase::AwaitStartOk, M::StartOk(ok)) => {
                if !plain_auth_ok(ok.mechanism.as_str(), ok.response.as_bytes()) {
                    return Err(conn_close(
                        REPLY_ACCESS_REFUSED,
                        "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN",
                    ));
                }
                self.phase = Phase::AwaitTuneOk;
                self.send_method(
                    0,
                    &AMQPClass::Connection(M::Tune(connection::Tune {
                        channel_max: limits::CHANNELS_PER_CONNECTION_MAX,
                        frame_max: self.config.frame_max,
                        heartbeat: self.config.heartbeat_s,
                    })),
                );
                Ok(())
            }
            (Phase::AwaitTuneOk, M::TuneOk(ok)) => {
                if ok.frame_max != 0 && ok.frame_max < FRAME_MIN_SIZE {
                    return Err(conn_close(
                        REPLY_NOT_ALLOWED,
                        "NOT_ALLOWED - frame_max below 4096",
                    ));
                }
                if ok.frame_max != 0 && ok.frame_max < self.frame_max {
                    self.frame_max = ok.frame_max;
                }
                self.heartbeat_s = if ok.heartbeat == 0 || self.config.heartbeat_s == 0 {
                    0
                } else {
                    ok.heartbeat.min(self.config.heartbeat_s)
                };
                self.phase = Phase::AwaitOpen;
                Ok(())
            }
            (Phase::AwaitOpen, M::Open(open)) => {
                if open.virtual_host.as_str() != "/" {
                    return Err(conn_close(
                        REPLY_NOT_ALLOWED,
                        format!(
                            "NOT_ALLOWED - vhost {} not found",
                            open.virtual_host.as_str()
                        ),
                    ));
                }
                self.phase = Phase::Open;
                self.send_method(0, &AMQPClass::Connection(M::OpenOk(connection::OpenOk {})));
                Ok(())
            }
            (_, M::Close(_)) => {
                self.send_method(
                    0,
                    &AMQPClass::Connection(M::CloseOk(connection::CloseOk {})),
                );
                self.done = true;
                Ok(())
            }
            (_, M::CloseOk(_)) => {
                self.done = true;
                Ok(())
            }
            _ => Err(conn_close(
                REPLY_COMMAND_INVALID,
                "COMMAND_INVALID - unexpected connection method",
            )),
        }
    }

    async fn channel_method(&mut self, ch: u16, method: AMQPClass) -> Result<(), ConnClose> {
        if !matches!(self.phase, Phase::Open) {
            return Err(conn_close(
                REPLY_CHANNEL_ERROR,
                "CHANNEL_ERROR - connection not open",
            ));
        }
        if let AMQPClass::Channel(m) = &method {
            return self.channel_class(ch, m).await;
        }
        let Some(state) = self.channels.get(&ch) else {
            return Err(conn_close(
                REPLY_CHANNEL_ERROR,
                format!("CHANNEL_ERROR - expected 'channel.open' on channel {ch}"),
            ));
        };
        if state.closing {
            return Ok(());
        }
        if state.pending.is_some() {
            return Err(conn_close(
                REPLY_UNEXPECTED_FRAME,
                "UNEXPECTED_FRAME - method frame while content expected",
            ));
        }
        if let Err(refusal) = self.class_method(ch, method).await {
            self.close_channel(ch, refusal).await;
        }
        Ok(())
    }

    async fn channel_class(&mut self, ch: u16, m: &channel::AMQPMethod) -> Result<(), ConnClose> {
        use channel::AMQPMethod as M;
        match m {
            M::Open(_) => {
                if self.channels.contains_key(&ch) || ch > limits::CHANNELS_PER_CONNECTION_MAX {
                    return Err(conn_close(
                        REPLY_CHANNEL_ERROR,
                        format!("CHANNEL_ERROR - cannot open channel {ch}"),
                    ));
                }
                self.channels.insert(
                    ch,
                    ChannelState {
                        next_publish_seq: 1,
                        next_delivery_tag: 1,
                        ..ChannelState::default()
                    },
                );
                self.send_method(ch, &AMQPClass::Channel(M::OpenOk(channel::OpenOk {})));
            }
            M::Close(_) => {
                if self.channels.remove(&ch).is_some() {
                    self.proposer
                        .propose(Command::ChannelClosed {
                            conn: self.id,
                            channel: ch,
                        })
                        .await;
                }
                self.send_method(ch, &AMQPClass::Channel(M::CloseOk(channel::CloseOk {})));
            }
            M::CloseOk(_) => {
                self.channels.remove(&ch);
            }
            M::Flow(f) => {
                let active = f.active;
                self.send_method(
                    ch,
                    &AMQPClass::Channel(M::FlowOk(channel::FlowOk { active })),
                );
            }
            _ => {}
        }
        Ok(())
    }

    /// Closes channel `ch` with `refusal` (a channel error) and releases its deliveries.
    async fn close_channel(&mut self, ch: u16, refusal: Refusal) {
        if let Some(state) = self.channels.get_mut(&ch) {
            state.closing = true;
            state.pending = None;
            state.unacked.clear();
            state.consumers.clear();
        }
        self.proposer
            .propose(Command::ChannelClosed {
                conn: self.id,
                channel: ch,
            })
            .await;
        self.send_method(
            ch,
            &AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
                reply_code: refusal.reply_code,
                reply_text: short(&refusal.reply_text),
                class_id: 0,
                method_id: 0,
            })),
        );
    }

    fn state(&mut self, ch: u16) -> Result<&mut ChannelState, Refusal> {
        self.channels
            .get_mut(&ch)
            .ok_or_else(|| refuse(REPLY_CHANNEL_ERROR, "CHANNEL_ERROR - channel not open"))
    }

    /// Methods of the exchange, queue, basic and confirm classes on an open channel.
    async fn class_method(&mut self, ch: u16, method: AMQPClass) -> Result<(), Refusal> {
        match method {
            AMQPClass::Exchange(exchange::AMQPMethod::Declare(d)) => {
                let Some(kind) = ExchangeKind::parse(d.kind.as_str()) else {
                    return Err(refuse(
                        REPLY_COMMAND_INVALID,
                        format!(
                            "COMMAND_INVALID - unknown exchange type '{}'",
                            d.kind.as_str()
                        ),
                    ));
                };
                self.propose_reply(Command::ExchangeDeclare {
                    name: d.exchange.as_str().to_string(),
                    kind,
                    passive: d.passive,
                    durable: d.durable,
                    auto_delete: d.auto_delete,
                    internal: d.internal,
                    arguments: field_table_pairs(&d.arguments),
                })
                .await?;
                if !d.nowait {
                    self.send_method(
                        ch,
                        &AMQPClass::Exchange(exchange::AMQPMethod::DeclareOk(
                            exchange::DeclareOk {},
                        )),
                    );
                }
            }
            AMQPClass::Queue(queue::AMQPMethod::Declare(d)) => {
                let name = if d.queue.as_str().is_empty() {
                    let n = self.next_queue_name;
                    self.next_queue_name += 1;
                    format!("amq.gen-{}-{n}", self.id)
                } else {
                    d.queue.as_str().to_string()
                };
                let reply = self
                    .propose_reply(Command::QueueDeclare {
                        name,
                        passive: d.passive,
                        durable: d.durable,
                        exclusive: d.exclusive,
                        auto_delete: d.auto_delete,
                        arguments: field_table_pairs(&d.arguments),
                        conn: self.id,
                    })
                    .await?;
                if let Reply::QueueDeclared {
                    name,
                    message_count,
                    consumer_count,
                } = reply
                {
                    if !d.nowait {
                        self.send_method(
                            ch,
                            &AMQPClass::Queue(queue::AMQPMethod::DeclareOk(queue::DeclareOk {
                                queue: short(&name),
                                message_count,
                                consumer_count,
                            })),
                        );
                    }
                }
            }
            AMQPClass::Queue(queue::AMQPMethod::Bind(b)) => {
                self.propose_reply(Command::QueueBind {
                    queue: b.queue.as_str().to_string(),
                    exchange: b.exchange.as_str().to_string(),
                    routing_key: b.routing_key.as_str().to_string(),
                    arguments: field_table_pairs(&b.arguments),
                    conn: self.id,
                })
                .await?;
                if !b.nowait {
                    self.send_method(
                        ch,
                        &AMQPClass::Queue(queue::AMQPMethod::BindOk(queue::BindOk {})),
                    );
                }
            }
            AMQPClass::Queue(queue::AMQPMethod::Purge(p)) => {
                let reply = self
                    .propose_reply(Command::QueuePurge {
                        name: p.queue.as_str().to_string(),
                        conn: self.id,
                    })
                    .await?;
                if let (Reply::Counted { message_count }, false) = (reply, p.nowait) {
                    let ok = queue::PurgeOk { message_count };
                    self.send_method(ch, &AMQPClass::Queue(queue::AMQPMethod::PurgeOk(ok)));
                }
            }
            AMQPClass::Queue(queue::AMQPMethod::Delete(d)) => {
                let reply = self
                    .propose_reply(Command::QueueDelete {
                        name: d.queue.as_str().to_string(),
                        if_unused: d.if_unused,
                        if_empty: d.if_empty,
                        conn: self.id,
                    })
                    .await?;
                if let (Reply::Counted { message_count }, false) = (reply, d.nowait) {
                    let ok = queue::DeleteOk { message_count };
                    self.send_method(ch, &AMQPClass::Queue(queue::AMQPMethod::DeleteOk(ok)));
                }
            }
            AMQPClass::Exchange(exchange::AMQPMethod::Delete(d)) => {
                self.propose_reply(Command::ExchangeDelete {
                    name: d.exchange.as_str().to_string(),
                    if_unused: d.if_unused,
                })
                .await?;
                if !d.nowait {
                    let ok = exchange::DeleteOk {};
                    self.send_method(ch, &AMQPClass::Exchange(exchange::AMQPMethod::DeleteOk(ok)));
                }
            }
            AMQPClass::Basic(basic::AMQPMethod::Get(g)) => {
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
                        message_count,
                        content,
                        ..
                    } => self.basic_get_ok(
                        ch,
                        queue,
                        msg_id,
                        redelivered,
                        message_count,
                        content,
                        g.no_ack,
                    )?,
                    _ => {
                        let empty = basic::GetEmpty {};
                        self.send_method(ch, &AMQPClass::Basic(basic::AMQPMethod::GetEmpty(empty)));
                    }
                }
            }
            AMQPClass::Basic(basic::AMQPMethod::Qos(q)) => {
                self.state(ch)?.prefetch = u32::from(q.prefetch_count);
                self.send_method(
                    ch,
                    &AMQPClass::Basic(basic::AMQPMethod::QosOk(basic::QosOk {})),
                );
            }
            AMQPClass::Confirm(confirm::AMQPMethod::Select(s)) => {
                self.state(ch)?.confirms = true;
                if !s.nowait {
                    self.send_method(
                        ch,
                        &AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(confirm::SelectOk {})),
                    );
                }
            }
            AMQPClass::Basic(basic::AMQPMethod::Publish(p)) => {
                self.state(ch)?.pending = Some(PendingPublish {
                    method: p,
                    header: None,
                    body: BytesMut::new(),
                });
            }
            AMQPClass::Basic(basic::AMQPMethod::Consume(c)) => {
                let tag = if c.consumer_tag.as_str().is_empty() {
                    let n = self.next_consumer_tag;
                    self.next_consumer_tag += 1;
                    format!("amq.ctag-{}-{n}", self.id)
                } else {
                    c.consumer_tag.as_str().to_string()
                };
                let queue = c.queue.as_str().to_string();
                let state = self.state(ch)?;
                if state.consumers.contains_key(&tag) {
                    return Err(refuse(
                        REPLY_NOT_ALLOWED,
                        format!("NOT_ALLOWED - attempt to reuse consumer tag '{tag}'"),
                    ));
                }
                let prefetch = state.prefetch;
                state.consumers.insert(tag.clone(), queue.clone());
                let consumer = ConsumerKey {
                    conn: self.id,
                    channel: ch,
                    tag: tag.clone(),
                };
                // Deliveries caused by this command reach this task through its dispatch
                // queue, so they are written only after the consume-ok below.
                let outcome = self
                    .proposer
                    .propose(Command::Consume {
                        queue,
                        consumer,
                        prefetch,
                        no_ack: c.no_ack,
                    })
                    .await;
                if let Err(refusal) = outcome.reply {
                    self.state(ch)?.consumers.remove(&tag);
                    return Err(refusal);
                }
                if !c.nowait {
                    self.send_method(
                        ch,
                        &AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(basic::ConsumeOk {
                            consumer_tag: short(&tag),
                        })),
                    );
                }
            }
            AMQPClass::Basic(basic::AMQPMethod::Cancel(c)) => {
                let tag = c.consumer_tag.as_str().to_string();
                if let Some(queue) = self.state(ch)?.consumers.remove(&tag) {
                    self.propose_reply(Command::Cancel {
                        queue,
                        consumer: ConsumerKey {
                            conn: self.id,
                            channel: ch,
                            tag: tag.clone(),
                        },
                    })
                    .await?;
                }
                if !c.nowait {
                    self.send_method(
                        ch,
                        &AMQPClass::Basic(basic::AMQPMethod::CancelOk(basic::CancelOk {
                            consumer_tag: short(&tag),
                        })),
                    );
                }
            }
            AMQPClass::Basic(basic::AMQPMethod::Ack(a)) => {
                let taken = self.take_tags(ch, a.delivery_tag, a.multiple)?;
                for (queue, msg_ids) in taken {
                    self.propose_reply(Command::Settle {
                        queue,
                        msg_ids,
                        conn: self.id,
                        channel: ch,
                    })
                    .await?;
                }
            }
            AMQPClass::Basic(basic::AMQPMethod::Nack(n)) => {
                let taken = self.take_tags(ch, n.delivery_tag, n.multiple)?;
                self.reject(ch, taken, n.requeue).await?;
            }
            AMQPClass::Basic(basic::AMQPMethod::Reject(r)) => {
                let taken = self.take_tags(ch, r.delivery_tag, false)?;
                self.reject(ch, taken, r.requeue).await?;
            }
            other => {
                return Err(refuse(
                    REPLY_NOT_IMPLEMENTED,
                    format!("NOT_IMPLEMENTED - {:?}", other.get_amqp_method_id()),
                ))
            }
        }
        Ok(())
    }

    async fn reject(
        &mut self,
        ch: u16,
        taken: Vec<(String, Vec<u64>)>,
        requeue: bool,
    ) -> Result<(), Refusal> {
        for (queue, msg_ids) in taken {
            let command = if requeue {
                Command::Requeue {
                    queue,
                    msg_ids,
                    conn: self.id,
                    channel: ch,
                }
            } else {
                // No dead-lettering yet: a rejected message without requeue is dropped.
                Command::Settle {
                    queue,
                    msg_ids,
                    conn: self.id,
                    channel: ch,
                }
            };
            self.propose_reply(command).await?;
        }
        Ok(())
    }

    /// Removes the deliveries acknowledged by (`tag`, `multiple`), grouped by queue.
    fn take_tags(
        &mut self,
        ch: u16,
        tag: u64,
        multiple: bool,
    ) -> Result<Vec<(String, Vec<u64>)>, Refusal> {
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
                by_queue.entry(queue).or_default().push(msg_id);
            }
        }
        Ok(by_queue.into_iter().collect())
    }

    async fn propose_reply(&mut self, command: Command) -> Result<Reply, Refusal> {
        self.proposer.propose(command).await.reply
    }

    async fn content_header(&mut self, ch: u16, header: ContentHeader) -> Result<(), ConnClose> {
        let body_size_max = self.config.body_size_max;
        let Some(state) = self.channels.get_mut(&ch) else {
            return Err(conn_close(
                REPLY_CHANNEL_ERROR,
                "CHANNEL_ERROR - channel not open",
            ));
        };
        if state.closing {
            return Ok(());
        }
        let Some(pending) = state.pending.as_mut().filter(|p| p.header.is_none()) else {
            return Err(conn_close(
                REPLY_UNEXPECTED_FRAME,
                "UNEXPECTED_FRAME - content header without basic.publish",
            ));
        };
        if header.class_id != 60 {
            return Err(conn_close(
                REPLY_UNEXPECTED_FRAME,
                "UNEXPECTED_FRAME - content header class is not basic",
            ));
        }
        if header.body_size > body_size_max {
            let text = format!(
                "PRECONDITION_FAILED - message size {} is larger than max size {body_size_max}",
                header.body_size
            );
            self.close_channel(ch, refuse(REPLY_PRECONDITION_FAILED, text))
                .await;
            return Ok(());
        }
        let size = header.body_size;
        pending.header = Some(header);
        if size == 0 {
            self.finish_publish(ch).await;
        }
        Ok(())
    }

    async fn content_body(&mut self, ch: u16, payload: Bytes) -> Result<(), ConnClose> {
        let Some(state) = self.channels.get_mut(&ch) else {
            return Err(conn_close(
                REPLY_CHANNEL_ERROR,
                "CHANNEL_ERROR - channel not open",
            ));
        };
        if state.closing {
            return Ok(());
        }
        let Some((pending, size)) = state
            .pending
            .as_mut()
            .and_then(|p| p.header.as_ref().map(|h| h.body_size).map(|s| (p, s)))
        else {
            return Err(conn_close(
                REPLY_UNEXPECTED_FRAME,
                "UNEXPECTED_FRAME - content body without content header",
            ));
        };
        let new_len = pending.body.len() as u64 + payload.len() as u64;
        if new_len > size {
            return Err(conn_close(
                REPLY_FRAME_ERROR_CODE,
                "FRAME_ERROR - content body longer than body_size",
            ));
        }
        pending.body.extend_from_slice(&payload);
        if new_len == size {
            self.finish_publish(ch).await;
        }
        Ok(())
    }

    /// The publish on `ch` is complete: propose it and confirm it.
    async fn finish_publish(&mut self, ch: u16) {
        let Some(state) = self.channels.get_mut(&ch) else {
            return;
        };
        let Some(PendingPublish {
            method,
            header: Some(header),
            body,
        }) = state.pending.take()
        else {
            return;
        };
        let seq = state.next_publish_seq;
        state.next_publish_seq += 1;
        let confirms = state.confirms;
        let headers = message_headers(&header.properties);
        let outcome = self
            .proposer
            .propose(Command::Publish {
                exchange: method.exchange.as_str().to_string(),
                routing_key: method.routing_key.as_str().to_string(),
                mandatory: method.mandatory,
                headers,
                content: Content {
                    properties: header.properties,
                    body: body.freeze(),
                },
                expiration_ms: None,
            })
            .await;
        match outcome.reply {
            Ok(_) => {
                if confirms {
                    self.send_method(
                        ch,
                        &AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
                            delivery_tag: seq,
                            multiple: false,
                        })),
                    );
                }
            }
            Err(refusal) => self.close_channel(ch, refusal).await,
        }
    }

    /// Writes a basic.deliver with its content to the consumer's channel.
    /// basic.get-ok with the message; a get without no_ack is checked out to this channel.
    #[allow(clippy::too_many_arguments)]
    fn basic_get_ok(
        &mut self,
        ch: u16,
        queue: String,
        msg_id: u64,
        redelivered: bool,
        message_count: u32,
        content: Content,
        no_ack: bool,
    ) -> Result<(), Refusal> {
        let state = self.state(ch)?;
        let delivery_tag = state.next_delivery_tag;
        state.next_delivery_tag += 1;
        if !no_ack {
            state.unacked.insert(delivery_tag, (queue.clone(), msg_id));
        }
        let ok = basic::GetOk {
            delivery_tag,
            redelivered,
            exchange: short(""),
            routing_key: short(&queue),
            message_count,
        };
        self.send_method(ch, &AMQPClass::Basic(basic::AMQPMethod::GetOk(ok)));
        self.send_content(ch, content);
        Ok(())
    }

    fn deliver(&mut self, dispatch: Dispatch) {
        let ch = dispatch.delivery.consumer.channel;
        let Some(state) = self.channels.get_mut(&ch) else {
            return; // channel gone: its ChannelClosed returns the message
        };
        // A dispatch queued before its channel or consumer went away: the state already
        // returned the message (ChannelClosed) or still holds it for this channel.
        if state.closing
            || !state
                .consumers
                .contains_key(&dispatch.delivery.consumer.tag)
        {
            return;
        }
        let tag = state.next_delivery_tag;
        state.next_delivery_tag += 1;
        if !dispatch.delivery.settled {
            state
                .unacked
                .insert(tag, (dispatch.queue.clone(), dispatch.delivery.msg_id));
        }
        self.send_method(
            ch,
            &AMQPClass::Basic(basic::AMQPMethod::Deliver(basic::Deliver {
                consumer_tag: short(&dispatch.delivery.consumer.tag),
                delivery_tag: tag,
                redelivered: dispatch.delivery.redelivered,
                // The exchange and routing key are not stored with messages yet.
                exchange: short(""),
                routing_key: short(&dispatch.queue),
            })),
        );
        self.send_content(ch, dispatch.content);
    }

    /// The content header (raw properties as published) and the body split at frame_max.
    fn send_content(&mut self, ch: u16, content: Content) {
        let header = ContentHeader {
            class_id: 60,
            body_size: content.body.len() as u64,
            properties: content.properties,
        };
        encode_frame(
            &Frame::Header {
                channel: ch,
                payload: header.to_bytes(),
            },
            &mut self.out,
        );
        let chunk = (self.frame_max as usize)
            .saturating_sub(FRAME_OVERHEAD)
            .max(1);
        let mut body = content.body;
        while !body.is_empty() {
            let part = body.split_to(chunk.min(body.len()));
            encode_frame(
                &Frame::Body {
                    channel: ch,
                    payload: part,
                },
                &mut self.out,
            );
        }
    }

    fn send_method(&mut self, ch: u16, method: &AMQPClass) {
        match method_frame(ch, method) {
            Ok(frame) => encode_frame(&frame, &mut self.out),
            Err(e) => tracing::error!(error = %e, "cannot encode method"),
        }
    }

    fn send_conn_close(&mut self, close: ConnClose) {
        tracing::debug!(code = close.code, text = %close.text, "closing connection");
        self.send_method(
            0,
            &AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
                reply_code: close.code,
                reply_text: short(&close.text),
                class_id: close.class_id,
                method_id: close.method_id,
            })),
        );
    }
}

const REPLY_FRAME_ERROR_CODE: u16 = crate::amqp::frame::REPLY_FRAME_ERROR;

fn refuse(reply_code: u16, reply_text: impl Into<String>) -> Refusal {
    Refusal {
        reply_code,
        reply_text: reply_text.into(),
    }
}

/// A short string, cut to 255 octets at a char boundary (amq-protocol asserts the limit).
fn short(s: &str) -> ShortString {
    let mut end = s.len().min(255);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    ShortString::from(&s[..end])
}

/// PLAIN with guest/guest: response is `authzid \0 user \0 password`.
fn plain_auth_ok(mechanism: &str, response: &[u8]) -> bool {
    if mechanism != "PLAIN" {
        return false;
    }
    let mut parts = response.split(|b| *b == 0);
    let (Some(_authz), Some(user), Some(pass), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    user == b"guest" && pass == b"guest"
}

/// The `headers` property of a basic content header, for headers-exchange routing.
/// Unparseable properties give no headers (the raw bytes are still delivered verbatim).
fn message_headers(properties: &[u8]) -> Vec<(String, HeaderValue)> {
    match basic::parse_properties(properties) {
        Ok((_, props)) => props
            .headers()
            .as_ref()
            .map(|table| {
                table
                    .inner()
                    .iter()
                    .map(|(k, v)| (k.as_str().to_string(), HeaderValue::from_amqp(v)))
                    .collect()
            })
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

fn start_method(config: &NodeConfig) -> AMQPClass {
    let mut caps = FieldTable::default();
    for cap in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "consumer_priorities",
        "authentication_failure_close",
        "per_consumer_qos",
        "direct_reply_to",
    ] {
        caps.insert(ShortString::from(cap), AMQPValue::Boolean(true));
    }
    let mut props = FieldTable::default();
    let text = |s: &str| AMQPValue::LongString(LongString::from(s));
    props.insert(ShortString::from("product"), text("Warren"));
    props.insert(
        ShortString::from("version"),
        text(env!("CARGO_PKG_VERSION")),
    );
    props.insert(ShortString::from("platform"), text("Rust"));
    props.insert(ShortString::from("cluster_name"), text(&config.node_name));
    props.insert(
        ShortString::from("capabilities"),
        AMQPValue::FieldTable(caps),
    );
    AMQPClass::Connection(connection::AMQPMethod::Start(connection::Start {
        version_major: 0,
        version_minor: 9,
        server_properties: props,
        mechanisms: LongString::from("PLAIN AMQPLAIN"),
        locales: LongString::from("en_US"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_auth() {
        assert!(plain_auth_ok("PLAIN", b"\0guest\0guest"));
        assert!(!plain_auth_ok("PLAIN", b"\0guest\0wrong"));
        assert!(!plain_auth_ok("PLAIN", b"guest"));
        assert!(!plain_auth_ok("AMQPLAIN", b"\0guest\0guest"));
    }

    #[test]
    fn short_strings_are_cut_at_char_boundaries() {
        let long = "é".repeat(200);
        assert!(short(&long).as_str().len() <= 255);
    }
}
