//! etcd's health endpoints, as probes read them: `/health` with `exclude` and `serializable`,
//! `/livez` and `/readyz` with their named checks, `verbose` and `exclude`, and `/version`;
//! answered without a token when auth is on, and turning unhealthy for an alarm or a lost
//! quorum exactly where etcd's do.

use crate::common;

use common::{Server, stdout_ok};
use serde_json::{Value, json};

fn health_json(resp: &common::HttpResponse) -> Value {
    serde_json::from_str(&resp.body).unwrap_or_else(|e| panic!("{e}: {:?}", resp.body))
}

#[test]
fn a_healthy_member_answers_every_probe_as_etcd_does() {
    let server = Server::start();
    let health = server.http("GET", "/health", None);
    assert_eq!(health.status, 200, "{}", health.body);
    assert_eq!(
        health_json(&health),
        json!({"health": "true", "reason": ""})
    );

    let livez = server.http("GET", "/livez", None);
    assert_eq!((livez.status, livez.body.as_str()), (200, "ok\n"));
    assert_eq!(
        livez.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    let readyz = server.http("GET", "/readyz?verbose", None);
    assert_eq!(readyz.status, 200, "{}", readyz.body);
    assert_eq!(
        readyz.body,
        "[+]data_corruption ok\n[+]serializable_read ok\n[+]linearizable_read ok\n\
         [+]non_learner ok\nok\n"
    );
    let without = server.http("GET", "/readyz?verbose&exclude=linearizable_read", None);
    assert!(
        !without.body.contains("linearizable_read"),
        "{}",
        without.body
    );
    let one = server.http("GET", "/readyz/linearizable_read?verbose", None);
    assert_eq!(one.body, "[+]linearizable_read ok\nok\n");
    assert_eq!(
        server.http("GET", "/livez/serializable_read", None).body,
        "ok\n"
    );
    // A check the endpoint does not have, and another method: as etcd's mux answers.
    assert_eq!(
        server.http("GET", "/livez/linearizable_read", None).status,
        404
    );
    assert_eq!(server.http("GET", "/readyz/bogus", None).status, 404);
    assert_eq!(server.http("POST", "/health", Some("")).status, 405);

    // Patroni reads /version before anything else, and needs JSON with etcdserver in it.
    let version = health_json(&server.http("GET", "/version", None));
    assert_eq!(
        version,
        json!({"etcdserver": "3.5.0", "etcdcluster": "3.5.0"}),
        "{version}"
    );

    // With auth on, probes need no token, as in etcd (it checks as root).
    for args in [&["user", "add", "root:rootpw"][..], &["auth", "enable"]] {
        stdout_ok(&server.etcdctl(args));
    }
    assert_eq!(server.http("GET", "/health", None).status, 200);
    assert_eq!(server.http("GET", "/readyz", None).status, 200);
}

/// An alarm makes `/health` unhealthy unless excluded; CORRUPT, and only it, fails `/readyz`.
#[test]
fn alarms_turn_health_as_etcds_do() {
    let server = Server::start();
    let status = server.post_json("/v3/maintenance/status", &json!({})).1;
    let member = status["header"]["member_id"].clone();
    let alarm = |action: &str, kind: &str| {
        let (code, body) = server.post_json(
            "/v3/maintenance/alarm",
            &json!({"action": action, "memberID": member, "alarm": kind}),
        );
        assert_eq!(code, 200, "{body}");
    };

    alarm("ACTIVATE", "NOSPACE");
    let health = server.http("GET", "/health", None);
    assert_eq!(health.status, 503, "{}", health.body);
    assert_eq!(
        health_json(&health),
        json!({"health": "false", "reason": "ALARM NOSPACE"})
    );
    let excluded = server.http("GET", "/health?exclude=NOSPACE", None);
    assert_eq!(excluded.status, 200, "{}", excluded.body);
    assert_eq!(server.http("GET", "/readyz", None).status, 200);
    alarm("DEACTIVATE", "NOSPACE");
    assert_eq!(server.http("GET", "/health", None).status, 200);

    alarm("ACTIVATE", "CORRUPT");
    let health = server.http("GET", "/health", None);
    assert_eq!(health_json(&health)["reason"], "ALARM CORRUPT");
    let readyz = server.http("GET", "/readyz", None);
    assert_eq!(readyz.status, 503, "{}", readyz.body);
    assert!(
        readyz
            .body
            .contains("[-]data_corruption failed: alarm activated: CORRUPT\n"),
        "{}",
        readyz.body
    );
    assert_eq!(server.http("GET", "/livez", None).status, 200);
}

/// A member left alone without quorum: not healthy and not ready (no leader, no linearizable
/// read), but alive, and healthy for a serializable probe.
#[test]
fn a_member_without_quorum_is_alive_but_not_ready() {
    let mut cluster = common::cluster::Cluster::start(3);
    let leader = cluster.leader();
    let alone = (0..3).find(|&i| i != leader).unwrap();
    let other = (0..3).find(|&i| i != leader && i != alone).unwrap();
    cluster.kill9(leader);
    cluster.kill9(other);

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let health = loop {
        let health = cluster.http(alone, "GET", "/health");
        // First the read fails (the leader is gone); once it has been silent for two
        // election timeouts there is no leader at all, as for etcd's pre-candidates.
        if health.body.contains("RAFT NO LEADER") || std::time::Instant::now() > deadline {
            break health;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(health.status, 503, "{}", health.body);
    // A leader that went silent is no leader, as for etcd's pre-candidates.
    assert_eq!(
        health_json(&health)["reason"],
        "RAFT NO LEADER",
        "{}",
        health.body
    );
    let serializable = cluster.http(alone, "GET", "/health?serializable=true");
    assert_eq!(serializable.status, 200, "{}", serializable.body);
    assert_eq!(cluster.http(alone, "GET", "/livez").status, 200);
    let readyz = cluster.http(alone, "GET", "/readyz?verbose");
    assert_eq!(readyz.status, 503, "{}", readyz.body);
    assert!(
        readyz.body.contains("[+]serializable_read ok\n")
            && readyz.body.contains("[-]linearizable_read failed: "),
        "{}",
        readyz.body
    );
}
