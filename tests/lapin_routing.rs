//! End to end: routing through the four exchange types, bindings and their removal,
//! exchange-to-exchange bindings, alternate exchanges, and the channel errors of publishing
//! to an internal or a missing exchange, on the real `warren` binary.
//!
//! Every publish here is confirmed, and Warren confirms a publish once it is routed and
//! committed, so a basic.get after the confirm sees exactly where the message went.

use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeBindOptions,
    ExchangeDeclareOptions, ExchangeUnbindOptions, QueueBindOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ExchangeKind};

mod common;

use common::{
    channel_error, closed_with, connect, declare_queue, get_no_ack, next_delivery, publish_to,
    refused, start_server, within,
};

const ACCESS_REFUSED: u16 = 403;
const NOT_FOUND: u16 = 404;

/// A connection and a confirm-mode channel.
async fn confirm_channel(addr: std::net::SocketAddr) -> (Connection, lapin::Channel) {
    let conn = connect(addr).await;
    let channel = conn.create_channel().await.expect("channel");
    within(
        "confirm.select",
        channel.confirm_select(ConfirmSelectOptions::default()),
    )
    .await
    .expect("confirm.select");
    (conn, channel)
}

async fn declare_exchange(
    channel: &lapin::Channel,
    name: &str,
    kind: ExchangeKind,
    options: ExchangeDeclareOptions,
    arguments: FieldTable,
) {
    within(
        "exchange.declare",
        channel.exchange_declare(name, kind, options, arguments),
    )
    .await
    .expect("exchange.declare");
}

async fn bind(channel: &lapin::Channel, queue: &str, exchange: &str, key: &str, args: FieldTable) {
    within(
        "queue.bind",
        channel.queue_bind(queue, exchange, key, QueueBindOptions::default(), args),
    )
    .await
    .expect("queue.bind");
}

/// Publishes `body` through `exchange` with `key`, no properties, and waits for its ack.
async fn publish(channel: &lapin::Channel, exchange: &str, key: &str, body: &[u8]) {
    publish_to(channel, exchange, key, BasicProperties::default(), body).await;
}

/// `queue` holds exactly `bodies`, in order (taken with basic.get, no_ack).
async fn assert_holds(channel: &lapin::Channel, queue: &str, bodies: &[&[u8]]) {
    for body in bodies {
        let got = get_no_ack(channel, queue).await;
        let got = got.map(|m| String::from_utf8_lossy(&m.delivery.data).into_owned());
        assert_eq!(
            got.as_deref(),
            Some(String::from_utf8_lossy(body).as_ref()),
            "queue {queue}"
        );
    }
    if let Some(extra) = get_no_ack(channel, queue).await {
        panic!(
            "queue {queue} holds an unexpected {:?}",
            String::from_utf8_lossy(&extra.delivery.data)
        );
    }
}

/// A header or binding argument with a string value.
type Pair<'a> = (&'a str, &'a str);

/// Headers or binding arguments from string pairs.
fn table(pairs: &[Pair]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), AMQPValue::LongString((*v).into()));
    }
    t
}

/// A direct exchange routes to every queue bound with exactly the routing key.
#[tokio::test]
async fn direct_exchange_routes_by_exact_key() {
    let server = start_server();
    let (conn, ch) = confirm_channel(server.addr).await;
    declare_exchange(
        &ch,
        "r-direct",
        ExchangeKind::Direct,
        Default::default(),
        table(&[]),
    )
    .await;
    for q in ["d-a1", "d-b", "d-a2"] {
        declare_queue(&ch, q).await;
    }
    bind(&ch, "d-a1", "r-direct", "a", table(&[])).await;
    bind(&ch, "d-a2", "r-direct", "a", table(&[])).await;
    bind(&ch, "d-b", "r-direct", "b", table(&[])).await;

    publish(&ch, "r-direct", "a", b"to-a").await;
    publish(&ch, "r-direct", "b", b"to-b").await;
    publish(&ch, "r-direct", "c", b"to-nobody").await;
    publish(&ch, "r-direct", "A", b"case-matters").await;

    assert_holds(&ch, "d-a1", &[b"to-a"]).await;
    assert_holds(&ch, "d-a2", &[b"to-a"]).await;
    assert_holds(&ch, "d-b", &[b"to-b"]).await;
    conn.close(200, "bye").await.expect("close");
}

