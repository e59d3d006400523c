//! Every limit of the node in one place, with the relations between them checked at compile
//! time (TigerBeetle's habit: a named bound on every queue, frame and loop).

/// Smallest frame_max a peer may negotiate (AMQP 0-9-1 §4.2.3: 4096 octets).
pub const FRAME_SIZE_MIN: u32 = 4096;
/// The frame_max Warren offers in connection.tune, as RabbitMQ does.
pub const FRAME_SIZE_MAX: u32 = 131_072;
/// channel_max offered in connection.tune (RabbitMQ's default).
pub const CHANNELS_PER_CONNECTION_MAX: u16 = 2047;
/// Heartbeat interval offered in connection.tune, in seconds (RabbitMQ's default).
pub const HEARTBEAT_S_DEFAULT: u16 = 60;
/// Largest message body accepted by default (128 MiB), configurable per node.
pub const BODY_SIZE_MAX_DEFAULT: u64 = 128 * 1024 * 1024;
/// The most `body_size_max` may be set to: a message is one Raft entry, and one entry must
/// fit a peer frame with room for its properties and headers (RabbitMQ allows 512 MiB).
pub const BODY_SIZE_MAX_LIMIT: u64 = 192 * 1024 * 1024;
/// Submissions waiting for the proposer's batching task (beyond: connections stop reading).
pub const PROPOSE_QUEUE_MAX: usize = 4096;
/// Raft entries handed to openraft and not yet applied. While they commit, submissions queue
/// up for the next entry: this pipeline depth is the proposer's linger.
pub const PROPOSE_ENTRIES_IN_FLIGHT_MAX: usize = 8;
/// Requests a peer connection has started and not yet answered; a follower forwards at most
/// [`PROPOSE_ENTRIES_IN_FLIGHT_MAX`] batches at once, so it never waits on this.
pub const PEER_PIPELINE_DEPTH: usize = PROPOSE_ENTRIES_IN_FLIGHT_MAX;
/// Commands in one Raft entry built by the proposer.
pub const PROPOSE_BATCH_COMMANDS_MAX: usize = 2048;
/// Byte budget (message content) of one Raft entry built by the proposer; one larger
/// message still goes, alone.
pub const PROPOSE_BATCH_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Commands one connection may have submitted and not yet seen applied; beyond that it stops
/// reading its socket until some complete.
pub const IN_FLIGHT_PER_CONNECTION_MAX: usize = 1024;
/// How many bytes of frames a connection gathers from its queued deliveries before it writes
/// them to its socket in one go (it writes sooner when the queue runs dry).
pub const WRITE_COALESCE_BYTES_MAX: usize = 256 * 1024;

/// Deliveries a consumer that prefetch does not bound (no_ack, or prefetch 0) may be handed
/// before its connection reports that it wrote them to the socket (`Command::Credit`,
/// rabbit_fifo's credit): what bounds the deliveries queued in a node's memory for one such
/// consumer, whatever the backlog of its queue.
pub const CONSUMER_CREDIT_WINDOW: u32 = 2000;
/// The connection hands credit back in runs of this many written deliveries: one Credit
/// command per run. Small runs keep several refills committing while the socket takes the
/// rest of the window, so a fast consumer drains at about (window - run) per commit round
/// trip instead of stalling on each (with half-window runs the drain of a 1,000,000
/// backlog ran at 60,000/s, docs/benchmarks.md).
pub const CONSUMER_CREDIT_RETURN_AFTER: u32 = CONSUMER_CREDIT_WINDOW / 4;
const _: () = assert!(CONSUMER_CREDIT_RETURN_AFTER > 0);
// At least three quarters of the window is still to write when a refill is asked for.
const _: () = assert!(CONSUMER_CREDIT_RETURN_AFTER * 4 <= CONSUMER_CREDIT_WINDOW);
/// Times a credit whose outcome is unknown is proposed again (with backoff up to 2 s: about
/// a minute) before it is given up.
pub const CONSUMER_CREDIT_RETRIES_MAX: u32 = 32;

