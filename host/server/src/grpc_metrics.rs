//! The gRPC families etcd's clients, dashboard and alerts read, as go-grpc-prometheus names
//! them: `grpc_server_started_total` and `grpc_server_handled_total{grpc_code}` for every
//! method (created up front for every code, as etcd's registration does), with `--metrics
//! extensive` `grpc_server_handling_seconds`, and etcd's
//! `etcd_network_client_grpc_{received,sent}_bytes_total`. Every handle is resolved at start:
//! a request costs a map lookup by path and atomic adds, never a registry lookup or a
//! label set.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::Response;
use http_body::Frame;
use metrics::{Counter, Histogram, counter, describe_counter, describe_histogram, histogram};
use tonic::Code;

/// How a method streams, in go-grpc-prometheus' words.
#[derive(Clone, Copy)]
enum Kind {
    Unary,
    ServerStream,
    BidiStream,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Unary => "unary",
            Kind::ServerStream => "server_stream",
            Kind::BidiStream => "bidi_stream",
        }
    }
}

use Kind::{BidiStream, ServerStream, Unary};

/// Every service conclave serves over gRPC, with its methods.
const SERVICES: &[(&str, &[(&str, Kind)])] = &[
    (
        "etcdserverpb.KV",
        &[
            ("Range", Unary),
            ("Put", Unary),
            ("DeleteRange", Unary),
            ("Txn", Unary),
            ("Compact", Unary),
        ],
    ),
    ("etcdserverpb.Watch", &[("Watch", BidiStream)]),
    (
        "etcdserverpb.Lease",
        &[
            ("LeaseGrant", Unary),
            ("LeaseRevoke", Unary),
            ("LeaseKeepAlive", BidiStream),
            ("LeaseTimeToLive", Unary),
            ("LeaseLeases", Unary),
        ],
    ),
    (
        "etcdserverpb.Cluster",
        &[
            ("MemberAdd", Unary),
            ("MemberRemove", Unary),
            ("MemberUpdate", Unary),
            ("MemberList", Unary),
            ("MemberPromote", Unary),
        ],
    ),
    (
        "etcdserverpb.Maintenance",
        &[
            ("Alarm", Unary),
            ("Status", Unary),
            ("Defragment", Unary),
            ("Hash", Unary),
            ("HashKV", Unary),
            ("Snapshot", ServerStream),
            ("MoveLeader", Unary),
            ("Downgrade", Unary),
        ],
    ),
    (
        "etcdserverpb.Auth",
        &[
            ("AuthEnable", Unary),
            ("AuthDisable", Unary),
            ("AuthStatus", Unary),
            ("Authenticate", Unary),
            ("UserAdd", Unary),
            ("UserGet", Unary),
            ("UserList", Unary),
            ("UserDelete", Unary),
            ("UserChangePassword", Unary),
            ("UserGrantRole", Unary),
            ("UserRevokeRole", Unary),
            ("RoleAdd", Unary),
            ("RoleGet", Unary),
            ("RoleList", Unary),
            ("RoleDelete", Unary),
            ("RoleGrantPermission", Unary),
            ("RoleRevokePermission", Unary),
        ],
    ),
    ("v3lockpb.Lock", &[("Lock", Unary), ("Unlock", Unary)]),
    (
        "v3electionpb.Election",
        &[
            ("Campaign", Unary),
            ("Proclaim", Unary),
            ("Leader", Unary),
            ("Observe", ServerStream),
            ("Resign", Unary),
        ],
    ),
    (
        "conclavepb.Plugin",
        &[
            ("Deploy", Unary),
            ("List", Unary),
            ("Status", Unary),
            ("Logs", Unary),
            ("Rollback", Unary),
            ("Remove", Unary),
        ],
    ),
    ("conclavepb.Ingest", &[("Push", Unary)]),
];

/// gRPC's status codes 0 to 16, by the names go-grpc-prometheus gives them.
const CODES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// One method's handles.
struct Method {
    started: Counter,
    handled: [Counter; 17],
    handling: Option<Histogram>,
}

/// Every method's handles by request path, and the byte counters.
pub struct GrpcMetrics {
    /// Index into `methods` by request path.
    paths: HashMap<String, usize>,
    methods: Vec<Method>,
    received: Counter,
    sent: Counter,
}

