//! Starting and stopping a member: open the store and the Raft log, join or bootstrap the
//! cluster over the peer transport, serve gRPC and the JSON gateway on every client URL, and
//! shut down cleanly on SIGINT or SIGTERM.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use conclave_proto::conclavepb::ingest_server::IngestServer;
use conclave_proto::conclavepb::plugin_server::PluginServer;
use conclave_proto::etcdserverpb::{
    auth_server::AuthServer, cluster_server::ClusterServer, kv_server::KvServer,
    lease_server::LeaseServer, maintenance_server::MaintenanceServer, watch_server::WatchServer,
};
use conclave_proto::v3electionpb::election_server::ElectionServer;
use conclave_proto::v3lockpb::lock_server::LockServer;
use conclave_raft::PeerTransport;
use conclave_raft::{ApplyListener, LogStore, Member, Raft, StateMachine};
use conclave_store::{Applied, Store};
use conclave_tls::PeerTls;
use openraft::error::{InitializeError, RaftError};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::authority::AuthorityListener;
use crate::auto_compact::{self, Retention};
use crate::backup;
use crate::client_tls::{ClientTls, TlsListener};
use crate::config::{ClusterState, Config, peer_addr, socket_addr};
use crate::corrupt_check;
use crate::error::ClusterError;
use crate::gateway::{self, Gateway};
use crate::grpc_metrics::GrpcMetrics;
use crate::http_serve::{self, Http2Settings};
use crate::ids;
use crate::lease::{LeaseClocks, Lessor, min_lease_ttl};
use crate::limits::{MAX_PLUGIN_BYTES, RequestLimits};
use crate::member_calls::MemberCalls;
use crate::monitoring::Metrics;
use crate::node::{Identity, Node, Settings};
use crate::plugin::{MemberParts, Plugins, PluginsListener, Supervisor};
use crate::service::{
    AuthService, ClusterService, ElectionService, IngestService, KvService, LeaseService,
    LockService, MaintenanceService, PluginService, WatchService,
};
use crate::tokens::TokenKind;
use crate::watch::{StreamConfig, WatchHub};

/// How long one snapshot chunk, or a follower's whole install, may take.
const SNAPSHOT_INSTALL_TIMEOUT_MS: u64 = 60_000;
/// How long a stopping leader waits for its successor.
const HAND_OVER_TIMEOUT: Duration = Duration::from_secs(2);
/// How long open streams get to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

