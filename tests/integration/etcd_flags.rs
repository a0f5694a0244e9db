//! An operator swaps the etcd binary for conclave and keeps everything else: etcd's own e2e
//! harness flags, a `--config-file` in etcd's YAML, `--logger zap` for log pipelines built for
//! etcd. Every etcd flag starts conclave (a flag it does not act on says so once, in a
//! warning); a flag whose absence would be unsafe stops it with the reason.

use crate::common;

use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, etcdctl_at, free_port, free_udp_port, stdout_ok};
use serde_json::Value;

/// The flags etcd 3.4's e2e harness (tests/e2e/cluster_test.go) starts each member with,
/// beside the URLs and dirs the test harness gives.
const ETCD_E2E_FLAGS: &[&str] = &[
    "--initial-cluster-token",
    "new",
    "--snapshot-count",
    "10000",
    "--strict-reconfig-check=false",
    "--enable-v2",
    "--experimental-initial-corrupt-check",
    "--peer-auto-tls",
    "--experimental-compaction-batch-limit",
    "1000",
    "--max-concurrent-streams",
    "100",
    "--auth-token",
    "simple",
    "--experimental-watch-progress-notify-interval",
    "5s",
    "--quota-backend-bytes",
    "4294967296",
    "--debug=false",
    "--logger",
    "zap",
    "--log-outputs",
    "stderr",
];

#[test]
fn etcds_e2e_harness_flags_start_a_member_that_etcdctl_uses() {
    let server = Server::start_with(ETCD_E2E_FLAGS);
    stdout_ok(&server.etcdctl(&["put", "e2e", "works"]));
    let got = stdout_ok(&server.etcdctl(&["get", "e2e", "--print-value-only"]));
    assert_eq!(got.trim(), "works");

    // zap's JSON lines, with etcd's field names, and one warning per flag without effect.
    let log = server.log();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: not JSON: {l}")))
        .collect();
    for line in &lines {
        for field in ["level", "ts", "caller", "msg"] {
            assert!(line[field].is_string(), "{field} missing: {line}");
        }
    }
    let warnings: Vec<&str> = lines
        .iter()
        .filter(|l| l["level"] == "warn")
        .filter_map(|l| l["msg"].as_str())
        .filter(|m| m.contains("has no effect"))
        .collect();
    for flag in [
        "--enable-v2=true",
        "--experimental-compaction-batch-limit=1000",
    ] {
        assert_eq!(
            warnings.iter().filter(|w| w.starts_with(flag)).count(),
            1,
            "one warning for {flag}: {warnings:#?}"
        );
    }
    // And none for the flags conclave implements.
    for implemented in [
        "--snapshot-count",
        "--auth-token",
        "--quota-backend-bytes",
        "--strict-reconfig-check",
        "--experimental-initial-corrupt-check",
        "--peer-auto-tls",
        "--max-concurrent-streams",
    ] {
        assert!(
            !warnings.iter().any(|w| w.starts_with(implemented)),
            "{implemented}: {warnings:#?}"
        );
    }
    // --peer-auto-tls says what it gives up.
    assert!(
        lines.iter().any(|l| l["msg"]
            .as_str()
            .is_some_and(|m| m.contains("NOT authenticated"))),
        "no --peer-auto-tls warning"
    );
}

/// A flag conclave cannot honour safely stops it, from the command line or the environment.
#[test]
fn unsafe_flags_stop_the_server_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let out = Command::new(env!("CARGO_BIN_EXE_conclave"))
            .args(["--data-dir", dir.path().join("d").to_str().unwrap()])
            .args([
                "--listen-client-urls",
                &format!("http://127.0.0.1:{}", free_port()),
            ])
            .args([
                "--listen-peer-urls",
                &format!("https://127.0.0.1:{}", free_udp_port()),
            ])
            .args(args)
            .envs(env.iter().copied())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .expect("run conclave");
        assert!(!out.status.success(), "started with {args:?} {env:?}");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let err = run(&["--peer-crl-file=/etc/etcd/peer.crl"], &[]);
    assert!(
        err.contains("--peer-crl-file=/etc/etcd/peer.crl: conclave does not check certificate revocation lists"),
        "{err}"
    );
    let err = run(&[], &[("ETCD_DISCOVERY", "https://discovery.etcd.io/x")]);
    assert!(
        err.contains("--discovery=https://discovery.etcd.io/x"),
        "{err}"
    );
    assert!(
        !dir.path().join("d").exists(),
        "nothing was written before refusing"
    );
    // A value out of etcd's range is refused, naming the flag.
    let err = run(&["--bcrypt-cost", "3"], &[]);
    assert!(err.contains("--bcrypt-cost"), "{err}");
    // A flag nobody has is still an error, as in etcd.
    let err = run(&["--no-such-flag"], &[]);
    assert!(err.contains("--no-such-flag"), "{err}");
}

