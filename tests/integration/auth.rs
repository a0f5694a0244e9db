//! Auth with etcdctl 3.4 and the JSON gateway against real servers: users and roles with
//! etcd's commands, `auth enable` (etcdctl adds the root role itself), and every RPC family
//! with an unprivileged user: allowed inside its ranges, "permission denied" outside, root
//! only where etcd keeps it for root; tokens through the gateway's Authorization header, a
//! token voided by a password change; and a 3-member cluster whose followers forward an
//! authenticated user's writes.

use crate::common;

use common::cluster::Cluster;
use common::{Server, etcdctl_at, etcdctl_error, stdout_ok};
use serde_json::json;

const DENIED: &str = "Error: etcdserver: permission denied";
const ALICE: &str = "--user=alice:alicepw";
const ROOT: &str = "--user=root:rootpw";

/// root, and alice who may read /app/ and read and write /alice/; then auth on.
fn set_up(etcdctl: &dyn Fn(&[&str]) -> std::process::Output) {
    let reader: &[&[&str]] = &[
        &["role", "add", "reader"],
        &[
            "role",
            "grant-permission",
            "reader",
            "read",
            "/app/",
            "--prefix",
        ],
        &["user", "grant-role", "alice", "reader"],
        &["put", "/app/config", "c1"],
        &["put", "/other/secret", "s"],
    ];
    for args in common::ROOT_AND_ALICE.iter().chain(reader) {
        stdout_ok(&etcdctl(args));
    }
    assert_eq!(
        stdout_ok(&etcdctl(&["auth", "enable"])).trim(),
        "Authentication Enabled"
    );
}

#[test]
fn an_unprivileged_user_is_held_to_its_ranges_in_every_rpc_family() {
    let server = Server::start();
    let ctl = |args: &[&str]| server.etcdctl(args);
    set_up(&ctl);

    // No credentials, or wrong ones.
    assert_eq!(
        etcdctl_error(&ctl(&["get", "/app/config"])),
        "Error: etcdserver: user name is empty"
    );
    assert_eq!(
        etcdctl_error(&ctl(&["--user=alice:wrong", "get", "/app/config"])),
        "Error: etcdserver: authentication failed, invalid user ID or password"
    );

    // KV inside and outside.
    assert_eq!(
        stdout_ok(&ctl(&[ALICE, "get", "/app/config", "--print-value-only"])).trim(),
        "c1"
    );
    assert_eq!(
        stdout_ok(&ctl(&[ALICE, "put", "/alice/k", "v"])).trim(),
        "OK"
    );
    assert_eq!(
        etcdctl_error(&ctl(&[ALICE, "put", "/app/config", "x"])),
        DENIED
    );
    assert_eq!(
        etcdctl_error(&ctl(&[ALICE, "get", "/other/secret"])),
        DENIED
    );
    assert_eq!(
        etcdctl_error(&ctl(&[ALICE, "get", "/", "--prefix"])),
        DENIED
    );
    assert_eq!(etcdctl_error(&ctl(&[ALICE, "del", "/app/config"])), DENIED);
    assert_eq!(stdout_ok(&ctl(&[ALICE, "del", "/alice/k"])).trim(), "1");
    // A txn is checked in both branches, whichever runs.
    let txn = "value(\"/alice/k\") = \"nope\"\n\nput /alice/a 1\n\nput /other/secret x\n\n";
    let out = server.etcdctl_with_stdin(&[ALICE, "txn"], txn);
    assert_eq!(etcdctl_error(&out), DENIED);
    let txn = "value(\"/alice/k\") = \"nope\"\n\nput /alice/a 1\n\nput /alice/b 2\n\n";
    let out = server.etcdctl_with_stdin(&[ALICE, "txn"], txn);
    assert!(stdout_ok(&out).starts_with("FAILURE"));

    // Watch: checked at creation.
    let out = ctl(&[ALICE, "watch", "/other/"]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success());
    assert!(
        said.contains("watch was canceled") && said.contains("etcdserver: permission denied"),
        "{said}"
    );

    // Leases: granting is anyone's; revoking needs write access to every attached key.
    let lease = stdout_ok(&ctl(&[ROOT, "lease", "grant", "600"]));
    let id = lease
        .split_whitespace()
        .nth(1)
        .expect("a lease ID")
        .to_string();
    stdout_ok(&ctl(&[ROOT, "put", "/app/leased", "x", "--lease", &id]));
    assert_eq!(
        etcdctl_error(&ctl(&[ALICE, "lease", "revoke", &id])),
        "Error: failed to revoke lease (etcdserver: permission denied)"
    );
    let own = stdout_ok(&ctl(&[ALICE, "lease", "grant", "600"]));
    let own = own
        .split_whitespace()
        .nth(1)
        .expect("a lease ID")
        .to_string();
    stdout_ok(&ctl(&[ALICE, "put", "/alice/leased", "x", "--lease", &own]));
    assert!(stdout_ok(&ctl(&[ALICE, "lease", "revoke", &own])).contains("revoked"));

    // Locks and elections: by name prefix.
    assert_eq!(
        stdout_ok(&ctl(&[ALICE, "lock", "/alice/lock", "echo", "held"])).trim(),
        "held"
    );
    assert_eq!(
        etcdctl_error(&ctl(&[ALICE, "lock", "/other/lock", "echo", "held"])),
        DENIED
    );
    assert!(
        !ctl(&[ALICE, "elect", "-l", "/other/election"])
            .status
            .success()
    );

    // Maintenance and cluster: status and member list are anyone's, the rest root's.
    stdout_ok(&ctl(&[ALICE, "endpoint", "status"]));
    stdout_ok(&ctl(&[ALICE, "member", "list"]));
    let defrag = ctl(&[ALICE, "defrag"]);
    assert!(!defrag.status.success());
    assert!(String::from_utf8_lossy(&defrag.stderr).contains("(etcdserver: permission denied)"));
    assert!(stdout_ok(&ctl(&[ROOT, "defrag"])).contains("Finished defragmenting"));
    assert_eq!(etcdctl_error(&ctl(&[ALICE, "compaction", "1"])), DENIED);
    assert_eq!(etcdctl_error(&ctl(&[ALICE, "endpoint", "hashkv"])), DENIED);
    let snapshot = server.data_dir().join("..").join("alice.db");
    let snapshot = snapshot.to_str().expect("a UTF-8 path");
    assert_eq!(
        etcdctl_error(&ctl(&[ALICE, "snapshot", "save", snapshot])),
        DENIED
    );

    // Users and roles: root's.
    assert_eq!(etcdctl_error(&ctl(&[ALICE, "user", "list"])), DENIED);
    assert_eq!(etcdctl_error(&ctl(&[ALICE, "role", "add", "mine"])), DENIED);
    assert_eq!(stdout_ok(&ctl(&[ROOT, "user", "list"])), "alice\nroot\n");
    assert_eq!(
        stdout_ok(&ctl(&[ROOT, "user", "get", "alice"])),
        "User: alice\nRoles: reader writer\n"
    );
    assert_eq!(
        etcdctl_error(&ctl(&[ROOT, "user", "delete", "root"])),
        "Error: etcdserver: invalid auth management"
    );
    // Taking a role away takes its rights away.
    stdout_ok(&ctl(&[ROOT, "user", "revoke-role", "alice", "reader"]));
    assert_eq!(etcdctl_error(&ctl(&[ALICE, "get", "/app/config"])), DENIED);

    // Off again: anyone may.
    assert_eq!(
        stdout_ok(&ctl(&[ROOT, "auth", "disable"])).trim(),
        "Authentication Disabled"
    );
    stdout_ok(&ctl(&["get", "/other/secret"]));
}

