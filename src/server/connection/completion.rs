//! Replies to submitted commands, handled in submission order: confirms (coalesced with
//! `multiple` where a run of tags completes together), basic.return before the confirm of an
//! unroutable mandatory publish, and channel errors for refused commands. Replies that need
//! no commit (confirm.select-ok, flow-ok...) queue behind what was submitted before them,
//! so every frame on a channel follows the order of the methods that caused it (RabbitMQ's
//! channel answers its methods one at a time).

use std::collections::VecDeque;

use amq_protocol::protocol::{basic, AMQPClass};
use tokio::sync::oneshot;

use super::wire::MethodId;
use super::Conn;
use crate::broker::command::{Command, Content, Refusal, Reply};
use crate::server::proposer::{SubmitReplies, Unknown};

/// A submission whose replies are awaited, and what to do with them.
pub struct InFlight {
    then: Then,
    replies: oneshot::Receiver<SubmitReplies>,
}

pub enum Then {
    /// A publish outside a transaction.
    Publish {
        ch: u16,
        /// The confirm's delivery tag, on a channel in confirm mode.
        confirm_tag: Option<u64>,
        /// What to send back in basic.return if a mandatory publish reaches no queue.
        returned: Option<Returned>,
    },
    /// Acks, nacks, rejects: nothing to send unless refused (a channel.close naming
    /// `cause`).
    Quiet { ch: u16, cause: MethodId },
    /// A reply that needed no commit, sent once everything before it is handled.
    Reply { ch: u16, method: Box<AMQPClass> },
}

/// A mandatory publish, kept until we know whether it was routed.
pub struct Returned {
    pub exchange: String,
    pub routing_key: String,
    pub content: Content,
}

/// The replies of the oldest in-flight submission (never resolves when there is none).
pub async fn next_replies(in_flight: &mut VecDeque<InFlight>) -> SubmitReplies {
    match in_flight.front_mut() {
        Some(front) => (&mut front.replies).await.unwrap_or(Err(Unknown)),
        None => std::future::pending().await,
    }
}

impl Conn {
    /// Submits `commands` as one unit and goes on; `then` handles the replies later.
    pub(super) async fn pipeline(&mut self, commands: Vec<Command>, then: Then) {
        let replies = self.submit(commands).await;
        self.in_flight.push_back(InFlight { then, replies });
    }

    /// Sends `method`, a reply that needs no commit, after every in-flight submission is
    /// handled (at once when none is): a basic.return or confirm of an earlier publish must
    /// not trail it.
    pub(super) fn reply_in_order(&mut self, ch: u16, method: AMQPClass) {
        if self.in_flight.is_empty() {
            self.flush_confirms();
            self.send_method(ch, &method);
            return;
        }
        let (done, replies) = oneshot::channel();
        // The receiver is held just below: the send cannot fail.
        let _ = done.send(Ok(Vec::new()));
        let then = Then::Reply {
            ch,
            method: Box::new(method),
        };
        self.in_flight.push_back(InFlight { then, replies });
    }

    /// Submits the connection's `commands`, each in the connection's vhost.
    pub(super) async fn submit(
        &self,
        commands: Vec<Command>,
    ) -> tokio::sync::oneshot::Receiver<SubmitReplies> {
        let commands = commands.into_iter().map(|c| self.in_vhost(c)).collect();
        self.proposer.submit(commands).await
    }

    /// Commits one command and returns its reply. Everything submitted before it is
    /// handled first: it was applied first, and its confirms must not trail this reply.
    pub(super) async fn propose_reply(&mut self, command: Command) -> Result<Reply, Refusal> {
        match self.propose_all(vec![command]).await?.pop() {
            Some(reply) => reply,
            None => Err(Unknown::refusal()),
        }
    }

    /// Commits `commands` as one submission (one log entry) and returns their replies, after
    /// handling everything submitted before them; 541 when the outcome is unknown.
    pub(super) async fn propose_all(
        &mut self,
        commands: Vec<Command>,
    ) -> Result<Vec<Result<Reply, Refusal>>, Refusal> {
        let expected = commands.len();
        for command in &commands {
            self.permit(command)?;
        }
        let receiver = self.submit(commands).await;
        self.complete_all().await;
        match receiver.await {
            Ok(Ok(replies)) if replies.len() == expected => Ok(replies),
            _ => Err(Unknown::refusal()),
        }
    }

    /// Handles the oldest in-flight submission, whose replies are `replies`.
    pub(super) async fn complete_in_flight(&mut self, replies: SubmitReplies) {
        if let Some(front) = self.in_flight.pop_front() {
            self.complete(front.then, replies).await;
        }
    }

