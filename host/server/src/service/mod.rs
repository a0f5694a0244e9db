//! The gRPC services, one file each.

mod auth;
mod cluster;
mod election;
mod ingest;
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
pub use kv::KvService;
pub use lease::LeaseService;
pub use lock::LockService;
pub use maintenance::MaintenanceService;
pub use plugin::PluginService;
pub use watch::WatchService;
