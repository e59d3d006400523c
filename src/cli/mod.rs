//! Subcommands of `warren` beyond `server`: a local three-node cluster for newcomers, the
//! cluster's status, membership changes, background start and stop, cookie generation, and
//! the administration of users, vhosts, permissions and definitions (`admin*.rs`).

pub mod admin;
pub mod admin_args;
pub mod admin_run;
pub mod definitions;
pub mod detach;
pub mod dev_cluster;
pub mod listing;
pub mod membership;
pub mod status;
