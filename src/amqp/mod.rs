//! AMQP 0-9-1 codecs: bytes <-> frames, with frame_max enforced, and the
//! basic content-header properties and field tables, decoded order-preserving
//! so the broker can edit headers without disturbing other octets.

pub mod field_table;
pub mod frame;
pub mod properties;
pub mod short_str;
mod wire;

pub use wire::Truncated;
