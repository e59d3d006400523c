//! basic.publish: the method, its content header and body frames, then the command, which is
//! pipelined (confirm mode or not) or buffered in the channel's transaction.

use amq_protocol::protocol::basic;
use bytes::{Bytes, BytesMut};

use super::completion::{Returned, Then};
use super::wire::{
    conn_close, refuse, ConnClose, Failure, MethodId, REPLY_CHANNEL_ERROR, REPLY_FRAME_ERROR,
    REPLY_NOT_IMPLEMENTED, REPLY_PRECONDITION_FAILED, REPLY_UNEXPECTED_FRAME,
};
use super::Conn;
use crate::amqp::frame::ContentHeader;
use crate::amqp::properties::BasicProperties;
use crate::broker::command::{Command, Content, Refusal};
use crate::broker::exchange::HeaderValue;

/// A publish waiting for its content header and body frames.
pub struct PendingPublish {
    method: basic::Publish,
    header: Option<ContentHeader>,
    body: BytesMut,
}

impl Conn {
    pub(super) fn start_publish(&mut self, ch: u16, p: basic::Publish) -> Result<(), Failure> {
        if p.immediate {
            let text = "NOT_IMPLEMENTED - immediate=true";
            return Err(conn_close(REPLY_NOT_IMPLEMENTED, text).into());
        }
        self.publisher = true;
        self.state(ch)?.pending = Some(PendingPublish {
            method: p,
            header: None,
            body: BytesMut::new(),
        });
        Ok(())
    }

    pub(super) async fn content_header(
        &mut self,
        ch: u16,
        header: ContentHeader,
    ) -> Result<(), ConnClose> {
        let body_size_max = self.config.body_size_max;
        let Some(state) = self.channels.get_mut(&ch) else {
            return Err(conn_close(
                REPLY_CHANNEL_ERROR,
                "CHANNEL_ERROR - channel not open",
            ));
        };
        if state.closing {
            return Ok(());
        }
        let Some(pending) = state.pending.as_mut().filter(|p| p.header.is_none()) else {
            return Err(conn_close(
                REPLY_UNEXPECTED_FRAME,
                "UNEXPECTED_FRAME - content header without basic.publish",
            ));
        };
        if header.class_id != 60 {
            return Err(conn_close(
                REPLY_UNEXPECTED_FRAME,
                "UNEXPECTED_FRAME - content header class is not basic",
            ));
        }
        if header.body_size > body_size_max {
            let text = format!(
                "PRECONDITION_FAILED - message size {} is larger than max size {body_size_max}",
                header.body_size
            );
            let refusal = refuse(REPLY_PRECONDITION_FAILED, text);
            self.close_channel(ch, refusal, MethodId::BASIC_PUBLISH)
                .await;
            return Ok(());
        }
        let size = header.body_size;
        pending.header = Some(header);
        if size == 0 {
            self.publish(ch, None).await;
        }
        Ok(())
    }

    pub(super) async fn content_body(&mut self, ch: u16, payload: Bytes) -> Result<(), ConnClose> {
        let Some(state) = self.channels.get_mut(&ch) else {
            return Err(conn_close(
                REPLY_CHANNEL_ERROR,
                "CHANNEL_ERROR - channel not open",
            ));
        };
        if state.closing {
            return Ok(());
        }
        let Some((pending, size)) = state
            .pending
            .as_mut()
            .and_then(|p| p.header.as_ref().map(|h| h.body_size).map(|s| (p, s)))
        else {
            return Err(conn_close(
                REPLY_UNEXPECTED_FRAME,
                "UNEXPECTED_FRAME - content body without content header",
            ));
        };
        let new_len = pending.body.len() as u64 + payload.len() as u64;
        if new_len > size {
            return Err(conn_close(
                REPLY_FRAME_ERROR,
                "FRAME_ERROR - content body longer than body_size",
            ));
        }
        if pending.body.is_empty() && new_len == size {
            // The whole body in one frame: keep the frame's bytes, no copy.
            self.publish(ch, Some(payload)).await;
            return Ok(());
        }
        pending.body.extend_from_slice(&payload);
        if new_len == size {
            self.publish(ch, None).await;
        }
        Ok(())
    }

