//! The receiving end of the peer transport: accepts connections (the TLS handshake refuses a
//! peer whose certificate is not from the cluster CA), then serves every stream a peer opens,
//! whichever end dialed the connection, into the local `Raft`. A received snapshot goes to a
//! temporary file in the snapshot directory and is handed to Raft once complete.

use std::fmt::Display;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, TransferLeaderRequest, VoteRequest,
};
use parking_lot::Mutex;
use quinn::{Connection, Endpoint, RecvStream, SendStream};
use tokio::io::AsyncWriteExt;
use tracing::{debug, info, warn};

use super::endpoint::{self, HANDSHAKE_TIMEOUT, IDLE_TIMEOUT, Service, Shared};
use super::frame::{
    self, FrameError, Kind, Outgoing, SNAPSHOT_CHUNK, code, put_refusal, put_reply, read_frame,
    read_required,
};
use crate::codec::{self, SnapshotHeader, Wire};
use crate::snapshot::SnapshotSource;
use crate::state_machine::Raft;
use crate::state_machine::Snapshot;
use crate::types::TypeConfig;

/// Received snapshots are written to `download-<n>.part` until complete.
const DOWNLOAD_PREFIX: &str = "download-";
const DOWNLOAD_EXT: &str = "part";
/// A snapshot sender that sends nothing for this long has given up.
const SNAPSHOT_STALL: Duration = Duration::from_secs(30);

/// Accepts connections until the endpoint is closed.
pub(crate) async fn accept_loop(shared: Arc<Shared>, endpoint: Endpoint) {
    while let Some(incoming) = endpoint.accept().await {
        tokio::spawn(accept(shared.clone(), incoming));
    }
    debug!("peer accept loop ended");
}

async fn accept(shared: Arc<Shared>, incoming: quinn::Incoming) {
    let remote = incoming.remote_address();
    let connecting = match incoming.accept() {
        Ok(connecting) => connecting,
        Err(e) => {
            warn!(%remote, error = %e, "refused a peer connection");
            return;
        }
    };
    let conn = match tokio::time::timeout(HANDSHAKE_TIMEOUT, connecting).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            warn!(%remote, error = %e, "refused a peer connection: {}", endpoint::handshake_failure(&e));
            return;
        }
        Err(_) => {
            warn!(%remote, "refused a peer connection: no handshake within {HANDSHAKE_TIMEOUT:?}");
            return;
        }
    };
    match endpoint::peer_name(&conn) {
        Ok(name) => {
            info!(peer = %name, %remote, "peer connected");
            shared.register(conn, name, false);
        }
        Err(e) => {
            warn!(%remote, error = %e, "refused a peer connection: no member name");
            conn.close(code::WRONG_PEER, b"no member name");
        }
    }
}

/// Serves the streams `peer` opens on `conn` until it closes.
pub(crate) async fn serve_connection(shared: Arc<Shared>, conn: Connection, peer: String) {
    let reason = loop {
        match conn.accept_bi().await {
            Ok((send, recv)) => {
                tokio::spawn(serve_stream(shared.clone(), peer.clone(), send, recv));
            }
            Err(e) => break e,
        }
    };
    shared.closed(&peer, &conn, &reason);
    if endpoint::ordinary_close(&reason) {
        debug!(%peer, %reason, "peer connection closed");
    } else {
        info!(%peer, %reason, "peer connection closed");
    }
}

