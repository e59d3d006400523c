//! Minimal in-memory state machine for [`TypeConfig`], used only to drive openraft's storage
//! conformance suite (which exercises a log store and a state machine together).

use std::io;
use std::sync::{Arc, Mutex};

use futures::{Stream, TryStreamExt};
use openraft::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};

use super::types::{Response, TypeConfig};

type Snap = SnapshotOf<TypeConfig, Vec<u8>>;

#[derive(Debug, Default)]
struct Inner {
    last_applied: Option<LogIdOf<TypeConfig>>,
    membership: StoredMembershipOf<TypeConfig>,
    current: Option<(SnapshotMetaOf<TypeConfig>, Vec<u8>)>,
}

/// State machine that only tracks last-applied and membership; snapshot data is empty.
#[derive(Clone, Debug, Default)]
pub struct MemStateMachine(Arc<Mutex<Inner>>);

impl MemStateMachine {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for MemStateMachine {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<Snap, io::Error> {
        let mut inner = self.lock();
        let meta = SnapshotMetaOf::<TypeConfig> {
            last_log_id: inner.last_applied,
            last_membership: inner.membership.clone(),
        };
        inner.current = Some((meta.clone(), Vec::new()));
        Ok(Snap {
            meta,
            snapshot: Vec::new(),
        })
    }
}

impl RaftStateMachine<TypeConfig> for MemStateMachine {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogIdOf<TypeConfig>>, StoredMembershipOf<TypeConfig>), io::Error> {
        let inner = self.lock();
        Ok((inner.last_applied, inner.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        while let Some((entry, responder)) = entries.try_next().await? {
            {
                let mut inner = self.lock();
                inner.last_applied = Some(entry.log_id);
                if let EntryPayload::Membership(m) = &entry.payload {
                    inner.membership =
                        StoredMembershipOf::<TypeConfig>::new(Some(entry.log_id), m.clone());
                }
            }
            if let Some(r) = responder {
                r.send(Response::default());
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<TypeConfig>,
        snapshot: Self::SnapshotData,
    ) -> Result<(), io::Error> {
        let mut inner = self.lock();
        inner.last_applied = meta.last_log_id;
        inner.membership = meta.last_membership.clone();
        inner.current = Some((meta.clone(), snapshot));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snap>, io::Error> {
        Ok(self.lock().current.as_ref().map(|(meta, data)| Snap {
            meta: meta.clone(),
            snapshot: data.clone(),
        }))
    }
}
