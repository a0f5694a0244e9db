//! The Cluster service: the membership as etcd reports it, and changes to it with etcd's rules
//! and errors. Changes run on the leader; a follower checks the caller, then passes them on to
//! it over the peer transport (`member_calls`), as etcd does over its peer links.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use conclave_proto::conclavepb::member_request::Call;
use conclave_proto::etcdserverpb::{
    Member, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse,
    MemberUpdateRequest, MemberUpdateResponse, cluster_server::Cluster,
};
use conclave_raft::Member as RaftMember;
use tonic::{Code, Request, Response, Status};

use crate::cluster_view::MembershipChange;
use crate::config::peer_addr;
use crate::ids;
use crate::node::Node;

/// etcd's default limit on learners.
const MAX_LEARNERS: usize = 1;
/// A learner is "in sync" when it has at least this share of the leader's log, as in etcd.
const PROMOTE_READY_RATIO: f64 = 0.9;

fn member_not_found() -> Status {
    Status::not_found("etcdserver: member not found")
}

#[derive(Clone)]
pub struct ClusterService {
    node: Arc<Node>,
}

impl ClusterService {
    pub fn new(node: Arc<Node>) -> Self {
        Self { node }
    }

    /// The membership: (voter ids, every member by id).
    fn membership(&self) -> (BTreeSet<u64>, BTreeMap<u64, RaftMember>) {
        let m = self.node.cluster.membership();
        (m.voters, m.members)
    }

    /// Every member, voters and learners, as etcd's Member messages.
    pub fn members(&self) -> Vec<Member> {
        let (voters, nodes) = self.membership();
        nodes
            .iter()
            .map(|(id, node)| to_etcd(*id, node, !voters.contains(id)))
            .collect()
    }

    async fn change(&self, change: MembershipChange) -> Result<(), Status> {
        Ok(self.node.change_membership(change).await?)
    }

    fn header(&self) -> Option<conclave_proto::etcdserverpb::ResponseHeader> {
        self.node.header(self.node.store.current_revision())
    }
}

fn to_etcd(id: u64, m: &RaftMember, is_learner: bool) -> Member {
    Member {
        id,
        name: m.name.clone(),
        peer_ur_ls: m.peer_urls.clone(),
        client_ur_ls: m.client_urls.clone(),
        is_learner,
    }
}

/// etcd's checks on peer URLs: present, well-formed, and (for QUIC) https.
async fn check_peer_urls(urls: &[String]) -> Result<(), Status> {
    if urls.is_empty() {
        return Err(Status::invalid_argument(
            "etcdserver: peer URLs are not provided",
        ));
    }
    for url in urls {
        peer_addr(url)
            .await
            .map_err(|e| Status::invalid_argument(format!("etcdserver: {e:#}")))?;
    }
    Ok(())
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        request: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        self.node.auth.caller(&request)?.require_root()?;
        let req = request.into_inner();
        if !self.node.cluster.is_leader() {
            return self
                .node
                .cluster
                .ask_leader(Call::MemberAdd(req))
                .await
                .map(Response::new)
                .map_err(Status::from);
        }
        self.add(req).await.map(Response::new)
    }

    async fn member_remove(
        &self,
        request: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        self.node.auth.caller(&request)?.require_root()?;
        let req = request.into_inner();
        if !self.node.cluster.is_leader() {
            return self
                .node
                .cluster
                .ask_leader(Call::MemberRemove(req))
                .await
                .map(Response::new)
                .map_err(Status::from);
        }
        self.remove(req).await.map(Response::new)
    }

    async fn member_update(
        &self,
        request: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        self.node.auth.caller(&request)?.require_root()?;
        let req = request.into_inner();
        if !self.node.cluster.is_leader() {
            return self
                .node
                .cluster
                .ask_leader(Call::MemberUpdate(req))
                .await
                .map(Response::new)
                .map_err(Status::from);
        }
        self.update(req).await.map(Response::new)
    }

    async fn member_list(
        &self,
        request: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        if request.into_inner().linearizable {
            self.node.router.linearize().await?;
        }
        Ok(Response::new(MemberListResponse {
            header: self.header(),
            members: self.members(),
        }))
    }

    async fn member_promote(
        &self,
        request: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        self.node.auth.caller(&request)?.require_root()?;
        let req = request.into_inner();
        if !self.node.cluster.is_leader() {
            return self
                .node
                .cluster
                .ask_leader(Call::MemberPromote(req))
                .await
                .map(Response::new)
                .map_err(Status::from);
        }
        self.promote(req).await.map(Response::new)
    }
}