#[test]
fn gateway_tokens_travel_in_the_authorization_header_and_die_with_the_password() {
    let server = Server::start();
    set_up(&|args: &[&str]| server.etcdctl(args));
    let (code, body) = server.post_json(
        "/v3/auth/authenticate",
        &json!({"name": "alice", "password": "alicepw"}),
    );
    assert_eq!(code, 200, "{body}");
    let token = body["token"].as_str().expect("a token").to_string();
    let put = |key: &str, token: Option<&str>| {
        let body = json!({"key": common::b64(key), "value": common::b64("v")}).to_string();
        let headers: Vec<(&str, &str)> = token
            .map(|t| vec![("Authorization", t)])
            .unwrap_or_default();
        server.http_with_headers("POST", "/v3/kv/put", Some(&body), &headers)
    };
    assert_eq!(put("/alice/g", Some(&token)).status, 200);
    let denied = put("/other/g", Some(&token));
    assert_eq!(denied.status, 403, "{}", denied.body);
    assert!(denied.body.contains("etcdserver: permission denied"));
    let anonymous = put("/alice/g", None);
    assert!(
        anonymous.body.contains("etcdserver: user name is empty"),
        "{}",
        anonymous.body
    );

    // A new password voids the tokens handed out before it, on every member.
    stdout_ok(&server.etcdctl_with_stdin(
        &[ROOT, "user", "passwd", "alice", "--interactive=false"],
        "newpw\n",
    ));
    let stale = put("/alice/g", Some(&token));
    assert!(
        stale.body.contains("etcdserver: invalid auth token"),
        "{}",
        stale.body
    );
    let forged = put("/alice/g", Some("YWxpY2U.99999999999999.0000.00"));
    assert!(
        forged.body.contains("etcdserver: invalid auth token"),
        "{}",
        forged.body
    );
}

#[test]
fn a_cluster_forwards_an_authenticated_users_writes_and_restarts_with_auth_on() {
    let mut cluster = Cluster::start(3);
    let follower = cluster.followers()[0];
    set_up(&|args: &[&str]| cluster.etcdctl(follower, args));
    assert_eq!(
        stdout_ok(&cluster.etcdctl(follower, &[ALICE, "put", "/alice/f", "v"])).trim(),
        "OK"
    );
    assert_eq!(
        etcdctl_error(&cluster.etcdctl(follower, &[ALICE, "put", "/other/f", "v"])),
        DENIED
    );
    for i in 0..3 {
        assert_eq!(
            stdout_ok(&cluster.etcdctl(i, &[ALICE, "get", "/alice/f", "--print-value-only"]))
                .trim(),
            "v"
        );
    }
    // A member restarted with auth on rejoins (its calls to the leader prove membership).
    cluster.stop(follower);
    cluster.restart(follower);
    stdout_ok(&cluster.etcdctl(follower, &[ALICE, "put", "/alice/after", "v"]));
    let endpoints = cluster.endpoints().join(",");
    stdout_ok(&etcdctl_at(&endpoints, &[ROOT, "endpoint", "hashkv"], None));
}
