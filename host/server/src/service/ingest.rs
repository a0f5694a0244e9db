//! conclave's Ingest service: samples for aggregation rules, not through Raft. The member that
//! takes a request dates the samples that have no time, keeps them, and passes them on to every
//! other member at once, answering when each has answered (or given up on), so that every
//! member holds the samples of the windows the leader has not flushed yet (docs/PLUGINS.md).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use conclave_proto::conclavepb::{
    IngestRequest, IngestResponse, ingest_server::Ingest, member_request::Call,
};
use conclave_store::Access;
use tonic::{Request, Response, Status};

use crate::clock::now_ms;
use crate::node::Node;
use crate::plugin::{Plugins, Sample};

/// The longest series name: longer ones are refused (a series names a key prefix).
const MAX_SERIES_BYTES: usize = 1024;
/// How long a member waits for another to take a request's samples.
const PASS_ON_TIMEOUT: Duration = Duration::from_secs(2);

pub struct IngestService {
    node: Arc<Node>,
    plugins: Arc<Plugins>,
}

impl IngestService {
    pub fn new(node: Arc<Node>, plugins: Arc<Plugins>) -> Self {
        Self { node, plugins }
    }

    /// Passes the request on to every other member, over the peer transport; how many took it.
    async fn pass_on(&self, request: &IngestRequest) -> u32 {
        let me = self.node.identity.member_id;
        let others: Vec<_> = self
            .node
            .cluster
            .membership()
            .members
            .into_iter()
            .filter(|(id, _)| *id != me)
            .map(|(_, member)| member)
            .collect();
        let sends = others.iter().map(|member| async move {
            let call = Call::Ingest(request.clone());
            let answer = self
                .node
                .cluster
                .ask::<IngestResponse>(member, call, PASS_ON_TIMEOUT)
                .await;
            matches!(answer, Ok(Ok(_)))
        });
        futures::future::join_all(sends)
            .await
            .into_iter()
            .filter(|took| *took)
            .count() as u32
    }

    /// Keeps checked and dated samples on this member (what another member passes on, too);
    /// the answer counts this member alone.
    pub fn keep(&self, request: &IngestRequest) -> IngestResponse {
        let accepted = request.samples.len() as u64;
        // One shared name per series per request: a batch is mostly a few series.
        let mut names: HashMap<&str, Arc<str>> = HashMap::new();
        let samples: Vec<Sample> = request
            .samples
            .iter()
            .map(|s| Sample {
                series: names
                    .entry(s.series.as_str())
                    .or_insert_with_key(|name| Arc::from(*name))
                    .clone(),
                value: s.value,
                time_ms: s.time_ms,
            })
            .collect();
        let dropped = self.plugins.samples.push(samples);
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "the ingest buffer is full: the oldest samples were dropped"
            );
        }
        IngestResponse {
            header: self.node.header(self.node.store.current_revision()),
            accepted,
            members: 1,
        }
    }
}

#[tonic::async_trait]
impl Ingest for IngestService {
    async fn push(
        &self,
        request: Request<IngestRequest>,
    ) -> Result<Response<IngestResponse>, Status> {
        let caller = self.node.auth.caller(&request)?;
        let mut request = request.into_inner();
        // A sample feeds the rules whose prefixes match its series, as a put of that key
        // would: the caller must be allowed to write the series as a key. Checked once per
        // series, before anything is kept.
        let mut checked: HashSet<&str> = HashSet::new();
        for sample in &request.samples {
            if sample.series.is_empty() || sample.series.len() > MAX_SERIES_BYTES {
                return Err(Status::invalid_argument(format!(
                    "conclave: ingest: a series name is 1 to {MAX_SERIES_BYTES} bytes"
                )));
            }
            if checked.insert(&sample.series) {
                caller.check(sample.series.as_bytes(), &[], Access::Write)?;
            }
        }
        drop(checked);
        // Dated once, here, so that every member places the sample in the same window.
        let now = now_ms();
        for sample in &mut request.samples {
            if sample.time_ms == 0 {
                sample.time_ms = now;
            }
        }
        // Kept here before the others hear of it: were this member the leader, a peer slow
        // to answer (paused, cut off) would otherwise hold the samples back past their
        // window's close, and the rule would drop them as late although every member took
        // them (robustness::windows found it).
        let mut response = self.keep(&request);
        response.members += self.pass_on(&request).await;
        Ok(Response::new(response))
    }
}
