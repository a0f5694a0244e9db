//! Locks and elections on etcd's v3lock and v3election services, each held under a lease
//! that a [`LeaseKeeper`] keeps alive for as long as the guard lives, so a process that dies
//! lets go within the lease's TTL.
//!
//! A lock or a leadership is only as safe as the writes it guards (Jepsen, and Kleppmann's
//! "How to do distributed locking"): a holder paused past its TTL may still believe it holds
//! the lock. Guard each write with [`LockGuard::fence`] (or [`Leadership::fence`]): a
//! transaction that applies only while the lock key is the one this holder created.

use conclave_proto::mvccpb::KeyValue;
use conclave_proto::v3electionpb::{
    CampaignRequest, LeaderKey, LeaderRequest, ProclaimRequest, ResignRequest,
    election_client::ElectionClient,
};
use conclave_proto::v3lockpb::{LockRequest, UnlockRequest, lock_client::LockClient};

use crate::client::Client;
use crate::error::Error;
use crate::lease::LeaseKeeper;
use crate::options::GetOptions;
use crate::txn::{Compare, CompareInt};

/// A held lock: released by [`LockGuard::unlock`], or when dropped (its lease is revoked).
///
/// ```no_run
/// use conclave_client::{Client, PutOptions, Txn, TxnOp};
///
/// # async fn demo(client: Client) -> Result<(), conclave_client::Error> {
/// let guard = client.lock("jobs/nightly", 10).await?;
/// // Applies only while this holder's lock key still exists: the fencing check.
/// let txn = Txn::new()
///     .when([guard.fence()])
///     .and_then([TxnOp::put("jobs/nightly/state", "running", PutOptions::new())]);
/// assert!(client.txn(txn).await?.succeeded);
/// guard.unlock().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct LockGuard {
    client: Client,
    key: Vec<u8>,
    revision: i64,
    keeper: Option<LeaseKeeper>,
}

impl LockGuard {
    /// The key that exists while the lock is held.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The lock key's create revision: the fencing token (it grows with every holder).
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// The compare that holds only while this holder still has the lock.
    pub fn fence(&self) -> crate::txn::Compare {
        fence(&self.key, self.revision)
    }

    /// Resolves if the lock's lease is lost (the lock may then be someone else's).
    pub async fn lost(&self) {
        if let Some(keeper) = &self.keeper {
            keeper.lost().await;
        }
    }

    /// Releases the lock now.
    pub async fn unlock(mut self) -> Result<(), Error> {
        let keeper = self.keeper.take();
        let lease = keeper.as_ref().map(LeaseKeeper::id);
        drop(keeper);
        let mut service = LockClient::new(self.client.channel.clone());
        let released = service
            .unlock(self.client.request(UnlockRequest {
                key: self.key.clone(),
            }))
            .await
            .map_err(Error::from_status);
        if let Some(id) = lease {
            // The lease was the lock's alone.
            let _ = self.client.lease_revoke(id).await;
        }
        released.map(|_| ())
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(keeper) = self.keeper.take() {
            let (client, id) = (self.client.clone(), keeper.id());
            drop(keeper);
            // Revoking the lease deletes the lock key: the next holder need not wait the TTL.
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    let _ = client.lease_revoke(id).await;
                });
            }
        }
    }
}

fn fence(key: &[u8], revision: i64) -> Compare {
    let compare: CompareInt = Compare::create_revision(key.to_vec());
    compare.eq(revision)
}

/// The leadership of an election, won by [`Client::campaign`]; resigned on drop.
#[derive(Debug)]
pub struct Leadership {
    client: Client,
    leader: LeaderKey,
    keeper: Option<LeaseKeeper>,
}

impl Leadership {
    /// The leader key: name, key, its create revision (the fencing token) and lease.
    pub fn leader_key(&self) -> &LeaderKey {
        &self.leader
    }

    /// The compare that holds only while this leader still leads.
    pub fn fence(&self) -> Compare {
        fence(&self.leader.key, self.leader.rev)
    }

    /// Publishes a new value for the leader ("election: not leader" once it no longer is).
    pub async fn proclaim(&self, value: impl Into<Vec<u8>>) -> Result<(), Error> {
        let mut service = ElectionClient::new(self.client.channel.clone());
        service
            .proclaim(self.client.request(ProclaimRequest {
                leader: Some(self.leader.clone()),
                value: value.into(),
            }))
            .await
            .map_err(Error::from_status)?;
        Ok(())
    }

