//! Connections for the workload: which node a URI names, round-robin reconnects, and the
//! process-wide numbering of connection and channel incarnations.
//!
//! Every connection and every channel gets a number never used before in this process, so the
//! checker's ordering key `(conn, ch)` tells incarnations apart even across producers,
//! consumers and the drain.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use lapin::types::LongString;
use lapin::{Channel, Connection, ConnectionProperties};
use tokio::sync::watch;

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);
static NEXT_CH: AtomicU64 = AtomicU64::new(1);

/// Time allowed for one connect, for any other broker round trip (channel open, qos,
/// consume, declare, ack, publish) and for a polite close. A paused node accepts TCP and
/// then answers nothing; without these bounds a client (and `Workload::stop`) would hang.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const OP_TIMEOUT: Duration = Duration::from_secs(5);
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// A fresh connection number.
pub fn next_conn() -> u64 {
    NEXT_CONN.fetch_add(1, Ordering::Relaxed)
}

/// A fresh channel number.
pub fn next_ch() -> u64 {
    NEXT_CH.fetch_add(1, Ordering::Relaxed)
}

/// The `host:port` of an AMQP URI (what the history calls the node the client talked to).
pub fn node_of(uri: &str) -> String {
    let rest = uri.split_once("://").map_or(uri, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    rest.split(['/', '?']).next().unwrap_or(rest).to_string()
}

/// Awaits one broker operation, bounded by `OP_TIMEOUT`.
pub async fn bounded<T, E>(what: &str, op: impl Future<Output = Result<T, E>>) -> anyhow::Result<T>
where
    E: std::error::Error + Send + Sync + 'static,
{
    match tokio::time::timeout(OP_TIMEOUT, op).await {
        Ok(result) => result.with_context(|| what.to_string()),
        Err(_) => anyhow::bail!("{what}: no answer within {OP_TIMEOUT:?}"),
    }
}

/// True once the workload was told to stop, or dropped without being stopped.
pub fn stopped(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow() || stop.has_changed().is_err()
}

/// Returns once the workload stops (or was dropped).
pub async fn until_stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is dropped here, so callers' futures stay `Send`.
    let _ = stop.wait_for(|s| *s).await;
}

/// Sleeps for `delay`, or less if the workload stops meanwhile.
pub async fn pause(delay: Duration, stop: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::time::sleep(delay) => {}
        _ = until_stopped(stop) => {}
    }
}

/// One open connection and channel with their incarnation numbers.
pub struct Link {
    pub connection: Connection,
    pub channel: Channel,
    pub conn: u64,
    pub ch: u64,
    pub node: String,
}

impl Link {
    /// Connects to `uri` as `name` and opens one channel.
    pub async fn open(uri: &str, name: &str) -> anyhow::Result<Link> {
        let properties = ConnectionProperties::default()
            .with_connection_name(LongString::from(name.to_string()));
        let connection =
            tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(uri, properties))
                .await
                .with_context(|| format!("connect {name} to {uri}: timed out"))?
                .with_context(|| format!("connect {name} to {uri}"))?;
        let conn = next_conn();
        let channel = match bounded("channel.open", connection.create_channel()).await {
            Ok(channel) => channel,
            Err(error) => {
                let _ =
                    tokio::time::timeout(CLOSE_TIMEOUT, connection.close(200, "no channel")).await;
                return Err(error.context(format!("open a channel for {name}")));
            }
        };
        Ok(Link {
            connection,
            channel,
            conn,
            ch: next_ch(),
            node: node_of(uri),
        })
    }

    /// Closes the connection, bounded in time; errors do not matter (it may be dead already).
    pub async fn close(&self) {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.connection.close(200, "chaos done")).await;
    }

    /// True when the connection itself is gone (not only the channel).
    pub fn connection_lost(&self) -> bool {
        !self.connection.status().connected()
    }
}

/// Round-robin over the URIs, starting at `start`.
pub struct Rotation {
    uris: Vec<String>,
    next: usize,
}

impl Rotation {
    pub fn new(uris: &[String], start: usize) -> Rotation {
        Rotation {
            uris: uris.to_vec(),
            next: start,
        }
    }

    /// Connects to the next URI in turn, waiting `delay` between failed attempts, until it
    /// works or `stop` turns true (then `None`).
    pub async fn open(
        &mut self,
        name: &str,
        delay: Duration,
        stop: &mut watch::Receiver<bool>,
    ) -> Option<Link> {
        loop {
            if stopped(stop) || self.uris.is_empty() {
                return None;
            }
            let uri = self.uris[self.next % self.uris.len()].clone();
            self.next = self.next.wrapping_add(1);
            match Link::open(&uri, name).await {
                Ok(link) => return Some(link),
                Err(error) => {
                    tracing::debug!(%name, error = %format!("{error:#}"), "connect failed")
                }
            }
            pause(delay, stop).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_of_takes_host_and_port() {
        assert_eq!(
            node_of("amqp://guest:guest@127.0.0.1:5672/%2f"),
            "127.0.0.1:5672"
        );
        assert_eq!(node_of("amqp://10.0.0.2:5673"), "10.0.0.2:5673");
        assert_eq!(node_of("amqp://u:p@h:1?heartbeat=5"), "h:1");
    }

    #[test]
    fn incarnation_numbers_are_fresh() {
        let a = next_conn();
        let b = next_conn();
        assert!(b > a);
        assert_ne!(next_ch(), next_ch());
    }
}