const _: () = assert!(FRAME_SIZE_MIN <= FRAME_SIZE_MAX);
// A batch must hold at least one full frame of body.
const _: () = assert!(FRAME_SIZE_MAX as usize <= PROPOSE_BATCH_BYTES_MAX);

/// Largest cluster peer message (an append of many entries is the largest; a snapshot
/// travels in chunks of `SNAPSHOT_CHUNK_BYTES`).
pub const CLUSTER_FRAME_MAX: usize = 256 * 1024 * 1024;
/// Largest handshake message. It is read before the peer has proven it knows the cookie, so it
/// is kept small: a stranger must not make a node allocate a snapshot-sized buffer.
pub const CLUSTER_HANDSHAKE_FRAME_MAX: usize = 1024;
/// Time an AMQPS client has to finish its TLS handshake (RabbitMQ's
/// `ssl_handshake_timeout`); a client that connects and stays silent is dropped after it.
pub const AMQPS_HANDSHAKE_TIMEOUT_MS: u64 = 5000;
/// Time to open a TCP connection to a peer.
pub const CLUSTER_CONNECT_TIMEOUT_MS: u64 = 1000;
/// Time a handshake may take, on either side, TLS's included with `cluster_tls` (a peer that
/// connects and says nothing is dropped after this).
pub const CLUSTER_HANDSHAKE_TIMEOUT_MS: u64 = 2000;
/// Default time for one request and its response on a `PeerClient` (cluster-status,
/// forwarding).
pub const CLUSTER_CALL_TIMEOUT_MS: u64 = 5000;
/// How often the leader sends heartbeats (openraft's `heartbeat_interval`).
pub const RAFT_HEARTBEAT_MS: u64 = 100;
/// openraft's election timeout range. A follower campaigns only after its leader lease (the
/// maximum, openraft's `leader_lease`) and then a drawn timeout have passed since it last
/// heard the leader: 0.9-1.2 s of silence. (200-350 ms with 50 ms heartbeats, 550-700 ms of
/// silence, replaced a frozen leader in 0.72-0.84 s, but a leader committing 100 MiB
/// entries then lost and regained leadership over and over: raft-tests
/// t02_replication::t04 never caught its follower up.)
pub const RAFT_ELECTION_TIMEOUT_MIN_MS: u64 = 300;
pub const RAFT_ELECTION_TIMEOUT_MAX_MS: u64 = 600;
const _: () = assert!(RAFT_HEARTBEAT_MS * 3 <= RAFT_ELECTION_TIMEOUT_MIN_MS);
const _: () = assert!(RAFT_ELECTION_TIMEOUT_MIN_MS < RAFT_ELECTION_TIMEOUT_MAX_MS);
/// A follower that saw a connection from its leader close (a killed process's connections
/// are closed by its kernel) takes the leader for gone once it has also heard nothing from
/// it for this long: a heartbeat interval, so one connection dropped and redialled by a
/// healthy leader is not enough (its next heartbeat arrives on another or the new one).
pub const LEADER_GONE_SILENCE: std::time::Duration =
    std::time::Duration::from_millis(RAFT_HEARTBEAT_MS);
/// A follower that has heard nothing from its leader for this long takes it for gone even
/// though no connection closed (a frozen or cut-off leader keeps its connections open): five
/// heartbeats, where openraft's own timer waits its leader lease plus a drawn election
/// timeout (900-1200 ms). As with a close, it campaigns only with a quorum's agreement.
pub const LEADER_SILENT_GONE: std::time::Duration =
    std::time::Duration::from_millis(5 * RAFT_HEARTBEAT_MS);
/// How long a voter asked whether the leader is gone waits for its own evidence (its own
/// connection from the leader closing, then the silence) before it says no.
pub const LEADER_GONE_ANSWER_WAIT: std::time::Duration =
    std::time::Duration::from_millis(2 * RAFT_HEARTBEAT_MS);
