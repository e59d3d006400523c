//! The network the tests control: one TCP proxy per directed link between hosts.
//!
//! A host is a place a node runs (a RAM node restarted under a new Raft id is still on the
//! same host). Node `i` dials its peers through its own proxies, one per target host `j`
//! (`ClusterNetwork::with_dialer`); each proxy relays bytes to `j`'s real listener, so
//! every Raft RPC crosses the real cookie-authenticated transport. Link `(i, j)` carries
//! the RPCs `i` sends to `j` and their replies: cutting it silences `i -> j` calls only,
//! like a directed link in openraft's test router.
//!
//! A link is up, or cut (live connections are closed, new ones closed on accept, which the
//! dialer sees as a refused connection), and may add a delay to every chunk it relays
//! (each way) or cut a connection at a chunk with some probability (a seeded generator).
//! The proxies never inspect or alter the bytes they pass.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use warren::raft::peer_network::Dialer;

/// A place a node runs, numbered from 1.
pub type Host = u64;

/// The most bytes a proxy relays at once: one chunk, the unit of delay and drop.
const CHUNK_BYTES_MAX: usize = 64 * 1024;

/// What a link does to its traffic. The default is a healthy link.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fault {
    /// Partitioned: no connection lives on this link.
    pub cut: bool,
    /// The chance, per thousand chunks, that a chunk cuts its connection instead of passing.
    pub drop_per_mille: u32,
    /// Added before each chunk is passed on, each way.
    pub delay: Duration,
}

/// What the faults did so far, so a test can show its faults were exercised.
#[derive(Debug, Default)]
pub struct Counts {
    /// Connections closed on accept because their link was cut.
    pub refused: AtomicU64,
    /// Connections cut by a dropped chunk.
    pub dropped: AtomicU64,
    /// Chunks held back by a delay.
    pub delayed: AtomicU64,
}

/// The proxies and their controls. Dropping it closes every proxy and relayed connection.
pub struct Net {
    /// Each host's real listener address.
    real: BTreeMap<Host, String>,
    /// Each directed link's proxy address.
    proxy: BTreeMap<(Host, Host), String>,
    faults: BTreeMap<(Host, Host), watch::Sender<Fault>>,
    counts: Arc<Counts>,
    tasks: Mutex<JoinSet<()>>,
}

impl Net {
    /// Starts a proxy for every ordered pair of `real` hosts; `seed` seeds every link's drops.
    pub async fn start(real: BTreeMap<Host, String>, seed: u64) -> Net {
        let mut proxy = BTreeMap::new();
        let mut faults = BTreeMap::new();
        let mut tasks = JoinSet::new();
        let counts = Arc::new(Counts::default());
        for &from in real.keys() {
            for (&to, to_addr) in &real {
                if from == to {
                    continue;
                }
                let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
                let addr = listener.local_addr().expect("proxy addr").to_string();
                let (fault, watched) = watch::channel(Fault::default());
                let rng = SplitMix64(seed ^ (from << 32) ^ to);
                let link = Link {
                    to: to_addr.clone(),
                    fault: watched,
                    counts: Arc::clone(&counts),
                };
                tasks.spawn(serve_link(listener, link, rng));
                proxy.insert((from, to), addr);
                faults.insert((from, to), fault);
            }
        }
        Net {
            real,
            proxy,
            faults,
            counts,
            tasks: Mutex::new(tasks),
        }
    }

    /// What the faults have done so far.
    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    /// The dialer for nodes on host `from`: a target's real address becomes the proxy of
    /// the link to its host; an address of no known host is dialed as it is.
    pub fn dialer(&self, from: Host) -> Dialer {
        let routes: BTreeMap<String, String> = self
            .real
            .iter()
            .filter_map(|(to, real)| Some((real.clone(), self.proxy.get(&(from, *to))?.clone())))
            .collect();
        Dialer::new(move |_target, addr| {
            routes
                .get(addr)
                .cloned()
                .unwrap_or_else(|| addr.to_string())
        })
    }

