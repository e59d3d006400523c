//! Exchanges, bindings and routing, with RabbitMQ's semantics.
//!
//! Routing is a walk over a graph: an exchange routes to queues and, through
//! exchange-to-exchange bindings, to other exchanges. The walk visits each exchange once (so
//! binding cycles terminate) and returns each queue once. When a publish reaches no queue and
//! its exchange has an `alternate-exchange`, routing continues there (also visited once).

use std::collections::{BTreeMap, BTreeSet};

use amq_protocol::types::{AMQPValue, FieldTable};
use serde::{Deserialize, Serialize};

use super::topic::topic_matches;

/// The four AMQP exchange types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExchangeKind {
    Direct,
    Fanout,
    Topic,
    Headers,
}

impl ExchangeKind {
    /// Parses the `type` of exchange.declare; `None` is a 503 COMMAND_INVALID for the caller.
    pub fn parse(name: &str) -> Option<ExchangeKind> {
        match name {
            "direct" => Some(ExchangeKind::Direct),
            "fanout" => Some(ExchangeKind::Fanout),
            "topic" => Some(ExchangeKind::Topic),
            "headers" => Some(ExchangeKind::Headers),
            _ => None,
        }
    }

    /// The name exchange.declare uses for this type.
    pub fn as_str(self) -> &'static str {
        match self {
            ExchangeKind::Direct => "direct",
            ExchangeKind::Fanout => "fanout",
            ExchangeKind::Topic => "topic",
            ExchangeKind::Headers => "headers",
        }
    }
}

/// Where a binding leads.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Destination {
    Queue(String),
    Exchange(String),
}

/// A binding from an exchange. `arguments` are the binding's arguments as bound (sorted by
/// name: with the destination and key they identify the binding, as in RabbitMQ). For
/// headers exchanges `match_headers` holds the non-`x-` arguments and `match_all` the
/// `x-match` mode, derived from `arguments` once at bind time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Binding {
    pub destination: Destination,
    pub routing_key: String,
    pub arguments: Vec<(String, HeaderValue)>,
    pub match_all: bool,
    pub match_headers: Vec<(String, HeaderValue)>,
}

impl Binding {
    pub fn new(
        destination: Destination,
        routing_key: String,
        mut arguments: Vec<(String, HeaderValue)>,
    ) -> Binding {
        arguments.sort_by(|a, b| a.0.cmp(&b.0));
        let (match_all, match_headers) = headers_binding_args(&arguments);
        Binding {
            destination,
            routing_key,
            arguments,
            match_all,
            match_headers,
        }
    }

    /// True when this is the binding (`destination`, `routing_key`, sorted `arguments`).
    pub fn is(
        &self,
        destination: &Destination,
        routing_key: &str,
        arguments: &[(String, HeaderValue)],
    ) -> bool {
        &self.destination == destination
            && self.routing_key == routing_key
            && self.arguments == arguments
    }
}

/// A header value as bindings compare it: by type and content.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum HeaderValue {
    Str(String),
    Int(i64),
    Bool(bool),
    /// Any other field type, compared by its debug rendering (exact type and content).
    Other(String),
}

impl HeaderValue {
    pub fn from_amqp(value: &AMQPValue) -> HeaderValue {
        match value {
            AMQPValue::LongString(s) => HeaderValue::Str(s.to_string()),
            AMQPValue::ShortString(s) => HeaderValue::Str(s.to_string()),
            AMQPValue::Boolean(b) => HeaderValue::Bool(*b),
            AMQPValue::ShortShortInt(n) => HeaderValue::Int(i64::from(*n)),
            AMQPValue::ShortShortUInt(n) => HeaderValue::Int(i64::from(*n)),
            AMQPValue::ShortInt(n) => HeaderValue::Int(i64::from(*n)),
            AMQPValue::ShortUInt(n) => HeaderValue::Int(i64::from(*n)),
            AMQPValue::LongInt(n) => HeaderValue::Int(i64::from(*n)),
            AMQPValue::LongUInt(n) => HeaderValue::Int(i64::from(*n)),
            AMQPValue::LongLongInt(n) => HeaderValue::Int(*n),
            other => HeaderValue::Other(format!("{other:?}")),
        }
    }
}

