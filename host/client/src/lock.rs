//! Locks and elections on etcd's v3lock and v3election services, each held under a lease
//! that a [`LeaseKeeper`](crate::LeaseKeeper) keeps alive for as long as the guard lives, so a process that dies
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
use crate::lease::HeldLease;
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
    /// Revoked on drop: that deletes the lock key, so the next holder need not wait the TTL.
    lease: HeldLease,
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
        self.lease.lost().await;
    }

    /// Releases the lock now.
    pub async fn unlock(self) -> Result<(), Error> {
        let mut service = LockClient::new(self.client.channel.clone());
        let released = service
            .unlock(self.client.request(UnlockRequest { key: self.key }))
            .await
            .map_err(Error::from_status);
        // The lease was the lock's alone.
        let _ = self.lease.revoke().await;
        released.map(|_| ())
    }
}

/// Runs a waiting call (Lock, Campaign) again while it fails for want of a server (the one
/// serving it died, no leader for a moment) and its lease is still kept alive; etcd's own
/// answers (the lease is gone, "concurrency: session is expired") end it.
async fn retry_while_alive<T, F, Fut>(
    lease: &HeldLease,
    mut call: F,
) -> Result<tonic::Response<T>, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    loop {
        match call().await {
            Err(status) if transient(&status) && lease.alive() => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            other => return other,
        }
    }
}

fn transient(status: &tonic::Status) -> bool {
    match status.code() {
        tonic::Code::Unavailable => true,
        // A connection reset mid-call; not one of etcd's recipe answers.
        tonic::Code::Unknown => {
            let m = status.message();
            !(m.starts_with("concurrency:") || m.starts_with("election:"))
        }
        _ => false,
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
    /// Revoked on drop: that deletes the leader key, so the next candidate leads at once.
    lease: HeldLease,
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
        self.lease.lost().await;
    }

    /// Steps down now: the next candidate leads at once.
    pub async fn resign(self) -> Result<(), Error> {
        let mut service = ElectionClient::new(self.client.channel.clone());
        let resigned = service
            .resign(self.client.request(ResignRequest {
                leader: Some(self.leader),
            }))
            .await
            .map_err(Error::from_status);
        let _ = self.lease.revoke().await;
        resigned.map(|_| ())
    }
}

impl Client {
    /// Waits for the lock `name` and holds it under a lease of `ttl` seconds kept alive by
    /// the returned guard.
    pub async fn lock(&self, name: impl Into<Vec<u8>>, ttl: i64) -> Result<LockGuard, Error> {
        let lease = HeldLease::grant(self, ttl).await?;
        let request = LockRequest {
            name: name.into(),
            lease: lease.id(),
        };
        // No request timeout: waiting for the lock is the point. A wait cut short by the
        // member serving it is taken up again elsewhere: with the same lease, the server
        // finds the key already made and keeps its place in line.
        let locked = retry_while_alive(&lease, || {
            let mut service = LockClient::new(self.channel.clone());
            let request = request.clone();
            async move { service.lock(request).await }
        })
        .await;
        let key = match locked {
            Ok(resp) => resp.into_inner().key,
            Err(status) => {
                let _ = lease.revoke().await;
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
            lease,
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
        let lease = HeldLease::grant(self, ttl).await?;
        let request = CampaignRequest {
            name: name.into(),
            lease: lease.id(),
            value: value.into(),
        };
        let won = retry_while_alive(&lease, || {
            let mut service = ElectionClient::new(self.channel.clone());
            let request = request.clone();
            async move { service.campaign(request).await }
        })
        .await;
        match won.map(|r| r.into_inner().leader) {
            Ok(Some(leader)) => Ok(Leadership {
                client: self.clone(),
                leader,
                lease,
            }),
            Ok(None) => Err(Error::Status {
                code: tonic::Code::Internal,
                message: "the campaign answered no leader key".into(),
            }),
            Err(status) => {
                let _ = lease.revoke().await;
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
            Err(status)
                if status.code() == tonic::Code::Unknown
                    && status.message() == crate::messages::ELECTION_NO_LEADER =>
            {
                Ok(None)
            }
            Err(status) => Err(Error::from_status(status)),
        }
    }

    /// Every change of leader (or of its value) in election `name`, in order, starting with
    /// the current one. The stream is reopened (on another endpoint, if the client has
    /// several) when it breaks; a change already delivered is not delivered again.
    pub async fn observe(&self, name: impl Into<Vec<u8>>) -> Result<ObserveStream, Error> {
        let name = name.into();
        let first = ElectionClient::new(self.channel.clone())
            .observe(LeaderRequest { name: name.clone() })
            .await
            .map_err(Error::from_status)?
            .into_inner();
        let (tx, changes) = tokio::sync::mpsc::channel(16);
        let client = self.clone();
        let task = tokio::spawn(async move {
            // The last (key, mod revision) delivered: a reopened stream starts by repeating
            // the current leader, which may be it.
            let mut last: Option<(Vec<u8>, i64)> = None;
            let mut stream = Some(first);
            loop {
                let mut current = match stream.take() {
                    Some(s) => s,
                    None => match ElectionClient::new(client.channel.clone())
                        .observe(LeaderRequest { name: name.clone() })
                        .await
                    {
                        Ok(s) => s.into_inner(),
                        Err(_) => {
                            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                            continue;
                        }
                    },
                };
                while let Ok(Some(resp)) = current.message().await {
                    let Some(kv) = &resp.kv else { continue };
                    let now = (kv.key.clone(), kv.mod_revision);
                    if last
                        .as_ref()
                        .is_some_and(|(k, r)| *k == now.0 && *r >= now.1)
                    {
                        continue;
                    }
                    last = Some(now);
                    if tx.send(resp).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(ObserveStream { changes, task })
    }
}

/// Leader changes of one election; see [`Client::observe`]. Dropping it stops observing.
#[derive(Debug)]
pub struct ObserveStream {
    changes: tokio::sync::mpsc::Receiver<conclave_proto::v3electionpb::LeaderResponse>,
    task: tokio::task::JoinHandle<()>,
}

impl ObserveStream {
    /// The next leader (or new value); None once observing has stopped.
    pub async fn message(&mut self) -> Option<conclave_proto::v3electionpb::LeaderResponse> {
        self.changes.recv().await
    }
}

impl Drop for ObserveStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}