pub async fn run(config: Config) -> anyhow::Result<()> {
    // First, so that the store and the Raft log record into it from their first write.
    let metrics = Metrics::install(config.metrics)?;
    let retention = Retention::parse(
        config.auto_compaction_mode,
        &config.auto_compaction_retention,
    )?;
    let data_dir = config.data_dir();
    let store = open_store(&config, &data_dir).await?;
    let Membership {
        identity,
        me,
        initial_ids,
    } = membership(&config)?;
    let member_id = identity.member_id;
    let tls = peer_tls(&config, &data_dir, initial_ids.len())?;
    let client_tls = ClientTls::load(&config).context("client TLS (--cert-file, --key-file)")?;
    let raft_config = raft_config(&config)?;
    let mut log = LogStore::open(&data_dir.join("raft"))
        .await
        .context("cannot open the raft log")?;
    if config.force_new_cluster {
        force_new_cluster(&mut log, member_id, &me).await?;
    }
    let snapshots = data_dir.join("snapshots");
    let hub = Arc::new(WatchHub::new());
    let plugins =
        Plugins::new(&data_dir, store.clone()).context("cannot start the plugin engine")?;
    let lease_clocks = LeaseClocks::load(store.clone());
    let listeners = Listeners(vec![
        hub.clone() as Arc<dyn ApplyListener>,
        Arc::new(PluginsListener(plugins.clone())),
        lease_clocks.clone(),
    ]);
    let state_machine = StateMachine::new(
        store.clone(),
        &snapshots,
        Some(Arc::new(listeners) as Arc<dyn ApplyListener>),
    )
    .context("cannot open the state machine")?
    .warn_slow_applies(config.experimental_warning_apply_duration);
    let peer_url = config
        .listen_peer_urls
        .first()
        .context("--listen-peer-urls is empty")?;
    let transport = PeerTransport::bind(peer_addr(peer_url).await?, &tls)
        .with_context(|| format!("cannot listen on {peer_url}"))?;
    let raft = Raft::new(
        member_id,
        Arc::new(raft_config),
        transport.network(),
        log,
        state_machine,
    )
    .await
    .context("cannot start raft")?;
    let peer_server = transport.serve(raft.clone(), snapshots.clone());
    info!(url = %peer_url, addr = %transport.local_addr(), "serving peer traffic (QUIC)");

    bootstrap(&config, &raft, &initial_ids, &me).await?;

    let node = Node::new(
        store.clone(),
        raft.clone(),
        identity,
        me,
        Settings {
            token: config.initial_cluster_token.clone(),
            quota: config.quota_bytes(),
            token_ttl: Duration::from_secs(config.auth_token_ttl),
            token_kind: TokenKind::parse(&config.auth_token)?,
            bcrypt_cost: config.bcrypt_cost,
            members: transport.members(),
            limits: RequestLimits {
                max_request_bytes: config.max_request_bytes,
                max_txn_ops: config.max_txn_ops,
            },
            strict_reconfig: config.strict_reconfig_check,
        },
    );
    // Stops the client listeners, and the watch streams that would hold them open.
    let (stop_tx, stop_rx) = watch::channel(false);
    let locks = LockService::new(node.clone(), hub.clone());
    let elections = ElectionService::new(node.clone(), hub.clone());
    let watches = WatchService::new(
        node.clone(),
        hub,
        StreamConfig {
            progress_interval: config.watch_progress_notify_interval,
        },
        stop_rx.clone(),
    );
    let mut background = Vec::new();
    if let Some(retention) = retention {
        background.push(tokio::spawn(auto_compact::run(node.clone(), retention)));
    }
    if !config.experimental_corrupt_check_time.is_zero() {
        background.push(tokio::spawn(corrupt_check::run(
            node.clone(),
            config.experimental_corrupt_check_time,
        )));
    }
    if let Some(dir) = config.backup_dir.clone() {
        let schedule = backup::Schedule {
            dir,
            interval: config.backup_interval,
            retain: config.backup_retain,
        };
        background.push(tokio::spawn(backup::run(node.clone(), schedule)));
    }
    let lessor = Lessor::new(node.clone(), lease_clocks);
    background.push(tokio::spawn(lessor.clone().run()));
    background.push(tokio::spawn(
        Supervisor {
            plugins: plugins.clone(),
            member: MemberParts {
                cluster: node.cluster.clone(),
                router: node.router.clone(),
                name: node.me.name.clone(),
            },
        }
        .run(),
    ));
    let leases = LeaseService::new(
        node.clone(),
        lessor.clone(),
        min_lease_ttl(config.election_timeout),
    );
    let kv = KvService::new(node.clone());
    let auth = AuthService::new(node.clone());
    let maintenance = MaintenanceService::new(node.clone(), snapshots.clone());
    let cluster = ClusterService::new(node.clone());
    let plugin_service = PluginService::new(node.clone(), plugins.clone());
    let ingest = Arc::new(IngestService::new(node.clone(), plugins.clone()));
    // What other members ask of this one, over the peer transport only.
    transport.serve_members(Arc::new(MemberCalls {
        node: node.clone(),
        lessor: lessor.clone(),
        cluster: cluster.clone(),
        plugins: plugin_service.clone(),
        ingest: ingest.clone(),
    }));
    if config.experimental_initial_corrupt_check {
        // Before any client is served; peers starting with the flag too can ask us already.
        corrupt_check::initial_check(&node).await?;
    }
    let app = client_router(
        &node,
        Services {
            kv,
            auth,
            maintenance,
            cluster,
            watch: watches,
            lease: leases,
            lock: locks,
            election: elections,
            plugin: plugin_service,
            ingest,
        },
        &metrics,
        &config,
    );

    let servers =
        serve_clients(&config, &node, app, &metrics, client_tls.as_ref(), &stop_rx).await?;
    metrics.spawn_upkeep();
    Metrics::spawn_leader_watch(node.cluster.clone());
    Metrics::spawn_peer_probe(node.clone());
    background.push(tokio::spawn(node.clone().publish_self()));
    info!(
        name = %config.name,
        data_dir = %data_dir.display(),
        member_id = format!("{:x}", identity.member_id),
        cluster_id = format!("{:x}", identity.cluster_id),
        "ready to serve client requests"
    );

    // A member whose Raft stopped by itself (a failed log write or fsync: a full disk, a
    // failing one) must not go on serving what it applied before: it stops, as etcd does
    // when its WAL fails, and says so in its exit status so that its supervisor sees it.
    let failed = tokio::select! {
        () = shutdown_signal() => None,
        why = node.cluster.stopped() => Some(why),
    };
    match &failed {
        None => info!("shutting down"),
        Some(why) => error!(error = %why, "raft stopped on a storage failure; stopping the member"),
    }
    let stopped = stop(Running {
        tasks: background,
        plugins,
        node,
        stop_clients: stop_tx,
        servers,
        raft,
        transport,
        peer_server,
        store,
    })
    .await;
    if let Some(why) = failed {
        // Closing a store that just failed fails too; the failure is what to report.
        if let Err(e) = stopped {
            warn!(error = %e, "stopping after the storage failure");
        }
        anyhow::bail!("raft stopped on a storage failure: {why}");
    }
    stopped?;
    info!(data_dir = %data_dir.display(), "stopped; data is in the data dir");
    Ok(())
}

