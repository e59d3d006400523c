//! Lifecycles: what goes when a channel or connection closes, auto-delete queues and
//! exchanges, and the removal of a queue or exchange with everything that points at it.
//!
//! RabbitMQ's rules: an exclusive queue dies with its connection; an auto-delete queue dies
//! when its last consumer goes (only once it has had one); an auto-delete exchange dies when
//! its last binding as a source goes. Deletions cascade, each step bounded by the number of
//! exchanges, so apply stays total.

use super::channel_limit::ChannelCredit;
use super::exchange::Destination;
use super::ready::RequeueTo;
use super::state::{BrokerState, Effects};

impl BrokerState {
    /// Forgets the channel's limit, returns every delivery it held and drops its consumers.
    pub(super) fn channel_closed(&mut self, conn: u64, channel: u16, fx: &mut Effects) {
        // The queues that waited for its credit need it no more.
        self.channel_limits.remove((conn, channel));
        let to = RequeueTo::at(self.machine_version);
        for (name, entry) in self.here.queues.iter_mut() {
            let mut gate = self.channel_limits.gate(name);
            fx.deliver(
                name,
                entry.queue.channel_closed(conn, channel, to, &mut gate),
            );
        }
        self.auto_delete_queues(fx);
    }

    /// Forgets the connection's channel limits and returns every delivery its channels
    /// held, then deletes the exclusive queues it owned and the auto-delete queues that lost
    /// their last consumer.
    pub(super) fn connection_closed(&mut self, conn: u64, fx: &mut Effects) {
        self.channel_limits.remove_connection(conn);
        let to = RequeueTo::at(self.machine_version);
        for (name, entry) in self.here.queues.iter_mut() {
            let mut gate = self.channel_limits.gate(name);
            fx.deliver(name, entry.queue.connection_closed(conn, to, &mut gate));
        }
        let owned: Vec<String> = self
            .here
            .queues
            .iter()
            .filter(|(_, e)| e.exclusive_conn == Some(conn))
            .map(|(name, _)| name.clone())
            .collect();
        for name in owned {
            self.remove_queue(&name, fx);
        }
        self.auto_delete_queues(fx);
    }

    /// Deletes the auto-delete queues whose last consumer went.
    pub(super) fn auto_delete_queues(&mut self, fx: &mut Effects) {
        let unused: Vec<String> = self
            .here
            .queues
            .iter()
            .filter(|(_, e)| e.auto_delete && e.queue.lost_all_consumers())
            .map(|(name, _)| name.clone())
            .collect();
        for name in unused {
            self.remove_queue(&name, fx);
        }
    }

    /// Deletes a queue with its messages and every binding to it; its consumers are
    /// reported cancelled, and its checkouts no longer count against their channels' limits
    /// (RabbitMQ frees that credit only at the client's ack; here the count must match the
    /// queues). Returns how many messages were ready.
    pub(super) fn remove_queue(&mut self, name: &str, fx: &mut Effects) -> u32 {
        let Some(entry) = self.here.queues.remove(name) else {
            return 0;
        };
        let mut gate = self.channel_limits.gate(name);
        entry
            .queue
            .consumer_checkouts()
            .for_each(|key| gate.returned(key));
        let keys = entry.queue.consumer_keys().cloned();
        fx.cancelled.extend(keys.map(|k| (name.to_string(), k)));
        let ids = entry.queue.all_msg_ids();
        self.release(&ids);
        self.unbind_all(Destination::Queue(name.to_string()));
        entry.queue.n_ready() as u32
    }

    /// Deletes an exchange and every binding to it from other exchanges.
    pub(super) fn remove_exchange(&mut self, name: &str) {
        self.unbind_all(Destination::Exchange(name.to_string()));
    }

    /// Removes every binding to `gone`, and `gone` itself when it is an exchange. An
    /// auto-delete exchange left without bindings goes the same way. Each exchange can
    /// empty only once, so the work list holds at most one entry per exchange.
    pub(super) fn unbind_all(&mut self, gone: Destination) {
        let mut work = vec![gone];
        while let Some(destination) = work.pop() {
            if let Destination::Exchange(name) = &destination {
                self.here.exchanges.remove(name);
            }
            for (name, x) in self.here.exchanges.iter_mut() {
                let before = x.bindings.len();
                x.bindings.retain(|b| b.destination != destination);
                if x.auto_delete && before > 0 && x.bindings.is_empty() {
                    work.push(Destination::Exchange(name.clone()));
                }
            }
            debug_assert!(work.len() <= self.here.exchanges.len() + 1);
        }
    }
}

#[cfg(test)]
#[path = "state_lifecycle_tests.rs"]
mod tests;
