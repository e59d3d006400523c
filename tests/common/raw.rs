//! A client on a plain socket that drives the protocol by hand, for what lapin does not let
//! a test do (stay silent, skip heartbeats, look at the order of frames and socket events).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use amq_protocol::protocol::{connection, AMQPClass};
use amq_protocol::types::{FieldTable, LongString, ShortString};
use bytes::BytesMut;
use warren::amqp::frame::{
    decode_frame, encode_frame, method_frame, parse_method, Frame, PROTOCOL_HEADER,
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

    /// start/start-ok (PLAIN guest/guest), tune/tune-ok with `heartbeat_s`, open/open-ok.
    pub fn handshake(&mut self, heartbeat_s: u16) {
        let AMQPClass::Connection(connection::AMQPMethod::Start(start)) = self.read_method() else {
            panic!("expected connection.start");
        };
        assert!(start.mechanisms.to_string().contains("PLAIN"));
        self.send_method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
                client_properties: FieldTable::default(),
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
