//! Leases: grant, revoke, time-to-live, list, and a keeper that keeps a lease alive for as
//! long as it lives, so that what is attached to it (a service's registration, a lock, a
//! candidacy) disappears when the process does.

use std::time::Duration;

use conclave_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseLeasesRequest,
    LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseTimeToLiveRequest,
    LeaseTimeToLiveResponse, lease_client::LeaseClient,
};
use futures::StreamExt;
use tokio::sync::{mpsc, watch};

use crate::client::Client;
use crate::error::Error;

impl Client {
    fn lease_service(&self) -> LeaseClient<tonic::transport::Channel> {
        LeaseClient::new(self.channel.clone())
    }

    /// Grants a lease of `ttl` seconds; `id` 0 lets the server choose the ID.
    ///
    /// ```no_run
    /// # async fn demo(client: conclave_client::Client) -> Result<(), conclave_client::Error> {
    /// let lease = client.lease_grant(10, 0).await?;
    /// println!("lease {:x} for {} s", lease.id, lease.ttl);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn lease_grant(&self, ttl: i64, id: i64) -> Result<LeaseGrantResponse, Error> {
        self.call(|| {
            let mut lease = self.lease_service();
            let req = self.request(LeaseGrantRequest { ttl, id });
            async move { lease.lease_grant(req).await }
        })
        .await
    }

    /// Revokes a lease, deleting the keys attached to it.
    pub async fn lease_revoke(&self, id: i64) -> Result<LeaseRevokeResponse, Error> {
        self.call(|| {
            let mut lease = self.lease_service();
            let req = self.request(LeaseRevokeRequest { id });
            async move { lease.lease_revoke(req).await }
        })
        .await
    }

    /// A lease's remaining TTL (-1 if it does not exist), and its keys if `keys`.
    pub async fn lease_time_to_live(
        &self,
        id: i64,
        keys: bool,
    ) -> Result<LeaseTimeToLiveResponse, Error> {
        self.call(|| {
            let mut lease = self.lease_service();
            let req = self.request(LeaseTimeToLiveRequest { id, keys });
            async move { lease.lease_time_to_live(req).await }
        })
        .await
    }

    /// Every lease's ID.
    pub async fn lease_leases(&self) -> Result<LeaseLeasesResponse, Error> {
        self.call(|| {
            let mut lease = self.lease_service();
            let req = self.request(LeaseLeasesRequest {});
            async move { lease.lease_leases(req).await }
        })
        .await
    }

    /// Keeps lease `id` alive until the returned [`LeaseKeeper`] is dropped: a keep-alive every
    /// third of its TTL, on a stream that is reopened (on another endpoint, if the client has
    /// several) when it breaks. The keeper reports when the lease is gone.
    ///
    /// ```no_run
    /// # async fn demo(client: conclave_client::Client) -> Result<(), conclave_client::Error> {
    /// let lease = client.lease_grant(5, 0).await?;
    /// let keeper = client.lease_keep_alive(lease.id).await?;
    /// // ... work while the lease lives; dropping the keeper lets it expire.
    /// keeper.lost().await;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn lease_keep_alive(&self, id: i64) -> Result<LeaseKeeper, Error> {
        let ttl = self.lease_time_to_live(id, false).await?.ttl;
        if ttl <= 0 {
            return Err(Error::Status {
                code: tonic::Code::NotFound,
                message: crate::messages::LEASE_NOT_FOUND.into(),
            });
        }
        let (state, watched) = watch::channel(Some(ttl));
        let task = tokio::spawn(keep_alive(self.clone(), id, ttl, state));
        Ok(LeaseKeeper {
            id,
            state: watched,
            task,
        })
    }
}

/// Keeps a lease alive while it lives; see [`Client::lease_keep_alive`].
#[derive(Debug)]
pub struct LeaseKeeper {
    id: i64,
    /// The TTL the last keep-alive was answered with; None once the lease is gone.
    state: watch::Receiver<Option<i64>>,
    task: tokio::task::JoinHandle<()>,
}

