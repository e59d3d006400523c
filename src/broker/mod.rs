//! The broker model: exchanges, routing, queues and consumers.
//!
//! Architecture invariant: nothing in this module does I/O or reads a clock or randomness.
//! Time, when needed, comes from the leader's timestamp in the Raft entry being applied
//! (as in RabbitMQ's `rabbit_fifo`). Only the Raft state machine calls into it.

pub mod args;
pub mod channel_limit;
pub mod command;
pub mod dead_letter;
pub mod exchange;
pub mod queue;
pub mod ready;
pub mod state;
mod state_declare;
mod state_lifecycle;
mod state_messages;
mod state_qos;
#[cfg(test)]
pub(crate) mod test_support;
pub mod topic;
