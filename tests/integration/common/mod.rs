//! The integration-test harness: runs the real `conclave` binary as a child process on a free
//! loopback port with its own data dir, and talks to it with etcdctl, the etcd-client crate or
//! plain HTTP/1.1. Each test owns its server, so tests run in parallel.

pub mod cluster;
pub mod disk;
pub mod partition;
pub mod plugins;
#[macro_use]
pub mod target;

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// How long a server gets to come up, or to stop after SIGTERM.
const START_DEADLINE: Duration = Duration::from_secs(60);
const STOP_DEADLINE: Duration = Duration::from_secs(30);
/// Between two polls of a condition.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Where Debian's etcd-client package installs etcdctl 3.4.
pub const ETCDCTL: &str = "/usr/bin/etcdctl";

/// One lease keep-alive on a stream of its own (a failed one may leave its stream broken):
/// whether it was answered with a TTL (the lease lives) within `timeout`.
pub async fn renewed(client: &mut etcd_client::Client, lease: i64, timeout: Duration) -> bool {
    let renewal = async {
        let (mut keeper, mut answers) = client.lease_keep_alive(lease).await?;
        keeper.keep_alive().await?;
        answers.message().await
    };
    matches!(
        tokio::time::timeout(timeout, renewal).await,
        Ok(Ok(Some(answer))) if answer.ttl() > 0
    )
}

pub struct Server {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
    /// The peer port (UDP, QUIC); a lone member still runs Raft and listens for peers.
    peer_port: u16,
    name: String,
    /// Flags beyond the ones every test server gets.
    extra: Vec<String>,
}

impl Server {
    /// Starts a member on a free port with an empty data dir, and waits until it answers.
    pub fn start() -> Server {
        Self::start_with(&[])
    }

