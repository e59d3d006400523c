use super::*;
use crate::broker::access::{PasswordHash, Permission};
use crate::broker::exchange::{ExchangeKind, HeaderValue};
use crate::broker::state::BrokerState;

fn in_vhost(vhost: &str, command: Command) -> Command {
    Command::InVhost {
        vhost: vhost.to_string(),
        command: Box::new(command),
    }
}

fn queue(name: &str, ttl: i64) -> Command {
    Command::QueueDeclare {
        name: name.to_string(),
        passive: false,
        durable: true,
        exclusive: false,
        auto_delete: false,
        arguments: vec![("x-message-ttl".to_string(), HeaderValue::Int(ttl))],
        conn: 0,
    }
}

fn exchange(name: &str) -> Command {
    Command::ExchangeDeclare {
        name: name.to_string(),
        kind: ExchangeKind::Topic,
        passive: false,
        durable: true,
        auto_delete: false,
        internal: false,
        arguments: Vec::new(),
    }
}

fn definitions() -> Vec<Command> {
    vec![
        Command::AddVhost { name: "v".into() },
        Command::PutUser {
            name: "u".into(),
            password: PasswordHash::new([1, 2, 3, 4], b"pw"),
            tags: vec!["administrator".into()],
            create_only: false,
        },
        Command::SetPermissions {
            user: "u".into(),
            vhost: "v".into(),
            permission: Permission::all(),
        },
        in_vhost("v", exchange("x")),
        in_vhost("v", queue("q", 1000)),
        in_vhost(
            "v",
            Command::QueueBind {
                queue: "q".into(),
                exchange: "x".into(),
                routing_key: "k.#".into(),
                arguments: Vec::new(),
                conn: 0,
            },
        ),
    ]
}

fn import(s: &mut BrokerState, commands: Vec<Command>) -> Outcome {
    s.apply(0, Command::ImportDefinitions { commands })
}

#[test]
fn an_import_applies_every_item_and_again_changes_nothing() {
    let mut s = BrokerState::default();
    assert!(import(&mut s, definitions()).reply.is_ok());
    assert!(s.queue("v", "q").is_some());
    assert!(s.access.users.contains_key("u"));
    assert_eq!(s.access.permission("u", "v"), Some(&Permission::all()));
    let x = &s.vhosts["v"].exchanges["x"];
    assert_eq!(x.bindings.len(), 1);
    let once = s.clone();
    assert!(
        import(&mut s, definitions()).reply.is_ok(),
        "importing the same definitions again is accepted"
    );
    assert_eq!(s.vhosts, once.vhosts);
    assert_eq!(s.access.users, once.access.users);
    assert_eq!(s.access.permissions, once.access.permissions);
}

#[test]
fn a_refused_item_leaves_the_state_as_it_was_and_is_named() {
    let mut s = BrokerState::default();
    import(&mut s, vec![in_vhost("/", queue("q", 1000))]);
    let before = s.clone();
    let mut commands = definitions();
    // Inequivalent to the queue already there: refused after the vhost, the user and the
    // rest were applied to the trial copy.
    commands.push(queue("q", 2000));
    let outcome = import(&mut s, commands);
    let refusal = outcome
        .reply
        .expect_err("an inequivalent queue refuses the import");
    assert_eq!(refusal.reply_code, 406);
    assert!(
        refusal
            .reply_text
            .contains("item 6 (queue 'q' in vhost '/')"),
        "{}",
        refusal.reply_text
    );
    assert!(refusal.reply_text.contains("x-message-ttl"));
    assert_eq!(s, before, "nothing of the import stayed");
    assert!(!s.vhosts.contains_key("v"));
}

#[test]
fn an_import_holds_declarations_only() {
    let mut s = BrokerState::default();
    let before = s.clone();
    for bad in [
        Command::DeleteVhost { name: "/".into() },
        Command::ImportDefinitions {
            commands: Vec::new(),
        },
        Command::Tick,
        in_vhost("v", in_vhost("v", exchange("x"))),
    ] {
        let mut commands = definitions();
        commands.insert(1, bad);
        let refusal = import(&mut s, commands)
            .reply
            .expect_err("not a definition");
        assert!(
            refusal.reply_text.contains("item 1"),
            "{}",
            refusal.reply_text
        );
        assert_eq!(s, before);
    }
}

#[test]
fn a_bad_permission_pattern_refuses_the_whole_import() {
    let mut s = BrokerState::default();
    let before = s.clone();
    let mut commands = definitions();
    commands[2] = Command::SetPermissions {
        user: "u".into(),
        vhost: "v".into(),
        permission: Permission {
            configure: "(".into(),
            write: ".*".into(),
            read: ".*".into(),
        },
    };
    let refusal = import(&mut s, commands).reply.expect_err("a bad regex");
    assert!(
        refusal.reply_text.contains("configure"),
        "{}",
        refusal.reply_text
    );
    assert_eq!(s, before);
}
