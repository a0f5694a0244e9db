//! Watch guarantees through the etcd-client crate and raw gRPC, on real processes: a watch
//! resumed on another member after kill -9 of the one serving it misses nothing and repeats
//! nothing; a watcher that never reads keeps the server's memory bounded and does not slow the
//! other watchers down.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Server;
use common::cluster::Cluster;
use conclave::proto::etcdserverpb::{
    PutRequest, RequestOp, TxnRequest, WatchCreateRequest, WatchRequest, kv_client::KvClient,
    request_op, watch_client::WatchClient, watch_request::RequestUnion,
};
use etcd_client::{Client, WatchOptions};

/// (revision, key, value) of one PUT event: what a watcher saw, in order.
type Seen = (i64, String, String);

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Watches `prefix` on `client` from `from`, appending PUT events to `seen` until the
/// revision `until` has been seen, the stream breaks, or `patience` passes.
async fn collect(
    client: &mut Client,
    prefix: &str,
    from: i64,
    until: Option<i64>,
    patience: Duration,
    seen: &Mutex<Vec<Seen>>,
) -> Result<(), String> {
    let options = WatchOptions::new().with_prefix().with_start_revision(from);
    let mut stream = client
        .watch(prefix, Some(options))
        .await
        .map_err(|e| format!("watch: {e}"))?;
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let last = seen.lock().unwrap().last().map(|s| s.0);
        if until.is_some_and(|u| last.is_some_and(|l| l >= u)) {
            return Ok(());
        }
        let message = tokio::time::timeout_at(deadline, stream.message())
            .await
            .map_err(|_| "no event within the test's patience".to_string())?;
        let resp = match message {
            Ok(Some(resp)) => resp,
            Ok(None) => return Err("the stream ended".into()),
            Err(e) => return Err(format!("the stream broke: {e}")),
        };
        if resp.canceled() {
            return Err(format!("canceled: {}", resp.cancel_reason()));
        }
        let mut seen = seen.lock().unwrap();
        for event in resp.events() {
            let kv = event.kv().expect("an event's kv");
            seen.push((kv.mod_revision(), text(kv.key()), text(kv.value())));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_resumed_on_another_member_after_kill_9_has_no_gap_and_no_duplicate() {
    const WRITES: usize = 300;
    let mut c = Cluster::start(3);
    let served_by = tokio::task::block_in_place(|| c.followers())[0];
    let others: Vec<usize> = (0..3).filter(|&i| i != served_by).collect();

    let mut writer = c.client(others[0]).await;
    let first = writer
        .put("resume/start", "0", None)
        .await
        .expect("first put")
        .header()
        .expect("header")
        .revision();

    // The watch starts on the member about to be killed; the writes run throughout.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut doomed = c.client(served_by).await;
    let watching = {
        let seen = seen.clone();
        tokio::spawn(async move {
            collect(
                &mut doomed,
                "resume/",
                first,
                None,
                Duration::from_secs(120),
                &seen,
            )
            .await
        })
    };
    let writes = tokio::spawn(async move {
        let mut last = 0;
        for n in 1..=WRITES {
            let resp = writer
                .put(format!("resume/{n:04}"), n.to_string(), None)
                .await
                .unwrap_or_else(|e| panic!("put {n}: {e}"));
            last = resp.header().expect("header").revision();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        last
    });

    // Kill it once the watch has seen a good part of the writes, but not all.
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.lock().unwrap().len() < WRITES / 3 {
        assert!(
            Instant::now() < deadline,
            "the watch saw too little before the kill"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::task::block_in_place(|| c.kill9(served_by));
    let ended = tokio::time::timeout(Duration::from_secs(30), watching)
        .await
        .expect("the watch on the killed member ends")
        .expect("the watch task");
    assert!(
        ended.is_err(),
        "the watch on the killed member ended cleanly"
    );

    // Resume on another member from the revision after the last one seen.
    let last_write = writes.await.expect("the writer");
    let resume_from = seen.lock().unwrap().last().map(|s| s.0 + 1).expect("seen");
    assert!(
        resume_from <= last_write,
        "the kill came after the last write"
    );
    let mut survivor = c.client(others[1]).await;
    collect(
        &mut survivor,
        "resume/",
        resume_from,
        Some(last_write),
        Duration::from_secs(60),
        &seen,
    )
    .await
    .expect("the resumed watch");

    // The truth: the whole history from the first revision, read in one watch.
    let truth = Mutex::new(Vec::new());
    collect(
        &mut survivor,
        "resume/",
        first,
        Some(last_write),
        Duration::from_secs(60),
        &truth,
    )
    .await
    .expect("the history");
    let truth = truth.into_inner().unwrap();
    assert_eq!(
        truth.len(),
        WRITES + 1,
        "every write is in the history once"
    );
    assert_eq!(
        *seen.lock().unwrap(),
        truth,
        "no gap, no duplicate, same order"
    );
}

/// Puts keys `first..first + count` under `load/`, `per_txn` in each transaction.
async fn load(
    kv: &mut KvClient<tonic::transport::Channel>,
    first: usize,
    count: usize,
    per_txn: usize,
    value_len: usize,
) {
    let value = vec![b'v'; value_len];
    for t in 0..count / per_txn {
        let success = (0..per_txn)
            .map(|i| RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    key: format!("load/{:07}", first + t * per_txn + i).into_bytes(),
                    value: value.clone(),
                    ..Default::default()
                })),
            })
            .collect();
        kv.txn(TxnRequest {
            success,
            ..Default::default()
        })
        .await
        .expect("txn");
    }
}

/// Resident memory of a process, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}

const EVENTS: usize = 100_000;
const PER_TXN: usize = 100;
const VALUE: usize = 1024;

/// What one server's memory did under two loads of EVENTS events.
struct Growth {
    /// Resident memory after the first load, which brings the store's own buffers
    /// (memtables, caches, the key index) and the hub's ring to their working size.
    after_first: u64,
    /// Growth across the second load.
    second: u64,
}

/// Runs the two loads on a fresh server with a watcher that reads everything, and, if
/// `stall`, one that never reads; checks the reading watcher kept up and still gets a new
/// write afterwards.
async fn two_loads(stall: bool) -> Growth {
    let server = Server::start();
    let channel = tonic::transport::Endpoint::from_shared(server.url())
        .expect("url")
        .connect()
        .await
        .expect("connect");

    // The stalled watcher: created, then never read from.
    let (stalled_tx, stalled_rx) = tokio::sync::mpsc::channel(1);
    let _stalled = if stall {
        stalled_tx
            .send(WatchRequest {
                request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                    key: b"load/".to_vec(),
                    range_end: b"load0".to_vec(),
                    ..Default::default()
                })),
            })
            .await
            .expect("queue the create request");
        Some(
            WatchClient::new(channel.clone())
                .watch(tokio_stream::wrappers::ReceiverStream::new(stalled_rx))
                .await
                .expect("open the stalled stream"),
        )
    } else {
        None
    };

    // A watcher that reads: it must keep up.
    let mut client = server.client().await;
    let mut prompt = client
        .watch("load/", Some(WatchOptions::new().with_prefix()))
        .await
        .expect("open the reading watch");
    let reader = tokio::spawn(async move {
        let mut events = 0;
        while events < 2 * EVENTS {
            match prompt.message().await {
                Ok(Some(resp)) => events += resp.events().len(),
                other => panic!("the reading watch ended after {events} events: {other:?}"),
            }
        }
        (prompt, events)
    });

    let mut kv = KvClient::new(channel);
    load(&mut kv, 0, EVENTS, PER_TXN, VALUE).await;
    let after_first = rss(server.pid());
    load(&mut kv, EVENTS, EVENTS, PER_TXN, VALUE).await;
    let after_second = rss(server.pid());
    let (mut prompt, events) = tokio::time::timeout(Duration::from_secs(120), reader)
        .await
        .expect("the reading watch kept up with the load")
        .expect("reader task");
    assert_eq!(events, 2 * EVENTS);

    // And a new write still reaches the reading watcher.
    client.put("load/last", "x", None).await.expect("put");
    let resp = tokio::time::timeout(Duration::from_secs(5), prompt.message())
        .await
        .expect("the event arrives")
        .expect("stream")
        .expect("message");
    assert_eq!(resp.events()[0].kv().expect("kv").key(), b"load/last");
    Growth {
        after_first,
        second: after_second.saturating_sub(after_first),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_that_never_reads_leaves_memory_bounded_and_others_prompt() {
    // The same loads on a server without the stalled watcher say what the store itself grows.
    let control = two_loads(false).await;
    let stalled = two_loads(true).await;
    // The second load's 100k events of 1 KiB are ~100 MiB: a server that queued them for the
    // stalled watcher would grow by that much more than the control.
    let extra = stalled.second.saturating_sub(control.second);
    assert!(
        extra < 32 * 1024 * 1024,
        "with a watcher that never reads, memory grew {} MiB over {EVENTS} events, against \
         {} MiB without it (after the first load: {} MiB against {} MiB)",
        stalled.second >> 20,
        control.second >> 20,
        stalled.after_first >> 20,
        control.after_first >> 20
    );
}

/// One raw Watch RPC stream: requests in, responses out, as a client library sees them.
struct RawWatch {
    requests: tokio::sync::mpsc::Sender<WatchRequest>,
    responses: tonic::Streaming<conclave::proto::etcdserverpb::WatchResponse>,
}

impl RawWatch {
    async fn open(server: &Server, first: RequestUnion) -> RawWatch {
        let (requests, rx) = tokio::sync::mpsc::channel(16);
        requests
            .send(WatchRequest {
                request_union: Some(first),
            })
            .await
            .expect("queue the first request");
        let responses = WatchClient::connect(server.url())
            .await
            .expect("connect")
            .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .expect("open a watch stream")
            .into_inner();
        RawWatch {
            requests,
            responses,
        }
    }

    async fn send(&self, request: RequestUnion) {
        self.requests
            .send(WatchRequest {
                request_union: Some(request),
            })
            .await
            .expect("send a watch request");
    }

    async fn next(&mut self) -> conclave::proto::etcdserverpb::WatchResponse {
        tokio::time::timeout(Duration::from_secs(10), self.responses.message())
            .await
            .expect("a response in time")
            .expect("the stream is healthy")
            .expect("the stream is open")
    }
}

fn create(key: &str, watch_id: i64) -> RequestUnion {
    RequestUnion::CreateRequest(WatchCreateRequest {
        key: key.as_bytes().to_vec(),
        watch_id,
        ..Default::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_ids_cancels_filters_and_progress_as_etcd() {
    use conclave::proto::etcdserverpb::{
        WatchCancelRequest, WatchProgressRequest, watch_create_request::FilterType,
    };
    let server = Server::start_with(&["--watch-progress-notify-interval", "1s"]);
    let mut client = server.client().await;

    // Automatic IDs start at 0; a chosen one is kept; a taken one is refused as etcd words it.
    let mut w = RawWatch::open(&server, create("a", 0)).await;
    let r = w.next().await;
    assert!(r.created && !r.canceled && r.watch_id == 0, "{r:?}");
    w.send(create("b", 0)).await;
    assert_eq!(w.next().await.watch_id, 1);
    w.send(create("c", 7)).await;
    assert_eq!(w.next().await.watch_id, 7);
    w.send(create("d", 7)).await;
    let dup = w.next().await;
    assert!(dup.created && dup.canceled && dup.watch_id == -1, "{dup:?}");
    assert_eq!(
        dup.cancel_reason,
        "mvcc: duplicate watch ID provided on the WatchStream"
    );
    w.send(RequestUnion::CreateRequest(WatchCreateRequest {
        key: b"e".to_vec(),
        start_revision: -1,
        ..Default::default()
    }))
    .await;
    let negative = w.next().await;
    assert!(negative.canceled && negative.watch_id == -1, "{negative:?}");
    assert_eq!(
        negative.cancel_reason,
        "etcdserver: mvcc: required revision has been compacted"
    );

    // Cancel: a known watcher is answered, an unknown one is not (the next answer is the
    // progress response).
    w.send(RequestUnion::CancelRequest(WatchCancelRequest {
        watch_id: 1,
    }))
    .await;
    let canceled = w.next().await;
    assert!(canceled.canceled && canceled.watch_id == 1, "{canceled:?}");
    w.send(RequestUnion::CancelRequest(WatchCancelRequest {
        watch_id: 99,
    }))
    .await;
    let revision = client
        .put("a", "1", None)
        .await
        .expect("put")
        .header()
        .expect("header")
        .revision();
    let event = w.next().await;
    assert_eq!((event.watch_id, event.events.len()), (0, 1), "{event:?}");
    w.send(RequestUnion::ProgressRequest(WatchProgressRequest {}))
        .await;
    let progress = w.next().await;
    assert_eq!(progress.watch_id, -1, "{progress:?}");
    assert!(progress.events.is_empty());
    assert_eq!(progress.header.expect("header").revision, revision);

    // NOPUT: only the delete reaches the watcher.
    let mut deletes = RawWatch::open(
        &server,
        RequestUnion::CreateRequest(WatchCreateRequest {
            key: b"f".to_vec(),
            filters: vec![FilterType::Noput as i32],
            ..Default::default()
        }),
    )
    .await;
    assert!(deletes.next().await.created);
    client.put("f", "1", None).await.expect("put");
    client.delete("f", None).await.expect("delete");
    let only = deletes.next().await;
    assert_eq!(only.events.len(), 1, "{only:?}");
    assert_eq!(
        only.events[0].r#type,
        conclave::proto::mvccpb::event::EventType::Delete as i32
    );

    // progress_notify: an idle watcher hears the current revision at the interval (1 s).
    let mut idle = RawWatch::open(
        &server,
        RequestUnion::CreateRequest(WatchCreateRequest {
            key: b"quiet".to_vec(),
            progress_notify: true,
            ..Default::default()
        }),
    )
    .await;
    let created = idle.next().await;
    assert!(created.created);
    let notify = idle.next().await;
    assert_eq!(notify.watch_id, created.watch_id, "{notify:?}");
    assert!(notify.events.is_empty() && !notify.canceled);
    let now = client
        .get("any", None)
        .await
        .expect("get")
        .header()
        .expect("header")
        .revision();
    assert_eq!(notify.header.expect("header").revision, now);
}
