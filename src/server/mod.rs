//! The AMQP front end: a TCP listener, one task per connection, and the proposer that turns
//! client methods into broker commands.

pub mod alarm;
pub mod connection;
pub mod listener;
pub mod proposer;

pub use listener::{bind, serve};
pub use proposer::{Dispatch, Proposer};