// A prompt election must be sooner than the ordinary one, or it is not worth having.
const _: () = assert!(
    LEADER_SILENT_GONE.as_millis() + LEADER_GONE_ANSWER_WAIT.as_millis()
        < (RAFT_ELECTION_TIMEOUT_MAX_MS + RAFT_ELECTION_TIMEOUT_MIN_MS) as u128
);
const _: () = assert!(
    LEADER_GONE_SILENCE.as_millis() + LEADER_GONE_ANSWER_WAIT.as_millis()
        < (RAFT_ELECTION_TIMEOUT_MAX_MS + RAFT_ELECTION_TIMEOUT_MIN_MS) as u128
);
/// Floor under openraft's RPC deadline for append-entries and vote: openraft hands the
/// replication stream its heartbeat interval (100 ms), too short for a large batch to a busy
/// follower that must fsync it.
pub const CLUSTER_RPC_TIMEOUT_MIN_MS: u64 = 1000;
/// Entry payload bytes in one append-entries request (at least one entry goes, whatever its
/// size): openraft batches up to `max_payload_entries` (300) entries whatever their size, which
/// could outgrow a peer frame; the rest goes in the next request (`PartialSuccess`).
pub const APPEND_BYTES_MAX: usize = 16 * 1024 * 1024;
const _: () = assert!(PROPOSE_BATCH_BYTES_MAX <= APPEND_BYTES_MAX);
const _: () = assert!(BODY_SIZE_MAX_DEFAULT <= BODY_SIZE_MAX_LIMIT);
// One entry alone (a message at the limit, its properties and headers within frame_max, the
// command around it) and a whole append budget both fit a peer frame.
const _: () = assert!(BODY_SIZE_MAX_LIMIT as usize + 64 * 1024 * 1024 <= CLUSTER_FRAME_MAX);
const _: () = assert!(APPEND_BYTES_MAX * 4 <= CLUSTER_FRAME_MAX);
/// The slowest a follower may take an append's bytes (cross the link and fsync them) before
/// the append times out: each append's deadline grows by its size at this rate (a 16 MiB
/// append gets 4 s more, one 192 MiB message 48 s).
pub const CLUSTER_APPEND_BYTES_PER_S_MIN: u64 = 4 * 1024 * 1024;
/// The size of the chunks a snapshot is sent in (openraft's `snapshot_max_chunk_size`): the
/// memory a snapshot in flight takes on either side, whatever the snapshot's size.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;
const _: () = assert!(SNAPSHOT_CHUNK_BYTES * 2 < CLUSTER_FRAME_MAX);
/// How long `promote` (and a RAM node's join, before its voter step) waits for the learner to
/// hold every entry the leader held when asked, before it refuses: well under the 120 s a
/// `warren` membership command waits for its answer (src/cli/membership.rs).
pub const PROMOTE_CATCH_UP_S_MAX: u64 = 60;
/// Floor under openraft's deadline for sending a whole snapshot (its default is 200 ms).
pub const CLUSTER_SNAPSHOT_TIMEOUT_MIN_MS: u64 = 60_000;
/// Peer connections a node serves at once; beyond that it stops accepting until one closes.
pub const CLUSTER_CONNECTIONS_MAX: usize = 256;
/// Shortest accepted cluster cookie, in bytes.
pub const COOKIE_BYTES_MIN: usize = 16;

const _: () = assert!(CLUSTER_HANDSHAKE_FRAME_MAX < CLUSTER_FRAME_MAX);
// The wire format's length field is a u32.
const _: () = assert!(CLUSTER_FRAME_MAX <= u32::MAX as usize);
const _: () = assert!(CLUSTER_CONNECT_TIMEOUT_MS < CLUSTER_CALL_TIMEOUT_MS);