    pub fn hosts(&self) -> impl Iterator<Item = Host> + '_ {
        self.real.keys().copied()
    }

    /// Sets link `from -> to`'s fault.
    pub fn set(&self, from: Host, to: Host, fault: Fault) {
        tracing::info!(from, to, ?fault, "net: set link");
        self.faults[&(from, to)].send_replace(fault);
    }

    fn modify(&self, from: Host, to: Host, f: impl FnOnce(&mut Fault)) {
        self.faults[&(from, to)].send_modify(f);
    }

    /// Cuts both directions between `a` and `b`.
    pub fn cut_between(&self, a: Host, b: Host) {
        tracing::info!(a, b, "net: cut both ways");
        self.modify(a, b, |f| f.cut = true);
        self.modify(b, a, |f| f.cut = true);
    }

    /// Restores both directions between `a` and `b`.
    pub fn heal_between(&self, a: Host, b: Host) {
        tracing::info!(a, b, "net: heal both ways");
        self.set(a, b, Fault::default());
        self.set(b, a, Fault::default());
    }

    /// Sets `fault` on every link.
    pub fn set_all(&self, fault: Fault) {
        tracing::info!(?fault, "net: set every link");
        for link in self.faults.values() {
            link.send_replace(fault.clone());
        }
    }

    /// Cuts every link into and out of `host`.
    pub fn isolate(&self, host: Host) {
        let others: Vec<Host> = self.hosts().filter(|h| *h != host).collect();
        self.partition(&[host], &others);
    }

    /// Cuts every link between a host of `a` and a host of `b`, both ways.
    pub fn partition(&self, a: &[Host], b: &[Host]) {
        for &x in a {
            for &y in b {
                self.cut_between(x, y);
            }
        }
    }

    /// Restores every link to health.
    pub fn heal_all(&self) {
        tracing::info!("net: heal all links");
        for fault in self.faults.values() {
            fault.send_replace(Fault::default());
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .abort_all();
    }
}

/// What a link's proxy needs: where it relays to, its fault, and the counters.
#[derive(Clone)]
struct Link {
    to: String,
    fault: watch::Receiver<Fault>,
    counts: Arc<Counts>,
}

/// One link's proxy: relays each accepted connection under the link's fault.
/// Connections live in this task's set, so ending the task ends them.
async fn serve_link(listener: TcpListener, link: Link, mut rng: SplitMix64) {
    let mut relays = JoinSet::new();
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            continue;
        };
        while relays.try_join_next().is_some() {}
        if link.fault.borrow().cut {
            link.counts.refused.fetch_add(1, Ordering::Relaxed);
            drop(inbound);
            continue;
        }
        let rngs = (SplitMix64(rng.next()), SplitMix64(rng.next()));
        relays.spawn(relay(inbound, link.clone(), rngs));
    }
}

/// Relays one connection both ways until either side closes or the link is cut.
async fn relay(inbound: TcpStream, link: Link, rngs: (SplitMix64, SplitMix64)) {
    let Ok(outbound) = TcpStream::connect(&link.to).await else {
        return;
    };
    inbound.set_nodelay(true).ok();
    outbound.set_nodelay(true).ok();
    let (in_rd, in_wr) = inbound.into_split();
    let (out_rd, out_wr) = outbound.into_split();
    let forth = pump(in_rd, out_wr, &link, rngs.0);
    let back = pump(out_rd, in_wr, &link, rngs.1);
    let mut fault = link.fault.clone();
    // Whichever ends first ends the connection: an RPC connection is useless half-closed.
    tokio::select! {
        _ = forth => {}
        _ = back => {}
        _ = fault.wait_for(|f| f.cut) => {}
    }
}

/// Copies chunks from `rd` to `wr`, each delayed or dropped as the link's fault says.
async fn pump(mut rd: OwnedReadHalf, mut wr: OwnedWriteHalf, link: &Link, mut rng: SplitMix64) {
    let mut chunk = vec![0u8; CHUNK_BYTES_MAX];
    loop {
        let n = match rd.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let now = link.fault.borrow().clone();
        if now.cut {
            return;
        }
        if rng.below(1000) < u64::from(now.drop_per_mille) {
            link.counts.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if !now.delay.is_zero() {
            link.counts.delayed.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(now.delay).await;
        }
        if wr.write_all(&chunk[..n]).await.is_err() {
            return;
        }
    }
}

/// A small seeded generator (SplitMix64): the drops of a run follow from its seed and the
/// order chunks arrive in.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[cfg(test)]
#[path = "net_tests.rs"]
mod tests;
