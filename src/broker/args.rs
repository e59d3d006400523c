//! Declare arguments: the `x-` arguments of queues and exchanges as the state keeps them,
//! their validation, and RabbitMQ's equivalence check for redeclares.
//!
//! Arguments arrive as ordered (name, value) pairs with every integer width already
//! normalised to i64 (`ArgValue`), so a redeclare that sends `x-message-ttl` as a short int
//! matches one that sent a long, as RabbitMQ's `type_class` comparison does. This module
//! never sees bytes from a socket: the front end converts the field table.

use serde::{Deserialize, Serialize};

use super::command::Refusal;
use super::exchange::HeaderValue;

/// A declare or binding argument value, compared by type class and content.
pub type ArgValue = HeaderValue;

/// Declare or binding arguments, in the order the client sent them.
pub type Arguments = Vec<(String, ArgValue)>;

/// The queue arguments RabbitMQ 3.10 compares on redeclare (`rabbit_amqqueue:declare_args`);
/// any other argument is ignored by the equivalence check.
const QUEUE_EQUIVALENCE_KEYS: [&str; 15] = [
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-in-memory-length",
    "x-max-in-memory-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-single-active-consumer",
    "x-queue-type",
    "x-quorum-initial-group-size",
    "x-delivery-limit",
];

/// What a full queue does with a new publish.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Overflow {
    /// Drop (and dead-letter) the oldest ready message.
    #[default]
    DropHead,
    /// Refuse the publish for this queue (the publisher gets a nack under confirms).
    RejectPublish,
    /// As `RejectPublish`, and the refused message is dead-lettered (reason maxlen).
    RejectPublishDlx,
}

/// What bounds one queue: the part of its arguments the queue itself enforces.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueLimits {
    /// `x-max-length`: most ready messages.
    pub max_length: Option<u64>,
    /// `x-max-length-bytes`: most body bytes over the ready messages.
    pub max_length_bytes: Option<u64>,
    pub overflow: Overflow,
    /// `x-delivery-limit`: a message returned more often than this is dead-lettered.
    pub delivery_limit: Option<u64>,
}

/// The queue arguments the broker acts on, parsed once at declare.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueArgs {
    pub message_ttl_ms: Option<u64>,
    pub dead_letter_exchange: Option<String>,
    pub dead_letter_routing_key: Option<String>,
    pub max_length: Option<u64>,
    pub max_length_bytes: Option<u64>,
    pub overflow: Overflow,
    pub delivery_limit: Option<u64>,
}

impl QueueArgs {
    /// The limits the queue enforces itself.
    pub fn limits(&self) -> QueueLimits {
        QueueLimits {
            max_length: self.max_length,
            max_length_bytes: self.max_length_bytes,
            overflow: self.overflow,
            delivery_limit: self.delivery_limit,
        }
    }

