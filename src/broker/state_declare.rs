//! Declares, deletes, purges and bindings: the topology half of `BrokerState::apply`.
//!
//! Redeclares follow RabbitMQ 3.10's equivalence checks (field by field, then the arguments
//! it compares) and reply texts, so clients that match on them behave as against RabbitMQ.

use super::args::{
    max_priority, queue_args_mismatch, render_arg, single_active_consumer, Arguments, QueueArgs,
};
use super::command::{Command, Refusal, Reply};
use super::exchange::{Binding, Destination, Exchange};
use super::queue::Queue;
use super::state::{declared, BrokerState, Effects, QueueEntry};

/// The properties of a non-passive queue.declare.
pub(super) struct QueueDeclare {
    pub durable: bool,
    pub exclusive: bool,
    pub auto_delete: bool,
    pub arguments: Arguments,
    pub conn: u64,
}

/// A field as `rabbit_misc:val/1` renders a non-table value: quoted.
fn quoted(value: impl std::fmt::Display) -> String {
    format!("'{value}'")
}

/// The first property of `current` that a redeclare as `req` would change.
fn exchange_mismatch(
    vhost: &str,
    name: &str,
    current: &Exchange,
    req: &Exchange,
) -> Option<Refusal> {
    let what = format!("exchange '{name}' in vhost '{vhost}'");
    let fields = [
        ("type", current.kind.as_str(), req.kind.as_str()),
        ("durable", bool_str(current.durable), bool_str(req.durable)),
        (
            "auto_delete",
            bool_str(current.auto_delete),
            bool_str(req.auto_delete),
        ),
        (
            "internal",
            bool_str(current.internal),
            bool_str(req.internal),
        ),
    ];
    if let Some((arg, c, r)) = fields.iter().find(|(_, c, r)| c != r) {
        return Some(Refusal::inequivalent(&what, arg, quoted(r), quoted(c)));
    }
    if current.alternate_exchange != req.alternate_exchange {
        let render =
            |ae: &Option<String>| render_arg(ae.clone().map(super::args::ArgValue::Str).as_ref());
        return Some(Refusal::inequivalent(
            &what,
            "alternate-exchange",
            render(&req.alternate_exchange),
            render(&current.alternate_exchange),
        ));
    }
    None
}

