//! A small builder for etcd transactions: compares (`when`), then the operations to run if
//! they all hold (`and_then`) or if any fails (`or_else`).

use conclave_proto::etcdserverpb::{
    self as pb, RequestOp, TxnRequest,
    compare::{CompareResult, CompareTarget, TargetUnion},
    request_op::Request,
};

use crate::options::{DeleteOptions, GetOptions, PutOptions, prefix_range_end};

/// A transaction for [`Client::txn`](crate::Client::txn).
///
/// ```
/// use conclave_client::{Compare, GetOptions, PutOptions, Txn, TxnOp};
///
/// // Create "/lock" only if nobody holds it; otherwise read who does.
/// let txn = Txn::new()
///     .when([Compare::version("/lock").eq(0)])
///     .and_then([TxnOp::put("/lock", "me", PutOptions::new())])
///     .or_else([TxnOp::get("/lock", GetOptions::new())]);
/// let req = txn.into_request();
/// assert_eq!((req.compare.len(), req.success.len(), req.failure.len()), (1, 1, 1));
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Txn {
    compare: Vec<pb::Compare>,
    success: Vec<RequestOp>,
    failure: Vec<RequestOp>,
}

impl Txn {
    /// An empty transaction: no compares (so it succeeds) and no operations.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds compares; the transaction succeeds when all of them hold.
    pub fn when(mut self, compares: impl IntoIterator<Item = Compare>) -> Self {
        self.compare.extend(compares.into_iter().map(|c| c.0));
        self
    }

    /// Adds operations to run when every compare holds.
    pub fn and_then(mut self, ops: impl IntoIterator<Item = TxnOp>) -> Self {
        self.success.extend(ops.into_iter().map(|op| op.0));
        self
    }

    /// Adds operations to run when any compare fails.
    pub fn or_else(mut self, ops: impl IntoIterator<Item = TxnOp>) -> Self {
        self.failure.extend(ops.into_iter().map(|op| op.0));
        self
    }

    /// The Txn request.
    pub fn into_request(self) -> TxnRequest {
        TxnRequest {
            compare: self.compare,
            success: self.success,
            failure: self.failure,
        }
    }
}

impl From<Txn> for TxnRequest {
    fn from(txn: Txn) -> Self {
        txn.into_request()
    }
}

/// One compare of a [`Txn`]: a key's version, create or mod revision, value or lease against a
/// constant.
///
/// A key that does not exist has version, create and mod revision 0, so
/// `Compare::version(k).eq(0)` means "k does not exist".
///
/// ```
/// use conclave_client::Compare;
///
/// let fresh = Compare::create_revision("k").gt(100);
/// let same = Compare::value("config").eq("v2");
/// let none_leased = Compare::lease("/svc/").eq(0).with_prefix();
/// # let _ = (fresh, same, none_leased);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compare(pb::Compare);

impl Compare {
    /// Compares the key's version (number of puts since creation; 0: absent).
    pub fn version(key: impl Into<Vec<u8>>) -> CompareInt {
        CompareInt::new(key, CompareTarget::Version)
    }

    /// Compares the revision at which the key was created (0: absent).
    pub fn create_revision(key: impl Into<Vec<u8>>) -> CompareInt {
        CompareInt::new(key, CompareTarget::Create)
    }

    /// Compares the revision at which the key was last modified (0: absent).
    pub fn mod_revision(key: impl Into<Vec<u8>>) -> CompareInt {
        CompareInt::new(key, CompareTarget::Mod)
    }

    /// Compares the lease the key is attached to (0: none).
    pub fn lease(key: impl Into<Vec<u8>>) -> CompareInt {
        CompareInt::new(key, CompareTarget::Lease)
    }

    /// Compares the key's value, byte by byte.
    pub fn value(key: impl Into<Vec<u8>>) -> CompareValue {
        CompareValue { key: key.into() }
    }