/// The client port's services, each as its gRPC server and the gateway share it.
struct Services {
    kv: KvService,
    auth: AuthService,
    maintenance: MaintenanceService,
    cluster: ClusterService,
    watch: WatchService,
    lease: LeaseService,
    lock: LockService,
    election: ElectionService,
    plugin: PluginService,
    ingest: Arc<IngestService>,
}

/// Everything a client URL serves: the gRPC services (held to the request limits, counted),
/// the JSON gateway, the health probes, /metrics and, with --enable-pprof, the profiles.
fn client_router(
    node: &Arc<Node>,
    services: Services,
    metrics: &Metrics,
    config: &Config,
) -> axum::Router {
    let max_grpc_message = node.limits.grpc_message_bytes();
    let grpc = tonic::service::Routes::new(
        KvServer::new(services.kv.clone()).max_decoding_message_size(max_grpc_message),
    )
    .add_service(
        MaintenanceServer::new(services.maintenance.clone())
            .max_decoding_message_size(max_grpc_message),
    )
    .add_service(ClusterServer::new(services.cluster))
    .add_service(AuthServer::new(services.auth.clone()))
    .add_service(WatchServer::new(services.watch.clone()))
    .add_service(LeaseServer::new(services.lease.clone()))
    .add_service(LockServer::new(services.lock.clone()))
    .add_service(ElectionServer::new(services.election.clone()))
    .add_service(
        PluginServer::new(services.plugin)
            .max_decoding_message_size(MAX_PLUGIN_BYTES + max_grpc_message),
    )
    .add_service(
        IngestServer::from_arc(services.ingest).max_decoding_message_size(max_grpc_message),
    )
    .into_axum_router()
    // Inside grpc_only, so that only gRPC requests count; every handle resolved here.
    .layer(axum::middleware::from_fn_with_state(
        GrpcMetrics::new(config.metrics == crate::config::MetricsLevel::Extensive),
        crate::grpc_metrics::observe,
    ))
    // A gRPC service's path asked without gRPC (a probe, a browser) is not found, as in etcd;
    // gRPC requests are held to the receive limit with etcd's error.
    .layer(axum::middleware::from_fn_with_state(
        node.limits,
        gateway::grpc_only,
    ));
    let app = grpc
        .merge(gateway::router(Gateway {
            node: node.clone(),
            auth: services.auth,
            kv: services.kv,
            maintenance: services.maintenance,
            lease: services.lease,
            lock: services.lock,
            election: services.election,
            watch: services.watch,
        }))
        .merge(crate::health::router(node.clone()))
        .merge(metrics.clone().router(node.clone()));
    if config.enable_pprof {
        info!(
            "--enable-pprof: CPU profiles at /debug/pprof/profile, heap profiles at \
             /debug/pprof/heap (root only with auth on)"
        );
        app.merge(crate::pprof::router(node.clone()))
    } else {
        app
    }
    // Last, so that it takes whatever neither the gRPC services nor the gateway serve.
    .fallback(gateway::not_found)
}

/// `--force-new-cluster`: makes this member the sole voter of its cluster, keeping its data.
async fn force_new_cluster(log: &mut LogStore, member_id: u64, me: &Member) -> anyhow::Result<()> {
    match conclave_raft::force_sole_member(log, member_id, me.clone())
        .await
        .context("--force-new-cluster: cannot write the new configuration")?
    {
        Some(at) => warn!(
            index = at.index,
            "--force-new-cluster: this member is now the only member of its cluster, with \
             all its data; keep the old members stopped, remove the flag once it runs, and \
             add members back with `member add`"
        ),
        None => warn!(
            "--force-new-cluster: this member holds no Raft log (it never joined a cluster): \
             nothing to recover, starting as its flags say"
        ),
    }
    Ok(())
}

