//! `--force-new-cluster`, etcd's disaster recovery: a 3-member cluster loses two members for
//! good (the leader among them), and the survivor, restarted with the flag, is a cluster of
//! one that holds every acknowledged write, takes new ones, and stays so after a restart
//! without the flag.

use crate::common;

use common::cluster::Cluster;
use common::stdout_ok;
use serde_json::Value;

fn json(out: &std::process::Output) -> Value {
    let text = stdout_ok(out);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn a_survivor_forced_into_a_new_cluster_keeps_every_write() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.leader();
    let survivor = (0..3).find(|&i| i != leader).expect("a follower");
    for i in 0..40 {
        stdout_ok(&cluster.etcdctl(leader, &["put", &format!("key/{i:02}"), &format!("v{i}")]));
    }
    let acknowledged = json(&cluster.etcdctl(leader, &["get", "key/", "--prefix", "-w", "json"]));
    let revision = acknowledged["header"]["revision"]
        .as_i64()
        .expect("a revision");

    // Quorum lost for good: both others die, and the survivor too, without a clean stop.
    for i in (0..3).filter(|&i| i != survivor) {
        cluster.kill9(i);
    }
    cluster.kill9(survivor);

    cluster.spawn_with(survivor, &["--force-new-cluster"]);
    cluster.wait_for_leader(&[]);
    assert!(
        cluster
            .log(survivor)
            .contains("--force-new-cluster: this member is now the only member"),
        "{}",
        cluster.log(survivor)
    );
    let members = cluster.member_list(survivor).expect("a member list");
    assert_eq!(
        members["members"].as_array().map(Vec::len),
        Some(1),
        "{members}"
    );
    let got = json(&cluster.etcdctl(survivor, &["get", "key/", "--prefix", "-w", "json"]));
    assert_eq!(
        got["kvs"], acknowledged["kvs"],
        "every acknowledged write is there"
    );
    assert!(got["header"]["revision"].as_i64().expect("a revision") >= revision);
    stdout_ok(&cluster.etcdctl(survivor, &["put", "after", "recovery"]));

    // Without the flag, it stays a cluster of one with its data.
    cluster.stop(survivor);
    cluster.restart(survivor);
    let members = cluster.member_list(survivor).expect("a member list");
    assert_eq!(
        members["members"].as_array().map(Vec::len),
        Some(1),
        "{members}"
    );
    let after = stdout_ok(&cluster.etcdctl(survivor, &["get", "after", "--print-value-only"]));
    assert_eq!(after.trim(), "recovery");
    stdout_ok(&cluster.etcdctl(survivor, &["put", "again", "1"]));
}
