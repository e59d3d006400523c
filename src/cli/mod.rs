//! Subcommands of `warren` beyond `server`: a local three-node cluster for newcomers, the
//! cluster's status, and cookie generation.

pub mod dev_cluster;
pub mod status;
