//! etcdctl 3.4's `lease` commands and `put --lease` against a real conclave server: grant,
//! revoke (deletes the attached keys), keep-alive, timetolive --keys, list, expiry, and
//! etcd's errors. Every test runs on a lone server and through a follower of a 3-member
//! cluster, where keep-alives and TTL questions travel to the leader.

use crate::common;

use std::time::{Duration, Instant};

use common::target::Target;

/// Grants a lease; its ID as etcdctl prints it (hex).
fn grant(t: &Target, ttl: &str) -> String {
    let out = t.ok(&["lease", "grant", ttl]);
    // "lease 694d77aa9e38260f granted with TTL(60s)"
    out.split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("lease grant printed {out:?}"))
        .to_string()
}

single_and_cluster!(
    grant_attach_timetolive_list_and_revoke,
    keep_alive_renews_and_unknown_leases,
    an_unrenewed_lease_expires_and_takes_its_keys,
    lease_errors_in_etcds_words,
);

fn grant_attach_timetolive_list_and_revoke(t: &Target) {
    let id = grant(t, "60");
    assert_eq!(t.ok(&["put", "--lease", &id, "svc/a", "1"]), "OK\n");
    assert_eq!(t.ok(&["put", "--lease", &id, "svc/b", "2"]), "OK\n");
    assert_eq!(t.ok(&["put", "svc/c", "3"]), "OK\n");
    // The TTL is the leader's count; a moment may have passed.
    let ttl = t.ok(&["lease", "timetolive", &id, "--keys"]);
    let remaining_ok = ["remaining(60s)", "remaining(59s)"].iter().any(|r| {
        ttl == format!("lease {id} granted with TTL(60s), {r}, attached keys([svc/a svc/b])\n")
    });
    assert!(remaining_ok, "{ttl:?}");
    let list = t.ok(&["lease", "list"]);
    assert!(list.starts_with("found 1 leases\n"), "{list:?}");
    assert!(list.contains(&format!("{id}\n")), "{list:?}");

    // ignore_lease keeps the key on its lease; a put without one takes it off.
    assert_eq!(t.ok(&["put", "--ignore-lease", "svc/a", "1b"]), "OK\n");
    assert_eq!(t.ok(&["put", "svc/b", "2b"]), "OK\n");
    let ttl = t.ok(&["lease", "timetolive", &id, "--keys"]);
    assert!(ttl.ends_with("attached keys([svc/a])\n"), "{ttl:?}");

    assert_eq!(
        t.ok(&["lease", "revoke", &id]),
        format!("lease {id} revoked\n")
    );
    assert_eq!(
        t.ok(&["get", "svc/", "--prefix", "--keys-only"]),
        "svc/b\n\nsvc/c\n\n"
    );
    assert_eq!(
        t.ok(&["lease", "timetolive", &id]),
        format!("lease {id} already expired\n")
    );
    assert_eq!(t.ok(&["lease", "list"]), "found 0 leases\n");
}

fn keep_alive_renews_and_unknown_leases(t: &Target) {
    let id = grant(t, "60");
    assert_eq!(
        t.ok(&["lease", "keep-alive", "--once", &id]),
        format!("lease {id} keepalived with TTL(60)\n")
    );
    // A lease that does not exist: TTL 0 to the keep-alive, which etcdctl reports as not
    // found; TTL -1 to timetolive.
    assert_eq!(
        t.error(&["lease", "keep-alive", "--once", "1234"]),
        "Error: etcdserver: requested lease not found"
    );
    assert_eq!(
        t.ok(&["lease", "timetolive", "1234"]),
        "lease 0000000000001234 already expired\n"
    );
}

fn an_unrenewed_lease_expires_and_takes_its_keys(t: &Target) {
    // Below the minimum TTL (1.5 election timeouts, 2 s): raised to it.
    let out = t.ok(&["lease", "grant", "1"]);
    assert!(out.ends_with("granted with TTL(2s)\n"), "{out:?}");
    let id = out.split_whitespace().nth(1).expect("id").to_string();
    assert_eq!(t.ok(&["put", "--lease", &id, "ephemeral", "v"]), "OK\n");
    let granted = Instant::now();
    loop {
        if t.ok(&["get", "ephemeral"]).is_empty() {
            break;
        }
        assert!(
            granted.elapsed() < Duration::from_secs(15),
            "the key outlived its 2 s lease by far"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        t.ok(&["lease", "timetolive", &id]),
        format!("lease {id} already expired\n")
    );
}

fn lease_errors_in_etcds_words(t: &Target) {
    assert_eq!(
        t.error(&["put", "--lease", "1234", "k", "v"]),
        "Error: etcdserver: requested lease not found"
    );
    assert_eq!(
        t.error(&["lease", "revoke", "1234"]),
        "Error: failed to revoke lease (etcdserver: requested lease not found)"
    );
    assert_eq!(
        t.error(&["lease", "grant", "9000000001"]),
        "Error: failed to grant lease (etcdserver: too large lease TTL)"
    );
}
