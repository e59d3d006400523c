//! A consumer (skeleton).

use std::sync::Arc;

use tokio::sync::watch;

use super::{Ledger, WorkloadConfig};
use crate::history::History;

/// What one consumer did.
#[derive(Clone, Debug, Default)]
pub struct ConsumerTotals {
    pub delivered: u64,
    pub reconnects: u64,
}

pub struct Consumer {
    _stop: watch::Receiver<bool>,
}

impl Consumer {
    pub fn new(
        _cfg: &Arc<WorkloadConfig>,
        _cid: usize,
        _history: &History,
        _ledger: &Arc<Ledger>,
        stop: &watch::Receiver<bool>,
    ) -> Consumer {
        Consumer {
            _stop: stop.clone(),
        }
    }

    pub async fn run(self) -> ConsumerTotals {
        ConsumerTotals::default()
    }
}
