//! One client connection: handshake, then methods in, frames out.
//!
//! The task proposes commands and acts on their replies; deliveries arrive as [`Dispatch`]es
//! that the state machine routed here. Publishes, acks, nacks and rejects are pipelined: they
//! are submitted and the task reads on, keeping their replies in a FIFO ([`in_flight`]) that
//! completes in log order, so confirms go out in order and many publishes share one entry.
//! Methods with a reply of their own (declare, bind, get, consume...) wait for their commit.
//! Every byte from the network is untrusted: bad input closes the channel or connection with
//! an AMQP reply code, never panics.
//!
//! The task is generic over its stream (plain TCP or AMQPS's TLS): each kind of connection
//! gets its own compiled copy, so the plain path pays no dynamic dispatch and no allocation
//! for TLS existing. Every write is flushed (a TLS stream keeps written records until then;
//! a TCP flush does nothing).
//!
//! [`in_flight`]: Conn::in_flight

mod access;
mod basic;
mod channel;
mod completion;
mod credit;
mod declare;
mod deliver;
mod handshake;
mod headers;
mod login_throttle;
mod publish;
mod tx;
mod wire;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use amq_protocol::protocol::AMQPClass;
use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use self::channel::ChannelState;
use self::completion::InFlight;
use self::wire::{conn_close, ConnClose, REPLY_CHANNEL_ERROR, REPLY_UNEXPECTED_FRAME};
use super::access_view::{AccessView, Rights};
use super::proposer::Proposer;
use super::routes::Dispatch;
use crate::amqp::frame::{
    check_protocol_header, decode_frame, encode_frame, method_frame, parse_method, ContentHeader,
    Frame, PROTOCOL_HEADER,
};
use crate::broker::command::Command;
use crate::config::NodeConfig;
use crate::limits::CLOSE_OK_WAIT;
use crate::limits::IN_FLIGHT_PER_CONNECTION_MAX;
use crate::limits::WRITE_COALESCE_BYTES_MAX;

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
    /// The client asked for server-sent basic.cancel (consumer_cancel_notify).
    cancel_notify: bool,
    /// A refused login from a client without authentication_failure_close: just hang up.
    silent_close: bool,
    /// The client connected from a loopback address (for `loopback_users`).
    peer_loopback: bool,
    /// The client's address (failed logins are slowed per address).
    peer_ip: std::net::IpAddr,
    /// The user who logged in (empty before start-ok).
    user: String,
    /// The vhost opened (connection.open); every command is in it (`access.rs`).
    vhost: String,
    /// The user's rights in the vhost, as last applied (none before connection.open).
    rights: Arc<Rights>,
    /// Users and permissions as this node applies them.
    access: watch::Receiver<Arc<AccessView>>,
    /// The client asked for connection.blocked/unblocked notifications.
    blocked_notify: bool,
    /// The connection has published: the memory alarm stops reading from it.
    publisher: bool,
    /// The memory alarm is on (last value seen).
    alarm_on: bool,
    channels: HashMap<u16, ChannelState>,
    /// Submitted commands whose replies are awaited, oldest first (they complete in order).
    in_flight: VecDeque<InFlight>,
    /// Per channel, a run of confirm tags completed and not yet sent (first, last).
    confirm_runs: HashMap<u16, (u64, u64)>,
    /// Credit for deliveries in `out`, proposed once `out` is written (`credit.rs`).
    credit_due: Vec<Command>,
    out: BytesMut,
    next_queue_name: u64,
    next_consumer_tag: u64,
    /// The client sent connection.close (or we finished closing): stop after flushing.
    done: bool,
}

/// What a connection runs over: a TCP stream, or a TLS stream around one.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Stream for S {}

/// Runs one connection to completion. `peer_ip`: the client's address (`loopback_users`;
/// failed logins are slowed per address).
pub async fn run<S: Stream>(
    mut socket: S,
    peer_ip: std::net::IpAddr,
    config: Arc<NodeConfig>,
    proposer: Arc<Proposer>,
    alarm: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let peer_loopback = peer_ip.is_loopback();
    let mut header = [0u8; 8];
    socket.read_exact(&mut header).await?;
    if let Err(e) = check_protocol_header(&header) {
        tracing::debug!(error = %e, "bad protocol header");
        socket.write_all(PROTOCOL_HEADER).await?;
        socket.flush().await?;
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
        cancel_notify: false,
        silent_close: false,
        peer_loopback,
        peer_ip,
        user: String::new(),
        vhost: String::new(),
        rights: Arc::new(Rights::none()),
        access: proposer.access(),
        blocked_notify: false,
        publisher: false,
        alarm_on: *alarm.borrow(),
        channels: HashMap::new(),
        in_flight: VecDeque::new(),
        confirm_runs: HashMap::new(),
        credit_due: Vec::new(),
        out: BytesMut::new(),
        next_queue_name: 1,
        next_consumer_tag: 1,
        done: false,
    };
    let result = conn.serve(&mut socket, dispatches, alarm).await;
    // Return every unacked delivery, drop every consumer and delete the exclusive queues of
    // this connection.
    // In the background, retried until it commits (see `propose_until_committed`).
    proposer.unregister(id);
    let closer = Arc::clone(&proposer);
    tokio::spawn(async move {
        closer
            .propose_until_committed(Command::ConnectionClosed { conn: id })
            .await
    });
    result
}

