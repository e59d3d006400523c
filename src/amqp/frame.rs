//! AMQP 0-9-1 frame codec.
//!
//! Wire format of a frame (AMQP 0-9-1 §4.2.3):
//!
//! ```text
//! +------+---------+---------+-------------+-----------+
//! | type | channel |  size   |   payload   | frame-end |
//! | u8   | u16     |  u32    | size octets | 0xCE      |
//! +------+---------+---------+-------------+-----------+
//! ```
//!
//! `frame_max` limits the *whole* frame, i.e. `size + 8`.
//!
//! Everything here treats its input as untrusted: no function panics on
//! arbitrary bytes.

use amq_protocol::frame::WriteContext;
use amq_protocol::protocol::{gen_class, parse_class, AMQPClass};
use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The 8-octet protocol header a client sends before its first frame.
pub const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";

/// Frame type octet for method frames.
pub const FRAME_METHOD: u8 = 1;
/// Frame type octet for content header frames.
pub const FRAME_HEADER: u8 = 2;
/// Frame type octet for content body frames.
pub const FRAME_BODY: u8 = 3;
/// Frame type octet for heartbeat frames.
pub const FRAME_HEARTBEAT: u8 = 8;
/// The octet that terminates every frame.
pub const FRAME_END: u8 = 0xCE;
/// Octets of framing around the payload: type(1) + channel(2) + size(4) + end(1).
pub const FRAME_OVERHEAD: usize = 8;
/// Octets before the payload: type(1) + channel(2) + size(4).
const FRAME_PREFIX: usize = 7;
/// Smallest frame_max a peer may negotiate (AMQP `frame-min-size`).
pub const FRAME_MIN_SIZE: u32 = 4096;

/// AMQP reply code 501 FRAME-ERROR.
pub const REPLY_FRAME_ERROR: u16 = 501;
/// AMQP reply code 502 SYNTAX-ERROR.
pub const REPLY_SYNTAX_ERROR: u16 = 502;
/// AMQP reply code 540 NOT-IMPLEMENTED.
pub const REPLY_NOT_IMPLEMENTED: u16 = 540;

/// The peer's protocol header was not `AMQP 0-9-1`.
///
/// Per AMQP §4.2.2 the server should answer by writing [`PROTOCOL_HEADER`]
/// and closing the socket.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The first four octets were not `AMQP`.
    #[error("not an AMQP protocol header: {0:02x?}")]
    NotAmqp([u8; 8]),
    /// `AMQP` followed by a version other than 0-9-1.
    #[error("unsupported AMQP protocol version {}-{}-{} (id {})", .0[5], .0[6], .0[7], .0[4])]
    UnsupportedVersion([u8; 8]),
}

/// Check the 8-octet protocol header sent by a client at connection start.
pub fn check_protocol_header(buf: &[u8; 8]) -> Result<(), HeaderError> {
    if buf == PROTOCOL_HEADER {
        Ok(())
    } else if buf.starts_with(b"AMQP") {
        Err(HeaderError::UnsupportedVersion(*buf))
    } else {
        Err(HeaderError::NotAmqp(*buf))
    }
}

/// One AMQP frame. Payloads are kept as raw bytes; use [`parse_method`] and
/// [`ContentHeader::parse`] to interpret them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Frame type 1: a method (class id, method id, arguments).
    Method { channel: u16, payload: Bytes },
    /// Frame type 2: a content header.
    Header { channel: u16, payload: Bytes },
    /// Frame type 3: a slice of content body.
    Body { channel: u16, payload: Bytes },
    /// Frame type 8: heartbeat, always on channel 0 with an empty payload.
    Heartbeat,
}

impl Frame {
    /// The channel this frame travels on (0 for heartbeats).
    pub fn channel(&self) -> u16 {
        match self {
            Frame::Method { channel, .. }
            | Frame::Header { channel, .. }
            | Frame::Body { channel, .. } => *channel,
            Frame::Heartbeat => 0,
        }
    }

