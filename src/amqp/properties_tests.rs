//! Basic properties: octet-exact round trips, totality over random bytes,
//! agreement with amq-protocol's parser, flags-word chains, and header edits.

use super::*;
use crate::amqp::field_table::tests::{arb_name, arb_table};
use amq_protocol::protocol::basic::parse_properties;
use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;

/// Properties with every field independently present or absent. For the
/// oracle (`oracle`): no floats, UTF-8 text, a single flags word.
fn arb_properties(oracle: bool) -> impl Strategy<Value = BasicProperties> {
    let s = move || of(arb_name(oracle));
    let text = (s(), s(), s(), s(), s(), s(), s(), s(), s(), s(), s());
    let empty_words = if oracle { 0..1u32 } else { 0..3u32 };
    let rest = (
        of(arb_table(!oracle, oracle)),
        of(any::<u8>()),
        of(any::<u8>()),
        of(any::<u64>()),
        empty_words,
    );
    (text, rest).prop_map(|(t, r)| BasicProperties {
        content_type: t.0,
        content_encoding: t.1,
        headers: r.0,
        delivery_mode: r.1,
        priority: r.2,
        correlation_id: t.2,
        reply_to: t.3,
        expiration: t.4,
        message_id: t.5,
        timestamp: r.3,
        kind: t.6,
        user_id: t.7,
        app_id: t.8,
        cluster_id: t.9.or(t.10),
        empty_flag_words: r.4,
    })
}

fn short(s: &'static str) -> Option<ShortStr> {
    Some(ShortStr::from_static(s))
}

fn header_names(props: &BasicProperties) -> Vec<String> {
    let headers = props.headers().expect("has headers");
    let name = |n: &ShortStr| n.to_str().expect("utf-8").to_owned();
    headers.iter().map(|(n, _)| name(n)).collect()
}

/// Properties as a publisher might send them, with three headers.
fn published() -> BasicProperties {
    BasicProperties {
        content_type: short("application/json"),
        headers: Some(FieldTable(vec![
            (
                ShortStr::from_static("z"),
                FieldValue::LongStr(Bytes::from_static(b"1")),
            ),
            (
                ShortStr::from_static("x-delivery-count"),
                FieldValue::I64(3),
            ),
            (ShortStr::from_static("a"), FieldValue::F64(f64::NAN)),
        ])),
        delivery_mode: Some(2),
        expiration: short("60000"),
        message_id: short("m-1"),
        timestamp: Some(1_700_000_000),
        ..BasicProperties::default()
    }
}

