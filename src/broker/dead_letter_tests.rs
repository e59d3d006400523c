//! Tests of dead-lettering through `BrokerState::apply`: each reason, x-death bookkeeping,
//! dropped dead letters and RabbitMQ's cycle rule.

use super::*;
use crate::broker::command::{Command, Reply};
use crate::broker::exchange::{ExchangeKind, HeaderValue};
use crate::broker::test_support::*;

/// A queue whose dead letters go to exchange `dlx`.
fn dlx_args(dlx: &str) -> Vec<(String, HeaderValue)> {
    vec![arg("x-dead-letter-exchange", str_value(dlx))]
}

/// A queue whose dead letters go straight to queue `to` (default exchange).
fn dead_letter_to(to: &str) -> Vec<(String, HeaderValue)> {
    vec![
        arg("x-dead-letter-exchange", str_value("")),
        arg("x-dead-letter-routing-key", str_value(to)),
    ]
}

/// "work" dead-letters through fanout exchange "dlx" into "dead"; `extra` adds arguments.
fn work_and_dead(extra: Vec<(String, HeaderValue)>) -> BrokerState {
    let mut s = BrokerState::default();
    assert!(s
        .apply(0, exchange_declare("dlx", ExchangeKind::Fanout))
        .reply
        .is_ok());
    let mut arguments = dlx_args("dlx");
    arguments.extend(extra);
    declare_with(&mut s, "work", arguments);
    declare(&mut s, "dead");
    bind(&mut s, "dead", "dlx", "");
    s
}

fn death(queue: &str, reason: DeathReason, exchange: &str, key: &str, time_ms: u64) -> Death {
    Death {
        queue: queue.into(),
        reason,
        exchange: exchange.into(),
        routing_keys: vec![key.into()],
        count: 1,
        time_ms,
    }
}

/// The ids of the messages `queue` holds (ready first, oldest first, then checked out).
fn held(s: &BrokerState, queue: &str) -> Vec<u64> {
    s.vhosts["/"].queues[queue].queue.all_msg_ids()
}

#[test]
fn a_rejected_message_is_dead_lettered_with_one_death_and_shared_content() {
    let mut s = work_and_dead(Vec::new());
    declare(&mut s, "audit");
    bind(&mut s, "work", "amq.direct", "task");
    bind(&mut s, "audit", "amq.direct", "task");
    publish_at(&mut s, 1000, "amq.direct", "task", Vec::new());
    assert_eq!(get_id(&mut s, 1000, "work", false), Some(1));
    assert_eq!(reject(&mut s, 5000, "work", vec![1]).reply, Ok(Reply::Done));

    let original = s.message(1).expect("audit still holds the original");
    assert!(original.deaths.is_empty() && original.n_holders == 1);
    let copy = s.message(2).expect("the dead-lettered copy");
    assert_eq!(
        (copy.exchange.as_str(), copy.routing_key.as_str()),
        ("dlx", "task")
    );
    let first = death("work", DeathReason::Rejected, "amq.direct", "task", 5000);
    assert_eq!(copy.deaths, vec![first]);
    let first_death = (
        "work".to_string(),
        DeathReason::Rejected,
        "amq.direct".to_string(),
    );
    assert_eq!(copy.first_death, Some(first_death));
    assert_eq!(
        copy.content.body.as_ptr(),
        original.content.body.as_ptr(),
        "the copy shares the body"
    );
    assert_eq!(held(&s, "dead"), vec![2]);
    assert!(held(&s, "work").is_empty());
}

