//! The broker model: exchanges, routing, queues and consumers.
//!
//! Architecture invariant: nothing in this module does I/O or reads a clock or randomness.
//! Time, when needed, comes from the leader's timestamp in the Raft entry being applied
//! (as in RabbitMQ's `rabbit_fifo`). Only the Raft state machine calls into it. The one
//! exception is a read: a disk node's stored messages are read from the store its state
//! machine hands to [`messages::Messages`] (the model never writes it, and a failed read
//! fails the entry rather than change what it does).

pub mod access;
pub mod args;
pub mod channel_limit;
pub mod command;
pub mod dead_letter;
pub mod exchange;
mod import;
pub mod message_priority;
pub mod messages;
pub mod queue;
pub mod ready;
pub mod state;
mod state_declare;
pub mod state_extras;
pub mod state_legacy;
mod state_lifecycle;
mod state_messages;
mod state_qos;
#[cfg(test)]
pub(crate) mod test_support;
pub mod topic;
pub mod vhost;
