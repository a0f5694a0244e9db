//! etcd's snapshot format both ways, against the real etcd 3.4 (Debian's etcd-server):
//! `etcdctl snapshot save` from conclave, then `etcdctl snapshot status` and `snapshot
//! restore`, and an etcd started on the result serves every key at every revision, the
//! leases and the users as conclave did; and the way in, an etcd snapshot and an etcd data
//! dir's `member/snap/db` restored into conclave with the same, auth included.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::{Server, etcdctl_at, free_port, stdout_ok, wait_until};
use serde_json::Value;

const ETCD: &str = "/usr/bin/etcd";

/// A real etcd 3.4, one member on loopback, killed when dropped.
struct Etcd {
    child: Child,
    port: u16,
    data_dir: PathBuf,
    log: PathBuf,
}

impl Etcd {
    fn start(data_dir: &Path) -> Etcd {
        assert!(
            Path::new(ETCD).exists(),
            "etcd is not installed at {ETCD}: install Debian's etcd-server package; CI installs it"
        );
        let port = free_port();
        let peer = free_port();
        let log = data_dir.with_extension("log");
        let child = Command::new(ETCD)
            .args([
                "--data-dir",
                data_dir.to_str().expect("a UTF-8 path"),
                "--listen-client-urls",
                &format!("http://127.0.0.1:{port}"),
                "--advertise-client-urls",
                &format!("http://127.0.0.1:{port}"),
                "--listen-peer-urls",
                &format!("http://127.0.0.1:{peer}"),
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{peer}"),
                "--initial-cluster",
                &format!("default=http://127.0.0.1:{peer}"),
            ])
            .env_clear()
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("etcd's log file"))
            .spawn()
            .expect("start etcd");
        let etcd = Etcd {
            child,
            port,
            data_dir: data_dir.to_path_buf(),
            log,
        };
        wait_until("etcd serves", Duration::from_secs(30), || {
            etcd.ctl(&["endpoint", "health"]).status.success()
        });
        etcd
    }

    fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn ctl(&self, args: &[&str]) -> Output {
        etcdctl_at(&self.endpoint(), args, None)
    }

    fn stop(mut self) -> PathBuf {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.data_dir.clone()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- etcd log ---\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

fn json(out: &Output) -> Value {
    let text = stdout_ok(out);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// What a member serves, through etcdctl, for comparing one with another.
struct View<'a> {
    ctl: &'a dyn Fn(&[&str]) -> Output,
    /// `--user` flags when auth is on.
    user: Vec<&'a str>,
}

impl View<'_> {
    fn run(&self, args: &[&str]) -> Output {
        let mut all = self.user.clone();
        all.extend_from_slice(args);
        (self.ctl)(&all)
    }

    /// Every key at `rev`: key, value, create and mod revisions, version, lease.
    fn keys_at(&self, rev: i64) -> Vec<Value> {
        let got = json(&self.run(&[
            "get",
            "",
            "--from-key",
            "--rev",
            &rev.to_string(),
            "-w",
            "json",
        ]));
        got["kvs"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|kv| {
                serde_json::json!([
                    kv["key"],
                    kv["value"],
                    kv["create_revision"],
                    kv["mod_revision"],
                    kv["version"],
                    kv["lease"]
                ])
            })
            .collect()
    }

    fn revision(&self) -> i64 {
        json(&self.run(&["get", "x", "-w", "json"]))["header"]["revision"]
            .as_i64()
            .expect("a revision")
    }

    /// Each lease's ID, granted TTL and attached keys (the remaining TTL moves), in order
    /// (etcd lists them in its map's order).
    fn leases(&self) -> Vec<(i64, i64, Vec<String>)> {
        let list = json(&self.run(&["lease", "list", "-w", "json"]));
        let mut leases: Vec<_> = list["leases"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|lease| {
                let id = lease["id"].as_i64().expect("a lease ID");
                let ttl = json(&self.run(&[
                    "lease",
                    "timetolive",
                    &format!("{id:x}"),
                    "--keys",
                    "-w",
                    "json",
                ]));
                let mut keys: Vec<String> = ttl["keys"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|k| k.as_str().unwrap_or_default().to_string())
                    .collect();
                keys.sort();
                (id, ttl["granted-ttl"].as_i64().unwrap_or(-1), keys)
            })
            .collect();
        leases.sort();
        leases
    }

    /// The keys at every revision from `compacted`, the users and the roles.
    fn everything(&self, compacted: i64) -> (Vec<Vec<Value>>, (String, Vec<String>)) {
        let keys = (compacted..=self.revision())
            .map(|rev| self.keys_at(rev))
            .collect();
        (keys, self.users_and_roles())
    }

    fn users_and_roles(&self) -> (String, Vec<String>) {
        let users = stdout_ok(&self.run(&["user", "list"]));
        let mut roles = Vec::new();
        for role in stdout_ok(&self.run(&["role", "list"])).lines() {
            roles.push(stdout_ok(&self.run(&["role", "get", role])));
        }
        for user in users.lines() {
            roles.push(stdout_ok(&self.run(&["user", "get", user])));
        }
        (users, roles)
    }
}

/// Everything two members serve must be equal: every revision from the compaction point,
/// leases, users and roles.
fn assert_same(a: &View<'_>, b: &View<'_>, compacted: i64) {
    let revision = a.revision();
    assert_eq!(revision, b.revision(), "current revision");
    for rev in compacted..=revision {
        assert_eq!(a.keys_at(rev), b.keys_at(rev), "keys at revision {rev}");
    }
    assert_eq!(a.leases(), b.leases(), "leases");
    assert_eq!(a.users_and_roles(), b.users_and_roles(), "users and roles");
}

