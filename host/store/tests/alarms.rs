//! Alarms and hashes in the store: a NOSPACE alarm refuses exactly what would grow the store,
//! a CORRUPT alarm every write; alarms survive a restart; hashes agree between stores that
//! applied the same entries and tell revisions apart.

mod common;

use common::StampedStore;
use conclave_proto::conclavepb::command::Request;
use conclave_proto::etcdserverpb::{
    AlarmRequest, AlarmType, CompactionRequest, DeleteRangeRequest, LeaseGrantRequest, PutRequest,
    RequestOp, TxnRequest, alarm_request::AlarmAction, request_op,
};
use conclave_store::RequestError;

fn put(key: &str) -> Request {
    Request::Put(PutRequest {
        key: key.into(),
        value: b"v".to_vec(),
        ..Default::default()
    })
}

fn alarm(action: AlarmAction, alarm: AlarmType) -> Request {
    Request::Alarm(AlarmRequest {
        action: action as i32,
        member_id: 7,
        alarm: alarm as i32,
    })
}

#[test]
fn nospace_refuses_growth_only_and_outlives_a_restart() {
    let mut s = StampedStore::new();
    s.apply(put("a"), 0);
    let raised = s.apply(alarm(AlarmAction::Activate, AlarmType::Nospace), 0);
    assert!(
        matches!(raised.result, Ok(conclave_store::Response::Alarm(ref r)) if r.alarms.len() == 1)
    );
    // Raising it again changes nothing and answers no alarm.
    let again = s.apply(alarm(AlarmAction::Activate, AlarmType::Nospace), 0);
    assert!(
        matches!(again.result, Ok(conclave_store::Response::Alarm(ref r)) if r.alarms.is_empty())
    );
    s.reopen();
    assert_eq!(s.store().alarms(AlarmType::None).len(), 1);

    let refused = |s: &mut StampedStore, req: Request| s.apply(req, 0).result.err();
    assert_eq!(refused(&mut s, put("b")), Some(RequestError::NoSpace));
    let txn_put = Request::Txn(TxnRequest {
        success: vec![RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: b"c".to_vec(),
                ..Default::default()
            })),
        }],
        ..Default::default()
    });
    assert_eq!(refused(&mut s, txn_put), Some(RequestError::NoSpace));
    let grant = Request::LeaseGrant(LeaseGrantRequest { ttl: 10, id: 1 });
    assert_eq!(refused(&mut s, grant), Some(RequestError::NoSpace));
    let del = Request::DeleteRange(DeleteRangeRequest {
        key: b"a".to_vec(),
        ..Default::default()
    });
    assert_eq!(refused(&mut s, del), None);
    let compact = Request::Compaction(CompactionRequest {
        revision: 2,
        physical: false,
    });
    assert_eq!(refused(&mut s, compact), None);

    s.apply(alarm(AlarmAction::Deactivate, AlarmType::Nospace), 0);
    assert_eq!(refused(&mut s, put("b")), None);
}

#[test]
fn corrupt_refuses_every_write_but_alarm_changes() {
    let mut s = StampedStore::new();
    s.apply(alarm(AlarmAction::Activate, AlarmType::Corrupt), 0);
    let del = Request::DeleteRange(DeleteRangeRequest {
        key: b"a".to_vec(),
        ..Default::default()
    });
    assert_eq!(s.apply(del, 0).result.err(), Some(RequestError::Corrupt));
    assert_eq!(
        s.apply(put("a"), 0).result.err(),
        Some(RequestError::Corrupt)
    );
    let cleared = s.apply(alarm(AlarmAction::Deactivate, AlarmType::Corrupt), 0);
    assert!(cleared.result.is_ok());
    assert!(s.apply(put("a"), 0).result.is_ok());
}

#[test]
fn stores_that_applied_the_same_entries_hash_alike() {
    let mut a = StampedStore::new();
    let mut b = StampedStore::new();
    for s in [&mut a, &mut b] {
        for i in 0..10 {
            s.apply(put(&format!("k{i}")), 1_000 + i);
        }
    }
    let (ha, hb) = (a.store().hash_kv(0).unwrap(), b.store().hash_kv(0).unwrap());
    assert_eq!(ha, hb);
    assert_eq!(ha.hash_revision, 11);
    assert_eq!(a.store().hash_all().unwrap(), b.store().hash_all().unwrap());
    let earlier = a.store().hash_kv(5).unwrap();
    assert_ne!(earlier.hash, ha.hash);
    assert_eq!(earlier, b.store().hash_kv(5).unwrap());
    // A store that differs in one value differs in hash.
    b.apply(put("k9"), 2_000);
    a.apply(put("k8"), 2_000);
    assert_ne!(a.store().hash_kv(0).unwrap(), b.store().hash_kv(0).unwrap());
    assert_eq!(
        a.store().hash_kv(100).unwrap_err().as_request(),
        Some(&RequestError::FutureRevision)
    );
}
