//! Executing write commands inside one apply batch: puts and deletes numbered by revision,
//! txns with compares, nested txns, and reads that see the batch's own earlier writes. Every
//! revision gets a commit time from the proposing leader's stamp, never below the previous
//! revision's. The plugin registry's commands live in `plugin.rs`; they write through here.

use std::collections::HashSet;

use conclave_proto::conclavepb::CheckedFor;
use conclave_proto::conclavepb::command::Request;
use conclave_proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, Compare, DeleteRangeRequest, DeleteRangeResponse,
    LeaseCheckpointRequest, LeaseCheckpointResponse, LeaseGrantRequest, LeaseGrantResponse,
    LeaseRevokeRequest, LeaseRevokeResponse, PutRequest, PutResponse, RangeRequest, RangeResponse,
    RequestOp, ResponseHeader, ResponseOp, TxnRequest, TxnResponse,
    compare::{CompareResult, CompareTarget, TargetUnion},
    request_op, response_op,
};
use conclave_proto::mvccpb::{Event, KeyValue, event::EventType};

use crate::alarm::Alarms;
use crate::apply::{LeaseChange, Response};
use crate::auth::{Access, Auth};
use crate::backend::{Backend, Record};
use crate::error::{RequestError, Result};
use crate::index::{Change, KeyIndex};
use crate::key_range::KeyRange;
use crate::lease::{Leases, encode_lease, lease_key};
use crate::plugin::Registry;
use crate::read;
use crate::revision::Revision;

/// The in-memory part of the store that writes change.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub index: KeyIndex,
    pub current: i64,
    pub compacted: i64,
    pub applied: (u64, u64),
    /// The commit time of revision `current`, ms since the Unix epoch (0 before any stamp).
    pub time: i64,
    pub leases: Leases,
    pub plugins: Registry,
    pub alarms: Alarms,
    pub auth: Auth,
}

/// A compaction decided in this batch, to be carried out on disk once the batch is durable.
pub(crate) struct CompactionJob {
    pub at: i64,
    pub keep: HashSet<Revision>,
}

/// Writes of one apply batch: the records go into one fjall batch; until it commits, they
/// are also kept here so later commands of the batch can read them.
pub(crate) struct BatchWriter<'a> {
    pub backend: &'a Backend,
    pub state: &'a mut State,
    pub batch: fjall::OwnedWriteBatch,
    /// Values this batch has put, in revision order (revisions only grow within a batch), so
    /// found by binary search: cheaper than hashing every put.
    pending: Vec<(Revision, KeyValue)>,
    pub compactions: Vec<CompactionJob>,
}

/// What one command did: its answer, and the changes watchers and the lessor hear of.
pub(crate) struct Executed {
    pub response: Response,
    pub events: Vec<Event>,
    pub leases: Vec<LeaseChange>,
}

/// Revision bookkeeping for one command: every change it makes shares `main`, and its time.
pub(crate) struct WriteTxn {
    pub main: i64,
    next_sub: i64,
    /// The commit time of `main`: the leader's stamp, or the previous revision's time if that
    /// is later (clocks differ between leaders), so that times never go backwards.
    pub time: i64,
    events: Vec<Event>,
    /// The lease changes, in order.
    leases: Vec<LeaseChange>,
}

impl WriteTxn {
    fn next_rev(&mut self) -> Revision {
        let rev = Revision::new(self.main, self.next_sub);
        self.next_sub += 1;
        rev
    }

    pub fn changed(&self) -> bool {
        self.next_sub > 0
    }

    /// The revision this command's reads see: its own changes once it has made some.
    fn read_rev(&self) -> i64 {
        if self.changed() {
            self.main
        } else {
            self.main - 1
        }
    }
}

fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision,
        ..Default::default()
    })
}

impl<'a> BatchWriter<'a> {
    pub fn new(backend: &'a Backend, state: &'a mut State) -> Self {
        let batch = backend.db.batch();
        Self {
            backend,
            state,
            batch,
            pending: Vec::new(),
            compactions: Vec::new(),
        }
    }

