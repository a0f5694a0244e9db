//! Serves the client router on accepted connections, as `axum::serve` does (a task per
//! connection, HTTP/1.1 and HTTP/2, graceful shutdown), plus the HTTP/2 settings behind etcd's
//! gRPC flags, which `axum::serve` cannot take: `--grpc-keepalive-interval`,
//! `--grpc-keepalive-timeout` and `--max-concurrent-streams`.

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::serve::Listener;
use futures::FutureExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::sync::watch;
use tower::{Layer, ServiceExt};
use tracing::trace;

use crate::auth::ClientIdentity;

/// The HTTP/2 settings of a client connection, from etcd's flags.
#[derive(Debug, Clone, Copy)]
pub struct Http2Settings {
    /// Ping an idle client this often (etcd: 2 h).
    pub keepalive_interval: Duration,
    /// Close the connection when a ping goes unanswered this long (etcd: 20 s).
    pub keepalive_timeout: Duration,
    /// Streams one client connection may have open at once (etcd: unlimited, 2^32 - 1).
    pub max_concurrent_streams: u32,
}

/// A listener whose connections say who the client is (a verified certificate's name).
pub trait ClientListener: Listener<Addr = std::net::SocketAddr> {
    fn identity(io: &Self::Io) -> ClientIdentity;
}

/// Serves `app` on every connection `listener` accepts until `stop` completes; then stops
/// accepting, lets open connections finish their requests, and returns once they have.
pub async fn serve<L: ClientListener>(
    mut listener: L,
    app: Router,
    settings: Http2Settings,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Dropping the receiver tells every connection to shut down gracefully.
    let (signal_tx, signal_rx) = watch::channel(());
    tokio::spawn(async move {
        stop.await;
        drop(signal_rx);
    });
    // Each connection task holds a receiver; the sender closes when the last one ends.
    let (close_tx, close_rx) = watch::channel(());
    loop {
        let (io, addr) = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = signal_tx.closed() => break,
        };
        trace!(?addr, "client connection accepted");
        let identity = L::identity(&io);
        // Requests carry who the client is, as axum's ConnectInfo would.
        let service = axum::Extension(ConnectInfo(identity))
            .layer(app.clone())
            .map_request(|req: Request<Incoming>| req.map(Body::new));
        let service = TowerToHyperService::new(service);
        let signal_tx = signal_tx.clone();
        let close_rx = close_rx.clone();
        tokio::spawn(async move {
            let mut builder = Builder::new(TokioExecutor::new());
            builder
                .http2()
                // Keep-alive pings need a timer.
                .timer(TokioTimer::new())
                .keep_alive_interval(Some(settings.keepalive_interval))
                .keep_alive_timeout(settings.keepalive_timeout)
                .max_concurrent_streams(settings.max_concurrent_streams);
            let mut conn = pin!(builder.serve_connection_with_upgrades(TokioIo::new(io), service));
            let mut signalled = pin!(signal_tx.closed().fuse());
            loop {
                tokio::select! {
                    result = conn.as_mut() => {
                        if let Err(e) = result {
                            trace!(error = %e, "client connection ended with an error");
                        }
                        break;
                    }
                    _ = &mut signalled => conn.as_mut().graceful_shutdown(),
                }
            }
            drop(close_rx);
        });
    }
    drop(close_rx);
    drop(listener);
    close_tx.closed().await;
    Ok(())
}
