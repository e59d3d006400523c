//! tx.select/commit/rollback. A transaction's publishes and acks are buffered on the channel
//! and committed as ONE submission, which the proposer keeps in one log entry: the commit is
//! atomic across queues, stronger than RabbitMQ's (which only batches). Rollback discards
//! them, and the deliveries the buffered acks had taken are unacked again.

use amq_protocol::protocol::{tx, AMQPClass};

use super::channel::Unacked;
use super::completion::Returned;
use super::declare::not_implemented;
use super::wire::{refuse, REPLY_PRECONDITION_FAILED};
use super::Conn;
use crate::broker::command::{Command, Refusal, Reply};

#[derive(Default)]
pub struct TxBuffer {
    commands: Vec<Command>,
    /// Per command: what to return if it is an unroutable mandatory publish.
    returns: Vec<Option<Returned>>,
    /// Deliveries the buffered acks took off the channel, to give back on rollback.
    taken: Vec<(u64, Unacked)>,
}

impl TxBuffer {
    pub fn buffer_publish(&mut self, command: Command, returned: Option<Returned>) {
        self.commands.push(command);
        self.returns.push(returned);
    }

    pub fn buffer_settles(&mut self, commands: Vec<Command>) {
        for command in commands {
            self.commands.push(command);
            self.returns.push(None);
        }
    }

    pub fn remember_taken(&mut self, tag: u64, unacked: Unacked) {
        self.taken.push((tag, unacked));
    }
}

impl Conn {
    pub(super) async fn tx_class(&mut self, ch: u16, m: tx::AMQPMethod) -> Result<(), Refusal> {
        use tx::AMQPMethod as M;
        let state = self.state(ch)?;
        match m {
            M::Select(_) => {
                if state.confirms {
                    return Err(refuse(
                        REPLY_PRECONDITION_FAILED,
                        "PRECONDITION_FAILED - cannot switch from confirm to tx mode",
                    ));
                }
                state.tx.get_or_insert_with(TxBuffer::default);
                self.reply_in_order(ch, AMQPClass::Tx(M::SelectOk(tx::SelectOk {})));
            }
            M::Commit(_) => {
                let buffer = take_buffer(state.tx.as_mut())?;
                self.commit(ch, buffer).await?;
                self.send_method(ch, &AMQPClass::Tx(M::CommitOk(tx::CommitOk {})));
            }
            M::Rollback(_) => {
                let buffer = take_buffer(state.tx.as_mut())?;
                state.unacked.extend(buffer.taken);
                self.reply_in_order(ch, AMQPClass::Tx(M::RollbackOk(tx::RollbackOk {})));
            }
            other => return Err(not_implemented(&AMQPClass::Tx(other))),
        }
        Ok(())
    }

    /// Commits the transaction's commands as one log entry, then returns its unroutable
    /// mandatory publishes.
    async fn commit(&mut self, ch: u16, buffer: TxBuffer) -> Result<(), Refusal> {
        if buffer.commands.is_empty() {
            return Ok(());
        }
        let replies = self.propose_all(buffer.commands).await?;
        for (reply, returned) in replies.into_iter().zip(buffer.returns) {
            if let (Reply::Published { n_queues: 0, .. }, Some(returned)) = (reply?, returned) {
                self.send_return(ch, returned);
            }
        }
        Ok(())
    }
}

/// The open transaction's buffer, emptied for commit or rollback.
fn take_buffer(tx: Option<&mut TxBuffer>) -> Result<TxBuffer, Refusal> {
    tx.map(std::mem::take).ok_or_else(|| {
        refuse(
            REPLY_PRECONDITION_FAILED,
            "PRECONDITION_FAILED - channel is not transactional",
        )
    })
}