    /// Executes one command, `stamp_ms` being the proposing leader's clock and `checked_for`
    /// the caller a client's write was checked for (see [`Self::recheck`]). Request errors
    /// leave no trace; a storage error is fatal.
    pub fn execute(
        &mut self,
        request: &Request,
        stamp_ms: i64,
        checked_for: Option<&CheckedFor>,
    ) -> Result<Executed> {
        if let Some(caller) = checked_for {
            self.recheck(caller, request)?;
        }
        let mut txn = WriteTxn {
            main: self.state.current + 1,
            next_sub: 0,
            time: stamp_ms.max(self.state.time),
            events: Vec::new(),
            leases: Vec::new(),
        };
        if let Some(refused) = self.state.alarms.refuses(request) {
            return Err(refused.into());
        }
        let response = match request {
            Request::Put(put) => {
                self.check_put(put)?;
                Response::Put(self.put(&mut txn, put)?)
            }
            Request::DeleteRange(del) => Response::DeleteRange(self.delete_range(&mut txn, del)?),
            Request::Txn(t) => Response::Txn(self.txn(&mut txn, t)?),
            Request::Compaction(c) => Response::Compaction(self.compact(c)?),
            Request::LeaseGrant(g) => Response::LeaseGrant(self.lease_grant(&mut txn, g)?),
            Request::LeaseRevoke(r) => Response::LeaseRevoke(self.lease_revoke(&mut txn, r)?),
            Request::LeaseCheckpoint(c) => {
                Response::LeaseCheckpoint(self.lease_checkpoint(&mut txn, c))
            }
            Request::PluginDeploy(d) => Response::Plugin(self.plugin_deploy(d, txn.time)?),
            Request::PluginRemove(r) => Response::Plugin(self.plugin_remove(r)?),
            Request::PluginRollback(r) => Response::Plugin(self.plugin_rollback(r)?),
            Request::PluginFlush(f) => Response::Plugin(self.plugin_flush(&mut txn, f)?),
            Request::Alarm(a) => Response::Alarm(self.alarm(a)?),
            Request::Auth(a) => Response::Auth(self.auth(a)?),
        };
        if txn.changed() {
            self.state.current = txn.main;
            self.state.time = txn.time;
        }
        Ok(Executed {
            response,
            events: txn.events,
            leases: txn.leases,
        })
    }

    /// A client's write, checked again against the auth state in force now, with the rules
    /// the member that took it used: a permission revoked (or auth turned on, or the user
    /// removed) after that check and before this apply refuses the write on every member
    /// alike, as etcd's apply-time check does.
    fn recheck(&self, caller: &CheckedFor, request: &Request) -> Result<()> {
        let auth = &self.state.auth.current;
        if !auth.enabled {
            return Ok(());
        }
        let user = caller.user.as_str();
        if user.is_empty() {
            return Err(RequestError::UserEmpty.into());
        }
        if !auth.users.contains_key(user) {
            return Err(RequestError::PermissionDenied.into());
        }
        match request {
            Request::Put(p) => auth.check_put(user, p)?,
            Request::DeleteRange(d) => auth.check_delete(user, d)?,
            Request::Txn(t) => auth.check_txn(user, t)?,
            // Revoking deletes the lease's keys: each must be writable.
            Request::LeaseRevoke(r) if !auth.is_root(user) => {
                if let Some(lease) = self.state.leases.get(r.id) {
                    for key in &lease.keys {
                        auth.check(user, key, &[], Access::Write)?;
                    }
                }
            }
            // Any user may grant and revoke leases (their keys aside).
            Request::LeaseRevoke(_) | Request::LeaseGrant(_) => {}
            _ if auth.is_root(user) => {}
            _ => return Err(RequestError::PermissionDenied.into()),
        }
        Ok(())
    }

    fn load(&self, rev: Revision) -> Result<KeyValue> {
        match self.pending.binary_search_by_key(&rev, |(r, _)| *r) {
            Ok(i) => Ok(self.pending[i].1.clone()),
            Err(_) => Ok(self.backend.load_live(rev)?.kv),
        }
    }

    /// The live value of `key` as of this point in the batch.
    fn latest(&self, key: &[u8]) -> Result<Option<KeyValue>> {
        match self.state.index.get(key).and_then(|h| h.latest()) {
            Some(rev) => self.load(rev).map(Some),
            None => Ok(None),
        }
    }

    fn record(&mut self, rev: Revision, time: i64, tombstone: bool, kv: KeyValue) {
        let rec = Record {
            tombstone,
            time,
            kv,
        };
        self.batch
            .insert(&self.backend.kv, rev.to_key().to_vec(), rec.encode());
        if !tombstone {
            self.pending.push((rev, rec.kv));
        }
    }

    /// A put's preconditions, checked against the state before the command writes anything.
    fn check_put(&self, put: &PutRequest) -> Result<()> {
        self.check_put_granting(put, &HashSet::new())
    }