    /// Handles every in-flight submission that has already completed.
    pub(super) async fn complete_ready(&mut self) {
        while let Some(front) = self.in_flight.front_mut() {
            let replies = match front.replies.try_recv() {
                Ok(replies) => replies,
                Err(oneshot::error::TryRecvError::Empty) => break,
                Err(oneshot::error::TryRecvError::Closed) => Err(Unknown),
            };
            self.complete_in_flight(replies).await;
        }
    }

    /// Waits for and handles every in-flight submission.
    pub(super) async fn complete_all(&mut self) {
        while let Some(front) = self.in_flight.pop_front() {
            let replies = front.replies.await.unwrap_or(Err(Unknown));
            self.complete(front.then, replies).await;
        }
        self.flush_confirms();
    }

    async fn complete(&mut self, then: Then, replies: SubmitReplies) {
        let replies = replies.unwrap_or_else(|Unknown| vec![Err(Unknown::refusal())]);
        let (ch, confirm_tag, returned, cause) = match then {
            Then::Publish {
                ch,
                confirm_tag,
                returned,
            } => (ch, confirm_tag, returned, MethodId::BASIC_PUBLISH),
            Then::Quiet { ch, cause } => (ch, None, None, cause),
            Then::Reply { ch, method } => {
                self.flush_confirms();
                return self.send_method(ch, &method);
            }
        };
        if self.channels.get(&ch).is_none_or(|s| s.closing) {
            return; // the channel is gone; its close returned what it held
        }
        let (mut routed, mut refused) = (true, false);
        for reply in replies {
            match reply {
                Ok(Reply::Published {
                    n_queues,
                    rejected_by,
                    ..
                }) => {
                    routed = n_queues > 0;
                    // A full queue with x-overflow=reject-publish refused it: a definite
                    // "not enqueued there", which is what a nack means.
                    refused = rejected_by > 0;
                }
                Ok(_) => {}
                // A refusal, or an outcome unknown: a channel error, never a nack.
                Err(refusal) => return self.close_channel(ch, refusal, cause).await,
            }
        }
        if let (false, Some(returned)) = (routed, returned) {
            self.flush_confirms();
            self.send_return(ch, returned);
        }
        match confirm_tag {
            Some(tag) if refused => self.send_nack(ch, tag),
            Some(tag) => self.queue_confirm(ch, tag),
            None => {}
        }
    }

    /// basic.nack for one publish (after the confirms before it).
    fn send_nack(&mut self, ch: u16, tag: u64) {
        self.flush_confirms();
        let nack = basic::Nack {
            delivery_tag: tag,
            multiple: false,
            requeue: false,
        };
        self.send_method(ch, &AMQPClass::Basic(basic::AMQPMethod::Nack(nack)));
    }

    /// The positive control's bug (feature `unsafe-early-confirm`, docs/chaos.md): confirm
    /// the publish now, before its entry is even proposed, and let the commit confirm nothing.
    /// A kill or power cut then loses confirmed messages, which the chaos checker must see.
    #[cfg(feature = "unsafe-early-confirm")]
    pub(super) fn confirm_early(&mut self, ch: u16, tag: Option<u64>) -> Option<u64> {
        if let Some(tag) = tag {
            self.queue_confirm(ch, tag);
            self.flush_confirms();
        }
        None
    }

    /// Confirms `tag` on `ch`, folding it into the channel's pending run of confirms.
    fn queue_confirm(&mut self, ch: u16, tag: u64) {
        match self.confirm_runs.get_mut(&ch) {
            Some((_, last)) if *last + 1 == tag => *last = tag,
            _ => {
                self.flush_confirms();
                self.confirm_runs.insert(ch, (tag, tag));
            }
        }
    }

    /// Sends the pending confirms: one basic.ack per channel, `multiple` for a run.
    pub(super) fn flush_confirms(&mut self) {
        let runs: Vec<(u16, (u64, u64))> = self.confirm_runs.drain().collect();
        for (ch, (first, last)) in runs {
            let ack = basic::Ack {
                delivery_tag: last,
                multiple: last > first,
            };
            self.send_method(ch, &AMQPClass::Basic(basic::AMQPMethod::Ack(ack)));
        }
    }

    /// basic.return 312 NO_ROUTE with the message, for an unroutable mandatory publish.
    pub(super) fn send_return(&mut self, ch: u16, returned: Returned) {
        let method = basic::Return {
            reply_code: super::wire::REPLY_NO_ROUTE,
            reply_text: super::wire::short("NO_ROUTE"),
            exchange: super::wire::short(&returned.exchange),
            routing_key: super::wire::short(&returned.routing_key),
        };
        self.send_method(ch, &AMQPClass::Basic(basic::AMQPMethod::Return(method)));
        self.send_content(ch, returned.content);
    }
}
