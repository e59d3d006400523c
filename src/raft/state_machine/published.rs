//! What async tasks read of the applied state, published through `watch` channels after
//! every entry, so that no task on the async runtime takes the state lock (which apply holds
//! on a blocking thread, through the message store's writes): the next message expiry (the
//! expiry ticks), the connections the state names (the close of earlier lives'
//! connections, node-down) and the cluster's machine version (every submit).
//!
//! The connection set is a scan of every queue's consumers and checkouts, too dear for every
//! entry: it is scanned again only after an entry that may have changed it
//! ([`ConnsTouched`]); in debug builds every entry checks the published set against a scan.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::sync::watch;

use crate::broker::command::Command;
use crate::broker::state::BrokerState;

/// The connections the state names (`BrokerState::connections`), shared with the readers.
pub type Connections = Arc<BTreeSet<u64>>;

/// The sending side, kept with the state (under its lock).
pub(super) struct Publisher {
    next_expiry_ms: watch::Sender<Option<u64>>,
    connections: watch::Sender<Connections>,
    machine_version: watch::Sender<u16>,
}

/// The reading side: what the last applied entry left.
#[derive(Clone, Debug)]
pub(super) struct Published {
    pub(super) next_expiry_ms: watch::Receiver<Option<u64>>,
    pub(super) connections: watch::Receiver<Connections>,
    pub(super) machine_version: watch::Receiver<u16>,
}

/// What an entry's commands may have done to the set of connections the state names.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ConnsTouched {
    /// Nothing: publishes and credit only serve consumers, whose connections the
    /// state already names by the consumer.
    Not,
    /// Settles, requeues, rejects and recovers by these connections: each may drop its own
    /// connection's last checkout, and only that (any delivery they cause goes to a
    /// registered consumer).
    Settled(BTreeSet<u64>),
    /// Anything else (consume, cancel, closes, declares, ticks...): scan again.
    Any,
}

impl ConnsTouched {
    pub(super) fn of(commands: &[Command]) -> ConnsTouched {
        let mut settled = BTreeSet::new();
        for command in commands {
            // A command in a vhost touches what the same command in `/` touches.
            let command = match command {
                Command::InVhost { command, .. } => command.as_ref(),
                command => command,
            };
            match command {
                Command::Publish { .. }
                | Command::Credit { .. }
                | Command::SetMachineVersion { .. } => {}
                Command::Settle { conn, .. }
                | Command::Requeue { conn, .. }
                | Command::Reject { conn, .. }
                | Command::Recover { conn, .. } => {
                    settled.insert(*conn);
                }
                _ => return ConnsTouched::Any,
            }
        }
        if settled.is_empty() {
            ConnsTouched::Not
        } else {
            ConnsTouched::Settled(settled)
        }
    }
}

/// A publisher and its readers, starting from `broker` and `machine_version`.
pub(super) fn channel(broker: &BrokerState, machine_version: u16) -> (Publisher, Published) {
    let (next_expiry_tx, next_expiry_ms) = watch::channel(broker.next_expiry());
    let (connections_tx, connections) = watch::channel(Arc::new(broker.connections()));
    let (version_tx, machine_version) = watch::channel(machine_version);
    let publisher = Publisher {
        next_expiry_ms: next_expiry_tx,
        connections: connections_tx,
        machine_version: version_tx,
    };
    let published = Published {
        next_expiry_ms,
        connections,
        machine_version,
    };
    (publisher, published)
}

impl Publisher {
    /// Publishes everything anew (a snapshot was installed).
    pub(super) fn all(&self, broker: &BrokerState, machine_version: u16) {
        self.after_entry(broker, machine_version, &ConnsTouched::Any);
    }

    /// Publishes what changed after an entry whose commands did `touched`.
    pub(super) fn after_entry(
        &self,
        broker: &BrokerState,
        machine_version: u16,
        touched: &ConnsTouched,
    ) {
        send_if_changed(&self.next_expiry_ms, broker.next_expiry());
        send_if_changed(&self.machine_version, machine_version);
        match touched {
            ConnsTouched::Not => {}
            ConnsTouched::Settled(conns) => self.drop_unnamed(broker, conns),
            ConnsTouched::Any => {
                let now = broker.connections();
                self.connections.send_if_modified(|was| {
                    let changed = **was != now;
                    if changed {
                        *was = Arc::new(now);
                    }
                    changed
                });
            }
        }
        debug_assert_eq!(
            **self.connections.borrow(),
            broker.connections(),
            "the published connection set is the state's"
        );
    }

    /// Takes out of the published set those of `settled` the state no longer names.
    fn drop_unnamed(&self, broker: &BrokerState, settled: &BTreeSet<u64>) {
        self.connections.send_if_modified(|was| {
            let gone: Vec<u64> = settled
                .iter()
                .copied()
                .filter(|conn| was.contains(conn) && !broker.names_conn(*conn))
                .collect();
            if gone.is_empty() {
                return false;
            }
            let set = Arc::make_mut(was);
            gone.iter().for_each(|conn| {
                set.remove(conn);
            });
            true
        });
    }
}

fn send_if_changed<T: PartialEq>(sender: &watch::Sender<T>, now: T) {
    sender.send_if_modified(|was| {
        let changed = *was != now;
        if changed {
            *was = now;
        }
        changed
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::queue::ConsumerKey;

    fn settle(conn: u64) -> Command {
        Command::Settle {
            queue: "q".into(),
            msg_ids: vec![1],
            conn,
            channel: 1,
        }
    }

    #[test]
    fn only_consumer_changes_ask_for_a_scan() {
        assert_eq!(ConnsTouched::of(&[]), ConnsTouched::Not);
        assert_eq!(ConnsTouched::of(&[Command::Tick]), ConnsTouched::Any);
        let settled = ConnsTouched::of(&[settle(7), settle(9), settle(7)]);
        assert_eq!(settled, ConnsTouched::Settled(BTreeSet::from([7, 9])));
        let consume = Command::Consume {
            queue: "q".into(),
            consumer: ConsumerKey {
                conn: 7,
                channel: 1,
                tag: "c".into(),
            },
            prefetch: 0,
            no_ack: false,
            exclusive: false,
        };
        assert_eq!(ConnsTouched::of(&[settle(7), consume]), ConnsTouched::Any);
    }
}
