//! Connections and queues: what every producer and consumer needs before the clock starts.
//!
//! Queues are declared once, from a short-lived connection, before any producer or consumer
//! connects, so a run never measures `queue.declare`.

use std::time::Duration;

use anyhow::Context;
use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Connection, ConnectionProperties};

use super::args::BenchArgs;

/// Opens a connection named `name` (as shown in the broker's connection list).
pub async fn connect(uri: &str, name: &str) -> anyhow::Result<Connection> {
    let properties =
        ConnectionProperties::default().with_connection_name(LongString::from(name.to_string()));
    Connection::connect(uri, properties)
        .await
        .with_context(|| format!("connect {name} to {uri}"))
}

/// Attempts at declaring the queues before the run gives up.
const DECLARE_ATTEMPTS: u32 = 5;
/// Pause between attempts.
const DECLARE_PAUSE: Duration = Duration::from_millis(500);

/// Declares every queue of the run, retrying on a fresh connection: a scenario may start
/// right after a node restart, while the cluster still settles (a broker may then close a
/// connection with a hard error that a second attempt does not meet).
pub async fn declare_queues(args: &BenchArgs) -> anyhow::Result<()> {
    let mut attempt = 1;
    loop {
        match declare_queues_once(args).await {
            Ok(()) => return Ok(()),
            Err(error) if attempt >= DECLARE_ATTEMPTS => return Err(error),
            Err(error) => eprintln!("warren-bench: declare attempt {attempt}: {error:#}"),
        }
        attempt += 1;
        tokio::time::sleep(DECLARE_PAUSE).await;
    }
}

/// Declares every queue of the run: durable, with the `x-queue-type` argument.
async fn declare_queues_once(args: &BenchArgs) -> anyhow::Result<()> {
    let connection = connect(args.uri(0), "warren-bench setup").await?;
    let channel = connection
        .create_channel()
        .await
        .context("open setup channel")?;
    let mut arguments = FieldTable::default();
    arguments.insert(
        ShortString::from("x-queue-type"),
        AMQPValue::LongString(LongString::from(args.queue_type.as_str())),
    );
    let options = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    for index in 0..args.queues {
        let name = args.queue_name(index);
        channel
            .queue_declare(&name, options, arguments.clone())
            .await
            .with_context(|| format!("declare queue {name}"))?;
    }
    connection
        .close(200, "setup done")
        .await
        .context("close setup connection")?;
    Ok(())
}