    /// Size of this frame on the wire, framing overhead included.
    pub fn encoded_len(&self) -> usize {
        match self {
            Frame::Method { payload, .. }
            | Frame::Header { payload, .. }
            | Frame::Body { payload, .. } => payload.len() + FRAME_OVERHEAD,
            Frame::Heartbeat => FRAME_OVERHEAD,
        }
    }
}

/// A framing-level protocol violation. All of these are connection errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The frame (payload + 8 octets of framing) is larger than `frame_max`.
    #[error("frame of {size} octets exceeds frame_max {frame_max}")]
    TooLarge { size: u64, frame_max: u32 },
    /// The octet after the payload was not 0xCE.
    #[error("bad frame-end octet 0x{0:02x}, expected 0xce")]
    BadFrameEnd(u8),
    /// The frame type octet is not 1, 2, 3 or 8.
    #[error("unknown frame type {0}")]
    UnknownFrameType(u8),
    /// A heartbeat frame on a channel other than 0.
    #[error("heartbeat frame on channel {0}, must be 0")]
    HeartbeatChannel(u16),
    /// A heartbeat frame with a non-empty payload.
    #[error("heartbeat frame with {0}-octet payload, must be empty")]
    HeartbeatPayload(u32),
    /// A content header payload that is too short to hold its fixed fields.
    #[error("content header payload of {0} octets is too short")]
    ShortContentHeader(usize),
}

impl FrameError {
    /// The AMQP reply code to close the connection with.
    pub fn reply_code(&self) -> u16 {
        REPLY_FRAME_ERROR
    }
}

/// Decode one frame from the front of `buf`.
///
/// Returns `Ok(None)` if `buf` does not hold a whole frame yet (nothing is
/// consumed, and capacity for the rest of the frame is reserved). On success
/// exactly one frame is consumed; its payload is split off `buf` without
/// copying. On error nothing is consumed and the connection should be closed
/// with [`FrameError::reply_code`].
///
/// `frame_max` bounds the whole frame including the 8 octets of framing;
/// `0` means "no limit" as in AMQP (the size field is still a u32).
pub fn decode_frame(buf: &mut BytesMut, frame_max: u32) -> Result<Option<Frame>, FrameError> {
    let Some(prefix) = buf.get(..FRAME_PREFIX) else {
        return Ok(None);
    };
    let frame_type = prefix[0];
    let channel = u16::from_be_bytes([prefix[1], prefix[2]]);
    let size = u32::from_be_bytes([prefix[3], prefix[4], prefix[5], prefix[6]]);

    match frame_type {
        FRAME_METHOD | FRAME_HEADER | FRAME_BODY => {}
        FRAME_HEARTBEAT => {
            if channel != 0 {
                return Err(FrameError::HeartbeatChannel(channel));
            }
            if size != 0 {
                return Err(FrameError::HeartbeatPayload(size));
            }
        }
        other => return Err(FrameError::UnknownFrameType(other)),
    }

    let total = u64::from(size) + FRAME_OVERHEAD as u64;
    if frame_max != 0 && total > u64::from(frame_max) {
        return Err(FrameError::TooLarge {
            size: total,
            frame_max,
        });
    }
    // `total` <= u32::MAX + 8; on 32-bit targets that may not fit a usize.
    let Ok(total) = usize::try_from(total) else {
        return Err(FrameError::TooLarge {
            size: total,
            frame_max,
        });
    };
    let payload_len = total - FRAME_OVERHEAD;

    let Some(&end) = buf.get(total - 1) else {
        buf.reserve(total - buf.len());
        return Ok(None);
    };
    if end != FRAME_END {
        return Err(FrameError::BadFrameEnd(end));
    }

    buf.advance(FRAME_PREFIX);
    let payload = buf.split_to(payload_len).freeze();
    buf.advance(1); // frame-end, checked above

    Ok(Some(match frame_type {
        FRAME_METHOD => Frame::Method { channel, payload },
        FRAME_HEADER => Frame::Header { channel, payload },
        FRAME_BODY => Frame::Body { channel, payload },
        _ => Frame::Heartbeat,
    }))
}

