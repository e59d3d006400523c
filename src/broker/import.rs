//! Importing definitions (`Command::ImportDefinitions`): many declarations, one log entry,
//! all or nothing.
//!
//! The commands are first applied to a copy of the state that shares the stored messages
//! instead of copying them ([`BrokerState::copy_for_build`]); only when every one of them
//! succeeds there are they applied to the state itself. Apply is deterministic, so the
//! second pass succeeds where the first did, and every node reaches the same answer. A
//! refused import changes nothing and names the item that failed.
//!
//! Import is idempotent for what it declares (as RabbitMQ's): a vhost that exists is kept, a
//! user is written whole, a queue or exchange declared again must be equivalent.
//!
//! Must never: accept a command that is not a declaration (a publish, a delete, a nested
//! import), or leave the state half imported.

use super::command::{Command, Outcome, Refusal};
use super::state::BrokerState;
use super::vhost::DEFAULT_VHOST;

impl BrokerState {
    /// Applies `commands` all or nothing (see the module doc).
    pub(super) fn import_definitions(&mut self, commands: Vec<Command>) -> Outcome {
        for (i, command) in commands.iter().enumerate() {
            if let Err(why) = importable(command) {
                return Outcome::refused(item_refused(i, command, why));
            }
        }
        // The copy costs the state's queues and exchanges (not its message bodies): an
        // import is an operator's rare act, and a refusal must leave nothing behind.
        let mut trial = self.copy_for_build();
        for (i, command) in commands.iter().enumerate() {
            if let Err(refusal) = trial.import_one(command.clone()).reply {
                return Outcome::refused(item_refused(i, command, refusal.reply_text));
            }
        }
        let mut merged = Outcome::done();
        for command in commands {
            let outcome = self.import_one(command);
            debug_assert!(outcome.reply.is_ok(), "the trial import succeeded");
            merged.deliveries.extend(outcome.deliveries);
            merged.released.extend(outcome.released);
            merged.cancelled.extend(outcome.cancelled);
        }
        merged
    }

    /// One declaration, with import's idempotence for vhosts.
    fn import_one(&mut self, command: Command) -> Outcome {
        match command {
            Command::AddVhost { name } if self.vhosts.contains_key(&name) => Outcome::done(),
            command => {
                let now_ms = self.now_ms;
                self.apply(now_ms, command)
            }
        }
    }
}

/// Whether `command` may be part of an import: declarations only.
fn importable(command: &Command) -> Result<(), String> {
    match command {
        Command::InVhost { command, .. } if !matches!(**command, Command::InVhost { .. }) => {
            importable(command)
        }
        Command::QueueDeclare {
            passive, exclusive, ..
        } if *passive || *exclusive => Err("a passive or exclusive queue declare".to_string()),
        Command::ExchangeDeclare { passive: true, .. } => {
            Err("a passive exchange declare".to_string())
        }
        Command::AddVhost { .. }
        | Command::PutUser { .. }
        | Command::SetUserTags { .. }
        | Command::SetPermissions { .. }
        | Command::ExchangeDeclare { .. }
        | Command::QueueDeclare { .. }
        | Command::QueueBind { .. }
        | Command::ExchangeBind { .. } => Ok(()),
        other => Err(format!("{} is not a definition", other.name())),
    }
}

/// The refusal of a whole import for item `i`.
fn item_refused(i: usize, command: &Command, why: String) -> Refusal {
    Refusal::precondition_failed(format!(
        "definitions import refused at item {i} ({}): {why}; nothing was imported",
        describe(command)
    ))
}

/// An item as an operator recognises it: what it is, its name, its vhost.
pub fn describe(command: &Command) -> String {
    let (vhost, command) = match command {
        Command::InVhost { vhost, command } => (vhost.as_str(), command.as_ref()),
        command => (DEFAULT_VHOST, command),
    };
    match command {
        Command::AddVhost { name } => format!("vhost '{name}'"),
        Command::PutUser { name, .. } | Command::SetUserTags { name, .. } => {
            format!("user '{name}'")
        }
        Command::SetPermissions { user, vhost, .. } => {
            format!("permissions of user '{user}' in vhost '{vhost}'")
        }
        Command::ExchangeDeclare { name, .. } => format!("exchange '{name}' in vhost '{vhost}'"),
        Command::QueueDeclare { name, .. } => format!("queue '{name}' in vhost '{vhost}'"),
        Command::QueueBind {
            queue, exchange, ..
        } => format!("binding of queue '{queue}' to exchange '{exchange}' in vhost '{vhost}'"),
        Command::ExchangeBind {
            destination,
            source,
            ..
        } => {
            format!("binding of exchange '{destination}' to exchange '{source}' in vhost '{vhost}'")
        }
        other => other.name().to_string(),
    }
}

#[cfg(test)]
#[path = "import_tests.rs"]
mod tests;