/// The changes themselves, on the leader: for its own clients, and for a follower's (checked
/// there) through `member_calls`.
impl ClusterService {
    pub async fn add(&self, req: MemberAddRequest) -> Result<MemberAddResponse, Status> {
        check_peer_urls(&req.peer_ur_ls).await?;
        let (voters, nodes) = self.membership();
        let taken = nodes
            .values()
            .any(|n| n.peer_urls.iter().any(|u| req.peer_ur_ls.contains(u)));
        if taken {
            return Err(Status::failed_precondition(
                "etcdserver: Peer URLs already exists",
            ));
        }
        let learners = nodes.keys().filter(|id| !voters.contains(id)).count();
        if req.is_learner && learners >= MAX_LEARNERS {
            return Err(Status::failed_precondition(
                "etcdserver: too many learner members",
            ));
        }
        let id = ids::member_id(&req.peer_ur_ls, &self.node.token);
        let member = RaftMember {
            name: String::new(),
            peer_urls: req.peer_ur_ls.clone(),
            client_urls: Vec::new(),
        };
        if req.is_learner {
            self.change(MembershipChange::AddLearner(id, member.clone()))
                .await?;
        } else {
            self.change(MembershipChange::AddVoter(id, member.clone()))
                .await?;
        }
        Ok(MemberAddResponse {
            header: self.header(),
            member: Some(to_etcd(id, &member, req.is_learner)),
            members: self.members(),
        })
    }

    pub async fn remove(&self, req: MemberRemoveRequest) -> Result<MemberRemoveResponse, Status> {
        let (voters, nodes) = self.membership();
        if !nodes.contains_key(&req.id) {
            return Err(member_not_found());
        }
        if voters.contains(&req.id) {
            if voters.len() == 1 {
                return Err(Status::failed_precondition(
                    "etcdserver: re-configuration failed due to not enough started members",
                ));
            }
            // Removing a voter drops it from the nodes too (see Node::change_membership).
            self.change(MembershipChange::RemoveVoter(req.id)).await?;
        } else {
            self.change(MembershipChange::RemoveLearner(req.id)).await?;
        }
        Ok(MemberRemoveResponse {
            header: self.header(),
            members: self.members(),
        })
    }

    pub async fn update(&self, req: MemberUpdateRequest) -> Result<MemberUpdateResponse, Status> {
        check_peer_urls(&req.peer_ur_ls).await?;
        let (_, nodes) = self.membership();
        let mut member = nodes.get(&req.id).cloned().ok_or_else(member_not_found)?;
        let taken = nodes
            .iter()
            .any(|(id, n)| *id != req.id && n.peer_urls.iter().any(|u| req.peer_ur_ls.contains(u)));
        if taken {
            return Err(Status::failed_precondition(
                "etcdserver: Peer URLs already exists",
            ));
        }
        member.peer_urls = req.peer_ur_ls;
        self.change(MembershipChange::SetMember(req.id, member))
            .await?;
        Ok(MemberUpdateResponse {
            header: self.header(),
            members: self.members(),
        })
    }

    pub async fn promote(
        &self,
        req: MemberPromoteRequest,
    ) -> Result<MemberPromoteResponse, Status> {
        let (voters, nodes) = self.membership();
        if !nodes.contains_key(&req.id) {
            return Err(member_not_found());
        }
        if voters.contains(&req.id) {
            return Err(Status::new(
                Code::FailedPrecondition,
                "etcdserver: can only promote a learner member",
            ));
        }
        let in_sync = {
            let progress = self.node.cluster.progress();
            let matched = progress.matched(req.id).unwrap_or(0);
            (matched as f64) >= (progress.last_log_index as f64) * PROMOTE_READY_RATIO
        };
        if !in_sync {
            return Err(Status::new(
                Code::FailedPrecondition,
                "etcdserver: can only promote a learner member which is in sync with leader",
            ));
        }
        self.change(MembershipChange::Promote(req.id)).await?;
        Ok(MemberPromoteResponse {
            header: self.header(),
            members: self.members(),
        })
    }
}
