//! A queue's limits: `x-max-length`, `x-max-length-bytes` and `x-overflow` on the way in.
//! (`x-delivery-limit` acts where messages return: `requeue_one`.)
//!
//! As in RabbitMQ, only ready messages count: a message checked out to a consumer takes no
//! room. A full drop-head queue makes room by setting its oldest ready messages aside as
//! dying (reason maxlen); a full reject-publish queue refuses the newcomer, and with
//! reject-publish-dlx sets it aside as dying instead.

use super::{Delivery, Queue, Ready};
use crate::broker::args::Overflow;
use crate::broker::channel_limit::ChannelCredit;
use crate::broker::dead_letter::DeathReason;

/// What a queue did with a message offered to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Offer {
    /// Taken: ready, or handed to consumers at once (these deliveries).
    Taken(Vec<Delivery>),
    /// Refused by a full queue (x-overflow reject-publish*). With `dead_letter` the queue
    /// holds it until it is dead-lettered; otherwise it never held it.
    Refused { dead_letter: bool },
}

impl Queue {
    /// Offers a newly published message: a full reject-publish queue refuses it; otherwise
    /// it is appended, handed out as credit allows, and a full drop-head queue then drops
    /// its oldest ready messages.
    pub fn offer(
        &mut self,
        msg_id: u64,
        expires_at_ms: Option<u64>,
        body_bytes: u64,
        credit: &mut impl ChannelCredit,
    ) -> Offer {
        self.offer_with_priority(msg_id, expires_at_ms, body_bytes, 0, credit)
    }

    /// As [`Queue::offer`], for a message of `priority` (its `priority` property): a
    /// priority queue puts it after every ready message of its priority or higher (a
    /// priority above the queue's maximum counts as the maximum, as in RabbitMQ); any
    /// other queue ignores it and appends.
    pub fn offer_with_priority(
        &mut self,
        msg_id: u64,
        expires_at_ms: Option<u64>,
        body_bytes: u64,
        priority: u8,
        credit: &mut impl ChannelCredit,
    ) -> Offer {
        let overflow = self.limits.overflow;
        if overflow != Overflow::DropHead && self.would_overflow(body_bytes) {
            let dead_letter = overflow == Overflow::RejectPublishDlx;
            if dead_letter {
                self.dying.push((msg_id, DeathReason::Maxlen));
            }
            return Offer::Refused { dead_letter };
        }
        let mut ready = Ready {
            msg_id,
            delivery_count: 0,
            expires_at_ms,
            body_bytes,
            priority: 0,
        };
        match self.max_priority {
            Some(max) => {
                ready.priority = priority.min(max);
                self.ready.insert_in_place(ready);
            }
            None => self.ready.push_back(ready),
        }
        let deliveries = self.assign(credit);
        self.drop_head_while_over_limit();
        Offer::Taken(deliveries)
    }

    /// RabbitMQ's `will_overflow`: whether one more message of `body_bytes` would take the
    /// ready messages past a limit.
    fn would_overflow(&self, body_bytes: u64) -> bool {
        let n_after = self.ready.len() as u64 + 1;
        let bytes_after = self.ready.n_bytes().saturating_add(body_bytes);
        self.limits.max_length.is_some_and(|max| n_after > max)
            || self
                .limits
                .max_length_bytes
                .is_some_and(|max| bytes_after > max)
    }

    pub(super) fn is_over_limit(&self) -> bool {
        let (n, bytes) = (self.ready.len() as u64, self.ready.n_bytes());
        self.limits.max_length.is_some_and(|max| n > max)
            || self.limits.max_length_bytes.is_some_and(|max| bytes > max)
    }

    /// Under drop-head, drops the oldest ready messages until the queue is within its limits
    /// (after a publish or a requeue). Each pass removes one message: bounded by the length.
    pub(super) fn drop_head_while_over_limit(&mut self) {
        if self.limits.overflow != Overflow::DropHead {
            return;
        }
        while self.is_over_limit() {
            let Some(head) = self.ready.pop_front() else {
                break;
            };
            self.dying.push((head.msg_id, DeathReason::Maxlen));
        }
        debug_assert!(!self.is_over_limit());
    }
}
