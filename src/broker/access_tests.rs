use super::*;
use crate::broker::command::{Command, Reply};
use crate::broker::state::BrokerState;

fn hash(password: &str) -> PasswordHash {
    PasswordHash::new([1, 2, 3, 4], password.as_bytes())
}

fn apply(s: &mut BrokerState, command: Command) -> Result<Reply, Refusal> {
    s.apply(0, command).reply
}

fn add_user(s: &mut BrokerState, name: &str) -> Result<Reply, Refusal> {
    let command = Command::PutUser {
        name: name.to_string(),
        password: hash("secret"),
        tags: vec!["monitoring".to_string()],
        create_only: true,
    };
    apply(s, command)
}

#[test]
fn a_hash_verifies_its_password_only() {
    let h = hash("secret");
    assert!(h.verify(b"secret"));
    assert!(!h.verify(b"Secret"));
    assert!(!h.verify(b""));
    assert!(h.is_well_formed());
    let none = PasswordHash {
        algorithm: HashingAlgorithm::Sha256,
        hash: String::new(),
    };
    assert!(!none.verify(b""), "an empty hash lets no password in");
}

/// Hashes RabbitMQ wrote (exported definitions quoted in RabbitMQ's documentation and a
/// public question about its HTTP API) verify here: definitions move with their passwords.
#[test]
fn rabbitmq_hashes_verify() {
    for (hash, password) in [
        ("kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR", "test12"),
        ("y4xPTRVfzXg68sz9ALqeQzARam3CwnGo53xS752cDV5+Utzh", "1"),
    ] {
        let h = PasswordHash {
            algorithm: HashingAlgorithm::Sha256,
            hash: hash.to_string(),
        };
        assert!(h.is_well_formed());
        assert!(h.verify(password.as_bytes()));
        assert!(!h.verify(b"test13"));
    }
}

#[test]
fn add_user_refuses_an_existing_one_and_changes_nothing() {
    let mut s = BrokerState::default();
    assert_eq!(add_user(&mut s, "u"), Ok(Reply::Done));
    let before = s.access.clone();
    let again = add_user(&mut s, "u").unwrap_err();
    assert_eq!(again.reply_code, 406);
    assert_eq!(s.access, before);
}

#[test]
fn permissions_need_a_user_a_vhost_and_valid_patterns() {
    let mut s = BrokerState::default();
    add_user(&mut s, "u").unwrap();
    let set = |user: &str, vhost: &str, configure: &str| Command::SetPermissions {
        user: user.to_string(),
        vhost: vhost.to_string(),
        permission: Permission {
            configure: configure.to_string(),
            write: ".*".to_string(),
            read: ".*".to_string(),
        },
    };
    let before = s.access.clone();
    assert_eq!(
        apply(&mut s, set("nobody", "/", ".*"))
            .unwrap_err()
            .reply_code,
        404
    );
    assert_eq!(
        apply(&mut s, set("u", "nowhere", ".*"))
            .unwrap_err()
            .reply_code,
        404
    );
    let bad = apply(&mut s, set("u", "/", "(")).unwrap_err();
    assert_eq!(bad.reply_code, 406);
    assert!(bad.reply_text.contains("configure"), "{}", bad.reply_text);
    assert_eq!(s.access, before, "a refused command changes nothing");
    assert_eq!(apply(&mut s, set("u", "/", "^q")), Ok(Reply::Done));
    assert_eq!(s.access.permission("u", "/").unwrap().configure, "^q");
    assert!(s.access.version > before.version);
}

#[test]
fn init_access_writes_the_default_user_once() {
    let mut s = BrokerState::default();
    let init = |password: &str| Command::InitAccess {
        user: "guest".to_string(),
        password: hash(password),
    };
    apply(&mut s, init("guest")).unwrap();
    assert!(s.access.initialized);
    assert_eq!(s.access.permission("guest", "/"), Some(&Permission::all()));
    apply(
        &mut s,
        Command::DeleteUser {
            name: "guest".into(),
        },
    )
    .unwrap();
    apply(&mut s, init("other")).unwrap();
    assert!(
        s.access.users.is_empty(),
        "a deleted default user stays deleted"
    );
}

#[test]
fn deleting_a_user_or_a_vhost_drops_its_permissions() {
    let mut s = BrokerState::default();
    add_user(&mut s, "u").unwrap();
    apply(&mut s, Command::AddVhost { name: "v".into() }).unwrap();
    let set = |vhost: &str| Command::SetPermissions {
        user: "u".to_string(),
        vhost: vhost.to_string(),
        permission: Permission::all(),
    };
    apply(&mut s, set("v")).unwrap();
    apply(&mut s, set("/")).unwrap();
    apply(&mut s, Command::DeleteVhost { name: "v".into() }).unwrap();
    assert!(s.access.permission("u", "v").is_none());
    assert!(s.access.permission("u", "/").is_some());
    apply(&mut s, Command::DeleteUser { name: "u".into() }).unwrap();
    assert!(s.access.permissions.is_empty());
}
