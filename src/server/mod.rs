//! The AMQP front end: a TCP listener, one task per connection, and the proposer that turns
//! client methods into broker commands.

pub mod access_view;
pub mod alarm;
pub mod ask_leader;
mod batching;
mod catch_up;
mod cluster_node;
pub mod connection;
mod forward;
pub mod incarnation;
pub mod listener;
mod machine_upgrade;
mod node_down;
mod node_tasks;
mod peer;
mod peer_admin;
pub mod proposer;
pub mod routes;
mod sequencer;

pub use listener::{bind, serve};
pub use proposer::Proposer;
pub use routes::Dispatch;
