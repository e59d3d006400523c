//! AMQP field tables and field values, decoded without losing order.
//!
//! amq-protocol decodes a table into a `BTreeMap`, which sorts the fields and
//! drops duplicate names. The broker must edit message headers (add
//! `x-delivery-count`, `x-death`) while handing every other field back as the
//! publisher wrote it, so this codec keeps fields in a `Vec` in wire order.
//!
//! Type letters are RabbitMQ's (the "0-9-1 errata" that amq-protocol 10 also
//! follows), not the ones in the 0-9-1 spec document: `s` is a signed 16-bit
//! integer, `l` a signed 64-bit one, `x` a byte array.
//!
//! Decoding is total: any input gives `Ok` or `Err`, never a panic, and
//! nesting is bounded by [`FIELD_TABLE_DEPTH_MAX`] so the recursion is too.
//! For every table that decodes, `encode` writes back the same octets, with
//! one exception: a boolean octet other than 0 or 1 decodes as `true` (as in
//! RabbitMQ) and is written back as 1.

use super::short_str::ShortStr;
use super::wire::{write_long_prefixed, Reader, Truncated};
use bytes::Bytes;

/// Deepest nesting of tables and arrays that decodes; a top-level table is
/// depth 1. RabbitMQ's own headers (`x-death`: array of tables) use 3.
pub const FIELD_TABLE_DEPTH_MAX: usize = 64;

/// Why a field table or value did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldTableError {
    #[error(transparent)]
    Truncated(#[from] Truncated),
    /// A type letter RabbitMQ does not know.
    #[error("unknown field value type {0:#04x}")]
    UnknownType(u8),
    /// Tables or arrays nested deeper than [`FIELD_TABLE_DEPTH_MAX`].
    #[error("field tables nested deeper than {FIELD_TABLE_DEPTH_MAX}")]
    TooDeep,
}

/// One field value, tagged on the wire by a type letter.
///
/// Equality compares floats by bit pattern, so that a NaN equals itself and
/// `decode(encode(x)) == x` holds for every value.
#[derive(Debug, Clone)]
pub enum FieldValue {
    /// `t`: one octet, non-zero is true.
    Bool(bool),
    /// `b`
    I8(i8),
    /// `B`
    U8(u8),
    /// `s`
    I16(i16),
    /// `u`
    U16(u16),
    /// `I`
    I32(i32),
    /// `i`
    U32(u32),
    /// `l`
    I64(i64),
    /// `f`
    F32(f32),
    /// `d`
    F64(f64),
    /// `D`: `value / 10^scale`.
    Decimal { scale: u8, value: u32 },
    /// `S`: u32 length, then octets (not necessarily UTF-8).
    LongStr(Bytes),
    /// `x`: u32 length, then octets.
    ByteArray(Bytes),
    /// `A`: u32 length in octets, then type-tagged values.
    Array(Vec<FieldValue>),
    /// `T`: seconds since the Unix epoch.
    Timestamp(u64),
    /// `F`: a nested table.
    Table(FieldTable),
    /// `V`: no value.
    Void,
}

/// A field table: named values in wire order, duplicates kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldTable(pub Vec<(ShortStr, FieldValue)>);

impl FieldValue {
    /// The type letter that tags this value on the wire.
    pub fn type_letter(&self) -> u8 {
        match self {
            FieldValue::Bool(_) => b't',
            FieldValue::I8(_) => b'b',
            FieldValue::U8(_) => b'B',
            FieldValue::I16(_) => b's',
            FieldValue::U16(_) => b'u',
            FieldValue::I32(_) => b'I',
            FieldValue::U32(_) => b'i',
            FieldValue::I64(_) => b'l',
            FieldValue::F32(_) => b'f',
            FieldValue::F64(_) => b'd',
            FieldValue::Decimal { .. } => b'D',
            FieldValue::LongStr(_) => b'S',
            FieldValue::ByteArray(_) => b'x',
            FieldValue::Array(_) => b'A',
            FieldValue::Timestamp(_) => b'T',
            FieldValue::Table(_) => b'F',
            FieldValue::Void => b'V',
        }
    }

