//! AMQP 0-9-1 framing: bytes <-> frames, with frame_max enforced.

pub mod frame;
