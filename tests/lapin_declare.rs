//! End to end: exchange.declare and queue.declare refusals on the real `warren` binary,
//! with RabbitMQ 3.10's reply codes and texts (406 inequivalent arg, 404 passive, 403
//! reserved `amq.` names, 405 exclusive queues of another connection).

use lapin::options::{
    BasicConsumeOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::ExchangeKind;

mod common;

use common::{connect, refused, start_server, within};

const ACCESS_REFUSED: u16 = 403;
const NOT_FOUND: u16 = 404;
const RESOURCE_LOCKED: u16 = 405;
const PRECONDITION_FAILED: u16 = 406;

/// Queue arguments with `x-message-ttl` = `ttl_ms` (a long, as RabbitMQ clients send it).
fn ttl_args(ttl_ms: i64) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ttl_ms));
    args
}

/// The declare options every redeclare below is compared with: durable, not auto-delete.
fn base_options() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

/// A redeclare that changes durable, auto_delete or x-message-ttl closes the channel with
/// 406 "inequivalent arg '<field>'" and leaves the queue as it was.
#[tokio::test]
async fn queue_redeclare_with_other_properties_is_406_inequivalent_arg() {
    let server = start_server();
    let conn = connect(server.addr).await;
    let channel = conn.create_channel().await.expect("channel");
    within(
        "queue.declare",
        channel.queue_declare("redecl", base_options(), ttl_args(1000)),
    )
    .await
    .expect("first declare");

    let cases = [
        ("durable", QueueDeclareOptions::default(), ttl_args(1000)),
        (
            "auto_delete",
            QueueDeclareOptions {
                auto_delete: true,
                ..base_options()
            },
            ttl_args(1000),
        ),
        ("x-message-ttl", base_options(), ttl_args(2000)),
        ("x-message-ttl", base_options(), FieldTable::default()),
    ];
    for (field, options, args) in cases {
        tracing::info!(field, "--- redeclare with a different {field}");
        let other = conn.create_channel().await.expect("channel");
        let (code, text) = refused(
            "inequivalent queue.declare",
            other.queue_declare("redecl", options, args),
        )
        .await;
        assert_eq!(code, PRECONDITION_FAILED, "{field}: {text}");
        assert!(
            text.contains(&format!("inequivalent arg '{field}'")),
            "{field}: {text}"
        );
        assert!(!other.status().connected(), "channel still open after 406");
    }
    assert!(
        conn.status().connected(),
        "a channel error closed the connection"
    );
    conn.close(200, "bye").await.expect("close");
}

/// The same redeclare, property for property and argument for argument, is declare-ok with
/// the queue's current counts, even from another connection.
#[tokio::test]
async fn queue_redeclare_with_identical_properties_succeeds() {
    let server = start_server();
    let conn = connect(server.addr).await;
    let channel = conn.create_channel().await.expect("channel");
    within(
        "queue.declare",
        channel.queue_declare("same", base_options(), ttl_args(1000)),
    )
    .await
    .expect("first declare");
    within(
        "confirm.select",
        channel.confirm_select(ConfirmSelectOptions::default()),
    )
    .await
    .expect("confirm.select");
    common::publish_confirmed(&channel, "same", b"kept").await;

    let other = connect(server.addr).await;
    let other_channel = other.create_channel().await.expect("channel");
    let again = within(
        "identical queue.declare",
        other_channel.queue_declare("same", base_options(), ttl_args(1000)),
    )
    .await
    .expect("identical redeclare refused");
    assert_eq!(again.name().as_str(), "same");
    assert_eq!(again.message_count(), 1, "redeclare lost the message");
    assert!(other_channel.status().connected());
    other.close(200, "bye").await.expect("close");
    conn.close(200, "bye").await.expect("close");
}

/// A passive declare of a queue that does not exist: 404 NOT_FOUND naming the queue.
#[tokio::test]
async fn passive_declare_of_missing_queue_is_404() {
    let server = start_server();
    let conn = connect(server.addr).await;
    let channel = conn.create_channel().await.expect("channel");
    let options = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let (code, text) = refused(
        "passive queue.declare",
        channel.queue_declare("nowhere", options, FieldTable::default()),
    )
    .await;
    assert_eq!(code, NOT_FOUND, "{text}");
    assert!(text.contains("no queue 'nowhere'"), "{text}");
    conn.close(200, "bye").await.expect("close");
}

/// Redeclaring an exchange as another type: 406 inequivalent arg 'type'.
#[tokio::test]
async fn exchange_redeclare_with_other_type_is_406() {
    let server = start_server();
    let conn = connect(server.addr).await;
    let channel = conn.create_channel().await.expect("channel");
    let options = ExchangeDeclareOptions::default();
    within(
        "exchange.declare",
        channel.exchange_declare(
            "x-typed",
            ExchangeKind::Direct,
            options,
            FieldTable::default(),
        ),
    )
    .await
    .expect("exchange.declare");
    within(
        "identical exchange.declare",
        channel.exchange_declare(
            "x-typed",
            ExchangeKind::Direct,
            options,
            FieldTable::default(),
        ),
    )
    .await
    .expect("identical redeclare refused");

    let (code, text) = refused(
        "exchange.declare as fanout",
        channel.exchange_declare(
            "x-typed",
            ExchangeKind::Fanout,
            options,
            FieldTable::default(),
        ),
    )
    .await;
    assert_eq!(code, PRECONDITION_FAILED, "{text}");
    assert!(text.contains("inequivalent arg 'type'"), "{text}");
    conn.close(200, "bye").await.expect("close");
}

