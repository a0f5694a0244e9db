//! A cluster of real `conclave` members on loopback: certificates from one CA in a temp dir,
//! free client (TCP) and peer (UDP, QUIC) ports, one child process per member, and the waits a
//! test needs (a leader every running member agrees on, a member caught up) with deadlines.
//! Members can be killed with SIGKILL, stopped and restarted on the same data dir and ports;
//! one can be given a certificate from a CA of its own, which the others must refuse.

use std::fs::OpenOptions;
use std::net::{TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{START_DEADLINE, STOP_DEADLINE, etcdctl_at, try_http};

/// How long a member restarted, or a cluster started, gets to agree on a leader and answer.
const FORM_DEADLINE: Duration = START_DEADLINE;
/// Between two polls of the members: slower than a single server's poll, since each poll asks
/// every member.
const CLUSTER_POLL: Duration = Duration::from_millis(50);
/// Attempts at starting a cluster whose members lost their ports to another process.
const START_ATTEMPTS: usize = 3;
/// Lines of each member's log shown when a test fails.
const LOG_TAIL_LINES: usize = 150;

static CLUSTERS: AtomicU64 = AtomicU64::new(0);

/// What a member's Maintenance.Status says, read through the JSON gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberStatus {
    pub member_id: u64,
    /// The leader this member knows of, if any.
    pub leader: Option<u64>,
    pub raft_index: u64,
    pub raft_term: u64,
    pub applied_index: u64,
    pub revision: i64,
    pub errors: Vec<String>,
}

/// How to start a cluster; [`Cluster::start`] for the plain case.
#[derive(Debug, Clone)]
pub struct ClusterBuilder {
    size: usize,
    snapshot_count: Option<u64>,
    catchup_entries: Option<u64>,
    foreign: Vec<usize>,
    extra: Vec<String>,
    https_clients: bool,
    small_disks: Vec<(usize, u64)>,
    robustness_build: bool,
    spares: usize,
    fake_clocks: bool,
}

impl ClusterBuilder {
    /// Every member's wall clock is libfaketime's (Debian's libfaketime), at an offset from
    /// the real one that [`Cluster::jump_clock`] changes while it runs, as an NTP step would
    /// (the monotonic clock is left alone: it cannot jump).
    pub fn fake_clocks(mut self) -> Self {
        self.fake_clocks = true;
        self
    }

    /// `n` more members, numbered after the others, with certificates and ports but not
    /// started nor in the cluster: [`Cluster::add_learner`] adds one.
    pub fn spares(mut self, n: usize) -> Self {
        self.spares = n;
        self
    }

    /// Every member runs the robustness build (`conclave-failpoints`) with no failpoint set,
    /// so that [`Cluster::fail_now`] can set one while it runs.
    pub fn robustness_build(mut self) -> Self {
        self.robustness_build = true;
        self
    }

    /// Member `i`'s data dir is a tmpfs of `bytes` (see [`Cluster::grow_disk`] and
    /// [`Cluster::fill_disk`]); for several members, once for each.
    pub fn small_disk(mut self, i: usize, bytes: u64) -> Self {
        assert!(
            i < self.size + self.spares,
            "no member {i} in a cluster of {} and {} spares (spares() first)",
            self.size,
            self.spares
        );
        self.small_disks.push((i, bytes));
        self
    }

    /// Each member also serves clients over TLS, with a certificate from a CA of its own (so
    /// no member trusts another's client certificate), and advertises only that https URL;
    /// the harness keeps talking to the plain http one.
    pub fn https_clients(mut self) -> Self {
        self.https_clients = true;
        self
    }

    /// More flags for every member, e.g. `["--experimental-corrupt-check-time", "1s"]`.
    pub fn flags(mut self, flags: &[&str]) -> Self {
        self.extra.extend(flags.iter().map(|f| f.to_string()));
        self
    }

    /// `--snapshot-count`: applied entries between two snapshots.
    pub fn snapshot_count(mut self, n: u64) -> Self {
        self.snapshot_count = Some(n);
        self
    }

    /// `--experimental-snapshot-catchup-entries`: log entries kept behind a snapshot.
    pub fn snapshot_catchup_entries(mut self, n: u64) -> Self {
        self.catchup_entries = Some(n);
        self
    }

