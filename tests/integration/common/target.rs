//! Where an etcdctl test's commands go: a lone server, or a follower of a 3-member cluster
//! (which must answer the same). `single_and_cluster!` runs each test body against both.

use std::process::Output;

use serde_json::Value;

use super::cluster::Cluster;
use super::{Server, etcdctl_at, etcdctl_error, stdout_ok};

pub enum Target {
    Single(Server),
    /// Member `member` of the cluster, a follower when the cluster formed.
    Follower {
        cluster: Cluster,
        member: usize,
    },
}

impl Target {
    pub fn single() -> Target {
        Target::Single(Server::start())
    }

    pub fn follower() -> Target {
        let mut cluster = Cluster::start(3);
        let member = cluster.followers()[0];
        Target::Follower { cluster, member }
    }

    pub fn endpoint(&self) -> String {
        match self {
            Target::Single(s) => s.endpoint(),
            Target::Follower { cluster, member } => cluster.endpoint(*member),
        }
    }

    pub fn etcdctl(&self, args: &[&str]) -> Output {
        etcdctl_at(&self.endpoint(), args, None)
    }

    pub fn etcdctl_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        etcdctl_at(&self.endpoint(), args, Some(stdin))
    }

    /// The term response headers carry: a lone member's first; a cluster's is whatever its
    /// election reached, as its leader reports it.
    pub fn raft_term(&self) -> u64 {
        match self {
            Target::Single(_) => 1,
            Target::Follower { cluster, .. } => {
                cluster.wait_status(cluster.current_leader()).raft_term
            }
        }
    }

    /// The leader's member ID, for a member whose own ID is `own`: a lone member leads.
    pub fn leader_id(&self, own: u64) -> u64 {
        match self {
            Target::Single(_) => own,
            Target::Follower { cluster, .. } => cluster.member_id(cluster.current_leader()),
        }
    }

    /// etcdctl's stdout, which must succeed.
    pub fn ok(&self, args: &[&str]) -> String {
        stdout_ok(&self.etcdctl(args))
    }

    /// etcdctl's `Error: ...` line, which must fail.
    pub fn error(&self, args: &[&str]) -> String {
        etcdctl_error(&self.etcdctl(args))
    }

    /// The store revision now.
    pub fn revision(&self) -> i64 {
        let out = self.ok(&["get", "any-key", "-w", "json"]);
        let v: Value = serde_json::from_str(&out).expect("etcdctl -w json");
        v["header"]["revision"].as_i64().expect("header.revision")
    }
}

/// Each test body runs against a lone server (`single::`) and through a cluster follower
/// (`cluster_follower::`).
#[macro_export]
macro_rules! single_and_cluster {
    ($($test:ident),* $(,)?) => {
        mod single {
            $(
                #[test]
                fn $test() {
                    super::$test(&$crate::common::target::Target::single());
                }
            )*
        }
        mod cluster_follower {
            $(
                #[test]
                fn $test() {
                    super::$test(&$crate::common::target::Target::follower());
                }
            )*
        }
    };
}
