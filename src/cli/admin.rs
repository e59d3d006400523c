//! Reaching the cluster for the administration commands: the members of the configuration
//! are tried in order, over the cluster transport with the cookie, until one answers. A
//! member that is down or cut off costs a timeout, never the command. Changes are submitted
//! to whichever member answers, whose proposer forwards them to the leader; reads are that
//! member's applied state once it caught up with the leader (`server/peer_admin.rs`).

use crate::broker::command::{Command, Refusal, Reply};
use crate::cluster::handshake::ANY_NODE;
use crate::config::NodeConfig;
use crate::definitions::applied::Applied;
use crate::limits::ADMIN_CALL_TIMEOUT;
use crate::raft::peer_network::call_peer;
use crate::raft::protocol::{PeerRequest, PeerResponse};
use crate::server::ask_leader::{load_peer_auth, CLIENT_ID};

/// Commits `commands` as one entry; their replies, in order.
pub async fn submit(
    config: &NodeConfig,
    commands: Vec<Command>,
) -> anyhow::Result<Vec<Result<Reply, Refusal>>> {
    let n = commands.len();
    match ask_any(config, true, || PeerRequest::Admin(commands.clone())).await? {
        PeerResponse::Replies(replies) if replies.len() == n => Ok(replies),
        other => anyhow::bail!("unexpected answer: {other:?}"),
    }
}

/// Commits one command; a refusal is an error with its text (nothing changed).
pub async fn submit_one(config: &NodeConfig, command: Command) -> anyhow::Result<()> {
    let mut replies = submit(config, vec![command]).await?;
    match replies.pop() {
        Some(Ok(_)) => Ok(()),
        Some(Err(refusal)) => anyhow::bail!("{}", refusal.reply_text),
        None => anyhow::bail!("no reply"),
    }
}

/// What a member applied of users, vhosts, permissions, exchanges, queues and bindings.
pub async fn read(config: &NodeConfig) -> anyhow::Result<Applied> {
    match ask_any(config, false, || PeerRequest::Definitions).await? {
        PeerResponse::Definitions(applied) => Ok(*applied),
        other => anyhow::bail!("unexpected answer: {other:?}"),
    }
}

/// The first answer of a member to `request`. A member that cannot be reached or is still
/// starting is passed over, and so is one that does not answer in time unless the request
/// is a `change`; an `Error` answer ends the search. (A change whose member went silent or
/// answered an error has an unknown outcome: asking another could apply it twice.)
async fn ask_any(
    config: &NodeConfig,
    change: bool,
    request: impl Fn() -> PeerRequest,
) -> anyhow::Result<PeerResponse> {
    let auth = load_peer_auth(config)?;
    let mut problems = Vec::new();
    for (id, addr) in config.members() {
        let addr = addr.to_string();
        // By address: a RAM member's Raft id changes at every start.
        let call = call_peer(&addr, ANY_NODE, CLIENT_ID, auth.clone(), request());
        match tokio::time::timeout(ADMIN_CALL_TIMEOUT, call).await {
            Ok(Ok(PeerResponse::Error(text))) if text.contains("starting") => {
                problems.push(format!("node {id} at {addr}: {text}"));
            }
            Ok(Ok(PeerResponse::Error(text))) => anyhow::bail!("node {id}: {text}"),
            Ok(Ok(answer)) => return Ok(answer),
            Ok(Err(e)) => problems.push(format!("node {id} at {addr}: {e:#}")),
            Err(_) if change => anyhow::bail!(
                "node {} at {addr}: no answer within {ADMIN_CALL_TIMEOUT:?}; the change may \
                 or may not have been made",
                id
            ),
            Err(_) => problems.push(format!(
                "node {} at {addr}: no answer within {ADMIN_CALL_TIMEOUT:?}",
                id
            )),
        }
    }
    anyhow::bail!("no member answered:\n  {}", problems.join("\n  "))
}
