//! The gRPC services, one file each.

mod auth;
mod cluster;
mod election;
mod ingest;
mod internal;
mod kv;
mod lease;
mod lock;
mod maintenance;
mod plugin;
mod watch;

pub use auth::AuthService;
pub use cluster::ClusterService;
pub use election::ElectionService;
pub use ingest::IngestService;
pub use internal::InternalService;
pub use kv::KvService;
pub use lease::{LeaseService, random_lease_id};
pub use lock::LockService;
pub use maintenance::{ETCD_API_VERSION, MaintenanceService};
pub use plugin::{MAX_PLUGIN_BYTES, PluginService};
pub use watch::WatchService;

/// Marks a request a member passed on to another (the leader, or every member), so that it
/// is not passed on again.
const FORWARDED: &str = "conclave-forwarded";

/// `message` as a request passed on by a member, which checked its caller already.
fn forwarded<T>(node: &crate::node::Node, message: T) -> tonic::Request<T> {
    let mut request = node.auth.member_request(message);
    request
        .metadata_mut()
        .insert(FORWARDED, tonic::metadata::MetadataValue::from_static("1"));
    request
}
