//! Raft glue: openraft type config, the fsync-ed segment log that stores the Raft log and
//! vote, the broker state machine with its snapshot files, and a node that wires them up.
//!
//! * [`types`]: the openraft `TypeConfig` (node id `u64`; an entry's data is a postcard batch
//!   of broker commands).
//! * [`record`]: on-disk record framing (version, length, crc32c, postcard payload).
//! * [`log_store`]: `SegmentLogStore`, an append-only log whose single writer thread batches
//!   records into one write + one fdatasync before acknowledging them to openraft.
//! * [`mem_log_store`]: `MemLogStore`, a RAM node's log, in memory only.
//! * [`state_machine`]: `BrokerStateMachine`, the only caller of the broker's `apply`.
//! * [`cold_messages`], [`message_store`], [`message_record`]: where a node's stored messages
//!   live between entries (a disk node's in sled), and how one is encoded.
//! * [`snapshot_file`]: the streamed snapshot format; [`snapshot_data`]: a snapshot as openraft
//!   hands it around (a file handle on a disk node).
//! * [`network`]: the single-node network (no peers yet).
//! * [`node`]: `RaftNode`, open a node on a data directory and propose command batches.

pub mod cold_messages;
pub mod contact;
pub mod envelope;
pub mod hand_over;
pub mod leader_loss;
pub mod log_store;
pub mod mem_log_store;
pub mod membership;
pub mod message_record;
pub mod message_store;
pub mod network;
pub mod network_chunks;
pub mod node;
pub mod node_view;
pub mod peer_network;
pub mod prompt_election;
pub mod propose_error;
pub mod protocol;
pub mod record;
pub mod sessions;
pub mod snapshot_data;
pub mod snapshot_file;
pub mod state_machine;
pub mod tail_mark;
#[cfg(test)]
mod test_sm;
pub mod types;

#[cfg(test)]
mod golden_tests;
