//! basic.qos(global=true) in the state: setting a channel's limit, and handing credit that
//! came free to the queues that waited for it (the rules are in `channel_limit.rs`).
//!
//! Must never: leave a channel with credit and a queue waiting for it at the end of a
//! command (every command that frees credit ends by serving the line), or loop unbounded.

use super::channel_limit::ChannelId;
use super::state::{BrokerState, Effects};

impl BrokerState {
    /// Sets channel `id`'s limit to `prefetch` (0: none). A first limit counts the consumer
    /// deliveries the channel already holds, as RabbitMQ's limiter starts from the channel's
    /// unacked count; a raise, or dropping the limit, serves the queues it held back.
    pub(super) fn channel_qos(&mut self, id: ChannelId, prefetch: u32, fx: &mut Effects) {
        if prefetch == 0 {
            for name in self.channel_limits.remove(id) {
                self.serve_queue(&name, fx);
            }
            return;
        }
        if self.channel_limits.update(id, prefetch) {
            return;
        }
        let held = self
            .here
            .queues
            .values()
            .flat_map(|e| e.queue.consumer_checkouts())
            .filter(|k| (k.conn, k.channel) == id)
            .count();
        let n_unacked = u32::try_from(held).unwrap_or(u32::MAX);
        self.channel_limits.insert(id, prefetch, n_unacked);
    }

    /// Each channel that gained credit during this command serves the queues that waited
    /// for it, longest waiting first, until its credit or its line runs out.
    pub(super) fn serve_waiting(&mut self, fx: &mut Effects) {
        // Serving only delivers, so it frees no credit: one pass over the freed channels.
        for id in self.channel_limits.take_freed() {
            self.serve_channel(id, fx);
        }
    }

    fn serve_channel(&mut self, id: ChannelId, fx: &mut Effects) {
        let Some(limit) = self.channel_limits.get(id) else {
            return;
        };
        // A round uses credit (and its queue may rejoin the line once) or takes a queue
        // out of the line for good.
        let rounds_max = 2 * limit.prefetch as usize + limit.waiting.len();
        for _ in 0..=rounds_max {
            let Some(name) = self.channel_limits.next_waiting(id) else {
                return;
            };
            self.serve_queue(&name, fx);
            self.channel_limits.served(id, &name);
        }
        debug_assert!(false, "channel {id:?} served past {rounds_max} rounds");
    }

    /// Lets queue `name` deliver what credit now allows.
    fn serve_queue(&mut self, name: &str, fx: &mut Effects) {
        let Some(entry) = self.here.queues.get_mut(name) else {
            return;
        };
        entry.queue.touch(self.now_ms);
        let deliveries = entry.queue.assign(&mut self.channel_limits.gate(name));
        fx.deliver(name, deliveries);
    }
}

#[cfg(test)]
#[path = "state_qos_tests.rs"]
mod tests;
