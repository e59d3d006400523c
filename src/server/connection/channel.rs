//! Channels: open, close, flow, and the per-channel state the other methods keep.

use std::collections::{BTreeMap, HashMap};

use amq_protocol::protocol::{channel, AMQPClass};

use super::publish::PendingPublish;
use super::tx::TxBuffer;
use super::wire::{
    conn_close, refuse, short, ConnClose, MethodId, REPLY_CHANNEL_ERROR, REPLY_NOT_IMPLEMENTED,
};
use super::Conn;
use crate::broker::command::{Command, Refusal};
use crate::limits;
use crate::limits::CHANNEL_CLOSE_PATIENCE;

/// An unacked delivery on a channel: which queue and message it is.
pub type Unacked = (String, u64);

pub struct ChannelState {
    /// We sent channel.close and wait for close-ok; everything else is dropped.
    pub closing: bool,
    /// basic.qos prefetch_count with global=false: applies to consumers created afterwards.
    pub prefetch: u32,
    pub confirms: bool,
    /// Some once tx.select was sent: the buffered publishes and acks of the open transaction.
    pub tx: Option<TxBuffer>,
    pub next_publish_seq: u64,
    pub next_delivery_tag: u64,
    /// delivery tag -> (queue, msg_id) of unacked deliveries.
    pub unacked: BTreeMap<u64, Unacked>,
    /// consumer tag -> queue.
    pub consumers: HashMap<String, String>,
    /// consumer tag -> deliveries written since its last credit, for the consumers with a
    /// credit window (no_ack or prefetch 0: `credit.rs`).
    pub written: HashMap<String, u32>,
    pub pending: Option<PendingPublish>,
}

impl ChannelState {
    fn new() -> ChannelState {
        ChannelState {
            closing: false,
            prefetch: 0,
            confirms: false,
            tx: None,
            next_publish_seq: 1,
            next_delivery_tag: 1,
            unacked: BTreeMap::new(),
            consumers: HashMap::new(),
            written: HashMap::new(),
            pending: None,
        }
    }
}

impl Conn {
    pub(super) async fn channel_class(
        &mut self,
        ch: u16,
        m: &channel::AMQPMethod,
    ) -> Result<(), ConnClose> {
        use channel::AMQPMethod as M;
        match m {
            M::Open(_) => {
                if self.channels.contains_key(&ch) || ch > limits::CHANNELS_PER_CONNECTION_MAX {
                    return Err(conn_close(
                        REPLY_CHANNEL_ERROR,
                        format!("CHANNEL_ERROR - cannot open channel {ch}"),
                    ));
                }
                self.channels.insert(ch, ChannelState::new());
                self.send_method(ch, &AMQPClass::Channel(M::OpenOk(channel::OpenOk {})));
            }
            M::Close(_) => {
                // Confirms of publishes already submitted go out before close-ok.
                self.complete_all().await;
                if self.channels.remove(&ch).is_some() {
                    self.channel_closed(ch).await;
                }
                self.send_method(ch, &AMQPClass::Channel(M::CloseOk(channel::CloseOk {})));
            }
            M::CloseOk(_) => {
                self.channels.remove(&ch);
            }
            // RabbitMQ does not implement flow(active=false): a connection error.
            M::Flow(f) if !f.active => {
                return Err(conn_close(
                    REPLY_NOT_IMPLEMENTED,
                    "NOT_IMPLEMENTED - active=false",
                ));
            }
            M::Flow(_) => {
                let ok = channel::FlowOk { active: true };
                self.reply_in_order(ch, AMQPClass::Channel(M::FlowOk(ok)));
            }
            _ => {}
        }
        Ok(())
    }

    /// Closes channel `ch` with `refusal` (a channel error caused by the method `cause`) and
    /// releases its deliveries.
    pub(super) async fn close_channel(&mut self, ch: u16, refusal: Refusal, cause: MethodId) {
        self.flush_confirms();
        if let Some(state) = self.channels.get_mut(&ch) {
            if state.closing {
                return;
            }
            state.closing = true;
            state.pending = None;
            state.tx = None;
            state.unacked.clear();
            state.consumers.clear();
            state.written.clear();
        }
        self.channel_closed(ch).await;
        self.send_method(
            ch,
            &AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
                reply_code: refusal.reply_code,
                reply_text: short(&refusal.reply_text),
                class_id: cause.class_id,
                method_id: cause.method_id,
            })),
        );
    }

    /// Returns the channel's unacked deliveries to their queues and drops its consumers.
    ///
    /// The close must reach the state, or a ghost consumer there would keep taking messages
    /// that nobody delivers: it is retried (it is idempotent) until it commits. If it cannot
    /// commit for [`CHANNEL_CLOSE_PATIENCE`], the whole connection ends instead, and its
    /// close is retried in the background (a connection id is never reused, so that is safe
    /// whenever it lands; a channel number is reused, so a channel close must land first).
    async fn channel_closed(&mut self, ch: u16) {
        let command = self.in_vhost(Command::ChannelClosed {
            conn: self.id,
            channel: ch,
        });
        let proposer = std::sync::Arc::clone(&self.proposer);
        let committed = tokio::time::timeout(
            CHANNEL_CLOSE_PATIENCE,
            proposer.propose_until_committed(command),
        )
        .await;
        if committed.is_err() {
            tracing::warn!(
                conn = self.id,
                ch,
                "channel close not committed; ending the connection"
            );
            self.done = true;
        }
    }

    pub(super) fn state(&mut self, ch: u16) -> Result<&mut ChannelState, Refusal> {
        self.channels
            .get_mut(&ch)
            .ok_or_else(|| refuse(REPLY_CHANNEL_ERROR, "CHANNEL_ERROR - channel not open"))
    }
}
