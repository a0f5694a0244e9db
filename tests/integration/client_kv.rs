//! The KV API through the etcd-client crate (a third-party etcd v3 client) against a real
//! conclave server: revision rules, Range options, Txn compares and nesting, and etcd's errors
//! with their exact gRPC codes and messages.
//!
//! Not covered here: Watch events (the Watch service does not exist yet), so delete-event
//! revisions are checked through history reads instead.

use crate::common;

use common::Server;
use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, DeleteOptions, GetOptions, GetResponse,
    PutOptions, ResponseHeader, SortOrder, SortTarget, Txn, TxnOp, TxnOpResponse,
};

/// The gRPC code (by name) and message of a failed call.
fn status<T: std::fmt::Debug>(result: Result<T, etcd_client::Error>) -> (String, String) {
    match result {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(etcd_client::Error::GRpcStatus(s)) => (format!("{:?}", s.code()), s.message().into()),
        Err(other) => panic!("expected a gRPC status, got {other}"),
    }
}

fn assert_status<T: std::fmt::Debug>(
    result: Result<T, etcd_client::Error>,
    code: &str,
    message: &str,
) {
    assert_eq!(status(result), (code.to_string(), message.to_string()));
}

async fn current_revision(c: &mut Client) -> i64 {
    c.get("any-key", None)
        .await
        .expect("get")
        .header()
        .expect("header")
        .revision()
}

fn keys(resp: &GetResponse) -> Vec<String> {
    resp.kvs()
        .iter()
        .map(|kv| String::from_utf8(kv.key().to_vec()).expect("UTF-8 key"))
        .collect()
}

fn rev(header: Option<&ResponseHeader>) -> i64 {
    header.expect("a response header").revision()
}

#[tokio::test]
async fn every_header_carries_ids_revision_and_term() {
    let s = Server::start();
    let mut c = s.client().await;
    let status = c.status().await.expect("status");
    let h = status.header().expect("status header");
    let (cluster, member) = (h.cluster_id(), h.member_id());
    assert_ne!(cluster, 0);
    assert_ne!(member, 0);
    assert_eq!(status.leader(), member, "a lone member leads");
    assert_eq!(h.revision(), 1, "an empty store is at revision 1");

    let check = |h: Option<&ResponseHeader>, revision: i64, what: &str| {
        let h = h.unwrap_or_else(|| panic!("{what}: no header"));
        assert_eq!(h.cluster_id(), cluster, "{what}: cluster_id");
        assert_eq!(h.member_id(), member, "{what}: member_id");
        assert_eq!(h.revision(), revision, "{what}: revision");
        assert!(h.raft_term() >= 1, "{what}: raft_term");
    };
    check(c.put("k", "v", None).await.expect("put").header(), 2, "put");
    check(c.get("k", None).await.expect("get").header(), 2, "get");
    check(
        c.txn(Txn::new().and_then([TxnOp::put("t", "v", None)]))
            .await
            .expect("txn")
            .header(),
        3,
        "txn",
    );
    check(
        c.delete("k", None).await.expect("delete").header(),
        4,
        "delete",
    );
    check(
        c.compact(2, None).await.expect("compact").header(),
        4,
        "compact",
    );
    check(c.status().await.expect("status").header(), 4, "status");
}

