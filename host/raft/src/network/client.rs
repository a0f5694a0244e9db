//! The dialing end of the peer transport: openraft's `RaftNetworkV2` for one target member.
//! Every RPC is a stream of its own on the pair's connection; a replication session is one
//! long-lived stream of pipelined requests; a snapshot is one low-priority stream. Timeouts
//! are openraft's (`RPCOption::soft_ttl`), and errors map to openraft's: `Unreachable` when
//! there is no connection (openraft then backs off), `Timeout` when the peer is too slow,
//! `NetworkError` when a stream breaks.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use conclave_proto::conclavepb as pb;
use futures::{Stream, StreamExt};
use openraft::base::{BoxFuture, BoxStream, OptionalSend};
use openraft::errors::{
    NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RPCTypes, RaftNetworkFactory, v2::RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, StreamAppendResult,
    TransferLeaderRequest, TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::{ErrorSubject, ErrorVerb, StorageError};
use prost::Message;
use quinn::Connection;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout_at};

use super::address::dial_name;
use super::endpoint::{Shared, handshake_failure, is_tls_failure};
use super::frame::{
    FrameError, Kind, MAX_FRAME, Outgoing, SNAPSHOT_CHUNK, parse_reply, put_message, read_frame,
    read_reply,
};
use crate::codec::{SnapshotHeader, Wire};
use crate::snapshot::SnapshotSource;
use crate::state_machine::Snapshot;
use crate::types::{Member, TypeConfig, Vote};

/// Stream priorities (quinn sends higher first): votes and heartbeats before replication,
/// replication before snapshots.
const HIGH: i32 = 1;
const NORMAL: i32 = 0;
const LOW: i32 = -1;

/// A replication request larger than this is sent as several consecutive ones, so that no
/// frame nears [`MAX_FRAME`].
const SPLIT_AT: usize = MAX_FRAME / 4;

type Error = RPCError<TypeConfig>;

/// openraft's factory of [`PeerNetwork`]s; all share the transport's connections.
#[derive(Clone)]
pub struct PeerNetworkFactory {
    shared: Arc<Shared>,
}

