//! Incarnation numbers: each start gets a new one, and a wiped data directory does not start
//! again from 1 (its connections' ids would be those of its first life).

use super::*;

/// The clock as `next_incarnation` reads it (10 ms units, 24 bits).
fn clock() -> u32 {
    ((crate::raft::node::wall_clock_ms() / 10) & 0xFF_FFFF) as u32
}

#[test]
fn every_start_gets_a_higher_incarnation_and_a_wipe_does_not_go_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let before = clock();
    let first = next_incarnation(dir.path()).expect("first");
    assert!(
        first >= before,
        "a fresh directory starts at the clock: {first} < {before}"
    );
    let second = next_incarnation(dir.path()).expect("second");
    assert!(second > first, "{second} <= {first}");

    // The wipe of repair-from-peers: the file is gone. Before, this started again at 1.
    std::fs::remove_file(dir.path().join("incarnation")).expect("wipe");
    let after_wipe = next_incarnation(dir.path()).expect("after the wipe");
    assert!(
        after_wipe >= before,
        "{after_wipe} went back towards an earlier life"
    );

    // Many quick restarts may run ahead of the clock: the count still only goes up.
    std::fs::write(
        dir.path().join("incarnation"),
        format!("{}\n", before + 100_000),
    )
    .expect("write");
    let ahead = next_incarnation(dir.path()).expect("ahead of the clock");
    assert_eq!(ahead, before + 100_001);
}
