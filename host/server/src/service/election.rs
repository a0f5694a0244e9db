//! etcd's v3election service: Campaign waits in line under `<name>/` (see `crate::recipe`);
//! the first key by create revision is the leader, its value the leader's proclamation.
//! Proclaim and Resign act only while the key is the one created at the leader key's
//! revision; Observe sends every change of leader or value, in order.

use std::sync::Arc;

use conclave_proto::conclavepb::command::Request as Command;
use conclave_proto::etcdserverpb::{
    Compare, DeleteRangeRequest, PutRequest, RequestOp, TxnRequest, TxnResponse,
    compare::{CompareResult, CompareTarget, TargetUnion},
    request_op,
};
use conclave_proto::mvccpb::KeyValue;
use conclave_proto::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderKey, LeaderRequest, LeaderResponse, ProclaimRequest,
    ProclaimResponse, ResignRequest, ResignResponse, election_server::Election,
};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::auth::Caller;
use crate::error::answer;
use crate::node::Node;
use crate::recipe;
use crate::watch::WatchHub;
use conclave_store::{Access, KeyRange};

/// etcd's errors, word for word.
const NOT_LEADER: &str = "election: not leader";
const NO_LEADER: &str = "election: no leader";
const MISSING_LEADER_KEY: &str = "\"leader\" field must be provided";

#[derive(Clone)]
pub struct ElectionService {
    node: Arc<Node>,
    hub: Arc<WatchHub>,
}

impl ElectionService {
    pub fn new(node: Arc<Node>, hub: Arc<WatchHub>) -> Self {
        Self { node, hub }
    }

    /// Runs `then` if `leader` still holds its key; whether it did.
    async fn while_leader(
        &self,
        caller: &Caller,
        leader: &LeaderKey,
        then: request_op::Request,
    ) -> Result<(bool, i64), Status> {
        let txn = TxnRequest {
            compare: vec![Compare {
                result: CompareResult::Equal as i32,
                target: CompareTarget::Create as i32,
                key: leader.key.clone(),
                target_union: Some(TargetUnion::CreateRevision(leader.rev)),
                ..Default::default()
            }],
            success: vec![RequestOp {
                request: Some(then),
            }],
            failure: Vec::new(),
        };
        // What etcd's recipe asks of its user: read the leader key, write what `then` writes;
        // checked here and again at apply.
        caller.check_txn(&txn)?;
        let (t, revision): (TxnResponse, i64) = answer(
            self.node
                .router
                .propose_for(caller, Command::Txn(txn))
                .await?,
        )?;
        Ok((t.succeeded, revision))
    }

    async fn proclaim_value(
        &self,
        caller: &Caller,
        leader: &LeaderKey,
        value: Vec<u8>,
    ) -> Result<i64, Status> {
        let put = request_op::Request::RequestPut(PutRequest {
            key: leader.key.clone(),
            value,
            lease: leader.lease,
            ..Default::default()
        });
        match self.while_leader(caller, leader, put).await? {
            (true, revision) => Ok(revision),
            (false, _) => Err(Status::unknown(NOT_LEADER)),
        }
    }

    /// The current leader's key-value, from this member's store.
    async fn current(node: &Arc<Node>, name: &[u8]) -> Result<Option<KeyValue>, Status> {
        let req = recipe::first_by_create(&recipe::prefix(name));
        let resp = node.blocking(move |store| store.range(&req)).await?;
        Ok(resp.kvs.into_iter().next())
    }
}

#[tonic::async_trait]
impl Election for ElectionService {
    async fn campaign(
        &self,
        request: Request<CampaignRequest>,
    ) -> Result<Response<CampaignResponse>, Status> {
        let caller = self.node.auth.caller(&request)?;
        let req = request.into_inner();
        let held = recipe::acquire(
            &self.node,
            &self.hub,
            &caller,
            &req.name,
            req.lease,
            req.value.clone(),
        )
        .await?;
        let leader = LeaderKey {
            name: req.name,
            key: held.key,
            rev: held.revision,
            lease: req.lease,
        };
        // A campaign on a key that was there already (the same lease) proclaims its value.
        let header = if held.created {
            held.header
        } else {
            let revision = self.proclaim_value(&caller, &leader, req.value).await?;
            self.node.header(revision)
        };
        Ok(Response::new(CampaignResponse {
            header,
            leader: Some(leader),
        }))
    }

    async fn proclaim(
        &self,
        request: Request<ProclaimRequest>,
    ) -> Result<Response<ProclaimResponse>, Status> {
        let caller = self.node.auth.caller(&request)?;
        let req = request.into_inner();
        let leader = req
            .leader
            .ok_or_else(|| Status::invalid_argument(MISSING_LEADER_KEY))?;
        let revision = self.proclaim_value(&caller, &leader, req.value).await?;
        Ok(Response::new(ProclaimResponse {
            header: self.node.header(revision),
        }))
    }

    async fn leader(
        &self,
        request: Request<LeaderRequest>,
    ) -> Result<Response<LeaderResponse>, Status> {
        let caller = self.node.auth.caller(&request)?;
        let name = request.into_inner().name;
        caller.check_range(&KeyRange::prefix(&name), Access::Read)?;
        self.node.router.linearize().await?;
        let kv = Self::current(&self.node, &name)
            .await?
            .ok_or_else(|| Status::unknown(NO_LEADER))?;
        Ok(Response::new(LeaderResponse {
            header: self.node.header(self.node.store.current_revision()),
            kv: Some(kv),
        }))
    }

    type ObserveStream = ReceiverStream<Result<LeaderResponse, Status>>;

    async fn observe(
        &self,
        request: Request<LeaderRequest>,
    ) -> Result<Response<Self::ObserveStream>, Status> {
        let caller = self.node.auth.caller(&request)?;
        let name = request.into_inner().name;
        caller.check_range(&KeyRange::prefix(&name), Access::Read)?;
        let (out, responses) = mpsc::channel(16);
        let node = self.node.clone();
        let mut applied = self.hub.subscribe();
        tokio::spawn(async move {
            // Every leader and value in turn: a change is a new (key, mod revision).
            let mut last: Option<(Vec<u8>, i64)> = None;
            loop {
                let kv = match Self::current(&node, &name).await {
                    Ok(kv) => kv,
                    Err(status) => {
                        let _ = out.send(Err(status)).await;
                        return;
                    }
                };
                if let Some(kv) = kv {
                    let now = (kv.key.clone(), kv.mod_revision);
                    if last.as_ref() != Some(&now) {
                        last = Some(now);
                        let resp = LeaderResponse {
                            header: node.header(node.store.current_revision()),
                            kv: Some(kv),
                        };
                        if out.send(Ok(resp)).await.is_err() {
                            return;
                        }
                    }
                }
                match applied.recv().await {
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return,
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(responses)))
    }

    async fn resign(
        &self,
        request: Request<ResignRequest>,
    ) -> Result<Response<ResignResponse>, Status> {
        let caller = self.node.auth.caller(&request)?;
        let leader = request
            .into_inner()
            .leader
            .ok_or_else(|| Status::invalid_argument(MISSING_LEADER_KEY))?;
        let delete = request_op::Request::RequestDeleteRange(DeleteRangeRequest {
            key: leader.key.clone(),
            ..Default::default()
        });
        // As etcd: resigning when no longer leader is not an error.
        let (_, revision) = self.while_leader(&caller, &leader, delete).await?;
        Ok(Response::new(ResignResponse {
            header: self.node.header(revision),
        }))
    }
}
