//! The KV service: thin handlers that validate, then read from the store or propose a write,
//! and fill in the response header.

use std::sync::Arc;

use conclave_proto::conclavepb::command::Request as Command;
use conclave_proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, TxnRequest, TxnResponse, kv_server::Kv,
};
use conclave_store::{Response as StoreResponse, UnexpectedResponse};
use tonic::{Request, Response, Status};

use crate::auth::Caller;
use crate::error::answer;
use crate::node::Node;
use crate::validate;

#[derive(Clone)]
pub struct KvService {
    node: Arc<Node>,
}

impl KvService {
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }

    /// Proposes a write checked for `caller` (and checked again at apply) and takes the
    /// store's answer as the response its request gets, with the revision after it.
    async fn write<T>(&self, caller: &Caller, command: Command) -> Result<(T, i64), Status>
    where
        T: TryFrom<StoreResponse, Error = UnexpectedResponse>,
    {
        answer(self.node.router.propose_for(caller, command).await?)
    }
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(
        &self,
        request: Request<RangeRequest>,
    ) -> Result<Response<RangeResponse>, Status> {
        let caller = self.node.auth.caller(&request)?;
        let req = request.into_inner();
        validate::range(&req)?;
        caller.check_read(&req)?;
        self.node.check_readable()?;
        if !req.serializable {
            self.node.router.linearize().await?;
        }
        let mut resp = self.node.blocking(move |s| s.range(&req)).await?;
        resp.header = self.node.header(resp.header.map_or(0, |h| h.revision));
        Ok(Response::new(resp))
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let caller = self.node.auth.caller(&request)?;
        let req = request.into_inner();
        validate::put(&req)?;
        caller.check_put(&req)?;
        let (mut resp, revision): (PutResponse, i64) =
            self.write(&caller, Command::Put(req)).await?;
        resp.header = self.node.header(revision);
        Ok(Response::new(resp))
    }

    async fn delete_range(
        &self,
        request: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let caller = self.node.auth.caller(&request)?;
        let req = request.into_inner();
        validate::delete_range(&req)?;
        caller.check_delete(&req)?;
        let (mut resp, revision): (DeleteRangeResponse, i64) =
            self.write(&caller, Command::DeleteRange(req)).await?;
        resp.header = self.node.header(revision);
        Ok(Response::new(resp))
    }

    async fn txn(&self, request: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let caller = self.node.auth.caller(&request)?;
        let req = request.into_inner();
        validate::txn(&req, self.node.limits.max_txn_ops)?;
        caller.check_txn(&req)?;
        let (mut resp, revision): (TxnResponse, i64) =
            self.write(&caller, Command::Txn(req)).await?;
        resp.header = self.node.header(revision);
        Ok(Response::new(resp))
    }

    async fn compact(
        &self,
        request: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        let caller = self.node.auth.caller(&request)?;
        caller.require_root()?;
        let req = request.into_inner();
        let physical = req.physical;
        let at = req.revision;
        let (mut resp, revision): (CompactionResponse, i64) =
            self.write(&caller, Command::Compaction(req)).await?;
        if physical {
            self.node
                .blocking(move |s| {
                    s.wait_compacted(at);
                    Ok(())
                })
                .await?;
        }
        resp.header = self.node.header(revision);
        Ok(Response::new(resp))
    }
}