async fn serve_stream(shared: Arc<Shared>, peer: String, send: SendStream, mut recv: RecvStream) {
    let mut out = Outgoing::new(send);
    let kind = match tokio::time::timeout(IDLE_TIMEOUT, frame::read_kind(&mut recv)).await {
        Ok(Ok(Ok(kind))) => kind,
        Ok(Ok(Err(byte))) => {
            warn!(%peer, byte, "a peer stream of unknown kind; closing it");
            let _ = recv.stop(code::PROTOCOL);
            out.reset(code::PROTOCOL);
            return;
        }
        Ok(Err(e)) => {
            debug!(%peer, error = %e, "a peer stream ended before its kind");
            return;
        }
        Err(_) => {
            debug!(%peer, "a peer stream sent nothing; closing it");
            let _ = recv.stop(code::CANCELLED);
            return;
        }
    };
    let Some(service) = shared.service().await else {
        let _ = recv.stop(code::SHUTDOWN);
        out.reset(code::SHUTDOWN);
        return;
    };
    let raft = service.raft.clone();
    let result = match kind {
        Kind::AppendEntries => {
            unary(
                &mut recv,
                &mut out,
                |req: AppendEntriesRequest<TypeConfig>| {
                    let answer = raft.append_entries(req);
                    let shared = shared.clone();
                    async move {
                        let answer = answer.await;
                        if answer
                            .as_ref()
                            .is_ok_and(|a| !matches!(a, AppendEntriesResponse::HigherVote(_)))
                        {
                            shared.leader_contact();
                        }
                        answer
                    }
                },
            )
            .await
        }
        Kind::Vote => {
            unary(&mut recv, &mut out, |req: VoteRequest<TypeConfig>| {
                raft.vote(req)
            })
            .await
        }
        Kind::PreVote => {
            unary(&mut recv, &mut out, |req: VoteRequest<TypeConfig>| {
                raft.pre_vote(req)
            })
            .await
        }
        Kind::TransferLeader => {
            unary(
                &mut recv,
                &mut out,
                |req: TransferLeaderRequest<TypeConfig>| raft.handle_transfer_leader(req),
            )
            .await
        }
        Kind::StreamAppend => stream_append(&shared, raft, recv, &mut out).await,
        Kind::Snapshot => receive_snapshot(&shared, &service, &peer, &mut recv, &mut out).await,
        Kind::Member => super::member::serve(&shared, &peer, &mut recv, &mut out).await,
    };
    match result {
        Ok(()) => out.finish(),
        Err(e) if e.connection_lost().is_some() || e.abandoned() => {
            debug!(%peer, ?kind, error = %e, "a peer RPC ended early")
        }
        Err(e) => {
            warn!(%peer, ?kind, error = %e, "bad peer stream; closing it");
            out.reset(code::PROTOCOL);
        }
    }
}

/// One request, one reply. The request must arrive within the idle timeout.
async fn unary<Req, Resp, E, F, Fut>(
    recv: &mut RecvStream,
    out: &mut Outgoing,
    call: F,
) -> Result<(), FrameError>
where
    Req: Wire,
    Resp: Wire,
    E: Display,
    F: FnOnce(Req) -> Fut,
    Fut: Future<Output = Result<Resp, E>>,
{
    let body = tokio::time::timeout(IDLE_TIMEOUT, read_required(recv))
        .await
        .map_err(|_| FrameError::Stalled)??;
    let request: Req = codec::decode(&body)?;
    let mut reply = Vec::new();
    match call(request).await {
        Ok(response) => put_reply(&mut reply, &response.into_proto())?,
        Err(e) => put_refusal(&mut reply, &e.to_string()),
    }
    out.write_all(&reply).await
}

