//! etcd's v3 API (and Conclave's own Raft-log command) as Rust types: prost messages,
//! tonic clients and servers, and serde support in proto3 JSON with etcd's field names.

macro_rules! proto_module {
    ($(#[$meta:meta])* $name:ident, $file:literal) => {
        $(#[$meta])*
        // Generated code: not held to our lint and documentation standards.
        #[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
        pub mod $name {
            include!(concat!(env!("OUT_DIR"), "/", $file, ".rs"));
            include!(concat!(env!("OUT_DIR"), "/", $file, ".serde.rs"));
        }
    };
}

proto_module!(
    /// etcd's MVCC types: `KeyValue` and `Event`.
    mvccpb,
    "mvccpb"
);
proto_module!(
    /// etcd's stored auth records: `User`, `Role`, `Permission`.
    authpb,
    "authpb"
);
proto_module!(
    /// etcd's stored lease record, as its snapshot files hold it.
    leasepb,
    "leasepb"
);
proto_module!(
    /// etcd's v3 client API: the KV, Watch, Lease, Cluster, Maintenance and Auth services.
    etcdserverpb,
    "etcdserverpb"
);
proto_module!(
    /// etcd's Lock service.
    v3lockpb,
    "v3lockpb"
);
proto_module!(
    /// etcd's Election service.
    v3electionpb,
    "v3electionpb"
);
proto_module!(
    /// Conclave's own types: the `Command` carried by the Raft log.
    conclavepb,
    "conclavepb"
);

/// The gRPC metadata key with which a client asks Maintenance.Snapshot for a file format:
/// `etcd` (the default: a bbolt file that etcdctl and etcd read) or `conclave` (the store's
/// own stream, which also keeps each revision's commit time). Both restore into conclave.
pub const SNAPSHOT_FORMAT_METADATA: &str = "conclave-snapshot-format";

/// The end of the range holding every key that starts with `prefix`: the prefix with its last
/// byte below 0xff incremented and what follows dropped; `"\0"` (every key from `prefix` on)
/// when no such byte exists.
///
/// ```
/// assert_eq!(conclave_proto::prefix_range_end(b"abc"), b"abd");
/// assert_eq!(conclave_proto::prefix_range_end(b"a\xff"), b"b");
/// assert_eq!(conclave_proto::prefix_range_end(b"\xff"), b"\0");
/// ```
pub fn prefix_range_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// What a log entry's command is, in a word and a key: for logs and openraft's summaries.
impl std::fmt::Display for conclavepb::Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use conclavepb::command::Request;
        let key = |k: &[u8]| String::from_utf8_lossy(k).into_owned();
        match &self.request {
            Some(Request::Put(p)) => write!(f, "put {}", key(&p.key)),
            Some(Request::DeleteRange(d)) => write!(f, "delete {}", key(&d.key)),
            Some(Request::Txn(t)) => write!(
                f,
                "txn ({} compares, {}/{} ops)",
                t.compare.len(),
                t.success.len(),
                t.failure.len()
            ),
            Some(Request::Compaction(c)) => write!(f, "compact {}", c.revision),
            Some(Request::LeaseGrant(g)) => write!(f, "lease grant {:x} ttl {}", g.id, g.ttl),
            Some(Request::LeaseRevoke(r)) => write!(f, "lease revoke {:x}", r.id),
            Some(Request::LeaseCheckpoint(c)) => {
                write!(f, "lease checkpoint ({} leases)", c.checkpoints.len())
            }
            Some(Request::PluginDeploy(d)) => {
                let spec = d.spec.as_ref();
                write!(
                    f,
                    "plugin deploy {} ({} bytes)",
                    spec.map_or("", |s| s.name.as_str()),
                    d.wasm.len()
                )
            }
            Some(Request::PluginRemove(r)) => write!(f, "plugin remove {}", r.name),
            Some(Request::Auth(_)) => write!(f, "auth change"),
            Some(Request::Alarm(a)) => write!(
                f,
                "alarm action {} type {} member {:x}",
                a.action, a.alarm, a.member_id
            ),
            Some(Request::PluginRollback(r)) => write!(f, "plugin rollback {}", r.name),
            Some(Request::PluginFlush(p)) => write!(
                f,
                "plugin flush {} v{} window {}..{} ({} ops)",
                p.name,
                p.version,
                p.start_ms,
                p.end_ms,
                p.ops.len()
            ),
            None => write!(f, "empty"),
        }
    }
}
