//! Headers the broker adds to a message on its way out: `x-delivery-count` on redeliveries,
//! and, on a dead-lettered copy, RabbitMQ's `x-death` array with the `x-first-death-*`
//! headers, as RabbitMQ 3.10 writes them: the `expiration` property moves into the first
//! death's entry as `original-expiration` (RabbitMQ moves it at the first dead-lettering,
//! after which the message has none; 3.10 writes no `x-last-death-*`). Every other octet of
//! the properties is kept when only `x-delivery-count` is added; properties the codec cannot
//! read are sent as they came (the client published them so).

use bytes::Bytes;

use crate::amqp::field_table::{FieldTable, FieldValue};
use crate::amqp::properties::{set_header, BasicProperties};
use crate::amqp::short_str::ShortStr;
use crate::broker::command::Content;
use crate::broker::dead_letter::{Death, DeathReason};

/// What the broker knows about a message beyond its content, for its headers.
pub struct Extra<'a> {
    pub delivery_count: u32,
    pub deaths: &'a [Death],
    pub first_death: Option<&'a (String, DeathReason, String)>,
}

/// The content as it goes out: with the headers `extra` calls for.
pub fn render(content: Content, extra: Extra<'_>) -> Content {
    let properties = if extra.deaths.is_empty() {
        with_delivery_count(&content.properties, extra.delivery_count)
    } else {
        with_deaths(&content.properties, &extra)
    };
    match properties {
        Ok(Some(properties)) => Content {
            properties,
            body: content.body,
        },
        Ok(None) => content,
        Err(e) => {
            tracing::debug!(error = %e, "properties not rewritten");
            content
        }
    }
}

/// `x-delivery-count` (a long) counting earlier returns to the queue, as RabbitMQ's quorum
/// queues add it; nothing on a first delivery.
fn with_delivery_count(raw: &[u8], delivery_count: u32) -> anyhow::Result<Option<Bytes>> {
    if delivery_count == 0 {
        return Ok(None);
    }
    let count = FieldValue::I64(i64::from(delivery_count));
    Ok(Some(set_header(raw, "x-delivery-count", count)?))
}

fn with_deaths(raw: &[u8], extra: &Extra<'_>) -> anyhow::Result<Option<Bytes>> {
    let mut props = BasicProperties::decode(raw)?;
    let expiration = props.expiration.take();
    let headers = props.headers.get_or_insert_with(FieldTable::new);
    // The entry the first death made (repeats in the same queue for the same reason only
    // count up in it) is the one that took the expiration.
    let first = |d: &Death| {
        extra
            .first_death
            .is_some_and(|(queue, reason, _)| d.queue == *queue && d.reason == *reason)
    };
    let deaths = extra
        .deaths
        .iter()
        .map(|d| death_table(d, expiration.as_ref().filter(|_| first(d))))
        .collect();
    headers.set(name("x-death"), FieldValue::Array(deaths));
    // In the order RabbitMQ 3.10 sends them (checked on 3.10.8).
    if let Some((queue, reason, exchange)) = extra.first_death {
        headers.set(name("x-first-death-exchange"), text(exchange));
        headers.set(name("x-first-death-queue"), text(queue));
        headers.set(name("x-first-death-reason"), text(reason.as_str()));
    }
    if extra.delivery_count > 0 {
        let count = FieldValue::I64(i64::from(extra.delivery_count));
        headers.set(name("x-delivery-count"), count);
    }
    Ok(Some(props.encode()))
}

/// One x-death entry, fields in RabbitMQ 3.10's order for a new entry (checked on 3.10.8); `original-expiration`
/// (a long string, as the property was) on the entry whose death took the expiration.
fn death_table(death: &Death, original_expiration: Option<&ShortStr>) -> FieldValue {
    let keys = death.routing_keys.iter().map(|k| text(k)).collect();
    let mut fields = vec![
        (name("count"), FieldValue::I64(death.count as i64)),
        (name("reason"), text(death.reason.as_str())),
        (name("queue"), text(&death.queue)),
        (name("time"), FieldValue::Timestamp(death.time_ms / 1000)),
        (name("exchange"), text(&death.exchange)),
        (name("routing-keys"), FieldValue::Array(keys)),
    ];
    if let Some(expiration) = original_expiration {
        let value = Bytes::copy_from_slice(expiration.as_bytes());
        fields.push((name("original-expiration"), FieldValue::LongStr(value)));
    }
    FieldValue::Table(FieldTable(fields))
}

fn name(s: &'static str) -> ShortStr {
    ShortStr::from_static(s)
}

fn text(s: &str) -> FieldValue {
    FieldValue::LongStr(Bytes::copy_from_slice(s.as_bytes()))
}
