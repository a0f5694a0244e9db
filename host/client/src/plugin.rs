//! conclave's Plugin and Ingest services (not part of etcd's API): deploy a WASM rule plugin
//! into the running cluster, inspect it, roll it back or remove it; send it samples.

use std::time::Duration;

use conclave_proto::conclavepb::{
    IngestRequest, IngestResponse, IngestSample, PluginDeployRequest, PluginDeployResponse,
    PluginListRequest, PluginLogLine, PluginLogsRequest, PluginRemoveRequest,
    PluginRollbackRequest, PluginSpec, PluginStatus, PluginStatusRequest,
    ingest_client::IngestClient, plugin_client::PluginClient,
};
use tonic::transport::Channel;

use crate::client::Client;
use crate::error::Error;

/// The largest component a deploy sends, with room for the rest of the request.
const MAX_SEND_BYTES: usize = 9 * 1024 * 1024;

/// Limits and config for [`Client::plugin_deploy`]; unset ones take the server's defaults
/// (64 MiB of memory, 100 ms per call, no fuel bound).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeployOptions {
    config: String,
    memory_limit_bytes: u64,
    timeout: Option<Duration>,
    fuel: u64,
}

impl DeployOptions {
    pub fn new() -> Self {
        Self::default()
    }

    /// The plugin's config, JSON text.
    pub fn with_config(mut self, json: impl Into<String>) -> Self {
        self.config = json.into();
        self
    }

    pub fn with_memory_limit(mut self, bytes: u64) -> Self {
        self.memory_limit_bytes = bytes;
        self
    }

    /// How long one call into the plugin may run.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Fuel per call: a deterministic bound on the work one call may do.
    pub fn with_fuel(mut self, fuel: u64) -> Self {
        self.fuel = fuel;
        self
    }
}

impl Client {
    fn plugins(&self) -> PluginClient<Channel> {
        PluginClient::new(self.channel.clone())
            .max_encoding_message_size(MAX_SEND_BYTES)
            .max_decoding_message_size(MAX_SEND_BYTES)
    }

    /// Deploys `wasm` (a component built for wasm32-wasip2) as plugin `name`: the server
    /// compiles it and runs its init with the config first, and refuses it, storing nothing,
    /// if either fails. A plugin of that name already running is replaced at its next window
    /// boundary. Answers the stored version.
    ///
    /// ```no_run
    /// # async fn demo(client: conclave_client::Client) -> Result<(), conclave_client::Error> {
    /// use conclave_client::DeployOptions;
    /// let wasm = std::fs::read("rollup.wasm").expect("the plugin");
    /// let config = r#"{"source_prefix": "/metrics/", "target_prefix": "/rollup/", "resolution": "10s"}"#;
    /// let spec = client.plugin_deploy("rollup", wasm, DeployOptions::new().with_config(config)).await?;
    /// println!("rollup version {}", spec.version);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn plugin_deploy(
        &self,
        name: &str,
        wasm: Vec<u8>,
        options: DeployOptions,
    ) -> Result<PluginSpec, Error> {
        let req = PluginDeployRequest {
            name: name.to_string(),
            wasm,
            config: options.config,
            memory_limit_bytes: options.memory_limit_bytes,
            timeout_ms: options.timeout.map_or(0, |t| t.as_millis() as u64),
            fuel: options.fuel,
        };
        let resp: PluginDeployResponse = self
            .call(|| {
                let mut plugins = self.plugins();
                let req = self.request(req.clone());
                async move { plugins.deploy(req).await }
            })
            .await?;
        Ok(resp.spec.unwrap_or_default())
    }

    /// Every plugin with its state on the leader.
    pub async fn plugin_list(&self) -> Result<Vec<PluginStatus>, Error> {
        let resp = self
            .call(|| {
                let mut plugins = self.plugins();
                let req = self.request(PluginListRequest {});
                async move { plugins.list(req).await }
            })
            .await?;
        Ok(resp.plugins)
    }

    /// One plugin: version, state on the leader, last error, flush mark and counters.
    pub async fn plugin_status(&self, name: &str) -> Result<PluginStatus, Error> {
        let req = PluginStatusRequest {
            name: name.to_string(),
        };
        let resp = self
            .call(|| {
                let mut plugins = self.plugins();
                let req = self.request(req.clone());
                async move { plugins.status(req).await }
            })
            .await?;
        Ok(resp.status.unwrap_or_default())
    }

    /// The leader's recent log lines of a plugin, oldest first.
    pub async fn plugin_logs(&self, name: &str) -> Result<Vec<PluginLogLine>, Error> {
        let req = PluginLogsRequest {
            name: name.to_string(),
        };
        let resp = self
            .call(|| {
                let mut plugins = self.plugins();
                let req = self.request(req.clone());
                async move { plugins.logs(req).await }
            })
            .await?;
        Ok(resp.lines)
    }

    /// Goes back to the version before the current one; answers it.
    pub async fn plugin_rollback(&self, name: &str) -> Result<PluginSpec, Error> {
        let req = PluginRollbackRequest {
            name: name.to_string(),
        };
        let resp = self
            .call(|| {
                let mut plugins = self.plugins();
                let req = self.request(req.clone());
                async move { plugins.rollback(req).await }
            })
            .await?;
        Ok(resp.spec.unwrap_or_default())
    }

    /// Stops the plugin and removes it (every version) from the cluster.
    pub async fn plugin_remove(&self, name: &str) -> Result<(), Error> {
        let req = PluginRemoveRequest {
            name: name.to_string(),
        };
        self.call(|| {
            let mut plugins = self.plugins();
            let req = self.request(req.clone());
            async move { plugins.remove(req).await }
        })
        .await?;
        Ok(())
    }

    /// Sends samples to conclave's Ingest service, for rules whose ingest prefixes match their
    /// series (not through Raft: the member passes them to every other member). A sample
    /// without a time (0) is dated by the member. Answers with the number of members that
    /// hold them now.
    ///
    /// ```no_run
    /// # async fn demo(client: conclave_client::Client) -> Result<(), conclave_client::Error> {
    /// use conclave_client::proto::conclavepb::IngestSample;
    /// let sample = IngestSample { series: "/metrics/cpu".into(), value: 0.5, time_ms: 0 };
    /// let resp = client.ingest(vec![sample]).await?;
    /// println!("{} samples on {} members", resp.accepted, resp.members);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn ingest(&self, samples: Vec<IngestSample>) -> Result<IngestResponse, Error> {
        let req = IngestRequest { samples };
        self.call(|| {
            let mut ingest =
                IngestClient::new(self.channel.clone()).max_encoding_message_size(usize::MAX);
            let req = self.request(req.clone());
            async move { ingest.push(req).await }
        })
        .await
    }
}
