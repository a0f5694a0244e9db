//! The client itself: connecting to one endpoint or balancing over several, the KV and
//! Maintenance calls, per-request timeouts, and retrying requests that never left the client.

use std::error::Error as StdError;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use conclave_proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, CompactionRequest, CompactionResponse, DeleteRangeResponse,
    PutResponse, RangeResponse, StatusRequest, StatusResponse, TxnResponse,
    alarm_request::AlarmAction, kv_client::KvClient, maintenance_client::MaintenanceClient,
};
use tonic::transport::{Channel, Endpoint};

use crate::error::Error;
use crate::options::{DeleteOptions, GetOptions, PutOptions};
use crate::txn::Txn;

/// The largest response the client accepts, as etcd's Go client: anything a server can send.
const MAX_RECEIVE_BYTES: usize = i32::MAX as usize;
/// How long connecting to an endpoint may take unless [`ClientOptions`] says otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How a [`Client`] connects and how long its requests may take.
///
/// ```
/// use std::time::Duration;
/// use conclave_client::ClientOptions;
///
/// let options = ClientOptions::new()
///     .with_connect_timeout(Duration::from_secs(2))
///     .with_request_timeout(Duration::from_secs(5))
///     .with_keep_alive(Duration::from_secs(2), Duration::from_secs(6));
/// # let _ = options;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    connect_timeout: Duration,
    request_timeout: Option<Duration>,
    keep_alive: Option<(Duration, Duration)>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: None,
            keep_alive: None,
        }
    }
}

impl ClientOptions {
    /// The defaults: a [`DEFAULT_CONNECT_TIMEOUT`] to connect, no request timeout, no HTTP/2
    /// keep-alive pings.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long connecting to one endpoint may take.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long each request may take, retries included; past it the call fails with
    /// [`Error::Timeout`] and the server is told to give up too (gRPC deadline).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = Some(timeout);
        self
    }

    /// Sends an HTTP/2 ping every `interval`, and drops a connection whose ping is not answered
    /// within `timeout`, so a dead server is noticed even while the client is idle.
    pub fn with_keep_alive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.keep_alive = Some((interval, timeout));
        self
    }

    /// The configured request timeout.
    pub fn request_timeout(&self) -> Option<Duration> {
        self.request_timeout
    }

    fn endpoint(&self, endpoint: &str) -> Result<Endpoint, Error> {
        let invalid = |reason: String| Error::InvalidEndpoint {
            endpoint: endpoint.to_string(),
            reason,
        };
        let uri = match endpoint.split_once("://") {
            None if endpoint.is_empty() => return Err(invalid("empty endpoint".into())),
            None => format!("http://{endpoint}"),
            Some(("http", _)) => endpoint.to_string(),
            Some(("https", _)) => return Err(invalid("TLS is not supported yet".into())),
            Some((scheme, _)) => return Err(invalid(format!("unsupported scheme {scheme:?}"))),
        };
        let mut ep = Endpoint::from_shared(uri)
            .map_err(|e| invalid(error_chain(&e)))?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true);
        if let Some((interval, timeout)) = self.keep_alive {
            ep = ep
                .http2_keep_alive_interval(interval)
                .keep_alive_timeout(timeout)
                .keep_alive_while_idle(true);
        }
        Ok(ep)
    }
}

/// An async client for the etcd v3 API, cheap to clone (clones share the connections).
///
/// ```no_run
/// use conclave_client::{Client, GetOptions, PutOptions};
///
/// # async fn demo() -> Result<(), conclave_client::Error> {
/// let client = Client::connect(["127.0.0.1:2379"]).await?;
/// client.put("greeting", "hello", PutOptions::new()).await?;
/// let resp = client.get("greeting", GetOptions::new()).await?;
/// assert_eq!(resp.kvs[0].value, b"hello");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    /// The connections (one endpoint's, or balanced over several): other services use them.
    pub(crate) channel: Channel,
    kv: KvClient<Channel>,
    maintenance: MaintenanceClient<Channel>,
    endpoints: Arc<[String]>,
    options: ClientOptions,
    /// Extra attempts for a request whose connection could not be made: with several endpoints
    /// the balancer may pick a dead one, and such a request never reached any server.
    retries: usize,
}

