//! A producer (skeleton).

use std::sync::Arc;

use tokio::sync::watch;

use super::{Ledger, WorkloadConfig};
use crate::history::History;

/// What one producer did.
#[derive(Clone, Debug, Default)]
pub struct ProducerTotals {
    pub attempts: u64,
    pub confirmed: u64,
    pub nacked: u64,
    pub returned: u64,
    pub unknown: u64,
    pub reconnects: u64,
}

pub struct Producer {
    _stop: watch::Receiver<bool>,
}

impl Producer {
    pub fn new(
        _cfg: &Arc<WorkloadConfig>,
        _pid: usize,
        _history: &History,
        _ledger: &Arc<Ledger>,
        stop: &watch::Receiver<bool>,
    ) -> Producer {
        Producer {
            _stop: stop.clone(),
        }
    }

    pub async fn run(self) -> ProducerTotals {
        ProducerTotals::default()
    }
}