proptest! {
    #[test]
    fn properties_round_trip_is_octet_exact(props in arb_properties(false)) {
        let bytes = props.encode();
        let decoded = BasicProperties::decode(&bytes).expect("own encoding decodes");
        prop_assert_eq!(&decoded, &props);
        prop_assert_eq!(decoded.encode(), bytes);
    }

    #[test]
    fn properties_decode_of_random_bytes_never_panics(bytes in vec(any::<u8>(), 0..256)) {
        if let Ok(props) = BasicProperties::decode(&bytes) {
            prop_assert_eq!(BasicProperties::decode(&props.encode()), Ok(props));
        }
    }

    /// A valid first flags word gets random bytes past the flags parser.
    #[test]
    fn properties_decode_after_valid_flags_never_panics(
        flags in any::<u16>(),
        list in vec(any::<u8>(), 0..256),
    ) {
        let mut bytes = (flags & 0xFFFC).to_be_bytes().to_vec();
        bytes.extend_from_slice(&list);
        let _ = BasicProperties::decode(&bytes);
        let _ = set_header(&bytes, "x-delivery-count", FieldValue::I64(1));
    }

    #[test]
    fn amq_protocol_agrees_on_our_encoding(props in arb_properties(true)) {
        let bytes = props.encode();
        let (rest, theirs) = parse_properties(&bytes[..]).expect("amq-protocol parses");
        prop_assert!(rest.is_empty());
        let ours = |s: &Option<ShortStr>| s.as_ref().map(|s| s.to_str().expect("utf-8").to_owned());
        let their = |s: &Option<amq_protocol::types::ShortString>| s.as_ref().map(|s| s.as_str().to_owned());
        prop_assert_eq!(ours(&props.content_type), their(theirs.content_type()));
        prop_assert_eq!(ours(&props.content_encoding), their(theirs.content_encoding()));
        prop_assert_eq!(props.delivery_mode, *theirs.delivery_mode());
        prop_assert_eq!(props.priority, *theirs.priority());
        prop_assert_eq!(ours(&props.correlation_id), their(theirs.correlation_id()));
        prop_assert_eq!(ours(&props.reply_to), their(theirs.reply_to()));
        prop_assert_eq!(ours(&props.expiration), their(theirs.expiration()));
        prop_assert_eq!(ours(&props.message_id), their(theirs.message_id()));
        prop_assert_eq!(props.timestamp, *theirs.timestamp());
        prop_assert_eq!(ours(&props.kind), their(theirs.kind()));
        prop_assert_eq!(ours(&props.user_id), their(theirs.user_id()));
        prop_assert_eq!(ours(&props.app_id), their(theirs.app_id()));
        prop_assert_eq!(ours(&props.cluster_id), their(theirs.cluster_id()));
        prop_assert_eq!(props.headers.is_some(), theirs.headers().is_some());
        if let (Some(ours), Some(theirs)) = (&props.headers, theirs.headers()) {
            // Theirs is a map: the last of duplicate names wins.
            let mut last = std::collections::BTreeMap::new();
            for (name, value) in ours.iter() {
                last.insert(name.to_str().expect("utf-8").to_owned(), value.type_letter() as char);
            }
            let theirs: std::collections::BTreeMap<_, _> = theirs
                .inner()
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.get_type().get_id()))
                .collect();
            prop_assert_eq!(last, theirs);
        }
    }

    #[test]
    fn set_header_keeps_everything_else(
        props in arb_properties(false),
        name in arb_name(false),
        value in crate::amqp::field_table::tests::arb_value(true, false),
    ) {
        let Some(name_str) = name.to_str() else { return Ok(()) };
        let raw = props.encode();
        let edited = set_header(&raw, name_str, value.clone()).expect("valid input");
        let mut expected = props;
        expected.headers.get_or_insert_with(FieldTable::new).set(name, value);
        prop_assert_eq!(BasicProperties::decode(&edited), Ok(expected.clone()));
        prop_assert_eq!(edited, expected.encode());
    }
}

#[test]
fn set_header_appends_after_other_headers_in_order() {
    let mut props = published();
    props.headers.as_mut().expect("headers").0.remove(1);
    let raw = props.encode();
    let edited = set_header(&raw, "x-delivery-count", FieldValue::I64(1)).expect("edits");
    let decoded = BasicProperties::decode(&edited).expect("decodes");
    assert_eq!(header_names(&decoded), ["z", "a", "x-delivery-count"]);
    assert_eq!(
        decoded.headers().and_then(|h| h.get("a")),
        props.headers().and_then(|h| h.get("a"))
    );
    let mut others = decoded.clone();
    others.headers = props.headers.clone();
    assert_eq!(others, props, "no other property changed");
    // Flags and content-type, then the table's length, body, and the rest.
    let (table, old_len, added) = (19, 19, 1 + 16 + 9);
    assert_eq!(edited[..table], raw[..table]);
    assert_eq!(
        edited[table..table + 4],
        ((old_len + added) as u32).to_be_bytes()
    );
    assert_eq!(edited[table + 4..][..old_len], raw[table + 4..][..old_len]);
    assert_eq!(
        edited[table + 4 + old_len + added..],
        raw[table + 4 + old_len..]
    );
}

#[test]
fn set_header_replaces_in_place() {
    let raw = published().encode();
    let edited = set_header(&raw, "x-delivery-count", FieldValue::I64(4)).expect("edits");
    let decoded = BasicProperties::decode(&edited).expect("decodes");
    assert_eq!(header_names(&decoded), ["z", "x-delivery-count", "a"]);
    let count = decoded.headers().and_then(|h| h.get("x-delivery-count"));
    assert_eq!(count, Some(&FieldValue::I64(4)));
    assert_eq!(edited.len(), raw.len(), "same type, same size");
}