#[tokio::test]
async fn revision_and_version_rules() {
    let s = Server::start();
    let mut c = s.client().await;
    assert_eq!(current_revision(&mut c).await, 1);

    // Create: version 1, create = mod = the put's revision.
    assert_eq!(rev(c.put("a", "1", None).await.expect("put").header()), 2);
    let got = c.get("a", None).await.expect("get");
    let kv = &got.kvs()[0];
    assert_eq!(
        (kv.create_revision(), kv.mod_revision(), kv.version()),
        (2, 2, 1)
    );
    // The same value again is still a new revision and a new version.
    let put = c
        .put("a", "1", Some(PutOptions::new().with_prev_key()))
        .await
        .expect("put");
    assert_eq!(rev(put.header()), 3);
    let prev = put.prev_key().expect("prev_kv");
    assert_eq!((prev.mod_revision(), prev.version()), (2, 1));
    let got = c.get("a", None).await.expect("get");
    let kv = &got.kvs()[0];
    assert_eq!(
        (kv.create_revision(), kv.mod_revision(), kv.version()),
        (2, 3, 2)
    );

    // Delete: its own revision; the key is gone at it and present just below it.
    let del = c
        .delete("a", Some(DeleteOptions::new().with_prev_key()))
        .await
        .expect("delete");
    assert_eq!(rev(del.header()), 4);
    assert_eq!(del.deleted(), 1);
    assert_eq!(del.prev_kvs()[0].version(), 2);
    assert_eq!(del.prev_kvs()[0].value(), b"1");
    let gone = c.get("a", None).await.expect("get");
    assert!(gone.kvs().is_empty());
    assert_eq!(gone.count(), 0);
    assert_eq!(rev(gone.header()), 4);
    let before = c
        .get("a", Some(GetOptions::new().with_revision(3)))
        .await
        .expect("get at 3");
    assert_eq!(before.kvs()[0].version(), 2);

    // Deleting nothing makes no revision.
    let del = c.delete("a", None).await.expect("delete nothing");
    assert_eq!((del.deleted(), rev(del.header())), (0, 4));
    let del = c
        .delete("zz", Some(DeleteOptions::new().with_prefix()))
        .await
        .expect("delete an empty prefix");
    assert_eq!((del.deleted(), rev(del.header())), (0, 4));
    assert_eq!(current_revision(&mut c).await, 4);

    // Recreated: version starts at 1 again, with a new create revision.
    assert_eq!(rev(c.put("a", "2", None).await.expect("put").header()), 5);
    let got = c.get("a", None).await.expect("get");
    let kv = &got.kvs()[0];
    assert_eq!(
        (kv.create_revision(), kv.mod_revision(), kv.version()),
        (5, 5, 1)
    );

    // One DeleteRange of several keys is one revision.
    c.put("b", "x", None).await.expect("put");
    c.put("c", "x", None).await.expect("put");
    let del = c
        .delete("a", Some(DeleteOptions::new().with_range("d")))
        .await
        .expect("delete a range");
    assert_eq!((del.deleted(), rev(del.header())), (3, 8));
    let at7 = c
        .get(
            "a",
            Some(GetOptions::new().with_range("d").with_revision(7)),
        )
        .await
        .expect("get at 7");
    assert_eq!(keys(&at7), ["a", "b", "c"]);
    let at8 = c
        .get(
            "a",
            Some(GetOptions::new().with_range("d").with_revision(8)),
        )
        .await
        .expect("get at 8");
    assert!(at8.kvs().is_empty());

    // One txn is one revision, however many changes it makes.
    let txn = c
        .txn(Txn::new().and_then([
            TxnOp::put("x", "1", None),
            TxnOp::put("y", "1", None),
            TxnOp::delete("nothing-here", None),
            TxnOp::put("z", "1", None),
        ]))
        .await
        .expect("txn");
    assert_eq!(rev(txn.header()), 9);
    let xyz = c
        .get("x", Some(GetOptions::new().with_range("{")))
        .await
        .expect("get x..z");
    assert_eq!(keys(&xyz), ["x", "y", "z"]);
    for kv in xyz.kvs() {
        assert_eq!((kv.create_revision(), kv.mod_revision()), (9, 9));
    }

    // Txns that change nothing make no revision: reads only, a failed compare with an empty
    // failure branch, a delete of nothing.
    let read = c
        .txn(Txn::new().and_then([TxnOp::get("x", None)]))
        .await
        .expect("read-only txn");
    assert_eq!(rev(read.header()), 9);
    let failed = c
        .txn(
            Txn::new()
                .when([Compare::version("x", CompareOp::Equal, 7)])
                .and_then([TxnOp::put("x", "2", None)]),
        )
        .await
        .expect("failed txn");
    assert!(!failed.succeeded());
    assert_eq!(rev(failed.header()), 9);
    let nothing = c
        .txn(Txn::new().and_then([TxnOp::delete("nothing-here", None)]))
        .await
        .expect("txn deleting nothing");
    assert_eq!(rev(nothing.header()), 9);
    assert_eq!(current_revision(&mut c).await, 9);
}

