//! etcdctl 3.4 (Debian's etcd-client) against a real conclave server: the KV commands, their
//! flags and output formats, txn from stdin, compaction, endpoint status/health and errors.
//! Where etcdctl's output is deterministic the whole of stdout is compared.
//!
//! Every test runs twice: against a lone server (`single::`), and through a follower's
//! endpoint of a 3-member cluster (`cluster_follower::`), which must answer the same.
//!
//! etcdctl 3.4 has no `get --count-only` (it arrived in 3.5): counts are checked through
//! `-w json` here, and `count_only` through the etcd-client crate in client_kv.rs.

use crate::common;

use common::target::Target;
use common::{etcdctl_error, stdout_ok, unb64};
use serde_json::Value;

single_and_cluster!(
    put_with_prev_kv_ignore_value_ignore_lease,
    get_ranges_limits_and_revisions,
    get_sort_by_every_target_and_order,
    get_json_output,
    del_with_prefix_prev_kv_and_from_key,
    txn_from_stdin_both_branches,
    compaction_and_revision_errors,
    endpoint_status_and_health,
    errors_through_etcdctl,
);

/// etcdctl's simple output for key-value pairs: the key and the value, each on its own line.
fn kv_lines(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(k, v)| format!("{k}\n{v}\n")).collect()
}

fn json(server: &Target, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-w", "json"]);
    let out = stdout_ok(&server.etcdctl(&all));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("etcdctl -w json gave {out:?}: {e}"))
}

fn ok(server: &Target, args: &[&str]) -> String {
    stdout_ok(&server.etcdctl(args))
}

fn revision(server: &Target) -> i64 {
    json(server, &["get", "any-key"])["header"]["revision"]
        .as_i64()
        .expect("header.revision")
}

fn str_of(v: &Value) -> String {
    String::from_utf8(unb64(v.as_str().expect("a base64 string"))).expect("UTF-8")
}

fn put_with_prev_kv_ignore_value_ignore_lease(s: &Target) {
    assert_eq!(ok(s, &["put", "foo", "bar"]), "OK\n");
    assert_eq!(ok(s, &["put", "foo", "baz", "--prev-kv"]), "OK\nfoo\nbar\n");
    // No previous pair: nothing but OK.
    assert_eq!(ok(s, &["put", "fresh", "v", "--prev-kv"]), "OK\n");
    assert_eq!(ok(s, &["get", "foo"]), "foo\nbaz\n");

    // --ignore-value keeps the value and still makes a new version.
    assert_eq!(
        ok(s, &["put", "foo", "--ignore-value", "--prev-kv"]),
        "OK\nfoo\nbaz\n"
    );
    let got = json(s, &["get", "foo"]);
    let kv = &got["kvs"][0];
    assert_eq!(str_of(&kv["value"]), "baz");
    assert_eq!(kv["version"], 3);
    assert_eq!(kv["create_revision"], 2);
    assert_eq!(kv["mod_revision"], 5);
    assert_eq!(got["header"]["revision"], 5);

    // --ignore-lease: the key had no lease, and still has none.
    assert_eq!(ok(s, &["put", "foo", "qux", "--ignore-lease"]), "OK\n");
    let got = json(s, &["get", "foo"]);
    let kv = &got["kvs"][0];
    assert_eq!(str_of(&kv["value"]), "qux");
    assert_eq!(kv["version"], 4);
    assert_eq!(kv["mod_revision"], 6);
    assert!(kv.get("lease").is_none(), "no lease expected: {kv}");

    // A value with spaces and an empty value.
    assert_eq!(ok(s, &["put", "spaced", "hello world"]), "OK\n");
    assert_eq!(ok(s, &["put", "empty", ""]), "OK\n");
    assert_eq!(ok(s, &["get", "spaced"]), "spaced\nhello world\n");
    assert_eq!(ok(s, &["get", "empty"]), "empty\n\n");

    // No value argument: etcdctl reads it from stdin.
    let out = s.etcdctl_with_stdin(&["put", "piped"], "from stdin");
    assert_eq!(stdout_ok(&out), "OK\n");
    assert_eq!(ok(s, &["get", "piped"]), "piped\nfrom stdin\n");
}

