use std::time::{Duration, Instant};

use super::{verdict, LeaderLoss, Verdict};
use crate::limits::{LEADER_GONE_SILENCE, LEADER_SILENT_GONE};
use crate::raft::contact::LeaderContact;

const MS: Duration = Duration::from_millis(1);

#[test]
fn without_a_close_only_the_long_silence_counts() {
    let t = Instant::now();
    let gone_at = t + LEADER_SILENT_GONE;
    // A frozen or cut-off leader: its connections stay open.
    assert_eq!(
        verdict(None, Some(t), t + 2 * LEADER_GONE_SILENCE),
        Verdict::NotYet(gone_at)
    );
    assert_eq!(
        verdict(None, Some(t), gone_at - MS),
        Verdict::NotYet(gone_at)
    );
    assert_eq!(verdict(None, Some(t), gone_at), Verdict::Gone);
    // Never heard: the ordinary timer decides.
    assert_eq!(verdict(None, None, t + 5000 * MS), Verdict::Alive);
}

#[test]
fn heard_after_the_close_means_only_the_long_silence_counts() {
    let t = Instant::now();
    // A live leader redialled and spoke again: a flapping link.
    let closed = t + 5 * MS;
    assert_eq!(
        verdict(Some(closed), Some(closed), closed + 2 * LEADER_GONE_SILENCE),
        Verdict::NotYet(closed + LEADER_SILENT_GONE)
    );
    assert_eq!(
        verdict(
            Some(closed),
            Some(closed + MS),
            closed + 2 * LEADER_GONE_SILENCE
        ),
        Verdict::NotYet(closed + MS + LEADER_SILENT_GONE)
    );
    assert_eq!(
        verdict(Some(closed), Some(closed), closed + LEADER_SILENT_GONE),
        Verdict::Gone
    );
}

#[test]
fn the_silence_counts_from_the_last_word() {
    let t = Instant::now();
    let heard = t;
    let closed = t + 30 * MS;
    let gone_at = heard + LEADER_GONE_SILENCE;
    assert_eq!(
        verdict(Some(closed), Some(heard), closed),
        Verdict::NotYet(gone_at)
    );
    assert_eq!(
        verdict(Some(closed), Some(heard), gone_at - MS),
        Verdict::NotYet(gone_at)
    );
    assert_eq!(verdict(Some(closed), Some(heard), gone_at), Verdict::Gone);
}

#[test]
fn never_heard_counts_from_the_close() {
    let t = Instant::now();
    let gone_at = t + LEADER_GONE_SILENCE;
    assert_eq!(verdict(Some(t), None, t), Verdict::NotYet(gone_at));
    assert_eq!(verdict(Some(t), None, gone_at), Verdict::Gone);
}

#[test]
fn the_latest_close_is_kept_per_peer() {
    let loss = LeaderLoss::default();
    let t = Instant::now();
    loss.closed(1, t + 10 * MS);
    loss.closed(1, t);
    loss.closed(2, t + 20 * MS);
    assert_eq!(loss.closed_at(1), Some(t + 10 * MS));
    assert_eq!(loss.closed_at(2), Some(t + 20 * MS));
    assert_eq!(loss.closed_at(3), None);
}

/// A voter asked before its own connection from the leader closed waits for that close,
/// then for the silence, and says gone; one that keeps hearing the leader says no.
// Real time: the rule reads std's monotonic clock, which a paused tokio clock does not move.
#[tokio::test]
async fn wait_gone_waits_for_the_close_and_the_silence() {
    let loss = std::sync::Arc::new(LeaderLoss::default());
    let contact = std::sync::Arc::new(LeaderContact::new(true));
    contact.heard(Instant::now());
    let waiter = {
        let (loss, contact) = (loss.clone(), contact.clone());
        tokio::spawn(async move { loss.wait_gone(7, &contact, 100 * LEADER_GONE_SILENCE).await })
    };
    tokio::task::yield_now().await;
    loss.closed(7, Instant::now());
    assert!(
        waiter.await.expect("waiter"),
        "gone after the close and the silence"
    );

    let alive = LeaderLoss::default();
    contact.heard(Instant::now());
    assert!(!alive.wait_gone(7, &contact, LEADER_GONE_SILENCE).await);
}

/// An append that arrived after the close counts as a word from the leader, though Raft has
/// not accepted it yet (it may wait for a long fsync).
#[test]
fn an_append_that_arrived_after_the_close_means_alive() {
    let loss = LeaderLoss::default();
    let contact = LeaderContact::new(true);
    let t = Instant::now() - 2 * LEADER_GONE_SILENCE;
    contact.heard(t);
    loss.closed(7, t + MS);
    assert_eq!(loss.verdict(7, &contact), Verdict::Gone);
    loss.append_arrived(Instant::now());
    // Heard since the close: only the long silence, not yet run, could make it gone.
    assert!(matches!(loss.verdict(7, &contact), Verdict::NotYet(_)));
}