#[tokio::test]
async fn range_limit_more_and_count() {
    let s = Server::start();
    let mut c = s.client().await;
    for i in 0..10 {
        c.put(format!("k{i}"), format!("v{i}"), None)
            .await
            .expect("put");
    }
    c.put("other", "x", None).await.expect("put");
    let prefix = || GetOptions::new().with_prefix();

    let r = c.get("k", Some(prefix().with_limit(3))).await.expect("get");
    assert_eq!(keys(&r), ["k0", "k1", "k2"]);
    assert!(r.more());
    assert_eq!(r.count(), 10, "count ignores the limit");
    for limit in [10, 11, 0] {
        let r = c
            .get("k", Some(prefix().with_limit(limit)))
            .await
            .expect("get");
        assert_eq!(r.kvs().len(), 10, "limit {limit}");
        assert!(!r.more(), "limit {limit}");
        assert_eq!(r.count(), 10);
    }
    // Ranges: [key, end), from key, all keys.
    let r = c
        .get("k3", Some(GetOptions::new().with_range("k6")))
        .await
        .expect("get");
    assert_eq!(keys(&r), ["k3", "k4", "k5"]);
    assert_eq!(r.count(), 3);
    let r = c
        .get("k8", Some(GetOptions::new().with_from_key()))
        .await
        .expect("get");
    assert_eq!(keys(&r), ["k8", "k9", "other"]);
    let r = c
        .get("", Some(GetOptions::new().with_all_keys().with_limit(1)))
        .await
        .expect("get");
    assert_eq!(keys(&r), ["k0"]);
    assert_eq!(r.count(), 11);
    assert!(r.more());
    // An end before the key is an empty range.
    let r = c
        .get("k5", Some(GetOptions::new().with_range("k2")))
        .await
        .expect("get");
    assert!(r.kvs().is_empty());
    assert_eq!(r.count(), 0);
}

#[tokio::test]
async fn binary_keys_and_prefixes_ending_in_0xff() {
    let s = Server::start();
    let mut c = s.client().await;
    let ks: [&[u8]; 5] = [b"a\xff", b"a\xff\x00", b"a\xff\xff\x01", b"b", b"\xff\xff"];
    for k in ks {
        c.put(k, k, None).await.expect("put");
    }
    let raw_keys =
        |r: &GetResponse| -> Vec<Vec<u8>> { r.kvs().iter().map(|kv| kv.key().to_vec()).collect() };
    // The prefix end drops trailing 0xff bytes before incrementing: "a\xff" ends at "b".
    let r = c
        .get(b"a\xff".to_vec(), Some(GetOptions::new().with_prefix()))
        .await
        .expect("get");
    assert_eq!(raw_keys(&r), ks[..3]);
    // An all-0xff prefix has no end: every key from it on.
    let r = c
        .get(b"\xff".to_vec(), Some(GetOptions::new().with_prefix()))
        .await
        .expect("get");
    assert_eq!(raw_keys(&r), [ks[4]]);
    let r = c
        .get("", Some(GetOptions::new().with_all_keys()))
        .await
        .expect("get");
    assert_eq!(raw_keys(&r), ks);
    for kv in r.kvs() {
        assert_eq!(kv.key(), kv.value());
    }
}

#[tokio::test]
async fn reads_see_acknowledged_writes_from_other_connections() {
    let s = Server::start();
    let mut writer = s.client().await;
    let mut reader = s.client().await;
    for i in 0..100 {
        let put = writer
            .put("shared", format!("v{i}"), None)
            .await
            .expect("put");
        let got = reader.get("shared", None).await.expect("get");
        assert_eq!(got.kvs()[0].value(), format!("v{i}").as_bytes());
        assert!(rev(got.header()) >= rev(put.header()));
    }
}

/// Three keys laid out so that every sort target orders them differently:
/// key a,b,c | create b(2) c(3) a(5) | mod c(4) a(5) b(7) | version a1 c2 b3 | value b a c.
async fn sortable_keys(c: &mut Client) {
    for (k, v) in [
        ("b", "1"),
        ("c", "3"),
        ("c", "3"),
        ("a", "2"),
        ("b", "1"),
        ("b", "1"),
    ] {
        c.put(k, v, None).await.expect("put");
    }
}

#[tokio::test]
async fn range_sort_targets_and_orders() {
    let s = Server::start();
    let mut c = s.client().await;
    sortable_keys(&mut c).await;
    let cases: &[(SortTarget, SortOrder, [&str; 3])] = &[
        (SortTarget::Key, SortOrder::Ascend, ["a", "b", "c"]),
        (SortTarget::Key, SortOrder::Descend, ["c", "b", "a"]),
        (SortTarget::Key, SortOrder::None, ["a", "b", "c"]),
        (SortTarget::Create, SortOrder::Ascend, ["b", "c", "a"]),
        (SortTarget::Create, SortOrder::Descend, ["a", "c", "b"]),
        (SortTarget::Mod, SortOrder::Ascend, ["c", "a", "b"]),
        (SortTarget::Mod, SortOrder::Descend, ["b", "a", "c"]),
        (SortTarget::Version, SortOrder::Ascend, ["a", "c", "b"]),
        (SortTarget::Version, SortOrder::Descend, ["b", "c", "a"]),
        (SortTarget::Value, SortOrder::Ascend, ["b", "a", "c"]),
        (SortTarget::Value, SortOrder::Descend, ["c", "a", "b"]),
        // A target other than KEY with no order sorts ascending, as etcd does.
        (SortTarget::Mod, SortOrder::None, ["c", "a", "b"]),
        (SortTarget::Version, SortOrder::None, ["a", "c", "b"]),
    ];
    for (target, order, want) in cases {
        let r = c
            .get(
                "",
                Some(GetOptions::new().with_all_keys().with_sort(*target, *order)),
            )
            .await
            .expect("get");
        assert_eq!(keys(&r), want, "{target:?} {order:?}");
        assert_eq!(r.count(), 3);
    }
    // The sort comes before the limit.
    let r = c
        .get(
            "",
            Some(
                GetOptions::new()
                    .with_all_keys()
                    .with_sort(SortTarget::Mod, SortOrder::Descend)
                    .with_limit(2),
            ),
        )
        .await
        .expect("get");
    assert_eq!(keys(&r), ["b", "a"]);
    assert!(r.more());
    assert_eq!(r.count(), 3);
}