impl Client {
    /// Connects with the default [`ClientOptions`]. Endpoints are `host:port` or
    /// `http://host:port`.
    ///
    /// With one endpoint the connection is made now, and a failure is reported now. With
    /// several, requests are balanced over them; connecting fails only if none answers, and a
    /// request that finds its endpoint down is retried on another.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), conclave_client::Error> {
    /// let client = conclave_client::Client::connect([
    ///     "127.0.0.1:2379",
    ///     "http://127.0.0.1:22379",
    /// ])
    /// .await?;
    /// # let _ = client;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(
        endpoints: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> Result<Client, Error> {
        Client::connect_with(endpoints, ClientOptions::default()).await
    }

    /// Connects with the given options; see [`Client::connect`].
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use conclave_client::{Client, ClientOptions};
    ///
    /// # async fn demo() -> Result<(), conclave_client::Error> {
    /// let options = ClientOptions::new().with_connect_timeout(Duration::from_secs(1));
    /// let client = Client::connect_with(["127.0.0.1:2379"], options).await?;
    /// # let _ = client;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect_with(
        endpoints: impl IntoIterator<Item = impl AsRef<str>>,
        options: ClientOptions,
    ) -> Result<Client, Error> {
        let names: Vec<String> = endpoints
            .into_iter()
            .map(|e| e.as_ref().trim().to_string())
            .collect();
        let eps = names
            .iter()
            .map(|name| options.endpoint(name))
            .collect::<Result<Vec<_>, _>>()?;
        let channel = match eps.as_slice() {
            [] => return Err(Error::NoEndpoints),
            [one] => one.connect().await.map_err(|e| Error::Connect {
                failures: vec![(names.join(","), error_chain(&e))],
            })?,
            many => {
                let attempts = futures::future::join_all(many.iter().map(Endpoint::connect)).await;
                if attempts.iter().all(Result::is_err) {
                    let failures = names
                        .iter()
                        .zip(attempts)
                        .filter_map(|(name, r)| r.err().map(|e| (name.clone(), error_chain(&e))))
                        .collect();
                    return Err(Error::Connect { failures });
                }
                Channel::balance_list(eps.into_iter())
            }
        };
        let retries = if names.len() > 1 { 3 * names.len() } else { 0 };
        Ok(Client {
            channel: channel.clone(),
            kv: KvClient::new(channel.clone()).max_decoding_message_size(MAX_RECEIVE_BYTES),
            maintenance: MaintenanceClient::new(channel)
                .max_decoding_message_size(MAX_RECEIVE_BYTES),
            endpoints: names.into(),
            options,
            retries,
        })
    }

    /// The endpoints this client was made with, as given (trimmed).
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// The options this client was made with.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// Reads a key or a range of keys (etcd's Range).
    ///
    /// ```no_run
    /// use conclave_client::{Client, GetOptions};
    ///
    /// # async fn demo(client: Client) -> Result<(), conclave_client::Error> {
    /// let resp = client.get("/services/", GetOptions::new().with_prefix().with_keys_only()).await?;
    /// for kv in &resp.kvs {
    ///     println!("{}", String::from_utf8_lossy(&kv.key));
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get(
        &self,
        key: impl Into<Vec<u8>>,
        options: GetOptions,
    ) -> Result<RangeResponse, Error> {
        let req = options.into_request(key);
        self.call(|| {
            let mut kv = self.kv.clone();
            let req = self.request(req.clone());
            async move { kv.range(req).await }
        })
        .await
    }

    /// Writes a key.
    ///
    /// ```no_run
    /// use conclave_client::{Client, PutOptions};
    ///
    /// # async fn demo(client: Client) -> Result<(), conclave_client::Error> {
    /// let resp = client.put("k", "v2", PutOptions::new().with_prev_kv()).await?;
    /// if let Some(prev) = resp.prev_kv {
    ///     println!("was {:?}", prev.value);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn put(
        &self,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
        options: PutOptions,
    ) -> Result<PutResponse, Error> {
        let req = options.into_request(key, value);
        self.call(|| {
            let mut kv = self.kv.clone();
            let req = self.request(req.clone());
            async move { kv.put(req).await }
        })
        .await
    }

    /// Deletes a key or a range of keys (etcd's DeleteRange).
    ///
    /// ```no_run
    /// use conclave_client::{Client, DeleteOptions};
    ///
    /// # async fn demo(client: Client) -> Result<(), conclave_client::Error> {
    /// let resp = client.delete("/tmp/", DeleteOptions::new().with_prefix()).await?;
    /// println!("deleted {}", resp.deleted);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn delete(
        &self,
        key: impl Into<Vec<u8>>,
        options: DeleteOptions,
    ) -> Result<DeleteRangeResponse, Error> {
        let req = options.into_request(key);
        self.call(|| {
            let mut kv = self.kv.clone();
            let req = self.request(req.clone());
            async move { kv.delete_range(req).await }
        })
        .await
    }

    /// Runs a transaction.
    ///
    /// ```no_run
    /// use conclave_client::{Client, Compare, PutOptions, Txn, TxnOp};
    ///
    /// # async fn demo(client: Client) -> Result<(), conclave_client::Error> {
    /// let txn = Txn::new()
    ///     .when([Compare::version("leader").eq(0)])
    ///     .and_then([TxnOp::put("leader", "me", PutOptions::new())]);
    /// let won = client.txn(txn).await?.succeeded;
    /// # let _ = won;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn txn(&self, txn: Txn) -> Result<TxnResponse, Error> {
        let req = txn.into_request();
        self.call(|| {
            let mut kv = self.kv.clone();
            let req = self.request(req.clone());
            async move { kv.txn(req).await }
        })
        .await
    }

    /// Discards the history before `revision`. With `physical`, returns only once the old
    /// revisions are really gone.
    ///
    /// ```no_run
    /// # async fn demo(client: conclave_client::Client) -> Result<(), conclave_client::Error> {
    /// client.compact(1000, false).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn compact(
        &self,
        revision: i64,
        physical: bool,
    ) -> Result<CompactionResponse, Error> {
        let req = CompactionRequest { revision, physical };
        self.call(|| {
            let mut kv = self.kv.clone();
            let req = self.request(req);
            async move { kv.compact(req).await }
        })
        .await
    }

    /// The status of the member that serves the request (with several endpoints, whichever the
    /// balancer picks; connect to one endpoint to ask a given member).
    ///
    /// ```no_run
    /// # async fn demo(client: conclave_client::Client) -> Result<(), conclave_client::Error> {
    /// let status = client.status().await?;
    /// println!("version {}, leader {:x}", status.version, status.leader);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn status(&self) -> Result<StatusResponse, Error> {
        self.call(|| {
            let mut maintenance = self.maintenance.clone();
            let req = self.request(StatusRequest {});
            async move { maintenance.status(req).await }
        })
        .await
    }

    /// The active alarms of every member.
    ///
    /// ```no_run
    /// # async fn demo(client: conclave_client::Client) -> Result<(), conclave_client::Error> {
    /// for alarm in client.alarm_list().await?.alarms {
    ///     println!("member {:x}: alarm {}", alarm.member_id, alarm.alarm);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn alarm_list(&self) -> Result<AlarmResponse, Error> {
        let req = AlarmRequest {
            action: AlarmAction::Get.into(),
            member_id: 0,
            alarm: 0,
        };
        self.call(|| {
            let mut maintenance = self.maintenance.clone();
            let req = self.request(req);
            async move { maintenance.alarm(req).await }
        })
        .await
    }

    /// The generated KV client on this client's connections, for anything not wrapped here.
    /// Requests made through it get neither the request timeout nor retries.
    pub fn kv_client(&self) -> KvClient<Channel> {
        self.kv.clone()
    }

    /// The generated Maintenance client on this client's connections (defragment, hash,
    /// snapshot, ...). Requests made through it get neither the request timeout nor retries.
    pub fn maintenance_client(&self) -> MaintenanceClient<Channel> {
        self.maintenance.clone()
    }

    pub(crate) fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(message);
        if let Some(timeout) = self.options.request_timeout {
            req.set_timeout(timeout);
        }
        req
    }

    /// Runs one RPC under the request timeout, retrying it while it fails before reaching any
    /// server (so retrying cannot apply a write twice).
    pub(crate) async fn call<T, F, Fut>(&self, mut attempt: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let retries = self.retries;
        let timeout = self.options.request_timeout;
        let run = async move {
            let mut left = retries;
            loop {
                match attempt().await {
                    Ok(resp) => return Ok(resp.into_inner()),
                    Err(status) if left > 0 && has_source::<tonic::ConnectError>(&status) => {
                        left -= 1;
                    }
                    // tonic enforces the deadline sent with the request too, and may notice
                    // first: the same timeout either way.
                    Err(status) if has_source::<tonic::TimeoutExpired>(&status) => {
                        return Err(
                            timeout.map_or_else(|| Error::from_status(status), Error::Timeout)
                        );
                    }
                    Err(status) => return Err(Error::from_status(status)),
                }
            }
        };
        match timeout {
            Some(timeout) => match tokio::time::timeout(timeout, run).await {
                Ok(result) => result,
                Err(_) => Err(Error::Timeout(timeout)),
            },
            None => run.await,
        }
    }
}