/// etcd's YAML configuration, nested TLS sections and lists included, replaces the command
/// line and the environment, as in etcd; `log-outputs` sends zap lines to a file.
#[test]
fn an_etcd_config_file_starts_conclave() {
    let dir = tempfile::tempdir().unwrap();
    let (client, peer) = (free_port(), free_udp_port());
    let log_file = dir.path().join("etcd.log");
    let yaml = format!(
        "# etcd.conf.yml, as etcd's sample has it\n\
         name: 'from-yaml'\n\
         data-dir: {data}\n\
         wal-dir:\n\
         snapshot-count: 10000\n\
         listen-client-urls: http://127.0.0.1:{client}\n\
         advertise-client-urls: http://127.0.0.1:{client}\n\
         listen-peer-urls: https://127.0.0.1:{peer}\n\
         initial-cluster: from-yaml=https://127.0.0.1:{peer}\n\
         initial-cluster-state: 'new'\n\
         enable-v2: true\n\
         client-transport-security:\n  client-cert-auth: false\n  auto-tls: false\n\
         peer-transport-security:\n  client-cert-auth: true\n\
         logger: zap\n\
         log-outputs: [{log}]\n",
        data = dir.path().join("data").display(),
        log = log_file.display(),
    );
    let config = dir.path().join("etcd.conf.yml");
    std::fs::write(&config, yaml).unwrap();
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_conclave"))
            .arg("--config-file")
            .arg(&config)
            // Ignored with a config file, as etcd ignores it.
            .env("ETCD_NAME", "from-env")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn conclave"),
    );
    let endpoint = format!("127.0.0.1:{client}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(&endpoint).is_err() {
        if let Some(status) = child.0.try_wait().unwrap() {
            panic!(
                "exited with {status}: {}",
                std::fs::read_to_string(&log_file).unwrap_or_default()
            );
        }
        assert!(Instant::now() < deadline, "no client port");
        std::thread::sleep(Duration::from_millis(100));
    }
    let members = stdout_ok(&etcdctl_at(&endpoint, &["member", "list"], None));
    drop(child);
    assert!(members.contains("from-yaml"), "{members}");
    let log = std::fs::read_to_string(&log_file).expect("the log file");
    let first: Value = serde_json::from_str(log.lines().next().expect("a line")).unwrap();
    assert!(first["msg"].is_string(), "{first}");
    assert!(
        log.contains("--enable-v2=true is accepted for etcd's sake"),
        "{log}"
    );
}

#[test]
fn slow_applies_are_logged_past_the_warning_duration() {
    // 1 ns: every apply is slower, so the warning must appear.
    let server = Server::start_with(&["--experimental-warning-apply-duration", "1ns"]);
    stdout_ok(&server.etcdctl(&["put", "k", "v"]));
    common::wait_until("a slow-apply warning", Duration::from_secs(10), || {
        server.log().contains("apply request took too long")
    });
    let line = server
        .log()
        .lines()
        .find(|l| l.contains("apply request took too long"))
        .map(str::to_string)
        .expect("the warning");
    assert!(line.contains("expected_duration"), "{line}");
    assert!(line.contains("requests="), "{line}");
}