#[test]
fn a_second_rejection_in_the_same_queue_counts_on_its_entry_and_moves_it_first() {
    let mut s = BrokerState::default();
    declare_with(&mut s, "work", dead_letter_to("retry"));
    declare_with(&mut s, "retry", dead_letter_to("work"));
    publish_at(&mut s, 0, "", "work", Vec::new());
    let mut id = 1;
    for (now_ms, queue) in [(10, "work"), (20, "retry"), (30, "work")] {
        assert_eq!(get_id(&mut s, now_ms, queue, false), Some(id));
        reject(&mut s, now_ms, queue, vec![id]);
        id += 1;
        assert!(s.message(id).is_some(), "rejections always dead-letter");
    }
    let copy = s.message(id).expect("the third copy");
    let mut work = death("work", DeathReason::Rejected, "", "work", 10);
    work.count = 2;
    let retry = death("retry", DeathReason::Rejected, "", "retry", 20);
    assert_eq!(copy.deaths, vec![work, retry]);
    assert_eq!(copy.routing_key, "retry");
    assert_eq!(s.messages.len(), 1);
}

#[test]
fn an_expired_head_is_dead_lettered_and_delivered_in_the_same_outcome() {
    let ttl = vec![arg("x-message-ttl", HeaderValue::Int(100))];
    let mut s = work_and_dead(ttl);
    assert!(consume(&mut s, "dead", "c", false).reply.is_ok());
    publish_at(&mut s, 1000, "", "work", Vec::new());
    let out = s.apply(1100, Command::Tick);
    assert_eq!(out.deliveries.len(), 1);
    assert_eq!(out.deliveries[0].0, "dead");
    let copy = s.message(out.deliveries[0].1.msg_id).expect("copy");
    let expired = death("work", DeathReason::Expired, "", "work", 1100);
    assert_eq!(copy.deaths, vec![expired]);
    assert!(s.message(1).is_none());
}

#[test]
fn without_a_dead_letter_exchange_or_a_route_the_message_is_dropped() {
    let mut s = BrokerState::default();
    declare_with(&mut s, "missing", dlx_args("nope"));
    declare(&mut s, "plain");
    declare_with(&mut s, "unrouted", dlx_args("amq.direct"));
    for queue in ["missing", "plain", "unrouted"] {
        publish_at(&mut s, 0, "", queue, Vec::new());
        let id = get_id(&mut s, 0, queue, false).expect("published");
        assert_eq!(reject(&mut s, 0, queue, vec![id]).reply, Ok(Reply::Done));
    }
    assert!(s.messages.is_empty());
    assert!(s.vhosts["/"]
        .queues
        .values()
        .all(|e| e.queue.n_ready() == 0));
}

#[test]
fn an_automatic_expiry_cycle_is_dropped_but_a_retry_loop_with_a_rejection_is_not() {
    let ttl = |to: &str| {
        let mut arguments = dead_letter_to(to);
        arguments.push(arg("x-message-ttl", HeaderValue::Int(10)));
        arguments
    };
    let mut s = BrokerState::default();
    declare_with(&mut s, "a", ttl("b"));
    declare_with(&mut s, "b", ttl("a"));
    publish_at(&mut s, 0, "", "a", Vec::new());
    s.apply(10, Command::Tick);
    assert_eq!(
        s.vhosts["/"].queues["b"].queue.n_ready(),
        1,
        "first expiry moves on"
    );
    s.apply(20, Command::Tick);
    assert!(s.messages.is_empty(), "back into 'a' would cycle for ever");

    let mut s = BrokerState::default();
    declare_with(&mut s, "work", dead_letter_to("retry"));
    declare_with(&mut s, "retry", ttl("work"));
    publish_at(&mut s, 0, "", "work", Vec::new());
    for round in 0..3u64 {
        let now_ms = round * 100;
        let id = get_id(&mut s, now_ms, "work", false).expect("back in work");
        reject(&mut s, now_ms, "work", vec![id]);
        s.apply(now_ms + 10, Command::Tick);
    }
    let id = get_id(&mut s, 300, "work", false).expect("still retrying");
    let copy = s.message(id).expect("copy");
    let counts: Vec<(&str, DeathReason, u64)> = copy
        .deaths
        .iter()
        .map(|d| (d.queue.as_str(), d.reason, d.count))
        .collect();
    let expected = vec![
        ("retry", DeathReason::Expired, 3),
        ("work", DeathReason::Rejected, 3),
    ];
    assert_eq!(counts, expected);
}