fn bool_str(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

impl BrokerState {
    pub(super) fn exchange_declare(
        &mut self,
        name: String,
        req: Exchange,
        passive: bool,
    ) -> Result<Reply, Refusal> {
        if passive {
            // The default exchange always exists; a passive declare only checks existence.
            return match name.is_empty() || self.here.exchanges.contains_key(&name) {
                true => Ok(Reply::Done),
                false => Err(Refusal::no_exchange(&self.here_name, &name)),
            };
        }
        if name.is_empty() {
            return Err(Refusal::default_exchange());
        }
        let Some(current) = self.here.exchanges.get(&name) else {
            if name.starts_with("amq.") {
                return Err(Refusal::access_refused(format!(
                    "exchange name '{name}' contains reserved prefix 'amq.*'"
                )));
            }
            self.here.exchanges.insert(name, req);
            return Ok(Reply::Done);
        };
        match exchange_mismatch(&self.here_name, &name, current, &req) {
            Some(refusal) => Err(refusal),
            None => Ok(Reply::Done),
        }
    }

    pub(super) fn exchange_delete(
        &mut self,
        name: &str,
        if_unused: bool,
    ) -> Result<Reply, Refusal> {
        if name.is_empty() {
            return Err(Refusal::default_exchange());
        }
        if name.starts_with("amq.") {
            return Err(Refusal::access_refused(format!(
                "deletion of system exchange '{name}' in vhost '{}' not allowed",
                self.here_name
            )));
        }
        // RabbitMQ 3.10 answers delete-ok for an exchange that does not exist.
        let Some(x) = self.here.exchanges.get(name) else {
            return Ok(Reply::Done);
        };
        if if_unused && !x.bindings.is_empty() {
            return Err(Refusal::precondition_failed(format!(
                "exchange '{name}' in vhost '{}' in use",
                self.here_name
            )));
        }
        self.remove_exchange(name);
        Ok(Reply::Done)
    }

    pub(super) fn queue_declare(
        &mut self,
        name: String,
        passive: bool,
        req: QueueDeclare,
    ) -> Result<Reply, Refusal> {
        if passive {
            let entry = self.queue_mut(&name, req.conn)?;
            return Ok(declared(name, &entry.queue));
        }
        if let Some(entry) = self.here.queues.get(&name) {
            queue_equivalent(&self.here_name, &name, entry, &req)?;
            return Ok(declared(name, &entry.queue));
        }
        let args = QueueArgs::parse(&name, &req.arguments)?;
        // Below machine version 4 x-max-priority and x-single-active-consumer are kept (the
        // equivalence check compares them) but neither checked nor acted on, as before.
        let (max_priority, single_active) =
            match self.machine_version >= Command::QUEUE_FEATURES_MACHINE_VERSION {
                true => (
                    max_priority(&self.here_name, &name, &req.arguments)?,
                    single_active_consumer(&self.here_name, &name, &req.arguments)?,
                ),
                false => (None, false),
            };
        let mut queue = Queue::new(args.limits());
        queue.set_max_priority(max_priority);
        queue.set_single_active(single_active);
        let entry = QueueEntry {
            queue,
            durable: req.durable,
            auto_delete: req.auto_delete,
            exclusive_conn: req.exclusive.then_some(req.conn),
            arguments: req.arguments,
            args,
        };
        let reply = declared(name.clone(), &entry.queue);
        self.here.queues.insert(name, entry);
        Ok(reply)
    }

    pub(super) fn queue_delete(
        &mut self,
        name: &str,
        if_unused: bool,
        if_empty: bool,
        conn: u64,
        fx: &mut Effects,
    ) -> Result<Reply, Refusal> {
        // RabbitMQ 3.10 answers delete-ok (0 messages) for a queue that does not exist.
        if !self.here.queues.contains_key(name) {
            return Ok(Reply::Counted { message_count: 0 });
        }
        let entry = self.queue_mut(name, conn)?;
        if if_unused && entry.queue.n_consumers() > 0 {
            return Err(Refusal::precondition_failed(format!(
                "queue '{name}' in vhost '{}' in use",
                self.here_name
            )));
        }
        if if_empty && entry.queue.n_ready() + entry.queue.n_unacked() > 0 {
            return Err(Refusal::precondition_failed(format!(
                "queue '{name}' in vhost '{}' not empty",
                self.here_name
            )));
        }
        let message_count = self.remove_queue(name, fx);
        Ok(Reply::Counted { message_count })
    }

    pub(super) fn queue_purge(&mut self, name: &str, conn: u64) -> Result<Reply, Refusal> {
        let entry = self.queue_mut(name, conn)?;
        let ids = entry.queue.purge();
        self.release(&ids);
        Ok(Reply::Counted {
            message_count: ids.len() as u32,
        })
    }

    /// queue.bind/unbind and exchange.bind/unbind (`add` false): checks both ends as
    /// RabbitMQ does (default exchange 403, source then destination 404, exclusive 405).
    pub(super) fn bind(
        &mut self,
        source: &str,
        destination: Destination,
        routing_key: String,
        arguments: Arguments,
        conn: u64,
        add: bool,
    ) -> Result<Reply, Refusal> {
        if source.is_empty() || destination == Destination::Exchange(String::new()) {
            return Err(Refusal::default_exchange());
        }
        let binding = Binding::new(destination, routing_key, arguments);
        // RabbitMQ's unbind looks the binding up first: one that is not there, with its
        // exchange or queue gone or not, is unbind-ok (an RPC client unbinds after its
        // auto-delete queue and exchange went). Version 2 refused with 404.
        let compat = self.machine_version >= Command::COMPAT_MACHINE_VERSION;
        if !add && compat && !self.has_binding(source, &binding) {
            return Ok(Reply::Done);
        }
        if !self.here.exchanges.contains_key(source) {
            return Err(Refusal::no_exchange(&self.here_name, source));
        }
        match &binding.destination {
            Destination::Queue(q) => {
                self.queue_mut(q, conn)?;
            }
            Destination::Exchange(x) if !self.here.exchanges.contains_key(x) => {
                return Err(Refusal::no_exchange(&self.here_name, x));
            }
            Destination::Exchange(_) => {}
        }
        let exists = self.has_binding(source, &binding);
        let Some(x) = self.here.exchanges.get_mut(source) else {
            return Err(Refusal::no_exchange(&self.here_name, source));
        };
        if add && !exists {
            x.bindings.push(binding);
        } else if !add && exists {
            let (d, k, a) = (
                &binding.destination,
                &binding.routing_key,
                &binding.arguments,
            );
            x.bindings.retain(|b| !b.is(d, k, a));
            if x.auto_delete && x.bindings.is_empty() {
                self.unbind_all(Destination::Exchange(source.to_string()));
            }
        }
        Ok(Reply::Done)
    }

    /// Whether exchange `source` exists and holds `binding`.
    fn has_binding(&self, source: &str, binding: &Binding) -> bool {
        let Some(x) = self.here.exchanges.get(source) else {
            return false;
        };
        let (d, k, a) = (
            &binding.destination,
            &binding.routing_key,
            &binding.arguments,
        );
        x.bindings.iter().any(|b| b.is(d, k, a))
    }
}

/// RabbitMQ's `assert_equivalence` for a non-passive redeclare of an existing queue: the
/// exclusive owner must match exactly, then durable, auto_delete and the compared arguments.
fn queue_equivalent(
    vhost: &str,
    name: &str,
    entry: &QueueEntry,
    req: &QueueDeclare,
) -> Result<(), Refusal> {
    if entry.exclusive_conn != req.exclusive.then_some(req.conn) {
        return Err(Refusal::resource_locked(vhost, name));
    }
    let what = format!("queue '{name}' in vhost '{vhost}'");
    let fields = [
        ("durable", entry.durable, req.durable),
        ("auto_delete", entry.auto_delete, req.auto_delete),
    ];
    if let Some((arg, c, r)) = fields.iter().find(|(_, c, r)| c != r) {
        return Err(Refusal::inequivalent(&what, arg, quoted(r), quoted(c)));
    }
    if let Some((arg, r, c)) = queue_args_mismatch(&entry.arguments, &req.arguments) {
        return Err(Refusal::inequivalent(&what, arg, r, c));
    }
    Ok(())
}

#[cfg(test)]
#[path = "state_declare_tests.rs"]
mod tests;