#[tokio::test]
async fn range_revision_filters_keys_only_count_only_serializable() {
    let s = Server::start();
    let mut c = s.client().await;
    sortable_keys(&mut c).await;
    let all = || GetOptions::new().with_all_keys();
    let cases: Vec<(&str, GetOptions, Vec<&str>)> = vec![
        ("min_mod 5", all().with_min_mod_revision(5), vec!["a", "b"]),
        ("max_mod 4", all().with_max_mod_revision(4), vec!["c"]),
        (
            "min_create 3",
            all().with_min_create_revision(3),
            vec!["a", "c"],
        ),
        (
            "max_create 3",
            all().with_max_create_revision(3),
            vec!["b", "c"],
        ),
        (
            "min_create 3, max_mod 4",
            all().with_min_create_revision(3).with_max_mod_revision(4),
            vec!["c"],
        ),
        (
            "mod in [5, 5]",
            all().with_min_mod_revision(5).with_max_mod_revision(5),
            vec!["a"],
        ),
        ("max_mod 1", all().with_max_mod_revision(1), vec![]),
    ];
    for (what, options, want) in cases {
        let r = c.get("", Some(options)).await.expect("get");
        assert_eq!(keys(&r), want, "{what}");
        assert_eq!(r.count(), 3, "{what}: count ignores the filters");
        assert!(!r.more(), "{what}");
    }
    // Filters come before the limit.
    let r = c
        .get("", Some(all().with_min_mod_revision(5).with_limit(1)))
        .await
        .expect("get");
    assert_eq!(keys(&r), ["a"]);
    assert!(r.more());

    let r = c
        .get("", Some(all().with_keys_only()))
        .await
        .expect("keys only");
    assert_eq!(keys(&r), ["a", "b", "c"]);
    for kv in r.kvs() {
        assert!(kv.value().is_empty(), "keys_only returned a value");
        assert!(kv.version() > 0 && kv.mod_revision() > 0 && kv.create_revision() > 0);
    }
    let b = &r.kvs()[1];
    assert_eq!(
        (b.create_revision(), b.mod_revision(), b.version()),
        (2, 7, 3)
    );

    let r = c
        .get("", Some(all().with_count_only()))
        .await
        .expect("count only");
    assert!(r.kvs().is_empty());
    assert_eq!(r.count(), 3);
    assert!(!r.more());
    let r = c
        .get("", Some(all().with_count_only().with_limit(1)))
        .await
        .expect("count only with a limit");
    assert!(r.kvs().is_empty());
    assert_eq!(r.count(), 3);
    let r = c
        .get(
            "b",
            Some(GetOptions::new().with_count_only().with_revision(6)),
        )
        .await
        .expect("count only in the past");
    assert_eq!(r.count(), 1);

    let linear = c.get("", Some(all())).await.expect("get");
    let serial = c
        .get("", Some(all().with_serializable()))
        .await
        .expect("serializable get");
    assert_eq!(keys(&serial), keys(&linear));
    assert_eq!(rev(serial.header()), 7);
    for (x, y) in serial.kvs().iter().zip(linear.kvs()) {
        assert_eq!(
            (x.value(), x.version(), x.mod_revision()),
            (y.value(), y.version(), y.mod_revision())
        );
    }
}

