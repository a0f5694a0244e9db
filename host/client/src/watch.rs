//! Watch streams that survive their server: when the stream breaks (the member serving it
//! died, the connection dropped), the watcher reopens it, on another endpoint if the client
//! has several, from the revision after the last event it delivered, and drops anything it
//! has already delivered. So a consumer sees every event once, in order (etcd's resumable
//! guarantee, carried out for the caller).

use std::time::Duration;

use conclave_proto::etcdserverpb::{
    WatchCreateRequest, WatchRequest, WatchResponse, watch_client::WatchClient,
    watch_create_request::FilterType, watch_request::RequestUnion,
};
use conclave_proto::mvccpb::Event;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::client::Client;
use crate::error::Error;
use crate::options::prefix_range_end;

/// What to watch and how.
///
/// ```
/// use conclave_client::WatchOptions;
///
/// let options = WatchOptions::new().with_prefix().with_start_revision(42).with_prev_kv();
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Default)]
pub struct WatchOptions {
    range_end: Option<Vec<u8>>,
    prefix: bool,
    start_revision: i64,
    prev_kv: bool,
    no_put: bool,
    no_delete: bool,
    progress_notify: bool,
}

impl WatchOptions {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every key under the given key.
    pub fn with_prefix(mut self) -> Self {
        self.prefix = true;
        self
    }

    /// Keys in [key, end).
    pub fn with_range_end(mut self, end: impl Into<Vec<u8>>) -> Self {
        self.range_end = Some(end.into());
        self
    }

    /// Start at this revision (history first); 0 means from now.
    pub fn with_start_revision(mut self, revision: i64) -> Self {
        self.start_revision = revision;
        self
    }

    /// Send each event's previous key-value too.
    pub fn with_prev_kv(mut self) -> Self {
        self.prev_kv = true;
        self
    }

    /// Leave out puts.
    pub fn with_no_put(mut self) -> Self {
        self.no_put = true;
        self
    }

    /// Leave out deletes.
    pub fn with_no_delete(mut self) -> Self {
        self.no_delete = true;
        self
    }

    /// Have the server send progress notifications when idle.
    pub fn with_progress_notify(mut self) -> Self {
        self.progress_notify = true;
        self
    }

    fn create_request(&self, key: &[u8], start_revision: i64) -> WatchCreateRequest {
        let range_end = match (&self.range_end, self.prefix) {
            (Some(end), _) => end.clone(),
            (None, true) => prefix_range_end(key),
            (None, false) => Vec::new(),
        };
        let mut filters = Vec::new();
        if self.no_put {
            filters.push(FilterType::Noput as i32);
        }
        if self.no_delete {
            filters.push(FilterType::Nodelete as i32);
        }
        WatchCreateRequest {
            key: key.to_vec(),
            range_end,
            start_revision,
            prev_kv: self.prev_kv,
            progress_notify: self.progress_notify,
            filters,
            ..Default::default()
        }
    }
}

/// Responses of one watch, in order; see [`Client::watch`]. Ends with an error the watch
/// cannot survive (its start revision was compacted away); dropping it cancels the watch.
#[derive(Debug)]
pub struct WatchStream {
    responses: mpsc::Receiver<Result<WatchResponse, Error>>,
    task: tokio::task::JoinHandle<()>,
}

impl WatchStream {
    /// The next response with events (or a progress notification), None once it has ended.
    pub async fn message(&mut self) -> Option<Result<WatchResponse, Error>> {
        self.responses.recv().await
    }
}

