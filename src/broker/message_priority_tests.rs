//! The priority as the front end's own codec writes it (`amqp/properties.rs`), with every
//! field before it and after it, and what bytes that are not properties give.

use bytes::Bytes;

use super::*;
use crate::amqp::field_table::{FieldTable, FieldValue};
use crate::amqp::properties::BasicProperties;
use crate::amqp::short_str::ShortStr;

fn short(s: &'static str) -> Option<ShortStr> {
    Some(ShortStr::from_static(s))
}

#[test]
fn the_priority_is_read_past_every_field_before_it() {
    let everything = BasicProperties {
        content_type: short("application/json"),
        content_encoding: short("gzip"),
        headers: Some(FieldTable(vec![(
            ShortStr::from_static("k"),
            FieldValue::LongStr(Bytes::from_static(b"a value")),
        )])),
        delivery_mode: Some(2),
        priority: Some(7),
        correlation_id: short("c"),
        expiration: short("60000"),
        ..BasicProperties::default()
    };
    assert_eq!(message_priority(&everything.encode()), 7);
    let only = BasicProperties {
        priority: Some(255),
        ..BasicProperties::default()
    };
    assert_eq!(message_priority(&only.encode()), 255);
    let none = BasicProperties {
        priority: None,
        ..everything.clone()
    };
    assert_eq!(message_priority(&none.encode()), 0);
}

#[test]
fn bytes_cut_short_or_malformed_give_priority_0() {
    let props = BasicProperties {
        content_type: short("text/plain"),
        priority: Some(9),
        ..BasicProperties::default()
    }
    .encode();
    assert_eq!(message_priority(&props), 9);
    for cut in 0..props.len() {
        assert_eq!(message_priority(&props[..cut]), 0, "cut at {cut}");
    }
    // Headers that claim more bytes than there are.
    assert_eq!(
        message_priority(&[0x28, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 1]),
        0
    );
}
