//! The server's command line, with etcd's flag names so that etcd's docs and scripts carry over.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Parser)]
#[command(
    name = "conclave",
    version,
    about = "An etcd-compatible coordination store. With no flags: one member serving on 127.0.0.1:2379, data in ./default.conclave."
)]
pub struct Config {
    /// Human-readable name for this member.
    #[arg(long, default_value = "default", env = "ETCD_NAME")]
    pub name: String,

    /// Path to the data directory [default: ./<name>.conclave].
    #[arg(long, env = "ETCD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Comma-separated URLs to listen on for client traffic (gRPC and the JSON gateway).
    #[arg(
        long,
        default_value = "http://127.0.0.1:2379",
        env = "ETCD_LISTEN_CLIENT_URLS",
        value_delimiter = ','
    )]
    pub listen_client_urls: Vec<String>,

    /// Comma-separated client URLs to advertise to the rest of the cluster [default: the listen URLs].
    #[arg(long, env = "ETCD_ADVERTISE_CLIENT_URLS", value_delimiter = ',')]
    pub advertise_client_urls: Vec<String>,

    /// Initial cluster token; part of the member and cluster IDs.
    #[arg(
        long,
        default_value = "etcd-cluster",
        env = "ETCD_INITIAL_CLUSTER_TOKEN"
    )]
    pub initial_cluster_token: String,

    /// Log level filter (error, warn, info, debug, trace, or a tracing filter directive).
    #[arg(long, default_value = "info", env = "CONCLAVE_LOG")]
    pub log_level: String,

    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Config {
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("{}.conclave", self.name)))
    }

    pub fn advertise_client_urls(&self) -> Vec<String> {
        if self.advertise_client_urls.is_empty() {
            self.listen_client_urls.clone()
        } else {
            self.advertise_client_urls.clone()
        }
    }
}

/// The socket address an `http://host:port` URL names; `localhost` resolves to loopback.
pub async fn socket_addr(url: &str) -> anyhow::Result<SocketAddr> {
    let uri: http::Uri = url
        .parse()
        .with_context(|| format!("invalid URL {url:?}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => bail!("{url}: client TLS is not supported yet; use http://"),
        _ => bail!("{url}: URL must start with http://"),
    }
    let host = uri.host().with_context(|| format!("{url}: no host"))?;
    let port = uri.port_u16().with_context(|| format!("{url}: no port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    tokio::net::lookup_host((host, port))
        .await
        .with_context(|| format!("{url}: cannot resolve {host}"))?
        .next()
        .with_context(|| format!("{url}: {host} has no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn parses_client_urls() {
        assert_eq!(
            socket_addr("http://127.0.0.1:2379").await.unwrap(),
            "127.0.0.1:2379".parse().unwrap()
        );
        assert!(
            socket_addr("http://localhost:2379")
                .await
                .unwrap()
                .ip()
                .is_loopback()
        );
        assert!(socket_addr("127.0.0.1:2379").await.is_err());
        assert!(socket_addr("https://127.0.0.1:2379").await.is_err());
        assert!(socket_addr("http://127.0.0.1").await.is_err());
    }

    #[test]
    fn defaults_are_etcds() {
        let c = Config::parse_from(["conclave"]);
        assert_eq!(c.data_dir(), PathBuf::from("default.conclave"));
        assert_eq!(
            c.advertise_client_urls(),
            vec!["http://127.0.0.1:2379".to_string()]
        );
    }
}