#[tokio::test]
async fn txn_compare_targets_and_results() {
    let s = Server::start();
    let mut c = s.client().await;
    // k: create 2, mod 3, version 2, value "n", no lease.
    c.put("k", "m", None).await.expect("put");
    c.put("k", "n", None).await.expect("put");
    use CompareOp::{Equal as Eq, Greater as Gt, Less as Lt, NotEqual as Ne};
    let cases: Vec<(Compare, bool)> = vec![
        (Compare::version("k", Eq, 2), true),
        (Compare::version("k", Eq, 1), false),
        (Compare::version("k", Gt, 1), true),
        (Compare::version("k", Gt, 2), false),
        (Compare::version("k", Lt, 3), true),
        (Compare::version("k", Lt, 2), false),
        (Compare::version("k", Ne, 1), true),
        (Compare::version("k", Ne, 2), false),
        (Compare::create_revision("k", Eq, 2), true),
        (Compare::create_revision("k", Eq, 3), false),
        (Compare::create_revision("k", Gt, 1), true),
        (Compare::create_revision("k", Gt, 2), false),
        (Compare::create_revision("k", Lt, 3), true),
        (Compare::create_revision("k", Lt, 2), false),
        (Compare::create_revision("k", Ne, 3), true),
        (Compare::create_revision("k", Ne, 2), false),
        (Compare::mod_revision("k", Eq, 3), true),
        (Compare::mod_revision("k", Eq, 2), false),
        (Compare::mod_revision("k", Gt, 2), true),
        (Compare::mod_revision("k", Gt, 3), false),
        (Compare::mod_revision("k", Lt, 4), true),
        (Compare::mod_revision("k", Lt, 3), false),
        (Compare::mod_revision("k", Ne, 2), true),
        (Compare::mod_revision("k", Ne, 3), false),
        (Compare::value("k", Eq, "n"), true),
        (Compare::value("k", Eq, "m"), false),
        (Compare::value("k", Gt, "m"), true),
        (Compare::value("k", Gt, "n"), false),
        (Compare::value("k", Lt, "o"), true),
        (Compare::value("k", Lt, "n"), false),
        (Compare::value("k", Ne, "m"), true),
        (Compare::value("k", Ne, "n"), false),
        (Compare::lease("k", Eq, 0), true),
        (Compare::lease("k", Eq, 1), false),
        (Compare::lease("k", Gt, 0), false),
        (Compare::lease("k", Lt, 1), true),
        (Compare::lease("k", Lt, 0), false),
        (Compare::lease("k", Ne, 0), false),
        (Compare::lease("k", Ne, 5), true),
        // A missing key has version, create, mod and lease 0, and matches no VALUE compare.
        (Compare::version("absent", Eq, 0), true),
        (Compare::create_revision("absent", Eq, 0), true),
        (Compare::mod_revision("absent", Eq, 0), true),
        (Compare::lease("absent", Eq, 0), true),
        (Compare::version("absent", Gt, 0), false),
        (Compare::value("absent", Eq, ""), false),
        (Compare::value("absent", Ne, "x"), false),
    ];
    for (cmp, want) in cases {
        let what = format!("{cmp:?}");
        let r = c
            .txn(
                Txn::new()
                    .when([cmp])
                    .and_then([TxnOp::get("k", None)])
                    .or_else([TxnOp::get("absent", None)]),
            )
            .await
            .expect("txn");
        assert_eq!(r.succeeded(), want, "{what}");
        // The branch taken is the one that ran.
        match &r.op_responses()[..] {
            [TxnOpResponse::Get(g)] => assert_eq!(g.kvs().len(), usize::from(want), "{what}"),
            other => panic!("{what}: unexpected responses {other:?}"),
        }
    }
    // Compares are ANDed.
    let both = |a: Compare, b: Compare| Txn::new().when([a, b]);
    let r = c
        .txn(both(
            Compare::version("k", Eq, 2),
            Compare::value("k", Eq, "n"),
        ))
        .await
        .expect("txn");
    assert!(r.succeeded());
    let r = c
        .txn(both(
            Compare::version("k", Eq, 2),
            Compare::value("k", Eq, "m"),
        ))
        .await
        .expect("txn");
    assert!(!r.succeeded());
    // None of this wrote anything.
    assert_eq!(current_revision(&mut c).await, 3);
}