    /// Applies the compare to every key in `[key, end)` instead of the key alone.
    pub fn with_range_end(mut self, end: impl Into<Vec<u8>>) -> Self {
        self.0.range_end = end.into();
        self
    }

    /// Applies the compare to every key that starts with the key.
    pub fn with_prefix(mut self) -> Self {
        self.0.range_end = prefix_range_end(&self.0.key);
        self
    }

    /// The protobuf compare.
    pub fn into_inner(self) -> pb::Compare {
        self.0
    }
}

impl From<pb::Compare> for Compare {
    fn from(compare: pb::Compare) -> Self {
        Compare(compare)
    }
}

impl From<Compare> for pb::Compare {
    fn from(compare: Compare) -> Self {
        compare.0
    }
}

/// A compare on a number (version, create or mod revision, lease) awaiting its operator.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a compare needs an operator: eq, ne, gt or lt"]
pub struct CompareInt {
    key: Vec<u8>,
    target: CompareTarget,
}

impl CompareInt {
    fn new(key: impl Into<Vec<u8>>, target: CompareTarget) -> Self {
        Self {
            key: key.into(),
            target,
        }
    }

    fn finish(self, result: CompareResult, n: i64) -> Compare {
        let union = match self.target {
            CompareTarget::Version => TargetUnion::Version(n),
            CompareTarget::Create => TargetUnion::CreateRevision(n),
            CompareTarget::Mod => TargetUnion::ModRevision(n),
            CompareTarget::Lease => TargetUnion::Lease(n),
            // Not reachable through the constructors; kept total rather than panicking.
            CompareTarget::Value => TargetUnion::Value(n.to_string().into_bytes()),
        };
        Compare(pb::Compare {
            result: result.into(),
            target: self.target.into(),
            key: self.key,
            range_end: Vec::new(),
            target_union: Some(union),
        })
    }

    /// Holds when the number equals `n`.
    pub fn eq(self, n: i64) -> Compare {
        self.finish(CompareResult::Equal, n)
    }

    /// Holds when the number differs from `n`.
    pub fn ne(self, n: i64) -> Compare {
        self.finish(CompareResult::NotEqual, n)
    }

    /// Holds when the number is greater than `n`.
    pub fn gt(self, n: i64) -> Compare {
        self.finish(CompareResult::Greater, n)
    }

    /// Holds when the number is less than `n`.
    pub fn lt(self, n: i64) -> Compare {
        self.finish(CompareResult::Less, n)
    }
}

/// A compare on a key's value awaiting its operator.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a compare needs an operator: eq, ne, gt or lt"]
pub struct CompareValue {
    key: Vec<u8>,
}

impl CompareValue {
    fn finish(self, result: CompareResult, value: Vec<u8>) -> Compare {
        Compare(pb::Compare {
            result: result.into(),
            target: CompareTarget::Value.into(),
            key: self.key,
            range_end: Vec::new(),
            target_union: Some(TargetUnion::Value(value)),
        })
    }

    /// Holds when the value equals `value`.
    pub fn eq(self, value: impl Into<Vec<u8>>) -> Compare {
        self.finish(CompareResult::Equal, value.into())
    }

    /// Holds when the value differs from `value`.
    pub fn ne(self, value: impl Into<Vec<u8>>) -> Compare {
        self.finish(CompareResult::NotEqual, value.into())
    }

    /// Holds when the value sorts after `value` (bytewise).
    pub fn gt(self, value: impl Into<Vec<u8>>) -> Compare {
        self.finish(CompareResult::Greater, value.into())
    }

    /// Holds when the value sorts before `value` (bytewise).
    pub fn lt(self, value: impl Into<Vec<u8>>) -> Compare {
        self.finish(CompareResult::Less, value.into())
    }
}

/// One operation inside a [`Txn`] branch.
///
/// ```
/// use conclave_client::{DeleteOptions, GetOptions, PutOptions, TxnOp};
///
/// let ops = [
///     TxnOp::put("a", "1", PutOptions::new()),
///     TxnOp::get("b", GetOptions::new().with_prefix()),
///     TxnOp::delete("c", DeleteOptions::new().with_prev_kv()),
/// ];
/// # let _ = ops;
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TxnOp(RequestOp);