fn get_ranges_limits_and_revisions(s: &Target) {
    for (k, v) in [
        ("a", "1"),
        ("b", "2"),
        ("c", "3"),
        ("d/x", "4"),
        ("d/y", "5"),
        ("e", "6"),
    ] {
        assert_eq!(ok(s, &["put", k, v]), "OK\n");
    }
    // Revisions 2..=7; now change a at 8.
    assert_eq!(ok(s, &["put", "a", "10"]), "OK\n");

    assert_eq!(ok(s, &["get", "missing"]), "");
    assert_eq!(ok(s, &["get", "a"]), "a\n10\n");
    assert_eq!(
        ok(s, &["get", "--prefix", "d/"]),
        kv_lines(&[("d/x", "4"), ("d/y", "5")])
    );
    assert_eq!(
        ok(s, &["get", "c", "--from-key"]),
        kv_lines(&[("c", "3"), ("d/x", "4"), ("d/y", "5"), ("e", "6")])
    );
    // An explicit [key, range_end).
    assert_eq!(
        ok(s, &["get", "b", "d/y"]),
        kv_lines(&[("b", "2"), ("c", "3"), ("d/x", "4")])
    );
    assert_eq!(
        ok(s, &["get", "", "--prefix", "--limit", "2"]),
        kv_lines(&[("a", "10"), ("b", "2")])
    );
    assert_eq!(
        ok(s, &["get", "", "--from-key", "--limit", "3"]),
        kv_lines(&[("a", "10"), ("b", "2"), ("c", "3")])
    );

    // History.
    assert_eq!(ok(s, &["get", "a", "--rev", "7"]), "a\n1\n");
    assert_eq!(ok(s, &["get", "a", "--rev", "8"]), "a\n10\n");
    assert_eq!(ok(s, &["get", "e", "--rev", "6"]), "");
    assert_eq!(
        ok(s, &["get", "--prefix", "d/", "--rev", "5"]),
        kv_lines(&[("d/x", "4")])
    );

    // Output shapes.
    assert_eq!(
        ok(s, &["get", "--prefix", "d/", "--keys-only"]),
        "d/x\n\nd/y\n\n"
    );
    assert_eq!(
        ok(s, &["get", "--prefix", "d/", "--print-value-only"]),
        "4\n5\n"
    );
    // A serializable read gives the same answer on one member.
    assert_eq!(
        ok(s, &["get", "--prefix", "d/", "--consistency=s"]),
        kv_lines(&[("d/x", "4"), ("d/y", "5")])
    );
}

fn get_sort_by_every_target_and_order(s: &Target) {
    // Built so that each sort target orders the three keys differently:
    //   key a,b,c | create b(2) c(3) a(5) | mod c(4) a(5) b(7) | version a1 c2 b3 | value b a c
    for (k, v) in [
        ("b", "1"),
        ("c", "3"),
        ("c", "3"),
        ("a", "2"),
        ("b", "1"),
        ("b", "1"),
    ] {
        assert_eq!(ok(s, &["put", k, v]), "OK\n");
    }
    let value = |k: &str| match k {
        "a" => "2",
        "b" => "1",
        _ => "3",
    };
    let cases: &[(&str, &str, [&str; 3])] = &[
        ("KEY", "ASCEND", ["a", "b", "c"]),
        ("KEY", "DESCEND", ["c", "b", "a"]),
        ("CREATE", "ASCEND", ["b", "c", "a"]),
        ("CREATE", "DESCEND", ["a", "c", "b"]),
        ("MODIFY", "ASCEND", ["c", "a", "b"]),
        ("MODIFY", "DESCEND", ["b", "a", "c"]),
        ("VERSION", "ASCEND", ["a", "c", "b"]),
        ("VERSION", "DESCEND", ["b", "c", "a"]),
        ("VALUE", "ASCEND", ["b", "a", "c"]),
        ("VALUE", "DESCEND", ["c", "a", "b"]),
    ];
    for (target, order, keys) in cases {
        let want: Vec<(&str, &str)> = keys.iter().map(|k| (*k, value(k))).collect();
        let got = ok(
            s,
            &[
                "get",
                "",
                "--prefix",
                &format!("--sort-by={target}"),
                &format!("--order={order}"),
            ],
        );
        assert_eq!(got, kv_lines(&want), "--sort-by={target} --order={order}");
    }
    // A non-key target with no order sorts ascending, as etcd does.
    assert_eq!(
        ok(s, &["get", "", "--prefix", "--sort-by=MODIFY"]),
        kv_lines(&[("c", "3"), ("a", "2"), ("b", "1")])
    );
    // Sorting comes before the limit.
    assert_eq!(
        ok(
            s,
            &[
                "get",
                "",
                "--prefix",
                "--sort-by=VERSION",
                "--order=DESCEND",
                "--limit=2"
            ]
        ),
        kv_lines(&[("b", "1"), ("c", "3")])
    );
}

