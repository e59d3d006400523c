//! Golden bytes: one encoded sample of every `Command` variant, and of an entry's whole
//! payload (envelope and `Batch`), checked in as `golden/entries.txt`. Everything here
//! reaches the log, so a change to any type a command carries (a field added, reordered,
//! retyped; a variant inserted before another) changes these bytes and fails this test:
//! the change needs a new machine version or entry format (`envelope.rs`,
//! docs/formats.md), not a silent re-encoding that older members read differently.
//!
//! After a deliberate format change (with its version bumped), rewrite the file with
//! `WARREN_BLESS_GOLDEN=1 cargo test --lib golden`.

use bytes::Bytes;

use super::envelope;
use super::sessions::Origin;
use super::state_machine::Batch;
use crate::broker::access::{HashingAlgorithm, PasswordHash, Permission};
use crate::broker::command::{Command, Content};
use crate::broker::exchange::{ExchangeKind, HeaderValue};
use crate::broker::queue::ConsumerKey;

const GOLDEN: &str = "src/raft/golden/entries.txt";

/// The name of `command`'s variant: `Command::name` has no wildcard arm, so a new variant
/// does not compile until it is named there, and then [`samples`] must hold one of it.
fn variant(command: &Command) -> &'static str {
    command.name()
}

fn consumer() -> ConsumerKey {
    ConsumerKey {
        conn: 0x0100_0002_0000_0003,
        channel: 7,
        tag: "ctag".into(),
    }
}

fn args() -> Vec<(String, HeaderValue)> {
    vec![
        ("x-s".into(), HeaderValue::Str("v".into())),
        ("x-i".into(), HeaderValue::Int(-5)),
        ("x-b".into(), HeaderValue::Bool(true)),
        ("x-o".into(), HeaderValue::Other("F(..)".into())),
    ]
}

/// One sample of every variant, every field set to something other than its default.
fn samples() -> Vec<Command> {
    let (conn, channel, queue) = (0x0100_0002_0000_0003u64, 7u16, || "q".to_string());
    vec![
        Command::ExchangeDeclare {
            name: "x".into(),
            kind: ExchangeKind::Headers,
            passive: false,
            durable: true,
            auto_delete: false,
            internal: true,
            arguments: args(),
        },
        Command::ExchangeDelete {
            name: "x".into(),
            if_unused: true,
        },
        Command::QueueDeclare {
            name: queue(),
            passive: false,
            durable: true,
            exclusive: true,
            auto_delete: false,
            arguments: args(),
            conn,
        },
        Command::QueueDelete {
            name: queue(),
            if_unused: true,
            if_empty: false,
            conn,
        },
        Command::QueuePurge {
            name: queue(),
            conn,
        },
        Command::QueueBind {
            queue: queue(),
            exchange: "x".into(),
            routing_key: "a.b".into(),
            arguments: args(),
            conn,
        },
        Command::Publish {
            exchange: "x".into(),
            routing_key: "a.b".into(),
            mandatory: true,
            headers: args(),
            content: Content {
                properties: Bytes::from_static(&[0x80, 0x00, 0x02]),
                body: Bytes::from_static(b"body"),
            },
            expiration_ms: Some(60_000),
        },
        Command::Consume {
            queue: queue(),
            consumer: consumer(),
            prefetch: 10,
            no_ack: false,
            exclusive: true,
        },
        Command::Cancel {
            queue: queue(),
            consumer: consumer(),
        },
        Command::Settle {
            queue: queue(),
            msg_ids: vec![1, 300],
            conn,
            channel,
        },
        Command::Requeue {
            queue: queue(),
            msg_ids: vec![2],
            conn,
            channel,
        },
        Command::ChannelClosed { conn, channel },
        Command::Get {
            queue: queue(),
            holder: consumer(),
            no_ack: true,
        },
        Command::QueueUnbind {
            queue: queue(),
            exchange: "x".into(),
            routing_key: "a.b".into(),
            arguments: args(),
            conn,
        },
        Command::ExchangeBind {
            destination: "d".into(),
            source: "s".into(),
            routing_key: "#".into(),
            arguments: args(),
        },
        Command::ExchangeUnbind {
            destination: "d".into(),
            source: "s".into(),
            routing_key: "#".into(),
            arguments: args(),
        },
        Command::ConnectionClosed { conn },
        Command::Recover { conn, channel },
        Command::Tick,
        Command::Reject {
            queue: queue(),
            msg_ids: vec![3, 4],
            conn,
            channel,
        },
        Command::ChannelQos {
            conn,
            channel,
            prefetch: 50,
        },
        Command::NodeDown {
            conns: vec![conn, conn + 1],
            term: 9,
        },
        Command::SetMachineVersion { version: 2 },
        Command::Credit {
            queue: queue(),
            consumer: consumer(),
            n: 1000,
        },
        Command::InVhost {
            vhost: "v".into(),
            command: Box::new(Command::QueuePurge {
                name: queue(),
                conn,
            }),
        },
        Command::AddVhost { name: "v".into() },
        Command::DeleteVhost { name: "v".into() },
        Command::PutUser {
            name: "u".into(),
            password: password(),
            tags: vec!["administrator".into(), "x".into()],
            create_only: true,
        },
        Command::DeleteUser { name: "u".into() },
        Command::ChangePassword {
            name: "u".into(),
            password: password(),
        },
        Command::SetUserTags {
            name: "u".into(),
            tags: vec!["monitoring".into()],
        },
        Command::SetPermissions {
            user: "u".into(),
            vhost: "v".into(),
            permission: Permission {
                configure: "^c".into(),
                write: "^w".into(),
                read: "^r".into(),
            },
        },
        Command::ClearPermissions {
            user: "u".into(),
            vhost: "v".into(),
        },
        Command::InitAccess {
            user: "guest".into(),
            password: PasswordHash {
                algorithm: HashingAlgorithm::Sha512,
                hash: "h".into(),
            },
        },
        Command::ImportDefinitions {
            commands: vec![
                Command::AddVhost { name: "v".into() },
                Command::InVhost {
                    vhost: "v".into(),
                    command: Box::new(Command::QueueBind {
                        queue: "q".into(),
                        exchange: "x".into(),
                        routing_key: "k".into(),
                        arguments: args(),
                        conn: 0,
                    }),
                },
            ],
        },
        Command::ConsumeWithPriority {
            queue: queue(),
            consumer: consumer(),
            prefetch: 10,
            no_ack: true,
            exclusive: false,
            priority: -3,
        },
    ]
}