#[test]
fn socket_reuse_port_lets_another_socket_bind_the_client_port() {
    let try_bind = |port: u16| {
        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        socket.set_reuseport(true).expect("SO_REUSEPORT");
        socket.bind(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
    };
    let server = Server::start_with(&["--socket-reuse-port"]);
    assert!(
        try_bind(server.port()).is_ok(),
        "SO_REUSEPORT on the client port"
    );
    drop(server);
    let plain = Server::start();
    assert!(
        try_bind(plain.port()).is_err(),
        "the port is exclusive without the flag"
    );
}

/// Three members started with `--peer-auto-tls` and no certificates at all, as etcd's
/// harnesses and many compose files start etcd: they form a cluster and replicate.
#[test]
fn peer_auto_tls_members_form_a_cluster_without_certificates() {
    let dirs = tempfile::tempdir().expect("a temp dir");
    let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_udp_port())).collect();
    let initial = ports
        .iter()
        .enumerate()
        .map(|(i, (_, peer))| format!("m{i}=https://127.0.0.1:{peer}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut members = Vec::new();
    for (i, (client, peer)) in ports.iter().enumerate() {
        let log = std::fs::File::create(dirs.path().join(format!("m{i}.log"))).expect("a log");
        let child = Command::new(env!("CARGO_BIN_EXE_conclave"))
            .args(["--name", &format!("m{i}")])
            .args([
                "--data-dir",
                &dirs.path().join(format!("m{i}")).display().to_string(),
            ])
            .args([
                "--listen-client-urls",
                &format!("http://127.0.0.1:{client}"),
            ])
            .args([
                "--advertise-client-urls",
                &format!("http://127.0.0.1:{client}"),
            ])
            .args(["--listen-peer-urls", &format!("https://127.0.0.1:{peer}")])
            .args([
                "--initial-advertise-peer-urls",
                &format!("https://127.0.0.1:{peer}"),
            ])
            .args(["--initial-cluster", &initial])
            .arg("--peer-auto-tls")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start conclave");
        members.push(KillOnDrop(child));
    }
    let endpoint = |i: usize| format!("127.0.0.1:{}", ports[i].0);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !etcdctl_at(&endpoint(0), &["put", "auto", "tls"], None)
        .status
        .success()
    {
        let logs: String = (0..3)
            .map(|i| {
                std::fs::read_to_string(dirs.path().join(format!("m{i}.log"))).unwrap_or_default()
            })
            .collect();
        assert!(Instant::now() < deadline, "no cluster formed:\n{logs}");
        std::thread::sleep(Duration::from_millis(200));
    }
    for i in 0..3 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = etcdctl_at(&endpoint(i), &["get", "auto", "--print-value-only"], None);
            if String::from_utf8_lossy(&got.stdout).trim() == "tls" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "member {i} never served the key: {got:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let list = stdout_ok(&etcdctl_at(&endpoint(1), &["member", "list"], None));
    assert_eq!(list.lines().count(), 3, "{list}");
}

/// `--auto-tls`: an https client URL with no --cert-file serves a certificate conclave made;
/// etcdctl reaches it when told to skip verification, and not otherwise.
#[test]
fn auto_tls_serves_https_clients_without_a_certificate_file() {
    let port = free_port();
    let url = format!("https://127.0.0.1:{port}");
    let server = Server::start_with(&["--listen-client-urls", &url, "--auto-tls"]);
    // Only the https URL: the server's own http one would answer anything.
    let https = |args: &[&str]| etcdctl_at(&url, args, None);
    let deadline = Instant::now() + Duration::from_secs(30);
    // etcdctl 3.4 uses TLS without certificate files only with --insecure-transport=false.
    let skip = ["--insecure-transport=false", "--insecure-skip-tls-verify"];
    while !https(&[skip[0], skip[1], "put", "k", "v"]).status.success() {
        assert!(
            Instant::now() < deadline,
            "no https answer: {}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let got = stdout_ok(&https(&[
        skip[0],
        skip[1],
        "get",
        "k",
        "--print-value-only",
    ]));
    assert_eq!(got.trim(), "v");
    let unverified = https(&[
        skip[0],
        "--dial-timeout=2s",
        "--command-timeout=3s",
        "get",
        "k",
    ]);
    assert!(
        !unverified.status.success(),
        "a client that verifies must not connect"
    );
}

/// Kills the child when dropped, so a failing test leaves no member running.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `--max-concurrent-streams 2`: with two watch streams open on a connection, a third call
/// on it waits until one of them ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrent_streams_holds_back_the_stream_beyond_it() {
    let server =
        tokio::task::block_in_place(|| Server::start_with(&["--max-concurrent-streams", "2"]));
    let mut client = etcd_client::Client::connect([server.url()], None)
        .await
        .expect("connect");
    client.put("k", "v", None).await.expect("a put");
    let first = client.watch("a", None).await.expect("a watch");
    let second = client.watch("b", None).await.expect("a watch");
    let held = tokio::time::timeout(Duration::from_secs(2), client.get("k", None)).await;
    assert!(
        held.is_err(),
        "a third stream was served while two were open"
    );
    drop(first);
    let got = tokio::time::timeout(Duration::from_secs(10), client.get("k", None))
        .await
        .expect("the get once a stream ended")
        .expect("a get");
    assert_eq!(got.kvs()[0].value(), b"v");
    drop(second);
}
