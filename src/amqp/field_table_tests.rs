//! Field tables: round trips over generated tables, totality over random
//! bytes, the nesting limit, and hand-checked encodings of each type letter.

use super::*;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::strategy::Union;

/// Field names: any octets, or (for the amq-protocol oracle, which wants
/// UTF-8) short ASCII words.
pub(crate) fn arb_name(ascii: bool) -> BoxedStrategy<ShortStr> {
    if ascii {
        "[a-z-]{0,12}"
            .prop_map(|s| ShortStr::try_from(s.as_str()).expect("short"))
            .boxed()
    } else {
        vec(any::<u8>(), 0..12)
            .prop_map(|b| ShortStr::new(b).expect("short"))
            .boxed()
    }
}

fn arb_bytes() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..16).prop_map(Bytes::from)
}

/// Leaf values of every type; floats (any bit pattern, NaNs included) only
/// when `floats`, because amq-protocol's values compare floats by value.
fn arb_leaf(floats: bool) -> BoxedStrategy<FieldValue> {
    let mut leaves = vec![
        any::<bool>().prop_map(FieldValue::Bool).boxed(),
        any::<i8>().prop_map(FieldValue::I8).boxed(),
        any::<u8>().prop_map(FieldValue::U8).boxed(),
        any::<i16>().prop_map(FieldValue::I16).boxed(),
        any::<u16>().prop_map(FieldValue::U16).boxed(),
        any::<i32>().prop_map(FieldValue::I32).boxed(),
        any::<u32>().prop_map(FieldValue::U32).boxed(),
        any::<i64>().prop_map(FieldValue::I64).boxed(),
        (any::<u8>(), any::<u32>())
            .prop_map(|(scale, value)| FieldValue::Decimal { scale, value })
            .boxed(),
        arb_bytes().prop_map(FieldValue::LongStr).boxed(),
        arb_bytes().prop_map(FieldValue::ByteArray).boxed(),
        any::<u64>().prop_map(FieldValue::Timestamp).boxed(),
        Just(FieldValue::Void).boxed(),
    ];
    if floats {
        leaves.push(
            any::<u32>()
                .prop_map(|b| FieldValue::F32(f32::from_bits(b)))
                .boxed(),
        );
        leaves.push(
            any::<u64>()
                .prop_map(|b| FieldValue::F64(f64::from_bits(b)))
                .boxed(),
        );
    }
    Union::new(leaves).boxed()
}

/// Values nested up to three tables or arrays deep.
pub(crate) fn arb_value(floats: bool, ascii: bool) -> BoxedStrategy<FieldValue> {
    arb_leaf(floats)
        .prop_recursive(3, 32, 4, move |inner| {
            prop_oneof![
                vec(inner.clone(), 0..4).prop_map(FieldValue::Array),
                vec((arb_name(ascii), inner), 0..4)
                    .prop_map(|fields| FieldValue::Table(FieldTable(fields))),
            ]
        })
        .boxed()
}

/// Tables with up to 6 fields; names drawn from a small set so duplicates
/// occur when `ascii` is false.
pub(crate) fn arb_table(floats: bool, ascii: bool) -> BoxedStrategy<FieldTable> {
    let name = prop_oneof![arb_name(ascii), Just(ShortStr::from_static("x-dup")),];
    vec((name, arb_value(floats, ascii)), 0..6)
        .prop_map(FieldTable)
        .boxed()
}

fn encoded(table: &FieldTable) -> Vec<u8> {
    let mut out = Vec::new();
    table.encode(&mut out);
    out
}

