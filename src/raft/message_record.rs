//! A stored message without its body: how the message store and snapshot files encode the
//! rest of it (postcard). A compatibility boundary inside the snapshot format
//! (docs/formats.md): a change here bumps `SNAPSHOT_FORMAT_VERSION`.

use std::io;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::broker::dead_letter::{Death, DeathReason};
use crate::broker::exchange::HeaderValue;
use crate::broker::state::StoredMessage;

/// The fields of a [`StoredMessage`] but its body, borrowed for encoding.
#[derive(Serialize)]
struct RecordOut<'a> {
    properties: &'a Bytes,
    exchange: &'a str,
    routing_key: &'a str,
    n_holders: u32,
    headers: &'a [(String, HeaderValue)],
    deaths: &'a [Death],
    first_death: &'a Option<(String, DeathReason, String)>,
}

/// The same fields, owned, for decoding (the same postcard layout as [`RecordOut`]).
#[derive(Deserialize)]
struct RecordIn {
    properties: Bytes,
    exchange: String,
    routing_key: String,
    n_holders: u32,
    headers: Vec<(String, HeaderValue)>,
    deaths: Vec<Death>,
    first_death: Option<(String, DeathReason, String)>,
}

/// `message`'s record: everything but its body.
pub fn encode(message: &StoredMessage) -> io::Result<Vec<u8>> {
    let record = RecordOut {
        properties: &message.content.properties,
        exchange: &message.exchange,
        routing_key: &message.routing_key,
        n_holders: message.n_holders,
        headers: &message.headers,
        deaths: &message.deaths,
        first_death: &message.first_death,
    };
    postcard::to_stdvec(&record).map_err(io::Error::other)
}

/// The message a record and its body make; the record must be exactly one.
pub fn decode(record: &[u8], body: Bytes) -> io::Result<StoredMessage> {
    let bad = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    let (r, rest): (RecordIn, _) =
        postcard::take_from_bytes(record).map_err(|e| bad(format!("message record: {e}")))?;
    if !rest.is_empty() {
        return Err(bad("message record: bytes after it".into()));
    }
    Ok(StoredMessage {
        content: crate::broker::command::Content {
            properties: r.properties,
            body,
        },
        exchange: r.exchange,
        routing_key: r.routing_key,
        n_holders: r.n_holders,
        headers: r.headers,
        deaths: r.deaths,
        first_death: r.first_death,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::command::Content;

    #[test]
    fn a_record_round_trips_and_leaves_the_body_out() {
        let message = StoredMessage {
            content: Content {
                properties: Bytes::from_static(b"\x10\x00\x02"),
                body: Bytes::from_static(b"the body"),
            },
            exchange: "x".into(),
            routing_key: "k".into(),
            n_holders: 3,
            headers: vec![("h".into(), HeaderValue::Str("v".into()))],
            deaths: vec![Death {
                queue: "q".into(),
                reason: DeathReason::Expired,
                exchange: "x".into(),
                routing_keys: vec!["k".into()],
                count: 2,
                time_ms: 77,
            }],
            first_death: Some(("q".into(), DeathReason::Expired, "x".into())),
        };
        let record = encode(&message).expect("encode");
        assert!(!record.windows(8).any(|w| w == b"the body"));
        let back = decode(&record, message.content.body.clone()).expect("decode");
        assert_eq!(back, message);
        let mut longer = record.clone();
        longer.push(0);
        assert!(decode(&longer, Bytes::new()).is_err());
        assert!(decode(&record[..record.len() - 1], Bytes::new()).is_err());
    }
}