fn password() -> PasswordHash {
    PasswordHash::new([1, 2, 3, 4], b"secret")
}

/// A whole entry payload: envelope, then a batch holding the Publish sample.
fn entry_sample() -> Vec<u8> {
    let batch = Batch {
        time_ms: 1_796_000_000_000,
        commands: vec![samples().swap_remove(6)],
        origin: Some(Origin {
            proposer: 0x0100_0190_0000_0001,
            seq: 42,
        }),
    };
    envelope::encode(&batch, envelope::MACHINE_VERSION_FIRST).0
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `name hex` lines: every command sample, then the entry.
fn encode_all() -> String {
    let mut lines = String::new();
    for command in samples() {
        let bytes = postcard::to_stdvec(&command).expect("encode a command");
        lines.push_str(&format!("{} {}\n", variant(&command), hex(&bytes)));
    }
    lines.push_str(&format!("Entry {}\n", hex(&entry_sample())));
    lines
}

/// Every variant, in declaration order: a variant added to [`variant`] goes here too.
const VARIANTS: [&str; 36] = [
    "ExchangeDeclare",
    "ExchangeDelete",
    "QueueDeclare",
    "QueueDelete",
    "QueuePurge",
    "QueueBind",
    "Publish",
    "Consume",
    "Cancel",
    "Settle",
    "Requeue",
    "ChannelClosed",
    "Get",
    "QueueUnbind",
    "ExchangeBind",
    "ExchangeUnbind",
    "ConnectionClosed",
    "Recover",
    "Tick",
    "Reject",
    "ChannelQos",
    "NodeDown",
    "SetMachineVersion",
    "Credit",
    "InVhost",
    "AddVhost",
    "DeleteVhost",
    "PutUser",
    "DeleteUser",
    "ChangePassword",
    "SetUserTags",
    "SetPermissions",
    "ClearPermissions",
    "InitAccess",
    "ImportDefinitions",
    "ConsumeWithPriority",
];

#[test]
fn every_variant_has_one_sample_in_declaration_order() {
    let named: Vec<_> = samples().iter().map(variant).collect();
    assert_eq!(named, VARIANTS);
}

#[test]
fn the_encoding_of_what_reaches_the_log_has_not_changed() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(GOLDEN);
    let now = encode_all();
    if std::env::var_os("WARREN_BLESS_GOLDEN").is_some() {
        std::fs::write(&path, &now).expect("write golden file");
    }
    let golden = std::fs::read_to_string(&path).expect("read src/raft/golden/entries.txt");
    for (was, is) in golden.lines().zip(now.lines()) {
        assert_eq!(
            was, is,
            "an encoding that reaches the log changed: bump the machine version or the \
             entry format (src/raft/envelope.rs) and bless (see this file's doc)"
        );
    }
    assert_eq!(
        golden.lines().count(),
        now.lines().count(),
        "samples added or removed"
    );
}

#[test]
fn the_golden_entry_decodes_to_its_batch() {
    let golden =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(GOLDEN))
            .expect("read golden file");
    let line = golden
        .lines()
        .find(|l| l.starts_with("Entry "))
        .expect("an Entry line");
    let hex = &line["Entry ".len()..];
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect();
    let (version, batch) =
        envelope::decode(&super::types::Request(bytes)).expect("the golden entry decodes");
    assert_eq!(version, envelope::MACHINE_VERSION_FIRST);
    assert_eq!(batch.commands, vec![samples().swap_remove(6)]);
    assert_eq!(batch.origin.map(|o| o.seq), Some(42));
}