#[tokio::test]
async fn txn_compare_over_a_key_range() {
    let s = Server::start();
    let mut c = s.client().await;
    c.put("p/1", "a", None).await.expect("put");
    c.put("p/2", "b", None).await.expect("put");
    c.put("p/2", "b", None).await.expect("put");
    c.put("q", "z", None).await.expect("put");
    use CompareOp::{Equal as Eq, Greater as Gt, Less as Lt, NotEqual as Ne};
    let cases: Vec<(Compare, bool)> = vec![
        // Every key in the range must satisfy the compare.
        (Compare::version("p/", Gt, 0).with_prefix(), true),
        (Compare::version("p/", Eq, 1).with_prefix(), false),
        (Compare::version("p/", Lt, 3).with_prefix(), true),
        (Compare::version("p/", Ne, 2).with_prefix(), false),
        (Compare::value("p/", Lt, "c").with_prefix(), true),
        (Compare::value("p/", Eq, "a").with_prefix(), false),
        (Compare::version("p/1", Eq, 1).with_range("p/2"), true),
        (Compare::mod_revision("p/1", Lt, 4).with_range("p/3"), false),
        // [p/, r) holds p/1 (created at 2), p/2 (3) and q (5).
        (Compare::create_revision("p/", Lt, 5).with_range("r"), false),
        (Compare::create_revision("p/", Lt, 6).with_range("r"), true),
        // range_end "\0": every key from the key on.
        (Compare::version("p/2", Gt, 1).with_range([0u8]), false),
        (Compare::version("p/2", Gt, 0).with_range([0u8]), true),
        (Compare::value("p/2", Ne, "a").with_range([0u8]), true),
        // An empty range compares like a missing key.
        (Compare::version("none/", Eq, 0).with_prefix(), true),
        (Compare::value("none/", Ne, "x").with_prefix(), false),
    ];
    for (cmp, want) in cases {
        let what = format!("{cmp:?}");
        let r = c.txn(Txn::new().when([cmp])).await.expect("txn");
        assert_eq!(r.succeeded(), want, "{what}");
    }
}

#[tokio::test]
async fn txn_branches_and_nested_txns() {
    let s = Server::start();
    let mut c = s.client().await;
    c.put("old", "1", None).await.expect("put");

    // Every compare, nested ones too, sees the store as it was before the txn; reads inside
    // the txn see the txn's own earlier writes; everything shares one revision.
    let inner = Txn::new()
        .when([Compare::version("n", CompareOp::Equal, 0)])
        .and_then([TxnOp::put("m", "1", None), TxnOp::get("n", None)])
        .or_else([TxnOp::put("never", "1", None)]);
    let outer = Txn::new()
        .when([Compare::value("old", CompareOp::Equal, "1")])
        .and_then([
            TxnOp::put("n", "1", None),
            TxnOp::txn(inner),
            TxnOp::get("m", None),
            TxnOp::delete("old", Some(DeleteOptions::new().with_prev_key())),
        ])
        .or_else([TxnOp::put("never", "1", None)]);
    let r = c.txn(outer).await.expect("nested txn");
    assert!(r.succeeded());
    assert_eq!(rev(r.header()), 3);
    let responses = r.op_responses();
    assert_eq!(responses.len(), 4);
    match &responses[0] {
        TxnOpResponse::Put(p) => assert_eq!(rev(p.header()), 3),
        other => panic!("expected a put response, got {other:?}"),
    }
    match &responses[1] {
        TxnOpResponse::Txn(t) => {
            assert!(
                t.succeeded(),
                "the nested compare saw the state before the txn"
            );
            let inner = t.op_responses();
            assert_eq!(inner.len(), 2);
            match &inner[1] {
                TxnOpResponse::Get(g) => {
                    assert_eq!(keys(g), ["n"], "a read sees the txn's earlier put");
                    assert_eq!(g.kvs()[0].mod_revision(), 3);
                    assert_eq!(g.kvs()[0].version(), 1);
                }
                other => panic!("expected a get response, got {other:?}"),
            }
        }
        other => panic!("expected a txn response, got {other:?}"),
    }
    match &responses[2] {
        TxnOpResponse::Get(g) => assert_eq!(keys(g), ["m"]),
        other => panic!("expected a get response, got {other:?}"),
    }
    match &responses[3] {
        TxnOpResponse::Delete(d) => {
            assert_eq!(d.deleted(), 1);
            assert_eq!(d.prev_kvs()[0].value(), b"1");
            assert_eq!(rev(d.header()), 3);
        }
        other => panic!("expected a delete response, got {other:?}"),
    }
    let all = c
        .get("", Some(GetOptions::new().with_all_keys()))
        .await
        .expect("get");
    assert_eq!(keys(&all), ["m", "n"]);
    for kv in all.kvs() {
        assert_eq!(kv.mod_revision(), 3);
    }
    assert_eq!(current_revision(&mut c).await, 3);

    // The failure branch, with a nested txn whose own compare fails.
    let inner = Txn::new()
        .when([Compare::version("n", CompareOp::Equal, 0)])
        .and_then([TxnOp::put("never", "1", None)])
        .or_else([TxnOp::put("o", "1", None)]);
    let outer = Txn::new()
        .when([Compare::value("old", CompareOp::Equal, "1")])
        .and_then([TxnOp::put("never", "1", None)])
        .or_else([TxnOp::txn(inner), TxnOp::put("p", "1", None)]);
    let r = c.txn(outer).await.expect("nested txn");
    assert!(!r.succeeded());
    match &r.op_responses()[0] {
        TxnOpResponse::Txn(t) => assert!(!t.succeeded()),
        other => panic!("expected a txn response, got {other:?}"),
    }
    let all = c
        .get("", Some(GetOptions::new().with_all_keys()))
        .await
        .expect("get");
    assert_eq!(keys(&all), ["m", "n", "o", "p"]);
    assert_eq!(rev(all.header()), 4);

    // The two branches of one nested txn exclude each other, so they may write the same key.
    let inner = Txn::new()
        .when([Compare::version("n", CompareOp::Equal, 1)])
        .and_then([TxnOp::put("same", "then", None)])
        .or_else([TxnOp::put("same", "else", None)]);
    let r = c
        .txn(Txn::new().and_then([TxnOp::txn(inner)]))
        .await
        .expect("nested branches writing one key");
    assert!(r.succeeded());
    let got = c.get("same", None).await.expect("get");
    assert_eq!(got.kvs()[0].value(), b"then");
}