/// A snapshot is asked for once this many bytes of entry payload were applied since the last
/// one began (besides openraft's count of entries): it bounds the log a node holds in memory
/// and replays at a restart, whatever the size of the messages.
pub const SNAPSHOT_AFTER_LOG_BYTES: u64 = 64 * 1024 * 1024;
/// How many bytes of its newest stored messages a disk node keeps in memory between entries
/// before it moves the oldest to its message store (`raft/cold_messages.rs`). A queue whose
/// consumers keep up acks its messages within this window, so they never touch the store:
/// no sled insert and remove per message. Bounded, so a backlog still lives on disk; well
/// under a snapshot interval's log, which holds the same bytes durably anyway.
pub const HOT_MESSAGES_BYTES_MAX: u64 = 8 * 1024 * 1024;
const _: () = assert!(HOT_MESSAGES_BYTES_MAX < SNAPSHOT_AFTER_LOG_BYTES);
/// Most entries the state machine applies in one go on a blocking thread
/// (`raft/state_machine.rs`): bounds what it holds of the log while it applies.
pub const APPLY_CHUNK_ENTRIES_MAX: usize = 256;
/// A chunk ends with the entry that takes its payload to this many bytes.
pub const APPLY_CHUNK_BYTES_MAX: usize = 16 * 1024 * 1024;
const _: () = assert!(PROPOSE_BATCH_BYTES_MAX <= APPLY_CHUNK_BYTES_MAX);
const _: () = assert!(SNAPSHOT_AFTER_LOG_BYTES >= 4 * PROPOSE_BATCH_BYTES_MAX as u64);

/// How long the leader lets a member miss heartbeats before it takes it for down and gives
/// its consumers' messages back to their queues (`server/node_down.rs`).
pub const NODE_DOWN_AFTER: std::time::Duration = std::time::Duration::from_secs(5);
/// How long a member may go without hearing from a leader (this node's monotonic clock)
/// before it holds the deliveries of what it applies (`raft/contact.rs`). Shorter than
/// [`NODE_DOWN_AFTER`]: a node holds before the cluster can have given up on it.
pub const LEADER_CONTACT_STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(3);
const _: () = assert!(LEADER_CONTACT_STALE_AFTER.as_millis() < NODE_DOWN_AFTER.as_millis());
/// How soon a node back from a silence asks again for the leader's read index when no
/// leader answered (`server/catch_up.rs`).
pub const CATCH_UP_RETRY: std::time::Duration = std::time::Duration::from_millis(100);
/// How often the leader looks whether every member runs a newer state-machine version
/// (`server/machine_upgrade.rs`).
pub const MACHINE_UPGRADE_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(10);
/// The same while the cluster has not moved up yet, or its default user is not written.
pub const MACHINE_UPGRADE_RETRY: std::time::Duration = std::time::Duration::from_millis(500);
const _: () = assert!(MACHINE_UPGRADE_RETRY.as_millis() < MACHINE_UPGRADE_CHECK_EVERY.as_millis());
/// How often the leader looks for expired messages and proposes a `Tick` when one is due
/// (`server/node_tasks.rs`).
pub const EXPIRY_TICK_EVERY: std::time::Duration = std::time::Duration::from_millis(100);
/// How often a node looks in the state for connections of its earlier lives, to close them
/// (`server/node_tasks.rs`). Well below the node-down delay: a repaired node that came back
/// before the leader took it for down relies on this alone.
pub const EARLIER_LIVES_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(2);
const _: () = assert!(EARLIER_LIVES_CHECK_EVERY.as_millis() < NODE_DOWN_AFTER.as_millis());
/// How long a membership command (or a RAM node's join) keeps looking for a leader that
/// takes the change (`cluster/ask_leader.rs`).
pub const LEADER_SEARCH: std::time::Duration = std::time::Duration::from_secs(30);
/// How long one membership change may take: a join returns once the learner caught up,
/// which may take a snapshot transfer.
pub const MEMBERSHIP_CHANGE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);
/// Pause between rounds over the members while no leader answers.
pub const LEADER_SEARCH_ROUND_PAUSE: std::time::Duration = std::time::Duration::from_millis(200);
/// How long `warren stop` waits for the node to close its cluster port.
pub const STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