/// A replication session: requests as they come, answered in order by `Raft::stream_append`,
/// until the dialer finishes its side or a request is refused. May stay idle for long.
async fn stream_append(
    shared: &Shared,
    raft: Raft,
    recv: RecvStream,
    out: &mut Outgoing,
) -> Result<(), FrameError> {
    let bad: Arc<Mutex<Option<FrameError>>> = Arc::default();
    let input = futures::stream::unfold((recv, bad.clone()), |(mut recv, bad)| async move {
        let next = match read_frame(&mut recv).await {
            Ok(Some(body)) => {
                codec::decode::<AppendEntriesRequest<TypeConfig>>(&body).map_err(FrameError::from)
            }
            Ok(None) => return None,
            Err(e) => Err(e),
        };
        match next {
            Ok(request) => Some((request, (recv, bad))),
            Err(e) => {
                let _ = recv.stop(code::PROTOCOL);
                *bad.lock() = Some(e);
                None
            }
        }
    });
    let mut output = std::pin::pin!(raft.stream_append(input));
    let mut reply = Vec::new();
    while let Some(item) = output.next().await {
        reply.clear();
        let last = match item {
            Ok(result) => {
                if result.is_ok() {
                    shared.leader_contact();
                }
                put_reply(&mut reply, &result.to_proto())?;
                result.is_err()
            }
            Err(fatal) => {
                put_refusal(&mut reply, &fatal.to_string());
                true
            }
        };
        out.write_all(&reply).await?;
        if last {
            break;
        }
    }
    match bad.lock().take() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// A full snapshot: its header, its length, its bytes to a temporary file; then Raft installs
/// it (or refuses it for a stale vote) and the dialer gets Raft's answer.
async fn receive_snapshot(
    shared: &Shared,
    service: &Service,
    peer: &str,
    recv: &mut RecvStream,
    out: &mut Outgoing,
) -> Result<(), FrameError> {
    let header = tokio::time::timeout(SNAPSHOT_STALL, read_required(recv))
        .await
        .map_err(|_| FrameError::Stalled)??;
    let header: SnapshotHeader = codec::decode(&header)?;
    // openraft panics on a snapshot beyond its sender's leadership: refuse it here instead.
    if let Some(last) = &header.meta.last_log_id
        && last.leader_id > header.vote.leader_id
    {
        let mut reply = Vec::new();
        put_refusal(
            &mut reply,
            &format!(
                "snapshot up to {last} is beyond the sender's vote {}",
                header.vote
            ),
        );
        return out.write_all(&reply).await;
    }
    let len = tokio::time::timeout(SNAPSHOT_STALL, frame::read_u64(recv))
        .await
        .map_err(|_| FrameError::Stalled)??;
    let path = service.snapshots.join(format!(
        "{DOWNLOAD_PREFIX}{}.{DOWNLOAD_EXT}",
        shared.next_download()
    ));
    info!(%peer, bytes = len, last_log = ?header.meta.last_log_id, "receiving a snapshot");
    if let Err(e) = download(recv, &path, len).await {
        remove(&path);
        return Err(e);
    }
    let snapshot = Snapshot {
        meta: header.meta,
        snapshot: SnapshotSource::received(path.clone()),
    };
    let installed = service
        .raft
        .install_full_snapshot(header.vote, snapshot)
        .await;
    // Installing moves the file into place; a snapshot Raft did not want is still here.
    if path.exists() {
        remove(&path);
    }
    let mut reply = Vec::new();
    match installed {
        Ok(response) => put_reply(&mut reply, &response.to_proto())?,
        Err(fatal) => put_refusal(&mut reply, &fatal.to_string()),
    }
    out.write_all(&reply).await
}

async fn download(recv: &mut RecvStream, path: &Path, len: u64) -> Result<(), FrameError> {
    let mut file = tokio::fs::File::create(path).await?;
    let mut left = len;
    while left > 0 {
        let want = left.min(SNAPSHOT_CHUNK as u64) as usize;
        let chunk = tokio::time::timeout(SNAPSHOT_STALL, recv.read_chunk(want, true))
            .await
            .map_err(|_| FrameError::Stalled)??
            .ok_or(FrameError::Truncated)?;
        file.write_all(&chunk.bytes).await?;
        left -= chunk.bytes.len() as u64;
    }
    file.flush().await?;
    // Installed, it becomes the member's current snapshot, which it may send on: durable first.
    file.sync_all().await?;
    Ok(())
}

fn remove(path: &Path) {
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        warn!(path = %path.display(), error = %e, "cannot remove a partial snapshot");
    }
}

/// Removes the partial snapshots an earlier run left behind.
pub(crate) fn remove_downloads(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path: PathBuf = entry.path();
        let is_download = path.extension().is_some_and(|e| e == DOWNLOAD_EXT)
            && path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(DOWNLOAD_PREFIX));
        if is_download {
            remove(&path);
        }
    }
}