    /// Member `i` gets a certificate (and trusts a CA) of its own, not the cluster's: the
    /// others must refuse it. It is not waited for at start, and never counts as running in
    /// leader waits.
    pub fn foreign_ca(mut self, i: usize) -> Self {
        assert!(i < self.size, "no member {i} in a cluster of {}", self.size);
        self.foreign.push(i);
        self
    }

    /// Starts every member and waits until the members with the cluster's certificates agree
    /// on a leader, each answers a linearizable read (`/health`) and has published its client
    /// URL. Another process may take
    /// a probed port before a member binds it: then the member exits and the whole cluster is
    /// tried again on fresh ports.
    pub fn start(self) -> Cluster {
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            let mut cluster = Cluster::prepare(&self);
            for &(i, bytes) in &self.small_disks {
                let disk = super::disk::SmallDisk::mount(&cluster.data_dir(i), bytes);
                cluster.small_disks.insert(i, disk);
            }
            for i in 0..self.size {
                cluster.spawn(i);
            }
            match cluster.wait_formed(&[]) {
                Ok(_) => return cluster,
                Err(e) => {
                    failures.push(format!("{e}\n{}", cluster.log_tails()));
                    cluster.kill_all();
                }
            }
        }
        panic!(
            "the cluster did not start in {START_ATTEMPTS} attempts:\n{}",
            failures.join("\n=====\n")
        );
    }
}

struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
    foreign: bool,
    https: Option<HttpsClient>,
    child: Option<Child>,
    /// For a member added to a running cluster: the initial cluster `member add` printed,
    /// with which it starts as `existing`.
    joined_with: Option<String>,
}

/// A member's TLS client port ([`ClusterBuilder::https_clients`]).
struct HttpsClient {
    port: u16,
    cert: PathBuf,
    key: PathBuf,
}

pub struct Cluster {
    /// Members' small disks, unmounted before `dir` is removed (fields drop in this order).
    small_disks: std::collections::BTreeMap<usize, super::disk::SmallDisk>,
    /// Whether every member runs the robustness build ([`ClusterBuilder::robustness_build`]).
    robustness_build: bool,
    /// Whether members' wall clocks are libfaketime's ([`ClusterBuilder::fake_clocks`]).
    fake_clocks: bool,
    dir: tempfile::TempDir,
    token: String,
    initial_cluster: String,
    snapshot_count: Option<u64>,
    catchup_entries: Option<u64>,
    extra: Vec<String>,
    members: Vec<Member>,
}

impl Cluster {
    /// Starts `size` members, all with certificates from the cluster CA.
    pub fn start(size: usize) -> Cluster {
        Cluster::builder(size).start()
    }

    pub fn builder(size: usize) -> ClusterBuilder {
        assert!(size >= 1, "a cluster has at least one member");
        ClusterBuilder {
            size,
            snapshot_count: None,
            catchup_entries: None,
            foreign: Vec::new(),
            extra: Vec::new(),
            https_clients: false,
            small_disks: Vec::new(),
            robustness_build: false,
            spares: 0,
            fake_clocks: false,
        }
    }