#[test]
fn maxlen_drop_head_and_reject_publish_dlx_dead_letter_with_reason_maxlen() {
    let max = vec![arg("x-max-length", HeaderValue::Int(1))];
    let mut s = work_and_dead(max);
    publish_at(&mut s, 0, "", "work", Vec::new());
    publish_at(&mut s, 0, "", "work", Vec::new());
    let dropped = s.message(3).expect("the oldest went to dead");
    assert_eq!(dropped.deaths[0].reason, DeathReason::Maxlen);
    assert_eq!(held(&s, "work"), vec![2]);

    let overflow = vec![
        arg("x-max-length", HeaderValue::Int(1)),
        arg("x-overflow", str_value("reject-publish-dlx")),
    ];
    let mut s = work_and_dead(overflow);
    publish_at(&mut s, 0, "", "work", Vec::new());
    let refused = publish_at(&mut s, 0, "", "work", Vec::new());
    let published = Reply::Published {
        msg_id: 2,
        n_queues: 1,
        rejected_by: 1,
    };
    assert_eq!(refused.reply, Ok(published));
    assert_eq!(held(&s, "work"), vec![1]);
    assert_eq!(held(&s, "dead"), vec![3]);
    assert_eq!(
        s.message(3).expect("copy").deaths[0].reason,
        DeathReason::Maxlen
    );
    assert!(s.message(2).is_none());
}

#[test]
fn a_return_past_the_delivery_limit_is_dead_lettered() {
    let limit = vec![arg("x-delivery-limit", HeaderValue::Int(1))];
    let mut s = work_and_dead(limit);
    publish_at(&mut s, 0, "", "work", Vec::new());
    for _ in 0..2 {
        assert_eq!(get_id(&mut s, 0, "work", false), Some(1));
        s.apply(
            0,
            Command::ChannelClosed {
                conn: 1,
                channel: 1,
            },
        );
    }
    let copy = s.message(2).expect("dead-lettered on the second return");
    assert_eq!(copy.deaths[0].reason, DeathReason::DeliveryLimit);
    assert!(held(&s, "work").is_empty());
}

#[test]
fn dead_letters_route_by_headers_through_internal_exchanges_to_no_ack_consumers() {
    let mut s = BrokerState::default();
    let internal = ExchangeDecl {
        internal: true,
        ..ExchangeDecl::new("dlx", ExchangeKind::Headers)
    };
    assert!(s.apply(0, internal.command()).reply.is_ok());
    declare_with(&mut s, "work", dlx_args("dlx"));
    declare(&mut s, "dead");
    let bind_kind = Command::QueueBind {
        queue: "dead".into(),
        exchange: "dlx".into(),
        routing_key: String::new(),
        arguments: vec![arg("kind", str_value("a"))],
        conn: 1,
    };
    assert_eq!(s.apply(0, bind_kind).reply, Ok(Reply::Done));
    assert!(consume(&mut s, "dead", "c", true).reply.is_ok());
    publish_at(&mut s, 0, "", "work", vec![arg("kind", str_value("a"))]);
    publish_at(&mut s, 0, "", "work", vec![arg("kind", str_value("b"))]);
    assert_eq!(get_id(&mut s, 0, "work", false), Some(1));
    let out = reject(&mut s, 0, "work", vec![1]);
    assert_eq!(
        out.deliveries.len(),
        1,
        "the copy goes to the no_ack consumer"
    );
    assert_eq!(out.released.len(), 1, "and is handed over with the outcome");
    assert_eq!(out.released[0].1.deaths.len(), 1);
    assert_eq!(get_id(&mut s, 0, "work", false), Some(2));
    reject(&mut s, 0, "work", vec![2]);
    assert!(s.messages.is_empty(), "kind=b matches no binding");
}

