//! Real clusters in one process, over the real QUIC transport: three members on 127.0.0.1
//! with certificates from one CA, each with its log and store on fjall in a temp dir. Writes
//! replicate, a new leader takes over when the leader goes, a member that was down while the
//! log was purged catches up by snapshot, and a member with a certificate from another CA is
//! kept out; malformed frames cost their stream only.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use conclave_proto::conclavepb::Command;
use conclave_proto::conclavepb::command::Request;
use conclave_proto::etcdserverpb::{PutRequest, RangeRequest};
use conclave_raft::{LogStore, Member, PeerTransport, Raft, StateMachine, TypeConfig, codec};
use conclave_store::Store;
use conclave_tls::{CertFiles, PeerTls, add_member_cert, init_certs};
use openraft::async_runtime::watch::WatchReceiver;
use openraft::errors::RPCError;
use openraft::network::{RPCOption, RaftNetworkFactory, v2::RaftNetworkV2};
use openraft::raft::{VoteRequest, VoteResponse};
use openraft::{Config, SnapshotPolicy};
use tempfile::TempDir;
use tokio::task::JoinHandle;

/// Every wait in these tests ends by this deadline, or fails.
const DEADLINE: Duration = Duration::from_secs(30);

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// etcd's timing: heartbeat 100 ms, elections after 1-2 s. Pre-vote on, so a member cut off
/// from the others does not raise its term. Snapshots only when asked for.
fn config() -> Arc<Config> {
    let config = Config {
        cluster_name: "conclave-test".into(),
        heartbeat_interval: 100,
        election_timeout_min: 1000,
        election_timeout_max: 2000,
        install_snapshot_timeout: 5000,
        snapshot_policy: SnapshotPolicy::Never,
        max_in_snapshot_log_to_keep: 0,
        enable_pre_vote: Some(true),
        ..Default::default()
    };
    Arc::new(config.validate().expect("a valid raft config"))
}

fn tls(certs: &CertFiles, name: &str) -> PeerTls {
    let member = certs
        .members
        .iter()
        .find(|m| m.name == name)
        .expect("a certificate for the member");
    PeerTls::load(&member.cert, &member.key, &certs.ca_cert).expect("load the peer TLS")
}

/// Binds a member's peer port; after a restart the same port, which the stopped member's
/// tasks may hold a moment longer.
async fn bind(addr: SocketAddr, tls: &PeerTls) -> PeerTransport {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match PeerTransport::bind(addr, tls) {
            Ok(transport) => return transport,
            // Polling a condition, with a deadline: quinn offers nothing to wait on.
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("cannot bind {addr}: {e}"),
        }
    }
}

/// What a stopped member keeps for its restart: who and where it is, and its data.
struct Stopped {
    id: u64,
    name: String,
    dir: PathBuf,
    addr: SocketAddr,
    tls: PeerTls,
    store: Arc<Store>,
}

/// A member: its Raft, its store and its transport.
struct Node {
    id: u64,
    name: String,
    dir: PathBuf,
    addr: SocketAddr,
    tls: PeerTls,
    store: Arc<Store>,
    raft: Raft,
    transport: PeerTransport,
    serving: JoinHandle<()>,
    log_closed: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl Node {
    fn member(&self) -> Member {
        member(&self.name, self.addr)
    }

    /// Stops the member's Raft and transport, and waits until its log can be opened again.
    async fn stop(self) -> Stopped {
        self.raft.shutdown().await.expect("shut the raft down");
        self.transport.shutdown().await;
        let Node {
            id,
            name,
            dir,
            addr,
            tls,
            store,
            raft,
            transport,
            serving,
            log_closed,
        } = self;
        drop((raft, transport));
        tokio::time::timeout(DEADLINE, serving)
            .await
            .expect("the accept loop ends")
            .expect("the accept loop did not panic");
        tokio::time::timeout(DEADLINE, log_closed)
            .await
            .expect("the raft log closes once the raft is gone");
        Stopped {
            id,
            name,
            dir,
            addr,
            tls,
            store,
        }
    }
}

fn member(name: &str, addr: SocketAddr) -> Member {
    Member {
        name: name.to_string(),
        peer_urls: vec![format!("https://{addr}")],
        client_urls: Vec::new(),
    }
}

/// Starts a member's Raft over an already bound transport.
async fn start(
    id: u64,
    name: &str,
    dir: &Path,
    tls: PeerTls,
    store: Arc<Store>,
    transport: PeerTransport,
) -> Node {
    let log = LogStore::open(dir.join("raft"))
        .await
        .expect("open the log");
    let log_closed = Box::pin(log.closed());
    let snapshots = dir.join("snapshots");
    let sm = StateMachine::new(store.clone(), &snapshots, None).expect("open the state machine");
    let raft = Raft::new(id, config(), transport.network(), log, sm)
        .await
        .expect("start the raft");
    let serving = transport.serve(raft.clone(), snapshots);
    Node {
        id,
        name: name.to_string(),
        dir: dir.to_path_buf(),
        addr: transport.local_addr(),
        tls,
        store,
        raft,
        transport,
        serving,
        log_closed,
    }
}

struct Cluster {
    _root: TempDir,
    certs: CertFiles,
    root: PathBuf,
    nodes: Vec<Node>,
}

impl Cluster {
    /// Three members n1..n3 (ids 1..3), initialized through n1, with a leader elected.
    async fn start() -> Cluster {
        init_logs();
        let root = tempfile::tempdir().expect("temp dir");
        let names: Vec<String> = (1..=3).map(|i| format!("n{i}")).collect();
        let certs = init_certs(&root.path().join("certs"), &names, &[], false).expect("certs");
        let mut nodes = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let dir = root.path().join(name);
            let tls = tls(&certs, name);
            let transport = bind("127.0.0.1:0".parse().unwrap(), &tls).await;
            let store = Arc::new(Store::open(&dir.join("store")).expect("open the store"));
            nodes.push(start(i as u64 + 1, name, &dir, tls, store, transport).await);
        }
        let members: BTreeMap<u64, Member> = nodes.iter().map(|n| (n.id, n.member())).collect();
        nodes[0]
            .raft
            .initialize(members)
            .await
            .expect("initialize the cluster");
        let cluster = Cluster {
            root: root.path().to_path_buf(),
            _root: root,
            certs,
            nodes,
        };
        cluster.leader().await;
        cluster
    }