/// Converts a field table (declare or binding arguments) into ordered pairs, every integer
/// width normalised to i64.
pub fn field_table_pairs(table: &FieldTable) -> Vec<(String, HeaderValue)> {
    table
        .inner()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), HeaderValue::from_amqp(v)))
        .collect()
}

/// Reads binding arguments of a headers exchange: `x-match` decides all/any (default all),
/// other `x-` keys are ignored as RabbitMQ does.
pub fn headers_binding_args(args: &[(String, HeaderValue)]) -> (bool, Vec<(String, HeaderValue)>) {
    let mut match_all = true;
    let mut pairs = Vec::new();
    for (name, value) in args {
        if name == "x-match" {
            match_all = !matches!(value, HeaderValue::Str(s) if s == "any");
        } else if !name.starts_with("x-") {
            pairs.push((name.clone(), value.clone()));
        }
    }
    (match_all, pairs)
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Exchange {
    pub kind: ExchangeKind,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub alternate_exchange: Option<String>,
    pub bindings: Vec<Binding>,
}

impl Exchange {
    pub fn new(kind: ExchangeKind) -> Exchange {
        Exchange {
            kind,
            durable: true,
            auto_delete: false,
            internal: false,
            alternate_exchange: None,
            bindings: Vec::new(),
        }
    }

    fn matches(
        &self,
        binding: &Binding,
        routing_key: &str,
        headers: &[(String, HeaderValue)],
    ) -> bool {
        match self.kind {
            ExchangeKind::Direct => binding.routing_key == routing_key,
            ExchangeKind::Fanout => true,
            ExchangeKind::Topic => topic_matches(&binding.routing_key, routing_key),
            ExchangeKind::Headers => headers_match(binding, headers),
        }
    }
}

fn headers_match(binding: &Binding, headers: &[(String, HeaderValue)]) -> bool {
    let found = |(name, value): &(String, HeaderValue)| {
        headers.iter().any(|(n, v)| n == name && v == value)
    };
    if binding.match_all {
        binding.match_headers.iter().all(found)
    } else {
        binding.match_headers.iter().any(found)
    }
}

/// Routes a publish from `exchange` over `exchanges`; returns the queues, each once.
/// The default exchange ("") routes to the queue named by the routing key, when it exists;
/// the caller checks that.
pub fn route(
    exchanges: &BTreeMap<String, Exchange>,
    exchange: &str,
    routing_key: &str,
    headers: &[(String, HeaderValue)],
) -> BTreeSet<String> {
    let mut queues = BTreeSet::new();
    let mut visited = BTreeSet::new();
    let mut next = vec![exchange.to_string()];
    while let Some(name) = next.pop() {
        if !visited.insert(name.clone()) {
            continue;
        }
        let Some(x) = exchanges.get(&name) else {
            continue;
        };
        let before = queues.len();
        let mut reached_exchange = false;
        for binding in x
            .bindings
            .iter()
            .filter(|b| x.matches(b, routing_key, headers))
        {
            match &binding.destination {
                Destination::Queue(q) => {
                    queues.insert(q.clone());
                }
                Destination::Exchange(e) => {
                    reached_exchange = true;
                    next.push(e.clone());
                }
            }
        }
        // The alternate exchange takes what this exchange could not route anywhere.
        if queues.len() == before && !reached_exchange {
            if let Some(alternate) = &x.alternate_exchange {
                next.push(alternate.clone());
            }
        }
    }
    queues
}

#[cfg(test)]
#[path = "exchange_tests.rs"]
mod tests;
