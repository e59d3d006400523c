use super::*;
use crate::broker::access::HashingAlgorithm;

/// Shaped as RabbitMQ 3.10's `rabbitmqctl export_definitions`: tags as one string, vhost
/// metadata and limits, sections Warren does not import. The hash is RabbitMQ's for
/// "test12" (quoted in its documentation).
const RABBIT_3_10: &str = r#"{
  "rabbit_version": "3.10.7",
  "rabbitmq_version": "3.10.7",
  "product_name": "RabbitMQ",
  "product_version": "3.10.7",
  "users": [
    {"name": "alice", "password_hash": "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR",
     "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": "administrator,monitoring",
     "limits": {}}
  ],
  "vhosts": [{"name": "/", "limits": [], "metadata": {"description": "", "tags": []}},
             {"name": "orders"}],
  "permissions": [{"user": "alice", "vhost": "orders", "configure": ".*", "write": "^o",
                   "read": ".*"}],
  "topic_permissions": [{"user": "alice", "vhost": "orders", "exchange": "amq.topic",
                         "write": ".*", "read": ".*"}],
  "parameters": [],
  "global_parameters": [{"name": "internal_cluster_id", "value": "rabbitmq-cluster-id-x"}],
  "policies": [],
  "queues": [{"name": "q", "vhost": "orders", "durable": true, "auto_delete": false,
              "arguments": {"x-queue-type": "classic", "x-max-length": 10}}],
  "exchanges": [{"name": "x", "vhost": "orders", "type": "topic", "durable": true,
                 "auto_delete": false, "internal": false, "arguments": {}},
                {"name": "amq.direct", "vhost": "/", "type": "direct", "durable": true,
                 "auto_delete": false, "internal": false, "arguments": {}}],
  "bindings": [{"source": "x", "vhost": "orders", "destination": "q",
                "destination_type": "queue", "routing_key": "o.#", "arguments": {}}]
}"#;

#[test]
fn a_rabbitmq_3_10_file_parses_with_its_hash_and_string_tags() {
    let parsed = parse(RABBIT_3_10).expect("a RabbitMQ 3.10 file parses");
    let user = parsed.commands.iter().find_map(|c| match c {
        Command::PutUser {
            name,
            password,
            tags,
            create_only,
        } => Some((name, password, tags, create_only)),
        _ => None,
    });
    let (name, password, tags, create_only) = user.expect("a PutUser");
    assert_eq!(name, "alice");
    assert_eq!(password.algorithm, HashingAlgorithm::Sha256);
    assert!(password.verify(b"test12"), "the user keeps RabbitMQ's hash");
    assert_eq!(
        tags,
        &vec!["administrator".to_string(), "monitoring".to_string()]
    );
    assert!(!create_only, "an import writes users whole");
    let names: Vec<&str> = parsed.commands.iter().map(|c| c_name(c)).collect();
    assert_eq!(
        names,
        [
            "AddVhost",
            "AddVhost",
            "PutUser",
            "SetPermissions",
            "ExchangeDeclare",
            "QueueDeclare",
            "QueueBind"
        ],
        "amq.direct is not declared; order is vhosts, users, permissions, exchanges, queues, \
         bindings"
    );
    assert_eq!(
        parsed.ignored,
        vec![
            "ignored: global_parameters (not supported by Warren)".to_string(),
            "ignored: topic_permissions (not supported by Warren)".to_string()
        ]
    );
}

fn c_name(command: &Command) -> &'static str {
    match command {
        Command::InVhost { command, .. } => command.name(),
        other => other.name(),
    }
}

#[test]
fn tags_as_a_list_parse_too() {
    let text = r#"{"users": [{"name": "u", "password_hash": "", "tags": ["a", "b"]}]}"#;
    let parsed = parse(text).expect("parses");
    assert!(matches!(
        &parsed.commands[0],
        Command::PutUser { tags, .. } if tags == &vec!["a".to_string(), "b".to_string()]
    ));
}

#[test]
fn every_wrong_field_is_reported_at_once() {
    let text = r#"{
      "users": [{"name": "u", "password_hash": "not base64!",
                 "hashing_algorithm": "rabbit_password_hashing_sha256"},
                {"name": "v", "password_hash": "", "hashing_algorithm": "md5"},
                {"password_hash": ""}],
      "permissions": [{"user": "u", "vhost": "/", "configure": "(", "write": ".*",
                       "read": "["}],
      "exchanges": [{"name": "x", "vhost": "/", "type": "x-delayed"}],
      "queues": [{"name": "q", "vhost": "/", "arguments": {"x-f": 1.5}}],
      "bindings": [{"source": "x", "vhost": "/", "destination": "q",
                    "destination_type": "stream"}]
    }"#;
    let err = parse(text).expect_err("malformed");
    let all = err.problems.join("\n");
    for expected in [
        "users[0] ('u').password_hash",
        "users[1] ('v').hashing_algorithm: 'md5'",
        "users[2]: missing field `name`",
        "permissions[0].configure",
        "permissions[0].read",
        "exchanges[0] ('x').type: 'x-delayed'",
        "queues[0] ('q').arguments.x-f",
        "bindings[0].destination_type: 'stream'",
    ] {
        assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
    }
    assert_eq!(err.problems.len(), 8, "{all}");
}

#[test]
fn not_json_or_a_section_of_the_wrong_shape_is_an_error_not_a_crash() {
    assert!(parse("[1, 2]").is_err());
    assert!(parse("{").is_err());
    let err = parse(r#"{"users": {"name": "u"}}"#).expect_err("users is not a list");
    assert_eq!(err.problems, vec!["users: expected a list".to_string()]);
}

#[test]
fn export_then_parse_gives_the_same_commands_as_the_state_they_came_from() {
    use crate::broker::state::BrokerState;
    let mut state = BrokerState::default();
    let parsed = parse(RABBIT_3_10).expect("parses");
    let import = Command::ImportDefinitions {
        commands: parsed.commands,
    };
    assert!(state.apply(0, import).reply.is_ok());
    let applied = crate::definitions::applied::Applied::of(&state);
    let text = crate::definitions::export::to_json(&applied);
    let json: serde_json::Value = serde_json::from_str(&text).expect("export is JSON");
    assert_eq!(
        json["users"][0]["tags"], "administrator,monitoring",
        "3.10's string"
    );
    let mut again = BrokerState::default();
    let import = Command::ImportDefinitions {
        commands: parse(&text).expect("the export parses").commands,
    };
    assert!(again.apply(0, import).reply.is_ok());
    let applied_again = crate::definitions::applied::Applied::of(&again);
    assert_eq!(crate::definitions::export::to_json(&applied_again), text);
}
