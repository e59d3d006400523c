//! End to end: what the server deletes on its own (exclusive queues with their connection,
//! auto-delete queues and exchanges when their last consumer or binding goes), the
//! server-sent basic.cancel when a consumed queue is deleted, and exchange.delete if-unused.
//!
//! Deletions that follow a connection close happen after the close handshake, so those
//! tests poll (bounded by `within`) until the queue is gone.

use std::time::Duration;

use futures::StreamExt;
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, ExchangeDeclareOptions, ExchangeDeleteOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{Connection, ExchangeKind};

mod common;

use common::{
    confirm_channel, connect, declare_queue, next_delivery, publish_confirmed, refused,
    start_server, within,
};

const NOT_FOUND: u16 = 404;
const RESOURCE_LOCKED: u16 = 405;
const PRECONDITION_FAILED: u16 = 406;

/// Pause between polls for a deletion the server does asynchronously.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// The reply code of a passive queue.declare of `queue` on a fresh channel of `conn`, or
/// None when the queue is there.
async fn passive_queue_code(conn: &Connection, queue: &str) -> Option<u16> {
    let channel = conn.create_channel().await.expect("channel");
    let options = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    match within(
        "passive queue.declare",
        channel.queue_declare(queue, options, FieldTable::default()),
    )
    .await
    {
        Ok(_) => {
            channel.close(200, "done").await.expect("channel.close");
            None
        }
        Err(error) => Some(common::reply_code(&error)),
    }
}

/// Whether a passive exchange.declare of `exchange` on a fresh channel finds it; any
/// refusal other than 404 fails the test.
async fn exchange_exists(conn: &Connection, exchange: &str) -> bool {
    let channel = conn.create_channel().await.expect("channel");
    let options = ExchangeDeclareOptions {
        passive: true,
        ..ExchangeDeclareOptions::default()
    };
    let result = within(
        "passive exchange.declare",
        channel.exchange_declare(
            exchange,
            ExchangeKind::Direct,
            options,
            FieldTable::default(),
        ),
    )
    .await;
    match result {
        Ok(()) => {
            channel.close(200, "done").await.expect("channel.close");
            true
        }
        Err(error) => {
            assert_eq!(common::reply_code(&error), NOT_FOUND, "{error:?}");
            false
        }
    }
}

/// Polls until a passive declare of `queue` is 404, allowing `while_there` meanwhile.
async fn await_queue_gone(conn: &Connection, queue: &str, while_there: Option<u16>) {
    within(&format!("queue {queue} to be deleted"), async {
        loop {
            match passive_queue_code(conn, queue).await {
                Some(NOT_FOUND) => return,
                code if code == while_there => tokio::time::sleep(POLL_INTERVAL).await,
                other => panic!("passive declare of {queue}: {other:?}"),
            }
        }
    })
    .await;
}

/// An exclusive queue goes with its connection: another connection sees 405 while the
/// owner lives and 404 once it has closed.
#[tokio::test]
async fn exclusive_queue_is_deleted_when_its_connection_closes() {
    let server = start_server();
    let owner = connect(server.addr).await;
    let channel = owner.create_channel().await.expect("channel");
    let exclusive = QueueDeclareOptions {
        exclusive: true,
        ..QueueDeclareOptions::default()
    };
    within(
        "exclusive queue.declare",
        channel.queue_declare("excl-life", exclusive, FieldTable::default()),
    )
    .await
    .expect("queue.declare");

    let other = connect(server.addr).await;
    assert_eq!(
        passive_queue_code(&other, "excl-life").await,
        Some(RESOURCE_LOCKED)
    );

    owner.close(200, "bye").await.expect("close");
    await_queue_gone(&other, "excl-life", Some(RESOURCE_LOCKED)).await;
    other.close(200, "bye").await.expect("close");
}