    /// [`Server::start`] with more flags, e.g. `["--watch-progress-notify-interval", "1s"]`.
    pub fn start_with(extra: &[&str]) -> Server {
        // Another process may take the port between our probe and the server's bind: then the
        // server exits at once and we try another port.
        let mut last_failure = String::new();
        for _ in 0..5 {
            let mut server = Server {
                child: None,
                port: free_port(),
                peer_port: free_udp_port(),
                name: "test".into(),
                extra: extra.iter().map(|s| s.to_string()).collect(),
                dir: tempfile::Builder::new()
                    .prefix("conclave-test-")
                    .tempdir()
                    .expect("create a temp dir"),
            };
            server.spawn();
            match server.wait_ready() {
                Ok(()) => return server,
                Err(e) => last_failure = format!("{e}\n--- server log ---\n{}", server.log()),
            }
        }
        panic!("the conclave server did not start: {last_failure}");
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`, as etcdctl's `--endpoints` and etcd-client take it.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.endpoint())
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// Everything the server (all its incarnations) wrote to stdout and stderr.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server is running").id()
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "the server is already running");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open the server log");
        let stderr = log.try_clone().expect("clone the log file handle");
        let child = Command::new(env!("CARGO_BIN_EXE_conclave"))
            .arg("--name")
            .arg(&self.name)
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--listen-client-urls")
            .arg(self.url())
            .arg("--listen-peer-urls")
            .arg(format!("https://127.0.0.1:{}", self.peer_port))
            .args(&self.extra)
            .env("NO_COLOR", "1")
            .env("CONCLAVE_LOG", "info")
            .env_remove("ETCD_ADVERTISE_CLIENT_URLS")
            .env_remove("ETCD_INITIAL_CLUSTER_TOKEN")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .expect("spawn the conclave binary");
        self.child = Some(child);
    }

    /// Polls `GET /health` until it answers healthy; an error if the process exits first, a
    /// panic at the deadline.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            let child = self.child.as_mut().expect("the server was spawned");
            if let Some(status) = child.try_wait().expect("poll the server process") {
                self.child = None;
                return Err(format!("the server exited during start-up with {status}"));
            }
            if let Ok(resp) = try_http(self.port, "GET", "/health", None)
                && resp.status == 200
                && resp.body.contains("\"health\":\"true\"")
            {
                return Ok(());
            }
            assert!(
                Instant::now() < deadline,
                "the server gave no healthy answer within {START_DEADLINE:?}\n--- server log ---\n{}",
                self.log()
            );
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// SIGKILL: the process gets no chance to flush anything.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("the server is running");
        child.kill().expect("SIGKILL the server");
        child.wait().expect("reap the killed server");
    }

    /// SIGTERM, then waits for a clean exit (status 0).
    pub fn stop(&mut self) {
        self.stop_with("TERM");
    }

    /// Sends `signal` (a name for `kill -<signal>`, e.g. "INT"), then waits for a clean exit.
    pub fn stop_with(&mut self, signal: &str) {
        let status = self.signal_and_wait(signal);
        assert!(
            status.success(),
            "the server did not stop cleanly after SIG{signal}: {status}\n--- server log ---\n{}",
            self.log()
        );
    }

    fn signal_and_wait(&mut self, signal: &str) -> ExitStatus {
        let child = self.child.take().expect("the server is running");
        signal_and_wait(child, signal).unwrap_or_else(|| {
            panic!(
                "the server did not exit within {STOP_DEADLINE:?} of SIG{signal}\n--- server log ---\n{}",
                self.log()
            )
        })
    }

    /// Starts the server again on the same data dir and port, and waits until it answers.
    pub fn restart(&mut self) {
        self.spawn();
        if let Err(e) = self.wait_ready() {
            panic!(
                "the server did not restart: {e}\n--- server log ---\n{}",
                self.log()
            );
        }
    }

    /// Runs etcdctl 3.4 against this server.
    pub fn etcdctl(&self, args: &[&str]) -> Output {
        self.etcdctl_stdin(args, None)
    }

    /// Runs etcdctl 3.4 against this server with `stdin` as its input.
    pub fn etcdctl_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        self.etcdctl_stdin(args, Some(stdin))
    }

    fn etcdctl_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        etcdctl_at(&self.endpoint(), args, stdin)
    }

    /// An etcd-client connection to this server.
    pub async fn client(&self) -> etcd_client::Client {
        let options = etcd_client::ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(10))
            .with_timeout(Duration::from_secs(30));
        etcd_client::Client::connect([self.url()], Some(options))
            .await
            .expect("connect etcd-client")
    }

    /// One HTTP/1.1 request to the client port.
    pub fn http(&self, method: &str, path: &str, body: Option<&str>) -> HttpResponse {
        try_http(self.port, method, path, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\n--- server log ---\n{}", self.log()))
    }

    /// [`Server::http`] with more request headers.
    pub fn http_with_headers(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> HttpResponse {
        try_http_with_headers(self.port, method, path, body, headers)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\n--- server log ---\n{}", self.log()))
    }

    /// POSTs a JSON body to the gateway and parses the JSON answer.
    pub fn post_json(&self, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        post_json_at(&self.endpoint(), path, body)
    }
}

/// One bodiless HTTP/1.1 request to `port` on loopback.
pub fn http_at(port: u16, method: &str, path: &str) -> HttpResponse {
    try_http(port, method, path, None)
        .unwrap_or_else(|e| panic!("{method} {path} on port {port}: {e}"))
}

/// POSTs a JSON body to the gateway at `endpoint` (`127.0.0.1:PORT`) and parses the answer.
pub fn post_json_at(
    endpoint: &str,
    path: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let port = endpoint
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("not host:port: {endpoint}"));
    let resp = try_http(port, "POST", path, Some(&body.to_string()))
        .unwrap_or_else(|e| panic!("POST {path} to {endpoint}: {e}"));
    let json = serde_json::from_str(&resp.body).unwrap_or_else(|e| {
        panic!(
            "POST {path}: the answer is not JSON ({e}): {} {:?}",
            resp.status, resp.body
        )
    });
    (resp.status, json)
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- conclave server log ({}) ---\n{}",
                self.log_path().display(),
                self.log()
            );
        }
    }
}

/// etcdctl 3.4 set up to talk v3 to `endpoint` (`host:port`) only, whatever the environment
/// says; add the command's arguments.
pub fn etcdctl_command(endpoint: &str) -> Command {
    let mut cmd = Command::new(etcdctl_path());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("ETCDCTL_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .arg("--dial-timeout=10s")
        .arg("--command-timeout=30s");
    cmd
}

/// Starts etcdctl 3.4 against `endpoint` with its output piped; with `stdin`, writes it to
/// etcdctl's input and hands back the open pipe (dropping it ends the input).
pub fn spawn_etcdctl(
    endpoint: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> (std::process::Child, Option<std::process::ChildStdin>) {
    let mut cmd = etcdctl_command(endpoint);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run etcdctl");
    let pipe = stdin.map(|input| {
        let mut pipe = child.stdin.take().expect("etcdctl's stdin");
        pipe.write_all(input.as_bytes())
            .expect("write etcdctl's stdin");
        pipe
    });
    (child, pipe)
}

/// Runs etcdctl 3.4 against `endpoint` (`host:port`) only, with `stdin` as its input if given.
pub fn etcdctl_at(endpoint: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let (child, pipe) = spawn_etcdctl(endpoint, args, stdin);
    drop(pipe);
    child.wait_with_output().expect("wait for etcdctl")
}

/// The etcdctl binary, or a failure that says how to get it: the etcdctl tests must not pass
/// by skipping.
pub fn etcdctl_path() -> &'static Path {
    let path = Path::new(ETCDCTL);
    assert!(
        path.exists(),
        "etcdctl is not installed at {ETCDCTL}: install Debian's etcd-client package \
         (`apt-get install etcd-client`, etcdctl 3.4); CI installs it"
    );
    path
}

/// A port nobody listens on right now.
/// Sends `signal` to `child` and waits for it to exit; `None` (after killing it) if it has
/// not exited within STOP_DEADLINE.
pub fn signal_and_wait(mut child: Child, signal: &str) -> Option<ExitStatus> {
    let kill = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .expect("run kill");
    assert!(kill.success(), "kill -{signal} failed: {kill}");
    let deadline = Instant::now() + STOP_DEADLINE;
    loop {
        if let Some(status) = child.try_wait().expect("poll a server process") {
            return Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a probe port");
    listener.local_addr().expect("probe port address").port()
}

/// A UDP port nobody is bound to right now (for a member's QUIC peer listener).
pub fn free_udp_port() -> u16 {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind a probe UDP port");
    socket.local_addr().expect("probe port address").port()
}

#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The body as text (bytes that are not UTF-8 replaced).
    pub body: String,
    /// The body as sent.
    pub bytes: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A bare HTTP/1.1 exchange over a fresh connection (`Connection: close`), so the test sees
/// exactly what the server sends.
fn try_http(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<HttpResponse, String> {
    try_http_with_headers(port, method, path, body, &[])
}

fn try_http_with_headers(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Result<HttpResponse, String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let body = body.unwrap_or("");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Accept: application/json\r\n"
    );
    if method != "GET" {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    // No half-close after the request: hyper drops a connection whose peer closed its write
    // side (`half_close` off) and the answer would be lost. `Connection: close` ends it instead.
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("receive: {e}"))?;
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Result<HttpResponse, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no end of headers in {:?}", String::from_utf8_lossy(raw)))?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|e| e.to_string())?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP/1 answer: {status_line:?}"));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body)?;
    } else if let Some((_, len)) = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
    {
        let len: usize = len
            .parse()
            .map_err(|_| format!("bad content-length {len}"))?;
        if body.len() != len {
            return Err(format!(
                "content-length {len} but {} body bytes",
                body.len()
            ));
        }
    }
    Ok(HttpResponse {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        bytes: body,
    })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    // Every chunk consumes input, so this ends.
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size_text = std::str::from_utf8(&data[..line_end]).map_err(|e| e.to_string())?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// Runs `conclavectl --endpoints ENDPOINT ARGS...`.
pub fn conclavectl(endpoint: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_conclavectl"))
        .arg("--endpoints")
        .arg(endpoint)
        .args(args)
        .output()
        .expect("run conclavectl")
}

/// Waits for `cond` with a deadline; for conditions the tests cannot be told about.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// etcdctl's stdout, checked for success.
pub fn stdout_ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "etcdctl failed with {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("etcdctl prints UTF-8")
}

/// The `Error: ...` line etcdctl prints for a failed command, checked for failure.
pub fn etcdctl_error(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "etcdctl was expected to fail\nstdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("Error: "))
        .unwrap_or_else(|| panic!("no `Error:` line in etcdctl's stderr: {stderr}"))
        .to_string()
}

/// Standard base64, as the gateway and etcdctl's JSON use for bytes.
pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn unb64(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap_or_else(|e| panic!("{text:?} is not base64: {e}"))
}

/// etcdctl commands that add root (password rootpw) and alice (alicepw), who may read and
/// write `/alice/` through the role `writer`. Auth stays off.
pub const ROOT_AND_ALICE: &[&[&str]] = &[
    &["user", "add", "root:rootpw"],
    &["role", "add", "writer"],
    &[
        "role",
        "grant-permission",
        "writer",
        "readwrite",
        "/alice/",
        "--prefix",
    ],
    &["user", "add", "alice:alicepw"],
    &["user", "grant-role", "alice", "writer"],
];