    /// [`Self::check_put`] for a command that grants the leases `granting` before its puts.
    fn check_put_granting(&self, put: &PutRequest, granting: &HashSet<i64>) -> Result<()> {
        if !put.ignore_lease
            && put.lease != 0
            && !self.state.leases.exists(put.lease)
            && !granting.contains(&put.lease)
        {
            return Err(RequestError::LeaseNotFound.into());
        }
        if (put.ignore_value || put.ignore_lease) && !self.is_live(&put.key) {
            return Err(RequestError::KeyNotFound.into());
        }
        Ok(())
    }

    fn is_live(&self, key: &[u8]) -> bool {
        self.state.index.get(key).is_some_and(|h| h.is_live())
    }

    fn put(&mut self, txn: &mut WriteTxn, put: &PutRequest) -> Result<PutResponse> {
        let prev = if put.prev_kv || put.ignore_value || put.ignore_lease {
            self.latest(&put.key)?
        } else {
            None
        };
        let value = match (&prev, put.ignore_value) {
            (Some(p), true) => p.value.clone(),
            _ => put.value.clone(),
        };
        let lease = match (&prev, put.ignore_lease) {
            (Some(p), true) => p.lease,
            _ => put.lease,
        };
        let rev = txn.next_rev();
        let (create_revision, version) = self.state.index.put(&put.key, rev);
        self.state.leases.attach(&put.key, lease);
        let kv = KeyValue {
            key: put.key.clone(),
            create_revision,
            mod_revision: rev.main,
            version,
            value,
            lease,
        };
        txn.events.push(Event {
            r#type: EventType::Put as i32,
            kv: Some(kv.clone()),
            prev_kv: None,
        });
        self.record(rev, txn.time, false, kv);
        Ok(PutResponse {
            header: header(rev.main),
            prev_kv: if put.prev_kv { prev } else { None },
        })
    }

    fn delete_range(
        &mut self,
        txn: &mut WriteTxn,
        del: &DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse> {
        let range = KeyRange::new(&del.key, &del.range_end);
        let victims: Vec<(Vec<u8>, Revision)> = self
            .state
            .index
            .visible(&range, txn.main)
            .map(|(k, r)| (k.to_vec(), r))
            .collect();
        let mut prev_kvs = Vec::new();
        if del.prev_kv {
            for (_, r) in &victims {
                prev_kvs.push(self.load(*r)?);
            }
        }
        for (key, _) in &victims {
            let rev = txn.next_rev();
            self.state.index.delete(key, rev);
            self.state.leases.detach(key);
            let kv = KeyValue {
                key: key.clone(),
                mod_revision: rev.main,
                ..Default::default()
            };
            txn.events.push(Event {
                r#type: EventType::Delete as i32,
                kv: Some(kv.clone()),
                prev_kv: None,
            });
            self.record(rev, txn.time, true, kv);
        }
        Ok(DeleteRangeResponse {
            header: header(txn.read_rev()),
            deleted: victims.len() as i64,
            prev_kvs,
        })
    }

    fn range_in_txn(&self, txn: &WriteTxn, req: &RangeRequest) -> Result<RangeResponse> {
        let at = match req.revision {
            r if r <= 0 => txn.read_rev(),
            r => r,
        };
        let plan = read::plan(&self.state.index, req, at);
        read::execute(
            plan,
            |revs| revs.iter().map(|rev| self.load(*rev)).collect(),
            req,
            txn.read_rev(),
        )
    }

    fn txn(&mut self, txn: &mut WriteTxn, t: &TxnRequest) -> Result<TxnResponse> {
        // As etcd: every compare, nested ones included, sees the state before the txn, and so
        // do the checks; only then do the chosen branches run.
        let mut path = Vec::new();
        self.compare_path(t, &mut path)?;
        let mut cursor = 0;
        self.check_branch(t, &path, &mut cursor)?;
        let mut cursor = 0;
        let mut resp = self.run_txn(txn, t, &path, &mut cursor)?;
        resp.header = header(txn.read_rev());
        Ok(resp)
    }

    fn compare_path(&self, t: &TxnRequest, path: &mut Vec<bool>) -> Result<()> {
        let mut ok = true;
        for c in &t.compare {
            if !self.compare(c)? {
                ok = false;
                break;
            }
        }
        path.push(ok);
        let ops = if ok { &t.success } else { &t.failure };
        for op in ops {
            if let Some(request_op::Request::RequestTxn(nested)) = &op.request {
                self.compare_path(nested, path)?;
            }
        }
        Ok(())
    }

    fn check_branch(&self, t: &TxnRequest, path: &[bool], cursor: &mut usize) -> Result<()> {
        let ok = path.get(*cursor).copied().unwrap_or(false);
        *cursor += 1;
        for op in if ok { &t.success } else { &t.failure } {
            match &op.request {
                Some(request_op::Request::RequestPut(put)) => self.check_put(put)?,
                Some(request_op::Request::RequestRange(r)) => {
                    if r.revision > self.state.current {
                        return Err(RequestError::FutureRevision.into());
                    }
                    if r.revision > 0 && r.revision < self.state.compacted {
                        return Err(RequestError::Compacted.into());
                    }
                }
                Some(request_op::Request::RequestTxn(nested)) => {
                    self.check_branch(nested, path, cursor)?
                }
                Some(request_op::Request::RequestDeleteRange(_)) | None => {}
            }
        }
        Ok(())
    }

    fn run_txn(
        &mut self,
        txn: &mut WriteTxn,
        t: &TxnRequest,
        path: &[bool],
        cursor: &mut usize,
    ) -> Result<TxnResponse> {
        let succeeded = path.get(*cursor).copied().unwrap_or(false);
        *cursor += 1;
        let ops: &[RequestOp] = if succeeded { &t.success } else { &t.failure };
        let responses = self.run_ops(txn, ops, path, cursor)?;
        Ok(TxnResponse {
            header: None,
            succeeded,
            responses,
        })
    }

    /// One branch of a txn, in order, each op seeing the ones before it.
    fn run_ops(
        &mut self,
        txn: &mut WriteTxn,
        ops: &[RequestOp],
        path: &[bool],
        cursor: &mut usize,
    ) -> Result<Vec<ResponseOp>> {
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            let response = match &op.request {
                Some(request_op::Request::RequestRange(r)) => {
                    response_op::Response::ResponseRange(self.range_in_txn(txn, r)?)
                }
                Some(request_op::Request::RequestPut(p)) => {
                    response_op::Response::ResponsePut(self.put(txn, p)?)
                }
                Some(request_op::Request::RequestDeleteRange(d)) => {
                    response_op::Response::ResponseDeleteRange(self.delete_range(txn, d)?)
                }
                Some(request_op::Request::RequestTxn(nested)) => {
                    let mut r = self.run_txn(txn, nested, path, cursor)?;
                    r.header = header(txn.read_rev());
                    response_op::Response::ResponseTxn(r)
                }
                None => continue,
            };
            responses.push(ResponseOp {
                response: Some(response),
            });
        }
        Ok(responses)
    }