/// Append `frame` to `out` in wire format.
///
/// The caller is responsible for keeping payloads within the negotiated
/// frame_max; a payload longer than `u32::MAX` octets cannot be represented
/// and its size field saturates (such frames are never produced by a
/// correctly-behaving caller).
pub fn encode_frame(frame: &Frame, out: &mut BytesMut) {
    let (frame_type, channel, payload): (u8, u16, &[u8]) = match frame {
        Frame::Method { channel, payload } => (FRAME_METHOD, *channel, payload),
        Frame::Header { channel, payload } => (FRAME_HEADER, *channel, payload),
        Frame::Body { channel, payload } => (FRAME_BODY, *channel, payload),
        Frame::Heartbeat => (FRAME_HEARTBEAT, 0, &[]),
    };
    out.reserve(payload.len() + FRAME_OVERHEAD);
    out.put_u8(frame_type);
    out.put_u16(channel);
    out.put_u32(u32::try_from(payload.len()).unwrap_or(u32::MAX));
    out.put_slice(payload);
    out.put_u8(FRAME_END);
}

/// A content header frame payload (AMQP §4.2.6.1).
///
/// `properties` holds the property flags and property list exactly as they
/// arrived, so they are re-emitted byte-for-byte on delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentHeader {
    pub class_id: u16,
    pub body_size: u64,
    /// Raw property-flags (one or more u16 words) + property-list.
    pub properties: Bytes,
}

impl ContentHeader {
    /// class-id(2) + weight(2) + body-size(8).
    const FIXED_LEN: usize = 12;

    /// Parse a content header payload. Does not copy: `properties` is a
    /// slice of `payload`. The weight field is ignored (it must be 0).
    ///
    /// At least one property-flags word (2 octets) must be present; the
    /// property list itself is not validated here.
    pub fn parse(mut payload: Bytes) -> Result<ContentHeader, FrameError> {
        if payload.len() < Self::FIXED_LEN + 2 {
            return Err(FrameError::ShortContentHeader(payload.len()));
        }
        let class_id = payload.get_u16();
        let _weight = payload.get_u16();
        let body_size = payload.get_u64();
        Ok(ContentHeader {
            class_id,
            body_size,
            properties: payload,
        })
    }

    /// Append this header's payload (not a whole frame) to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(Self::FIXED_LEN + self.properties.len());
        out.put_u16(self.class_id);
        out.put_u16(0);
        out.put_u64(self.body_size);
        out.put_slice(&self.properties);
    }

    /// This header's payload as a new buffer.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::new();
        self.encode(&mut out);
        out.freeze()
    }
}

/// A method frame payload that could not be turned into an [`AMQPClass`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MethodError {
    /// The payload is too short to hold a class id and method id.
    #[error("method payload of {0} octets is too short")]
    Truncated(usize),
    /// A known method whose arguments do not decode (or have trailing bytes).
    #[error("malformed arguments for method {class_id}.{method_id}")]
    Malformed { class_id: u16, method_id: u16 },
    /// A class id / method id pair this broker does not know.
    #[error("unknown method {class_id}.{method_id}")]
    Unknown { class_id: u16, method_id: u16 },
    /// Serialising a method failed (cannot happen with a growable buffer
    /// unless amq-protocol rejects the value).
    #[error("failed to encode method: {0}")]
    Encode(String),
}

impl MethodError {
    /// The AMQP reply code to close the connection with.
    pub fn reply_code(&self) -> u16 {
        match self {
            MethodError::Truncated(_) | MethodError::Malformed { .. } => REPLY_FRAME_ERROR,
            MethodError::Unknown { .. } => REPLY_NOT_IMPLEMENTED,
            MethodError::Encode(_) => REPLY_SYNTAX_ERROR,
        }
    }
}

