//! Process tests of the administration commands an operator runs against a three-node
//! cluster (`warren add_user`, `set_permissions`, `delete_vhost`, `export_definitions`, ...):
//! each goes through node 1's config, and its effect is seen by AMQP clients on other nodes.

use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties, Event};

mod common;

use common::cluster::Cluster;

/// The bound on a whole test: a hung cluster fails instead of hanging CI.
const TEST_TIMEOUT: Duration = Duration::from_secs(180);

async fn bounded<F: std::future::Future<Output = ()>>(test: F) {
    tokio::time::timeout(TEST_TIMEOUT, test)
        .await
        .unwrap_or_else(|_| panic!("test took longer than {TEST_TIMEOUT:?}"));
}

/// What one `warren` run did.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `warren ARGS --config CONFIG` to completion.
async fn warren(args: &[&str], config: &Path) -> Run {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_warren"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(90), output)
        .await
        .unwrap_or_else(|_| panic!("warren {args:?} did not finish"))
        .expect("run warren");
    Run {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs `warren ARGS` and expects it to succeed; its stdout.
async fn ok(args: &[&str], config: &Path) -> String {
    let run = warren(args, config).await;
    assert!(run.ok, "warren {args:?} failed: {}", run.stderr);
    run.stdout
}

fn uri(user: &str, password: &str, addr: std::net::SocketAddr, vhost: &str) -> String {
    let vhost = vhost.replace('/', "%2f");
    format!("amqp://{user}:{password}@{addr}/{vhost}")
}

/// The reply code of the connection.close the server sent, from the connection's events.
async fn connection_error_code(events: &mut (impl futures::Stream<Item = Event> + Unpin)) -> u16 {
    loop {
        match common::within("a connection error event", events.next()).await {
            Some(Event::Error(error)) => return common::reply_code(&error),
            Some(_) => continue,
            None => panic!("events ended without an error"),
        }
    }
}

/// Waits until the cluster has users (its first leader moved it to the machine version that
/// has them and wrote the default user): until then every change is refused.
async fn wait_for_users(config: &Path) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let run = warren(&["list_users", "-q"], config).await;
        if run.ok && run.stdout.contains("guest\t") {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no default user within 30 s: {} {}",
            run.stdout,
            run.stderr
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn login(uri: &str) -> Result<Connection, lapin::Error> {
    let connect = Connection::connect(uri, ConnectionProperties::default());
    common::within("a login", connect).await
}

/// A user made and granted through node 1 logs in on node 3 at once; tags, password
/// changes, a refused pattern, and a deleted vhost closing its connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_permissions_and_vhosts_through_the_cli() {
    bounded(async {
        let cluster = Cluster::start().await;
        let config = cluster.node(1).config.clone();
        let node3 = cluster.amqp(3);
        wait_for_users(&config).await;

        tracing::info!("--- add_user and set_permissions through node 1; log in on node 3");
        ok(&["add_user", "alice", "s3cret"], &config).await;
        ok(&["set_permissions", "alice", ".*", ".*", ".*"], &config).await;
        let conn = login(&uri("alice", "s3cret", node3, "/")).await;
        let conn = conn.expect("alice logs in on node 3 right after the CLI returned");
        conn.close(200, "bye").await.expect("close");
        let again = warren(&["add_user", "alice", "x"], &config).await;
        assert!(!again.ok, "add_user of an existing user is refused");
        assert!(again.stderr.contains("already exists"), "{}", again.stderr);

        tracing::info!("--- tags show in list_users; the password never shows anywhere");
        ok(
            &["set_user_tags", "alice", "monitoring", "management"],
            &config,
        )
        .await;
        let users = ok(&["list_users"], &config).await;
        assert!(
            users.starts_with("Listing users ...\nuser\ttags\n"),
            "{users}"
        );
        assert!(
            users.contains("alice\t[monitoring, management]\n"),
            "{users}"
        );
        assert!(users.contains("guest\t[administrator]\n"), "{users}");
        let quiet = ok(&["list_users", "-q"], &config).await;
        assert!(!quiet.contains("user\ttags"), "{quiet}");
        for id in 1..=3 {
            assert!(
                !cluster.log(id).contains("s3cret"),
                "node {id} logged a password"
            );
        }
        let auth = ok(&["authenticate_user", "alice", "s3cret"], &config).await;
        assert!(auth.ends_with("Success\n"), "{auth}");
        assert!(
            !warren(&["authenticate_user", "alice", "nope"], &config)
                .await
                .ok
        );

        tracing::info!("--- change_password: the old one is refused, the new one accepted");
        ok(&["change_password", "alice", "n3w"], &config).await;
        let old = login(&uri("alice", "s3cret", node3, "/")).await;
        assert!(old.is_err(), "the old password still logs in");
        let new = login(&uri("alice", "n3w", node3, "/")).await;
        new.expect("the new password logs in")
            .close(200, "bye")
            .await
            .expect("close");

        tracing::info!("--- a bad pattern is refused and changes nothing");
        let before = ok(&["list_permissions"], &config).await;
        let bad = warren(&["set_permissions", "alice", "(", ".*", ".*"], &config).await;
        assert!(!bad.ok, "a bad regex was accepted");
        assert!(
            bad.stderr
                .contains("invalid configure regular expression '('"),
            "{}",
            bad.stderr
        );
        assert_eq!(ok(&["list_permissions"], &config).await, before);
        assert!(before.contains("alice\t.*\t.*\t.*\n"), "{before}");

        tracing::info!("--- delete_vhost closes its connections with 320");
        ok(&["add_vhost", "orders"], &config).await;
        ok(
            &["set_permissions", "-p", "orders", "alice", ".*", ".*", ".*"],
            &config,
        )
        .await;
        let conn = login(&uri("alice", "n3w", node3, "orders"))
            .await
            .expect("login");
        let mut events = Box::pin(conn.events_listener());
        let channel = conn.create_channel().await.expect("channel");
        let options = QueueDeclareOptions::default();
        let declared = channel.queue_declare("oq", options, FieldTable::default());
        declared.await.expect("declare in orders");
        let consume = BasicConsumeOptions::default();
        let consumer = channel.basic_consume("oq", "c", consume, FieldTable::default());
        let _consumer = consumer.await.expect("consume");
        let queues = ok(
            &["list_queues", "-p", "orders", "name", "consumers"],
            &config,
        )
        .await;
        assert!(queues.contains("oq\t1\n"), "{queues}");
        ok(&["delete_vhost", "orders"], &config).await;
        assert_eq!(connection_error_code(&mut events).await, 320);
        let vhosts = ok(&["list_vhosts"], &config).await;
        assert_eq!(vhosts, "Listing vhosts ...\nname\n/\n");
        let listed = warren(&["list_queues", "-p", "orders"], &config).await;
        assert!(
            !listed.ok,
            "list_queues in a deleted vhost: {}",
            listed.stdout
        );
        assert!(
            listed.stderr.contains("'orders' does not exist"),
            "{}",
            listed.stderr
        );
        let gone = warren(&["delete_vhost", "orders"], &config).await;
        assert!(
            !gone.ok && gone.stderr.contains("no vhost 'orders'"),
            "{}",
            gone.stderr
        );
    })
    .await;
}

/// The JSON of `export_definitions -`, parsed.
async fn export(config: &Path) -> serde_json::Value {
    let text = ok(&["export_definitions", "-"], config).await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("export is not JSON ({e}): {text}"))
}

/// Definitions move between clusters unchanged, a malformed file changes nothing and names
/// its wrong fields, and what was imported survives a restart of every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_round_trip_and_survive_a_full_restart() {
    bounded(async {
        let first = Cluster::start().await;
        let config = first.node(1).config.clone();
        wait_for_users(&config).await;

        tracing::info!("--- users, vhosts, permissions, exchanges, queues, bindings");
        ok(&["add_user", "bob", "pw-b"], &config).await;
        ok(&["set_user_tags", "bob", "administrator"], &config).await;
        ok(&["add_vhost", "v1"], &config).await;
        ok(
            &["set_permissions", "-p", "v1", "bob", "^[bq]", ".*", ".*"],
            &config,
        )
        .await;
        let conn = login(&uri("bob", "pw-b", first.amqp(2), "v1"))
            .await
            .expect("login");
        declare_some(&conn).await;
        conn.close(200, "bye").await.expect("close");
        let exported = export(&config).await;
        let names = |section: &str| -> Vec<String> {
            let items = exported[section].as_array().cloned().unwrap_or_default();
            items
                .iter()
                .map(|i| i["name"].as_str().unwrap_or("").to_string())
                .collect()
        };
        assert_eq!(names("vhosts"), ["/", "v1"]);
        assert_eq!(names("queues"), ["bq", "q.ttl"]);
        assert_eq!(names("exchanges"), ["b.fan", "b.topic"]);
        assert_eq!(exported["bindings"].as_array().map(Vec::len), Some(2));
        let bob = &exported["users"][0];
        assert_eq!(
            (&bob["name"], &bob["tags"]),
            (&"bob".into(), &"administrator".into())
        );

        tracing::info!("--- a malformed file names its wrong fields and changes nothing");
        let bad_file = first.dir.path().join("bad.json");
        let mut bad = exported.clone();
        bad["users"][0]["hashing_algorithm"] = "md5".into();
        bad["bindings"][0]["destination_type"] = "stream".into();
        bad["policies"] = serde_json::json!([{"name": "p"}]);
        std::fs::write(&bad_file, bad.to_string()).expect("write");
        ok(&["add_vhost", "v2"], &config).await;
        let before = export(&config).await;
        let refused = warren(&["import_definitions", bad_file.to_str().unwrap()], &config).await;
        assert!(!refused.ok, "a malformed file was imported");
        for field in [
            "users[0] ('bob').hashing_algorithm",
            "bindings[0].destination_type",
        ] {
            assert!(
                refused.stderr.contains(field),
                "{field}: {}",
                refused.stderr
            );
        }
        assert!(
            refused.stderr.contains("ignored: policies"),
            "{}",
            refused.stderr
        );
        assert_eq!(
            export(&config).await,
            before,
            "a refused import changed something"
        );

        tracing::info!("--- import into a fresh cluster, export again: the same definitions");
        let files = tempfile::tempdir().expect("tempdir");
        let file = files.path().join("defs.json");
        std::fs::write(&file, exported.to_string()).expect("write");
        drop(first);
        let mut second = Cluster::start().await;
        let config2 = second.node(1).config.clone();
        wait_for_users(&config2).await;
        ok(&["import_definitions", file.to_str().unwrap()], &config2).await;
        assert_eq!(export(&config2).await, exported);
        let conn = login(&uri("bob", "pw-b", second.amqp(3), "v1")).await;
        conn.expect("bob logs in with the imported hash")
            .close(200, "bye")
            .await
            .expect("close");

        tracing::info!("--- every node restarts: bob and his permissions are still there");
        for id in 1..=3 {
            second.kill(id);
        }
        for id in 1..=3 {
            second.restart(id);
        }
        second.wait_for_leader().await;
        let conn = login(&uri("bob", "pw-b", second.amqp(1), "v1")).await;
        conn.expect("bob logs in after the restart")
            .close(200, "bye")
            .await
            .expect("close");
        let perms = ok(&["list_user_permissions", "bob"], &config2).await;
        assert!(perms.contains("v1\t^[bq]\t.*\t.*\n"), "{perms}");
    })
    .await;
}

