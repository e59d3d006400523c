//! End to end: RabbitMQ's permission rules, vhost isolation and vhost deletion, with users,
//! vhosts and permissions made through the CLI (`warren add_user ...`) against a real node,
//! and lapin as the client.

use std::net::SocketAddr;
use std::path::Path;

use futures::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
    QueuePurgeOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};

mod common;

use common::cluster::Cluster;
use common::{refusal, within};

/// `warren ARGS --config CONFIG`: its output when it succeeds.
fn try_ctl(config: &Path, args: &[&str]) -> Option<String> {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_warren"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("run warren");
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `warren ARGS --config CONFIG`; panics unless it succeeds.
fn ctl(config: &Path, args: &[&str]) -> String {
    try_ctl(config, args).unwrap_or_else(|| panic!("warren {args:?} failed"))
}

/// A three-node cluster (the CLI reaches nodes over the cluster transport) whose default
/// user is written, and node 1's address and config.
struct Node {
    _cluster: Cluster,
    addr: SocketAddr,
    config: std::path::PathBuf,
}

async fn start() -> Node {
    let cluster = Cluster::start().await;
    let config = cluster.node(1).config.clone();
    // A fresh cluster takes users once its leader moved it to the machine version that has
    // them and wrote the default user (a second or so).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !try_ctl(&config, &["list_users", "-q"]).is_some_and(|out| out.contains("guest\t")) {
        assert!(
            std::time::Instant::now() < deadline,
            "no default user within 30 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    Node {
        addr: cluster.amqp(1),
        _cluster: cluster,
        config,
    }
}

async fn connect_as(addr: SocketAddr, user: &str, vhost: &str) -> lapin::Result<Connection> {
    let vhost = vhost.replace('/', "%2f");
    let uri = format!("amqp://{user}:{user}-pw@{addr}/{vhost}");
    within(
        "connect",
        Connection::connect(&uri, ConnectionProperties::default()),
    )
    .await
}

/// Makes `user` (password `USER-pw`) with `conf write read` on `vhost`.
fn add_user(node: &Node, user: &str, vhost: &str, perms: [&str; 3]) {
    ctl(&node.config, &["add_user", user, &format!("{user}-pw")]);
    let [c, w, r] = perms;
    ctl(
        &node.config,
        &["set_permissions", "-p", vhost, user, c, w, r],
    );
}

/// The channel error `attempt` ends with: its code and text.
async fn refused<T>(attempt: impl std::future::Future<Output = lapin::Result<T>>) -> (u16, String) {
    match within("a refused method", attempt).await {
        Ok(_) => panic!("the method was allowed"),
        Err(e) => refusal(&e),
    }
}

fn denied(right: &str, kind: &str, name: &str, user: &str) -> (u16, String) {
    let text = format!(
        "ACCESS_REFUSED - {right} access to {kind} '{name}' in vhost '/' refused for user '{user}'"
    );
    (403, text)
}

/// Each rule as RabbitMQ checks it: declare and delete need configure, publish write on
/// the exchange (`amq.default` for the default one), bind write on the queue and read on
/// the exchange, get/consume/purge read on the queue. Each refusal is 403 with RabbitMQ's
/// text; what the patterns allow works.
#[tokio::test]
async fn each_method_needs_the_right_rabbitmq_names() {
    let node = start().await;
    add_user(&node, "app", "/", ["^app\\.", "^app\\.", "^app\\."]);
    let admin = common::connect(node.addr).await;
    let admin_ch = admin.create_channel().await.expect("channel");
    common::declare_queue(&admin_ch, "other").await;

    let conn = connect_as(node.addr, "app", "/")
        .await
        .expect("app logs in");
    let fresh = || async { conn.create_channel().await.expect("channel") };
    let ch = fresh().await;
    common::declare_queue(&ch, "app.q").await;
    let x_options = ExchangeDeclareOptions::default();
    ch.exchange_declare(
        "app.x",
        ExchangeKind::Fanout,
        x_options,
        FieldTable::default(),
    )
    .await
    .expect("app.x declared");
    let bind = QueueBindOptions::default();
    ch.queue_bind("app.q", "app.x", "", bind, FieldTable::default())
        .await
        .expect("app.q bound to app.x");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm");
    let publish = |ch: &lapin::Channel, exchange: &str| {
        let (ch, exchange) = (ch.clone(), exchange.to_string());
        async move {
            let options = BasicPublishOptions::default();
            let props = BasicProperties::default();
            ch.basic_publish(&exchange, "app.q", options, b"m", props)
                .await?
                .await
        }
    };
    assert!(publish(&ch, "app.x")
        .await
        .expect("publish to app.x")
        .is_ack());

    let q = QueueDeclareOptions::default();
    let ch = fresh().await;
    let no_queue = ch.queue_declare("other2", q, FieldTable::default());
    assert_eq!(
        refused(no_queue).await,
        denied("configure", "queue", "other2", "app")
    );
    let ch = fresh().await;
    // Under confirms, so the refusal (a channel close) is what the publish waits for.
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm");
    let to_default = refused(publish(&ch, "")).await;
    assert_eq!(
        to_default,
        denied("write", "exchange", "amq.default", "app")
    );
    let ch = fresh().await;
    let bound = ch.queue_bind("app.q", "amq.direct", "k", bind, FieldTable::default());
    assert_eq!(
        refused(bound).await,
        denied("read", "exchange", "amq.direct", "app")
    );
    let ch = fresh().await;
    let got = ch.basic_get("other", BasicGetOptions::default());
    assert_eq!(refused(got).await, denied("read", "queue", "other", "app"));
    let ch = fresh().await;
    let consumed = ch.basic_consume(
        "other",
        "",
        BasicConsumeOptions::default(),
        FieldTable::default(),
    );
    assert_eq!(
        refused(consumed).await,
        denied("read", "queue", "other", "app")
    );
    let ch = fresh().await;
    let purged = ch.queue_purge("other", QueuePurgeOptions::default());
    assert_eq!(
        refused(purged).await,
        denied("read", "queue", "other", "app")
    );
    let ch = fresh().await;
    let deleted = ch.queue_delete("other", QueueDeleteOptions::default());
    assert_eq!(
        refused(deleted).await,
        denied("configure", "queue", "other", "app")
    );

    // A permission cleared while connected takes effect at once on this node.
    ctl(&node.config, &["clear_permissions", "-p", "/", "app"]);
    let ch = fresh().await;
    let after = ch.queue_declare("app.q2", q, FieldTable::default());
    assert_eq!(
        refused(after).await,
        denied("configure", "queue", "app.q2", "app")
    );
    assert!(common::ready_count(&admin_ch, "other").await == 0);
}

/// The same queue name in two vhosts is two queues; a user with no permission on a vhost
/// cannot open it (530); deleting a vhost closes its connections with 320 and drops it.
#[tokio::test]
async fn vhosts_keep_apart_and_a_deleted_one_closes_its_connections() {
    let node = start().await;
    ctl(&node.config, &["add_vhost", "v2"]);
    add_user(&node, "app", "v2", [".*", ".*", ".*"]);
    let root = common::connect(node.addr).await;
    let in_v2 = connect_as(node.addr, "app", "v2")
        .await
        .expect("app opens v2");
    let (root_ch, v2_ch) = (
        root.create_channel().await.expect("channel"),
        in_v2.create_channel().await.expect("channel"),
    );
    for (ch, body) in [(&root_ch, "in-root"), (&v2_ch, "in-v2")] {
        common::declare_queue(ch, "same").await;
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirm");
        common::publish_confirmed(ch, "same", body.as_bytes()).await;
    }
    for (ch, body) in [(&root_ch, "in-root"), (&v2_ch, "in-v2")] {
        let got = ch.basic_get("same", BasicGetOptions { no_ack: true }).await;
        let got = got.expect("basic.get").expect("a message");
        assert_eq!(got.delivery.data, body.as_bytes());
        assert_eq!(
            common::ready_count(ch, "same").await,
            0,
            "one message per vhost"
        );
    }
    let no_access = connect_as(node.addr, "app", "/")
        .await
        .expect_err("app opened /");
    assert_eq!(
        refusal(&no_access),
        (
            530,
            "NOT_ALLOWED - access to vhost '/' refused for user 'app'".to_string()
        )
    );

    let mut events = Box::pin(in_v2.events_listener());
    ctl(&node.config, &["delete_vhost", "v2"]);
    let code = loop {
        match within("the vhost's connection closed", events.next()).await {
            Some(lapin::Event::Error(error)) => break refusal(&error).0,
            Some(_) => continue,
            None => panic!("events ended without an error"),
        }
    };
    assert_eq!(code, 320);
    let vhosts = ctl(&node.config, &["list_vhosts"]);
    assert!(!vhosts.lines().any(|l| l.trim() == "v2"), "{vhosts}");
    assert_eq!(
        common::ready_count(&root_ch, "same").await,
        0,
        "/ kept its queue"
    );
}