impl TxnOp {
    /// A Range.
    pub fn get(key: impl Into<Vec<u8>>, options: GetOptions) -> Self {
        TxnOp::from_request(Request::RequestRange(options.into_request(key)))
    }

    /// A Put.
    pub fn put(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>, options: PutOptions) -> Self {
        TxnOp::from_request(Request::RequestPut(options.into_request(key, value)))
    }

    /// A DeleteRange.
    pub fn delete(key: impl Into<Vec<u8>>, options: DeleteOptions) -> Self {
        TxnOp::from_request(Request::RequestDeleteRange(options.into_request(key)))
    }

    /// A nested transaction.
    pub fn txn(txn: Txn) -> Self {
        TxnOp::from_request(Request::RequestTxn(txn.into_request()))
    }

    fn from_request(request: Request) -> Self {
        TxnOp(RequestOp {
            request: Some(request),
        })
    }

    /// The protobuf operation.
    pub fn into_inner(self) -> RequestOp {
        self.0
    }
}

impl From<RequestOp> for TxnOp {
    fn from(op: RequestOp) -> Self {
        TxnOp(op)
    }
}

impl From<TxnOp> for RequestOp {
    fn from(op: TxnOp) -> Self {
        op.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_compares_fill_the_matching_union_field() {
        let c = Compare::version("k").eq(0).into_inner();
        assert_eq!(c.target, CompareTarget::Version as i32);
        assert_eq!(c.result, CompareResult::Equal as i32);
        assert_eq!(c.target_union, Some(TargetUnion::Version(0)));

        let c = Compare::create_revision("k").gt(5).into_inner();
        assert_eq!(c.target_union, Some(TargetUnion::CreateRevision(5)));
        assert_eq!(c.result, CompareResult::Greater as i32);

        let c = Compare::mod_revision("k").lt(5).into_inner();
        assert_eq!(c.target_union, Some(TargetUnion::ModRevision(5)));
        assert_eq!(c.result, CompareResult::Less as i32);

        let c = Compare::lease("k").ne(7).into_inner();
        assert_eq!(c.target, CompareTarget::Lease as i32);
        assert_eq!(c.target_union, Some(TargetUnion::Lease(7)));
        assert_eq!(c.result, CompareResult::NotEqual as i32);
    }

    #[test]
    fn value_compares_carry_bytes_and_ranges() {
        let c = Compare::value("k").eq("x").with_prefix().into_inner();
        assert_eq!(c.target, CompareTarget::Value as i32);
        assert_eq!(c.target_union, Some(TargetUnion::Value(b"x".to_vec())));
        assert_eq!(c.range_end, b"l");
        let c = Compare::value("a").ne("x").with_range_end("c").into_inner();
        assert_eq!(c.range_end, b"c");
    }

    #[test]
    fn txn_collects_branches_in_order() {
        let req = Txn::new()
            .when([Compare::version("a").eq(0), Compare::value("b").eq("x")])
            .and_then([
                TxnOp::put("a", "1", PutOptions::new()),
                TxnOp::get("a", GetOptions::new()),
            ])
            .or_else([TxnOp::delete("a", DeleteOptions::new())])
            .or_else([TxnOp::txn(Txn::new())])
            .into_request();
        assert_eq!(req.compare.len(), 2);
        assert!(matches!(
            req.success[0].request,
            Some(Request::RequestPut(ref p)) if p.key == b"a" && p.value == b"1"
        ));
        assert!(matches!(
            req.success[1].request,
            Some(Request::RequestRange(_))
        ));
        assert!(matches!(
            req.failure[0].request,
            Some(Request::RequestDeleteRange(_))
        ));
        assert!(matches!(
            req.failure[1].request,
            Some(Request::RequestTxn(_))
        ));
    }
}