impl Drop for WatchStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Client {
    /// Watches a key or a range.
    ///
    /// ```no_run
    /// use conclave_client::{Client, WatchOptions};
    ///
    /// # async fn demo(client: Client) -> Result<(), conclave_client::Error> {
    /// let mut watch = client.watch("/services/", WatchOptions::new().with_prefix()).await?;
    /// while let Some(resp) = watch.message().await {
    ///     for event in resp?.events {
    ///         println!("{:?} {:?}", event.r#type, event.kv.map(|kv| kv.key));
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn watch(
        &self,
        key: impl Into<Vec<u8>>,
        options: WatchOptions,
    ) -> Result<WatchStream, Error> {
        let key = key.into();
        let (tx, responses) = mpsc::channel(64);
        // The first stream is opened here, so that a watch that cannot start says so now.
        let first = open(self, options.create_request(&key, options.start_revision)).await?;
        let task = tokio::spawn(follow(self.clone(), key, options, first, tx));
        Ok(WatchStream { responses, task })
    }
}

/// An open stream: its responses, the sender that keeps its request side open, and the
/// store revision when its watcher was created.
struct Opened {
    responses: tonic::Streaming<WatchResponse>,
    _requests: mpsc::Sender<WatchRequest>,
    created_at: i64,
}

/// Opens a stream with one watcher and waits for its creation.
async fn open(client: &Client, create: WatchCreateRequest) -> Result<Opened, Error> {
    let (requests, rx) = mpsc::channel(1);
    // In before the call: an etcd server answers the call's headers with its first response.
    let _ = requests
        .send(WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(create)),
        })
        .await;
    let mut responses = WatchClient::new(client.channel.clone())
        .watch(ReceiverStream::new(rx))
        .await
        .map_err(Error::from_status)?
        .into_inner();
    match responses.message().await {
        Ok(Some(resp)) if resp.created && !resp.canceled => Ok(Opened {
            responses,
            _requests: requests,
            created_at: resp.header.map_or(0, |h| h.revision),
        }),
        Ok(Some(resp)) => Err(Error::Status {
            code: tonic::Code::FailedPrecondition,
            message: resp.cancel_reason,
        }),
        Ok(None) => Err(Error::Status {
            code: tonic::Code::Unavailable,
            message: "the watch stream ended before it started".into(),
        }),
        Err(status) => Err(Error::from_status(status)),
    }
}

fn revision_of(e: &Event) -> i64 {
    e.kv.as_ref().map_or(0, |kv| kv.mod_revision)
}

/// Delivers responses, reopening the stream where it broke.
async fn follow(
    client: Client,
    key: Vec<u8>,
    options: WatchOptions,
    first: Opened,
    out: mpsc::Sender<Result<WatchResponse, Error>>,
) {
    // Every event below `next` has been delivered; a watch "from now" starts after the
    // revision its watcher was created at.
    let mut next = match options.start_revision {
        0 => first.created_at + 1,
        start => start,
    };
    let mut current = Some(first);
    loop {
        let mut opened = match current.take() {
            Some(stream) => stream,
            None => match open(&client, options.create_request(&key, next)).await {
                Ok(stream) => stream,
                Err(e) if e.code() == Some(tonic::Code::FailedPrecondition) => {
                    let _ = out.send(Err(e)).await;
                    return;
                }
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
        };
        // Until the stream breaks; then it is reopened from `next`.
        while let Ok(Some(mut resp)) = opened.responses.message().await {
            if resp.compact_revision != 0 || resp.canceled {
                let message = if resp.compact_revision != 0 {
                    crate::messages::COMPACTED.to_string()
                } else {
                    resp.cancel_reason
                };
                let _ = out
                    .send(Err(Error::Status {
                        code: tonic::Code::OutOfRange,
                        message,
                    }))
                    .await;
                return;
            }
            if resp.events.is_empty() {
                // A progress notification: nothing up to its revision is pending.
                if let Some(h) = &resp.header {
                    next = next.max(h.revision + 1);
                }
            } else {
                // After a reopen, history may repeat what was delivered: drop it.
                resp.events.retain(|e| revision_of(e) >= next);
                match resp.events.last() {
                    Some(last) => next = revision_of(last) + 1,
                    None => continue,
                }
            }
            if out.send(Ok(resp)).await.is_err() {
                return;
            }
        }
    }
}
