//! Apply off the async runtime, and what it publishes for async tasks after every entry.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use openraft::entry::RaftEntry;

use super::tests::{apply, consume_q, holder, log_id, publish};
use super::*;
use crate::broker::queue::ConsumerKey;
use crate::broker::test_support::QueueDecl;

fn checked_out(sm: &BrokerStateMachine, queue: &str, conn: u64) -> Vec<u64> {
    sm.with_broker(|b| b.vhosts["/"].queues[queue].queue.checked_out_to(conn, 1))
}

fn settle(queue: &str, msg_ids: Vec<u64>, conn: u64) -> Command {
    Command::Settle {
        queue: queue.into(),
        msg_ids,
        conn,
        channel: 1,
    }
}

fn published(sm: &BrokerStateMachine) -> Vec<u64> {
    sm.connections().iter().copied().collect()
}

/// The connection set async tasks read follows every entry that opens or ends a
/// connection's hold on the state: a consumer, a basic.get's checkout, the settles that end
/// the checkouts of a cancelled consumer.
#[test]
fn the_published_connections_follow_every_entry() {
    let sm = BrokerStateMachine::in_memory();
    assert!(published(&sm).is_empty());
    let declare = vec![QueueDecl::new("q").command(), QueueDecl::new("g").command()];
    apply(&sm, 1, declare);
    apply(&sm, 2, vec![consume_q()]);
    assert_eq!(published(&sm), vec![1], "conn 1 consumes");

    apply(&sm, 3, vec![publish("q", Bytes::from_static(b"to 1"))]);
    apply(&sm, 4, vec![publish("g", Bytes::from_static(b"to get"))]);
    let get = Command::Get {
        queue: "g".into(),
        holder: ConsumerKey {
            conn: 2,
            ..holder()
        },
        no_ack: false,
    };
    apply(&sm, 5, vec![get]);
    assert_eq!(published(&sm), vec![1, 2], "conn 2 holds a basic.get");

    let got = checked_out(&sm, "g", 2);
    apply(&sm, 6, vec![settle("g", got, 2)]);
    assert_eq!(published(&sm), vec![1], "conn 2 settled its last checkout");

    let cancel = Command::Cancel {
        queue: "q".into(),
        consumer: ConsumerKey {
            tag: "c".into(),
            ..holder()
        },
    };
    apply(&sm, 7, vec![cancel]);
    assert_eq!(published(&sm), vec![1], "conn 1 still holds a delivery");
    let delivered = checked_out(&sm, "q", 1);
    assert_eq!(delivered.len(), 1);
    apply(&sm, 8, vec![settle("q", delivered, 1)]);
    assert!(published(&sm).is_empty(), "nothing names conn 1 any more");
}

/// How long the observer waits for the test's async side before it calls the apply stuck.
const GATE_WAIT: Duration = Duration::from_secs(10);

/// An observer that waits, inside apply, for the async side to open it.
struct Gate {
    open: Mutex<std::sync::mpsc::Receiver<()>>,
    opened: AtomicBool,
}

impl ApplyObserver for Gate {
    fn applied(&self, _: u64, _: &[Outcome], _: &AppliedState<'_>) {
        let opened = lock(&self.open).recv_timeout(GATE_WAIT).is_ok();
        self.opened.store(opened, Ordering::SeqCst);
    }
}

/// Apply runs off the runtime's threads: on a single-threaded runtime, a task can still run
/// (and open the gate) while an entry is being applied. Were apply on the runtime thread,
/// the gate would only be opened after it gave up waiting.
#[tokio::test(flavor = "current_thread")]
async fn apply_leaves_the_runtime_thread_free() {
    let mut sm = BrokerStateMachine::in_memory();
    let (open, gate) = std::sync::mpsc::channel();
    let gate = Arc::new(Gate {
        open: Mutex::new(gate),
        opened: AtomicBool::new(false),
    });
    sm.set_observer(gate.clone());
    let request = Batch {
        time_ms: 1_000,
        commands: vec![QueueDecl::new("q").command()],
        origin: None,
    }
    .to_request();
    let entry = crate::raft::types::Entry::new_normal(log_id(1), request);
    let entries = futures::stream::iter(vec![Ok((entry, None))]);

    let open_gate = async { open.send(()).expect("the observer waits") };
    let (applied, ()) = tokio::join!(sm.apply(entries), open_gate);
    applied.expect("apply");
    assert!(
        gate.opened.load(Ordering::SeqCst),
        "apply blocked the runtime"
    );
    assert_eq!(sm.observe_applied(|index, _| index), Some(1));
}