#[tokio::test]
async fn txn_size_and_duplicate_key_errors() {
    let s = Server::start();
    let mut c = s.client().await;
    let puts = |n: usize| -> Vec<TxnOp> {
        (0..n)
            .map(|i| TxnOp::put(format!("k{i:03}"), "v", None))
            .collect()
    };
    let too_many = "etcdserver: too many operations in txn request";
    assert_status(
        c.txn(Txn::new().and_then(puts(129))).await,
        "InvalidArgument",
        too_many,
    );
    assert_status(
        c.txn(Txn::new().or_else(puts(129))).await,
        "InvalidArgument",
        too_many,
    );
    let compares: Vec<Compare> = (0..129)
        .map(|i| Compare::version(format!("c{i}"), CompareOp::Equal, 0))
        .collect();
    assert_status(
        c.txn(Txn::new().when(compares)).await,
        "InvalidArgument",
        too_many,
    );
    assert_eq!(current_revision(&mut c).await, 1);
    // 128 is allowed, and is one revision.
    let r = c
        .txn(Txn::new().and_then(puts(128)))
        .await
        .expect("128 ops");
    assert_eq!(rev(r.header()), 2);
    let count = c
        .get("k", Some(GetOptions::new().with_prefix().with_count_only()))
        .await
        .expect("count");
    assert_eq!(count.count(), 128);

    let dup = "etcdserver: duplicate key given in txn request";
    assert_status(
        c.txn(Txn::new().and_then([TxnOp::put("a", "1", None), TxnOp::put("a", "2", None)]))
            .await,
        "InvalidArgument",
        dup,
    );
    assert_status(
        c.txn(Txn::new().or_else([TxnOp::put("a", "1", None), TxnOp::put("a", "2", None)]))
            .await,
        "InvalidArgument",
        dup,
    );
    // A put inside a range the same branch deletes.
    assert_status(
        c.txn(Txn::new().and_then([
            TxnOp::put("b", "1", None),
            TxnOp::delete("a", Some(DeleteOptions::new().with_range("c"))),
        ]))
        .await,
        "InvalidArgument",
        dup,
    );
    // A put repeated in a nested txn.
    assert_status(
        c.txn(Txn::new().and_then([
            TxnOp::put("a", "1", None),
            TxnOp::txn(Txn::new().and_then([TxnOp::put("a", "2", None)])),
        ]))
        .await,
        "InvalidArgument",
        dup,
    );
    assert_eq!(current_revision(&mut c).await, 2);
    // The same key in the two branches, or read and written, is fine.
    let r = c
        .txn(
            Txn::new()
                .and_then([TxnOp::put("a", "1", None), TxnOp::get("a", None)])
                .or_else([TxnOp::put("a", "2", None)]),
        )
        .await
        .expect("one key in both branches");
    assert!(r.succeeded());
}