/// A table whose single field `n` holds `inner` (already encoded).
fn wrap_in_table(inner: &[u8]) -> Vec<u8> {
    let mut body = vec![1, b'n'];
    body.extend_from_slice(inner);
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

/// `depth` tables, each the only field of the one outside it.
fn nested_tables(depth: usize) -> Vec<u8> {
    let mut table = 0u32.to_be_bytes().to_vec();
    for _ in 1..depth {
        let mut value = vec![b'F'];
        value.extend_from_slice(&table);
        table = wrap_in_table(&value);
    }
    table
}

/// A table holding arrays nested so the whole is `depth` deep.
fn nested_arrays(depth: usize) -> Vec<u8> {
    let mut array = vec![b'A', 0, 0, 0, 0];
    for _ in 2..depth {
        let mut next = vec![b'A'];
        next.extend_from_slice(&(array.len() as u32).to_be_bytes());
        next.extend_from_slice(&array);
        array = next;
    }
    wrap_in_table(&array)
}

proptest! {
    #[test]
    fn table_round_trip_is_octet_exact(table in arb_table(true, false)) {
        let bytes = encoded(&table);
        let (decoded, rest) = FieldTable::decode(&bytes).expect("own encoding decodes");
        prop_assert!(rest.is_empty());
        prop_assert_eq!(&decoded, &table);
        prop_assert_eq!(encoded(&decoded), bytes);
    }

    #[test]
    fn table_decode_of_random_bytes_never_panics(bytes in vec(any::<u8>(), 0..256)) {
        if let Ok((table, _)) = FieldTable::decode(&bytes) {
            let again = encoded(&table);
            prop_assert_eq!(FieldTable::decode(&again).map(|(t, _)| t), Ok(table));
        }
    }

    /// Random bodies behind a correct length reach the field parser far more
    /// often than fully random input does.
    #[test]
    fn table_decode_of_random_body_never_panics(body in vec(any::<u8>(), 0..256)) {
        let mut bytes = (body.len() as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(&body);
        if let Ok((table, rest)) = FieldTable::decode(&bytes) {
            prop_assert!(rest.is_empty());
            let again = encoded(&table);
            prop_assert_eq!(FieldTable::decode(&again).map(|(t, _)| t), Ok(table));
        }
    }
}

#[test]
fn nesting_up_to_the_limit_decodes() {
    assert!(FieldTable::decode(&nested_tables(FIELD_TABLE_DEPTH_MAX)).is_ok());
    assert!(FieldTable::decode(&nested_arrays(FIELD_TABLE_DEPTH_MAX)).is_ok());
}

#[test]
fn nesting_past_the_limit_is_an_error() {
    let too_deep = FIELD_TABLE_DEPTH_MAX + 1;
    assert_eq!(
        FieldTable::decode(&nested_tables(too_deep)),
        Err(FieldTableError::TooDeep)
    );
    assert_eq!(
        FieldTable::decode(&nested_arrays(too_deep)),
        Err(FieldTableError::TooDeep)
    );
}

/// Far deeper than any stack would survive if decode recursed unchecked.
#[test]
fn very_deep_nesting_is_an_error_not_a_stack_overflow() {
    assert_eq!(
        FieldTable::decode(&nested_tables(10_000)),
        Err(FieldTableError::TooDeep)
    );
    assert_eq!(
        FieldTable::decode(&nested_arrays(10_000)),
        Err(FieldTableError::TooDeep)
    );
}

#[test]
fn order_and_duplicates_are_kept() {
    let table = FieldTable(vec![
        (ShortStr::from_static("b"), FieldValue::I32(1)),
        (ShortStr::from_static("a"), FieldValue::I32(2)),
        (ShortStr::from_static("b"), FieldValue::I32(3)),
    ]);
    let (decoded, _) = FieldTable::decode(&encoded(&table)).expect("decodes");
    assert_eq!(decoded, table);
    assert_eq!(decoded.get("b"), Some(&FieldValue::I32(1)));
}

#[test]
fn type_letters_are_rabbitmqs() {
    let cases: Vec<(FieldValue, &[u8])> = vec![
        (FieldValue::Bool(true), b"t\x01"),
        (FieldValue::I8(-1), b"b\xff"),
        (FieldValue::U8(255), b"B\xff"),
        (FieldValue::I16(-2), b"s\xff\xfe"),
        (FieldValue::U16(2), b"u\x00\x02"),
        (FieldValue::I32(-3), b"I\xff\xff\xff\xfd"),
        (FieldValue::U32(3), b"i\x00\x00\x00\x03"),
        (FieldValue::I64(-1), b"l\xff\xff\xff\xff\xff\xff\xff\xff"),
        (FieldValue::F32(1.0), b"f\x3f\x80\x00\x00"),
        (FieldValue::F64(1.0), b"d\x3f\xf0\x00\x00\x00\x00\x00\x00"),
        (
            FieldValue::Decimal { scale: 2, value: 5 },
            b"D\x02\x00\x00\x00\x05",
        ),
        (
            FieldValue::LongStr(Bytes::from_static(b"\xffz")),
            b"S\x00\x00\x00\x02\xffz",
        ),
        (
            FieldValue::ByteArray(Bytes::from_static(b"q")),
            b"x\x00\x00\x00\x01q",
        ),
        (
            FieldValue::Array(vec![FieldValue::Void]),
            b"A\x00\x00\x00\x01V",
        ),
        (
            FieldValue::Timestamp(7),
            b"T\x00\x00\x00\x00\x00\x00\x00\x07",
        ),
        (FieldValue::Table(FieldTable::new()), b"F\x00\x00\x00\x00"),
        (FieldValue::Void, b"V"),
    ];
    for (value, wire) in cases {
        let mut out = Vec::new();
        value.encode(&mut out);
        assert_eq!(out, wire, "{value:?}");
        assert_eq!(FieldValue::decode(wire), Ok((value, &[][..])));
    }
}

#[test]
fn nan_payloads_survive_a_round_trip() {
    let wire = b"f\x7f\xc0\x12\x34";
    let (value, _) = FieldValue::decode(wire).expect("decodes");
    assert_eq!(value, value.clone(), "NaN equals itself by bits");
    let mut out = Vec::new();
    value.encode(&mut out);
    assert_eq!(out, wire);
}

/// The one documented normalisation: RabbitMQ reads any non-zero octet as
/// true, and so do we, but true is written back as 1.
#[test]
fn non_canonical_boolean_reads_true_and_writes_one() {
    assert_eq!(
        FieldValue::decode(b"t\x02"),
        Ok((FieldValue::Bool(true), &[][..]))
    );
}

#[test]
fn malformed_input_is_an_error() {
    assert_eq!(
        FieldValue::decode(b"Z"),
        Err(FieldTableError::UnknownType(b'Z'))
    );
    assert!(matches!(
        FieldValue::decode(b"I\x00"),
        Err(FieldTableError::Truncated(_))
    ));
    // Length says 3 octets of body, but the field inside needs more.
    assert!(matches!(
        FieldTable::decode(b"\x00\x00\x00\x03\x01aI"),
        Err(FieldTableError::Truncated(_))
    ));
    assert!(matches!(
        FieldTable::decode(b"\x00\x00"),
        Err(FieldTableError::Truncated(_))
    ));
}

#[test]
fn as_i64_widens_every_integer_type() {
    assert_eq!(FieldValue::U8(7).as_i64(), Some(7));
    assert_eq!(FieldValue::I16(-7).as_i64(), Some(-7));
    assert_eq!(
        FieldValue::U32(u32::MAX).as_i64(),
        Some(i64::from(u32::MAX))
    );
    assert_eq!(FieldValue::I64(i64::MIN).as_i64(), Some(i64::MIN));
    assert_eq!(FieldValue::LongStr(Bytes::new()).as_i64(), None);
}

#[test]
fn set_replaces_in_place_or_appends() {
    let mut table = FieldTable(vec![
        (ShortStr::from_static("a"), FieldValue::Void),
        (ShortStr::from_static("b"), FieldValue::Void),
    ]);
    table.set(ShortStr::from_static("a"), FieldValue::U8(1));
    table.set(ShortStr::from_static("c"), FieldValue::U8(2));
    let names: Vec<_> = table.iter().map(|(n, _)| n.to_str()).collect();
    assert_eq!(names, [Some("a"), Some("b"), Some("c")]);
    assert_eq!(table.get("a"), Some(&FieldValue::U8(1)));
}
