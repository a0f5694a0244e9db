//! The gRPC services, one file each.

mod cluster;
mod internal;
mod kv;
mod lease;
mod maintenance;
mod watch;

pub use cluster::ClusterService;
pub use internal::InternalService;
pub use kv::KvService;
pub use lease::LeaseService;
pub use maintenance::{ETCD_API_VERSION, MaintenanceService};
pub use watch::WatchService;
