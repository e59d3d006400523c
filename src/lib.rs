//! Warren: an AMQP 0-9-1 broker whose state changes are Raft log entries.

pub mod amqp;
pub mod broker;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod definitions;
pub mod limits;
pub mod raft;
pub mod server;
pub mod tls;
