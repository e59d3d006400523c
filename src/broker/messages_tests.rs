//! `Messages` in memory and cold: holder counts, reads, faults, and the view a snapshot
//! build takes while applies go on.

use std::sync::atomic::Ordering;

use super::*;
use crate::broker::command::Content;
use crate::broker::test_support::MemCold;

fn message(body: &'static str, n_holders: u32) -> StoredMessage {
    StoredMessage {
        content: Content {
            properties: bytes::Bytes::new(),
            body: bytes::Bytes::from_static(body.as_bytes()),
        },
        exchange: String::new(),
        routing_key: "q".into(),
        n_holders,
        headers: Vec::new(),
        deaths: Vec::new(),
        first_death: None,
    }
}

fn cold_messages() -> (Arc<MemCold>, Messages) {
    let cold = Arc::new(MemCold::default());
    let messages = Messages::cold(cold.clone(), 0, BTreeMap::new());
    (cold, messages)
}

/// Moves `messages`' hot ones into `cold`, as a disk node's state machine does (deletions
/// held).
fn move_to(cold: &MemCold, messages: &mut Messages) {
    cold.after_entry(messages, true);
}

fn ids(messages: &Messages) -> Vec<(u64, u32)> {
    let all = messages.iter().map(|m| m.map(|(id, m)| (id, m.n_holders)));
    all.collect::<io::Result<_>>().expect("read")
}

#[test]
fn in_memory_a_message_goes_with_its_last_holder() {
    let mut messages = Messages::default();
    messages.insert(1, message("one", 2));
    messages.insert(2, message("two", 1));
    assert_eq!(messages.len(), 2);
    assert!(!messages.release(1), "one holder left");
    assert_eq!(messages.get(1).expect("held").n_holders, 1);
    assert!(matches!(messages.get(1), Some(Cow::Borrowed(_))));
    assert!(messages.release(1));
    assert!(messages.get(1).is_none());
    assert!(!messages.release(1), "an unknown id is ignored");
    assert_eq!(ids(&messages), vec![(2, 1)]);
    assert!(
        messages.take_doomed().is_empty(),
        "nothing to delete in memory"
    );
}

#[test]
fn cold_messages_keep_only_counts_above_one_in_memory() {
    let (cold, mut messages) = cold_messages();
    messages.insert(1, message("one", 3));
    messages.insert(2, message("two", 1));
    move_to(&cold, &mut messages);
    assert_eq!((messages.n_hot(), messages.len(), cold.len()), (0, 2, 2));
    assert_eq!(messages.n_shared(), 1, "only the message three queues hold");
    let one = messages.get(1).expect("read back");
    assert!(matches!(one, Cow::Owned(_)), "read from the store");
    assert_eq!(*one, message("one", 3), "the count comes from memory");
    assert_eq!(messages.get(2).expect("read").n_holders, 1);

    assert!(!messages.release(1));
    assert_eq!(messages.get(1).expect("held").n_holders, 2);
    assert!(!messages.release(1));
    assert_eq!(messages.n_shared(), 0, "a count of 1 is not kept");
    assert_eq!(messages.get(1).expect("held").n_holders, 1);
    assert!(messages.release(1), "the last holder let go");
    assert!(
        messages.get(1).is_none(),
        "dropped, though its record is there"
    );
    assert_eq!(messages.len(), 1);
    let delivered = messages.get_for_delivery(1).expect("record kept");
    assert_eq!(
        delivered.content.body, "one",
        "until the entry's deliveries are out"
    );
    assert_eq!(ids(&messages), vec![(2, 1)]);
    assert_eq!(messages.take_doomed(), BTreeSet::from([1]));
}

#[test]
fn a_failed_read_is_recorded_not_swallowed() {
    let (cold, mut messages) = cold_messages();
    messages.insert(1, message("one", 1));
    move_to(&cold, &mut messages);
    cold.fail_reads.store(true, Ordering::Relaxed);
    assert!(messages.get(1).is_none());
    assert!(messages.read_failed());
    assert!(messages.take_fault().is_some(), "the state machine sees it");
    assert!(messages.take_fault().is_none(), "once");
    assert!(messages.iter().next().expect("one item").is_err());
    assert!(
        messages.clone() != messages.clone(),
        "a short copy is never equal"
    );
    cold.fail_reads.store(false, Ordering::Relaxed);
    assert!(messages.get(1).is_some());
}

#[test]
fn cold_and_in_memory_messages_compare_equal_and_only_memory_serializes() {
    let (cold, mut on_disk) = cold_messages();
    let mut in_memory = Messages::default();
    for m in [&mut on_disk, &mut in_memory] {
        m.insert(1, message("one", 2));
        m.insert(2, message("two", 1));
    }
    move_to(&cold, &mut on_disk);
    on_disk.insert(3, message("three", 1));
    in_memory.insert(3, message("three", 1));
    assert_eq!(on_disk, in_memory);
    assert_eq!(on_disk.clone(), in_memory, "a copy reads the store");
    assert_eq!(on_disk.clone().n_hot(), 3, "into memory");
    on_disk.release(1);
    assert!(on_disk != in_memory);
    assert!(
        postcard::to_stdvec(&on_disk).is_err(),
        "cold messages are streamed"
    );
    let bytes = postcard::to_stdvec(&in_memory).expect("encode");
    let back: Messages = postcard::from_bytes(&bytes).expect("decode");
    assert_eq!(back, in_memory);
}