#[test]
fn reject_and_dead_letters_round_trip_through_postcard() {
    let command = Command::Reject {
        queue: "work".into(),
        msg_ids: vec![1, 2],
        conn: 3,
        channel: 4,
    };
    let bytes = postcard::to_stdvec(&command).expect("encode command");
    assert_eq!(
        postcard::from_bytes::<Command>(&bytes).expect("decode"),
        command
    );
    let mut s = work_and_dead(Vec::new());
    publish_at(&mut s, 0, "", "work", vec![arg("k", HeaderValue::Int(1))]);
    get_id(&mut s, 0, "work", false);
    reject(&mut s, 7, "work", vec![1]);
    assert_eq!(s.message(2).expect("copy").headers.len(), 1);
    let bytes = postcard::to_stdvec(&s).expect("encode state");
    assert_eq!(
        postcard::from_bytes::<BrokerState>(&bytes).expect("decode"),
        s
    );
}

#[test]
fn record_death_and_is_cycle_follow_rabbitmq() {
    let mut deaths = Vec::new();
    record_death(&mut deaths, death("a", DeathReason::Expired, "x", "k", 1));
    record_death(&mut deaths, death("b", DeathReason::Rejected, "y", "k", 2));
    record_death(&mut deaths, death("a", DeathReason::Expired, "z", "j", 3));
    assert_eq!((deaths[0].queue.as_str(), deaths[0].count), ("a", 2));
    assert_eq!((deaths[0].exchange.as_str(), deaths[0].time_ms), ("x", 1));
    assert!(
        is_cycle("a", &deaths),
        "the newest entry for 'a' is automatic"
    );
    assert!(!is_cycle("b", &deaths), "a rejection breaks the cycle");
    assert!(!is_cycle("c", &deaths));
    assert_eq!(DeathReason::DeliveryLimit.as_str(), "delivery_limit");
}

/// A queue that keeps nothing (x-max-length 0) and dead-letters to `dlx` with `extra`.
fn no_room(dlx: &str, extra: Vec<(String, HeaderValue)>) -> Vec<(String, HeaderValue)> {
    let mut arguments = dlx_args(dlx);
    arguments.push(arg("x-max-length", HeaderValue::Int(0)));
    arguments.extend(extra);
    arguments
}

#[test]
fn automatic_deaths_through_a_fanout_dead_letter_exchange_end_within_the_command() {
    let mut s = BrokerState::default();
    assert!(s
        .apply(0, exchange_declare("fan", ExchangeKind::Fanout))
        .reply
        .is_ok());
    for q in ["q1", "q2", "q3", "q4"] {
        declare_with(&mut s, q, no_room("fan", Vec::new()));
        bind(&mut s, q, "fan", "");
    }
    let out = publish_at(&mut s, 0, "", "q1", Vec::new());
    assert_eq!(out.reply.map(|_| ()), Ok(()));
    assert!(
        s.messages.is_empty(),
        "every path ends at a queue it died in"
    );
}

#[test]
fn a_dead_letter_chain_longer_than_the_round_bound_is_cut() {
    let mut s = BrokerState::default();
    let hops = DEAD_LETTER_ROUNDS_MAX + 2;
    for i in 0..hops {
        let next = format!("q{}", i + 1);
        let to = vec![arg("x-dead-letter-routing-key", str_value(&next))];
        declare_with(&mut s, &format!("q{i}"), no_room("", to));
    }
    declare(&mut s, &format!("q{hops}"));
    publish_at(&mut s, 0, "", "q0", Vec::new());
    assert!(
        s.messages.is_empty(),
        "cut after {DEAD_LETTER_ROUNDS_MAX} rounds"
    );

    let mut s = BrokerState::default();
    let hops = DEAD_LETTER_ROUNDS_MAX - 1;
    for i in 0..hops {
        let next = format!("q{}", i + 1);
        let to = vec![arg("x-dead-letter-routing-key", str_value(&next))];
        declare_with(&mut s, &format!("q{i}"), no_room("", to));
    }
    declare(&mut s, &format!("q{hops}"));
    publish_at(&mut s, 0, "", "q0", Vec::new());
    let last = &s.vhosts["/"].queues[&format!("q{hops}")].queue;
    assert_eq!(last.n_ready(), 1, "a chain within the bound arrives");
    let (_, message) = s
        .messages
        .iter()
        .next()
        .expect("arrived")
        .expect("in memory");
    assert_eq!(message.deaths.len(), hops);
}