    /// The value of any integer type, widened; `None` for other types.
    ///
    /// Lets the broker read a counter such as `x-delivery-count` whatever
    /// integer type the publisher or a previous broker chose.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            FieldValue::I8(v) => Some(v.into()),
            FieldValue::U8(v) => Some(v.into()),
            FieldValue::I16(v) => Some(v.into()),
            FieldValue::U16(v) => Some(v.into()),
            FieldValue::I32(v) => Some(v.into()),
            FieldValue::U32(v) => Some(v.into()),
            FieldValue::I64(v) => Some(v),
            _ => None,
        }
    }

    /// Decode one type-tagged value from the front of `buf`; returns it and
    /// the unread rest.
    pub fn decode(buf: &[u8]) -> Result<(FieldValue, &[u8]), FieldTableError> {
        let mut r = Reader::new(buf);
        let value = FieldValue::read(&mut r, 1)?;
        Ok((value, r.rest()))
    }

    /// Read a type letter and its value. `depth` is that of the enclosing
    /// table or array.
    pub(crate) fn read(r: &mut Reader<'_>, depth: usize) -> Result<Self, FieldTableError> {
        let letter = r.u8("field value type")?;
        let value = match letter {
            b't' => FieldValue::Bool(r.u8("bool")? != 0),
            b'b' => FieldValue::I8(i8::from_be_bytes([r.u8("i8")?])),
            b'B' => FieldValue::U8(r.u8("u8")?),
            b's' => FieldValue::I16(r.u16("i16")? as i16),
            b'u' => FieldValue::U16(r.u16("u16")?),
            b'I' => FieldValue::I32(r.u32("i32")? as i32),
            b'i' => FieldValue::U32(r.u32("u32")?),
            b'l' => FieldValue::I64(r.u64("i64")? as i64),
            b'f' => FieldValue::F32(f32::from_bits(r.u32("f32")?)),
            b'd' => FieldValue::F64(f64::from_bits(r.u64("f64")?)),
            b'D' => FieldValue::Decimal {
                scale: r.u8("decimal")?,
                value: r.u32("decimal")?,
            },
            b'S' => FieldValue::LongStr(Bytes::copy_from_slice(r.long_bytes("long string")?)),
            b'x' => FieldValue::ByteArray(Bytes::copy_from_slice(r.long_bytes("byte array")?)),
            b'A' => FieldValue::Array(read_array(r, depth + 1)?),
            b'T' => FieldValue::Timestamp(r.u64("timestamp")?),
            b'F' => FieldValue::Table(FieldTable::read(r, depth + 1)?),
            b'V' => FieldValue::Void,
            other => return Err(FieldTableError::UnknownType(other)),
        };
        Ok(value)
    }

    /// Append the type letter and the value.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.type_letter());
        match self {
            FieldValue::Bool(v) => out.push(u8::from(*v)),
            FieldValue::I8(v) => out.extend_from_slice(&v.to_be_bytes()),
            FieldValue::U8(v) => out.push(*v),
            FieldValue::I16(v) => out.extend_from_slice(&v.to_be_bytes()),
            FieldValue::U16(v) => out.extend_from_slice(&v.to_be_bytes()),
            FieldValue::I32(v) => out.extend_from_slice(&v.to_be_bytes()),
            FieldValue::U32(v) => out.extend_from_slice(&v.to_be_bytes()),
            FieldValue::I64(v) => out.extend_from_slice(&v.to_be_bytes()),
            FieldValue::F32(v) => out.extend_from_slice(&v.to_bits().to_be_bytes()),
            FieldValue::F64(v) => out.extend_from_slice(&v.to_bits().to_be_bytes()),
            FieldValue::Decimal { scale, value } => {
                out.push(*scale);
                out.extend_from_slice(&value.to_be_bytes());
            }
            FieldValue::LongStr(b) | FieldValue::ByteArray(b) => {
                write_long_prefixed(out, |out| out.extend_from_slice(b))
            }
            FieldValue::Array(values) => write_long_prefixed(out, |out| {
                values.iter().for_each(|v| v.encode(out));
            }),
            FieldValue::Timestamp(v) => out.extend_from_slice(&v.to_be_bytes()),
            FieldValue::Table(table) => table.encode(out),
            FieldValue::Void => {}
        }
    }
}