#[test]
fn a_build_view_is_the_state_at_its_copy_while_applies_go_on() {
    let (cold, mut messages) = cold_messages();
    messages.insert(1, message("one", 1));
    messages.insert(2, message("two", 2));
    messages.insert(3, message("three", 1));
    move_to(&cold, &mut messages);
    let next_msg_id = 4;
    let view = messages.view(next_msg_id);
    let at_copy = vec![(1, 1), (2, 2), (3, 1)];

    // Applies go on: 1 is dropped (its deletion held), 2 loses a holder, 4 is stored.
    assert!(messages.release(1));
    assert!(!messages.release(2));
    messages.insert(4, message("four", 1));
    move_to(&cold, &mut messages);
    assert_eq!(ids(&messages), vec![(2, 1), (3, 1), (4, 1)]);
    assert_eq!(
        ids(&view),
        at_copy,
        "a record written after the copy is excluded"
    );
    assert_eq!(view.len(), 3);
    assert!(view.get(4).is_none());

    // The build ends; the held deletion happens.
    cold.after_entry(&mut messages, false);
    assert_eq!(cold.len(), 3);
    assert_eq!(ids(&messages), vec![(2, 1), (3, 1), (4, 1)]);
}

/// A disk node's budget: the oldest messages go to the store until what stays in memory
/// weighs at most the budget; the newest stay, and every cold id stays below every hot one.
#[test]
fn move_cold_keeps_the_newest_within_the_budget() {
    let (cold, mut messages) = cold_messages();
    for id in 1..=5 {
        messages.insert(id, message("body", 1));
    }
    let each = messages.hot_bytes() / 5;
    assert_eq!(each, weight(&message("body", 1)));
    let mut written = Vec::new();
    messages
        .move_cold(2 * each, |id, _| {
            written.push(id);
            Ok(())
        })
        .expect("move");
    assert_eq!(written, vec![1, 2, 3], "oldest first, until two fit");
    assert_eq!((messages.n_hot(), messages.hot_bytes()), (2, 2 * each));
    assert!(messages.get_hot(4).is_some() && messages.get_hot(5).is_some());
    assert_eq!(messages.len(), 5);

    tracing::info!("--- one released while in memory never reaches the store");
    let (cold_2, mut kept) = cold_messages();
    kept.insert(1, message("acked soon", 1));
    kept.move_cold(u64::MAX, |_, _| unreachable!("within the budget"))
        .expect("move");
    assert!(kept.release(1), "its only holder let go");
    cold_2.after_entry(&mut kept, false);
    assert_eq!((kept.len(), kept.hot_bytes(), cold_2.len()), (0, 0, 0));
    drop(cold);
}

/// A failed write leaves the message in memory: nothing is lost, and the next entry's move
/// writes it again.
#[test]
fn a_failed_move_keeps_the_message_in_memory() {
    let (_cold, mut messages) = cold_messages();
    messages.insert(1, message("one", 1));
    let failed = messages.move_cold(0, |_, _| Err(io::Error::other("disk full")));
    assert!(failed.is_err());
    assert_eq!((messages.n_hot(), messages.len()), (1, 1));
    assert_eq!(messages.get(1).expect("still there").content.body, "one");
}

/// The view a snapshot build takes holds the messages in memory as well as those in the
/// store, in id order, with their holder counts.
#[test]
fn a_view_reads_hot_and_cold_messages_in_id_order() {
    let (cold, mut messages) = cold_messages();
    for id in 1..=4 {
        messages.insert(id, message("m", if id % 2 == 0 { 2 } else { 1 }));
    }
    let keep = 2 * weight(&message("m", 1));
    cold.after_entry_keeping(&mut messages, keep, false);
    assert_eq!((cold.len(), messages.n_hot()), (2, 2));
    let view = messages.view(5);
    assert_eq!(ids(&view), vec![(1, 1), (2, 2), (3, 1), (4, 2)]);
    assert_eq!(view.hot_bytes(), keep);
}

/// Messages a view holds in memory that the state machine moves to the store after the view
/// was taken are read once, from the view's memory: a snapshot build counts each message once.
#[test]
fn a_view_reads_once_what_moves_to_the_store_after_it() {
    let (cold, mut messages) = cold_messages();
    for id in 1..=4 {
        messages.insert(id, message("m", 1));
    }
    let keep = 2 * weight(&message("m", 1));
    cold.after_entry_keeping(&mut messages, keep, true);
    let view = messages.view(5);
    cold.after_entry_keeping(&mut messages, 0, true);
    assert_eq!(cold.len(), 4, "all four in the store now");
    assert_eq!(ids(&view), vec![(1, 1), (2, 1), (3, 1), (4, 1)]);
    assert_eq!(view.len(), 4);
}
