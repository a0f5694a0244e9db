//! Starting and stopping a member: open the store, start the node, serve gRPC and the JSON
//! gateway on every client URL, and shut down cleanly on SIGINT or SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use conclave_proto::etcdserverpb::{kv_server::KvServer, maintenance_server::MaintenanceServer};
use conclave_store::Store;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::authority::AuthorityListener;
use crate::config::{Config, socket_addr};
use crate::gateway::{self, Gateway};
use crate::ids;
use crate::node::{Identity, MAX_REQUEST_BYTES, Node};
use crate::service::{KvService, MaintenanceService};

/// gRPC's receive limit, as etcd sets it: the request limit plus room for framing, so that a
/// request a little over the limit gets etcd's "request is too large" rather than a transport error.
const MAX_GRPC_MESSAGE: usize = MAX_REQUEST_BYTES + 512 * 1024;
/// How long open streams get to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

pub async fn run(config: Config) -> anyhow::Result<()> {
    let data_dir = config.data_dir();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
    let store_dir = data_dir.join("store");
    let store = tokio::task::spawn_blocking(move || Store::open(&store_dir))
        .await?
        .context("cannot open the store")?;
    let store = Arc::new(store);

    let advertise = config.advertise_client_urls();
    let member_id = ids::member_id(&config.name, &advertise, &config.initial_cluster_token);
    let identity = Identity {
        cluster_id: ids::cluster_id(&[member_id], &config.initial_cluster_token),
        member_id,
    };
    let node = Node::start(store.clone(), identity);

    let kv = KvService::new(node.clone());
    let maintenance = MaintenanceService::new(node.clone());
    let grpc = tonic::service::Routes::new(
        KvServer::new(kv.clone()).max_decoding_message_size(MAX_GRPC_MESSAGE),
    )
    .add_service(
        MaintenanceServer::new(maintenance.clone()).max_decoding_message_size(MAX_GRPC_MESSAGE),
    )
    .into_axum_router();
    let app = grpc.merge(gateway::router(Gateway { kv, maintenance }));

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut servers = Vec::new();
    for url in &config.listen_client_urls {
        let addr = socket_addr(url).await?;
        // TCP_NODELAY on every connection, and etcdctl's `http://` authority repaired.
        let listener = AuthorityListener::new(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {url}"))?,
        );
        let mut stop = stop_rx.clone();
        let app = app.clone();
        servers.push(tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await
        }));
        info!(url, %addr, "serving client requests");
    }
    info!(
        name = %config.name,
        data_dir = %data_dir.display(),
        member_id = format!("{:x}", identity.member_id),
        cluster_id = format!("{:x}", identity.cluster_id),
        "ready to serve client requests"
    );

    shutdown_signal().await;
    info!("shutting down");
    node.stop();
    let _ = stop_tx.send(true);
    for server in servers {
        match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => warn!(error = %e, "client listener failed"),
            Ok(Err(e)) => warn!(error = %e, "client listener task failed"),
            Err(_) => warn!("client connections still open after the grace period; closing"),
        }
    }
    tokio::task::spawn_blocking(move || store.persist()).await??;
    info!(data_dir = %data_dir.display(), "stopped; data is in the data dir");
    Ok(())
}

async fn shutdown_signal() {
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
