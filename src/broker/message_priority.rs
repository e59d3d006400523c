//! A message's `priority` property, read from the raw content-header properties the log
//! carries (`Content::properties`, kept verbatim), for priority queues (`x-max-priority`).
//!
//! Reading it in apply rather than having the front end send it keeps the `Publish` command
//! as it is: every node reads the same bytes, so every node finds the same priority. Only
//! what comes before `priority` in the first flags word is walked (content-type,
//! content-encoding, headers, delivery-mode); properties cut short give 0, the priority of
//! a message without one. Never panics on any bytes (architecture invariant 5).

/// Bit of each property in the first flags word (AMQP 0-9-1, basic class).
const CONTENT_TYPE: u16 = 1 << 15;
const CONTENT_ENCODING: u16 = 1 << 14;
const HEADERS: u16 = 1 << 13;
const DELIVERY_MODE: u16 = 1 << 12;
const PRIORITY: u16 = 1 << 11;

/// The `priority` property of `properties`; 0 when it is absent or cannot be read.
pub fn message_priority(properties: &[u8]) -> u8 {
    read(properties).unwrap_or(0)
}

fn read(properties: &[u8]) -> Option<u8> {
    let flags = u16::from_be_bytes([*properties.first()?, *properties.get(1)?]);
    if flags & PRIORITY == 0 {
        return None;
    }
    let mut at = 2usize;
    for short_string in [CONTENT_TYPE, CONTENT_ENCODING] {
        if flags & short_string != 0 {
            at = at.checked_add(1 + usize::from(*properties.get(at)?))?;
        }
    }
    if flags & HEADERS != 0 {
        let len = properties.get(at..at.checked_add(4)?)?;
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]);
        at = at.checked_add(4)?.checked_add(usize::try_from(len).ok()?)?;
    }
    if flags & DELIVERY_MODE != 0 {
        at = at.checked_add(1)?;
    }
    properties.get(at).copied()
}

#[cfg(test)]
#[path = "message_priority_tests.rs"]
mod tests;
