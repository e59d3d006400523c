use std::time::{Duration, Instant};

use super::{verdict, LeaderLoss, Verdict};
use crate::limits::LEADER_GONE_SILENCE;
use crate::raft::contact::LeaderContact;

const MS: Duration = Duration::from_millis(1);

#[test]
fn no_close_means_alive() {
    let t = Instant::now();
    assert_eq!(
        verdict(None, Some(t), t + 10 * LEADER_GONE_SILENCE),
        Verdict::Alive
    );
    assert_eq!(verdict(None, None, t), Verdict::Alive);
}

#[test]
fn heard_after_the_close_means_alive() {
    let t = Instant::now();
    // A live leader redialled and spoke again: a flapping link.
    let closed = t + 5 * MS;
    assert_eq!(
        verdict(Some(closed), Some(closed), t + 5000 * MS),
        Verdict::Alive
    );
    assert_eq!(
        verdict(Some(closed), Some(closed + MS), t + 5000 * MS),
        Verdict::Alive
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
    let t = Instant::now() - 10 * LEADER_GONE_SILENCE;
    contact.heard(t);
    loss.closed(7, t + MS);
    assert_eq!(loss.verdict(7, &contact), Verdict::Gone);
    loss.append_arrived(t + 2 * MS);
    assert_eq!(loss.verdict(7, &contact), Verdict::Alive);
}
