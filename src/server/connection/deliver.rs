//! Messages out: basic.deliver to consumers, basic.get-ok, and the content frames.

use amq_protocol::protocol::{basic, AMQPClass};

use super::headers::{render, Extra};
use super::wire::short;
use super::Conn;
use crate::amqp::frame::{encode_frame, ContentHeader, Frame, FRAME_OVERHEAD};
use crate::broker::command::{Content, Refusal};
use crate::broker::dead_letter::{Death, DeathReason};
use crate::broker::queue::{ConsumerKey, Delivery};
use crate::broker::state::StoredMessage;
use crate::server::routes::Dispatch;

/// A message basic.get found, as the reply gave it.
pub struct Got {
    pub queue: String,
    pub msg_id: u64,
    pub redelivered: bool,
    pub delivery_count: u32,
    pub message_count: u32,
    pub exchange: String,
    pub routing_key: String,
    pub deaths: Vec<Death>,
    pub first_death: Option<(String, DeathReason, String)>,
    pub no_ack: bool,
}

impl Conn {
    /// basic.get-ok with the message; a get without no_ack is checked out to this channel.
    pub(super) fn basic_get_ok(
        &mut self,
        ch: u16,
        got: Got,
        content: Content,
    ) -> Result<(), Refusal> {
        let state = self.state(ch)?;
        let delivery_tag = state.next_delivery_tag;
        state.next_delivery_tag += 1;
        if !got.no_ack {
            state
                .unacked
                .insert(delivery_tag, (got.queue.clone(), got.msg_id));
        }
        let ok = basic::GetOk {
            delivery_tag,
            redelivered: got.redelivered,
            exchange: short(&got.exchange),
            routing_key: short(&got.routing_key),
            message_count: got.message_count,
        };
        self.send_method(ch, &AMQPClass::Basic(basic::AMQPMethod::GetOk(ok)));
        let extra = Extra {
            delivery_count: got.delivery_count,
            deaths: &got.deaths,
            first_death: got.first_death.as_ref(),
        };
        self.send_content(ch, render(content, extra));
        Ok(())
    }

    /// Acts on what the state machine routed to this connection.
    pub(super) fn dispatch(&mut self, dispatch: Dispatch) {
        match dispatch {
            Dispatch::Deliver {
                queue,
                delivery,
                message,
            } => self.deliver(queue, delivery, message),
            Dispatch::Cancel { consumer, .. } => self.consumer_cancelled(consumer),
            // Handled by the serve loop, which closes the connection (a vhost deleted: when it
            // is this connection's).
            Dispatch::Fenced | Dispatch::VhostDeleted(_) => {}
        }
    }

    /// Writes a basic.deliver with its content to the consumer's channel.
    fn deliver(&mut self, queue: String, delivery: Delivery, message: StoredMessage) {
        let ch = delivery.consumer.channel;
        // A dispatch queued before its channel or consumer went away: the state already
        // returned the message (ChannelClosed) or still holds it for this channel (a gone
        // channel's close returns it).
        let live = self.channels.get(&ch).is_some_and(|state| {
            !state.closing && state.consumers.contains_key(&delivery.consumer.tag)
        });
        if !live {
            return;
        }
        self.count_written(&queue, &delivery.consumer);
        let Some(state) = self.channels.get_mut(&ch) else {
            return;
        };
        let tag = state.next_delivery_tag;
        state.next_delivery_tag += 1;
        if !delivery.settled {
            state.unacked.insert(tag, (queue, delivery.msg_id));
        }
        let deliver = basic::Deliver {
            consumer_tag: short(&delivery.consumer.tag),
            delivery_tag: tag,
            redelivered: delivery.redelivered,
            exchange: short(&message.exchange),
            routing_key: short(&message.routing_key),
        };
        self.send_method(ch, &AMQPClass::Basic(basic::AMQPMethod::Deliver(deliver)));
        let extra = Extra {
            delivery_count: delivery.delivery_count,
            deaths: &message.deaths,
            first_death: message.first_death.as_ref(),
        };
        self.send_content(ch, render(message.content, extra));
    }

    /// The broker dropped a consumer (its queue was deleted): forget it, and tell clients
    /// that asked for consumer_cancel_notify with a server-sent basic.cancel.
    fn consumer_cancelled(&mut self, consumer: ConsumerKey) {
        let ch = consumer.channel;
        let Some(state) = self.channels.get_mut(&ch) else {
            return;
        };
        state.written.remove(&consumer.tag);
        if state.consumers.remove(&consumer.tag).is_none() || !self.cancel_notify {
            return;
        }
        let cancel = basic::Cancel {
            consumer_tag: short(&consumer.tag),
            nowait: true,
        };
        self.send_method(ch, &AMQPClass::Basic(basic::AMQPMethod::Cancel(cancel)));
    }

    /// The content header (raw properties as published) and the body split at frame_max.
    pub(super) fn send_content(&mut self, ch: u16, content: Content) {
        let header = ContentHeader {
            class_id: 60,
            body_size: content.body.len() as u64,
            properties: content.properties,
        };
        encode_frame(
            &Frame::Header {
                channel: ch,
                payload: header.to_bytes(),
            },
            &mut self.out,
        );
        let chunk = (self.frame_max as usize)
            .saturating_sub(FRAME_OVERHEAD)
            .max(1);
        let mut body = content.body;
        while !body.is_empty() {
            let part = body.split_to(chunk.min(body.len()));
            encode_frame(
                &Frame::Body {
                    channel: ch,
                    payload: part,
                },
                &mut self.out,
            );
        }
    }
}
