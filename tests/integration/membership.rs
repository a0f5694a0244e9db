//! Membership changes through etcdctl 3.4 against a real 3-member cluster: member add (learners
//! and their limits), promote, remove and move-leader, with etcd's answers and errors, and
//! etcd's --strict-reconfig-check refusing changes that would break quorum.

use crate::common;

use common::cluster::Cluster;
use common::{etcdctl_error, stdout_ok};
use serde_json::Value;

/// The member ID etcdctl prints in `Member <hex> added to cluster <hex>`.
fn added_id(out: &str) -> u64 {
    let hex = out
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("no member ID in {out:?}"));
    u64::from_str_radix(hex, 16).unwrap_or_else(|_| panic!("not a hex member ID: {out:?}"))
}

fn listed(c: &Cluster, i: usize, id: u64) -> Option<Value> {
    let list = c.member_list(i).expect("member list");
    list["members"]
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["ID"].as_u64() == Some(id))
        .cloned()
}

#[test]
fn learners_are_added_refused_promotion_until_in_sync_and_removed() {
    let mut c = Cluster::start(3);
    let f = c.followers()[0];
    // A learner whose process never starts: nothing listens on port 1.
    let out = stdout_ok(&c.etcdctl(
        f,
        &[
            "member",
            "add",
            "m4",
            "--learner",
            "--peer-urls=https://127.0.0.1:1",
        ],
    ));
    assert!(out.contains("added to cluster"), "{out}");
    let id = added_id(&out);
    let member = listed(&c, f, id).expect("the new learner is listed");
    assert_eq!(member["isLearner"], true, "{member}");
    assert_eq!(member["peerURLs"][0], "https://127.0.0.1:1");

    let second = c.etcdctl(
        f,
        &[
            "member",
            "add",
            "m5",
            "--learner",
            "--peer-urls=https://127.0.0.1:2",
        ],
    );
    assert!(
        etcdctl_error(&second).contains("etcdserver: too many learner members"),
        "{second:?}"
    );
    let taken = c.etcdctl(
        f,
        &["member", "add", "m6", "--peer-urls=https://127.0.0.1:1"],
    );
    assert!(
        etcdctl_error(&taken).contains("etcdserver: Peer URLs already exists"),
        "{taken:?}"
    );
    let hex = format!("{id:x}");
    let early = c.etcdctl(f, &["member", "promote", &hex]);
    assert!(
        etcdctl_error(&early)
            .contains("etcdserver: can only promote a learner member which is in sync with leader"),
        "{early:?}"
    );
    let voter = format!("{:x}", c.member_id(f));
    let not_learner = c.etcdctl(f, &["member", "promote", &voter]);
    assert!(
        etcdctl_error(&not_learner).contains("etcdserver: can only promote a learner member"),
        "{not_learner:?}"
    );

    let out = stdout_ok(&c.etcdctl(f, &["member", "remove", &hex]));
    assert!(out.contains("removed from cluster"), "{out}");
    assert!(listed(&c, f, id).is_none(), "the learner is gone");
    let again = c.etcdctl(f, &["member", "remove", &hex]);
    assert!(
        etcdctl_error(&again).contains("etcdserver: member not found"),
        "{again:?}"
    );
}

#[test]
fn a_removed_follower_leaves_and_the_others_write_on() {
    let mut c = Cluster::start(3);
    let followers = c.followers();
    let (gone, stays) = (followers[0], followers[1]);
    let gone_id = c.member_id(gone);
    let out = stdout_ok(&c.etcdctl(stays, &["member", "remove", &format!("{gone_id:x}")]));
    assert!(out.contains("removed from cluster"), "{out}");
    let list = c.member_list(stays).expect("member list");
    assert_eq!(list["members"].as_array().map(Vec::len), Some(2), "{list}");
    assert_eq!(
        stdout_ok(&c.etcdctl(stays, &["put", "after", "remove"])),
        "OK\n"
    );
    assert_eq!(
        stdout_ok(&c.etcdctl(stays, &["get", "after", "--print-value-only"])),
        "remove\n"
    );
}

#[test]
fn changes_that_would_break_quorum_are_refused_while_a_member_is_down() {
    let mut c = Cluster::start(3);
    let leader = c.leader();
    let followers = c.followers();
    let (down, live) = (followers[0], followers[1]);
    let down_id = format!("{:x}", c.member_id(down));
    let live_id = format!("{:x}", c.member_id(live));
    c.kill9(down);
    // The rule is about time: a member is out of touch once it has been silent for etcd's
    // health interval (5 s).
    std::thread::sleep(std::time::Duration::from_secs(6));
    let add = c.etcdctl(
        live,
        &["member", "add", "m4", "--peer-urls=https://127.0.0.1:1"],
    );
    assert!(
        etcdctl_error(&add).contains("etcdserver: unhealthy cluster"),
        "{add:?}"
    );
    let remove_live = c.etcdctl(leader, &["member", "remove", &live_id]);
    assert!(
        etcdctl_error(&remove_live).contains("etcdserver: unhealthy cluster"),
        "{remove_live:?}"
    );
    assert_eq!(
        c.member_list(live).expect("member list")["members"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    // The member that is down may go: the two left are a quorum of two.
    let out = stdout_ok(&c.etcdctl(live, &["member", "remove", &down_id]));
    assert!(out.contains("removed from cluster"), "{out}");
    stdout_ok(&c.etcdctl(live, &["put", "after", "remove"]));
}

#[test]
fn move_leader_hands_leadership_to_the_target() {
    let mut c = Cluster::start(3);
    let leader = c.leader();
    let target = c.followers()[0];
    let target_id = c.member_id(target);
    let out = stdout_ok(&c.etcdctl(leader, &["move-leader", &format!("{target_id:x}")]));
    assert!(out.contains("Leadership transferred"), "{out}");
    assert_eq!(c.wait_for_leader(&[]), target);
    assert_eq!(
        stdout_ok(&c.etcdctl(leader, &["put", "moved", "yes"])),
        "OK\n"
    );

    let stranger = c.etcdctl(target, &["move-leader", "1234"]);
    assert!(
        etcdctl_error(&stranger).contains("etcdserver: bad leader transferee"),
        "{stranger:?}"
    );
}