#[tokio::test]
async fn request_errors_have_etcds_codes_and_messages() {
    let s = Server::start();
    let mut c = s.client().await;
    c.put("k", "v", None).await.expect("put");

    let no_key = "etcdserver: key is not provided";
    assert_status(c.put("", "v", None).await, "InvalidArgument", no_key);
    assert_status(c.get("", None).await, "InvalidArgument", no_key);
    assert_status(c.delete("", None).await, "InvalidArgument", no_key);
    assert_status(
        c.txn(Txn::new().when([Compare::version("", CompareOp::Equal, 0)]))
            .await,
        "InvalidArgument",
        no_key,
    );
    assert_status(
        c.txn(Txn::new().and_then([TxnOp::put("", "v", None)]))
            .await,
        "InvalidArgument",
        no_key,
    );

    // 1.6 MiB is over etcd's 1.5 MiB request limit; 1 MiB is not.
    let big = vec![b'x'; 1024 * 1024 * 16 / 10];
    assert_status(
        c.put("big", big, None).await,
        "InvalidArgument",
        "etcdserver: request is too large",
    );
    let fine = vec![b'y'; 1024 * 1024];
    c.put("big", fine.clone(), None)
        .await
        .expect("a 1 MiB value");
    assert_eq!(
        c.get("big", None).await.expect("get").kvs()[0].value(),
        &fine[..]
    );

    let no_lease = "etcdserver: requested lease not found";
    assert_status(
        c.put("k", "v", Some(PutOptions::new().with_lease(1234)))
            .await,
        "NotFound",
        no_lease,
    );
    assert_status(
        c.txn(Txn::new().and_then([TxnOp::put(
            "k",
            "v",
            Some(PutOptions::new().with_lease(1234)),
        )]))
        .await,
        "NotFound",
        no_lease,
    );

    assert_status(
        c.put("missing", "", Some(PutOptions::new().with_ignore_value()))
            .await,
        "InvalidArgument",
        "etcdserver: key not found",
    );
    assert_status(
        c.put("missing", "v", Some(PutOptions::new().with_ignore_lease()))
            .await,
        "InvalidArgument",
        "etcdserver: key not found",
    );
    assert_status(
        c.put("k", "v", Some(PutOptions::new().with_ignore_value()))
            .await,
        "InvalidArgument",
        "etcdserver: value is provided",
    );
    assert_status(
        c.put(
            "k",
            "v",
            Some(PutOptions::new().with_ignore_lease().with_lease(5)),
        )
        .await,
        "InvalidArgument",
        "etcdserver: lease is provided",
    );
    // None of the refused writes made a revision.
    assert_eq!(current_revision(&mut c).await, 3);
}

#[tokio::test]
async fn compacted_and_future_revisions() {
    let s = Server::start();
    let mut c = s.client().await;
    for v in ["v1", "v2", "v3", "v4", "v5"] {
        c.put("k", v, None).await.expect("put");
    }
    // Revisions 2..=6.
    let compacted = "etcdserver: mvcc: required revision has been compacted";
    let future = "etcdserver: mvcc: required revision is a future revision";
    let at = |r: i64| Some(GetOptions::new().with_revision(r));

    assert_status(c.get("k", at(7)).await, "OutOfRange", future);
    assert_status(c.compact(7, None).await, "OutOfRange", future);

    let r = c.compact(4, None).await.expect("compact");
    assert_eq!(rev(r.header()), 6);
    assert_status(c.get("k", at(3)).await, "OutOfRange", compacted);
    assert_status(c.get("k", at(2)).await, "OutOfRange", compacted);
    let got = c.get("k", at(4)).await.expect("the compaction point");
    assert_eq!(got.kvs()[0].value(), b"v3");
    assert_eq!(
        c.get("k", at(0)).await.expect("latest").kvs()[0].value(),
        b"v5"
    );
    assert_status(c.compact(4, None).await, "OutOfRange", compacted);
    assert_status(c.compact(3, None).await, "OutOfRange", compacted);
    // Inside a txn too, and the txn then writes nothing.
    assert_status(
        c.txn(Txn::new().and_then([TxnOp::put("x", "1", None), TxnOp::get("k", at(3))]))
            .await,
        "OutOfRange",
        compacted,
    );
    assert_status(
        c.txn(Txn::new().and_then([TxnOp::get("k", at(99))])).await,
        "OutOfRange",
        future,
    );
    assert_eq!(current_revision(&mut c).await, 6);

    // A physical compaction answers once the history is gone.
    c.compact(6, Some(CompactionOptions::new().with_physical()))
        .await
        .expect("physical compaction");
    assert_status(c.get("k", at(5)).await, "OutOfRange", compacted);
    let got = c.get("k", None).await.expect("get");
    assert_eq!(got.kvs()[0].value(), b"v5");
    assert_eq!(
        (got.kvs()[0].create_revision(), got.kvs()[0].version()),
        (2, 5),
        "compaction keeps the live key's metadata"
    );
}
