//! The gRPC connections a run shares: `--conns` HTTP/2 connections spread round-robin over the
//! endpoints, and the clients multiplexed over them (client i on connection i mod conns).

use std::time::Duration;

use anyhow::{Context, bail};
use conclave_proto::etcdserverpb::kv_client::KvClient;
use conclave_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use tonic::transport::{Channel, Endpoint};

/// Responses can be large (a range with no limit); etcd's own client accepts up to 2 GiB.
const MAX_RESPONSE_BYTES: usize = i32::MAX as usize;

pub struct Pool {
    channels: Vec<Channel>,
}

impl Pool {
    /// Opens `conns` connections now, so that an unreachable endpoint fails the run at once
    /// instead of showing up as errors in the results.
    /// Every request on them gives up after `timeout` (it then counts as an error).
    pub async fn connect(
        endpoints: &[String],
        conns: usize,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let urls = endpoint_urls(endpoints)?;
        let mut channels = Vec::with_capacity(conns);
        for url in urls.iter().cycle().take(conns) {
            channels.push(connect(url, Some(timeout)).await?);
        }
        Ok(Self { channels })
    }

    /// The KV client for client number `client`.
    pub fn kv(&self, client: usize) -> KvClient<Channel> {
        KvClient::new(self.channels[client % self.channels.len()].clone())
            .max_decoding_message_size(MAX_RESPONSE_BYTES)
    }
}

/// One connection to one endpoint, opened now.
pub async fn connect(url: &str, request_timeout: Option<Duration>) -> anyhow::Result<Channel> {
    let mut endpoint = Endpoint::from_shared(url.to_string())
        .with_context(|| format!("invalid endpoint {url:?}"))?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5))
        .http2_keep_alive_interval(Duration::from_secs(30));
    if let Some(timeout) = request_timeout {
        endpoint = endpoint.timeout(timeout);
    }
    endpoint
        .connect()
        .await
        .with_context(|| format!("cannot connect to {url}"))
}

pub fn maintenance(channel: Channel) -> MaintenanceClient<Channel> {
    MaintenanceClient::new(channel).max_decoding_message_size(MAX_RESPONSE_BYTES)
}

/// `host:port` or `http://host:port`, as etcdctl takes them, to `http://host:port`.
pub fn endpoint_urls(endpoints: &[String]) -> anyhow::Result<Vec<String>> {
    let mut urls = Vec::new();
    for e in endpoints.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
        let url = if e.starts_with("http://") {
            e.to_string()
        } else if e.starts_with("https://") || e.starts_with("unix") {
            bail!("endpoint {e}: only plain http:// endpoints are supported");
        } else {
            format!("http://{e}")
        };
        urls.push(url);
    }
    if urls.is_empty() {
        bail!("--endpoints: give at least one endpoint");
    }
    Ok(urls)
}

/// KV clients for `urls`, one each, connecting lazily: an endpoint that is down costs a
/// request (failing within `attempt_timeout`), not the run. For the probes.
pub fn lazy_kv_clients(
    urls: &[String],
    attempt_timeout: Duration,
) -> anyhow::Result<Vec<KvClient<Channel>>> {
    urls.iter()
        .map(|url| {
            let channel = Endpoint::from_shared(url.clone())
                .with_context(|| format!("invalid endpoint {url:?}"))?
                .tcp_nodelay(true)
                .connect_timeout(attempt_timeout)
                .timeout(attempt_timeout)
                .connect_lazy();
            Ok(KvClient::new(channel))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_take_etcdctl_forms() -> anyhow::Result<()> {
        let urls = endpoint_urls(&["127.0.0.1:2379".into(), " http://h:1 ".into()])?;
        assert_eq!(urls, vec!["http://127.0.0.1:2379", "http://h:1"]);
        assert!(endpoint_urls(&["https://h:1".into()]).is_err());
        assert!(endpoint_urls(&[String::new()]).is_err());
        Ok(())
    }
}