/// Listens on every client URL (everything) and every `--listen-metrics-urls` URL (etcd's
/// /metrics and the health probes, nothing else), until `stop` turns true.
async fn serve_clients(
    config: &Config,
    node: &Arc<Node>,
    app: axum::Router,
    metrics: &Metrics,
    client_tls: Option<&ClientTls>,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<std::io::Result<()>>>> {
    let reuse_port = config.socket_reuse_port;
    let http2 = Http2Settings {
        keepalive_interval: config.grpc_keepalive_interval,
        keepalive_timeout: config.grpc_keepalive_timeout,
        max_concurrent_streams: config.max_concurrent_streams,
    };
    let mut servers = Vec::new();
    for url in config.client_urls() {
        servers.push(listen(url, app.clone(), client_tls, reuse_port, http2, stop).await?);
        info!(url, "serving client requests");
    }
    let probes = crate::health::router(node.clone())
        .merge(metrics.clone().router(node.clone()))
        .fallback(gateway::not_found);
    for url in &config.listen_metrics_urls {
        servers.push(listen(url, probes.clone(), client_tls, reuse_port, http2, stop).await?);
        info!(url, "serving metrics and health probes");
    }
    Ok(servers)
}

/// Opens (after restoring, if `--restore-from` asks) the member's store.
async fn open_store(config: &Config, data_dir: &Path) -> anyhow::Result<Arc<Store>> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
    let store_dir = data_dir.join("store");
    if let Some(file) = config.restore_from.clone() {
        let dir = store_dir.clone();
        tokio::task::spawn_blocking(move || backup::restore_if_empty(&file, &dir)).await??;
    }
    if config.backup_interval.is_zero() {
        bail!("--backup-interval must be longer than 0");
    }
    let store = tokio::task::spawn_blocking(move || Store::open(&store_dir))
        .await?
        .context("cannot open the store")?;
    Ok(Arc::new(store))
}

/// Who this member is and whom it starts with, from its flags.
struct Membership {
    identity: Identity,
    me: Member,
    /// The initial cluster: member ID, name, peer URLs.
    initial_ids: Vec<(u64, String, Vec<String>)>,
}

fn membership(config: &Config) -> anyhow::Result<Membership> {
    let token = &config.initial_cluster_token;
    let initial = config.initial_members()?;
    let my_peer_urls = config.advertise_peer_urls();
    let member_id = ids::member_id(&my_peer_urls, token);
    let initial_ids: Vec<(u64, String, Vec<String>)> = initial
        .iter()
        .map(|(name, urls)| (ids::member_id(urls, token), name.clone(), urls.clone()))
        .collect();
    if config.initial_cluster_state == ClusterState::New
        && !initial_ids.iter().any(|(id, ..)| *id == member_id)
    {
        bail!(
            "--initial-cluster gives {} other peer URLs than --initial-advertise-peer-urls {:?}",
            config.name,
            my_peer_urls
        );
    }
    let identity = Identity {
        cluster_id: ids::cluster_id(
            &initial_ids.iter().map(|(id, ..)| *id).collect::<Vec<_>>(),
            token,
        ),
        member_id,
    };
    let me = Member {
        name: config.name.clone(),
        peer_urls: my_peer_urls,
        client_urls: config.advertise_client_urls(),
    };
    Ok(Membership {
        identity,
        me,
        initial_ids,
    })
}

