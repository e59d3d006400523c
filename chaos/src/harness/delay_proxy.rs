//! `warren-chaos delay-proxy`: latency on one node's outgoing cluster connections.
//!
//! This kernel has no `tc netem`, so the `latency` nemesis runs this proxy inside a node's
//! network namespace and sends the node's new connections to its peers' cluster port through
//! it (an iptables `nat OUTPUT` REDIRECT). Each accepted connection learns its real
//! destination from `SO_ORIGINAL_DST`, connects there itself (with `SO_MARK` set, so the
//! REDIRECT rule lets it pass) and relays both ways, holding every chunk back by the delay.
//! Chunks queue while they wait, so a delay adds latency without capping throughput. The
//! proxied connections still leave from the node's own address, so partitions keep working.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The mark on the proxy's own connections; the REDIRECT rule skips marked packets.
pub const MARK: u32 = 0x5752;
/// Chunks waiting out their delay, per direction of one connection.
const QUEUED_CHUNKS_MAX: usize = 1024;

/// Accepts redirected connections on `port` until killed.
pub async fn serve(port: u16, delay: Duration) -> anyhow::Result<()> {
    let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, port))
        .await
        .with_context(|| format!("listen on port {port}"))?;
    loop {
        let (inbound, _) = listener.accept().await?;
        tokio::spawn(async move {
            if let Err(e) = proxy_one(inbound, delay).await {
                eprintln!("delay-proxy: {e:#}");
            }
        });
    }
}

async fn proxy_one(inbound: TcpStream, delay: Duration) -> anyhow::Result<()> {
    let target = original_dst(&inbound)?;
    let socket = TcpSocket::new_v4()?;
    set_mark(&socket)?;
    let outbound = socket
        .connect(SocketAddr::V4(target))
        .await
        .with_context(|| format!("connect {target}"))?;
    relay(inbound, outbound, delay).await;
    Ok(())
}

/// Relays between `a` and `b`, each chunk delayed by `delay`, until either side closes.
pub async fn relay(a: TcpStream, b: TcpStream, delay: Duration) {
    let (a_read, a_write) = a.into_split();
    let (b_read, b_write) = b.into_split();
    tokio::select! {
        _ = one_way(a_read, b_write, delay) => {}
        _ = one_way(b_read, a_write, delay) => {}
    }
}

/// Reads chunks from `from` and writes each to `to` once `delay` has passed since it came.
async fn one_way(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Bytes)>(QUEUED_CHUNKS_MAX);
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = from.read(&mut buf).await {
            if n == 0
                || tx
                    .send((Instant::now() + delay, Bytes::copy_from_slice(&buf[..n])))
                    .await
                    .is_err()
            {
                break;
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

/// Where the connection was going before the REDIRECT (netfilter's `SO_ORIGINAL_DST`).
fn original_dst(stream: &TcpStream) -> anyhow::Result<SocketAddrV4> {
    // SAFETY: getsockopt writes at most `len` bytes into `addr`, a plain C struct.
    let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_IP,
            libc::SO_ORIGINAL_DST,
            (&mut addr as *mut libc::sockaddr_in).cast(),
            &mut len,
        )
    };
    anyhow::ensure!(
        rc == 0,
        "SO_ORIGINAL_DST: {} (was the connection redirected?)",
        std::io::Error::last_os_error()
    );
    let ip = Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr));
    Ok(SocketAddrV4::new(ip, u16::from_be(addr.sin_port)))
}

fn set_mark(socket: &TcpSocket) -> anyhow::Result<()> {
    let mark = MARK;
    // SAFETY: setsockopt reads exactly size_of::<u32>() bytes from `mark`.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_MARK,
            (&mark as *const u32).cast(),
            std::mem::size_of::<u32>() as libc::socklen_t,
        )
    };
    anyhow::ensure!(rc == 0, "SO_MARK: {}", std::io::Error::last_os_error());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes arrive intact, in order, each way, and no sooner than the delay.
    #[tokio::test]
    async fn relay_delays_each_way_and_keeps_order() {
        let echo = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let echo_addr = echo.local_addr().expect("addr");
        tokio::spawn(async move {
            let (mut s, _) = echo.accept().await.expect("accept");
            let mut buf = [0u8; 4096];
            while let Ok(n) = s.read(&mut buf).await {
                if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        });
        let front = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let front_addr = front.local_addr().expect("addr");
        let delay = Duration::from_millis(60);
        tokio::spawn(async move {
            let (inbound, _) = front.accept().await.expect("accept");
            let outbound = TcpStream::connect(echo_addr).await.expect("connect");
            relay(inbound, outbound, delay).await;
        });
        let mut client = TcpStream::connect(front_addr).await.expect("connect");
        let sent: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        let start = Instant::now();
        client.write_all(&sent).await.expect("write");
        let mut got = vec![0u8; sent.len()];
        client.read_exact(&mut got).await.expect("read");
        assert_eq!(got, sent);
        assert!(start.elapsed() >= 2 * delay, "{:?}", start.elapsed());
    }
}
