//! A client on a plain socket that drives the protocol by hand, for what lapin does not let
//! a test do (stay silent, skip heartbeats, look at the order of frames and socket events).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use amq_protocol::protocol::{basic, channel, connection, AMQPClass};
use amq_protocol::types::{FieldTable, LongString, ShortString};
use bytes::{Bytes, BytesMut};
use warren::amqp::frame::{
    decode_frame, encode_frame, method_frame, parse_method, ContentHeader, Frame, PROTOCOL_HEADER,
};

/// A client on a plain socket that sends and reads frames by hand.
pub struct RawClient {
    socket: TcpStream,
    inbuf: BytesMut,
}

/// What a read from the server gave.
#[derive(Debug)]
pub enum Incoming {
    Frame(Frame),
    /// The server closed the connection (EOF, or a reset).
    Closed,
    /// Nothing within the read timeout.
    Nothing,
}

impl RawClient {
    pub fn connect(addr: SocketAddr) -> RawClient {
        let mut socket = TcpStream::connect(addr).expect("connect");
        socket.write_all(PROTOCOL_HEADER).expect("protocol header");
        RawClient {
            socket,
            inbuf: BytesMut::new(),
        }
    }

    pub fn send(&mut self, frame: &Frame) {
        let mut out = BytesMut::new();
        encode_frame(frame, &mut out);
        self.socket.write_all(&out).expect("write frame");
    }

    /// Sends `frames` in one write, as a client library writes a publish with its content.
    pub fn send_together(&mut self, frames: &[Frame]) {
        let mut out = BytesMut::new();
        for frame in frames {
            encode_frame(frame, &mut out);
        }
        self.socket.write_all(&out).expect("write frames");
    }

    pub fn send_method(&mut self, channel: u16, method: AMQPClass) {
        self.send(&method_frame(channel, &method).expect("encode method"));
    }

    /// The next frame, waiting at most `timeout`.
    pub fn read(&mut self, timeout: Duration) -> Incoming {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(frame) = decode_frame(&mut self.inbuf, 0).expect("a valid frame") {
                return Incoming::Frame(frame);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Incoming::Nothing;
            }
            self.socket.set_read_timeout(Some(left)).expect("timeout");
            let mut buf = [0u8; 4096];
            match self.socket.read(&mut buf) {
                Ok(0) => return Incoming::Closed,
                Ok(n) => self.inbuf.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Incoming::Nothing
                }
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return Incoming::Closed,
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    /// The next method, skipping heartbeats; panics on anything else.
    pub fn read_method(&mut self) -> AMQPClass {
        loop {
            match self.read(super::EVENT_TIMEOUT) {
                Incoming::Frame(Frame::Heartbeat) => continue,
                Incoming::Frame(Frame::Method { payload, .. }) => {
                    return parse_method(&payload).expect("a valid method")
                }
                other => panic!("expected a method, got {other:?}"),
            }
        }
    }

    /// The next frame other than a heartbeat, within [`super::EVENT_TIMEOUT`].
    pub fn read_frame(&mut self) -> Frame {
        loop {
            match self.read(super::EVENT_TIMEOUT) {
                Incoming::Frame(Frame::Heartbeat) => continue,
                Incoming::Frame(frame) => return frame,
                other => panic!("expected a frame, got {other:?}"),
            }
        }
    }

    /// channel.open on `ch`, waiting for open-ok.
    pub fn open_channel(&mut self, ch: u16) {
        self.send_method(
            ch,
            AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
        );
        let AMQPClass::Channel(channel::AMQPMethod::OpenOk(_)) = self.read_method() else {
            panic!("expected channel.open-ok");
        };
    }

    /// start/start-ok (PLAIN guest/guest), tune/tune-ok with `heartbeat_s`, open/open-ok.
    pub fn handshake(&mut self, heartbeat_s: u16) {
        self.handshake_with(heartbeat_s, FieldTable::default());
    }

    /// As [`RawClient::handshake`], announcing `client_properties` in start-ok.
    pub fn handshake_with(&mut self, heartbeat_s: u16, client_properties: FieldTable) {
        let AMQPClass::Connection(connection::AMQPMethod::Start(start)) = self.read_method() else {
            panic!("expected connection.start");
        };
        assert!(start.mechanisms.to_string().contains("PLAIN"));
        self.send_method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
                client_properties,
                mechanism: ShortString::from("PLAIN"),
                response: LongString::from("\0guest\0guest"),
                locale: ShortString::from("en_US"),
            })),
        );
        let AMQPClass::Connection(connection::AMQPMethod::Tune(tune)) = self.read_method() else {
            panic!("expected connection.tune");
        };
        assert!(
            tune.heartbeat >= heartbeat_s,
            "server offers heartbeat {}",
            tune.heartbeat
        );
        self.send_method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
                channel_max: tune.channel_max,
                frame_max: tune.frame_max,
                heartbeat: heartbeat_s,
            })),
        );
        self.send_method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
                virtual_host: ShortString::from("/"),
            })),
        );
        let AMQPClass::Connection(connection::AMQPMethod::OpenOk(_)) = self.read_method() else {
            panic!("expected connection.open-ok");
        };
    }
}

/// The frames of a basic.publish on `ch`: the method, a content header with the raw
/// `properties` (flags and property list), and `body` (not empty) in one body frame.
pub fn publish_frames(
    ch: u16,
    exchange: &str,
    routing_key: &str,
    properties: &[u8],
    body: &[u8],
) -> Vec<Frame> {
    assert!(!body.is_empty(), "an empty body has no body frame");
    let publish = AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
        exchange: ShortString::from(exchange),
        routing_key: ShortString::from(routing_key),
        mandatory: false,
        immediate: false,
    }));
    let header = ContentHeader {
        class_id: 60,
        body_size: body.len() as u64,
        properties: Bytes::copy_from_slice(properties),
    };
    vec![
        method_frame(ch, &publish).expect("encode basic.publish"),
        Frame::Header {
            channel: ch,
            payload: header.to_bytes(),
        },
        Frame::Body {
            channel: ch,
            payload: Bytes::copy_from_slice(body),
        },
    ]
}