/// openraft's settings from etcd's timing flags.
fn raft_config(config: &Config) -> anyhow::Result<openraft::Config> {
    if config.election_timeout < 5 * config.heartbeat_interval {
        // etcd's rule and words.
        bail!(
            "--election-timeout[{}ms] should be at least as 5 times as --heartbeat-interval[{}ms]",
            config.election_timeout,
            config.heartbeat_interval
        );
    }
    openraft::Config {
        cluster_name: config.initial_cluster_token.clone(),
        heartbeat_interval: config.heartbeat_interval,
        // A follower campaigns once it has heard nothing for openraft's leader lease (which is
        // election_timeout_max) plus a timeout drawn from [min, max): between 1 and 1.5 times
        // --election-timeout with these. etcd campaigns after 1 to 2 times it; taking the
        // timeout itself as min and max, as before, failed over in 2.5 to 3 s, not 1 to 2.
        election_timeout_min: config.election_timeout / 4,
        election_timeout_max: config.election_timeout * 3 / 4,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(config.snapshot_count),
        max_in_snapshot_log_to_keep: config.experimental_snapshot_catchup_entries,
        // A member that has been away asks before it disrupts a working leader.
        enable_pre_vote: Some(true),
        // Bounds each snapshot chunk and the follower's install: snapshots are large.
        install_snapshot_timeout: SNAPSHOT_INSTALL_TIMEOUT_MS,
        ..Default::default()
    }
    .validate()
    .context("invalid raft settings (--heartbeat-interval, --election-timeout)")
}

/// What a running member must stop, in order, when it is told to.
struct Running {
    /// Background tasks: publishing, the lessor, compaction, checks, backups, the plugin
    /// supervisor.
    tasks: Vec<tokio::task::JoinHandle<()>>,
    plugins: Arc<Plugins>,
    node: Arc<Node>,
    stop_clients: watch::Sender<bool>,
    servers: Vec<tokio::task::JoinHandle<std::io::Result<()>>>,
    raft: Raft,
    transport: PeerTransport,
    peer_server: tokio::task::JoinHandle<()>,
    store: Arc<Store>,
}

/// Stops a member: its own tasks and plugins, then (handing leadership over first) its client
/// listeners, Raft and the peer transport, and last writes the store out.
async fn stop(running: Running) -> anyhow::Result<()> {
    let Running {
        tasks,
        plugins,
        node,
        stop_clients,
        servers,
        raft,
        transport,
        peer_server,
        store,
    } = running;
    for task in tasks {
        task.abort();
    }
    // Plugin threads wait on the runtime and propose through Raft: they end before either.
    tokio::task::spawn_blocking(move || plugins.stop_threads()).await?;
    // As etcd does: a leader that is asked to stop hands over first, so writes pause for a
    // transfer rather than for an election timeout.
    if node.cluster.is_leader() {
        hand_over_leadership(&node).await;
    }
    let _ = stop_clients.send(true);
    for server in servers {
        match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => warn!(error = %e, "client listener failed"),
            Ok(Err(e)) => warn!(error = %e, "client listener task failed"),
            Err(_) => warn!("client connections still open after the grace period; closing"),
        }
    }
    if let Err(e) = raft.shutdown().await {
        warn!(error = %e, "raft did not stop cleanly");
    }
    transport.shutdown().await;
    peer_server.abort();
    drop(node);
    tokio::task::spawn_blocking(move || store.persist()).await??;
    Ok(())
}

/// Every party told about applied batches: the watch hub, the plugin runtime and the
/// leases' clocks.
struct Listeners(Vec<Arc<dyn ApplyListener>>);

impl ApplyListener for Listeners {
    fn applied(&self, outcomes: &[Applied]) {
        for listener in &self.0 {
            listener.applied(outcomes);
        }
    }

    fn installed(&self, revision: i64) {
        for listener in &self.0 {
            listener.installed(revision);
        }
    }
}

/// A listening socket with SO_REUSEADDR (as `TcpListener::bind` sets it on Unix) and, when
/// asked, SO_REUSEPORT.
fn bind(addr: std::net::SocketAddr, reuse_port: bool) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(reuse_port)?;
    socket.bind(addr)?;
    // The backlog std and Go use on Linux.
    socket.listen(4096)
}

/// Serves `app` on a client-side URL (`http://` through the `:authority` repair layer,
/// `https://` with the client TLS settings) until `stop` turns true. `reuse_port`:
/// --socket-reuse-port; `http2`: etcd's gRPC keep-alive and stream flags.
async fn listen(
    url: &str,
    app: axum::Router,
    client_tls: Option<&ClientTls>,
    reuse_port: bool,
    http2: Http2Settings,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    let addr = socket_addr(url).await?;
    let tcp = bind(addr, reuse_port).with_context(|| format!("cannot listen on {url}"))?;
    let mut stop = stop.clone();
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    Ok(if url.starts_with("https://") {
        let tls = client_tls
            .with_context(|| format!("{url}: https:// needs --cert-file and --key-file"))?;
        let listener = TlsListener::new(tcp, tls.server.clone())?;
        tokio::spawn(http_serve::serve(listener, app, http2, stopped))
    } else {
        let listener = AuthorityListener::new(tcp);
        tokio::spawn(http_serve::serve(listener, app, http2, stopped))
    })
}