    /// A plugin flush's outputs: grants `leases`, then runs `ops` (puts and deletes only) as
    /// a txn's success branch runs, all at one revision (none if they change nothing). Every
    /// precondition is checked first, against the state before the flush, so a refusal
    /// writes nothing.
    pub(crate) fn write_outputs(
        &mut self,
        txn: &mut WriteTxn,
        leases: &[LeaseGrantRequest],
        ops: &[RequestOp],
    ) -> Result<()> {
        let mut granting = HashSet::with_capacity(leases.len());
        for l in leases {
            // A lease listed twice would exist by the time its second grant runs.
            if self.state.leases.exists(l.id) || !granting.insert(l.id) {
                return Err(RequestError::LeaseExists.into());
            }
        }
        for op in ops {
            match &op.request {
                Some(request_op::Request::RequestPut(put)) => {
                    self.check_put_granting(put, &granting)?
                }
                Some(request_op::Request::RequestDeleteRange(_)) => {}
                // Reads answer nobody here, and a nested txn's compares would make a window's
                // outputs depend on more than the window.
                _ => return Err(RequestError::FlushOpInvalid.into()),
            }
        }
        for l in leases {
            self.lease_grant(txn, l)?;
        }
        // No nested txns were let through, so the branch path is never consulted.
        self.run_ops(txn, ops, &[], &mut 0)?;
        Ok(())
    }

