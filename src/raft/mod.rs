//! Raft glue: openraft type config and the fsync-ed segment log that stores the Raft log and vote.