/// A fanout exchange routes to every bound queue whatever the keys.
#[tokio::test]
async fn fanout_exchange_routes_to_every_bound_queue() {
    let server = start_server();
    let (conn, ch) = confirm_channel(server.addr).await;
    declare_exchange(
        &ch,
        "r-fan",
        ExchangeKind::Fanout,
        Default::default(),
        table(&[]),
    )
    .await;
    for q in ["f-1", "f-2", "f-unbound"] {
        declare_queue(&ch, q).await;
    }
    bind(&ch, "f-1", "r-fan", "x", table(&[])).await;
    bind(&ch, "f-2", "r-fan", "", table(&[])).await;

    publish(&ch, "r-fan", "anything", b"everyone").await;

    assert_holds(&ch, "f-1", &[b"everyone"]).await;
    assert_holds(&ch, "f-2", &[b"everyone"]).await;
    assert_holds(&ch, "f-unbound", &[]).await;
    conn.close(200, "bye").await.expect("close");
}

/// A topic exchange: `*` matches exactly one word, `#` zero or more.
#[tokio::test]
async fn topic_exchange_matches_star_and_hash() {
    let server = start_server();
    let (conn, ch) = confirm_channel(server.addr).await;
    declare_exchange(
        &ch,
        "r-topic",
        ExchangeKind::Topic,
        Default::default(),
        table(&[]),
    )
    .await;
    for q in ["t-star", "t-hash", "t-mid"] {
        declare_queue(&ch, q).await;
    }
    bind(&ch, "t-star", "r-topic", "stock.*.nyse", table(&[])).await;
    bind(&ch, "t-hash", "r-topic", "stock.#", table(&[])).await;
    bind(&ch, "t-mid", "r-topic", "*.usd.#", table(&[])).await;

    publish(&ch, "r-topic", "stock.ibm.nyse", b"1").await; // star, hash
    publish(&ch, "r-topic", "stock.nyse", b"2").await; // hash (zero words)
    publish(&ch, "r-topic", "stock.ibm.x.nyse", b"3").await; // hash only
    publish(&ch, "r-topic", "bond.usd", b"4").await; // mid (# as zero words)
    publish(&ch, "r-topic", "bond.usd.a.b", b"5").await; // mid
    publish(&ch, "r-topic", "usd", b"6").await; // nobody: * needs a word
    publish(&ch, "r-topic", "stocks.ibm.nyse", b"7").await; // nobody: words are whole

    assert_holds(&ch, "t-star", &[b"1"]).await;
    assert_holds(&ch, "t-hash", &[b"1", b"2", b"3"]).await;
    assert_holds(&ch, "t-mid", &[b"4", b"5"]).await;
    conn.close(200, "bye").await.expect("close");
}

/// A headers exchange: x-match=all needs every binding header, x-match=any one of them,
/// and no x-match means all; the routing key is ignored.
#[tokio::test]
async fn headers_exchange_matches_all_and_any() {
    let server = start_server();
    let (conn, ch) = confirm_channel(server.addr).await;
    declare_exchange(
        &ch,
        "r-head",
        ExchangeKind::Headers,
        Default::default(),
        table(&[]),
    )
    .await;
    for q in ["h-all", "h-any", "h-default"] {
        declare_queue(&ch, q).await;
    }
    let all = table(&[("x-match", "all"), ("format", "pdf"), ("type", "report")]);
    let any = table(&[("x-match", "any"), ("format", "pdf"), ("type", "report")]);
    bind(&ch, "h-all", "r-head", "", all).await;
    bind(&ch, "h-any", "r-head", "", any).await;
    bind(
        &ch,
        "h-default",
        "r-head",
        "",
        table(&[("format", "zip"), ("size", "big")]),
    )
    .await;

    let cases: [(&[Pair], &[u8]); 5] = [
        (&[("format", "pdf"), ("type", "report")], b"both"),
        (&[("format", "pdf"), ("type", "log")], b"one"),
        (
            &[("format", "zip"), ("size", "big"), ("extra", "y")],
            b"zip-big",
        ),
        (&[("format", "zip")], b"zip-only"),
        (&[], b"none"),
    ];
    for (headers, body) in cases {
        let properties = BasicProperties::default().with_headers(table(headers));
        publish_to(&ch, "r-head", "ignored-key", properties, body).await;
    }

    assert_holds(&ch, "h-all", &[b"both"]).await;
    assert_holds(&ch, "h-any", &[b"both", b"one"]).await;
    assert_holds(&ch, "h-default", &[b"zip-big"]).await;
    conn.close(200, "bye").await.expect("close");
}