/// History with overwrites, deletes, two leases (one with keys), users with roles and a
/// compaction at `compact`; answers the compaction revision.
fn populate(ctl: &dyn Fn(&[&str]) -> Output) -> i64 {
    for i in 0..40 {
        stdout_ok(&ctl(&[
            "put",
            &format!("key/{:02}", i % 15),
            &format!("v{i}"),
        ]));
    }
    stdout_ok(&ctl(&["del", "key/03", "key/06"]));
    let lease = json(&ctl(&["lease", "grant", "900", "-w", "json"]));
    let id = format!("{:x}", lease["ID"].as_i64().expect("a lease ID"));
    stdout_ok(&ctl(&["put", "svc/a", "10.0.0.1", "--lease", &id]));
    stdout_ok(&ctl(&["put", "svc/b", "10.0.0.2", "--lease", &id]));
    stdout_ok(&ctl(&["lease", "grant", "300"]));
    stdout_ok(&ctl(&["put", "/alice/note", "hello"]));
    let compact = 20;
    stdout_ok(&ctl(&["compact", &compact.to_string()]));
    stdout_ok(&ctl(&["put", "key/00", "after the compaction"]));
    for args in common::ROOT_AND_ALICE {
        stdout_ok(&ctl(args));
    }
    compact
}

#[test]
fn a_conclave_snapshot_is_read_restored_and_served_by_a_real_etcd() {
    let server = Server::start();
    let conclave = |args: &[&str]| server.etcdctl(args);
    let compacted = populate(&conclave);

    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("from-conclave.db");
    let file_arg = file.to_str().expect("a UTF-8 path");
    stdout_ok(&server.etcdctl(&["snapshot", "save", file_arg]));
    let revision = View {
        ctl: &conclave,
        user: vec![],
    }
    .revision();

    // etcdctl's own reading of the file: bbolt's integrity check, then a hash of every bucket.
    let status = json(&server.etcdctl(&["snapshot", "status", file_arg, "-w", "json"]));
    assert_eq!(status["revision"], revision, "{status}");
    assert!(
        status["totalKey"].as_u64().expect("a count") > 40,
        "{status}"
    );

    let restored = dir.path().join("etcd-data");
    let out = server.etcdctl(&[
        "snapshot",
        "restore",
        file_arg,
        "--data-dir",
        restored.to_str().expect("a UTF-8 path"),
    ]);
    assert!(
        out.status.success(),
        "etcdctl snapshot restore: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let etcd = Etcd::start(&restored);
    let etcd_ctl = |args: &[&str]| etcd.ctl(args);
    assert_same(
        &View {
            ctl: &conclave,
            user: vec![],
        },
        &View {
            ctl: &etcd_ctl,
            user: vec![],
        },
        compacted,
    );
    // etcd keeps the compaction: below it, history is gone there too.
    let below = etcd.ctl(&["get", "key/00", "--rev", &(compacted - 1).to_string()]);
    assert!(!below.status.success());
    assert!(String::from_utf8_lossy(&below.stderr).contains("compacted"));
}

#[test]
fn a_real_etcd_snapshot_and_data_dir_restore_into_conclave_with_auth() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let etcd = Etcd::start(&dir.path().join("etcd-data"));
    let etcd_ctl = |args: &[&str]| etcd.ctl(args);
    let compacted = populate(&etcd_ctl);
    stdout_ok(&etcd.ctl(&["auth", "enable"]));
    let root = vec!["--user", "root:rootpw"];

    let file = dir.path().join("from-etcd.db");
    let file_arg = file.to_str().expect("a UTF-8 path");
    stdout_ok(&etcd.ctl(&["--user", "root:rootpw", "snapshot", "save", file_arg]));

    // The way in from a snapshot file: --restore-from.
    let server = Server::start_with(&["--restore-from", file_arg]);
    let conclave = |args: &[&str]| server.etcdctl(args);
    let etcd_view = View {
        ctl: &etcd_ctl,
        user: root.clone(),
    };
    assert_same(
        &etcd_view,
        &View {
            ctl: &conclave,
            user: root.clone(),
        },
        compacted,
    );
    // Auth came on, with etcd's bcrypt hashes: alice's password and permissions work, and
    // no credentials are refused.
    stdout_ok(&server.etcdctl(&["--user", "alice:alicepw", "put", "/alice/x", "1"]));
    let refused = server.etcdctl(&["get", "/alice/x"]);
    assert!(!refused.status.success());
    let denied = server.etcdctl(&["--user", "alice:alicepw", "get", "key/01"]);
    assert!(String::from_utf8_lossy(&denied.stderr).contains("permission denied"));
    drop(server);

    // The way in from a stopped etcd's data dir: its member/snap/db, which has no checksum.
    let expected = etcd_view.everything(compacted);
    let data_dir = etcd.stop();
    let db = data_dir.join("member/snap/db");
    let server = Server::start_with(&["--restore-from", db.to_str().expect("a UTF-8 path")]);
    let conclave = |args: &[&str]| server.etcdctl(args);
    let view = View {
        ctl: &conclave,
        user: root,
    };
    assert_eq!(expected, view.everything(compacted));
}