impl LeaseKeeper {
    pub fn id(&self) -> i64 {
        self.id
    }

    /// The TTL the server last renewed the lease to; None once it is gone.
    pub fn ttl(&self) -> Option<i64> {
        *self.state.borrow()
    }

    /// Resolves once the lease is gone (revoked, or expired while no keep-alive got through).
    pub async fn lost(&self) {
        let mut state = self.state.clone();
        let _ = state.wait_for(Option::is_none).await;
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn keep_alive(client: Client, id: i64, ttl: i64, state: watch::Sender<Option<i64>>) {
    let every = Duration::from_millis((ttl.max(1) as u64 * 1000) / 3);
    // Past this without an answer the lease has expired on the server too.
    let mut deadline = tokio::time::Instant::now() + Duration::from_secs(ttl.max(1) as u64);
    loop {
        let (tx, rx) = mpsc::channel(1);
        // The first request goes in before the call: an etcd server answers the call's
        // headers with its first response.
        if tx.send(LeaseKeepAliveRequest { id }).await.is_err() {
            return;
        }
        let opened = client
            .lease_service()
            .lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await;
        if let Ok(response) = opened {
            let mut responses = response.into_inner();
            loop {
                match tokio::time::timeout(every, responses.next()).await {
                    Ok(Some(Ok(resp))) if resp.ttl > 0 => {
                        deadline =
                            tokio::time::Instant::now() + Duration::from_secs(resp.ttl as u64);
                        let _ = state.send(Some(resp.ttl));
                        tokio::time::sleep(every).await;
                        if tx.send(LeaseKeepAliveRequest { id }).await.is_err() {
                            return;
                        }
                    }
                    Ok(Some(Ok(_))) => {
                        let _ = state.send(None);
                        return;
                    }
                    // The stream broke or stalled: open another.
                    _ => break,
                }
            }
        }
        if tokio::time::Instant::now() >= deadline {
            let _ = state.send(None);
            return;
        }
        // Soon: the lease's time is running.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A lease granted for one holder (a lock, a leadership, a registration): kept alive while
/// held, revoked when released or dropped, so what hangs on it goes at once rather than a
/// TTL later.
#[derive(Debug)]
pub(crate) struct HeldLease {
    client: Client,
    /// None once released.
    keeper: Option<LeaseKeeper>,
}

impl HeldLease {
    /// Grants a lease of `ttl` seconds and starts keeping it alive.
    pub(crate) async fn grant(client: &Client, ttl: i64) -> Result<Self, Error> {
        let lease = client.lease_grant(ttl, 0).await?;
        let keeper = client.lease_keep_alive(lease.id).await?;
        Ok(Self {
            client: client.clone(),
            keeper: Some(keeper),
        })
    }

    pub(crate) fn id(&self) -> i64 {
        self.keeper.as_ref().map_or(0, LeaseKeeper::id)
    }

    /// Whether the lease is still kept alive.
    pub(crate) fn alive(&self) -> bool {
        self.keeper.as_ref().is_some_and(|k| k.ttl().is_some())
    }

    /// Resolves if the lease is lost.
    pub(crate) async fn lost(&self) {
        if let Some(keeper) = &self.keeper {
            keeper.lost().await;
        }
    }

    /// Stops keeping the lease alive and revokes it now.
    pub(crate) async fn revoke(mut self) -> Result<(), Error> {
        match self.keeper.take() {
            Some(keeper) => {
                let id = keeper.id();
                drop(keeper);
                self.client.lease_revoke(id).await.map(|_| ())
            }
            None => Ok(()),
        }
    }
}

impl Drop for HeldLease {
    fn drop(&mut self) {
        if let Some(keeper) = self.keeper.take() {
            let (client, id) = (self.client.clone(), keeper.id());
            drop(keeper);
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    let _ = client.lease_revoke(id).await;
                });
            }
        }
    }
}
