//! The state's property test over a workload aimed at channel limits (basic.qos
//! global=true): one connection, two channels, three plain queues declared first; mostly
//! publishes, consumes that must ack, acks by the holding channel and limit changes. The
//! general workload seldom puts a limited channel under pressure; this one does, so the
//! checks of `check_channel_limits` (exact counts, no delivery left unmade) bite.

use proptest::prelude::*;

use super::*;

fn op() -> impl Strategy<Value = Op> {
    let channel = || 1u16..=2;
    prop_oneof![
        5 => (0..QUEUES.len()).prop_map(|key| Op::Publish {
            exchange: 0,
            key,
            body_len: 1,
            expiration_ms: None,
            mandatory: false,
        }),
        3 => (
            0..QUEUES.len(),
            channel(),
            0..TAGS.len(),
            0u32..=3,
            proptest::bool::weighted(0.1),
        )
            .prop_map(|(queue, channel, tag, prefetch, no_ack)| Op::Consume {
                queue,
                conn: 1,
                channel,
                tag,
                prefetch,
                no_ack,
            }),
        6 => (0u8..3, 0..QUEUES.len(), 0usize..8, 1usize..=2, channel()).prop_map(
            |(kind, queue, pick, n, channel)| Op::Ack {
                kind,
                queue,
                pick,
                n,
                conn: 1,
                channel,
                own: true,
            }
        ),
        3 => (channel(), 0u32..=3).prop_map(|(channel, prefetch)| Op::ChannelQos {
            conn: 1,
            channel,
            prefetch,
        }),
        1 => (0..QUEUES.len(), channel(), 0..TAGS.len()).prop_map(|(queue, channel, tag)| {
            Op::Cancel {
                queue,
                conn: 1,
                channel,
                tag,
            }
        }),
        1 => (0..QUEUES.len(), channel(), any::<bool>()).prop_map(|(queue, channel, no_ack)| {
            Op::Get {
                queue,
                conn: 1,
                channel,
                no_ack,
            }
        }),
        1 => channel().prop_map(|channel| Op::Recover { conn: 1, channel }),
        1 => channel().prop_map(|channel| Op::ChannelClosed { conn: 1, channel }),
        1 => (0..QUEUES.len()).prop_map(|queue| Op::Delete {
            queue,
            if_unused: false,
            if_empty: false,
        }),
        1 => (0..QUEUES.len()).prop_map(|queue| Op::Declare {
            queue,
            ttl: None,
            dlx: None,
            max_length: None,
            conn: 1,
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn channel_limits_stay_exact_and_hold_back_nothing_they_allow(
        ops in proptest::collection::vec((0u64..=10, op()), 0..80),
        split in any::<prop::sample::Index>(),
    ) {
        let declare = |queue| Op::Declare {
            queue,
            ttl: None,
            dlx: None,
            max_length: None,
            conn: 1,
        };
        let mut all: Vec<(u64, Op)> = (0..QUEUES.len()).map(|q| (0, declare(q))).collect();
        all.extend(ops);
        check_replay(&all, split)?;
    }
}