/// Read an array's u32 length and the values inside it.
fn read_array(r: &mut Reader<'_>, depth: usize) -> Result<Vec<FieldValue>, FieldTableError> {
    if depth > FIELD_TABLE_DEPTH_MAX {
        return Err(FieldTableError::TooDeep);
    }
    let mut inner = Reader::new(r.long_bytes("field array")?);
    let mut values = Vec::new();
    while !inner.is_empty() {
        values.push(FieldValue::read(&mut inner, depth)?);
    }
    Ok(values)
}

impl PartialEq for FieldValue {
    fn eq(&self, other: &Self) -> bool {
        use FieldValue as V;
        match (self, other) {
            // Bit patterns, so NaN == NaN and 0.0 != -0.0, as on the wire.
            (V::F32(a), V::F32(b)) => a.to_bits() == b.to_bits(),
            (V::F64(a), V::F64(b)) => a.to_bits() == b.to_bits(),
            (V::Bool(a), V::Bool(b)) => a == b,
            (V::I8(a), V::I8(b)) => a == b,
            (V::U8(a), V::U8(b)) => a == b,
            (V::I16(a), V::I16(b)) => a == b,
            (V::U16(a), V::U16(b)) => a == b,
            (V::I32(a), V::I32(b)) => a == b,
            (V::U32(a), V::U32(b)) => a == b,
            (V::I64(a), V::I64(b)) => a == b,
            (V::Decimal { scale: s, value: v }, V::Decimal { scale: t, value: w }) => {
                s == t && v == w
            }
            (V::LongStr(a), V::LongStr(b)) => a == b,
            (V::ByteArray(a), V::ByteArray(b)) => a == b,
            (V::Array(a), V::Array(b)) => a == b,
            (V::Timestamp(a), V::Timestamp(b)) => a == b,
            (V::Table(a), V::Table(b)) => a == b,
            (V::Void, V::Void) => true,
            _ => false,
        }
    }
}

impl Eq for FieldValue {}

impl FieldTable {
    pub fn new() -> Self {
        FieldTable(Vec::new())
    }

    /// Decode a table (u32 length, then fields) from the front of `buf`;
    /// returns it and the unread rest.
    pub fn decode(buf: &[u8]) -> Result<(FieldTable, &[u8]), FieldTableError> {
        let mut r = Reader::new(buf);
        let table = FieldTable::read(&mut r, 1)?;
        Ok((table, r.rest()))
    }

    /// Read a table at nesting `depth` (1 for a top-level table).
    pub(crate) fn read(r: &mut Reader<'_>, depth: usize) -> Result<Self, FieldTableError> {
        if depth > FIELD_TABLE_DEPTH_MAX {
            return Err(FieldTableError::TooDeep);
        }
        let mut inner = Reader::new(r.long_bytes("field table")?);
        let mut fields = Vec::new();
        while !inner.is_empty() {
            let name = read_field_name(&mut inner)?;
            let value = FieldValue::read(&mut inner, depth)?;
            fields.push((name, value));
        }
        Ok(FieldTable(fields))
    }

    /// Append the u32 length and the fields in order.
    pub fn encode(&self, out: &mut Vec<u8>) {
        write_long_prefixed(out, |out| {
            for (name, value) in &self.0 {
                name.encode(out);
                value.encode(out);
            }
        });
    }

    /// The value of the first field called `name`.
    pub fn get(&self, name: &str) -> Option<&FieldValue> {
        self.0
            .iter()
            .find(|(n, _)| n.as_bytes() == name.as_bytes())
            .map(|(_, v)| v)
    }

    /// Replace the value of the first field called `name`, keeping its
    /// position, or append the field if there is none.
    pub fn set(&mut self, name: ShortStr, value: FieldValue) {
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some((_, old)) => *old = value,
            None => self.0.push((name, value)),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &(ShortStr, FieldValue)> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A field name is a short string.
pub(crate) fn read_field_name(r: &mut Reader<'_>) -> Result<ShortStr, FieldTableError> {
    Ok(ShortStr::from_wire(r.short_bytes("field name")?))
}

#[cfg(test)]
#[path = "field_table_tests.rs"]
pub(crate) mod tests;
