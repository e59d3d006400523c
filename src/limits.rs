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
/// Submissions waiting for the proposer's batching task (beyond: connections stop reading).
pub const PROPOSE_QUEUE_MAX: usize = 4096;
/// Raft entries handed to openraft and not yet applied. While they commit, submissions queue
/// up for the next entry: this pipeline depth is the proposer's linger.
pub const PROPOSE_ENTRIES_IN_FLIGHT_MAX: usize = 8;
/// Commands in one Raft entry built by the proposer.
pub const PROPOSE_BATCH_COMMANDS_MAX: usize = 2048;
/// Byte budget (message content) of one Raft entry built by the proposer; one larger
/// message still goes, alone.
pub const PROPOSE_BATCH_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Commands one connection may have submitted and not yet seen applied; beyond that it stops
/// reading its socket until some complete.
pub const IN_FLIGHT_PER_CONNECTION_MAX: usize = 1024;

const _: () = assert!(FRAME_SIZE_MIN <= FRAME_SIZE_MAX);
// A batch must hold at least one full frame of body.
const _: () = assert!(FRAME_SIZE_MAX as usize <= PROPOSE_BATCH_BYTES_MAX);