    /// Certificates, ports and data dirs; nothing runs yet.
    fn prepare(b: &ClusterBuilder) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("conclave-cluster-")
            .tempdir()
            .expect("create a temp dir");
        let all = b.size + b.spares;
        let names: Vec<String> = (1..=all).map(|i| format!("m{i}")).collect();
        let certs = conclave_tls::init_certs(&dir.path().join("certs"), &names, &[], false)
            .expect("make the cluster CA and member certificates");
        // One probe for both sets, so that no port lands in both.
        let tcp_ports = free_tcp_ports(2 * all);
        let (client_ports, https_ports) = tcp_ports.split_at(all);
        let peer_ports = free_udp_ports(all);
        let mut members = Vec::with_capacity(all);
        for (i, name) in names.iter().enumerate() {
            let foreign = b.foreign.contains(&i);
            let (cert, key, ca) = if foreign {
                // Same name, same hosts, another CA: only the signature gives it away.
                let other = conclave_tls::init_certs(
                    &dir.path().join(format!("foreign-ca-{name}")),
                    std::slice::from_ref(name),
                    &[],
                    false,
                )
                .expect("make a foreign CA and certificate");
                let m = &other.members[0];
                (m.cert.clone(), m.key.clone(), other.ca_cert.clone())
            } else {
                let m = &certs.members[i];
                (m.cert.clone(), m.key.clone(), certs.ca_cert.clone())
            };
            let https = b.https_clients.then(|| {
                let own = conclave_tls::init_certs(
                    &dir.path().join(format!("client-ca-{name}")),
                    std::slice::from_ref(name),
                    &[],
                    false,
                )
                .expect("make a member's own client CA and certificate");
                let m = &own.members[0];
                HttpsClient {
                    port: https_ports[i],
                    cert: m.cert.clone(),
                    key: m.key.clone(),
                }
            });
            members.push(Member {
                name: name.clone(),
                client_port: client_ports[i],
                peer_port: peer_ports[i],
                cert,
                key,
                ca,
                foreign,
                https,
                child: None,
                joined_with: None,
            });
        }
        let initial_cluster = members[..b.size]
            .iter()
            .map(|m| format!("{}=https://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let token = format!(
            "conclave-test-{}-{}",
            std::process::id(),
            CLUSTERS.fetch_add(1, Ordering::Relaxed)
        );
        Cluster {
            small_disks: Default::default(),
            robustness_build: b.robustness_build,
            fake_clocks: b.fake_clocks,
            dir,
            token,
            initial_cluster,
            snapshot_count: b.snapshot_count,
            catchup_entries: b.catchup_entries,
            extra: b.extra.clone(),
            members,
        }
    }

    pub fn size(&self) -> usize {
        self.members.len()
    }

    pub fn name(&self, i: usize) -> &str {
        &self.members[i].name
    }