/// Moves leadership to the most caught-up other voter and waits (briefly) for it to lead.
async fn hand_over_leadership(node: &Node) {
    let me = node.identity.member_id;
    let progress = node.cluster.progress();
    if !progress.is_leading() {
        return;
    }
    let target = node
        .cluster
        .membership()
        .voters
        .into_iter()
        .filter(|v| *v != me)
        .max_by_key(|v| progress.matched(*v).unwrap_or(0));
    let Some(target) = target else { return };
    match node
        .cluster
        .move_leadership(target, HAND_OVER_TIMEOUT)
        .await
    {
        Ok(()) => info!(to = format!("{target:x}"), "handed leadership over"),
        Err(ClusterError::TimedOut) => {
            warn!("leadership hand-over did not finish; stopping anyway")
        }
        Err(_) => {}
    }
}

/// The peer TLS identity: from the --peer-* flags, or for a member alone, a CA and certificate
/// made once in the data dir.
fn peer_tls(config: &Config, data_dir: &Path, members: usize) -> anyhow::Result<PeerTls> {
    match (
        &config.peer_cert_file,
        &config.peer_key_file,
        &config.peer_trusted_ca_file,
    ) {
        (Some(cert), Some(key), Some(ca)) => {
            PeerTls::load(cert, key, ca).context("cannot load the peer certificates")
        }
        (None, None, None) if config.peer_auto_tls => {
            let own = conclave_tls::dev_certs(data_dir, &config.name, &[])
                .context("cannot make this member's peer certificate")?;
            warn!(
                cert = %own.cert.display(),
                "--peer-auto-tls: peers are encrypted but NOT authenticated: anyone who reaches \
                 the peer port can join the cluster and read its data. Give the members \
                 certificates from one CA (conclavectl certs init) for a cluster you trust"
            );
            PeerTls::load_unauthenticated(&own.cert, &own.key)
                .context("cannot load the peer certificate")
        }
        (None, None, None) if members <= 1 => {
            let dev = conclave_tls::dev_certs(data_dir, &config.name, &[])
                .context("cannot make this member's peer certificates")?;
            if dev.created {
                info!(
                    ca = %dev.ca.display(),
                    cert = %dev.cert.display(),
                    "no --peer-* flags: made a CA and a peer certificate in the data dir"
                );
            }
            PeerTls::load(&dev.cert, &dev.key, &dev.ca).context("cannot load the peer certificates")
        }
        (None, None, None) => bail!(
            "members of a cluster need peer certificates from one CA: make them with \
             `conclavectl certs init --out DIR --names ...` and pass --peer-cert-file, \
             --peer-key-file and --peer-trusted-ca-file (or try `conclave dev`; or \
             --peer-auto-tls, which encrypts but does not authenticate)"
        ),
        _ => bail!("--peer-cert-file, --peer-key-file and --peer-trusted-ca-file go together"),
    }
}

/// A new cluster is initialized by every member of `--initial-cluster` with the same
/// membership (openraft accepts that, and it needs no particular member to be up); the first
/// to campaign wins. A member joining an existing cluster waits to be added.
async fn bootstrap(
    config: &Config,
    raft: &Raft,
    initial: &[(u64, String, Vec<String>)],
    me: &Member,
) -> anyhow::Result<()> {
    if config.initial_cluster_state != ClusterState::New || raft.is_initialized().await? {
        return Ok(());
    }
    // Every member must propose identical membership, so client URLs (known only to each
    // member itself) are left out here and published once the cluster has a leader.
    let members: BTreeMap<u64, Member> = initial
        .iter()
        .map(|(id, name, peer_urls)| {
            (
                *id,
                Member {
                    name: name.clone(),
                    peer_urls: peer_urls.clone(),
                    client_urls: Vec::new(),
                },
            )
        })
        .collect();
    info!(members = members.len(), name = %me.name, "forming a new cluster");
    match raft.initialize(members).await {
        Ok(()) => Ok(()),
        Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {
            info!("the cluster was formed already");
            Ok(())
        }
        Err(e) => Err(e).context("cannot initialize the cluster"),
    }
}

/// SIGINT (Ctrl-C) or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
