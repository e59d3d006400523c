//! kill -9 mid-stream loses no confirmed message: publish with confirms, kill the process
//! while publishes are in flight, restart it on the same data directory, drain the queue, and
//! find every confirmed message.

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};

const QUEUE: &str = "durable-q";
/// After this many confirms the server is killed while more publishes are in flight.
const KILL_AFTER_CONFIRMS: usize = 300;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(config: &Path, addr: SocketAddr) -> Server {
    let child = Command::new(env!("CARGO_BIN_EXE_warren"))
        .args(["server", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn warren");
    let server = Server(child);
    for _ in 0..400 {
        if TcpStream::connect(addr).is_ok() {
            return server;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("warren did not listen on {addr}");
}

async fn connect(addr: SocketAddr) -> lapin::Channel {
    let uri = format!("amqp://guest:guest@{addr}/%2f");
    let conn = Connection::connect(&uri, ConnectionProperties::default())
        .await
        .expect("connect");
    let channel = conn.create_channel().await.expect("channel");
    channel
        .queue_declare(
            QUEUE,
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("queue.declare");
    // Keep the connection alive as long as the channel is used.
    std::mem::forget(conn);
    channel
}

#[tokio::test]
async fn kill_9_mid_stream_loses_no_confirmed_message() {
    let addr = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("warren.toml");
    let data = dir.path().join("data");
    std::fs::write(
        &config,
        format!(
            "amqp_listen = \"{addr}\"\ndata_dir = \"{}\"\n",
            data.display()
        ),
    )
    .expect("write config");

    tracing::info!("--- publish with confirms, kill -9 while publishes are in flight");
    let mut server = start(&config, addr);
    let channel = connect(addr).await;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    let mut pending = Vec::new();
    for n in 0..2000u32 {
        let publish = channel
            .basic_publish(
                "",
                QUEUE,
                BasicPublishOptions::default(),
                n.to_string().as_bytes(),
                BasicProperties::default().with_delivery_mode(2),
            )
            .await;
        match publish {
            Ok(confirm) => pending.push((n, confirm)),
            Err(_) => break,
        }
    }
    let mut confirmed = BTreeSet::new();
    for (n, confirm) in pending {
        if confirmed.len() == KILL_AFTER_CONFIRMS {
            server.0.kill().expect("kill -9");
            server.0.wait().expect("reap");
        }
        match confirm.await {
            Ok(c) if c.is_ack() => {
                confirmed.insert(n);
            }
            _ => {}
        }
    }
    assert!(
        confirmed.len() >= KILL_AFTER_CONFIRMS,
        "only {} confirms before the kill",
        confirmed.len()
    );
    assert!(
        confirmed.len() < 2000,
        "the kill came after every publish was confirmed"
    );
    drop(server);

    tracing::info!("--- restart on the same data directory and drain");
    let _server = start(&config, addr);
    let channel = connect(addr).await;
    let declared = channel
        .queue_declare(
            QUEUE,
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("passive declare after restart");
    let backlog = declared.message_count() as usize;
    assert!(
        backlog >= confirmed.len(),
        "{backlog} messages for {} confirms",
        confirmed.len()
    );
    let mut consumer = channel
        .basic_consume(
            QUEUE,
            "drain",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let mut seen = BTreeSet::new();
    while seen.len() < backlog {
        let delivery = tokio::time::timeout(Duration::from_secs(10), consumer.next())
            .await
            .expect("delivery within 10 s")
            .expect("consumer open")
            .expect("delivery");
        let n: u32 = std::str::from_utf8(&delivery.data)
            .expect("utf8")
            .parse()
            .expect("number");
        seen.insert(n);
        delivery.ack(BasicAckOptions::default()).await.expect("ack");
    }
    let lost: Vec<&u32> = confirmed.difference(&seen).collect();
    assert!(
        lost.is_empty(),
        "confirmed but lost after kill -9: {lost:?}"
    );
}