/// An auto-delete queue outlives the cancel of one of its two consumers and goes when the
/// last one cancels.
#[tokio::test]
async fn auto_delete_queue_is_deleted_when_its_last_consumer_cancels() {
    let server = start_server();
    let conn = connect(server.addr).await;
    let channel = conn.create_channel().await.expect("channel");
    let auto_delete = QueueDeclareOptions {
        auto_delete: true,
        ..QueueDeclareOptions::default()
    };
    within(
        "auto-delete queue.declare",
        channel.queue_declare("ad-q", auto_delete, FieldTable::default()),
    )
    .await
    .expect("queue.declare");
    // lapin cancels a consumer whose last handle is dropped: keep both.
    let mut consumers = Vec::new();
    for tag in ["c1", "c2"] {
        let consumer = within(
            "basic.consume",
            channel.basic_consume(
                "ad-q",
                tag,
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await
        .expect("basic.consume");
        consumers.push(consumer);
    }

    tracing::info!("--- cancel one consumer: the queue stays");
    within(
        "basic.cancel",
        channel.basic_cancel("c1", BasicCancelOptions::default()),
    )
    .await
    .expect("basic.cancel");
    let options = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let declared = within(
        "passive queue.declare",
        channel.queue_declare("ad-q", options, FieldTable::default()),
    )
    .await
    .expect("the queue went with a consumer left");
    assert_eq!(declared.consumer_count(), 1);

    tracing::info!("--- cancel the last consumer: the queue goes");
    within(
        "basic.cancel",
        channel.basic_cancel("c2", BasicCancelOptions::default()),
    )
    .await
    .expect("basic.cancel");
    await_queue_gone(&conn, "ad-q", None).await;
    drop(consumers);
    conn.close(200, "bye").await.expect("close");
}

/// An auto-delete exchange outlives the removal of one of its two bindings and goes when the
/// last one is removed.
#[tokio::test]
async fn auto_delete_exchange_is_deleted_when_its_last_binding_goes() {
    let server = start_server();
    let conn = connect(server.addr).await;
    let channel = conn.create_channel().await.expect("channel");
    let auto_delete = ExchangeDeclareOptions {
        auto_delete: true,
        ..ExchangeDeclareOptions::default()
    };
    within(
        "exchange.declare",
        channel.exchange_declare(
            "ad-x",
            ExchangeKind::Direct,
            auto_delete,
            FieldTable::default(),
        ),
    )
    .await
    .expect("exchange.declare");
    for (queue, key) in [("adx-1", "a"), ("adx-2", "b")] {
        declare_queue(&channel, queue).await;
        within(
            "queue.bind",
            channel.queue_bind(
                queue,
                "ad-x",
                key,
                Default::default(),
                FieldTable::default(),
            ),
        )
        .await
        .expect("queue.bind");
    }

    within(
        "queue.unbind",
        channel.queue_unbind("adx-1", "ad-x", "a", FieldTable::default()),
    )
    .await
    .expect("queue.unbind");
    assert!(
        exchange_exists(&conn, "ad-x").await,
        "went with a binding left"
    );

    within(
        "queue.unbind",
        channel.queue_unbind("adx-2", "ad-x", "b", FieldTable::default()),
    )
    .await
    .expect("queue.unbind");
    within("ad-x to be deleted", async {
        while exchange_exists(&conn, "ad-x").await {
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    })
    .await;
    conn.close(200, "bye").await.expect("close");
}

/// queue.delete of a queue with a consumer (on another connection): the consumer gets a
/// server-sent basic.cancel (consumer_cancel_notify, which lapin announces), so its stream
/// ends and its state is Canceled; the connection stays usable.
#[tokio::test]
async fn queue_delete_sends_basic_cancel_to_its_consumer() {
    let server = start_server();
    let (consumer_conn, channel) = confirm_channel(server.addr, "doomed").await;
    let mut consumer = within(
        "basic.consume",
        channel.basic_consume(
            "doomed",
            "doomed-consumer",
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        ),
    )
    .await
    .expect("basic.consume");
    publish_confirmed(&channel, "doomed", b"before").await;
    assert_eq!(next_delivery(&mut consumer).await.data, b"before");

    tracing::info!("--- another connection deletes the queue");
    let deleter = connect(server.addr).await;
    let deleter_channel = deleter.create_channel().await.expect("channel");
    within(
        "queue.delete",
        deleter_channel.queue_delete("doomed", QueueDeleteOptions::default()),
    )
    .await
    .expect("queue.delete");

    match within("the consumer to be cancelled", consumer.next()).await {
        None => {}
        Some(other) => panic!("expected the consumer stream to end, got {other:?}"),
    }
    assert_eq!(consumer.state(), lapin::ConsumerState::Canceled);
    assert!(
        channel.status().connected(),
        "the cancel closed the channel"
    );
    declare_queue(&channel, "after-cancel").await;
    deleter.close(200, "bye").await.expect("close");
    consumer_conn.close(200, "bye").await.expect("close");
}

/// exchange.delete if-unused on an exchange with a binding: 406 PRECONDITION_FAILED and
/// the exchange stays; without bindings it is deleted.
#[tokio::test]
async fn exchange_delete_if_unused_on_bound_exchange_is_406() {
    let server = start_server();
    let conn = connect(server.addr).await;
    let channel = conn.create_channel().await.expect("channel");
    within(
        "exchange.declare",
        channel.exchange_declare(
            "in-use",
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("exchange.declare");
    declare_queue(&channel, "in-use-q").await;
    within(
        "queue.bind",
        channel.queue_bind(
            "in-use-q",
            "in-use",
            "",
            Default::default(),
            FieldTable::default(),
        ),
    )
    .await
    .expect("queue.bind");

    let if_unused = ExchangeDeleteOptions {
        if_unused: true,
        ..ExchangeDeleteOptions::default()
    };
    let (code, text) = refused(
        "exchange.delete if-unused",
        channel.exchange_delete("in-use", if_unused),
    )
    .await;
    assert_eq!(code, PRECONDITION_FAILED, "{text}");
    assert!(text.contains("in use"), "{text}");
    assert!(
        exchange_exists(&conn, "in-use").await,
        "deleted despite 406"
    );

    tracing::info!("--- unbound, if-unused deletes it");
    let channel = conn.create_channel().await.expect("channel");
    within(
        "queue.unbind",
        channel.queue_unbind("in-use-q", "in-use", "", FieldTable::default()),
    )
    .await
    .expect("queue.unbind");
    within(
        "exchange.delete if-unused",
        channel.exchange_delete("in-use", if_unused),
    )
    .await
    .expect("exchange.delete of an unused exchange");
    assert!(!exchange_exists(&conn, "in-use").await, "still there");
    conn.close(200, "bye").await.expect("close");
}
