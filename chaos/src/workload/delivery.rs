//! Turning a received delivery into a `deliver` history event, shared by the workload's
//! consumers and the drain.

use lapin::message::Delivery;
use lapin::types::{AMQPValue, ShortString};

use super::body::decode;
use super::conn::Link;
use super::MsgKey;
use crate::history::{Event, Phase};

/// Who received a delivery.
#[derive(Clone, Copy, Debug)]
pub struct Receiver<'a> {
    pub cid: u64,
    pub queue: &'a str,
    pub phase: Phase,
}

/// The event for `delivery` on `link`, and the message it carries when its body checks.
pub fn deliver_event(
    who: Receiver<'_>,
    link: &Link,
    delivery: &Delivery,
) -> (Event, Option<MsgKey>) {
    let decoded = decode(&delivery.data);
    let ids = decoded.ids;
    let event = Event::Deliver {
        cid: who.cid,
        conn: link.conn,
        ch: link.ch,
        queue: who.queue.to_string(),
        node: link.node.clone(),
        pid: ids.pid,
        seq: ids.seq,
        mid: ids.mid,
        redelivered: delivery.redelivered,
        delivery_count: delivery_count(delivery),
        tag: delivery.delivery_tag,
        body_ok: decoded.body_ok,
        phase: who.phase,
    };
    (event, decoded.body_ok.then_some((ids.pid, ids.mid)))
}

/// The `x-delivery-count` header, whichever integer type the broker chose; `None` when
/// absent or not a non-negative integer.
fn delivery_count(delivery: &Delivery) -> Option<u32> {
    let headers = delivery.properties.headers().as_ref()?;
    let value = headers
        .inner()
        .get(&ShortString::from("x-delivery-count"))?;
    let n: i128 = match value {
        AMQPValue::ShortShortInt(n) => (*n).into(),
        AMQPValue::ShortShortUInt(n) => (*n).into(),
        AMQPValue::ShortInt(n) => (*n).into(),
        AMQPValue::ShortUInt(n) => (*n).into(),
        AMQPValue::LongInt(n) => (*n).into(),
        AMQPValue::LongUInt(n) => (*n).into(),
        AMQPValue::LongLongInt(n) => (*n).into(),
        _ => return None,
    };
    u32::try_from(n).ok()
}