/// queue.unbind removes the binding: the next publish no longer reaches the queue, while a
/// queue still bound keeps receiving.
#[tokio::test]
async fn queue_unbind_stops_delivery() {
    let server = start_server();
    let (conn, ch) = confirm_channel(server.addr).await;
    declare_exchange(
        &ch,
        "r-unbind",
        ExchangeKind::Direct,
        Default::default(),
        table(&[]),
    )
    .await;
    declare_queue(&ch, "u-gone").await;
    declare_queue(&ch, "u-kept").await;
    bind(&ch, "u-gone", "r-unbind", "k", table(&[])).await;
    bind(&ch, "u-kept", "r-unbind", "k", table(&[])).await;
    publish(&ch, "r-unbind", "k", b"before").await;

    within(
        "queue.unbind",
        ch.queue_unbind("u-gone", "r-unbind", "k", table(&[])),
    )
    .await
    .expect("queue.unbind");
    publish(&ch, "r-unbind", "k", b"after").await;

    assert_holds(&ch, "u-gone", &[b"before"]).await;
    assert_holds(&ch, "u-kept", &[b"before", b"after"]).await;
    conn.close(200, "bye").await.expect("close");
}

/// exchange.bind: what the source routes with a matching key goes on through the
/// destination exchange to its queues; exchange.unbind stops that.
#[tokio::test]
async fn exchange_bind_routes_through_and_unbind_stops_it() {
    let server = start_server();
    let (conn, ch) = confirm_channel(server.addr).await;
    declare_exchange(
        &ch,
        "e-src",
        ExchangeKind::Topic,
        Default::default(),
        table(&[]),
    )
    .await;
    declare_exchange(
        &ch,
        "e-dst",
        ExchangeKind::Fanout,
        Default::default(),
        table(&[]),
    )
    .await;
    declare_queue(&ch, "e-q").await;
    bind(&ch, "e-q", "e-dst", "", table(&[])).await;
    within(
        "exchange.bind",
        ch.exchange_bind(
            "e-dst",
            "e-src",
            "a.#",
            ExchangeBindOptions::default(),
            table(&[]),
        ),
    )
    .await
    .expect("exchange.bind");

    publish(&ch, "e-src", "a.b", b"through").await;
    publish(&ch, "e-src", "b.a", b"not-matching").await;
    assert_holds(&ch, "e-q", &[b"through"]).await;

    within(
        "exchange.unbind",
        ch.exchange_unbind(
            "e-dst",
            "e-src",
            "a.#",
            ExchangeUnbindOptions::default(),
            table(&[]),
        ),
    )
    .await
    .expect("exchange.unbind");
    publish(&ch, "e-src", "a.b", b"after-unbind").await;
    publish(&ch, "e-dst", "", b"direct-to-dst").await;
    assert_holds(&ch, "e-q", &[b"direct-to-dst"]).await;
    conn.close(200, "bye").await.expect("close");
}

/// An exchange with `alternate-exchange` passes what it cannot route to that exchange, and
/// only that.
#[tokio::test]
async fn alternate_exchange_receives_unroutable_messages() {
    let server = start_server();
    let (conn, ch) = confirm_channel(server.addr).await;
    declare_exchange(
        &ch,
        "ae",
        ExchangeKind::Fanout,
        Default::default(),
        table(&[]),
    )
    .await;
    let args = table(&[("alternate-exchange", "ae")]);
    declare_exchange(
        &ch,
        "ae-main",
        ExchangeKind::Direct,
        Default::default(),
        args,
    )
    .await;
    declare_queue(&ch, "ae-routed").await;
    declare_queue(&ch, "ae-unroutable").await;
    bind(&ch, "ae-routed", "ae-main", "k", table(&[])).await;
    bind(&ch, "ae-unroutable", "ae", "", table(&[])).await;

    publish(&ch, "ae-main", "k", b"routed").await;
    publish(&ch, "ae-main", "other", b"unroutable").await;

    assert_holds(&ch, "ae-routed", &[b"routed"]).await;
    assert_holds(&ch, "ae-unroutable", &[b"unroutable"]).await;
    conn.close(200, "bye").await.expect("close");
}