/// Whether amq-protocol 10 knows this class id / method id pair (AMQP 0-9-1
/// plus RabbitMQ's confirm class and connection.blocked/unblocked/
/// update-secret extensions).
fn is_known_method(class_id: u16, method_id: u16) -> bool {
    match class_id {
        // connection
        10 => matches!(
            method_id,
            10 | 11 | 20 | 21 | 30 | 31 | 40 | 41 | 50 | 51 | 60 | 61 | 70 | 71
        ),
        // channel
        20 => matches!(method_id, 10 | 11 | 20 | 21 | 40 | 41),
        // access
        30 => matches!(method_id, 10 | 11),
        // exchange
        40 => matches!(method_id, 10 | 11 | 20 | 21 | 30 | 31 | 40 | 51),
        // queue
        50 => matches!(method_id, 10 | 11 | 20 | 21 | 30 | 31 | 40 | 41 | 50 | 51),
        // basic
        60 => matches!(
            method_id,
            10 | 11
                | 20
                | 21
                | 30
                | 31
                | 40
                | 50
                | 60
                | 70
                | 71
                | 72
                | 80
                | 90
                | 100
                | 110
                | 111
                | 120
        ),
        // confirm
        85 => matches!(method_id, 10 | 11),
        // tx
        90 => matches!(method_id, 10 | 11 | 20 | 21 | 30 | 31),
        _ => false,
    }
}

/// Parse a method frame payload.
///
/// Unknown class/method ids give [`MethodError::Unknown`] (540); anything
/// else that fails to decode, including trailing octets after the
/// arguments, gives [`MethodError::Truncated`] / [`MethodError::Malformed`]
/// (501).
pub fn parse_method(payload: &[u8]) -> Result<AMQPClass, MethodError> {
    let Some(ids) = payload.get(..4) else {
        return Err(MethodError::Truncated(payload.len()));
    };
    let class_id = u16::from_be_bytes([ids[0], ids[1]]);
    let method_id = u16::from_be_bytes([ids[2], ids[3]]);
    if !is_known_method(class_id, method_id) {
        return Err(MethodError::Unknown {
            class_id,
            method_id,
        });
    }
    match parse_class(payload) {
        Ok(([], class)) => Ok(class),
        _ => Err(MethodError::Malformed {
            class_id,
            method_id,
        }),
    }
}

/// Append the method frame payload for `class` to `out`.
///
/// Note: amq-protocol `debug_assert`s that short strings are at most 255
/// octets; callers must not build methods with longer short strings.
pub fn encode_method(class: &AMQPClass, out: &mut BytesMut) -> Result<(), MethodError> {
    let ctx = WriteContext::from(Vec::new());
    match gen_class(class)(ctx) {
        Ok(ctx) => {
            out.extend_from_slice(&ctx.write);
            Ok(())
        }
        Err(e) => Err(MethodError::Encode(e.to_string())),
    }
}

