use std::time::{Duration, Instant};

use super::*;

fn long_ago() -> Instant {
    Instant::now() - LEADER_CONTACT_STALE_AFTER - Duration::from_secs(1)
}

fn generation(contact: &LeaderContact) -> u64 {
    match *contact.subscribe().borrow() {
        Hold::Unknown { generation } => generation,
        other => panic!("not asking the leader: {other:?}"),
    }
}

#[test]
fn a_single_node_never_holds() {
    let contact = LeaderContact::new(false);
    assert_eq!(contact.gate(1), Gate::Open);
}

#[test]
fn a_member_holds_from_its_start_until_it_applied_the_leaders_read_index() {
    let contact = LeaderContact::new(true);
    contact.heard(Instant::now());
    assert_eq!(contact.gate(1), Gate::Hold, "the leader not asked yet");
    contact.learned(generation(&contact), 5, Instant::now());
    assert_eq!(contact.gate(4), Gate::Hold);
    assert_eq!(contact.gate(5), Gate::Open);
    contact.heard(Instant::now());
    assert_eq!(contact.gate(6), Gate::Open, "steady contact holds nothing");
}

#[test]
fn an_append_after_a_silence_holds_before_it_is_applied() {
    let contact = LeaderContact::new(true);
    contact.learned(generation(&contact), 0, long_ago());
    contact.receiving(Instant::now());
    contact.heard(Instant::now());
    assert_eq!(
        contact.gate(3),
        Gate::Hold,
        "an append that follows a silence may have waited in a socket: no proof of freshness"
    );
}

#[test]
fn applying_after_a_silence_holds_and_asks_again() {
    let contact = LeaderContact::new(true);
    let first = generation(&contact);
    contact.learned(first, 0, long_ago());
    assert_eq!(contact.gate(3), Gate::Hold, "last heard too long ago");
    let second = generation(&contact);
    assert!(second > first);
    contact.learned(first, 1, Instant::now());
    assert_eq!(
        contact.gate(3),
        Gate::Hold,
        "an answer to an earlier question counts not"
    );
    contact.learned(second, 20, Instant::now());
    assert_eq!(
        contact.gate(10),
        Gate::Hold,
        "behind the leader's read index"
    );
    assert_eq!(contact.gate(20), Gate::Open);
}

#[test]
fn a_leader_silent_then_acknowledged_holds_until_it_asked() {
    let contact = LeaderContact::new(true);
    contact.learned(generation(&contact), 0, Instant::now());
    contact.quorum_acked(long_ago());
    assert_eq!(contact.gate(2), Gate::Open);
    contact.quorum_acked(Instant::now() + LEADER_CONTACT_STALE_AFTER * 2);
    assert_eq!(contact.gate(3), Gate::Hold);
}
