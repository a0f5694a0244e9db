//! Service discovery: instances register themselves under a lease that lives as long as their
//! registration, and clients read the current instances and follow their changes. Entries are
//! in etcd's endpoints-manager format (`<service>/<instance>` = `{"Op":0,"Addr":...,
//! "Metadata":...}`), so Go gRPC resolvers built on etcd's naming package see them too.

use std::collections::BTreeMap;

use conclave_proto::mvccpb::event::EventType;
use serde::{Deserialize, Serialize};

use crate::client::Client;
use crate::error::Error;
use crate::lease::HeldLease;
use crate::options::{GetOptions, PutOptions};
use crate::watch::{WatchOptions, WatchStream};

/// One registered instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// The instance's name (the last part of its key).
    pub name: String,
    pub address: String,
    pub metadata: serde_json::Value,
}

/// A change to a service's instances.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Registered, or re-registered with new details.
    Up(Instance),
    /// Deregistered, or its lease ran out.
    Down { name: String },
}

/// etcd's endpoints-manager value.
#[derive(Debug, Serialize, Deserialize)]
struct Update {
    #[serde(rename = "Op", default)]
    op: u8,
    #[serde(rename = "Addr")]
    addr: String,
    #[serde(rename = "Metadata", default)]
    metadata: serde_json::Value,
}

/// Registers and discovers services through one [`Client`].
///
/// ```no_run
/// use conclave_client::{Client, ServiceRegistry};
///
/// # async fn demo(client: Client) -> Result<(), conclave_client::Error> {
/// let registry = ServiceRegistry::new(client);
/// let _me = registry
///     .register("payments", "pay-1", "10.0.0.7:8443", serde_json::json!({"zone": "a"}), 10)
///     .await?;
/// let mut found = registry.discover("payments").await?;
/// println!("{:?}", found.instances());
/// while let Some(change) = found.next_change().await {
///     println!("{:?}", change?);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ServiceRegistry {
    client: Client,
}

/// A live registration: the entry exists while this lives (its lease is kept alive), and
/// is removed when it is dropped or deregistered.
#[derive(Debug)]
pub struct Registration {
    key: String,
    /// Revoked on drop: that deletes the entry.
    lease: HeldLease,
}

impl Registration {
    /// The entry's key, `<service>/<instance>`.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Resolves if the registration's lease is lost (the entry is gone).
    pub async fn lost(&self) {
        self.lease.lost().await;
    }

    /// Removes the entry now.
    pub async fn deregister(self) -> Result<(), Error> {
        self.lease.revoke().await
    }
}

/// A service's instances now, and their changes from then on.
#[derive(Debug)]
pub struct Discovery {
    prefix: String,
    instances: BTreeMap<String, Instance>,
    watch: WatchStream,
    pending: std::collections::VecDeque<Change>,
}

impl Discovery {
    /// The instances as of the last change returned.
    pub fn instances(&self) -> Vec<Instance> {
        self.instances.values().cloned().collect()
    }

    /// The next change (the instance list is updated before it is returned); None once the
    /// watch has ended.
    pub async fn next_change(&mut self) -> Option<Result<Change, Error>> {
        loop {
            if let Some(change) = self.pending.pop_front() {
                return Some(Ok(change));
            }
            let resp = match self.watch.message().await? {
                Ok(resp) => resp,
                Err(e) => return Some(Err(e)),
            };
            for event in resp.events {
                let Some(kv) = event.kv else { continue };
                let Some(name) = instance_name(&self.prefix, &kv.key) else {
                    continue;
                };
                if event.r#type == EventType::Delete as i32 {
                    self.instances.remove(&name);
                    self.pending.push_back(Change::Down { name });
                } else if let Some(instance) = parse(name.clone(), &kv.value) {
                    self.instances.insert(name, instance.clone());
                    self.pending.push_back(Change::Up(instance));
                } else {
                    // An entry that is not an endpoint (or an Op:1 delete marker) means gone.
                    if self.instances.remove(&name).is_some() {
                        self.pending.push_back(Change::Down { name });
                    }
                }
            }
        }
    }
}

fn instance_name(prefix: &str, key: &[u8]) -> Option<String> {
    let key = std::str::from_utf8(key).ok()?;
    key.strip_prefix(prefix).map(str::to_string)
}

fn parse(name: String, value: &[u8]) -> Option<Instance> {
    let update: Update = serde_json::from_slice(value).ok()?;
    (update.op == 0).then_some(Instance {
        name,
        address: update.addr,
        metadata: update.metadata,
    })
}

impl ServiceRegistry {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// Registers `instance` of `service` at `address` for as long as the returned
    /// registration lives, under a lease of `ttl` seconds (so a process that dies is gone
    /// within `ttl`).
    pub async fn register(
        &self,
        service: &str,
        instance: &str,
        address: &str,
        metadata: serde_json::Value,
        ttl: i64,
    ) -> Result<Registration, Error> {
        let lease = HeldLease::grant(&self.client, ttl).await?;
        let key = format!("{service}/{instance}");
        let value = serde_json::to_vec(&Update {
            op: 0,
            addr: address.to_string(),
            metadata,
        })
        .map_err(|e| Error::Status {
            code: tonic::Code::InvalidArgument,
            message: format!("metadata is not JSON: {e}"),
        })?;
        self.client
            .put(key.clone(), value, PutOptions::new().with_lease(lease.id()))
            .await?;
        Ok(Registration { key, lease })
    }

    /// The instances of `service` now, and a stream of their changes from that point on.
    pub async fn discover(&self, service: &str) -> Result<Discovery, Error> {
        let prefix = format!("{service}/");
        let now = self
            .client
            .get(prefix.clone(), GetOptions::new().with_prefix())
            .await?;
        let revision = now.header.as_ref().map_or(0, |h| h.revision);
        let instances = now
            .kvs
            .into_iter()
            .filter_map(|kv| {
                let name = instance_name(&prefix, &kv.key)?;
                Some((name.clone(), parse(name, &kv.value)?))
            })
            .collect();
        let watch = self
            .client
            .watch(
                prefix.clone(),
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(revision + 1),
            )
            .await?;
        Ok(Discovery {
            prefix,
            instances,
            watch,
            pending: Default::default(),
        })
    }
}