#[test]
fn set_header_without_headers_sets_the_flag() {
    let mut props = published();
    props.headers = None;
    props.empty_flag_words = 1;
    let raw = props.encode();
    assert_eq!(
        raw[..4],
        [0b1001_0001, 0b1100_0001, 0, 0],
        "flags words before"
    );
    let edited = set_header(&raw, "x-delivery-count", FieldValue::I64(1)).expect("edits");
    assert_eq!(
        edited[..4],
        [0b1011_0001, 0b1100_0001, 0, 0],
        "headers bit added"
    );
    let mut expected = props;
    let name = ShortStr::from_static("x-delivery-count");
    expected.headers = Some(FieldTable(vec![(name, FieldValue::I64(1))]));
    assert_eq!(BasicProperties::decode(&edited), Ok(expected));
}

/// Octets the codec would normalise are copied, not re-encoded.
#[test]
fn set_header_copies_other_fields_verbatim() {
    // Flags: headers only; table { "b": t 0x02 }.
    let raw = b"\x20\x00\x00\x00\x00\x04\x01bt\x02";
    let edited = set_header(raw, "c", FieldValue::Void).expect("edits");
    assert_eq!(&edited[..], b"\x20\x00\x00\x00\x00\x07\x01bt\x02\x01cV");
}

#[test]
fn set_header_refuses_bad_input() {
    assert!(matches!(
        set_header(b"\x20", "n", FieldValue::Void),
        Err(PropertiesError::Truncated(_))
    ));
    let long = "n".repeat(256);
    let raw = BasicProperties::default().encode();
    assert!(matches!(
        set_header(&raw, &long, FieldValue::Void),
        Err(PropertiesError::NameTooLong(_))
    ));
}

#[test]
fn flags_continuation_words_are_followed() {
    // Priority, continuation; an empty word with continuation; an empty last word.
    let raw = b"\x08\x01\x00\x01\x00\x00\x05";
    let props = BasicProperties::decode(raw).expect("decodes");
    assert_eq!(props.priority, Some(5));
    assert_eq!(props.empty_flag_words, 2);
    assert_eq!(&props.encode()[..], raw);
}

#[test]
fn flags_naming_no_basic_property_are_refused() {
    let err = |word, bits| Err(PropertiesError::UnknownFlags { word, bits });
    assert_eq!(BasicProperties::decode(b"\x00\x02"), err(0, 2));
    assert_eq!(BasicProperties::decode(b"\x00\x01\x80\x00"), err(1, 0x8000));
    assert!(matches!(
        BasicProperties::decode(b"\x00\x01"),
        Err(PropertiesError::Truncated(_))
    ));
    assert!(matches!(
        BasicProperties::decode(b""),
        Err(PropertiesError::Truncated(_))
    ));
}

#[test]
fn octets_after_the_last_property_are_refused() {
    assert_eq!(
        BasicProperties::decode(b"\x00\x00\xff"),
        Err(PropertiesError::TrailingBytes(1))
    );
}

#[test]
fn expiration_ms_parses_whole_milliseconds() {
    let with = |e: Option<&'static str>| BasicProperties {
        expiration: e.map(ShortStr::from_static),
        ..BasicProperties::default()
    };
    assert_eq!(with(None).expiration_ms(), Ok(None));
    assert_eq!(with(Some("60000")).expiration_ms(), Ok(Some(60_000)));
    assert_eq!(with(Some("0")).expiration_ms(), Ok(Some(0)));
    for bad in ["", "-1", "1.5", "abc", " 1"] {
        let invalid = Err(PropertiesError::InvalidExpiration(ShortStr::from_static(
            bad,
        )));
        assert_eq!(with(Some(bad)).expiration_ms(), invalid, "{bad:?}");
    }
}

#[test]
fn accessors_read_the_fields() {
    let props = published();
    assert_eq!(props.delivery_mode(), Some(2));
    assert_eq!(props.expiration().and_then(ShortStr::to_str), Some("60000"));
    assert_eq!(props.user_id(), None);
    assert_eq!(props.headers().map(FieldTable::len), Some(3));
}