/// Publishing to an internal exchange is 403 ACCESS_REFUSED (a channel error); the same
/// exchange is still reachable through an exchange-to-exchange binding.
#[tokio::test]
async fn publish_to_internal_exchange_is_403() {
    let server = start_server();
    let (conn, ch) = confirm_channel(server.addr).await;
    let internal = ExchangeDeclareOptions {
        internal: true,
        ..ExchangeDeclareOptions::default()
    };
    declare_exchange(
        &ch,
        "r-internal",
        ExchangeKind::Fanout,
        internal,
        table(&[]),
    )
    .await;
    declare_exchange(
        &ch,
        "r-public",
        ExchangeKind::Fanout,
        Default::default(),
        table(&[]),
    )
    .await;
    declare_queue(&ch, "i-q").await;
    bind(&ch, "i-q", "r-internal", "", table(&[])).await;
    within(
        "exchange.bind",
        ch.exchange_bind(
            "r-internal",
            "r-public",
            "",
            ExchangeBindOptions::default(),
            table(&[]),
        ),
    )
    .await
    .expect("exchange.bind");
    publish(&ch, "r-public", "", b"via-public").await;
    assert_holds(&ch, "i-q", &[b"via-public"]).await;

    tracing::info!("--- publish straight to the internal exchange");
    let publisher = conn.create_channel().await.expect("channel");
    let closed = channel_error(&conn);
    publisher
        .basic_publish(
            "r-internal",
            "",
            BasicPublishOptions::default(),
            b"refused",
            BasicProperties::default(),
        )
        .await
        .expect("publish sent");
    let (code, text) = closed_with(closed).await;
    assert_eq!(code, ACCESS_REFUSED, "{text}");
    assert!(
        text.contains("cannot publish to internal exchange 'r-internal'"),
        "{text}"
    );
    assert_holds(&ch, "i-q", &[]).await;
    conn.close(200, "bye").await.expect("close");
}

/// Publishing to an exchange that does not exist: channel.close 404 NOT_FOUND.
#[tokio::test]
async fn publish_to_missing_exchange_is_404() {
    let server = start_server();
    let conn = connect(server.addr).await;
    let publisher = conn.create_channel().await.expect("channel");
    publisher
        .basic_publish(
            "no-such-exchange",
            "k",
            BasicPublishOptions::default(),
            b"lost",
            BasicProperties::default(),
        )
        .await
        .expect("publish sent");
    let (code, text) = refused("a declare after the publish", async {
        publisher
            .queue_declare("q404", Default::default(), FieldTable::default())
            .await
    })
    .await;
    assert_eq!(code, NOT_FOUND, "{text}");
    assert!(text.contains("no exchange 'no-such-exchange'"), "{text}");
    assert!(
        conn.status().connected(),
        "a channel error closed the connection"
    );
    conn.close(200, "bye").await.expect("close");
}

/// basic.deliver and basic.get-ok carry the exchange and routing key the message was
/// published with (not the binding's key), including the default exchange's "".
#[tokio::test]
async fn deliveries_carry_the_publish_exchange_and_routing_key() {
    let server = start_server();
    let (conn, ch) = confirm_channel(server.addr).await;
    declare_exchange(
        &ch,
        "r-meta",
        ExchangeKind::Topic,
        Default::default(),
        table(&[]),
    )
    .await;
    declare_queue(&ch, "m-get").await;
    declare_queue(&ch, "m-consume").await;
    bind(&ch, "m-get", "r-meta", "k.#", table(&[])).await;
    bind(&ch, "m-consume", "r-meta", "k.#", table(&[])).await;

    publish(&ch, "r-meta", "k.one.two", b"via-topic").await;
    publish(&ch, "", "m-get", b"via-default").await;

    let got = get_no_ack(&ch, "m-get").await.expect("get-ok");
    assert_eq!(got.delivery.exchange.as_str(), "r-meta");
    assert_eq!(got.delivery.routing_key.as_str(), "k.one.two");
    let got = get_no_ack(&ch, "m-get").await.expect("get-ok");
    assert_eq!(got.delivery.data, b"via-default");
    assert_eq!(got.delivery.exchange.as_str(), "");
    assert_eq!(got.delivery.routing_key.as_str(), "m-get");

    let mut consumer = within(
        "basic.consume",
        ch.basic_consume(
            "m-consume",
            "meta",
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        ),
    )
    .await
    .expect("basic.consume");
    let delivery = next_delivery(&mut consumer).await;
    assert_eq!(delivery.data, b"via-topic");
    assert_eq!(delivery.exchange.as_str(), "r-meta");
    assert_eq!(delivery.routing_key.as_str(), "k.one.two");
    conn.close(200, "bye").await.expect("close");
}
