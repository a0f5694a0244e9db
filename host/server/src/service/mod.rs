//! The gRPC services, one file each.

mod kv;
mod maintenance;

pub use kv::KvService;
pub use maintenance::{ETCD_API_VERSION, MaintenanceService};