/// Declares two exchanges, two queues (one with arguments) and two bindings, one of them
/// exchange to exchange.
async fn declare_some(conn: &Connection) {
    use lapin::options::{ExchangeBindOptions, ExchangeDeclareOptions, QueueBindOptions};
    use lapin::types::AMQPValue;
    let channel = conn.create_channel().await.expect("channel");
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    let none = FieldTable::default;
    for (name, kind) in [
        ("b.topic", lapin::ExchangeKind::Topic),
        ("b.fan", lapin::ExchangeKind::Fanout),
    ] {
        channel
            .exchange_declare(name, kind, durable, none())
            .await
            .expect("exchange");
    }
    let queue = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    let mut args = FieldTable::default();
    args.insert("x-message-ttl".into(), AMQPValue::LongInt(60_000));
    channel
        .queue_declare("q.ttl", queue, args)
        .await
        .expect("queue");
    channel
        .queue_declare("bq", queue, none())
        .await
        .expect("queue");
    let bind = QueueBindOptions::default();
    channel
        .queue_bind("q.ttl", "b.topic", "k.#", bind, none())
        .await
        .expect("bind");
    let bind = ExchangeBindOptions::default();
    channel
        .exchange_bind("b.fan", "b.topic", "x", bind, none())
        .await
        .expect("bind");
    channel.close(200, "done").await.expect("close the channel");
}

