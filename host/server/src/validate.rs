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

/// The whole tree of a txn (compares and operations of every level, both branches) holds at
/// most this many times --max-txn-ops: the shapes etcd accepts (a flat txn with the limit in
/// each of compare, success and failure) pass, and nesting cannot multiply the work.
const TREE_FACTOR: usize = 4;

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

/// etcd's checks on a txn, with `max_ops` (--max-txn-ops) bounding the whole request: the
/// operations any one execution can run, nested txns included (a nested txn counts as one
/// operation plus those of its larger branch), and the size of the tree.
pub fn txn(r: &TxnRequest, max_ops: usize) -> Result<(), EtcdError> {
    let mut budget = max_ops.saturating_mul(TREE_FACTOR);
    let executed = txn_shape(r, max_ops, &mut budget)?;
    if executed > max_ops {
        return Err(TOO_MANY_OPS);
    }
    // After the shape checks, so that a huge request cannot make this quadratic.
    writes(&r.success)?;
    writes(&r.failure)?;
    Ok(())
}

/// Checks every level of `r`, taking each compare and operation from `budget` (the tree's
/// size limit), and returns the most operations one execution of `r` can run.
fn txn_shape(r: &TxnRequest, max_ops: usize, budget: &mut usize) -> Result<usize, EtcdError> {
    let level = r.compare.len().max(r.success.len()).max(r.failure.len());
    let nodes = r.compare.len() + r.success.len() + r.failure.len();
    if level > max_ops || nodes > *budget {
        return Err(TOO_MANY_OPS);
    }
    *budget -= nodes;
    if r.compare.iter().any(|c| c.key.is_empty()) {
        return Err(EMPTY_KEY);
    }
    let mut branch = |ops: &[RequestOp]| -> Result<usize, EtcdError> {
        let mut executed = 0usize;
        for op in ops {
            executed += 1;
            match &op.request {
                Some(Request::RequestRange(q)) => range(q)?,
                Some(Request::RequestPut(q)) => put(q)?,
                Some(Request::RequestDeleteRange(q)) => delete_range(q)?,
                Some(Request::RequestTxn(q)) => executed += txn_shape(q, max_ops, budget)?,
                None => {}
            }
            if executed > max_ops {
                return Err(TOO_MANY_OPS);
            }
        }
        Ok(executed)
    };
    let success = branch(&r.success)?;
    let failure = branch(&r.failure)?;
    Ok(success.max(failure))
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
    use crate::limits::MAX_TXN_OPS;

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
        let txn = |r: &TxnRequest| txn(r, MAX_TXN_OPS);
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
        assert_eq!(txn(&t(ops), MAX_TXN_OPS), Err(TOO_MANY_OPS));
        let ops: Vec<_> = (0..128).map(|i| put_op(&format!("k{i}"))).collect();
        assert_eq!(txn(&t(ops), MAX_TXN_OPS), Ok(()));
        // The limit in each of compare, success and failure, as etcd allows.
        let full = TxnRequest {
            compare: (0..128)
                .map(|i| conclave_proto::etcdserverpb::Compare {
                    key: format!("c{i}").into(),
                    ..Default::default()
                })
                .collect(),
            success: (0..128).map(|i| put_op(&format!("s{i}"))).collect(),
            failure: (0..128).map(|i| put_op(&format!("f{i}"))).collect(),
        };
        assert_eq!(txn(&full, MAX_TXN_OPS), Ok(()));
        assert_eq!(txn(&full, 127), Err(TOO_MANY_OPS));
    }

    #[test]
    fn nesting_counts_against_the_whole_request() {
        // 64 nested txns of 64 puts each: every level is within 128, the whole is 4160.
        let nested: Vec<_> = (0..64)
            .map(|i| {
                txn_op(
                    (0..64).map(|j| put_op(&format!("k{i}/{j}"))).collect(),
                    vec![],
                )
            })
            .collect();
        assert_eq!(txn(&t(nested), MAX_TXN_OPS), Err(TOO_MANY_OPS));
        // Two nested txns of 60 puts each: 122 operations in all.
        let nested: Vec<_> = (0..2)
            .map(|i| {
                txn_op(
                    (0..60).map(|j| put_op(&format!("k{i}/{j}"))).collect(),
                    vec![],
                )
            })
            .collect();
        assert_eq!(txn(&t(nested), MAX_TXN_OPS), Ok(()));
        // A deep binary tree of empty branches: each level adds one to what runs, but the
        // tree doubles.
        let mut deep = txn_op(vec![], vec![]);
        for _ in 0..12 {
            deep = txn_op(vec![deep.clone()], vec![deep]);
        }
        assert_eq!(txn(&t(vec![deep]), MAX_TXN_OPS), Err(TOO_MANY_OPS));
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