/// After a connection error: read and drop frames until the client's close-ok (or a close,
/// answered), EOF or a timeout, as RabbitMQ does, so the client sees our connection.close
/// before the socket goes.
async fn await_close_ok<S: Stream>(socket: &mut S, inbuf: &mut BytesMut, frame_max: u32) {
    use amq_protocol::protocol::connection;
    let wait = async {
        loop {
            let frame = match decode_frame(inbuf, frame_max) {
                Ok(Some(frame)) => frame,
                Ok(None) => match socket.read_buf(inbuf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => continue,
                },
                Err(_) => return, // still garbage: nothing more to wait for
            };
            let Frame::Method {
                channel: 0,
                payload,
            } = frame
            else {
                continue;
            };
            match parse_method(&payload) {
                Ok(AMQPClass::Connection(connection::AMQPMethod::CloseOk(_))) => return,
                Ok(AMQPClass::Connection(connection::AMQPMethod::Close(_))) => {
                    let ok = AMQPClass::Connection(connection::AMQPMethod::CloseOk(
                        connection::CloseOk {},
                    ));
                    if let Ok(frame) = method_frame(0, &ok) {
                        let mut out = BytesMut::new();
                        encode_frame(&frame, &mut out);
                        let _ = write_out(socket, &mut out).await;
                    }
                    return;
                }
                _ => {}
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_OK_WAIT, wait).await;
}

/// Ends the connection gracefully: FIN after what we wrote, then read (and drop) until the
/// client's FIN. Closing a socket with unread input makes the kernel send RST, which can
/// destroy our last frames (a close-ok) before the client reads them.
async fn linger_close<S: Stream>(socket: &mut S) {
    let _ = socket.shutdown().await;
    await_client_eof(socket).await;
}

/// Reads and drops whatever the client still sends (e.g. a second connection.close from
/// another of its threads) until it closes the socket, for at most [`CLOSE_OK_WAIT`].
async fn await_client_eof<S: Stream>(socket: &mut S) {
    let drain = async {
        let mut sink = [0u8; 4096];
        while let Ok(n) = socket.read(&mut sink).await {
            if n == 0 {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_OK_WAIT, drain).await;
}

/// Writes `out` whole, flushes it and empties it.
async fn write_out<S: Stream>(socket: &mut S, out: &mut BytesMut) -> std::io::Result<()> {
    socket.write_all(out).await?;
    socket.flush().await?;
    out.clear();
    Ok(())
}

impl Conn {
    async fn serve<S: Stream>(
        &mut self,
        socket: &mut S,
        mut dispatches: mpsc::UnboundedReceiver<Dispatch>,
        mut alarm: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let version = self.proposer.node().state_machine.machine_version();
        self.send_method(0, &handshake::start_method(&self.config, version));
        write_out(socket, &mut self.out).await?;

        let mut inbuf = BytesMut::with_capacity(8192);
        let mut heartbeat = tokio::time::interval(Duration::from_secs(3600));
        let mut heartbeat_armed = 0u16;
        let mut last_heard = Instant::now();
        loop {
            if self.heartbeat_s != heartbeat_armed {
                heartbeat_armed = self.heartbeat_s;
                let period = Duration::from_millis(u64::from(heartbeat_armed.max(1)) * 500);
                heartbeat = tokio::time::interval_at(Instant::now() + period, period);
            }
            // Backpressure: a connection with too much in flight, or a publisher during a
            // memory alarm, is not read until that passes.
            let blocked = self.alarm_on && self.publisher;
            let can_read = self.in_flight.len() < IN_FLIGHT_PER_CONNECTION_MAX && !blocked;
            tokio::select! {
                replies = completion::next_replies(&mut self.in_flight) => {
                    self.complete_in_flight(replies).await;
                    self.complete_ready().await;
                    self.flush_confirms();
                }
                read = socket.read_buf(&mut inbuf), if can_read => {
                    if read? == 0 {
                        return Ok(());
                    }
                    last_heard = Instant::now();
                    if !self.input(socket, &mut inbuf).await? {
                        return Ok(());
                    }
                }
                Some(dispatch) = dispatches.recv() => {
                    // Every dispatch already queued goes out in the same write: an entry
                    // delivers many messages to one consumer, and a write per delivery is
                    // a syscall (and a wake-up of the client) per message.
                    let mut next = Some(dispatch);
                    while let Some(dispatch) = next.take() {
                        if let Some(text) = self.forced_close(&dispatch) {
                            self.send_conn_close(wire::conn_close(320, text));
                            write_out(socket, &mut self.out).await?;
                            // Closing at once could let the client see the socket go before
                            // our close (lapin then reports a reset, not 320).
                            await_close_ok(socket, &mut inbuf, self.frame_max).await;
                            linger_close(socket).await;
                            return Ok(());
                        }
                        self.dispatch(dispatch);
                        if self.out.len() < WRITE_COALESCE_BYTES_MAX {
                            next = dispatches.try_recv().ok();
                        }
                    }
                }
                Ok(()) = alarm.changed() => {
                    self.alarm_on = *alarm.borrow_and_update();
                    self.notify_blocked(self.alarm_on);
                    // Frames held back while blocked are still in the buffer.
                    if !self.alarm_on && !self.input(socket, &mut inbuf).await? {
                        return Ok(());
                    }
                }
                _ = heartbeat.tick(), if heartbeat_armed > 0 => {
                    // A client silent for two heartbeat intervals is gone (AMQP 0-9-1 §4.2.7).
                    if last_heard.elapsed() > Duration::from_secs(2 * u64::from(heartbeat_armed)) {
                        tracing::info!(conn = self.id, "missed heartbeats; closing connection");
                        return Ok(());
                    }
                    encode_frame(&Frame::Heartbeat, &mut self.out);
                }
            }
            if !self.out.is_empty() {
                write_out(socket, &mut self.out).await?;
            }
            self.return_credit().await;
            if self.done {
                // The client closed: after our close-ok it closes the socket (AMQP 0-9-1
                // §4.2.3), and closing first could race its reading of the close-ok.
                await_client_eof(socket).await;
                let _ = socket.shutdown().await;
                return Ok(());
            }
        }
    }

    /// The text of the 320 that `dispatch` calls for, if it closes the connection: this
    /// node fell behind the cluster (the fence), or the connection's vhost was deleted.
    fn forced_close(&self, dispatch: &Dispatch) -> Option<String> {
        match dispatch {
            Dispatch::Fenced => {
                tracing::warn!(conn = self.id, "node fell behind the cluster; closing");
                Some("CONNECTION_FORCED - this node fell behind the cluster".to_string())
            }
            Dispatch::VhostDeleted(vhost) if *vhost == self.vhost => {
                tracing::info!(conn = self.id, vhost, "vhost deleted; closing");
                Some(format!("CONNECTION_FORCED - vhost '{vhost}' is deleted"))
            }
            _ => None,
        }
    }

    /// Handles the frames in `inbuf`; false when the connection is over (a connection error
    /// was sent and the socket closed).
    async fn input<S: Stream>(
        &mut self,
        socket: &mut S,
        inbuf: &mut BytesMut,
    ) -> anyhow::Result<bool> {
        let Err(close) = self.handle_input(inbuf).await else {
            return Ok(true);
        };
        if !self.silent_close {
            self.send_conn_close(close);
            write_out(socket, &mut self.out).await?;
            await_close_ok(socket, inbuf, self.frame_max).await;
        }
        linger_close(socket).await;
        Ok(false)
    }

    async fn handle_input(&mut self, inbuf: &mut BytesMut) -> Result<(), ConnClose> {
        loop {
            // A publisher is blocked during a memory alarm: even frames already read wait.
            if self.alarm_on && self.publisher {
                return Ok(());
            }
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
                let cause = wire::MethodId::of(&method);
                let handled = if channel == 0 {
                    self.connection_method(method).await
                } else {
                    self.channel_method(channel, method, cause).await
                };
                handled.map_err(|close| close.caused_by(cause))
            }
            Frame::Header { channel, payload } => {
                let header = ContentHeader::parse(payload)
                    .map_err(|e| conn_close(e.reply_code(), format!("FRAME_ERROR - {e}")))?;
                self.content_header(channel, header).await
            }
            Frame::Body { channel, payload } => self.content_body(channel, payload).await,
        }
    }

    /// `cause`: the method's ids, named in the close of an error it causes.
    async fn channel_method(
        &mut self,
        ch: u16,
        method: AMQPClass,
        cause: wire::MethodId,
    ) -> Result<(), ConnClose> {
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
        match self.class_method(ch, method).await {
            Ok(()) => Ok(()),
            Err(failure) => {
                // What earlier methods caused (a basic.return, confirms) goes out first.
                self.complete_all().await;
                match failure {
                    wire::Failure::Channel(refusal) => {
                        self.close_channel(ch, refusal, cause).await;
                        Ok(())
                    }
                    wire::Failure::Connection(close) => Err(close),
                }
            }
        }
    }

    /// Methods of the exchange, queue, basic, confirm and tx classes on an open channel.
    async fn class_method(&mut self, ch: u16, method: AMQPClass) -> Result<(), wire::Failure> {
        match method {
            AMQPClass::Exchange(m) => Ok(self.exchange_class(ch, m).await?),
            AMQPClass::Queue(m) => Ok(self.queue_class(ch, m).await?),
            AMQPClass::Basic(m) => self.basic_class(ch, m).await,
            AMQPClass::Confirm(m) => Ok(self.confirm_class(ch, m)?),
            AMQPClass::Tx(m) => Ok(self.tx_class(ch, m).await?),
            other => Err(conn_close(
                wire::REPLY_NOT_IMPLEMENTED,
                format!("NOT_IMPLEMENTED - {:?}", other.get_amqp_method_id()),
            )
            .into()),
        }
    }
}
