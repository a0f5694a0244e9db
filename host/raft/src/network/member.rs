//! Calls between members besides Raft's own (`proto/conclave/internal.proto`): a follower's
//! forwarded writes, read indexes, keep-alives, membership and plugin requests, ingested
//! samples, hashes. They ride the peer transport, so only a peer with a certificate from the
//! cluster CA can make one; the server crate answers them (`MemberService`).
//!
//! A call is one stream of kind `Member`: one `MemberRequest` frame, one `MemberResponse`
//! reply (or a refusal, when the receiver has nothing to answer with yet).

use std::sync::Arc;
use std::time::Duration;

use conclave_proto::conclavepb::{MemberRequest, MemberResponse};
use prost::Message;
use quinn::RecvStream;
use tokio::time::{Instant, timeout_at};

use super::address::dial_name;
use super::endpoint::{IDLE_TIMEOUT, Shared};
use super::frame::{
    FrameError, Kind, Outgoing, put_message, put_refusal, put_reply, read_reply, read_required,
};
use crate::types::Member;

/// Member calls go before replication (a forwarded write is a client waiting) and after
/// votes and heartbeats.
const PRIORITY: i32 = 0;

/// Why a member call has no answer. Whether the request may have reached the peer decides
/// whether a caller may send it again: see [`MemberCallError::never_sent`].
#[derive(Debug, Clone, thiserror::Error)]
pub enum MemberCallError {
    /// There is no connection to the peer: the request was never sent.
    #[error("{0}")]
    Unreachable(String),
    /// The peer is there but had nothing to answer with (it is starting or stopping): it did
    /// not act on the request.
    #[error("{peer} refused the call: {reason}")]
    Refused { peer: String, reason: String },
    /// Sent, and no answer within the time given.
    #[error("{peer} did not answer within {after:?}")]
    Timeout { peer: String, after: Duration },
    /// Sent, then the stream or the connection broke.
    #[error("{peer}: {reason}")]
    Broken { peer: String, reason: String },
    /// The peer answered something that is not a `MemberResponse`.
    #[error("{peer} sent a bad reply: {reason}")]
    BadReply { peer: String, reason: String },
}

impl MemberCallError {
    /// Whether the peer certainly did not act on the request, so that sending it again
    /// cannot apply it twice.
    pub fn never_sent(&self) -> bool {
        matches!(
            self,
            MemberCallError::Unreachable(_) | MemberCallError::Refused { .. }
        )
    }
}

/// Makes member calls over the transport's connections; cheap to clone.
#[derive(Clone)]
pub struct MemberClient {
    shared: Arc<Shared>,
}

impl MemberClient {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        MemberClient { shared }
    }

    /// How long ago a leader last replicated to this member (None: never since start).
    pub fn since_leader_contact(&self) -> Option<Duration> {
        self.shared.since_leader_contact()
    }

    /// The round-trip time to `member` as QUIC estimates it on the open connection (None
    /// when there is none): what etcd's `etcd_network_peer_round_trip_time_seconds` samples.
    pub fn round_trip(&self, member: &Member) -> Option<Duration> {
        self.shared.round_trip(&dial_name(member))
    }

    /// Sends `request` to `member` and waits at most `timeout` (dialing included) for its
    /// answer.
    pub async fn call(
        &self,
        member: &Member,
        request: &MemberRequest,
        timeout: Duration,
    ) -> Result<MemberResponse, MemberCallError> {
        let deadline = Instant::now() + timeout;
        let name = dial_name(member);
        let url = member.peer_urls.first().ok_or_else(|| {
            MemberCallError::Unreachable(format!("member {name} has no peer URL"))
        })?;
        let conn = match timeout_at(deadline, self.shared.connection(&name, url)).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return Err(MemberCallError::Unreachable(e.to_string())),
            Err(_) => {
                return Err(MemberCallError::Unreachable(format!(
                    "no connection to {name} within {timeout:?}"
                )));
            }
        };
        let broken = |e: FrameError| MemberCallError::Broken {
            peer: name.clone(),
            reason: e.to_string(),
        };
        let mut buf = vec![Kind::Member as u8];
        put_message(&mut buf, request).map_err(broken)?;
        let exchange = async {
            let (send, mut recv) = conn.open_bi().await?;
            let mut out = Outgoing::new(send);
            out.set_priority(PRIORITY);
            out.write_all(&buf).await?;
            out.finish();
            read_reply::<MemberResponse>(&mut recv).await
        };
        match timeout_at(deadline, exchange).await {
            Err(_) => Err(MemberCallError::Timeout {
                peer: name,
                after: timeout,
            }),
            Ok(Err(FrameError::Protobuf(e))) => Err(MemberCallError::BadReply {
                peer: name,
                reason: e.to_string(),
            }),
            Ok(Err(e)) => Err(broken(e)),
            Ok(Ok(Err(reason))) => Err(MemberCallError::Refused { peer: name, reason }),
            Ok(Ok(Ok(response))) => Ok(response),
        }
    }
}

/// The receiving end of a member call: the request must arrive within the idle timeout; the
/// answer takes as long as the service needs (the caller has its own deadline).
pub(super) async fn serve(
    shared: &Shared,
    peer: &str,
    recv: &mut RecvStream,
    out: &mut Outgoing,
) -> Result<(), FrameError> {
    let body = tokio::time::timeout(IDLE_TIMEOUT, read_required(recv))
        .await
        .map_err(|_| FrameError::Stalled)??;
    let request = MemberRequest::decode(body.as_slice())?;
    let mut reply = Vec::new();
    match shared.member_service().await {
        Some(service) => {
            let response = service.call(peer.to_string(), request).await;
            put_reply(&mut reply, &response)?;
        }
        None => put_refusal(&mut reply, "the member is shutting down"),
    }
    out.write_all(&reply).await
}
