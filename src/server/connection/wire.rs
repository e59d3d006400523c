//! Reply codes and the small helpers every part of a connection uses to answer.

use amq_protocol::protocol::{connection, AMQPClass};
use amq_protocol::types::ShortString;

use super::Conn;
use crate::amqp::frame::{encode_frame, method_frame};
use crate::broker::command::Refusal;

pub const REPLY_NO_ROUTE: u16 = 312;
pub const REPLY_ACCESS_REFUSED: u16 = 403;
pub const REPLY_PRECONDITION_FAILED: u16 = 406;
pub const REPLY_NOT_ALLOWED: u16 = 530;
pub const REPLY_CHANNEL_ERROR: u16 = 504;
pub const REPLY_UNEXPECTED_FRAME: u16 = 505;
pub const REPLY_COMMAND_INVALID: u16 = 503;
pub const REPLY_NOT_IMPLEMENTED: u16 = 540;
pub const REPLY_FRAME_ERROR: u16 = crate::amqp::frame::REPLY_FRAME_ERROR;

/// The class and method ids of the client's method that a close answers, which
/// connection.close and channel.close carry so clients can name the method (RabbitMQ fills
/// them; `NONE` when no method caused it, e.g. a frame error).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MethodId {
    pub class_id: u16,
    pub method_id: u16,
}

impl MethodId {
    pub const NONE: MethodId = MethodId {
        class_id: 0,
        method_id: 0,
    };
    /// basic.publish: also the cause of errors found in a publish's content frames.
    pub const BASIC_PUBLISH: MethodId = MethodId {
        class_id: 60,
        method_id: 40,
    };

    pub fn of(method: &AMQPClass) -> MethodId {
        MethodId {
            class_id: method.get_amqp_class_id(),
            method_id: method.get_amqp_method_id(),
        }
    }
}

/// Why the connection must end: the connection.close to send.
#[derive(Debug)]
pub struct ConnClose {
    pub code: u16,
    pub text: String,
    /// The method that caused it.
    pub cause: MethodId,
}

pub fn conn_close(code: u16, text: impl Into<String>) -> ConnClose {
    ConnClose {
        code,
        text: text.into(),
        cause: MethodId::NONE,
    }
}

impl ConnClose {
    /// Names `cause` as the method that caused the close, unless one is named already.
    pub fn caused_by(mut self, cause: MethodId) -> ConnClose {
        if self.cause == MethodId::NONE {
            self.cause = cause;
        }
        self
    }
}

/// A channel error: the channel is closed with this code and text.
pub fn refuse(reply_code: u16, reply_text: impl Into<String>) -> Refusal {
    Refusal {
        reply_code,
        reply_text: reply_text.into(),
    }
}

/// Something a method handler can fail with: a channel error or a connection error
/// (RabbitMQ's "hard" errors, e.g. 540 for `immediate` or `recover(requeue=false)`).
#[derive(Debug)]
pub enum Failure {
    Channel(Refusal),
    Connection(ConnClose),
}

impl From<Refusal> for Failure {
    fn from(r: Refusal) -> Failure {
        Failure::Channel(r)
    }
}

impl From<ConnClose> for Failure {
    fn from(c: ConnClose) -> Failure {
        Failure::Connection(c)
    }
}

/// A short string, cut to 255 octets at a char boundary (amq-protocol asserts the limit).
pub fn short(s: &str) -> ShortString {
    let mut end = s.len().min(255);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    ShortString::from(&s[..end])
}

impl Conn {
    /// Writes a method frame. Nothing but channel.close/close-ok goes to a channel we are
    /// closing: replies that complete after a channel error are dropped.
    pub(super) fn send_method(&mut self, ch: u16, method: &AMQPClass) {
        let closing = self.channels.get(&ch).is_some_and(|s| s.closing);
        if closing && !matches!(method, AMQPClass::Channel(_)) {
            return;
        }
        match method_frame(ch, method) {
            Ok(frame) => encode_frame(&frame, &mut self.out),
            Err(e) => tracing::error!(error = %e, "cannot encode method"),
        }
    }

    pub(super) fn send_conn_close(&mut self, close: ConnClose) {
        tracing::debug!(code = close.code, text = %close.text, "closing connection");
        self.send_method(
            0,
            &AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
                reply_code: close.code,
                reply_text: short(&close.text),
                class_id: close.cause.class_id,
                method_id: close.cause.method_id,
            })),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_strings_are_cut_at_char_boundaries() {
        let long = "é".repeat(200);
        assert!(short(&long).as_str().len() <= 255);
    }
}
