//! Shared by the process tests: run the real `warren` binary on a free port, and the lapin
//! set-up most of them repeat.

// Every test crate compiles this module and uses a different part of it.
#![allow(dead_code)]

pub mod clients;
pub mod cluster;
pub mod leader_kill;
pub mod raw;
pub mod tls;

use std::future::Future;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::StreamExt;
use lapin::message::BasicGetMessage;
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};

/// The bound on every awaited event: a broken server fails the test instead of hanging it.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `warren server`; killed (SIGKILL) when dropped or by `kill`.
pub struct Warren {
    child: Child,
}

impl Warren {
    /// Waits (at most `bound`) for the process to exit by itself; its status, if it did.
    pub fn wait_exit(&mut self, bound: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + bound;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Sends `signal` (e.g. `libc::SIGSTOP`, `libc::SIGCONT`) to the process.
    pub fn signal(&self, signal: i32) {
        let pid = i32::try_from(self.child.id()).expect("a pid fits an i32");
        // SAFETY: kill(2) on our own child's pid; it has not been reaped while we hold it.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(
            rc,
            0,
            "kill({pid}, {signal}): {}",
            std::io::Error::last_os_error()
        );
    }

    /// kill -9, and reap the process.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Warren {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Writes a config in `dir` for a free port and a data directory inside `dir`.
pub fn write_config(dir: &Path) -> (PathBuf, SocketAddr) {
    write_config_with(dir, "")
}

/// As [`write_config`], with `extra` TOML lines appended (e.g. `memory_high_watermark = 1`).
pub fn write_config_with(dir: &Path, extra: &str) -> (PathBuf, SocketAddr) {
    let addr = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("pick a free port");
    let config = dir.join("warren.toml");
    let data = dir.join("data");
    // Tests run many single nodes at once: each one's listener for the command-line tools
    // takes a port of its own, unless `extra` names one.
    let cluster = match extra.contains("cluster_listen") {
        true => String::new(),
        false => "cluster_listen = \"127.0.0.1:0\"\n".to_string(),
    };
    let text = format!(
        "amqp_listen = \"{addr}\"\ndata_dir = \"{}\"\n{cluster}{extra}\n",
        data.display()
    );
    std::fs::write(&config, text).expect("write config");
    (config, addr)
}

/// Starts `warren server --config CONFIG` and returns once it accepts connections.
pub fn start(config: &Path, addr: SocketAddr) -> Warren {
    start_with(config, addr, Stdio::null(), Stdio::inherit())
}

/// As [`start`], with the server's stdout and stderr going where the caller says.
pub fn start_with(config: &Path, addr: SocketAddr, stdout: Stdio, stderr: Stdio) -> Warren {
    start_with_env(config, addr, stdout, stderr, &[])
}

/// As [`start_with`], with `env` set on the server's process.
pub fn start_with_env(
    config: &Path,
    addr: SocketAddr,
    stdout: Stdio,
    stderr: Stdio,
    env: &[(String, String)],
) -> Warren {
    let child = Command::new(env!("CARGO_BIN_EXE_warren"))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(["server", "--config"])
        .arg(config)
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("spawn warren");
    let warren = Warren { child };
    // Bounded poll: the listener opens after the Raft node has recovered and leads.
    for _ in 0..400 {
        if listening(addr) {
            return warren;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("warren did not listen on {addr}");
}

/// Whether something listens on `addr`. A connect to a local port nobody listens on can
/// succeed by connecting the socket to itself (TCP simultaneous open, when the kernel picks
/// that very port as the source port), so a connection to ourselves does not count.
pub fn listening(addr: SocketAddr) -> bool {
    TcpStream::connect(addr).is_ok_and(|s| s.local_addr().ok() != s.peer_addr().ok())
}

/// A running `warren server` with its own temporary directory.
pub struct Server {
    _warren: Warren,
    pub addr: SocketAddr,
    /// Its config file (the command-line tools read it).
    pub config: PathBuf,
    _dir: tempfile::TempDir,
}

/// Starts a server on a free port with a fresh data directory.
pub fn start_server() -> Server {
    start_server_with("")
}

/// As [`start_server`], with `extra` TOML lines in its config.
pub fn start_server_with(extra: &str) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, addr) = write_config_with(dir.path(), extra);
    let warren = start(&config, addr);
    Server {
        _warren: warren,
        addr,
        config,
        _dir: dir,
    }
}

/// As [`start_server`], with a `cluster_listen` port of its own, so the command-line tools
/// (`warren cluster-status`, ...) reach it through its config.
pub fn start_server_with_cli() -> Server {
    let cluster_listen = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("pick a free port");
    start_server_with(&format!("cluster_listen = \"{cluster_listen}\""))
}

/// The URI of the default vhost as the default user.
pub fn uri(addr: SocketAddr) -> String {
    format!("amqp://guest:guest@{addr}/%2f")
}

/// Awaits `future`, failing the test with `what` if it takes longer than [`EVENT_TIMEOUT`].
pub async fn within<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(EVENT_TIMEOUT, future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// Connects as guest/guest with PLAIN.
pub async fn connect(addr: SocketAddr) -> Connection {
    within(
        "connection",
        Connection::connect(&uri(addr), ConnectionProperties::default()),
    )
    .await
    .expect("connect")
}

/// Declares `queue` (non-durable, not exclusive) on `channel`.
pub async fn declare_queue(channel: &lapin::Channel, queue: &str) {
    let declared = channel
        .queue_declare(queue, QueueDeclareOptions::default(), FieldTable::default())
        .await
        .expect("queue.declare");
    assert_eq!(declared.name().as_str(), queue);
}

/// A connection and a confirm-mode channel on which `queue` is declared.
pub async fn confirm_channel(addr: SocketAddr, queue: &str) -> (Connection, lapin::Channel) {
    let conn = connect(addr).await;
    let channel = conn.create_channel().await.expect("channel");
    declare_queue(&channel, queue).await;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    (conn, channel)
}

/// Publishes `body` to `queue` through the default exchange and asserts its confirm is an ack.
pub async fn publish_confirmed(channel: &lapin::Channel, queue: &str, body: &[u8]) {
    let confirm = channel
        .basic_publish(
            "",
            queue,
            BasicPublishOptions::default(),
            body,
            BasicProperties::default(),
        )
        .await
        .expect("publish");
    let confirmation = within("publisher confirm", confirm).await.expect("confirm");
    assert!(confirmation.is_ack(), "publish not acked: {confirmation:?}");
}

/// The number of ready messages in `queue`, from a passive queue.declare.
pub async fn ready_count(channel: &lapin::Channel, queue: &str) -> u32 {
    let options = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    within(
        "passive queue.declare",
        channel.queue_declare(queue, options, FieldTable::default()),
    )
    .await
    .expect("passive queue.declare")
    .message_count()
}

/// The consumer's next delivery, within [`EVENT_TIMEOUT`].
pub async fn next_delivery(consumer: &mut lapin::Consumer) -> lapin::message::Delivery {
    within("delivery", consumer.next())
        .await
        .expect("consumer open")
        .expect("delivery")
}

/// The AMQP reply code carried by `error` (a channel.close or connection.close from the
/// server), or a panic describing what came instead.
pub fn reply_code(error: &lapin::Error) -> u16 {
    match error.kind() {
        lapin::ErrorKind::ProtocolError(amqp) => amqp.get_id(),
        other => panic!("expected an AMQP error with a reply code, got {other:?}"),
    }
}

/// The reply code and text of the channel.close or connection.close carried by `error`.
pub fn refusal(error: &lapin::Error) -> (u16, String) {
    match error.kind() {
        lapin::ErrorKind::ProtocolError(amqp) => (amqp.get_id(), amqp.get_message().to_string()),
        other => panic!("expected an AMQP error with a reply code, got {other:?}"),
    }
}

/// Publishes `m{n}` for every n of `ns` to `queue` through the default exchange, each
/// confirmed (a confirm-mode channel).
pub async fn publish_numbered(
    channel: &lapin::Channel,
    queue: &str,
    ns: std::ops::RangeInclusive<u32>,
) {
    for n in ns {
        let body = format!("m{n}");
        publish_to(
            channel,
            "",
            queue,
            BasicProperties::default(),
            body.as_bytes(),
        )
        .await;
    }
}

/// Publishes `body` through `exchange` with `routing_key` and `properties` on a confirm-mode
/// channel, and asserts its confirm is an ack.
pub async fn publish_to(
    channel: &lapin::Channel,
    exchange: &str,
    routing_key: &str,
    properties: BasicProperties,
    body: &[u8],
) {
    let confirm = within(
        "basic.publish",
        channel.basic_publish(
            exchange,
            routing_key,
            BasicPublishOptions::default(),
            body,
            properties,
        ),
    )
    .await
    .expect("publish");
    let confirmation = within("publisher confirm", confirm).await.expect("confirm");
    assert!(confirmation.is_ack(), "publish not acked: {confirmation:?}");
}

/// basic.get with no_ack on `queue`: the message, or None on get-empty.
pub async fn get_no_ack(channel: &lapin::Channel, queue: &str) -> Option<BasicGetMessage> {
    within(
        "basic.get",
        channel.basic_get(queue, BasicGetOptions { no_ack: true }),
    )
    .await
    .expect("basic.get")
}

/// The errors `conn` will report (a channel.close from the server among them): take the
/// listener before the method that provokes one, then await [`closed_with`]. A later RPC on
/// the channel is no way to learn it: if the close arrives first, lapin refuses the RPC
/// locally (`InvalidChannelState`) and the server's reply code is not in that error.
pub fn channel_error(conn: &Connection) -> ConnectionEvents {
    Box::pin(conn.events_listener())
}

/// A connection's events, as lapin streams them.
pub type ConnectionEvents = std::pin::Pin<Box<dyn futures::Stream<Item = lapin::Event> + Send>>;

/// The first error `events` report ([`channel_error`]): its reply code and text.
pub async fn closed_with(mut events: ConnectionEvents) -> (u16, String) {
    loop {
        match within("a channel close", events.next()).await {
            Some(lapin::Event::Error(error)) => return refusal(&error),
            Some(_) => continue,
            None => panic!("the connection's events ended without an error"),
        }
    }
}

/// Awaits `future`, which must fail with a channel or connection close: its code and text.
pub async fn refused<T: std::fmt::Debug>(
    what: &str,
    future: impl Future<Output = lapin::Result<T>>,
) -> (u16, String) {
    match within(what, future).await {
        Ok(value) => panic!("{what} succeeded: {value:?}"),
        Err(error) => refusal(&error),
    }
}
