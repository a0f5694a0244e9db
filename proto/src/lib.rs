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