/// Whether the status was caused by an error of type `E`: a [`tonic::ConnectError`] means the
/// request never reached a server, a [`tonic::TimeoutExpired`] that the deadline passed.
fn has_source<E: StdError + 'static>(status: &tonic::Status) -> bool {
    let mut source = StdError::source(status);
    while let Some(e) = source {
        if e.is::<E>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// An error and its causes on one line, without repeating a cause already in the text.
fn error_chain(e: &dyn StdError) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_accept_host_port_and_http() {
        let options = ClientOptions::new();
        let ep = options
            .endpoint("127.0.0.1:2379")
            .map(|e| e.uri().to_string());
        assert_eq!(ep.ok().as_deref(), Some("http://127.0.0.1:2379/"));
        let ep = options
            .endpoint("http://localhost:2379")
            .map(|e| e.uri().to_string());
        assert_eq!(ep.ok().as_deref(), Some("http://localhost:2379/"));
    }

    #[test]
    fn endpoints_refuse_tls_and_other_schemes() {
        let options = ClientOptions::new();
        for bad in ["https://h:1", "unix:///tmp/s", "", "http://"] {
            assert!(
                matches!(options.endpoint(bad), Err(Error::InvalidEndpoint { .. })),
                "{bad:?} should be refused"
            );
        }
    }

    #[tokio::test]
    async fn connecting_with_no_endpoints_fails() {
        let none: [&str; 0] = [];
        assert!(matches!(
            Client::connect(none).await,
            Err(Error::NoEndpoints)
        ));
    }

    #[tokio::test]
    async fn connecting_to_nothing_reports_every_endpoint() {
        // Port 1 on loopback: nothing listens there, the connection is refused at once.
        let err = Client::connect(["127.0.0.1:1", "127.0.0.1:1"]).await.err();
        match err {
            Some(Error::Connect { failures }) => assert_eq!(failures.len(), 2),
            other => panic!("expected a connect error, got {other:?}"),
        }
    }
}
