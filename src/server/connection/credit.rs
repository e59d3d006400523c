//! Credit back for the consumers their prefetch does not bound (no_ack, prefetch 0).
//!
//! The state hands such a consumer at most `CONSUMER_CREDIT_WINDOW` deliveries ahead
//! (`broker/queue.rs`); this connection counts the ones it has written to the socket and,
//! every `CONSUMER_CREDIT_RETURN_AFTER` of them, proposes `Command::Credit` for that many.
//! So what waits in this connection's dispatch queue stays within about one window per
//! consumer, however large the backlog, and a client that stops reading stops the flow
//! (its socket buffer fills, the write waits, no credit returns).
//!
//! Must never: propose a credit before its deliveries are handed to the socket, or lose a
//! credit whose outcome is unknown (the consumer would stall): it is proposed again. A
//! credit applied twice is harmless, since the state caps credit at the window.

use std::sync::Arc;

use super::Conn;
use crate::broker::command::Command;
use crate::broker::queue::ConsumerKey;
use crate::limits::{CONSUMER_CREDIT_RETRIES_MAX, CONSUMER_CREDIT_RETURN_AFTER};

impl Conn {
    /// Counts one delivery to `consumer` written into the output buffer, if the consumer is
    /// windowed; a full run becomes a Credit that goes once the buffer reaches the socket.
    pub(super) fn count_written(&mut self, queue: &str, consumer: &ConsumerKey) {
        let Some(state) = self.channels.get_mut(&consumer.channel) else {
            return;
        };
        let Some(n_written) = state.written.get_mut(&consumer.tag) else {
            return; // bound by its prefetch: acks pace it
        };
        *n_written += 1;
        if *n_written < CONSUMER_CREDIT_RETURN_AFTER {
            return;
        }
        let n = std::mem::take(n_written);
        self.credit_due.push(Command::Credit {
            queue: queue.to_string(),
            consumer: consumer.clone(),
            n,
        });
    }

    /// Proposes the credits of deliveries now written to the socket, without waiting for
    /// their commit (one submission: they share an entry).
    pub(super) async fn return_credit(&mut self) {
        if self.credit_due.is_empty() {
            return;
        }
        let due: Vec<Command> = std::mem::take(&mut self.credit_due)
            .into_iter()
            .map(|c| self.in_vhost(c))
            .collect();
        let receiver = self.proposer.submit(due.clone()).await;
        let proposer = Arc::clone(&self.proposer);
        tokio::spawn(async move {
            if matches!(receiver.await, Ok(Ok(_))) {
                return;
            }
            // The entry may not have committed (no leader, a leader lost mid-commit; the
            // sequencer says so only after trying for a while): again, with backoff, a
            // bounded number of times; past that the node cannot commit anything and its
            // connections end anyway.
            let retries = Some(CONSUMER_CREDIT_RETRIES_MAX);
            let n = due.len();
            if !proposer.submit_until_committed(due, retries).await {
                tracing::warn!(n, "consumer credit not committed; dropped");
            }
        });
    }
}