    fn node(&self, id: u64) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .expect("a running member")
    }

    /// The leader every running member agrees on, one of them.
    async fn leader(&self) -> u64 {
        let running: Vec<u64> = self.nodes.iter().map(|n| n.id).collect();
        let first = self.nodes[0]
            .raft
            .wait(Some(DEADLINE))
            .metrics(
                |m| m.current_leader.is_some_and(|l| running.contains(&l)),
                "a leader among the running members",
            )
            .await
            .expect("a leader is elected");
        let leader = first.current_leader.expect("a leader");
        for node in &self.nodes {
            node.raft
                .wait(Some(DEADLINE))
                .metrics(
                    |m| m.current_leader == Some(leader),
                    format!("{} follows {leader}", node.name),
                )
                .await
                .expect("every member follows the leader");
        }
        self.node(leader)
            .raft
            .wait(Some(DEADLINE))
            // A new leader takes writes once a quorum has acknowledged it (its lease).
            .leader_with_quorum_acked(None, "the leader leads")
            .await
            .expect("the leader leads");
        leader
    }

    /// Writes `key=value` through the leader; returns the entry's index.
    async fn put(&self, key: &str, value: &str) -> u64 {
        let leader = self.leader().await;
        let response = self
            .node(leader)
            .raft
            .client_write(put(key, value))
            .await
            .expect("the leader commits the write");
        response.log_id.index
    }

    /// Waits until every running member has applied `index` and reads `key` as `value`.
    async fn applied_everywhere(&self, index: u64, key: &str, value: &str) {
        for node in &self.nodes {
            node.raft
                .wait(Some(DEADLINE))
                .applied_index_at_least(Some(index), format!("{} applies {index}", node.name))
                .await
                .expect("the write is applied");
            assert_eq!(
                get(&node.store, key).as_deref(),
                Some(value.as_bytes()),
                "{} reads {key}",
                node.name
            );
        }
    }

    /// Stops member `id` and takes it out of the cluster's list.
    async fn stop(&mut self, id: u64) -> Stopped {
        let at = self
            .nodes
            .iter()
            .position(|n| n.id == id)
            .expect("a running member");
        self.nodes.remove(at).stop().await
    }

    async fn shutdown(self) {
        for node in self.nodes {
            node.stop().await;
        }
    }
}

fn put(key: &str, value: &str) -> Command {
    Command {
        request: Some(Request::Put(PutRequest {
            key: key.as_bytes().to_vec(),
            value: value.as_bytes().to_vec(),
            ..Default::default()
        })),
        stamp_ms: 0,
        checked_for: None,
    }
}