// Timing constants of the node's tasks and clients.
/// How long the front entry may stay unknown before its submitters are told so.
pub const PROPOSE_GIVE_UP_AFTER: std::time::Duration = std::time::Duration::from_secs(15);
/// How long a failed attempt waits for a leader change before it is sent again.
pub const PROPOSE_RETRY_WAIT: std::time::Duration = std::time::Duration::from_millis(100);
/// How long an attempt waits for the cluster to have a leader.
pub const FORWARD_LEADER_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// How often the leader looks for members gone silent (`server/node_down.rs`).
pub const NODE_DOWN_CHECK_EVERY: std::time::Duration = std::time::Duration::from_millis(500);
/// How often resident memory is sampled.
pub const MEMORY_SAMPLE_EVERY: std::time::Duration = std::time::Duration::from_millis(250);
/// Pause between two join attempts of a RAM node while the cluster has no leader.
pub const RAM_JOIN_RETRY: std::time::Duration = std::time::Duration::from_secs(1);
/// How long a channel close may take to commit before the connection is ended instead.
pub const CHANNEL_CLOSE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);
/// How long a connection closed by the server waits for the client's close-ok.
pub const CLOSE_OK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// How long `open` waits for the node to become leader of its one-member cluster.
pub const SINGLE_NODE_LEADER_WAIT_S: u64 = 10;
/// How many times the message store tries to open while sled still locks it (a state machine
/// of this process just shut down may take a moment to drop its handle).
pub const MESSAGE_STORE_OPEN_ATTEMPTS_MAX: u32 = 100;
/// How far apart those attempts are.
pub const MESSAGE_STORE_OPEN_RETRY_MS: u64 = 50;
/// How long a stopping leader waits for another voter to take over.
pub const HAND_OVER_WAIT: std::time::Duration = std::time::Duration::from_secs(3);
/// How long `--detach` waits for the node to listen, and `stop` for it to exit.
pub const DETACH_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
/// How often `--detach` and `stop` look.
pub const DETACH_POLL: std::time::Duration = std::time::Duration::from_millis(50);
/// How long one node may take to answer before it is shown as unreachable.
pub const STATUS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
const _: () = assert!(PROPOSE_RETRY_WAIT.as_millis() < PROPOSE_GIVE_UP_AFTER.as_millis());
const _: () = assert!(FORWARD_LEADER_WAIT.as_millis() < PROPOSE_GIVE_UP_AFTER.as_millis());
const _: () = assert!(NODE_DOWN_CHECK_EVERY.as_millis() < NODE_DOWN_AFTER.as_millis());
const _: () = assert!(DETACH_POLL.as_millis() < DETACH_WAIT.as_millis());
/// How long a node waits for the outcome of an operator's change it submitted for the CLI
/// (`PeerRequest::Admin`): past it the outcome is unknown, and the CLI says so.
pub const ADMIN_COMMIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// How long the CLI waits for one node's answer to an admin request before it tries the
/// next member: a node cut off from the leader must not stop the command.
pub const ADMIN_CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(40);
const _: () = assert!(ADMIN_COMMIT_TIMEOUT.as_millis() < ADMIN_CALL_TIMEOUT.as_millis());
/// How long a node holds an operator's change that needs a newer state-machine version than
/// the cluster runs yet (a fresh cluster moves to the newest within a second or so of
/// electing its first leader) before it submits it, to be refused if the version is still
/// behind.
pub const ADMIN_UPGRADE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
const _: () = assert!(ADMIN_UPGRADE_WAIT.as_millis() < ADMIN_COMMIT_TIMEOUT.as_millis());
/// How long a node answering `PeerRequest::Definitions` waits to apply what the cluster
/// committed before the question (so a user just added is listed); it answers with what it
/// has after that.
pub const DEFINITIONS_CATCH_UP_MAX: std::time::Duration = std::time::Duration::from_secs(3);
const _: () = assert!(DEFINITIONS_CATCH_UP_MAX.as_millis() < ADMIN_CALL_TIMEOUT.as_millis());
/// How long an operator's committed change waits for every member to apply it before the
/// CLI is answered (a changed password must not log in on another node a moment later);
/// a member that is down or cut off is not waited for past it.
pub const ADMIN_SPREAD_WAIT: std::time::Duration = std::time::Duration::from_secs(3);
const _: () = assert!(
    ADMIN_COMMIT_TIMEOUT.as_millis() + ADMIN_SPREAD_WAIT.as_millis()
        < ADMIN_CALL_TIMEOUT.as_millis()
);