    /// One compare, etcd's way: every key in its range must satisfy it; a missing key compares
    /// as zero revisions and version, and never matches a VALUE compare.
    fn compare(&self, c: &Compare) -> Result<bool> {
        let range = KeyRange::new(&c.key, &c.range_end);
        let at = self.state.current;
        let revs: Vec<Revision> = self
            .state
            .index
            .visible(&range, at)
            .map(|(_, r)| r)
            .collect();
        let target = CompareTarget::try_from(c.target).unwrap_or(CompareTarget::Version);
        if revs.is_empty() {
            if target == CompareTarget::Value {
                return Ok(false);
            }
            return Ok(compare_kv(c, target, &KeyValue::default()));
        }
        for rev in revs {
            if !compare_kv(c, target, &self.load(rev)?) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn compact(&mut self, c: &CompactionRequest) -> Result<CompactionResponse> {
        if c.revision <= self.state.compacted {
            return Err(RequestError::Compacted.into());
        }
        if c.revision > self.state.current {
            return Err(RequestError::FutureRevision.into());
        }
        self.state.compacted = c.revision;
        let keep = self.state.index.compact(c.revision);
        self.compactions.push(CompactionJob {
            at: c.revision,
            keep,
        });
        Ok(CompactionResponse {
            header: header(self.state.current),
        })
    }

    fn lease_grant(
        &mut self,
        txn: &mut WriteTxn,
        g: &LeaseGrantRequest,
    ) -> Result<LeaseGrantResponse> {
        if self.state.leases.exists(g.id) {
            return Err(RequestError::LeaseExists.into());
        }
        self.state.leases.grant(g.id, g.ttl, 0);
        txn.leases.push(LeaseChange::Granted {
            id: g.id,
            ttl: g.ttl,
        });
        self.batch
            .insert(&self.backend.meta, lease_key(g.id), encode_lease(g.ttl, 0));
        Ok(LeaseGrantResponse {
            header: header(self.state.current),
            id: g.id,
            ttl: g.ttl,
            error: String::new(),
        })
    }

    /// Revokes a lease and deletes its keys, all in one revision (none if it had no keys).
    fn lease_revoke(
        &mut self,
        txn: &mut WriteTxn,
        r: &LeaseRevokeRequest,
    ) -> Result<LeaseRevokeResponse> {
        let keys = self
            .state
            .leases
            .revoke(r.id)
            .ok_or(RequestError::LeaseNotFound)?;
        self.batch.remove(&self.backend.meta, lease_key(r.id));
        txn.leases.push(LeaseChange::Revoked { id: r.id });
        for key in keys {
            let del = DeleteRangeRequest {
                key,
                ..Default::default()
            };
            self.delete_range(txn, &del)?;
        }
        Ok(LeaseRevokeResponse {
            header: header(txn.read_rev()),
        })
    }

    /// Records remaining TTLs; leases revoked meanwhile are skipped.
    fn lease_checkpoint(
        &mut self,
        txn: &mut WriteTxn,
        c: &LeaseCheckpointRequest,
    ) -> LeaseCheckpointResponse {
        for cp in &c.checkpoints {
            if self.state.leases.checkpoint(cp.id, cp.remaining_ttl)
                && let Some(lease) = self.state.leases.get(cp.id)
            {
                txn.leases.push(LeaseChange::Checkpointed {
                    id: cp.id,
                    remaining: cp.remaining_ttl,
                });
                self.batch.insert(
                    &self.backend.meta,
                    lease_key(cp.id),
                    encode_lease(lease.ttl, cp.remaining_ttl),
                );
            }
        }
        LeaseCheckpointResponse {
            header: header(self.state.current),
        }
    }

    /// Rebuild helper for start-up: one record read back from disk.
    pub fn restore(state: &mut State, rev: Revision, rec: &Record) {
        if rec.tombstone {
            state.leases.detach(&rec.kv.key);
        } else {
            state.leases.attach(&rec.kv.key, rec.kv.lease);
        }
        let index = &mut state.index;
        index.restore(
            &rec.kv.key,
            Change {
                rev,
                tombstone: rec.tombstone,
            },
            rec.kv.create_revision,
            rec.kv.version,
        );
    }
}

fn compare_kv(c: &Compare, target: CompareTarget, kv: &KeyValue) -> bool {
    use std::cmp::Ordering;
    // As etcd: a union of the wrong kind for the target compares against zero (or empty).
    let tu = c.target_union.as_ref();
    let ord: Ordering = match target {
        CompareTarget::Value => match tu {
            Some(TargetUnion::Value(v)) => kv.value.as_slice().cmp(v.as_slice()),
            _ => kv.value.as_slice().cmp(&[]),
        },
        CompareTarget::Version => kv.version.cmp(&match tu {
            Some(TargetUnion::Version(v)) => *v,
            _ => 0,
        }),
        CompareTarget::Create => kv.create_revision.cmp(&match tu {
            Some(TargetUnion::CreateRevision(v)) => *v,
            _ => 0,
        }),
        CompareTarget::Mod => kv.mod_revision.cmp(&match tu {
            Some(TargetUnion::ModRevision(v)) => *v,
            _ => 0,
        }),
        CompareTarget::Lease => kv.lease.cmp(&match tu {
            Some(TargetUnion::Lease(v)) => *v,
            _ => 0,
        }),
    };
    match CompareResult::try_from(c.result).unwrap_or(CompareResult::Equal) {
        CompareResult::Equal => ord == Ordering::Equal,
        CompareResult::NotEqual => ord != Ordering::Equal,
        CompareResult::Greater => ord == Ordering::Greater,
        CompareResult::Less => ord == Ordering::Less,
    }
}