impl GrpcMetrics {
    /// Creates every series (zero until used, as etcd shows them); with `extensive`, the
    /// per-method latency histograms too.
    pub fn new(extensive: bool) -> Arc<GrpcMetrics> {
        describe();
        let mut paths = HashMap::new();
        let mut methods = Vec::new();
        for (service, list) in SERVICES {
            for (method, kind) in *list {
                let (t, sv, m) = (kind.label(), *service, *method);
                let handled = CODES.map(|code| {
                    counter!("grpc_server_handled_total",
                        "grpc_type" => t, "grpc_service" => sv, "grpc_method" => m,
                        "grpc_code" => code)
                });
                paths.insert(format!("/{service}/{method}"), methods.len());
                methods.push(Method {
                    started: counter!("grpc_server_started_total",
                            "grpc_type" => t, "grpc_service" => sv, "grpc_method" => m),
                    handled,
                    handling: extensive.then(|| {
                        histogram!("grpc_server_handling_seconds",
                                "grpc_type" => t, "grpc_service" => sv, "grpc_method" => m)
                    }),
                });
            }
        }
        Arc::new(GrpcMetrics {
            paths,
            methods,
            received: counter!("etcd_network_client_grpc_received_bytes_total"),
            sent: counter!("etcd_network_client_grpc_sent_bytes_total"),
        })
    }
}

/// The middleware: counts the request in, its bytes both ways, and its status once known
/// (response headers for a trailers-only answer, else the trailers).
pub async fn observe(
    State(metrics): State<Arc<GrpcMetrics>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(&method) = metrics.paths.get(request.uri().path()) else {
        return next.run(request).await;
    };
    metrics.methods[method].started.increment(1);
    let request = request.map(|body| {
        Body::new(Counted {
            inner: body,
            bytes: metrics.received.clone(),
            done: None,
        })
    });
    let started = Instant::now();
    let response = next.run(request).await;
    let finish = Finish {
        metrics: metrics.clone(),
        method,
        started,
    };
    if let Some(code) = header_code(response.headers()) {
        finish.record(code);
        return response.map(|body| {
            Body::new(Counted {
                inner: body,
                bytes: metrics.sent.clone(),
                done: None,
            })
        });
    }
    response.map(|body| {
        Body::new(Counted {
            inner: body,
            bytes: metrics.sent.clone(),
            done: Some(finish),
        })
    })
}

fn header_code(headers: &axum::http::HeaderMap) -> Option<Code> {
    let status = headers.get("grpc-status")?.to_str().ok()?;
    Some(Code::from_i32(status.parse().ok()?))
}

/// What to record when a call's status arrives.
struct Finish {
    metrics: Arc<GrpcMetrics>,
    method: usize,
    started: Instant,
}

impl Finish {
    fn record(&self, code: Code) {
        let method = &self.metrics.methods[self.method];
        let i = (code as usize).min(CODES.len() - 1);
        method.handled[i].increment(1);
        if let Some(h) = &method.handling {
            h.record(self.started.elapsed().as_secs_f64());
        }
    }
}

/// A body whose data bytes are counted, and whose trailers (if `done`) finish the call.
struct Counted {
    inner: Body,
    bytes: Counter,
    done: Option<Finish>,
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        if let Some(Ok(frame)) = &frame {
            if let Some(data) = frame.data_ref() {
                this.bytes.increment(data.len() as u64);
            } else if let Some(trailers) = frame.trailers_ref()
                && let Some(done) = this.done.take()
            {
                done.record(header_code(trailers).unwrap_or(Code::Unknown));
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Counted {
    /// A call whose answer was dropped before its status (the client went away, or reset
    /// the stream) ends Canceled, as go-grpc-prometheus counts it.
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            done.record(Code::Cancelled);
        }
    }
}

fn describe() {
    describe_counter!(
        "grpc_server_started_total",
        "Total number of RPCs started on the server."
    );
    describe_counter!(
        "grpc_server_handled_total",
        "Total number of RPCs completed on the server, regardless of success or failure."
    );
    describe_histogram!(
        "grpc_server_handling_seconds",
        "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server."
    );
    describe_counter!(
        "etcd_network_client_grpc_received_bytes_total",
        "The total number of bytes received from grpc clients."
    );
    describe_counter!(
        "etcd_network_client_grpc_sent_bytes_total",
        "The total number of bytes sent to grpc clients."
    );
}