fn get(store: &Store, key: &str) -> Option<Vec<u8>> {
    let response = store
        .range(&RangeRequest {
            key: key.as_bytes().to_vec(),
            ..Default::default()
        })
        .expect("range");
    response.kvs.into_iter().next().map(|kv| kv.value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_members_replicate_and_survive_losing_the_leader() {
    let mut cluster = Cluster::start().await;

    let index = cluster.put("greeting", "hello").await;
    cluster.applied_everywhere(index, "greeting", "hello").await;

    // A few more, pipelined on the replication streams.
    let mut last = index;
    for i in 0..50 {
        last = cluster
            .put(&format!("key-{i}"), &format!("value-{i}"))
            .await;
    }
    cluster.applied_everywhere(last, "key-49", "value-49").await;

    let old = cluster.leader().await;
    cluster.stop(old).await;
    let new = cluster.leader().await;
    assert_ne!(new, old, "a new leader among the two left");

    let index = cluster.put("greeting", "hello again").await;
    cluster
        .applied_everywhere(index, "greeting", "hello again")
        .await;

    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_that_was_down_catches_up_by_snapshot() {
    let mut cluster = Cluster::start().await;
    let index = cluster.put("before", "1").await;
    cluster.applied_everywhere(index, "before", "1").await;

    let leader = cluster.leader().await;
    let down = cluster
        .nodes
        .iter()
        .map(|n| n.id)
        .find(|id| *id != leader)
        .expect("a follower");
    let Stopped {
        id,
        name,
        dir,
        addr,
        tls,
        store,
    } = cluster.stop(down).await;

    let mut last = 0;
    for i in 0..100 {
        last = cluster
            .put(&format!("while-down-{i}"), &format!("{i}"))
            .await;
    }
    cluster
        .applied_everywhere(last, "while-down-99", "99")
        .await;

    // The leader snapshots and drops its whole log: the member can only catch up by snapshot.
    let leader_raft = cluster.node(leader).raft.clone();
    leader_raft
        .trigger()
        .snapshot()
        .await
        .expect("trigger a snapshot");
    let metrics = leader_raft
        .wait(Some(DEADLINE))
        .metrics(
            |m| m.snapshot.is_some_and(|s| s.index >= last),
            "the leader has a snapshot of everything",
        )
        .await
        .expect("a snapshot is built");
    let snapshot = metrics.snapshot.expect("a snapshot");
    leader_raft
        .trigger()
        .purge_log(snapshot.index)
        .await
        .expect("trigger a purge");
    leader_raft
        .wait(Some(DEADLINE))
        .purged(Some(snapshot), "the leader purges its log")
        .await
        .expect("the log is purged");

    let transport = bind(addr, &tls).await;
    let node = start(id, &name, &dir, tls, store, transport).await;
    let metrics = node
        .raft
        .wait(Some(DEADLINE))
        .metrics(
            |m| m.snapshot.is_some_and(|s| s.index >= snapshot.index),
            "the returning member installs the leader's snapshot",
        )
        .await
        .expect("the member catches up by snapshot");
    assert!(metrics.snapshot.is_some());
    assert!(
        std::fs::read_dir(dir.join("snapshots"))
            .expect("the snapshot dir")
            .flatten()
            .all(|e| e.path().extension().is_none_or(|x| x != "part")),
        "no partial download is left behind"
    );
    cluster.nodes.push(node);

    // And it follows the log from there on.
    let index = cluster.put("after", "2").await;
    cluster.applied_everywhere(index, "after", "2").await;
    cluster
        .applied_everywhere(index, "while-down-42", "42")
        .await;
    cluster.applied_everywhere(index, "before", "1").await;

    cluster.shutdown().await;
}

/// Sends a vote that must not get through: the transport's reason it did not.
async fn refused_vote(client: &mut impl RaftNetworkV2<TypeConfig>) -> String {
    let refused = client
        .vote(
            VoteRequest::new(openraft::Vote::new(100, 4), None),
            RPCOption::new(Duration::from_secs(4)),
        )
        .await;
    match refused {
        Err(RPCError::Unreachable(e)) => e.to_string(),
        other => panic!("a vote from a foreign certificate got through: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_with_a_certificate_from_another_ca_is_refused() {
    let cluster = Cluster::start().await;
    let leader = cluster.leader().await;

    // n4's certificate comes from a CA of its own, not the cluster's.
    let other = init_certs(
        &cluster.root.join("other-ca"),
        &["n4".to_string()],
        &[],
        false,
    )
    .expect("other certs");
    let intruder_tls = tls(&other, "n4");
    let intruder_transport = bind("127.0.0.1:0".parse().unwrap(), &intruder_tls).await;
    let dir = cluster.root.join("n4");
    let store = Arc::new(Store::open(&dir.join("store")).expect("open the store"));
    let intruder = start(4, "n4", &dir, intruder_tls, store, intruder_transport).await;

    // Its RPCs to the cluster fail: the handshake refuses it.
    let mut factory = intruder.transport.network();
    let target = cluster.node(leader);
    let mut client = factory.new_client(target.id, &target.member()).await;
    let message = refused_vote(&mut client).await;
    assert!(message.contains("TLS handshake failed"), "{message}");

    // Trusting the cluster's CA as well does not help it: the members refuse its certificate.
    let both = cluster.root.join("both-cas.crt");
    let pems = [&cluster.certs.ca_cert, &other.ca_cert]
        .map(|p| std::fs::read_to_string(p).expect("read a CA certificate"));
    std::fs::write(&both, pems.concat()).expect("write the CA bundle");
    let n4 = &other.members[0];
    let sly_tls = PeerTls::load(&n4.cert, &n4.key, &both).expect("load n4 with both CAs");
    let sly = bind("127.0.0.1:0".parse().unwrap(), &sly_tls).await;
    let mut client = sly.network().new_client(target.id, &target.member()).await;
    let message = refused_vote(&mut client).await;
    assert!(message.contains("refused the TLS handshake"), "{message}");
    sly.shutdown().await;

    // Nor can the cluster reach it when it is added as a learner.
    cluster
        .node(leader)
        .raft
        .add_learner(4, intruder.member(), false)
        .await
        .expect("add the learner");

    // The others keep working.
    let index = cluster.put("still", "working").await;
    cluster.applied_everywhere(index, "still", "working").await;
    let metrics = cluster.node(leader).raft.metrics().borrow_watched().clone();
    let replication = metrics.replication.expect("leader metrics");
    assert_eq!(
        replication.get(&4).cloned().flatten(),
        None,
        "nothing was replicated to the intruder"
    );
    assert_eq!(
        intruder.raft.metrics().borrow_watched().last_log_index,
        None
    );

    intruder.stop().await;
    cluster.shutdown().await;
}

/// Sends `bytes` on a new stream of `conn` and says whether the member reset the stream as
/// malformed (code 1).
async fn refused_as_malformed(conn: &quinn::Connection, bytes: &[u8]) -> bool {
    let (mut send, mut recv) = conn.open_bi().await.expect("open a stream");
    send.write_all(bytes).await.expect("send");
    send.finish().expect("finish");
    match recv.read_to_end(1 << 20).await {
        Err(quinn::ReadToEndError::Read(quinn::ReadError::Reset(code))) => {
            code == quinn::VarInt::from_u32(1)
        }
        other => panic!("expected a reset, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_frames_close_their_stream_and_nothing_else() {
    let cluster = Cluster::start().await;
    // A raw QUIC client with a certificate from the cluster CA.
    let tester = add_member_cert(&cluster.root.join("certs"), "tester", &[]).expect("a cert");
    let tester_tls =
        PeerTls::load(&tester.cert, &tester.key, &cluster.certs.ca_cert).expect("tester TLS");
    let crypto =
        quinn::crypto::rustls::QuicClientConfig::try_from(tester_tls.client_config().clone())
            .expect("QUIC client config");
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).expect("endpoint");
    let target = cluster.node(1);
    let conn = endpoint
        .connect_with(
            quinn::ClientConfig::new(Arc::new(crypto)),
            target.addr,
            &target.name,
        )
        .expect("dial")
        .await
        .expect("handshake");

    assert!(
        refused_as_malformed(&conn, &[9]).await,
        "an unknown stream kind"
    );
    let mut too_long = vec![2];
    too_long.extend_from_slice(&u32::MAX.to_be_bytes());
    assert!(
        refused_as_malformed(&conn, &too_long).await,
        "a frame over the limit"
    );
    assert!(
        refused_as_malformed(&conn, &[2, 0, 0, 0, 3, 0xff, 0xff, 0xff]).await,
        "an undecodable vote"
    );
    assert!(
        refused_as_malformed(&conn, &[2, 0, 0, 0, 10, 1, 2]).await,
        "a truncated frame"
    );
    assert!(
        refused_as_malformed(&conn, &[5, 0, 0, 0, 1, 0xff]).await,
        "an undecodable replication request"
    );

    // A well-formed (stale) vote on the same connection still gets its answer.
    let request = VoteRequest::<TypeConfig>::new(openraft::Vote::new(0, 9), None);
    let body = codec::encode(&request);
    let mut bytes = vec![2];
    bytes.extend_from_slice(&(body.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&body);
    let (mut send, mut recv) = conn.open_bi().await.expect("open a stream");
    send.write_all(&bytes).await.expect("send");
    send.finish().expect("finish");
    let reply = recv.read_to_end(1 << 20).await.expect("a reply");
    assert!(reply.len() > 5, "a reply frame");
    assert_eq!(reply[4], 0, "a reply, not a refusal");
    let response: VoteResponse<TypeConfig> = codec::decode(&reply[5..]).expect("a vote response");
    assert!(!response.vote_granted, "a stale vote is not granted");

    conn.close(0u32.into(), b"done");
    endpoint.wait_idle().await;

    // And the cluster carries on.
    let index = cluster.put("after-garbage", "fine").await;
    cluster
        .applied_everywhere(index, "after-garbage", "fine")
        .await;
    cluster.shutdown().await;
}
