//! Checks a request must pass before it is proposed, as etcd's v3rpc layer makes them: empty
//! keys, option combinations, txn size and overlapping writes inside a txn.

use std::collections::HashSet;

use conclave_proto::etcdserverpb::{
    DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
    range_request::{SortOrder, SortTarget},
    request_op::Request,
};
use conclave_store::KeyRange;

use crate::error::{
    DUPLICATE_KEY, EMPTY_KEY, EtcdError, INVALID_SORT_OPTION, LEASE_PROVIDED, TOO_MANY_OPS,
    VALUE_PROVIDED,
};

/// etcd's default limit on the operations of one txn branch.
pub const MAX_TXN_OPS: usize = 128;

pub fn range(r: &RangeRequest) -> Result<(), EtcdError> {
    if r.key.is_empty() {
        return Err(EMPTY_KEY);
    }
    if SortOrder::try_from(r.sort_order).is_err() || SortTarget::try_from(r.sort_target).is_err() {
        return Err(INVALID_SORT_OPTION);
    }
    Ok(())
}

pub fn put(r: &PutRequest) -> Result<(), EtcdError> {
    if r.key.is_empty() {
        return Err(EMPTY_KEY);
    }
    if r.ignore_value && !r.value.is_empty() {
        return Err(VALUE_PROVIDED);
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(LEASE_PROVIDED);
    }
    Ok(())
}

pub fn delete_range(r: &DeleteRangeRequest) -> Result<(), EtcdError> {
    if r.key.is_empty() {
        return Err(EMPTY_KEY);
    }
    Ok(())
}

pub fn txn(r: &TxnRequest) -> Result<(), EtcdError> {
    txn_shape(r)?;
    // After the shape checks, so that a huge request cannot make this quadratic.
    writes(&r.success)?;
    writes(&r.failure)?;
    Ok(())
}

fn txn_shape(r: &TxnRequest) -> Result<(), EtcdError> {
    let ops = r.compare.len().max(r.success.len()).max(r.failure.len());
    if ops > MAX_TXN_OPS {
        return Err(TOO_MANY_OPS);
    }
    if r.compare.iter().any(|c| c.key.is_empty()) {
        return Err(EMPTY_KEY);
    }
    for op in r.success.iter().chain(&r.failure) {
        match &op.request {
            Some(Request::RequestRange(q)) => range(q)?,
            Some(Request::RequestPut(q)) => put(q)?,
            Some(Request::RequestDeleteRange(q)) => delete_range(q)?,
            Some(Request::RequestTxn(q)) => txn_shape(q)?,
            None => {}
        }
    }
    Ok(())
}

/// Keys a branch puts and ranges it deletes, nested txns included.
#[derive(Default)]
struct Writes {
    puts: HashSet<Vec<u8>>,
    deletes: Vec<KeyRange>,
}

impl Writes {
    fn deleted(&self, key: &[u8]) -> bool {
        self.deletes.iter().any(|d| d.contains(key))
    }
}

/// etcd's rule: within what one txn can execute, no key is put twice and no put overlaps a
/// delete. The two branches of a nested txn exclude each other, so they may put the same key.
fn writes(ops: &[RequestOp]) -> Result<Writes, EtcdError> {
    let mut w = Writes::default();
    for op in ops {
        if let Some(Request::RequestDeleteRange(d)) = &op.request {
            w.deletes.push(KeyRange::new(&d.key, &d.range_end));
        }
    }
    for op in ops {
        let Some(Request::RequestTxn(t)) = &op.request else {
            continue;
        };
        let then = writes(&t.success)?;
        let otherwise = writes(&t.failure)?;
        for k in &then.puts {
            if w.puts.contains(k) || w.deleted(k) {
                return Err(DUPLICATE_KEY);
            }
        }
        for k in &otherwise.puts {
            if (w.puts.contains(k) && !then.puts.contains(k)) || w.deleted(k) {
                return Err(DUPLICATE_KEY);
            }
        }
        w.puts.extend(then.puts);
        w.puts.extend(otherwise.puts);
        w.deletes.extend(then.deletes);
        w.deletes.extend(otherwise.deletes);
    }
    for op in ops {
        if let Some(Request::RequestPut(p)) = &op.request {
            if w.puts.contains(&p.key) || w.deleted(&p.key) {
                return Err(DUPLICATE_KEY);
            }
            w.puts.insert(p.key.clone());
        }
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put_op(k: &str) -> RequestOp {
        RequestOp {
            request: Some(Request::RequestPut(PutRequest {
                key: k.into(),
                ..Default::default()
            })),
        }
    }
    fn del_op(k: &str, end: &str) -> RequestOp {
        RequestOp {
            request: Some(Request::RequestDeleteRange(DeleteRangeRequest {
                key: k.into(),
                range_end: end.into(),
                ..Default::default()
            })),
        }
    }
    fn txn_op(success: Vec<RequestOp>, failure: Vec<RequestOp>) -> RequestOp {
        RequestOp {
            request: Some(Request::RequestTxn(TxnRequest {
                compare: vec![],
                success,
                failure,
            })),
        }
    }
    fn t(success: Vec<RequestOp>) -> TxnRequest {
        TxnRequest {
            compare: vec![],
            success,
            failure: vec![],
        }
    }

    #[test]
    fn duplicate_puts_and_overlaps_are_refused() {
        assert_eq!(txn(&t(vec![put_op("a"), put_op("a")])), Err(DUPLICATE_KEY));
        assert_eq!(
            txn(&t(vec![put_op("b"), del_op("a", "c")])),
            Err(DUPLICATE_KEY)
        );
        assert_eq!(
            txn(&t(vec![put_op("a"), txn_op(vec![put_op("a")], vec![])])),
            Err(DUPLICATE_KEY)
        );
        assert_eq!(txn(&t(vec![put_op("a"), put_op("b")])), Ok(()));
        assert_eq!(txn(&t(vec![del_op("a", "c"), del_op("b", "d")])), Ok(()));
        // Exclusive branches of one nested txn may write the same key.
        assert_eq!(
            txn(&t(vec![txn_op(vec![put_op("a")], vec![put_op("a")])])),
            Ok(())
        );
    }

    #[test]
    fn too_many_ops() {
        let ops: Vec<_> = (0..129).map(|i| put_op(&format!("k{i}"))).collect();
        assert_eq!(txn(&t(ops)), Err(TOO_MANY_OPS));
        let ops: Vec<_> = (0..128).map(|i| put_op(&format!("k{i}"))).collect();
        assert_eq!(txn(&t(ops)), Ok(()));
    }

    #[test]
    fn put_options() {
        let mut p = PutRequest {
            key: b"k".to_vec(),
            ignore_value: true,
            value: b"v".to_vec(),
            ..Default::default()
        };
        assert_eq!(put(&p), Err(VALUE_PROVIDED));
        p.value.clear();
        p.ignore_lease = true;
        p.lease = 5;
        assert_eq!(put(&p), Err(LEASE_PROVIDED));
        p.key.clear();
        assert_eq!(put(&p), Err(EMPTY_KEY));
    }
}