    /// `127.0.0.1:PORT` of member `i`'s client port, as etcdctl and etcd-client take it.
    pub fn endpoint(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.members[i].client_port)
    }

    pub fn endpoints(&self) -> Vec<String> {
        (0..self.size()).map(|i| self.endpoint(i)).collect()
    }

    pub fn url(&self, i: usize) -> String {
        format!("http://{}", self.endpoint(i))
    }

    pub fn peer_url(&self, i: usize) -> String {
        format!("https://127.0.0.1:{}", self.members[i].peer_port)
    }

    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(&self.members[i].name)
    }

    fn log_path(&self, i: usize) -> PathBuf {
        self.dir
            .path()
            .join(format!("{}.log", self.members[i].name))
    }

    /// Everything member `i` (all its incarnations) wrote to stdout and stderr.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.log_path(i)).unwrap_or_default()
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.members[i].child.is_some()
    }

    /// How member `i`'s process ended, if it has (it is then no longer running).
    pub fn exit_status(&mut self, i: usize) -> Option<ExitStatus> {
        let child = self.members[i].child.as_mut()?;
        let status = child.try_wait().expect("poll a member process")?;
        self.members[i].child = None;
        Some(status)
    }

    /// Members that run and hold the cluster's certificates: the ones that should agree.
    pub fn running(&self) -> Vec<usize> {
        (0..self.size())
            .filter(|&i| self.is_running(i) && !self.members[i].foreign)
            .collect()
    }

    fn spawn(&mut self, i: usize) {
        self.spawn_with(i, &[]);
    }

    /// Starts member `i` with `more` flags after the usual ones, this time only.
    pub fn spawn_with(&mut self, i: usize, more: &[&str]) {
        assert!(
            self.members[i].child.is_none(),
            "member {i} is already running"
        );
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(i))
            .expect("open the member log");
        let stderr = log.try_clone().expect("clone the log file handle");
        let m = &self.members[i];
        let client_url = self.url(i);
        let advertised = match &m.https {
            Some(h) => format!("https://127.0.0.1:{}", h.port),
            None => client_url.clone(),
        };
        let peer_url = self.peer_url(i);
        let mut cmd = if self.robustness_build {
            let mut cmd = Command::new(failpoints_binary());
            cmd.env("FAILPOINTS_FILE", self.failpoints_file(i));
            cmd
        } else {
            Command::new(env!("CARGO_BIN_EXE_conclave"))
        };
        // The server reads etcd's ETCD_* variables: only the flags below may count.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("ETCD_") {
                cmd.env_remove(k);
            }
        }
        cmd.arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(self.data_dir(i))
            .arg("--listen-client-urls")
            .arg(&client_url)
            .arg("--advertise-client-urls")
            .arg(&advertised)
            .arg("--listen-peer-urls")
            .arg(&peer_url)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer_url)
            .arg("--initial-cluster")
            .arg(m.joined_with.as_ref().unwrap_or(&self.initial_cluster))
            // Also on a restart: an initialized member ignores it, as etcd does.
            .arg("--initial-cluster-state")
            .arg(if m.joined_with.is_some() {
                "existing"
            } else {
                "new"
            })
            .arg("--initial-cluster-token")
            .arg(&self.token)
            .arg("--peer-cert-file")
            .arg(&m.cert)
            .arg("--peer-key-file")
            .arg(&m.key)
            .arg("--peer-trusted-ca-file")
            .arg(&m.ca);
        if let Some(n) = self.snapshot_count {
            cmd.arg("--snapshot-count").arg(n.to_string());
        }
        if let Some(n) = self.catchup_entries {
            cmd.arg("--experimental-snapshot-catchup-entries")
                .arg(n.to_string());
        }
        if let Some(h) = &m.https {
            cmd.arg("--listen-client-urls")
                .arg(&advertised)
                .arg("--cert-file")
                .arg(&h.cert)
                .arg("--key-file")
                .arg(&h.key);
        }
        if self.fake_clocks {
            let offset = self.clock_file(i);
            if !offset.exists() {
                std::fs::write(&offset, "+0\n").expect("write a clock offset");
            }
            cmd.env("LD_PRELOAD", faketime_library())
                .env("FAKETIME_TIMESTAMP_FILE", &offset)
                .env("FAKETIME_CACHE_DURATION", "1")
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        }
        cmd.args(&self.extra).args(more);
        let child = cmd
            .env("NO_COLOR", "1")
            .env("CONCLAVE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .expect("spawn the conclave binary");
        self.members[i].child = Some(child);
    }

    /// An error naming the first member that exited on its own.
    fn check_alive(&mut self) -> Result<(), String> {
        for (i, m) in self.members.iter_mut().enumerate() {
            if let Some(child) = m.child.as_mut()
                && let Some(status) = child.try_wait().expect("poll a member process")
            {
                m.child = None;
                return Err(format!("member {i} ({}) exited with {status}", m.name));
            }
        }
        Ok(())
    }

    /// Member `i`'s Maintenance.Status, through the JSON gateway.
    pub fn status(&self, i: usize) -> Result<MemberStatus, String> {
        let resp = try_http(
            self.members[i].client_port,
            "POST",
            "/v3/maintenance/status",
            Some("{}"),
        )?;
        if resp.status != 200 {
            return Err(format!("status {}: {}", resp.status, resp.body));
        }
        let v: Value = serde_json::from_str(&resp.body)
            .map_err(|e| format!("status is not JSON ({e}): {}", resp.body))?;
        let leader = json_u64(&v["leader"]);
        Ok(MemberStatus {
            member_id: json_u64(&v["header"]["member_id"]),
            leader: (leader != 0).then_some(leader),
            raft_index: json_u64(&v["raftIndex"]),
            raft_term: json_u64(&v["raftTerm"]),
            applied_index: json_u64(&v["raftAppliedIndex"]),
            revision: i64::try_from(json_u64(&v["header"]["revision"])).unwrap_or(i64::MAX),
            errors: v["errors"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|e| e.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// Member `i`'s Status, waiting (with a deadline) for it to answer.
    pub fn wait_status(&self, i: usize) -> MemberStatus {
        let deadline = Instant::now() + FORM_DEADLINE;
        loop {
            match self.status(i) {
                Ok(s) => return s,
                Err(e) => {
                    if Instant::now() > deadline {
                        self.fail(&format!("member {i} gave no status: {e}"));
                    }
                }
            }
            std::thread::sleep(CLUSTER_POLL);
        }
    }

    /// Member `i`'s ID, as its response headers carry it.
    pub fn member_id(&self, i: usize) -> u64 {
        self.wait_status(i).member_id
    }

    /// Whether member `i` answers `GET /health` healthy: a linearizable read went through.
    /// One HTTP/1.1 request to member `i`'s client port.
    pub fn http(&self, i: usize, method: &str, path: &str) -> super::HttpResponse {
        try_http(self.members[i].client_port, method, path, None)
            .unwrap_or_else(|e| panic!("{method} {path} on member {i}: {e}"))
    }

    pub fn healthy(&self, i: usize) -> bool {
        try_http(self.members[i].client_port, "GET", "/health", None)
            .is_ok_and(|r| r.status == 200 && r.body.contains("\"health\":\"true\""))
    }

    /// The leader the members `among` all report, if they agree on one of themselves.
    fn agreed_leader(&self, among: &[usize]) -> Result<usize, String> {
        let mut ids = Vec::with_capacity(among.len());
        let mut leaders = Vec::with_capacity(among.len());
        for &i in among {
            let s = self.status(i).map_err(|e| format!("member {i}: {e}"))?;
            ids.push((i, s.member_id));
            leaders.push((i, s.leader));
        }
        let first = leaders.first().and_then(|(_, l)| *l);
        let Some(leader) = first else {
            return Err(format!("no leader yet: {leaders:?}"));
        };
        if leaders.iter().any(|(_, l)| *l != Some(leader)) {
            return Err(format!("members disagree on the leader: {leaders:?}"));
        }
        ids.iter()
            .find(|(_, id)| *id == leader)
            .map(|(i, _)| *i)
            .ok_or_else(|| format!("the leader {leader:x} is not among {ids:?}"))
    }

    /// Member `i`'s `etcdctl member list -w json`.
    pub fn member_list(&self, i: usize) -> Result<Value, String> {
        let out = etcdctl_at(
            &self.endpoint(i),
            &["member", "list", "-w", "json", "--command-timeout=5s"],
            None,
        );
        if !out.status.success() {
            return Err(format!(
                "member list on member {i}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        serde_json::from_slice(&out.stdout).map_err(|e| format!("member list -w json: {e}"))
    }

    /// Ok once the member list on `leader` gives each of `among` its client URL: members
    /// publish their client URLs after the cluster forms, as etcd's do, and clients that
    /// follow the member list (`etcdctl --cluster`) need them.
    fn unpublished(&self, leader: usize, among: &[usize]) -> Result<(), String> {
        let list = self.member_list(leader)?;
        let members = list["members"].as_array().cloned().unwrap_or_default();
        for &i in among {
            let name = self.name(i);
            let published = members.iter().any(|m| {
                m["name"] == name && m["clientURLs"].as_array().is_some_and(|u| !u.is_empty())
            });
            if !published {
                return Err(format!(
                    "member {i} ({name}) has not published its client URL: {list}"
                ));
            }
        }
        Ok(())
    }

    /// Waits until the running members (but `excluding`) agree on a leader among themselves,
    /// each answers a linearizable read and has published its client URL. An error only if a member exits; a panic at the
    /// deadline.
    fn wait_formed(&mut self, excluding: &[usize]) -> Result<usize, String> {
        let deadline = Instant::now() + FORM_DEADLINE;
        loop {
            self.check_alive()?;
            let among: Vec<usize> = self
                .running()
                .into_iter()
                .filter(|i| !excluding.contains(i))
                .collect();
            let foreign_answer = self
                .members
                .iter()
                .enumerate()
                .filter(|(_, m)| m.foreign && m.child.is_some())
                .all(|(i, _)| self.status(i).is_ok());
            let last = match self.agreed_leader(&among) {
                Ok(leader) if !foreign_answer => {
                    format!("leader {leader}, but a foreign member gives no status")
                }
                Ok(leader) => match among.iter().find(|&&i| !self.healthy(i)) {
                    Some(i) => format!("leader {leader}, but member {i} is not healthy"),
                    None => match self.unpublished(leader, &among) {
                        Ok(()) => return Ok(leader),
                        Err(e) => e,
                    },
                },
                Err(e) => e,
            };
            if Instant::now() > deadline {
                self.fail(&format!(
                    "the members {among:?} did not agree on a healthy leader within \
                     {FORM_DEADLINE:?}: {last}"
                ));
            }
            std::thread::sleep(CLUSTER_POLL);
        }
    }

    /// Waits until every running member but `excluding` agrees on a leader among them,
    /// answers linearizable reads and is in the member list with its client URL; the
    /// leader's index.
    pub fn wait_for_leader(&mut self, excluding: &[usize]) -> usize {
        match self.wait_formed(excluding) {
            Ok(leader) => leader,
            Err(e) => self.fail(&e),
        }
    }

    /// The index of the leader the running members agree on (waiting for one).
    pub fn leader(&mut self) -> usize {
        self.wait_for_leader(&[])
    }

    /// The index of the leader the running members agree on, waiting for them to agree but
    /// (unlike [`Cluster::leader`]) not for them to answer reads; for a `&Cluster`.
    pub fn current_leader(&self) -> usize {
        let deadline = Instant::now() + FORM_DEADLINE;
        loop {
            match self.agreed_leader(&self.running()) {
                Ok(leader) => return leader,
                Err(e) if Instant::now() > deadline => self.fail(&format!(
                    "the members did not agree on a leader within {FORM_DEADLINE:?}: {e}"
                )),
                Err(_) => std::thread::sleep(CLUSTER_POLL),
            }
        }
    }

    /// The running members that are not the leader.
    pub fn followers(&mut self) -> Vec<usize> {
        let leader = self.leader();
        self.running()
            .into_iter()
            .filter(|&i| i != leader)
            .collect()
    }

    /// Waits until member `i` has applied at least `index`.
    pub fn wait_applied(&self, i: usize, index: u64) {
        let deadline = Instant::now() + FORM_DEADLINE;
        loop {
            let applied = self.status(i).map(|s| s.applied_index);
            if applied.as_ref().is_ok_and(|&a| a >= index) {
                return;
            }
            if Instant::now() > deadline {
                self.fail(&format!(
                    "member {i} did not apply index {index} within {FORM_DEADLINE:?}: {applied:?}"
                ));
            }
            std::thread::sleep(CLUSTER_POLL);
        }
    }

    /// Cuts member `i` off from the others (its peer port) while clients still reach it,
    /// until the guard is dropped: a leader on the wrong side of a partition.
    pub fn isolate(&self, i: usize) -> super::partition::Partition {
        super::partition::Partition::isolate_udp_port(self.members[i].peer_port)
    }

    /// Member `from`'s messages no longer reach member `to`; `to`'s still reach `from`.
    pub fn cut_one_way(&self, from: usize, to: usize) -> super::partition::Partition {
        super::partition::Partition::drop_one_way(
            self.members[from].peer_port,
            self.members[to].peer_port,
        )
    }

    /// Adds spare member `spare` ([`ClusterBuilder::spares`]) as a learner through member
    /// `via` (`etcdctl member add --learner`), and starts it to join; does not wait.
    pub fn add_learner(&mut self, spare: usize, via: usize) {
        let name = self.members[spare].name.clone();
        let peer = self.peer_url(spare);
        let out = self.etcdctl(
            via,
            &[
                "member",
                "add",
                &name,
                &format!("--peer-urls={peer}"),
                "--learner",
            ],
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "member add {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let initial = text
            .lines()
            .find_map(|l| l.strip_prefix("ETCD_INITIAL_CLUSTER=\""))
            .and_then(|l| l.strip_suffix('"'))
            .unwrap_or_else(|| panic!("no ETCD_INITIAL_CLUSTER in member add's answer: {text}"));
        self.members[spare].joined_with = Some(initial.to_string());
        self.spawn(spare);
    }

    /// Promotes learner `i` through member `via`, trying again while it is not in sync yet
    /// (for 30 s at most).
    pub fn promote(&self, i: usize, via: usize) {
        let id = format!("{:x}", self.member_id(i));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.etcdctl(via, &["member", "promote", &id]);
            if out.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "member {i} was not promoted within 30 s: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Removes member `i` from the membership through member `via`, then stops its process
    /// (SIGKILL: it is no member any more).
    pub fn remove(&mut self, i: usize, via: usize) {
        let id = format!("{:x}", self.member_id(i));
        let out = self.etcdctl(via, &["member", "remove", &id]);
        assert!(
            out.status.success(),
            "member remove {id}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.kill9(i);
    }

    fn clock_file(&self, i: usize) -> PathBuf {
        self.dir
            .path()
            .join(format!("{}.clock", self.members[i].name))
    }

    /// Sets member `i`'s wall clock to the real one plus `offset` (libfaketime's syntax,
    /// "+3600s", "-90s", "+0"); it takes effect within a second.
    pub fn jump_clock(&self, i: usize, offset: &str) {
        assert!(self.fake_clocks, "a cluster started with fake_clocks()");
        std::fs::write(self.clock_file(i), format!("{offset}\n")).expect("write a clock offset");
    }

    /// Sets failpoints in running member `i` (fail-rs's `name=actions`, one a line; empty:
    /// none), in effect within a few tenths of a second, until set again.
    pub fn fail_now(&self, i: usize, spec: &str) {
        assert!(
            self.robustness_build,
            "a cluster started with robustness_build()"
        );
        std::fs::write(self.failpoints_file(i), spec).expect("write the failpoints file");
    }

    fn failpoints_file(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("failpoints-{i}"))
    }

    fn small_disk(&self, i: usize) -> &super::disk::SmallDisk {
        self.small_disks
            .get(&i)
            .unwrap_or_else(|| panic!("member {i} has no small disk"))
    }

    /// Remounts member `i`'s small disk ([`ClusterBuilder::small_disk`]) at `bytes`.
    pub fn grow_disk(&self, i: usize, bytes: u64) {
        self.small_disk(i).resize(bytes);
    }

    /// Fills member `i`'s small disk to the last byte with a file of the test's, as another
    /// process on the machine would.
    pub fn fill_disk(&self, i: usize) {
        self.small_disk(i).fill();
    }

    /// Removes what [`Cluster::fill_disk`] wrote.
    pub fn free_disk(&self, i: usize) {
        self.small_disk(i).free();
    }

    /// SIGKILL member `i`: no chance to flush anything or tell the others.
    pub fn kill9(&mut self, i: usize) {
        let mut child = self.members[i]
            .child
            .take()
            .unwrap_or_else(|| panic!("member {i} is not running"));
        child.kill().expect("SIGKILL a member");
        child.wait().expect("reap the killed member");
    }

    /// SIGSTOP member `i` (`true`) or SIGCONT it (`false`): a member that stops answering
    /// without its connections closing, as a hung process or a long GC pause.
    pub fn pause(&mut self, i: usize, paused: bool) {
        let child = self.members[i]
            .child
            .as_ref()
            .unwrap_or_else(|| panic!("member {i} is not running"));
        let signal = if paused { "-STOP" } else { "-CONT" };
        let sent = std::process::Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill {signal} failed: {sent}");
    }

    /// SIGTERM member `i`, and waits for a clean exit (status 0).
    pub fn stop(&mut self, i: usize) {
        let status = self.signal_and_wait(i, "TERM");
        if !status.success() {
            self.fail(&format!(
                "member {i} did not stop cleanly after SIGTERM: {status}"
            ));
        }
    }

    fn signal_and_wait(&mut self, i: usize, signal: &str) -> ExitStatus {
        let child = self.members[i]
            .child
            .take()
            .unwrap_or_else(|| panic!("member {i} is not running"));
        match super::signal_and_wait(child, signal) {
            Some(status) => status,
            None => self.fail(&format!(
                "member {i} did not exit within {STOP_DEADLINE:?} of SIG{signal}"
            )),
        }
    }

    /// Starts member `i` again with the same flags, data dir and ports, and waits until it
    /// agrees with the others on the leader and answers a linearizable read (which means it
    /// has caught up to the leader's read index).
    pub fn restart(&mut self, i: usize) {
        self.spawn(i);
        if let Err(e) = self.wait_formed(&[]) {
            self.fail(&format!("member {i} did not rejoin: {e}"));
        }
    }

    /// Starts member `i` again without waiting for anything.
    pub fn restart_no_wait(&mut self, i: usize) {
        self.spawn(i);
    }

    /// An etcd-client connection to member `i` alone.
    pub async fn client(&self, i: usize) -> etcd_client::Client {
        connect(&[self.url(i)]).await
    }

    /// An etcd-client connection to every member running now, as a client given all
    /// endpoints: its requests go to any of them that answers.
    pub async fn client_of_all(&self) -> etcd_client::Client {
        let urls: Vec<String> = self.running().into_iter().map(|i| self.url(i)).collect();
        connect(&urls).await
    }

    /// Runs etcdctl 3.4 against member `i` only.
    pub fn etcdctl(&self, i: usize, args: &[&str]) -> Output {
        etcdctl_at(&self.endpoint(i), args, None)
    }

    /// The last lines of every member's log, for failure messages.
    pub fn log_tails(&self) -> String {
        let mut out = String::new();
        for i in 0..self.size() {
            let log = self.log(i);
            let lines: Vec<&str> = log.lines().collect();
            let from = lines.len().saturating_sub(LOG_TAIL_LINES);
            out.push_str(&format!(
                "--- member {i} ({}) log, last {} of {} lines ---\n",
                self.members[i].name,
                lines.len() - from,
                lines.len()
            ));
            for line in &lines[from..] {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    /// Panics with `what`; the logs follow from `Drop`.
    pub fn fail(&self, what: &str) -> ! {
        panic!("{what}")
    }

    fn kill_all(&mut self) {
        for m in &mut self.members {
            if let Some(mut child) = m.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

async fn connect(urls: &[String]) -> etcd_client::Client {
    let options = etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(10))
        .with_timeout(Duration::from_secs(30));
    etcd_client::Client::connect(urls, Some(options))
        .await
        .unwrap_or_else(|e| panic!("connect etcd-client to {urls:?}: {e}"))
}

/// The robustness build of conclave (failpoints compiled in), beside the ordinary binary:
/// scripts/test builds it with `cargo build --features failpoints` and copies it there.
fn failpoints_binary() -> PathBuf {
    let path =
        std::path::Path::new(env!("CARGO_BIN_EXE_conclave")).with_file_name("conclave-failpoints");
    assert!(
        path.exists(),
        "{} is missing: scripts/test builds it (cargo build --features failpoints --bin \
         conclave, then a copy under that name)",
        path.display()
    );
    path
}

/// Debian's libfaketime (multi-threaded flavour), where the package puts it on this machine.
fn faketime_library() -> PathBuf {
    let found = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|arch| arch.path().join("faketime/libfaketimeMT.so.1"))
        .find(|p| p.exists());
    found.unwrap_or_else(|| {
        panic!("no libfaketimeMT.so.1 under /usr/lib/*/faketime: apt-get install libfaketime")
    })
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_all();
        // For a look at the logs and data of a test that passed.
        if std::env::var_os("CONCLAVE_TEST_KEEP").is_some() {
            self.dir.disable_cleanup(true);
            eprintln!("kept the cluster's directory {}", self.dir.path().display());
        }
        if std::thread::panicking() {
            eprintln!(
                "--- conclave cluster in {} ---\n{}",
                self.dir.path().display(),
                self.log_tails()
            );
        }
    }
}

/// A JSON number, or a proto3-JSON 64-bit integer (a string); absent (the default) is 0.
fn json_u64(v: &Value) -> u64 {
    match v {
        Value::Number(n) => n.as_u64().unwrap_or(0),
        Value::String(s) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

/// `n` distinct TCP ports nobody listens on right now (the probes are held until all are
/// picked, so they differ).
fn free_tcp_ports(n: usize) -> Vec<u16> {
    let probes: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a probe port"))
        .collect();
    probes
        .iter()
        .map(|l| l.local_addr().expect("probe port address").port())
        .collect()
}

/// `n` distinct UDP ports nobody has bound right now.
fn free_udp_ports(n: usize) -> Vec<u16> {
    let probes: Vec<UdpSocket> = (0..n)
        .map(|_| UdpSocket::bind("127.0.0.1:0").expect("bind a probe UDP port"))
        .collect();
    probes
        .iter()
        .map(|s| s.local_addr().expect("probe port address").port())
        .collect()
}