/// Build a method frame for `class` on `channel`.
pub fn method_frame(channel: u16, class: &AMQPClass) -> Result<Frame, MethodError> {
    let mut payload = BytesMut::new();
    encode_method(class, &mut payload)?;
    Ok(Frame::Method {
        channel,
        payload: payload.freeze(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::protocol::{basic, connection};
    use amq_protocol::types::{AMQPValue, FieldTable, LongString, ShortString};
    use proptest::prelude::*;

    const MAX: u32 = 131_072;

    fn encoded(frame: &Frame) -> BytesMut {
        let mut out = BytesMut::new();
        encode_frame(frame, &mut out);
        out
    }

    fn round_trip(frame: Frame) {
        let mut buf = encoded(&frame);
        assert_eq!(buf.len(), frame.encoded_len());
        // A trailing partial frame must be left in place.
        buf.extend_from_slice(&[FRAME_BODY, 0, 1]);
        assert_eq!(decode_frame(&mut buf, MAX), Ok(Some(frame)));
        assert_eq!(&buf[..], &[FRAME_BODY, 0, 1]);
        assert_eq!(decode_frame(&mut buf, MAX), Ok(None));
    }

    #[test]
    fn protocol_header_checked() {
        assert_eq!(check_protocol_header(PROTOCOL_HEADER), Ok(()));
        assert!(matches!(
            check_protocol_header(b"AMQP\x01\x01\x00\x0a"),
            Err(HeaderError::UnsupportedVersion(_))
        ));
        assert!(matches!(
            check_protocol_header(b"GET / HT"),
            Err(HeaderError::NotAmqp(_))
        ));
    }

    #[test]
    fn round_trip_method() {
        round_trip(Frame::Method {
            channel: 7,
            payload: Bytes::from_static(&[0, 20, 0, 10, 0]),
        });
    }

    #[test]
    fn round_trip_header() {
        round_trip(Frame::Header {
            channel: 65535,
            payload: Bytes::from_static(&[0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0]),
        });
    }

    #[test]
    fn round_trip_body() {
        round_trip(Frame::Body {
            channel: 1,
            payload: Bytes::from(vec![0xCE; 1000]),
        });
        round_trip(Frame::Body {
            channel: 1,
            payload: Bytes::new(),
        });
    }

    #[test]
    fn round_trip_heartbeat() {
        let buf = encoded(&Frame::Heartbeat);
        assert_eq!(&buf[..], &[8, 0, 0, 0, 0, 0, 0, 0xCE]);
        round_trip(Frame::Heartbeat);
    }

    #[test]
    fn body_is_split_without_copy() {
        let mut buf = encoded(&Frame::Body {
            channel: 1,
            payload: Bytes::from(vec![9u8; 64]),
        });
        let payload_ptr = buf[FRAME_PREFIX..].as_ptr();
        match decode_frame(&mut buf, MAX) {
            Ok(Some(Frame::Body { payload, .. })) => assert_eq!(payload.as_ptr(), payload_ptr),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn frame_max_counts_whole_frame() {
        let frame = Frame::Body {
            channel: 1,
            payload: Bytes::from(vec![0u8; 4096 - 8]),
        };
        let mut buf = encoded(&frame);
        assert_eq!(decode_frame(&mut buf, 4096), Ok(Some(frame)));

        let mut buf = encoded(&Frame::Body {
            channel: 1,
            payload: Bytes::from(vec![0u8; 4096 - 7]),
        });
        let err = decode_frame(&mut buf, 4096).unwrap_err();
        assert_eq!(
            err,
            FrameError::TooLarge {
                size: 4097,
                frame_max: 4096
            }
        );
        assert_eq!(err.reply_code(), 501);
    }

    #[test]
    fn frame_max_enforced_from_header_alone() {
        // Only the 7-octet prefix announcing a ~4 GiB payload: rejected
        // before any payload arrives, and nothing is reserved.
        let mut buf = BytesMut::from(&[FRAME_BODY, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF][..]);
        assert!(matches!(
            decode_frame(&mut buf, MAX),
            Err(FrameError::TooLarge { .. })
        ));
        assert!(buf.capacity() < 1024);
    }

    #[test]
    fn partial_input_then_complete() {
        let frame = Frame::Method {
            channel: 3,
            payload: Bytes::from_static(b"\x00\x3c\x00\x28abcdef"),
        };
        let wire = encoded(&frame);
        let mut buf = BytesMut::new();
        for (i, b) in wire.iter().enumerate() {
            assert_eq!(decode_frame(&mut buf, MAX), Ok(None), "after {i} octets");
            buf.extend_from_slice(&[*b]);
        }
        assert_eq!(decode_frame(&mut buf, MAX), Ok(Some(frame)));
        assert!(buf.is_empty());
    }

    #[test]
    fn two_frames_back_to_back() {
        let a = Frame::Heartbeat;
        let b = Frame::Body {
            channel: 2,
            payload: Bytes::from_static(b"xyz"),
        };
        let mut buf = encoded(&a);
        encode_frame(&b, &mut buf);
        assert_eq!(decode_frame(&mut buf, MAX), Ok(Some(a)));
        assert_eq!(decode_frame(&mut buf, MAX), Ok(Some(b)));
        assert_eq!(decode_frame(&mut buf, MAX), Ok(None));
    }

    #[test]
    fn bad_frame_end() {
        let mut buf = encoded(&Frame::Body {
            channel: 1,
            payload: Bytes::from_static(b"abc"),
        });
        let last = buf.len() - 1;
        buf[last] = 0xCD;
        let err = decode_frame(&mut buf, MAX).unwrap_err();
        assert_eq!(err, FrameError::BadFrameEnd(0xCD));
        assert_eq!(err.reply_code(), 501);
    }

    #[test]
    fn unknown_frame_type() {
        let mut buf = BytesMut::from(&[4u8, 0, 0, 0, 0, 0, 0, 0xCE][..]);
        let err = decode_frame(&mut buf, MAX).unwrap_err();
        assert_eq!(err, FrameError::UnknownFrameType(4));
        assert_eq!(err.reply_code(), 501);
    }

    #[test]
    fn heartbeat_must_be_on_channel_zero_and_empty() {
        let mut buf = BytesMut::from(&[8u8, 0, 5, 0, 0, 0, 0, 0xCE][..]);
        assert_eq!(
            decode_frame(&mut buf, MAX),
            Err(FrameError::HeartbeatChannel(5))
        );
        let mut buf = BytesMut::from(&[8u8, 0, 0, 0, 0, 0, 1, 0, 0xCE][..]);
        assert_eq!(
            decode_frame(&mut buf, MAX),
            Err(FrameError::HeartbeatPayload(1))
        );
    }

    #[test]
    fn content_header_round_trip_keeps_properties_verbatim() {
        // flags: content-type (bit 15) + headers (bit 13), then the list.
        let mut props = vec![0b1010_0000, 0];
        props.extend_from_slice(b"\x0aapplication");
        // headers table: {"x": 'I' 42} — 4-octet length then entries.
        props.extend_from_slice(&[0, 0, 0, 7, 1, b'x', b'I', 0, 0, 0, 42]);
        let mut payload = BytesMut::new();
        payload.put_u16(60);
        payload.put_u16(0);
        payload.put_u64(123_456_789_012);
        payload.put_slice(&props);
        let payload = payload.freeze();

        let header = ContentHeader::parse(payload.clone()).unwrap();
        assert_eq!(header.class_id, 60);
        assert_eq!(header.body_size, 123_456_789_012);
        assert_eq!(&header.properties[..], &props[..]);
        assert_eq!(header.to_bytes(), payload);
    }

    #[test]
    fn content_header_too_short() {
        let err = ContentHeader::parse(Bytes::from_static(&[0, 60, 0, 0, 0])).unwrap_err();
        assert_eq!(err, FrameError::ShortContentHeader(5));
        assert_eq!(err.reply_code(), 501);
    }

    fn method_round_trip(class: AMQPClass) {
        let frame = method_frame(1, &class).unwrap();
        let mut wire = encoded(&frame);
        match decode_frame(&mut wire, MAX) {
            Ok(Some(Frame::Method { channel, payload })) => {
                assert_eq!(channel, 1);
                assert_eq!(parse_method(&payload), Ok(class));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn method_round_trip_connection_start() {
        let mut props = FieldTable::default();
        props.insert(
            ShortString::from("product"),
            AMQPValue::LongString(LongString::from("warren")),
        );
        let mut caps = FieldTable::default();
        caps.insert(
            ShortString::from("publisher_confirms"),
            AMQPValue::Boolean(true),
        );
        props.insert(
            ShortString::from("capabilities"),
            AMQPValue::FieldTable(caps),
        );
        let start = AMQPClass::Connection(connection::AMQPMethod::Start(connection::Start {
            version_major: 0,
            version_minor: 9,
            server_properties: props,
            mechanisms: LongString::from("PLAIN AMQPLAIN"),
            locales: LongString::from("en_US"),
        }));
        let mut payload = BytesMut::new();
        encode_method(&start, &mut payload).unwrap();
        assert_eq!(&payload[..6], &[0, 10, 0, 10, 0, 9]);
        method_round_trip(start);
    }

    #[test]
    fn method_round_trip_basic_publish() {
        let publish = AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: ShortString::from("amq.direct"),
            routing_key: ShortString::from("jobs"),
            mandatory: true,
            immediate: false,
        }));
        let mut payload = BytesMut::new();
        encode_method(&publish, &mut payload).unwrap();
        // class 60, method 40, reserved-1 short, "amq.direct", "jobs", bits.
        let mut expected = vec![0, 60, 0, 40, 0, 0, 10];
        expected.extend_from_slice(b"amq.direct");
        expected.push(4);
        expected.extend_from_slice(b"jobs");
        expected.push(0b01);
        assert_eq!(&payload[..], &expected[..]);
        method_round_trip(publish);
    }

    #[test]
    fn parse_method_errors() {
        let err = parse_method(&[0, 60]).unwrap_err();
        assert_eq!(err, MethodError::Truncated(2));
        assert_eq!(err.reply_code(), 501);

        let err = parse_method(&[0, 99, 0, 10]).unwrap_err();
        assert_eq!(
            err,
            MethodError::Unknown {
                class_id: 99,
                method_id: 10
            }
        );
        assert_eq!(err.reply_code(), 540);

        let err = parse_method(&[0, 60, 0, 41]).unwrap_err();
        assert_eq!(err.reply_code(), 540);

        // basic.publish with its arguments cut short.
        let err = parse_method(&[0, 60, 0, 40, 0, 0, 10, b'a']).unwrap_err();
        assert_eq!(
            err,
            MethodError::Malformed {
                class_id: 60,
                method_id: 40
            }
        );
        assert_eq!(err.reply_code(), 501);

        // channel.close-ok with trailing garbage.
        let err = parse_method(&[0, 20, 0, 41, 0xFF]).unwrap_err();
        assert_eq!(err.reply_code(), 501);
        assert!(parse_method(&[0, 20, 0, 41]).is_ok());
    }

    proptest! {
        #[test]
        fn decode_frame_never_panics(
            data in proptest::collection::vec(any::<u8>(), 0..512),
            frame_max in prop_oneof![Just(0u32), Just(8u32), Just(4096u32), any::<u32>()],
        ) {
            let mut buf = BytesMut::from(&data[..]);
            // Decode until we need more bytes or hit an error; each success
            // must consume at least the 8 octets of framing.
            loop {
                let before = buf.len();
                match decode_frame(&mut buf, frame_max) {
                    Ok(Some(f)) => prop_assert_eq!(before - buf.len(), f.encoded_len()),
                    Ok(None) => { prop_assert_eq!(buf.len(), before); break }
                    Err(_) => { prop_assert_eq!(buf.len(), before); break }
                }
            }
        }

        #[test]
        fn decode_frame_with_valid_prefix_never_panics(
            frame_type in prop_oneof![Just(1u8), Just(2u8), Just(3u8), Just(8u8)],
            channel in any::<u16>(),
            size in 0u32..64,
            rest in proptest::collection::vec(any::<u8>(), 0..80),
        ) {
            let mut buf = BytesMut::new();
            buf.put_u8(frame_type);
            buf.put_u16(channel);
            buf.put_u32(size);
            buf.put_slice(&rest);
            let _ = decode_frame(&mut buf, MAX);
        }

        #[test]
        fn parse_method_never_panics(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_method(&data);
        }

        #[test]
        fn parse_method_known_ids_never_panic(
            class_method in prop_oneof![
                Just((10u16, 10u16)), Just((10, 11)), Just((10, 30)), Just((10, 40)),
                Just((20, 10)), Just((40, 10)), Just((50, 10)), Just((60, 40)),
                Just((60, 60)), Just((60, 20)), Just((85, 10)), Just((90, 10)),
            ],
            rest in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let mut data = Vec::with_capacity(rest.len() + 4);
            data.extend_from_slice(&class_method.0.to_be_bytes());
            data.extend_from_slice(&class_method.1.to_be_bytes());
            data.extend_from_slice(&rest);
            if let Err(e) = parse_method(&data) {
                prop_assert_eq!(e.reply_code(), 501);
            }
        }

        #[test]
        fn content_header_parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = ContentHeader::parse(Bytes::from(data));
        }

        #[test]
        fn frame_round_trip(
            kind in 0u8..4,
            channel in any::<u16>(),
            payload in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let payload = Bytes::from(payload);
            let frame = match kind {
                0 => Frame::Method { channel, payload },
                1 => Frame::Header { channel, payload },
                2 => Frame::Body { channel, payload },
                _ => Frame::Heartbeat,
            };
            let mut buf = encoded(&frame);
            prop_assert_eq!(decode_frame(&mut buf, MAX), Ok(Some(frame)));
            prop_assert!(buf.is_empty());
        }
    }
}