/// Names under `amq.` belong to the server: declaring exchange or queue "amq.foo" is 403
/// ACCESS_REFUSED.
#[tokio::test]
async fn declaring_reserved_amq_names_is_403() {
    let server = start_server();
    let conn = connect(server.addr).await;

    let channel = conn.create_channel().await.expect("channel");
    let (code, text) = refused(
        "exchange.declare amq.foo",
        channel.exchange_declare(
            "amq.foo",
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        ),
    )
    .await;
    assert_eq!(code, ACCESS_REFUSED, "{text}");
    assert!(text.contains("reserved prefix 'amq.*'"), "{text}");

    let channel = conn.create_channel().await.expect("channel");
    let (code, text) = refused(
        "queue.declare amq.foo",
        channel.queue_declare(
            "amq.foo",
            QueueDeclareOptions::default(),
            FieldTable::default(),
        ),
    )
    .await;
    assert_eq!(code, ACCESS_REFUSED, "{text}");
    assert!(text.contains("reserved prefix 'amq.*'"), "{text}");
    conn.close(200, "bye").await.expect("close");
}

/// An exchange type the server does not know: a 406 channel close (what pika expects;
/// AMQP-NOTES), and no exchange is created.
#[tokio::test]
async fn unknown_exchange_type_is_406() {
    let server = start_server();
    let conn = connect(server.addr).await;
    let channel = conn.create_channel().await.expect("channel");
    let (code, text) = refused(
        "exchange.declare of type x-nonsense",
        channel.exchange_declare(
            "x-odd",
            ExchangeKind::Custom("x-nonsense".to_string()),
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        ),
    )
    .await;
    assert_eq!(code, PRECONDITION_FAILED, "{text}");
    assert!(text.contains("x-nonsense"), "{text}");

    let channel = conn.create_channel().await.expect("channel");
    let passive = ExchangeDeclareOptions {
        passive: true,
        ..ExchangeDeclareOptions::default()
    };
    let (code, text) = refused(
        "passive exchange.declare",
        channel.exchange_declare(
            "x-odd",
            ExchangeKind::Direct,
            passive,
            FieldTable::default(),
        ),
    )
    .await;
    assert_eq!(code, NOT_FOUND, "the refused exchange exists: {text}");
    conn.close(200, "bye").await.expect("close");
}

/// An exclusive queue touched from another connection (passive declare, declare, consume,
/// delete) is 405 RESOURCE_LOCKED; its owner still uses it.
#[tokio::test]
async fn exclusive_queue_from_another_connection_is_405() {
    let server = start_server();
    let owner = connect(server.addr).await;
    let owner_channel = owner.create_channel().await.expect("channel");
    let exclusive = QueueDeclareOptions {
        exclusive: true,
        ..QueueDeclareOptions::default()
    };
    within(
        "exclusive queue.declare",
        owner_channel.queue_declare("mine", exclusive, FieldTable::default()),
    )
    .await
    .expect("exclusive queue.declare");

    let intruder = connect(server.addr).await;
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let channel = intruder.create_channel().await.expect("channel");
    let locked = refused(
        "passive declare from another connection",
        channel.queue_declare("mine", passive, FieldTable::default()),
    )
    .await;
    assert_eq!(locked.0, RESOURCE_LOCKED, "{}", locked.1);
    assert!(locked.1.contains("RESOURCE_LOCKED"), "{}", locked.1);

    let channel = intruder.create_channel().await.expect("channel");
    let locked = refused(
        "exclusive redeclare from another connection",
        channel.queue_declare("mine", exclusive, FieldTable::default()),
    )
    .await;
    assert_eq!(locked.0, RESOURCE_LOCKED, "{}", locked.1);

    let channel = intruder.create_channel().await.expect("channel");
    let locked = refused(
        "basic.consume from another connection",
        channel.basic_consume(
            "mine",
            "",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ),
    )
    .await;
    assert_eq!(locked.0, RESOURCE_LOCKED, "{}", locked.1);

    let channel = intruder.create_channel().await.expect("channel");
    let locked = refused(
        "queue.delete from another connection",
        channel.queue_delete("mine", QueueDeleteOptions::default()),
    )
    .await;
    assert_eq!(locked.0, RESOURCE_LOCKED, "{}", locked.1);

    tracing::info!("--- the owner still has its queue");
    let count = common::ready_count(&owner_channel, "mine").await;
    assert_eq!(count, 0);
    intruder.close(200, "bye").await.expect("close");
    owner.close(200, "bye").await.expect("close");
}

/// queue.declare with an empty name: the server names the queue "amq.gen-…", a new name
/// for each declare.
#[tokio::test]
async fn server_named_queues_start_with_amq_gen_and_differ() {
    let server = start_server();
    let conn = connect(server.addr).await;
    let channel = conn.create_channel().await.expect("channel");
    let mut names = Vec::new();
    for _ in 0..2 {
        let declared = within(
            "queue.declare with an empty name",
            channel.queue_declare("", QueueDeclareOptions::default(), FieldTable::default()),
        )
        .await
        .expect("queue.declare");
        let name = declared.name().as_str().to_string();
        assert!(name.starts_with("amq.gen-"), "{name}");
        names.push(name);
    }
    assert_ne!(names[0], names[1]);
    // The name is a real queue: a passive declare finds it.
    assert_eq!(common::ready_count(&channel, &names[0]).await, 0);
    conn.close(200, "bye").await.expect("close");
}