/// A new cluster imports its nodes' `load_definitions` file once, with the default user:
/// the file's user logs in with the password its hash was made from, its queue is there,
/// and the default user is too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_cluster_imports_load_definitions() {
    bounded(async {
        let files = tempfile::tempdir().expect("tempdir");
        let file = files.path().join("boot.json");
        let hash = warren::broker::access::PasswordHash::new([9, 8, 7, 6], b"pw-c");
        let definitions = serde_json::json!({
            "rabbit_version": "3.10.7",
            "users": [{"name": "carol", "password_hash": hash.hash,
                       "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ""}],
            "vhosts": [{"name": "boot"}],
            "permissions": [{"user": "carol", "vhost": "boot", "configure": ".*",
                             "write": ".*", "read": ".*"}],
            "queues": [{"name": "boot-q", "vhost": "boot", "durable": true,
                        "auto_delete": false, "arguments": {"x-max-length": 5}}],
            "policies": []
        });
        std::fs::write(&file, definitions.to_string()).expect("write");
        let extra = format!("load_definitions = \"{}\"", file.display());
        let roles = ["disk"; 3];
        let cluster =
            Cluster::start_configured(&roles, &vec![Vec::new(); 3], &vec![extra; 3]).await;
        let config = cluster.node(1).config.clone();
        wait_for_users(&config).await;
        let users = ok(&["list_users", "-q"], &config).await;
        assert_eq!(users, "carol\t[]\nguest\t[administrator]\n");
        let queues = ok(
            &["list_queues", "-q", "-p", "boot", "name", "arguments"],
            &config,
        )
        .await;
        assert_eq!(queues, "boot-q\t{\"x-max-length\":5}\n");
        let conn = login(&uri("carol", "pw-c", cluster.amqp(2), "boot")).await;
        conn.expect("carol logs in")
            .close(200, "bye")
            .await
            .expect("close");
    })
    .await;
}

/// A single node (no `[[peers]]`) answers the same commands on its `cluster_listen`, with a
/// cookie it made on its first start; a change made the moment it listens waits for the
/// state-machine version that has users instead of being refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_node_answers_the_cli() {
    bounded(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let cluster_listen = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("pick a free port");
        let extra = format!("cluster_listen = \"{cluster_listen}\"");
        let (config, addr) = common::write_config_with(dir.path(), &extra);
        let _node = common::start(&config, addr);

        ok(&["add_user", "carol", "pa55word"], &config).await;
        ok(
            &["set_permissions", "carol", "^carol-.*", ".*", ".*"],
            &config,
        )
        .await;
        let users = ok(&["list_users", "-q"], &config).await;
        assert!(users.contains("carol\t[]\n"), "{users}");
        assert!(users.contains("guest\t[administrator]\n"), "{users}");
        let conn = login(&uri("carol", "pa55word", addr, "/")).await;
        let conn = conn.expect("carol logs in on the single node");
        let channel = conn.create_channel().await.expect("channel");
        channel
            .queue_declare(
                "carol-q",
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("carol declares a queue her configure pattern allows");
        let queues = ok(&["list_queues", "-q"], &config).await;
        assert!(queues.contains("carol-q\t0\n"), "{queues}");

        let cookie = dir.path().join("data").join("cookie");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&cookie)
                .expect("the node made a cookie")
                .permissions(),
        );
        assert_eq!(mode & 0o077, 0, "the cookie is the owner's only");
    })
    .await
}