    /// Resolves if the leadership's lease is lost.
    pub async fn lost(&self) {
        if let Some(keeper) = &self.keeper {
            keeper.lost().await;
        }
    }

    /// Steps down now: the next candidate leads at once.
    pub async fn resign(mut self) -> Result<(), Error> {
        let keeper = self.keeper.take();
        let lease = keeper.as_ref().map(LeaseKeeper::id);
        drop(keeper);
        let mut service = ElectionClient::new(self.client.channel.clone());
        let resigned = service
            .resign(self.client.request(ResignRequest {
                leader: Some(self.leader.clone()),
            }))
            .await
            .map_err(Error::from_status);
        if let Some(id) = lease {
            let _ = self.client.lease_revoke(id).await;
        }
        resigned.map(|_| ())
    }
}

impl Drop for Leadership {
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

impl Client {
    /// Waits for the lock `name` and holds it under a lease of `ttl` seconds kept alive by
    /// the returned guard.
    pub async fn lock(&self, name: impl Into<Vec<u8>>, ttl: i64) -> Result<LockGuard, Error> {
        let lease = self.lease_grant(ttl, 0).await?;
        let keeper = self.lease_keep_alive(lease.id).await?;
        let mut service = LockClient::new(self.channel.clone());
        // No request timeout: waiting for the lock is the point.
        let locked = service
            .lock(LockRequest {
                name: name.into(),
                lease: lease.id,
            })
            .await;
        let key = match locked {
            Ok(resp) => resp.into_inner().key,
            Err(status) => {
                drop(keeper);
                let _ = self.lease_revoke(lease.id).await;
                return Err(Error::from_status(status));
            }
        };
        let revision = self
            .get(key.clone(), GetOptions::new())
            .await?
            .kvs
            .first()
            .map_or(0, |kv| kv.create_revision);
        Ok(LockGuard {
            client: self.clone(),
            key,
            revision,
            keeper: Some(keeper),
        })
    }

    /// Campaigns in election `name` with `value`, under a lease of `ttl` seconds, and returns
    /// once elected.
    ///
    /// ```no_run
    /// # async fn demo(client: conclave_client::Client) -> Result<(), conclave_client::Error> {
    /// let leadership = client.campaign("scheduler", "host-a:8080", 10).await?;
    /// leadership.proclaim("host-a:8081").await?;
    /// leadership.resign().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn campaign(
        &self,
        name: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
        ttl: i64,
    ) -> Result<Leadership, Error> {
        let lease = self.lease_grant(ttl, 0).await?;
        let keeper = self.lease_keep_alive(lease.id).await?;
        let mut service = ElectionClient::new(self.channel.clone());
        let won = service
            .campaign(CampaignRequest {
                name: name.into(),
                lease: lease.id,
                value: value.into(),
            })
            .await;
        match won.map(|r| r.into_inner().leader) {
            Ok(Some(leader)) => Ok(Leadership {
                client: self.clone(),
                leader,
                keeper: Some(keeper),
            }),
            Ok(None) => Err(Error::Status {
                code: tonic::Code::Internal,
                message: "the campaign answered no leader key".into(),
            }),
            Err(status) => {
                drop(keeper);
                let _ = self.lease_revoke(lease.id).await;
                Err(Error::from_status(status))
            }
        }
    }

    /// The current leader of election `name` and its value; None if nobody leads.
    pub async fn election_leader(
        &self,
        name: impl Into<Vec<u8>>,
    ) -> Result<Option<KeyValue>, Error> {
        let name = name.into();
        let mut service = ElectionClient::new(self.channel.clone());
        match service.leader(self.request(LeaderRequest { name })).await {
            Ok(resp) => Ok(resp.into_inner().kv),
            Err(status) if status.message() == "election: no leader" => Ok(None),
            Err(status) => Err(Error::from_status(status)),
        }
    }

    /// Every change of leader (or of its value) in election `name`, in order, starting with
    /// the current one.
    pub async fn observe(
        &self,
        name: impl Into<Vec<u8>>,
    ) -> Result<tonic::Streaming<conclave_proto::v3electionpb::LeaderResponse>, Error> {
        let mut service = ElectionClient::new(self.channel.clone());
        Ok(service
            .observe(LeaderRequest { name: name.into() })
            .await
            .map_err(Error::from_status)?
            .into_inner())
    }
}
