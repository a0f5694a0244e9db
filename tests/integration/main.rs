//! conclave's integration tests, one binary with a module per topic: each test starts the real
//! `conclave` binary (a lone server or a cluster, tests/integration/common) and drives it as
//! its users do, with etcdctl, etcd's clients, conclave's own client, HTTP and Prometheus.
//! `cargo test --test integration watch::` runs one topic.

#[macro_use]
mod common;

mod auth;
mod backup;
mod client_kv;
mod client_lock;
mod client_registry;
mod client_watch_lease;
mod cluster;
mod durability;
mod election;
mod etcd_flags;
mod etcd_snapshot;
mod etcdctl_authority;
mod etcdctl_kv;
mod etcdctl_lease;
mod etcdctl_lock_elect;
mod etcdctl_watch;
mod examples;
mod force_new_cluster;
mod gateway;
mod health;
mod lease;
mod lock;
mod maintenance;
mod membership;
mod metrics;
mod plugins;
mod profiles;
mod prometheus;
mod robustness;
mod security;
mod tls;
mod watch;
