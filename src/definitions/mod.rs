//! Definitions: a cluster's users, vhosts, permissions, exchanges, queues and bindings in
//! RabbitMQ's JSON format (`export_definitions`, `import_definitions`, the node setting
//! `load_definitions`), and the typed read of them that a node answers its peers with.
//!
//! `json.rs` is the file format, `import.rs` reads a file into the commands of one
//! all-or-nothing `Command::ImportDefinitions` (applied in `broker/import.rs`), `export.rs`
//! writes what a node applied (`applied.rs`) back as a file. Nothing here touches the state:
//! imports go through the log like every other change.

pub mod applied;
pub mod export;
pub mod import;
pub mod json;
