//! Subcommands of `warren` beyond `server`: a local three-node cluster for newcomers, the
//! cluster's status, membership changes, background start and stop, and cookie generation.

pub mod detach;
pub mod dev_cluster;
pub mod membership;
pub mod status;