fn get_json_output(s: &Target) {
    for (k, v) in [("k1", "v1"), ("k2", "v2"), ("k3", "v3"), ("k1", "v1b")] {
        assert_eq!(ok(s, &["put", k, v]), "OK\n");
    }
    let got = json(s, &["get", "k", "--prefix", "--limit", "2"]);
    let header = &got["header"];
    assert_eq!(header["revision"], 5);
    assert_eq!(header["raft_term"], s.raft_term());
    assert!(header["cluster_id"].as_u64().expect("cluster_id") != 0);
    assert!(header["member_id"].as_u64().expect("member_id") != 0);
    assert_eq!(got["count"], 3, "count ignores the limit");
    assert_eq!(got["more"], true);
    let kvs = got["kvs"].as_array().expect("kvs");
    assert_eq!(kvs.len(), 2);
    assert_eq!(str_of(&kvs[0]["key"]), "k1");
    assert_eq!(str_of(&kvs[0]["value"]), "v1b");
    assert_eq!(kvs[0]["create_revision"], 2);
    assert_eq!(kvs[0]["mod_revision"], 5);
    assert_eq!(kvs[0]["version"], 2);
    assert_eq!(str_of(&kvs[1]["key"]), "k2");
    assert_eq!(kvs[1]["create_revision"], 3);
    assert_eq!(kvs[1]["mod_revision"], 3);
    assert_eq!(kvs[1]["version"], 1);

    // Not cut: no `more`; Go's encoder omits false.
    let all = json(s, &["get", "k", "--prefix"]);
    assert_eq!(all["count"], 3);
    assert!(all.get("more").is_none() || all["more"] == false);
    assert_eq!(all["kvs"].as_array().expect("kvs").len(), 3);

    // Nothing there: count absent (zero) and no kvs.
    let none = json(s, &["get", "nothing"]);
    assert_eq!(none["header"]["revision"], 5);
    assert!(none.get("kvs").is_none());
    assert!(none.get("count").is_none() || none["count"] == 0);

    // The same header on a historical read: the current revision, not the one read at.
    let old = json(s, &["get", "k1", "--rev", "2"]);
    assert_eq!(old["header"]["revision"], 5);
    assert_eq!(str_of(&old["kvs"][0]["value"]), "v1");
    assert_eq!(old["kvs"][0]["version"], 1);
}

fn del_with_prefix_prev_kv_and_from_key(s: &Target) {
    for (k, v) in [
        ("a", "1"),
        ("b", "2"),
        ("c", "3"),
        ("d/x", "4"),
        ("d/y", "5"),
        ("e", "6"),
    ] {
        assert_eq!(ok(s, &["put", k, v]), "OK\n");
    }
    assert_eq!(revision(s), 7);
    assert_eq!(ok(s, &["del", "a"]), "1\n");
    assert_eq!(revision(s), 8);
    // Deleting nothing does not make a revision.
    assert_eq!(ok(s, &["del", "a"]), "0\n");
    assert_eq!(ok(s, &["del", "--prefix", "zz"]), "0\n");
    assert_eq!(revision(s), 8);
    assert_eq!(ok(s, &["del", "b", "--prev-kv"]), "1\nb\n2\n");
    // Both keys of the prefix go in one revision.
    assert_eq!(
        ok(s, &["del", "--prefix", "d/", "--prev-kv"]),
        "2\nd/x\n4\nd/y\n5\n"
    );
    assert_eq!(revision(s), 10);
    assert_eq!(
        ok(s, &["get", "--prefix", "d/", "--rev", "9"])
            .lines()
            .count(),
        4
    );
    assert_eq!(ok(s, &["get", "--prefix", "d/", "--rev", "10"]), "");
    // An explicit [key, range_end): only c is left in it.
    assert_eq!(ok(s, &["del", "c", "d/y"]), "1\n");
    assert_eq!(ok(s, &["get", "c"]), "");
    assert_eq!(ok(s, &["del", "c", "--from-key"]), "1\n");
    assert_eq!(ok(s, &["get", "", "--from-key"]), "");
    assert_eq!(revision(s), 12);
}

