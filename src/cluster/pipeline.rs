//! A pipelined connection to one peer: requests go out without waiting for the responses to
//! earlier ones, and each response is matched to its request by position (the server answers
//! a connection's requests in order, `super::transport`). A follower's sequencer keeps
//! several batches on their way to the leader this way instead of one per round trip.
//!
//! Any failure (a write, a read, a bad frame) ends the whole pipeline: every request still
//! waiting gets an error, and the owner opens a new pipeline. A request that was sent may
//! still have been carried out; callers resend only what is safe to resend (forwarded
//! batches carry their proposer's sequence number).

use std::time::Duration;

use tokio::io::BufReader;
use tokio::sync::{mpsc, oneshot};

use super::stream::{PeerReader, PeerWriter};
use super::transport::{Connection, PeerClient};
use super::wire::{read_frame, write_frame};
use super::{NodeId, Protocol};
use crate::limits::CLUSTER_FRAME_MAX;

/// Where the response to one sent request arrives; a closed channel means the pipeline
/// broke before it came.
pub type Answer<P> = oneshot::Receiver<anyhow::Result<<P as Protocol>::Response>>;

type Waiter<P> = oneshot::Sender<anyhow::Result<<P as Protocol>::Response>>;

pub struct PeerPipeline<P: Protocol> {
    to: NodeId,
    wr: PeerWriter,
    /// The senders of the requests written and not yet answered, in order.
    waiting: mpsc::UnboundedSender<Waiter<P>>,
    reader: tokio::task::JoinHandle<()>,
    broken: bool,
}

impl<P: Protocol> PeerPipeline<P> {
    /// Opens a connection to `client`'s node (connect and handshake, each within its
    /// timeout) and starts reading its responses.
    pub async fn open(client: &PeerClient<P>) -> anyhow::Result<Self> {
        let Connection { rd, wr } = client.open().await?;
        let (waiting, queue) = mpsc::unbounded_channel();
        let to = client.to();
        Ok(PeerPipeline {
            to,
            wr,
            waiting,
            reader: tokio::spawn(read_responses::<P>(rd, queue, to)),
            broken: false,
        })
    }

    /// The node at the other end.
    pub fn to(&self) -> NodeId {
        self.to
    }

    /// Whether a send or a read failed: the pipeline is of no further use.
    pub fn is_broken(&self) -> bool {
        self.broken || self.reader.is_finished()
    }

    /// Writes `request` (within `timeout`: a peer that stopped reading fills the socket) and
    /// returns where its response will arrive. A failed write breaks the pipeline.
    pub async fn send(
        &mut self,
        request: &P::Request,
        timeout: Duration,
    ) -> anyhow::Result<Answer<P>> {
        anyhow::ensure!(!self.is_broken(), "pipeline to node {} is broken", self.to);
        let (waiter, answer) = oneshot::channel();
        // Queued before the write, so the reader never sees a response before its waiter.
        if self.waiting.send(waiter).is_err() {
            self.broken = true;
            anyhow::bail!("pipeline to node {} closed", self.to);
        }
        let written = tokio::time::timeout(timeout, write_frame(&mut self.wr, request)).await;
        match written {
            Ok(Ok(())) => Ok(answer),
            Ok(Err(e)) => {
                self.broken = true;
                Err(anyhow::Error::new(e).context(format!("send to node {}", self.to)))
            }
            Err(_) => {
                self.broken = true;
                anyhow::bail!("send to node {}: not written in {timeout:?}", self.to)
            }
        }
    }
}

impl<P: Protocol> Drop for PeerPipeline<P> {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Hands each response to the oldest waiter; ends at the first failure, which drops the
/// remaining waiters (their answers see a closed channel).
async fn read_responses<P: Protocol>(
    mut rd: BufReader<PeerReader>,
    mut queue: mpsc::UnboundedReceiver<Waiter<P>>,
    to: NodeId,
) {
    while let Some(waiter) = queue.recv().await {
        let response = read_frame(&mut rd, CLUSTER_FRAME_MAX).await;
        let failed = response.is_err();
        let response = response
            .map_err(|e| anyhow::Error::new(e).context(format!("read a response from node {to}")));
        // The sender may have stopped waiting (its attempt was dropped): nothing to do.
        let _ = waiter.send(response);
        if failed {
            return;
        }
    }
}