    /// Validates and parses `arguments` of queue `queue`: 406 for a wrong type or value,
    /// with RabbitMQ's "invalid arg" text.
    pub fn parse(queue: &str, arguments: &Arguments) -> Result<QueueArgs, Refusal> {
        let mut args = QueueArgs::default();
        for (name, value) in arguments {
            let invalid = |why: String| {
                Refusal::precondition_failed(format!(
                    "invalid arg '{name}' for queue '{queue}' in vhost '/': {why}"
                ))
            };
            match name.as_str() {
                "x-message-ttl" => args.message_ttl_ms = Some(non_negative(value, invalid)?),
                "x-max-length" => args.max_length = Some(non_negative(value, invalid)?),
                "x-max-length-bytes" => args.max_length_bytes = Some(non_negative(value, invalid)?),
                "x-delivery-limit" => args.delivery_limit = Some(non_negative(value, invalid)?),
                "x-dead-letter-exchange" => {
                    args.dead_letter_exchange = Some(string(value, invalid)?)
                }
                "x-dead-letter-routing-key" => {
                    args.dead_letter_routing_key = Some(string(value, invalid)?)
                }
                "x-overflow" => {
                    args.overflow = match string(value, invalid)?.as_str() {
                        "drop-head" => Overflow::DropHead,
                        "reject-publish" => Overflow::RejectPublish,
                        "reject-publish-dlx" => Overflow::RejectPublishDlx,
                        other => {
                            return Err(invalid(format!("{{unacceptable_value,<<\"{other}\">>}}")))
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(args)
    }
}

fn non_negative(value: &ArgValue, invalid: impl Fn(String) -> Refusal) -> Result<u64, Refusal> {
    match value {
        ArgValue::Int(n) if *n >= 0 => Ok(*n as u64),
        ArgValue::Int(n) => Err(invalid(format!("{{value_negative,{n}}}"))),
        other => Err(invalid(format!(
            "{{unacceptable_type,{}}}",
            type_name(other)
        ))),
    }
}

fn string(value: &ArgValue, invalid: impl Fn(String) -> Refusal) -> Result<String, Refusal> {
    match value {
        ArgValue::Str(s) => Ok(s.clone()),
        other => Err(invalid(format!(
            "{{unacceptable_type,{}}}",
            type_name(other)
        ))),
    }
}

/// The AMQP type name RabbitMQ prints for a value; ints are normalised, so all are "long".
fn type_name(value: &ArgValue) -> &'static str {
    match value {
        ArgValue::Str(_) => "longstr",
        ArgValue::Int(_) => "long",
        ArgValue::Bool(_) => "bool",
        ArgValue::Other(_) => "other",
    }
}

/// Renders an argument as `rabbit_misc:val/1` does: "none" or "the value 'v' of type 't'".
pub fn render_arg(value: Option<&ArgValue>) -> String {
    let Some(value) = value else {
        return "none".to_string();
    };
    let shown = match value {
        ArgValue::Str(s) => s.clone(),
        ArgValue::Int(n) => n.to_string(),
        ArgValue::Bool(b) => b.to_string(),
        ArgValue::Other(debug) => debug.clone(),
    };
    format!("the value '{shown}' of type '{}'", type_name(value))
}

fn lookup<'a>(arguments: &'a Arguments, key: &str) -> Option<&'a ArgValue> {
    arguments.iter().find(|(n, _)| n == key).map(|(_, v)| v)
}

/// The first queue argument RabbitMQ compares on which `current` and `received` differ,
/// rendered as (key, received, current).
pub fn queue_args_mismatch(
    current: &Arguments,
    received: &Arguments,
) -> Option<(&'static str, String, String)> {
    QUEUE_EQUIVALENCE_KEYS.iter().find_map(|key| {
        let (c, r) = (lookup(current, key), lookup(received, key));
        (c != r).then(|| (*key, render_arg(r), render_arg(c)))
    })
}

/// The consumer priority of basic.consume `arguments` (`x-priority`, 0 without it), as
/// RabbitMQ 3.10 checks it (`check_consume_arguments`): an integer of any width, else 406
/// with its "invalid arg" text. An integer beyond 32 bits is held at the nearest bound: the
/// order of consumers is all a priority decides.
pub fn consumer_priority(vhost: &str, queue: &str, arguments: &Arguments) -> Result<i32, Refusal> {
    match lookup(arguments, "x-priority") {
        None => Ok(0),
        Some(ArgValue::Int(n)) => Ok((*n).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32),
        Some(other) => Err(Refusal::precondition_failed(format!(
            "invalid arg 'x-priority' for queue '{queue}' in vhost '{vhost}': \
             {{unacceptable_type,{}}}",
            type_name(other)
        ))),
    }
}

/// The most `x-max-priority` may be (RabbitMQ's `MAX_SUPPORTED_PRIORITY`).
pub const MAX_PRIORITY_MAX: u64 = 255;

/// `x-max-priority` of queue.declare `arguments` (machine version 4): None without it, else
/// an integer from 0 to 255; RabbitMQ 3.10's 406 otherwise (`check_max_priority_arg`).
pub fn max_priority(
    vhost: &str,
    queue: &str,
    arguments: &Arguments,
) -> Result<Option<u8>, Refusal> {
    let Some(value) = lookup(arguments, "x-max-priority") else {
        return Ok(None);
    };
    let invalid = |why: String| {
        Refusal::precondition_failed(format!(
            "invalid arg 'x-max-priority' for queue '{queue}' in vhost '{vhost}': {why}"
        ))
    };
    let max = non_negative(value, invalid)?;
    match u8::try_from(max) {
        Ok(max) if u64::from(max) <= MAX_PRIORITY_MAX => Ok(Some(max)),
        _ => Err(invalid(format!("{{max_value_exceeded,{max}}}"))),
    }
}

/// `x-single-active-consumer` of queue.declare `arguments` (machine version 4): false
/// without it; a value that is not a boolean is RabbitMQ 3.10's 406.
pub fn single_active_consumer(
    vhost: &str,
    queue: &str,
    arguments: &Arguments,
) -> Result<bool, Refusal> {
    match lookup(arguments, "x-single-active-consumer") {
        None => Ok(false),
        Some(ArgValue::Bool(b)) => Ok(*b),
        Some(other) => Err(Refusal::precondition_failed(format!(
            "invalid arg 'x-single-active-consumer' for queue '{queue}' in vhost '{vhost}': \
             {{unacceptable_type,{}}}",
            type_name(other)
        ))),
    }
}

/// `alternate-exchange` from exchange.declare arguments (RabbitMQ ignores a non-string).
pub fn alternate_exchange(arguments: &Arguments) -> Option<String> {
    match lookup(arguments, "alternate-exchange") {
        Some(ArgValue::Str(s)) => Some(s.clone()),
        _ => None,
    }
}

/// The `x-dead-letter-exchange` of queue.declare arguments, when a string (the front end's
/// permission check; the queue itself acts on [`QueueArgs`]).
pub fn dead_letter_exchange(arguments: &Arguments) -> Option<&str> {
    match lookup(arguments, "x-dead-letter-exchange") {
        Some(ArgValue::Str(s)) => Some(s.as_str()),
        _ => None,
    }
}