fn txn_from_stdin_both_branches(s: &Target) {
    assert_eq!(ok(s, &["put", "foo", "bar"]), "OK\n");
    assert_eq!(ok(s, &["put", "gone", "x"]), "OK\n");

    // Non-interactive form: compares, blank line, success ops, blank line, failure ops,
    // blank line.
    let success = "value(\"foo\") = \"bar\"\nversion(\"foo\") > \"0\"\nmod(\"foo\") < \"100\"\n\
                   create(\"foo\") = \"2\"\n\n\
                   put t1 v1\nget foo\ndel gone\nput t3 \"hello world\"\n\n\
                   put t2 v2\n\n";
    let out = stdout_ok(&s.etcdctl_with_stdin(&["txn"], success));
    assert_eq!(out, "SUCCESS\n\nOK\n\nfoo\nbar\n\n1\n\nOK\n");
    assert_eq!(
        ok(s, &["get", "t", "--prefix"]),
        kv_lines(&[("t1", "v1"), ("t3", "hello world")])
    );
    assert_eq!(ok(s, &["get", "gone"]), "");
    // The whole txn is one revision.
    let rev = revision(s);
    assert_eq!(rev, 4);
    let t = json(s, &["get", "t", "--prefix"]);
    for kv in t["kvs"].as_array().expect("kvs") {
        assert_eq!(kv["mod_revision"], 4);
    }

    let failure = "value(\"foo\") = \"nope\"\n\nput t1 never\n\nput t2 v2\nget t1\n\n";
    let out = stdout_ok(&s.etcdctl_with_stdin(&["txn"], failure));
    assert_eq!(out, "FAILURE\n\nOK\n\nt1\nv1\n");
    assert_eq!(ok(s, &["get", "t1"]), "t1\nv1\n");
    assert_eq!(ok(s, &["get", "t2"]), "t2\nv2\n");
    assert_eq!(revision(s), 5);

    // A txn that fails and has nothing to do in that branch writes nothing.
    let out = stdout_ok(
        &s.etcdctl_with_stdin(&["txn"], "version(\"absent\") != \"0\"\n\nput t9 x\n\n\n"),
    );
    assert_eq!(out, "FAILURE\n");
    assert_eq!(revision(s), 5);

    // The JSON form: one response per op, each with the txn's revision.
    let out = stdout_ok(&s.etcdctl_with_stdin(
        &["txn", "-w", "json"],
        "version(\"foo\") = \"1\"\n\nput t4 v4\nget t4\n\n\n",
    ));
    let got: Value = serde_json::from_str(&out).expect("txn -w json");
    assert_eq!(got["succeeded"], true);
    assert_eq!(got["header"]["revision"], 6);
    let responses = got["responses"].as_array().expect("responses");
    assert_eq!(responses.len(), 2);
    assert_eq!(
        responses[0]["Response"]["ResponsePut"]["header"]["revision"],
        6
    );
    let range = &responses[1]["Response"]["ResponseRange"];
    assert_eq!(range["count"], 1);
    assert_eq!(str_of(&range["kvs"][0]["value"]), "v4");
    assert_eq!(range["kvs"][0]["mod_revision"], 6);
}