impl PeerNetworkFactory {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        PeerNetworkFactory { shared }
    }

    fn client(&self, target: u64, node: &Member, priority: i32) -> PeerNetwork {
        PeerNetwork {
            shared: self.shared.clone(),
            target,
            name: dial_name(node),
            url: node.peer_urls.first().cloned(),
            priority,
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for PeerNetworkFactory {
    type Network = PeerNetwork;

    async fn new_client(&mut self, target: u64, node: &Member) -> PeerNetwork {
        self.client(target, node, NORMAL)
    }

    /// Heartbeats (and lease probes) are the leader's liveness: they go first.
    async fn new_heartbeat_client(&mut self, target: u64, node: &Member) -> PeerNetwork {
        self.client(target, node, HIGH)
    }

    async fn new_snapshot_client(&mut self, target: u64, node: &Member) -> PeerNetwork {
        self.client(target, node, LOW)
    }
}

/// RPCs to one member. Creating one connects nothing: the first RPC does.
#[derive(Clone)]
pub struct PeerNetwork {
    shared: Arc<Shared>,
    target: u64,
    name: String,
    url: Option<String>,
    /// The priority of this client's replication streams.
    priority: i32,
}

/// Datagrams received on `conn` so far: if an RPC times out and this has not moved, the
/// peer is not there at all.
fn heard(conn: &Connection) -> u64 {
    conn.stats().udp_rx.datagrams
}

/// The context an RPC's errors are reported with.
#[derive(Clone)]
struct Peer {
    shared: Arc<Shared>,
    target: u64,
    name: String,
}

impl Peer {
    /// Counts a failed RPC to the peer under etcd's name, which its etcdMembersDown alert
    /// reads. Only failures pass here, so the hot path pays nothing.
    fn failed(&self) {
        metrics::counter!("etcd_network_peer_sent_failures_total", "To" => format!("{:x}", self.target))
            .increment(1);
    }

    fn timeout(&self, action: RPCTypes, after: Duration) -> Error {
        self.failed();
        RPCError::Timeout(Timeout {
            action,
            id: self.shared.node_id(),
            target: self.target,
            timeout: after,
        })
    }

    /// A timed-out RPC: also drops the connection if the peer has gone silent.
    fn timed_out(
        &self,
        conn: &Connection,
        heard_before: u64,
        action: RPCTypes,
        after: Duration,
    ) -> Error {
        if heard(conn) == heard_before {
            self.shared.silent(&self.name, conn);
        }
        self.timeout(action, after)
    }

    fn stream_error(&self, e: FrameError) -> Error {
        self.failed();
        match e.connection_lost() {
            Some(lost) => {
                let why = match is_tls_failure(lost) {
                    true => format!("{}: ", handshake_failure(lost)),
                    false => String::new(),
                };
                RPCError::Unreachable(Unreachable::from_string(format!(
                    "{} (member {}): {why}{e}",
                    self.name, self.target
                )))
            }
            None => RPCError::Network(NetworkError::from_string(format!(
                "{} (member {}): {e}",
                self.name, self.target
            ))),
        }
    }

    /// The peer answered that it cannot serve the RPC (its Raft has stopped): as good as
    /// unreachable until it is back.
    fn refused(&self, reason: String) -> Error {
        self.failed();
        RPCError::Unreachable(Unreachable::from_string(format!(
            "{} (member {}) refused: {reason}",
            self.name, self.target
        )))
    }

    fn bad_reply(&self, e: impl std::fmt::Display) -> Error {
        self.failed();
        RPCError::Network(NetworkError::from_string(format!(
            "{} (member {}) sent a bad reply: {e}",
            self.name, self.target
        )))
    }
}

impl PeerNetwork {
    fn peer(&self) -> Peer {
        Peer {
            shared: self.shared.clone(),
            target: self.target,
            name: self.name.clone(),
        }
    }

    /// The pair's connection, waiting for a dial at most until `deadline`.
    async fn connect(&self, deadline: Instant) -> Result<Connection, Unreachable<TypeConfig>> {
        let outcome = self.dial(deadline).await;
        if outcome.is_err() {
            self.peer().failed();
        }
        outcome
    }

    async fn dial(&self, deadline: Instant) -> Result<Connection, Unreachable<TypeConfig>> {
        let Some(url) = &self.url else {
            return Err(Unreachable::from_string(format!(
                "member {} ({}) has no peer URL",
                self.target, self.name
            )));
        };
        match timeout_at(deadline, self.shared.connection(&self.name, url)).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(Unreachable::new(&e)),
            Err(_) => Err(Unreachable::from_string(format!(
                "no connection to {} within the RPC timeout (still dialing)",
                self.name
            ))),
        }
    }

    /// One request on a stream of its own, one reply, within `option.soft_ttl()`.
    async fn unary<Resp: Wire>(
        &self,
        kind: Kind,
        action: RPCTypes,
        priority: i32,
        request: &impl Message,
        option: &RPCOption,
    ) -> Result<Resp, Error> {
        let ttl = option.soft_ttl();
        let deadline = Instant::now() + ttl;
        let peer = self.peer();
        let conn = self.connect(deadline).await?;
        let mut buf = vec![kind as u8];
        put_message(&mut buf, request).map_err(|e| peer.stream_error(e))?;
        let heard_before = heard(&conn);
        let exchange = async {
            let (send, mut recv) = conn.open_bi().await?;
            let mut out = Outgoing::new(send);
            out.set_priority(priority);
            out.write_all(&buf).await?;
            out.finish();
            read_reply::<Resp::Proto>(&mut recv).await
        };
        match timeout_at(deadline, exchange).await {
            Err(_) => Err(peer.timed_out(&conn, heard_before, action, ttl)),
            Ok(Err(e)) => Err(peer.stream_error(e)),
            Ok(Ok(Err(reason))) => Err(peer.refused(reason)),
            Ok(Ok(Ok(proto))) => Resp::from_proto(proto).map_err(|e| peer.bad_reply(e)),
        }
    }

    /// Opens a replication session's stream and starts its writer (with `first` and then the
    /// rest of `input`) and reader.
    async fn open_session<S>(
        &self,
        first: AppendEntriesRequest<TypeConfig>,
        input: S,
        ttl: Duration,
    ) -> Result<AppendSession, Error>
    where
        S: Stream<Item = AppendEntriesRequest<TypeConfig>> + Send + Unpin + 'static,
    {
        let deadline = Instant::now() + ttl;
        let peer = self.peer();
        let conn = self.connect(deadline).await?;
        let heard_before = heard(&conn);
        let (send, recv) = match timeout_at(deadline, conn.open_bi()).await {
            Err(_) => {
                return Err(peer.timed_out(&conn, heard_before, RPCTypes::AppendEntries, ttl));
            }
            Ok(Err(e)) => return Err(peer.stream_error(e.into())),
            Ok(Ok(stream)) => stream,
        };
        let out = Outgoing::new(send);
        out.set_priority(self.priority);
        let (events, rx) = mpsc::unbounded_channel();
        let input = futures::stream::iter([first]).chain(input);
        let writer = AbortOnDrop(tokio::spawn(write_appends(out, input, events.clone())));
        let reader = AbortOnDrop(tokio::spawn(read_appends(recv, events)));
        Ok(AppendSession {
            events: rx,
            outstanding: VecDeque::new(),
            last_progress: Instant::now(),
            heard: heard(&conn),
            ttl,
            finished: false,
            peer,
            conn,
            _tasks: [writer, reader],
        })
    }

    async fn send_snapshot(
        &self,
        vote: Vote,
        snapshot: Snapshot,
        ttl: Duration,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let peer = self.peer();
        let deadline = Instant::now() + ttl;
        let conn = self.connect(deadline).await?;
        let file_error = |e: std::io::Error| -> StreamingError<TypeConfig> {
            StreamingError::StorageError(StorageError::from_io_error(
                ErrorSubject::Snapshot(Some(snapshot.meta.signature())),
                ErrorVerb::Read,
                e,
            ))
        };
        let file = snapshot
            .snapshot
            .open(snapshot.meta.last_log_id)
            .await
            .map_err(file_error)?;
        let mut file = tokio::fs::File::from_std(file);
        let len = file.metadata().await.map_err(file_error)?.len();
        let header = SnapshotHeader {
            vote,
            meta: snapshot.meta.clone(),
        };
        let mut head = vec![Kind::Snapshot as u8];
        put_message(&mut head, &header.into_proto()).map_err(|e| peer.stream_error(e))?;
        head.extend_from_slice(&len.to_be_bytes());

        let action = RPCTypes::InstallSnapshot;
        let heard_before = heard(&conn);
        let (send, mut recv) = match timeout_at(deadline, conn.open_bi()).await {
            Err(_) => return Err(peer.timed_out(&conn, heard_before, action, ttl).into()),
            Ok(Err(e)) => return Err(peer.stream_error(e.into()).into()),
            Ok(Ok(stream)) => stream,
        };
        let mut out = Outgoing::new(send);
        out.set_priority(LOW);
        // Each piece must leave within the RPC timeout: a stalled transfer fails, a long
        // one does not.
        let write = async |out: &mut Outgoing, buf: &[u8]| {
            let heard_before = heard(&conn);
            match tokio::time::timeout(ttl, out.write_all(buf)).await {
                Err(_) => Err(peer.timed_out(&conn, heard_before, action, ttl)),
                Ok(Err(e)) => Err(peer.stream_error(e)),
                Ok(Ok(())) => Ok(()),
            }
        };
        write(&mut out, &head).await?;
        let mut chunk = vec![0u8; SNAPSHOT_CHUNK];
        let mut left = len;
        while left > 0 {
            let want = left.min(SNAPSHOT_CHUNK as u64) as usize;
            let piece = &mut chunk[..want];
            file.read_exact(piece).await.map_err(file_error)?;
            write(&mut out, piece).await?;
            left -= want as u64;
        }
        out.finish();
        // The reply comes once the peer has installed the snapshot.
        let heard_before = heard(&conn);
        match tokio::time::timeout(ttl, read_reply::<pb::SnapshotResponse>(&mut recv)).await {
            Err(_) => Err(peer.timed_out(&conn, heard_before, action, ttl).into()),
            Ok(Err(e)) => Err(peer.stream_error(e).into()),
            Ok(Ok(Err(reason))) => Err(peer.refused(reason).into()),
            Ok(Ok(Ok(proto))) => {
                SnapshotResponse::from_proto(proto).map_err(|e| peer.bad_reply(e).into())
            }
        }
    }
}

impl RaftNetworkV2<TypeConfig> for PeerNetwork {
    type SnapshotData = SnapshotSource;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, Error> {
        let request = rpc.into_proto();
        self.unary(
            Kind::AppendEntries,
            RPCTypes::AppendEntries,
            self.priority,
            &request,
            &option,
        )
        .await
    }

    /// One stream for the whole replication session: requests are written as openraft
    /// produces them (pipelined), replies read in order. `soft_ttl` bounds the setup and the
    /// wait for progress while requests are unanswered; an idle session may last. Nothing is
    /// dialed before the first request: openraft's backoff after a failure is a delay in
    /// yielding that request, so dialing first would retry without one.
    fn stream_append<'s, S>(
        &'s mut self,
        input: S,
        option: RPCOption,
    ) -> BoxFuture<'s, Result<BoxStream<'s, Result<StreamAppendResult<TypeConfig>, Error>>, Error>>
    where
        S: Stream<Item = AppendEntriesRequest<TypeConfig>> + OptionalSend + Unpin + 'static,
    {
        let start = Session::Idle {
            net: self.clone(),
            input,
            ttl: option.soft_ttl(),
        };
        let responses: BoxStream<'s, _> = Box::pin(futures::stream::unfold(start, Session::next));
        Box::pin(std::future::ready(Ok(responses)))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, Error> {
        let request = rpc.to_proto();
        self.unary(Kind::Vote, RPCTypes::Vote, HIGH, &request, &option)
            .await
    }

    /// Asked of the peer's `Raft::pre_vote`, on its own stream kind: a pre-vote must never
    /// be taken for a vote.
    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, Error> {
        let request = rpc.to_proto();
        self.unary(Kind::PreVote, RPCTypes::Vote, HIGH, &request, &option)
            .await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        // Dropping the transfer resets its stream: the peer discards the partial file.
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            result = self.send_snapshot(vote, snapshot, option.soft_ttl()) => result,
        }
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, Error> {
        let request = req.to_proto();
        self.unary(
            Kind::TransferLeader,
            RPCTypes::TransferLeader,
            HIGH,
            &request,
            &option,
        )
        .await
    }
}

/// Aborts a task when its owner goes away.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What the writer and reader tasks of a replication session report.
enum Event {
    /// A request (or a part of a split one) was handed to the stream at this time.
    Sent(Instant),
    WriteFailed(FrameError),
    Reply(Vec<u8>),
    ReadFailed(FrameError),
    /// The peer finished its side.
    End,
}

/// Writes the session's requests as openraft yields them, then finishes the stream. Dropped
/// (aborted) before that, the stream is reset.
async fn write_appends<S>(mut out: Outgoing, mut input: S, events: mpsc::UnboundedSender<Event>)
where
    S: Stream<Item = AppendEntriesRequest<TypeConfig>> + Unpin,
{
    // The stream's kind goes in front of its first request.
    let mut buf = vec![Kind::StreamAppend as u8];
    while let Some(request) = input.next().await {
        let parts = match encode_append(request, &mut buf) {
            Ok(parts) => parts,
            Err(e) => {
                let _ = events.send(Event::WriteFailed(e));
                return;
            }
        };
        for _ in 0..parts {
            if events.send(Event::Sent(Instant::now())).is_err() {
                return;
            }
        }
        if let Err(e) = out.write_all(&buf).await {
            let _ = events.send(Event::WriteFailed(e));
            return;
        }
        buf.clear();
    }
    out.finish();
}

/// Appends `request` to `buf` as one frame, or as several consecutive requests if it is
/// large; returns how many. Each part answers on its own, which openraft takes as partial
/// progress; every part carries the leader's commit, which a follower applies only up to what
/// it holds.
fn encode_append(
    request: AppendEntriesRequest<TypeConfig>,
    buf: &mut Vec<u8>,
) -> Result<usize, FrameError> {
    let proto = request.into_proto();
    if proto.entries.len() <= 1 || proto.encoded_len() <= SPLIT_AT {
        put_message(buf, &proto)?;
        return Ok(1);
    }
    let pb::AppendEntriesRequest {
        vote,
        mut prev_log_id,
        entries,
        leader_commit,
    } = proto;
    let mut parts = 0;
    let mut part: Vec<pb::LogEntry> = Vec::new();
    let mut size = 0;
    let flush = |part: Vec<pb::LogEntry>, prev: Option<pb::LogId>, buf: &mut Vec<u8>| {
        put_message(
            buf,
            &pb::AppendEntriesRequest {
                vote,
                prev_log_id: prev,
                entries: part,
                leader_commit,
            },
        )
    };
    for entry in entries {
        // The entry's own bytes plus its tag and length prefix.
        let len = entry.encoded_len() + 16;
        if !part.is_empty() && size + len > SPLIT_AT {
            let last = part.last().and_then(|e| e.log_id);
            flush(std::mem::take(&mut part), prev_log_id, buf)?;
            prev_log_id = last;
            parts += 1;
            size = 0;
        }
        size += len;
        part.push(entry);
    }
    flush(part, prev_log_id, buf)?;
    Ok(parts + 1)
}

/// Reads the session's replies until the peer finishes its side.
async fn read_appends(mut recv: quinn::RecvStream, events: mpsc::UnboundedSender<Event>) {
    loop {
        let event = match read_frame(&mut recv).await {
            Ok(Some(body)) => Event::Reply(body),
            Ok(None) => Event::End,
            Err(e) => Event::ReadFailed(e),
        };
        let last = !matches!(event, Event::Reply(_));
        if events.send(event).is_err() || last {
            return;
        }
    }
}

/// openraft's view of a replication session: nothing until the first request, then the
/// session's replies.
enum Session<S> {
    Idle {
        net: PeerNetwork,
        input: S,
        ttl: Duration,
    },
    Running(AppendSession),
    Done,
}

impl<S> Session<S>
where
    S: Stream<Item = AppendEntriesRequest<TypeConfig>> + Send + Unpin + 'static,
{
    async fn next(self) -> Option<(Item, Self)> {
        let session = match self {
            Session::Done => return None,
            Session::Running(session) => session,
            Session::Idle {
                net,
                mut input,
                ttl,
            } => {
                let first = input.next().await?;
                match net.open_session(first, input, ttl).await {
                    Ok(session) => session,
                    Err(e) => return Some((Err(e), Session::Done)),
                }
            }
        };
        let (item, session) = session.next().await?;
        Some((item, Session::Running(session)))
    }
}

/// A replication session seen from openraft: one reply per request sent, in order.
struct AppendSession {
    events: mpsc::UnboundedReceiver<Event>,
    /// When each unanswered request was sent, oldest first.
    outstanding: VecDeque<Instant>,
    last_progress: Instant,
    /// Datagrams received when the current wait began.
    heard: u64,
    ttl: Duration,
    finished: bool,
    peer: Peer,
    conn: Connection,
    _tasks: [AbortOnDrop; 2],
}

type Item = Result<StreamAppendResult<TypeConfig>, Error>;

impl AppendSession {
    async fn next(mut self) -> Option<(Item, Self)> {
        if self.finished {
            return None;
        }
        loop {
            // While requests are unanswered, some reply must come within the timeout.
            let deadline = self
                .outstanding
                .front()
                .map(|sent| (*sent).max(self.last_progress) + self.ttl);
            let event = match deadline {
                Some(deadline) => match timeout_at(deadline, self.events.recv()).await {
                    Ok(event) => event,
                    Err(_) => {
                        let e = self.peer.timed_out(
                            &self.conn,
                            self.heard,
                            RPCTypes::AppendEntries,
                            self.ttl,
                        );
                        return self.fail(e);
                    }
                },
                None => self.events.recv().await,
            };
            match event {
                Some(Event::Sent(at)) => {
                    if self.outstanding.is_empty() {
                        self.heard = heard(&self.conn);
                    }
                    self.outstanding.push_back(at);
                }
                Some(Event::Reply(body)) => {
                    if self.outstanding.pop_front().is_none() {
                        let e = self.peer.bad_reply("a reply to no request");
                        return self.fail(e);
                    }
                    self.last_progress = Instant::now();
                    self.heard = heard(&self.conn);
                    let result = match parse_reply(&body) {
                        Ok(Ok(msg)) => pb::StreamAppendResult::decode(msg)
                            .map_err(|e| self.peer.bad_reply(e))
                            .and_then(|p| {
                                StreamAppendResult::<TypeConfig>::from_proto(p)
                                    .map_err(|e| self.peer.bad_reply(e))
                            }),
                        Ok(Err(reason)) => Err(self.peer.refused(reason)),
                        Err(e) => Err(self.peer.bad_reply(e)),
                    };
                    return match result {
                        Ok(result) => {
                            // A refused append ends the session, as on the peer.
                            self.finished = result.is_err();
                            Some((Ok(result), self))
                        }
                        Err(e) => self.fail(e),
                    };
                }
                Some(Event::End) => {
                    if self.outstanding.is_empty() {
                        return None;
                    }
                    let e = self.peer.bad_reply(format!(
                        "the peer ended the session with {} requests unanswered",
                        self.outstanding.len()
                    ));
                    return self.fail(e);
                }
                Some(Event::WriteFailed(e)) | Some(Event::ReadFailed(e)) => {
                    let e = self.peer.stream_error(e);
                    return self.fail(e);
                }
                None => {
                    let e = self.peer.bad_reply("the session's tasks ended");
                    return self.fail(e);
                }
            }
        }
    }

    fn fail(mut self, e: Error) -> Option<(Item, Self)> {
        self.finished = true;
        Some((Err(e), self))
    }
}

#[cfg(test)]
mod tests {
    use conclave_proto::conclavepb::command::Request;
    use conclave_proto::etcdserverpb::PutRequest;
    use openraft::EntryPayload;
    use openraft::impls::leader_id_adv::LeaderId;

    use super::*;
    use crate::codec;
    use crate::types::{Entry, LogId};

    fn log_id(index: u64) -> LogId {
        LogId::new(
            LeaderId {
                term: 2,
                node_id: 1,
            },
            index,
        )
    }

    fn request(entries: u64, value_len: usize) -> AppendEntriesRequest<TypeConfig> {
        AppendEntriesRequest {
            vote: Vote::new_committed(2, 1),
            prev_log_id: Some(log_id(9)),
            entries: (10..10 + entries)
                .map(|index| Entry {
                    log_id: log_id(index),
                    payload: EntryPayload::Normal(pb::Command {
                        request: Some(Request::Put(PutRequest {
                            key: index.to_be_bytes().to_vec(),
                            value: vec![7; value_len],
                            ..Default::default()
                        })),
                        stamp_ms: 0,
                        checked_for: None,
                    }),
                })
                .collect(),
            leader_commit: Some(log_id(12)),
        }
    }

    /// The frames in `buf`, decoded.
    fn frames(mut buf: &[u8]) -> Vec<AppendEntriesRequest<TypeConfig>> {
        let mut out = Vec::new();
        while !buf.is_empty() {
            let len = u32::from_be_bytes(buf[..4].try_into().unwrap()) as usize;
            assert!(len <= MAX_FRAME);
            out.push(codec::decode(&buf[4..4 + len]).unwrap());
            buf = &buf[4 + len..];
        }
        out
    }

    #[test]
    fn small_requests_are_one_frame() {
        let mut buf = Vec::new();
        assert_eq!(encode_append(request(3, 10), &mut buf).unwrap(), 1);
        let frames = frames(&buf);
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].entries, request(3, 10).entries);
    }

    #[test]
    fn large_requests_are_split_into_consecutive_ones() {
        let value = SPLIT_AT / 3;
        let original = request(7, value);
        let mut buf = Vec::new();
        let parts = encode_append(request(7, value), &mut buf).unwrap();
        let frames = frames(&buf);
        assert_eq!(parts, frames.len());
        assert!(parts > 1, "split into {parts}");
        let mut prev = original.prev_log_id;
        let mut entries = Vec::new();
        for frame in frames {
            assert_eq!(frame.vote, original.vote);
            assert_eq!(frame.leader_commit, original.leader_commit);
            assert_eq!(frame.prev_log_id, prev, "each part follows the one before");
            prev = frame.entries.last().map(|e| e.log_id);
            entries.extend(frame.entries);
        }
        assert_eq!(entries, original.entries);
    }
}
