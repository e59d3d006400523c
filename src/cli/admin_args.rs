//! The administration subcommands, named and shaped as `rabbitmqctl`'s: users, vhosts,
//! permissions, listings and definitions. Each takes `--config NODE.toml` for the cookie and
//! the members to reach (`admin.rs`).

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// Where to reach the cluster, and how to print.
#[derive(Args, Clone, Debug)]
pub struct Target {
    /// A member's configuration: its [[peers]] are tried in turn, with its cookie.
    #[arg(long, default_value = "warren-dev/node1.toml")]
    pub config: PathBuf,
    /// Print only the rows: no "Listing ..." line, no header (rabbitmqctl's -q).
    #[arg(short, long)]
    pub quiet: bool,
}

/// A vhost (`-p`), `/` unless given.
#[derive(Args, Clone, Debug)]
pub struct InVhost {
    /// The vhost.
    #[arg(short = 'p', long = "vhost", default_value = "/")]
    pub vhost: String,
}

/// No `Debug`: two of these carry a password in clear.
#[derive(Subcommand)]
#[command(rename_all = "snake_case")]
pub enum AdminCommand {
    /// Add a user (no tags, no permissions). The password is hashed here: only the hash
    /// leaves this process.
    AddUser {
        user: String,
        password: String,
        #[command(flatten)]
        target: Target,
    },
    /// Delete a user and its permissions.
    DeleteUser {
        user: String,
        #[command(flatten)]
        target: Target,
    },
    /// Set a user's password (hashed here).
    ChangePassword {
        user: String,
        password: String,
        #[command(flatten)]
        target: Target,
    },
    /// Check a password against the user's hash as a node applied it; prints "Success".
    AuthenticateUser {
        user: String,
        password: String,
        #[command(flatten)]
        target: Target,
    },
    /// List users and their tags.
    ListUsers {
        #[command(flatten)]
        target: Target,
    },
    /// Replace a user's tags (none given: no tags).
    SetUserTags {
        user: String,
        tags: Vec<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Add a vhost with the builtin exchanges (no permissions on it yet).
    AddVhost {
        vhost: String,
        #[command(flatten)]
        target: Target,
    },
    /// Delete a vhost with everything in it; its connections are closed.
    DeleteVhost {
        vhost: String,
        #[command(flatten)]
        target: Target,
    },
    /// List vhosts.
    ListVhosts {
        #[command(flatten)]
        target: Target,
    },
    /// Set a user's configure, write and read regular expressions in a vhost.
    SetPermissions {
        user: String,
        configure: String,
        write: String,
        read: String,
        #[command(flatten)]
        vhost: InVhost,
        #[command(flatten)]
        target: Target,
    },
    /// Remove a user's permissions in a vhost.
    ClearPermissions {
        user: String,
        #[command(flatten)]
        vhost: InVhost,
        #[command(flatten)]
        target: Target,
    },
    /// The permissions in a vhost.
    ListPermissions {
        #[command(flatten)]
        vhost: InVhost,
        #[command(flatten)]
        target: Target,
    },
    /// A user's permissions in every vhost.
    ListUserPermissions {
        user: String,
        #[command(flatten)]
        target: Target,
    },
    /// Queues of a vhost. Columns: name messages messages_ready messages_unacknowledged
    /// consumers durable auto_delete exclusive arguments (default: name messages).
    ListQueues {
        columns: Vec<String>,
        #[command(flatten)]
        vhost: InVhost,
        #[command(flatten)]
        target: Target,
    },
    /// Exchanges of a vhost. Columns: name type durable auto_delete internal arguments
    /// (default: name type).
    ListExchanges {
        columns: Vec<String>,
        #[command(flatten)]
        vhost: InVhost,
        #[command(flatten)]
        target: Target,
    },
    /// Bindings of a vhost, the default exchange's implicit ones included.
    ListBindings {
        #[command(flatten)]
        vhost: InVhost,
        #[command(flatten)]
        target: Target,
    },
    /// Consumers of a vhost.
    ListConsumers {
        #[command(flatten)]
        vhost: InVhost,
        #[command(flatten)]
        target: Target,
    },
    /// The connections the replicated state knows of: those holding consumers, unacked
    /// messages or exclusive queues (an idle connection leaves no trace in it).
    ListConnections {
        #[command(flatten)]
        target: Target,
    },
    /// Write the cluster's definitions (RabbitMQ's JSON) to FILE, `-` for stdout.
    ExportDefinitions {
        file: PathBuf,
        #[command(flatten)]
        target: Target,
    },
    /// Import definitions (RabbitMQ's JSON) from FILE, `-` for stdin: all or nothing.
    ImportDefinitions {
        file: PathBuf,
        #[command(flatten)]
        target: Target,
    },
}
