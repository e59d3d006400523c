//! The batching loop: packs whatever submissions have queued into one log entry (up to a
//! command count and a byte budget), in order, and hands it to the sequencer with a bounded
//! number of entries unanswered; then splits each entry's replies back over its
//! submissions. A submission's commands always share one entry (tx.commit relies on it).

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Semaphore};

use super::proposer::{SubmitReplies, Unknown};
use super::sequencer::Pending;
use crate::broker::command::Command;
use crate::limits::{
    PROPOSE_BATCH_BYTES_MAX, PROPOSE_BATCH_COMMANDS_MAX, PROPOSE_ENTRIES_IN_FLIGHT_MAX,
};
use crate::raft::node::{wall_clock_ms, Replies};
use crate::raft::propose_error::ProposeError;
use crate::raft::state_machine::Batch;

/// Commands one caller wants in one entry, and where their replies go.
pub(super) struct Submission {
    pub commands: Vec<Command>,
    pub reply: oneshot::Sender<SubmitReplies>,
}

/// Packs queued submissions into entries, in order, and hands them to the sequencer, with a
/// bounded number unanswered.
pub(super) async fn batch_loop(
    entries: mpsc::Sender<Pending>,
    mut submissions: mpsc::Receiver<Submission>,
) {
    let in_flight = Arc::new(Semaphore::new(PROPOSE_ENTRIES_IN_FLIGHT_MAX));
    while let Some(first) = submissions.recv().await {
        // Waiting for a free slot is what lets the next batch grow.
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        let mut n_commands = batch[0].commands.len();
        let mut n_bytes = content_bytes(&batch[0].commands);
        while n_commands < PROPOSE_BATCH_COMMANDS_MAX && n_bytes < PROPOSE_BATCH_BYTES_MAX {
            match submissions.try_recv() {
                Ok(next) => {
                    n_commands += next.commands.len();
                    n_bytes += content_bytes(&next.commands);
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        let mut entry = Batch {
            time_ms: wall_clock_ms(),
            commands: Vec::with_capacity(n_commands),
            origin: None, // numbered by the sequencer
        };
        let mut waiters = Vec::with_capacity(batch.len());
        for submission in batch {
            waiters.push((submission.commands.len(), submission.reply));
            entry.commands.extend(submission.commands);
        }
        let pending = Pending {
            batch: entry,
            waiters,
            permit,
        };
        if let Err(mpsc::error::SendError(lost)) = entries.send(pending).await {
            let stopped = ProposeError::unknown("sequencer stopped");
            answer(lost.waiters, Err(stopped));
        }
    }
}

/// Splits an entry's replies back over the submissions it was built from.
pub(super) fn answer(waiters: Vec<(usize, oneshot::Sender<SubmitReplies>)>, replies: Replies) {
    match replies {
        Ok(replies) => {
            let mut replies = replies.into_iter();
            for (n, waiter) in waiters {
                let _ = waiter.send(Ok(replies.by_ref().take(n).collect()));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "raft commit failed; outcomes unknown");
            for (_, waiter) in waiters {
                let _ = waiter.send(Err(Unknown));
            }
        }
    }
}

fn content_bytes(commands: &[Command]) -> usize {
    commands
        .iter()
        .map(|c| match c {
            Command::Publish { content, .. } => content.body.len() + content.properties.len(),
            _ => 64,
        })
        .sum()
}