fn compaction_and_revision_errors(s: &Target) {
    for v in ["v1", "v2", "v3", "v4"] {
        assert_eq!(ok(s, &["put", "k", v]), "OK\n");
    }
    // Revisions 2..=5.
    assert_eq!(ok(s, &["compaction", "4"]), "compacted revision 4\n");
    assert_eq!(
        etcdctl_error(&s.etcdctl(&["get", "k", "--rev", "3"])),
        "Error: etcdserver: mvcc: required revision has been compacted"
    );
    // The compaction point itself stays readable.
    assert_eq!(ok(s, &["get", "k", "--rev", "4"]), "k\nv3\n");
    assert_eq!(ok(s, &["get", "k"]), "k\nv4\n");
    assert_eq!(
        etcdctl_error(&s.etcdctl(&["get", "k", "--rev", "6"])),
        "Error: etcdserver: mvcc: required revision is a future revision"
    );
    assert_eq!(
        etcdctl_error(&s.etcdctl(&["compaction", "4"])),
        "Error: etcdserver: mvcc: required revision has been compacted"
    );
    assert_eq!(
        etcdctl_error(&s.etcdctl(&["compaction", "100"])),
        "Error: etcdserver: mvcc: required revision is a future revision"
    );
    assert_eq!(
        ok(s, &["compaction", "--physical", "5"]),
        "compacted revision 5\n"
    );
    assert_eq!(
        etcdctl_error(&s.etcdctl(&["get", "k", "--rev", "4"])),
        "Error: etcdserver: mvcc: required revision has been compacted"
    );
    assert_eq!(ok(s, &["get", "k"]), "k\nv4\n");
}

fn endpoint_status_and_health(s: &Target) {
    assert_eq!(ok(s, &["put", "a", "1"]), "OK\n");
    assert_eq!(ok(s, &["put", "b", "2"]), "OK\n");

    let status = json(s, &["endpoint", "status"]);
    let entries = status.as_array().expect("a list of endpoints");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["Endpoint"], s.endpoint());
    let st = &entries[0]["Status"];
    let member = st["header"]["member_id"].as_u64().expect("member_id");
    assert!(member != 0);
    assert!(st["header"]["cluster_id"].as_u64().expect("cluster_id") != 0);
    assert_eq!(st["header"]["revision"], 3);
    assert_eq!(
        st["leader"].as_u64(),
        Some(s.leader_id(member)),
        "a lone member leads; a follower names the leader"
    );
    let is_leader = s.leader_id(member) == member;
    assert!(st["raftIndex"].as_u64().expect("raftIndex") >= 2);
    assert_eq!(st["raftTerm"], s.raft_term());
    assert!(!st["version"].as_str().expect("version").is_empty());

    // The table-less simple form: endpoint, ID, version, size, leader?, learner?, term, ...
    let simple = ok(s, &["endpoint", "status"]);
    let fields: Vec<&str> = simple.trim_end().split(", ").collect();
    assert_eq!(fields[0], s.endpoint());
    assert_eq!(fields[1], format!("{member:x}"));
    assert_eq!(fields[4], is_leader.to_string(), "is leader: {simple}");
    assert_eq!(fields[5], "false", "is learner: {simple}");
    assert_eq!(fields[6], s.raft_term().to_string(), "raft term: {simple}");

    // etcdctl 3.4 prints the health line on stderr.
    let out = s.etcdctl(&["endpoint", "health"]);
    stdout_ok(&out);
    let health = String::from_utf8_lossy(&out.stderr);
    let prefix = format!(
        "{} is healthy: successfully committed proposal: took = ",
        s.endpoint()
    );
    assert!(health.lines().any(|l| l.starts_with(&prefix)), "{health:?}");
    let health = json(s, &["endpoint", "health"]);
    assert_eq!(health[0]["endpoint"], s.endpoint());
    assert_eq!(health[0]["health"], true);
}

fn errors_through_etcdctl(s: &Target) {
    assert_eq!(ok(s, &["put", "k", "v"]), "OK\n");
    assert_eq!(
        etcdctl_error(&s.etcdctl(&["put", "x", "y", "--lease=1234"])),
        "Error: etcdserver: requested lease not found"
    );
    assert_eq!(
        etcdctl_error(&s.etcdctl(&["put", "missing", "--ignore-value"])),
        "Error: etcdserver: key not found"
    );
    assert_eq!(
        etcdctl_error(&s.etcdctl(&["put", "missing", "v", "--ignore-lease"])),
        "Error: etcdserver: key not found"
    );
    assert_eq!(
        etcdctl_error(&s.etcdctl(&["get", ""])),
        "Error: etcdserver: key is not provided"
    );
    // Refused requests leave no trace.
    assert_eq!(revision(s), 2);
    assert_eq!(ok(s, &["get", "x"]), "");
    assert_eq!(ok(s, &["get", "missing"]), "");
}