    /// The publish on `ch` is complete: pipeline it, or buffer it in the transaction.
    /// `whole_body` is the body when it came in a single frame.
    async fn publish(&mut self, ch: u16, whole_body: Option<Bytes>) {
        let Some(state) = self.channels.get_mut(&ch) else {
            return;
        };
        let Some(PendingPublish {
            method,
            header: Some(header),
            body,
        }) = state.pending.take()
        else {
            return;
        };
        let content = Content {
            properties: header.properties,
            body: whole_body.unwrap_or_else(|| body.freeze()),
        };
        let exchange = method.exchange.as_str().to_string();
        let routing_key = method.routing_key.as_str().to_string();
        let returned = method.mandatory.then(|| Returned {
            exchange: exchange.clone(),
            routing_key: routing_key.clone(),
            content: content.clone(),
        });
        let expiration_ms = match checked_properties(&content.properties, &self.user) {
            Ok(ms) => ms,
            Err(refusal) => {
                return self
                    .close_channel(ch, refusal, MethodId::BASIC_PUBLISH)
                    .await
            }
        };
        let command = Command::Publish {
            exchange,
            routing_key,
            mandatory: method.mandatory,
            headers: message_headers(&content.properties),
            expiration_ms,
            content,
        };
        if let Err(refusal) = self.permit(&command) {
            return self
                .close_channel(ch, refusal, MethodId::BASIC_PUBLISH)
                .await;
        }
        let Some(state) = self.channels.get_mut(&ch) else {
            return;
        };
        if let Some(tx) = state.tx.as_mut() {
            tx.buffer_publish(command, returned);
            return;
        }
        let confirm_tag = state.confirms.then(|| {
            let tag = state.next_publish_seq;
            state.next_publish_seq += 1;
            tag
        });
        #[cfg(feature = "unsafe-early-confirm")]
        let confirm_tag = self.confirm_early(ch, confirm_tag);
        let then = Then::Publish {
            ch,
            confirm_tag,
            returned,
        };
        self.pipeline(vec![command], then).await;
    }
}

/// The message's own TTL from its `expiration` property, once the properties passed
/// RabbitMQ's checks: an `expiration` that is not a whole number of milliseconds, or a
/// `user_id` other than the connection's user, is refused (406). Properties the codec
/// cannot read carry no TTL (they are still delivered verbatim).
fn checked_properties(properties: &[u8], user: &str) -> Result<Option<u64>, Refusal> {
    let Ok(props) = BasicProperties::decode(properties) else {
        return Ok(None);
    };
    if let Some(claimed) = props.user_id().filter(|u| u.as_bytes() != user.as_bytes()) {
        let claimed = String::from_utf8_lossy(claimed.as_bytes());
        return Err(refuse(
            REPLY_PRECONDITION_FAILED,
            format!(
                "PRECONDITION_FAILED - user_id property set to '{claimed}' but \
                 authenticated user was '{user}'"
            ),
        ));
    }
    props.expiration_ms().map_err(|_| {
        let shown = props
            .expiration()
            .map(|e| format!("{e:?}"))
            .unwrap_or_default();
        refuse(
            REPLY_PRECONDITION_FAILED,
            format!("PRECONDITION_FAILED - invalid expiration {shown}"),
        )
    })
}

/// The `headers` property of a basic content header, for headers-exchange routing.
/// Unparseable properties give no headers (the raw bytes are still delivered verbatim).
fn message_headers(properties: &[u8]) -> Vec<(String, HeaderValue)> {
    match basic::parse_properties(properties) {
        Ok((_, props)) => props
            .headers()
            .as_ref()
            .map(|table| {
                table
                    .inner()
                    .iter()
                    .map(|(k, v)| (k.as_str().to_string(), HeaderValue::from_amqp(v)))
                    .collect()
            })
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}
