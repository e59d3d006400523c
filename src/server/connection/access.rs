//! Who the connection is and what it may do: the login (start-ok, update-secret), the
//! vhost it opens, and the permission check of every command it proposes, against the
//! users and permissions this node has applied (`server/access_view.rs`).
//!
//! RabbitMQ's rules (rabbit_channel): declaring and deleting need `configure` on the
//! resource (a passive declare needs nothing); publishing needs `write` on the exchange
//! (the default exchange is `amq.default`); queue.bind needs `write` on the queue and
//! `read` on the exchange, exchange.bind `write` on the destination and `read` on the
//! source; consume, get and purge need `read` on the queue; a queue with a dead-letter
//! exchange needs `write` on that exchange and `read` on the queue.

use std::sync::Arc;
use std::time::Duration;

use super::wire::{conn_close, refuse, ConnClose, REPLY_ACCESS_REFUSED, REPLY_NOT_ALLOWED};
use super::Conn;
use crate::broker::args::dead_letter_exchange;
use crate::broker::command::{Command, Refusal};
use crate::broker::vhost::DEFAULT_VHOST;
use crate::server::access_view::{Refused, Right, Rights};

/// How long a failed login waits for this node to catch up with the leader before it is
/// refused: the user may have been added a moment ago through another node.
const LOGIN_CATCH_UP_MAX: Duration = Duration::from_secs(2);

/// A resource a command touches, and the right it needs there.
struct Need<'a> {
    right: Right,
    kind: &'static str,
    name: &'a str,
}

impl Conn {
    /// Whether `user` logs in with `password`; a refusal first lets this node catch up with
    /// the leader (the user may be new), and is then slowed down (`login_throttle.rs`).
    pub(super) async fn login(&mut self, user: &str, password: &[u8]) -> bool {
        let ok = |conn: &Conn| {
            let view = conn.access.borrow();
            view.authenticate(&conn.config, user, password)
        };
        if ok(self) {
            return true;
        }
        self.proposer.catch_up(LOGIN_CATCH_UP_MAX).await;
        if ok(self) {
            return true;
        }
        tracing::info!(user, peer = %self.peer_ip, "login refused");
        super::login_throttle::failed(self.peer_ip).await;
        false
    }

    /// connection.open: the vhost must exist and the user must have a permission on it.
    pub(super) async fn open_vhost(&mut self, vhost: &str) -> Result<(), ConnClose> {
        let mut opened = self.access.borrow().open(&self.config, &self.user, vhost);
        if opened.is_err() {
            // Made a moment ago through another node?
            self.proposer.catch_up(LOGIN_CATCH_UP_MAX).await;
            opened = self.access.borrow().open(&self.config, &self.user, vhost);
        }
        let text = match opened {
            Ok(rights) => {
                self.vhost = vhost.to_string();
                self.rights = rights;
                return Ok(());
            }
            Err(Refused::NoVhost) => format!("NOT_ALLOWED - vhost {vhost} not found"),
            Err(_) => format!(
                "NOT_ALLOWED - access to vhost '{vhost}' refused for user '{}'",
                self.user
            ),
        };
        Err(conn_close(REPLY_NOT_ALLOWED, text))
    }

    /// Checks what `command` needs against the user's rights as this node applied them
    /// last: 403 with RabbitMQ's text when one is missing.
    pub(super) fn permit(&mut self, command: &Command) -> Result<(), Refusal> {
        if self.access.has_changed().unwrap_or(false) {
            self.refresh_rights();
        }
        for need in needs(command) {
            if !self.rights.allows(need.right, need.name) {
                return Err(refuse(
                    REPLY_ACCESS_REFUSED,
                    format!(
                        "ACCESS_REFUSED - {} access to {} '{}' in vhost '{}' refused for user '{}'",
                        need.right.name(),
                        need.kind,
                        need.name,
                        self.vhost,
                        self.user
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Takes the newest rights of this user in this vhost (none left: nothing is allowed).
    fn refresh_rights(&mut self) {
        let view = self.access.borrow_and_update();
        self.rights = match view.open(&self.config, &self.user, &self.vhost) {
            Ok(rights) => rights,
            Err(_) => Arc::new(Rights::none()),
        };
    }

    /// `command` as it travels: inside `InVhost` unless the connection is in `/`.
    pub(super) fn in_vhost(&self, command: Command) -> Command {
        if self.vhost == DEFAULT_VHOST {
            return command;
        }
        Command::InVhost {
            vhost: self.vhost.clone(),
            command: Box::new(command),
        }
    }
}

/// The name a permission is checked against: the default exchange's is `amq.default`.
fn exchange(name: &str) -> &str {
    match name {
        "" => "amq.default",
        name => name,
    }
}

/// The rights `command` needs (RabbitMQ's rules, in this module's header).
fn needs(command: &Command) -> Vec<Need<'_>> {
    use Right::{Configure, Read, Write};
    let need = |right, kind, name| Need { right, kind, name };
    match command {
        Command::Publish { exchange: x, .. } => vec![need(Write, "exchange", exchange(x))],
        Command::ExchangeDeclare {
            name,
            passive: false,
            ..
        }
        | Command::ExchangeDelete { name, .. } => vec![need(Configure, "exchange", name)],
        Command::QueueDeclare {
            name,
            passive: false,
            arguments,
            ..
        } => {
            let mut needs = vec![need(Configure, "queue", name.as_str())];
            if let Some(dlx) = dead_letter_exchange(arguments) {
                needs.push(need(Write, "exchange", exchange(dlx)));
                needs.push(need(Read, "queue", name));
            }
            needs
        }
        Command::QueueDelete { name, .. } => vec![need(Configure, "queue", name)],
        Command::QueuePurge { name, .. } => vec![need(Read, "queue", name)],
        Command::QueueBind {
            queue, exchange: x, ..
        }
        | Command::QueueUnbind {
            queue, exchange: x, ..
        } => vec![
            need(Write, "queue", queue),
            need(Read, "exchange", exchange(x)),
        ],
        Command::ExchangeBind {
            destination,
            source,
            ..
        }
        | Command::ExchangeUnbind {
            destination,
            source,
            ..
        } => vec![
            need(Write, "exchange", destination),
            need(Read, "exchange", exchange(source)),
        ],
        Command::Consume { queue, .. }
        | Command::ConsumeWithPriority { queue, .. }
        | Command::Get { queue, .. } => {
            vec![need(Read, "queue", queue)]
        }
        _ => Vec::new(),
    }
}
