//! End to end: transactions (tx.select/commit/rollback) against the real `warren` binary.
//!
//! The server buffers a transaction's publishes and acks on the channel and commits them as
//! one log entry; these tests check what a client can see of that: nothing before the commit,
//! everything after it, nothing after a rollback, and the channel errors RabbitMQ sends.

use lapin::options::{BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::BasicProperties;

mod common;

use common::{
    confirm_channel, connect, declare_queue, publish_confirmed, ready_count, reply_code,
    start_server, within,
};

/// Publishes `body` to `queue` through the default exchange (no confirm: a tx channel).
async fn publish(channel: &lapin::Channel, queue: &str, body: &[u8]) {
    channel
        .basic_publish(
            "",
            queue,
            BasicPublishOptions::default(),
            body,
            BasicProperties::default(),
        )
        .await
        .expect("publish");
}

/// basic.get with no_ack on `queue`: the body, or None on get-empty.
async fn get_body(channel: &lapin::Channel, queue: &str) -> Option<Vec<u8>> {
    within(
        "basic.get",
        channel.basic_get(queue, BasicGetOptions { no_ack: true }),
    )
    .await
    .expect("basic.get")
    .map(|got| got.delivery.data)
}

/// Publishes to two queues inside a transaction: another channel sees neither queue change
/// until tx.commit, and then both hold every message in publish order.
#[tokio::test]
async fn commit_makes_publishes_to_two_queues_visible_together() {
    let server = start_server();
    let conn = connect(server.addr).await;
    let tx = conn.create_channel().await.expect("tx channel");
    let observer = conn.create_channel().await.expect("observer channel");
    declare_queue(&observer, "tx-a").await;
    declare_queue(&observer, "tx-b").await;

    tracing::info!("--- publish to both queues inside a transaction");
    within("tx.select", tx.tx_select())
        .await
        .expect("tx.select");
    for (queue, body) in [
        ("tx-a", &b"a1"[..]),
        ("tx-b", b"b1"),
        ("tx-a", b"a2"),
        ("tx-b", b"b2"),
    ] {
        publish(&tx, queue, body).await;
    }
    // The server reads one connection's frames in order, so these declares are handled after
    // the publishes above: an uncommitted publish must not be visible yet.
    assert_eq!(ready_count(&observer, "tx-a").await, 0, "before commit");
    assert_eq!(ready_count(&observer, "tx-b").await, 0, "before commit");

    tracing::info!("--- commit: both queues have their messages");
    within("tx.commit", tx.tx_commit())
        .await
        .expect("tx.commit");
    assert_eq!(ready_count(&observer, "tx-a").await, 2, "after commit");
    assert_eq!(ready_count(&observer, "tx-b").await, 2, "after commit");
    assert_eq!(
        get_body(&observer, "tx-a").await.as_deref(),
        Some(&b"a1"[..])
    );
    assert_eq!(
        get_body(&observer, "tx-a").await.as_deref(),
        Some(&b"a2"[..])
    );
    assert_eq!(
        get_body(&observer, "tx-b").await.as_deref(),
        Some(&b"b1"[..])
    );
    assert_eq!(
        get_body(&observer, "tx-b").await.as_deref(),
        Some(&b"b2"[..])
    );
    assert_eq!(get_body(&observer, "tx-a").await, None);
    assert_eq!(get_body(&observer, "tx-b").await, None);
    conn.close(200, "bye").await.expect("close");
}

/// tx.rollback discards the buffered publishes; the channel stays transactional and a later
/// commit publishes only what came after the rollback.
#[tokio::test]
async fn rollback_discards_buffered_publishes() {
    let server = start_server();
    let conn = connect(server.addr).await;
    let tx = conn.create_channel().await.expect("tx channel");
    let observer = conn.create_channel().await.expect("observer channel");
    declare_queue(&observer, "tx-r").await;

    within("tx.select", tx.tx_select())
        .await
        .expect("tx.select");
    for body in [&b"gone-1"[..], b"gone-2", b"gone-3"] {
        publish(&tx, "tx-r", body).await;
    }
    within("tx.rollback", tx.tx_rollback())
        .await
        .expect("tx.rollback");
    assert_eq!(ready_count(&observer, "tx-r").await, 0, "after rollback");

    tracing::info!("--- the next transaction commits only its own publish");
    publish(&tx, "tx-r", b"kept").await;
    within("tx.commit", tx.tx_commit())
        .await
        .expect("tx.commit");
    assert_eq!(ready_count(&observer, "tx-r").await, 1, "after commit");
    assert_eq!(
        get_body(&observer, "tx-r").await.as_deref(),
        Some(&b"kept"[..])
    );
    conn.close(200, "bye").await.expect("close");
}

/// An ack inside a transaction that is rolled back does not settle the message: it stays
/// unacked on the channel, can be acked again, and comes back redelivered when the channel
/// closes. An ack that is committed does settle its message.
#[tokio::test]
async fn rolled_back_ack_leaves_message_unacked() {
    let server = start_server();
    let (conn, publisher) = confirm_channel(server.addr, "tx-ack").await;
    publish_confirmed(&publisher, "tx-ack", b"rolled-back").await;
    publish_confirmed(&publisher, "tx-ack", b"committed").await;

    let tx = conn.create_channel().await.expect("tx channel");
    within("tx.select", tx.tx_select())
        .await
        .expect("tx.select");
    let mut tags = Vec::new();
    for expected in [&b"rolled-back"[..], b"committed"] {
        let got = within(
            "basic.get",
            tx.basic_get("tx-ack", BasicGetOptions::default()),
        )
        .await
        .expect("basic.get")
        .expect("a message");
        assert_eq!(got.delivery.data, expected);
        assert!(!got.delivery.redelivered);
        tags.push(got.delivery.delivery_tag);
    }

    tracing::info!("--- ack both inside the transaction, then roll back");
    for tag in &tags {
        tx.basic_ack(*tag, BasicAckOptions::default())
            .await
            .expect("basic.ack");
    }
    within("tx.rollback", tx.tx_rollback())
        .await
        .expect("tx.rollback");
    // Both are still checked out to the tx channel: none is ready.
    assert_eq!(ready_count(&publisher, "tx-ack").await, 0);

    tracing::info!("--- ack the second again and commit; close the channel");
    // An unknown delivery tag would close the channel with 406 and fail the commit.
    tx.basic_ack(tags[1], BasicAckOptions::default())
        .await
        .expect("basic.ack");
    within("tx.commit", tx.tx_commit())
        .await
        .expect("tx.commit after re-ack");
    within("channel.close", tx.close(200, "bye"))
        .await
        .expect("close tx channel");

    let observer = conn.create_channel().await.expect("observer channel");
    let again = within(
        "basic.get",
        observer.basic_get("tx-ack", BasicGetOptions { no_ack: true }),
    )
    .await
    .expect("basic.get")
    .expect("the message whose ack was rolled back");
    assert_eq!(again.delivery.data, b"rolled-back");
    assert!(
        again.delivery.redelivered,
        "a message returned by a channel close is redelivered"
    );
    assert_eq!(
        get_body(&observer, "tx-ack").await,
        None,
        "the committed ack settled its message"
    );
    conn.close(200, "bye").await.expect("close");
}

/// tx.commit on a channel that never sent tx.select: channel.close 406, and the connection
/// goes on serving other channels.
#[tokio::test]
async fn commit_without_select_is_406() {
    let server = start_server();
    let conn = connect(server.addr).await;
    let channel = conn.create_channel().await.expect("channel");
    let refused = within("tx.commit", channel.tx_commit())
        .await
        .expect_err("tx.commit without tx.select");
    assert_eq!(reply_code(&refused), 406, "{refused:?}");

    let other = conn.create_channel().await.expect("second channel");
    declare_queue(&other, "after-406").await;
    conn.close(200, "bye").await.expect("close");
}

/// tx.rollback on a channel that never sent tx.select: channel.close 406.
#[tokio::test]
async fn rollback_without_select_is_406() {
    let server = start_server();
    let conn = connect(server.addr).await;
    let channel = conn.create_channel().await.expect("channel");
    let refused = within("tx.rollback", channel.tx_rollback())
        .await
        .expect_err("tx.rollback without tx.select");
    assert_eq!(reply_code(&refused), 406, "{refused:?}");
    conn.close(200, "bye").await.expect("close");
}

/// tx.select on a channel in confirm mode: 406 PRECONDITION_FAILED (RabbitMQ: "cannot
/// switch from confirm to tx mode").
#[tokio::test]
async fn tx_select_on_confirm_channel_is_406() {
    let server = start_server();
    let conn = connect(server.addr).await;
    let channel = conn.create_channel().await.expect("channel");
    within(
        "confirm.select",
        channel.confirm_select(ConfirmSelectOptions::default()),
    )
    .await
    .expect("confirm.select");
    let refused = within("tx.select", channel.tx_select())
        .await
        .expect_err("tx.select on a confirm channel");
    assert_eq!(reply_code(&refused), 406, "{refused:?}");
    conn.close(200, "bye").await.expect("close");
}

/// confirm.select on a transactional channel: 406 as well.
#[tokio::test]
async fn confirm_select_on_tx_channel_is_406() {
    let server = start_server();
    let conn = connect(server.addr).await;
    let channel = conn.create_channel().await.expect("channel");
    within("tx.select", channel.tx_select())
        .await
        .expect("tx.select");
    let refused = within(
        "confirm.select",
        channel.confirm_select(ConfirmSelectOptions::default()),
    )
    .await
    .expect_err("confirm.select on a tx channel");
    assert_eq!(reply_code(&refused), 406, "{refused:?}");
    conn.close(200, "bye").await.expect("close");
}
