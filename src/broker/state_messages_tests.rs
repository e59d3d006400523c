//! Tests of publish under queue limits (x-max-length, x-max-length-bytes, x-overflow) and of
//! exclusive consumers, through `BrokerState::apply`.

use crate::broker::command::{Command, Reply};
use crate::broker::exchange::HeaderValue;
use crate::broker::queue::ConsumerKey;
use crate::broker::state::BrokerState;
use crate::broker::test_support::*;

fn published(msg_id: u64, n_queues: u32, rejected_by: u32) -> Reply {
    Reply::Published {
        msg_id,
        n_queues,
        rejected_by,
    }
}

#[test]
fn reject_publish_refuses_for_the_full_queue_only() {
    let mut s = BrokerState::default();
    let full = vec![
        arg("x-max-length-bytes", HeaderValue::Int(3)),
        arg("x-overflow", str_value("reject-publish")),
    ];
    declare_with(&mut s, "small", full);
    declare(&mut s, "big");
    for q in ["small", "big"] {
        bind(&mut s, q, "amq.fanout", "");
    }
    let first = publish_at(&mut s, 0, "amq.fanout", "", Vec::new());
    assert_eq!(first.reply, Ok(published(1, 2, 0)), "2 bytes fit in 3");
    let second = publish_at(&mut s, 0, "amq.fanout", "", Vec::new());
    assert_eq!(second.reply, Ok(published(2, 2, 1)), "4 bytes do not");
    assert_eq!(s.message(2).expect("big holds it").n_holders, 1);
    assert_eq!(s.vhosts["/"].queues["small"].queue.all_msg_ids(), vec![1]);

    let only = publish_at(&mut s, 0, "", "small", Vec::new());
    assert_eq!(only.reply, Ok(published(3, 1, 1)));
    assert!(
        s.message(3).is_none(),
        "a message no queue took is not stored"
    );
}

#[test]
fn drop_head_without_a_dead_letter_exchange_drops_the_oldest() {
    let mut s = BrokerState::default();
    declare_with(&mut s, "q", vec![arg("x-max-length", HeaderValue::Int(2))]);
    for _ in 0..5 {
        let out = publish_at(&mut s, 0, "", "q", Vec::new());
        assert!(matches!(
            out.reply,
            Ok(Reply::Published { rejected_by: 0, .. })
        ));
    }
    assert_eq!(s.vhosts["/"].queues["q"].queue.all_msg_ids(), vec![4, 5]);
    assert_eq!(s.messages.len(), 2);
}

#[test]
fn limit_arguments_are_validated_like_rabbitmq() {
    let mut s = BrokerState::default();
    for (name, value) in [
        ("x-max-length-bytes", HeaderValue::Int(-1)),
        ("x-delivery-limit", str_value("3")),
        ("x-overflow", str_value("drop-tail")),
    ] {
        let decl = QueueDecl {
            arguments: vec![arg(name, value)],
            ..QueueDecl::new("q")
        };
        let refusal = s.apply(0, decl.command()).reply.unwrap_err();
        assert_eq!(refusal.reply_code, 406);
        assert!(refusal
            .reply_text
            .contains(&format!("invalid arg '{name}'")));
    }
}

fn consume_as(s: &mut BrokerState, tag: &str, conn: u64, exclusive: bool) -> Result<Reply, u16> {
    let consumer = ConsumerKey {
        conn,
        channel: 1,
        tag: tag.into(),
    };
    let command = Command::Consume {
        queue: "q".into(),
        consumer,
        prefetch: 0,
        no_ack: false,
        exclusive,
    };
    s.apply(0, command).reply.map_err(|r| {
        assert_eq!(
            r.reply_text,
            "ACCESS_REFUSED - queue 'q' in vhost '/' in exclusive use"
        );
        r.reply_code
    })
}

#[test]
fn exclusive_consumers_refuse_company_with_403() {
    let mut s = BrokerState::default();
    declare(&mut s, "q");
    assert_eq!(consume_as(&mut s, "a", 1, false), Ok(Reply::Done));
    assert_eq!(consume_as(&mut s, "b", 2, true), Err(403));
    s.apply(0, Command::ConnectionClosed { conn: 1 });
    assert_eq!(consume_as(&mut s, "b", 2, true), Ok(Reply::Done));
    assert_eq!(consume_as(&mut s, "c", 3, false), Err(403));
    assert_eq!(consume_as(&mut s, "d", 2, true), Err(403));
}

/// A no_ack consumer of a backlog gets one credit window; `Command::Credit` gives it as
/// many more as came back, each released to the delivering node; a credit for a queue or
/// a consumer that is not there changes nothing.
#[test]
fn credit_lets_a_no_ack_consumer_take_as_many_more_as_came_back() {
    use crate::limits::CONSUMER_CREDIT_WINDOW;
    let mut s = BrokerState::default();
    declare(&mut s, "q");
    for _ in 0..CONSUMER_CREDIT_WINDOW + 3 {
        publish(&mut s, "", "q");
    }
    let first = consume(&mut s, "q", "c", true);
    assert_eq!(first.deliveries.len(), CONSUMER_CREDIT_WINDOW as usize);
    assert_eq!(s.vhosts["/"].queues["q"].queue.n_ready(), 3);
    let credit = |queue: &str, tag: &str, n| Command::Credit {
        queue: queue.into(),
        consumer: consumer(tag),
        n,
    };
    let before = postcard::to_stdvec(&s).expect("encode");
    for missing in [credit("nowhere", "c", 5), credit("q", "nobody", 5)] {
        let out = s.apply(0, missing);
        assert_eq!((out.reply, out.deliveries.len()), (Ok(Reply::Done), 0));
    }
    assert_eq!(postcard::to_stdvec(&s).expect("encode"), before);
    let more = s.apply(0, credit("q", "c", 2));
    let ids: Vec<u64> = more.deliveries.iter().map(|(_, d)| d.msg_id).collect();
    let first_more = u64::from(CONSUMER_CREDIT_WINDOW) + 1;
    assert_eq!(ids, vec![first_more, first_more + 1]);
    assert_eq!(
        more.released.len(),
        2,
        "no_ack deliveries travel with the outcome"
    );
    assert_eq!(s.vhosts["/"].queues["q"].queue.n_ready(), 1);
}
