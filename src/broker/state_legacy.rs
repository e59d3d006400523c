//! The state as machine version 1 laid it out in a snapshot (snapshot format 5): one vhost,
//! no users. A node reads it from an older build's snapshot, and writes it while its cluster
//! still runs machine version 1, so that members not yet upgraded can install its snapshots
//! (a rolling upgrade: docs/formats.md).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::access::Access;
use super::channel_limit::ChannelLimits;
use super::command::Command;
use super::exchange::Exchange;
use super::messages::Messages;
use super::state::{BrokerState, QueueEntry};
use super::vhost::{Vhost, DEFAULT_VHOST};

/// Field for field, the `BrokerState` of machine version 1.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LegacyBrokerState {
    exchanges: BTreeMap<String, Exchange>,
    queues: BTreeMap<String, QueueEntry>,
    messages: Messages,
    next_msg_id: u64,
    now_ms: u64,
    channel_limits: ChannelLimits,
}

impl BrokerState {
    /// The state in the old layout; `None` when it holds what that layout cannot (another
    /// vhost, users), which no cluster at machine version 1 can.
    pub fn to_legacy(&self) -> Option<LegacyBrokerState> {
        if self.vhosts.len() != 1 || self.access != Access::default() {
            return None;
        }
        let default = self.vhosts.get(DEFAULT_VHOST)?;
        Some(LegacyBrokerState {
            exchanges: default.exchanges.clone(),
            queues: default.queues.clone(),
            messages: self.messages.clone(),
            next_msg_id: self.next_msg_id,
            now_ms: self.now_ms,
            channel_limits: self.channel_limits.clone(),
        })
    }

    pub fn from_legacy(legacy: LegacyBrokerState) -> BrokerState {
        let default = Vhost {
            exchanges: legacy.exchanges,
            queues: legacy.queues,
        };
        BrokerState {
            vhosts: [(DEFAULT_VHOST.to_string(), default)].into_iter().collect(),
            access: Access::default(),
            messages: legacy.messages,
            next_msg_id: legacy.next_msg_id,
            now_ms: legacy.now_ms,
            channel_limits: legacy.channel_limits,
            here: Vhost::empty(),
            here_name: String::new(),
            // Set by the state machine before each entry.
            machine_version: Command::ACCESS_MACHINE_VERSION - 1,
        }
    }
}
