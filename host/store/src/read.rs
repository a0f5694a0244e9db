//! Range reads with etcd's semantics: which revision to read at, count versus limit, the
//! min/max revision filters, sorting, keys_only and count_only. Split in two steps so that the
//! caller can hold the index lock only for the first: `plan` picks revisions from the index,
//! `execute` loads their values (from a disk snapshot, or from a write batch in progress).

use conclave_proto::etcdserverpb::{
    RangeRequest, RangeResponse, ResponseHeader,
    range_request::{SortOrder, SortTarget},
};
use conclave_proto::mvccpb::KeyValue;

use crate::error::{RequestError, Result};
use crate::index::KeyIndex;
use crate::key_range::KeyRange;
use crate::revision::Revision;

/// The revision a read at `requested` sees: `<= 0` is the current one; a revision ahead of the
/// store or below the compaction point is refused, as etcd refuses it.
pub fn resolve_revision(requested: i64, current: i64, compacted: i64) -> Result<i64, RequestError> {
    if requested > current {
        return Err(RequestError::FutureRevision);
    }
    let at = if requested <= 0 { current } else { requested };
    if at < compacted {
        return Err(RequestError::Compacted);
    }
    Ok(at)
}

/// What the index says a range request needs from the disk.
#[derive(Debug)]
pub struct RangePlan {
    /// Revisions to load, in key order.
    pub revisions: Vec<Revision>,
    /// Keys in the range at the read revision, ignoring limit and filters.
    pub count: i64,
}

/// Whether the request needs every matching key loaded before it can cut at `limit`.
fn needs_everything(req: &RangeRequest) -> bool {
    req.sort_order != SortOrder::None as i32
        || req.min_mod_revision != 0
        || req.max_mod_revision != 0
        || req.min_create_revision != 0
        || req.max_create_revision != 0
}

pub fn plan(index: &KeyIndex, req: &RangeRequest, at: i64) -> RangePlan {
    let range = KeyRange::new(&req.key, &req.range_end);
    if req.count_only {
        let count = index.visible(&range, at).count() as i64;
        return RangePlan {
            revisions: Vec::new(),
            count,
        };
    }
    // One past the limit, so that `more` can be told.
    let wanted = match (needs_everything(req), req.limit) {
        (false, limit) if limit > 0 => usize::try_from(limit)
            .unwrap_or(usize::MAX)
            .saturating_add(1),
        _ => usize::MAX,
    };
    let mut revisions = Vec::new();
    let mut count = 0i64;
    for (_, rev) in index.visible(&range, at) {
        if revisions.len() < wanted {
            revisions.push(rev);
        }
        count += 1;
    }
    RangePlan { revisions, count }
}

/// Loads, filters, sorts and cuts. `header_revision` is the store revision the response
/// reports (etcd reports the current revision, not the one read at).
/// `load` gets every revision of the plan at once and answers in the same order.
pub fn execute(
    plan: RangePlan,
    load: impl FnOnce(&[Revision]) -> Result<Vec<KeyValue>>,
    req: &RangeRequest,
    header_revision: i64,
) -> Result<RangeResponse> {
    let mut kvs = load(&plan.revisions)?;
    kvs.retain(|kv| keep(req, kv));
    sort(&mut kvs, req);
    let mut more = false;
    if let Ok(limit) = usize::try_from(req.limit)
        && limit > 0
        && kvs.len() > limit
    {
        kvs.truncate(limit);
        more = true;
    }
    if req.keys_only {
        for kv in &mut kvs {
            kv.value = Vec::new();
        }
    }
    Ok(RangeResponse {
        header: Some(ResponseHeader {
            revision: header_revision,
            ..Default::default()
        }),
        kvs,
        more,
        count: plan.count,
    })
}

fn keep(req: &RangeRequest, kv: &KeyValue) -> bool {
    (req.max_mod_revision == 0 || kv.mod_revision <= req.max_mod_revision)
        && (req.min_mod_revision == 0 || kv.mod_revision >= req.min_mod_revision)
        && (req.max_create_revision == 0 || kv.create_revision <= req.max_create_revision)
        && (req.min_create_revision == 0 || kv.create_revision >= req.min_create_revision)
}

/// etcd's rule: results come in key order; a non-key target with no order sorts ascending;
/// ties keep key order (we sort stably, so ties are deterministic across members).
fn sort(kvs: &mut [KeyValue], req: &RangeRequest) {
    let target = SortTarget::try_from(req.sort_target).unwrap_or(SortTarget::Key);
    let mut order = SortOrder::try_from(req.sort_order).unwrap_or(SortOrder::None);
    if target != SortTarget::Key && order == SortOrder::None {
        order = SortOrder::Ascend;
    }
    if order == SortOrder::None || (target == SortTarget::Key && order == SortOrder::Ascend) {
        return;
    }
    let cmp = |a: &KeyValue, b: &KeyValue| match target {
        SortTarget::Key => a.key.cmp(&b.key),
        SortTarget::Version => a.version.cmp(&b.version),
        SortTarget::Create => a.create_revision.cmp(&b.create_revision),
        SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
        SortTarget::Value => a.value.cmp(&b.value),
    };
    if order == SortOrder::Descend {
        kvs.sort_by(|a, b| cmp(b, a));
    } else {
        kvs.sort_by(cmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_resolution() {
        assert_eq!(resolve_revision(0, 10, 0), Ok(10));
        assert_eq!(resolve_revision(-3, 10, 0), Ok(10));
        assert_eq!(resolve_revision(7, 10, 0), Ok(7));
        assert_eq!(
            resolve_revision(11, 10, 0),
            Err(RequestError::FutureRevision)
        );
        assert_eq!(resolve_revision(4, 10, 5), Err(RequestError::Compacted));
        assert_eq!(
            resolve_revision(5, 10, 5),
            Ok(5),
            "the compaction point itself is readable"
        );
    }
}
