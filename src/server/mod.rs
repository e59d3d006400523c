//! The AMQP front end: a TCP listener, one task per connection, and the proposer that turns
//! client methods into broker commands.

pub mod alarm;
mod cluster_node;
pub mod connection;
mod forward;
pub mod listener;
pub mod membership;
mod node_down;
mod peer;
pub mod proposer;
mod sequencer;
mod stop;

pub use listener::{bind, serve};
pub use proposer::{Dispatch, Proposer};
