//! etcd's Watch service: one task per stream (see `crate::watch`).

use std::sync::Arc;

use conclave_proto::etcdserverpb::{WatchRequest, WatchResponse, watch_server::Watch};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::Caller;
use crate::node::Node;
use crate::watch::{StreamConfig, WatchHub, WatchStream};

/// Responses a stream may have queued for a client that is slow to read; past this the
/// stream waits, and the hub lets it fall behind (it catches up from history later).
const QUEUED_RESPONSES: usize = 64;

#[derive(Clone)]
pub struct WatchService {
    node: Arc<Node>,
    hub: Arc<WatchHub>,
    config: StreamConfig,
    /// Set when the server shuts down: open streams end, so connections can close.
    stop: watch::Receiver<bool>,
}

impl WatchService {
    pub fn new(
        node: Arc<Node>,
        hub: Arc<WatchHub>,
        config: StreamConfig,
        stop: watch::Receiver<bool>,
    ) -> Self {
        Self {
            node,
            hub,
            config,
            stop,
        }
    }

    /// Serves one watch stream for `requests` (gRPC's, or the gateway's); its responses.
    pub fn open<S>(
        &self,
        caller: Caller,
        requests: S,
    ) -> ReceiverStream<Result<WatchResponse, Status>>
    where
        S: futures::Stream<Item = Result<WatchRequest, Status>> + Unpin + Send + 'static,
    {
        let (out, responses) = mpsc::channel(QUEUED_RESPONSES);
        let stream = WatchStream::new(self.node.clone(), caller, out);
        let mut stop = self.stop.clone();
        let hub = self.hub.clone();
        let config = self.config;
        tokio::spawn(async move {
            tokio::select! {
                () = stream.run(hub, requests, config) => {}
                _ = stop.wait_for(|stopping| *stopping) => {}
            }
        });
        ReceiverStream::new(responses)
    }
}

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = ReceiverStream<Result<WatchResponse, Status>>;

    async fn watch(
        &self,
        request: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let caller = self.node.auth.caller(&request)?;
        Ok(Response::new(self.open(caller, request.into_inner())))
    }
}
