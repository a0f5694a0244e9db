//! Permissions checked again at apply: a client's write carries whom it was checked for, and
//! the store refuses it if the auth state it meets no longer allows it (a role revoked, a user
//! removed, auth turned on) between the check where it arrived and the apply, as etcd's
//! apply-time check does. A member's own writes carry no caller and are not checked.

mod common;

use common::{StampedStore, auth, root_and_alice};
use conclave_proto::conclavepb::{auth_command::Request as Cmd, command::Request};
use conclave_proto::etcdserverpb::{
    AuthEnableRequest, AuthUserDeleteRequest, AuthUserRevokeRoleRequest, DeleteRangeRequest,
    LeaseGrantRequest, LeaseRevokeRequest, PutRequest, RequestOp, TxnRequest, request_op,
};
use conclave_store::{RequestError, Response};

fn put(key: &str) -> Request {
    Request::Put(PutRequest {
        key: key.into(),
        value: b"v".to_vec(),
        ..Default::default()
    })
}

/// root; alice with readwrite on /alice/ through the role "writer"; auth on.
fn with_alice() -> StampedStore {
    let mut s = StampedStore::new();
    for request in root_and_alice()
        .into_iter()
        .chain([auth(Cmd::Enable(AuthEnableRequest {}))])
    {
        let applied = s.apply(request, 0);
        assert!(applied.result.is_ok(), "{:?}", applied.result);
    }
    s
}

#[test]
fn a_write_checked_before_a_revocation_is_refused_at_apply() {
    let mut s = with_alice();
    assert!(s.apply_for("alice", put("/alice/a")).result.is_ok());
    // Checked while alice still had the role; the revocation applies first.
    s.apply(
        auth(Cmd::UserRevokeRole(AuthUserRevokeRoleRequest {
            name: "alice".into(),
            role: "writer".into(),
        })),
        0,
    );
    let before = s.store().current_revision();
    let refused = s.apply_for("alice", put("/alice/b"));
    assert_eq!(refused.result.err(), Some(RequestError::PermissionDenied));
    assert_eq!(s.store().current_revision(), before, "nothing was written");
    // Outside her range even in a txn branch that would not run, as etcd checks.
    let txn = Request::Txn(TxnRequest {
        failure: vec![RequestOp {
            request: Some(request_op::Request::RequestDeleteRange(
                DeleteRangeRequest {
                    key: b"/other".to_vec(),
                    ..Default::default()
                },
            )),
        }],
        ..Default::default()
    });
    assert_eq!(
        s.apply_for("alice", txn).result.err(),
        Some(RequestError::PermissionDenied)
    );
    // root's writes and the member's own go on.
    assert!(s.apply_for("root", put("/alice/c")).result.is_ok());
    assert!(s.apply(put("/alice/d"), 0).result.is_ok());
}

#[test]
fn a_removed_user_and_an_anonymous_write_meet_auth_at_apply() {
    let mut s = with_alice();
    s.apply(
        auth(Cmd::UserDelete(AuthUserDeleteRequest {
            name: "alice".into(),
        })),
        0,
    );
    assert_eq!(
        s.apply_for("alice", put("/alice/a")).result.err(),
        Some(RequestError::PermissionDenied)
    );
    // Checked while auth was off, applied after it went on.
    assert_eq!(
        s.apply_for("", put("/alice/a")).result.err(),
        Some(RequestError::UserEmpty)
    );
}

#[test]
fn revoking_a_lease_needs_its_keys_writable_at_apply() {
    let mut s = with_alice();
    assert!(
        s.apply_for(
            "alice",
            Request::LeaseGrant(LeaseGrantRequest { ttl: 60, id: 9 })
        )
        .result
        .is_ok()
    );
    let mut leased = PutRequest {
        key: b"/root-only".to_vec(),
        lease: 9,
        ..Default::default()
    };
    leased.value = b"v".to_vec();
    assert!(s.apply_for("root", Request::Put(leased)).result.is_ok());
    let revoke = Request::LeaseRevoke(LeaseRevokeRequest { id: 9 });
    assert_eq!(
        s.apply_for("alice", revoke.clone()).result.err(),
        Some(RequestError::PermissionDenied)
    );
    assert!(matches!(
        s.apply_for("root", revoke).result,
        Ok(Response::LeaseRevoke(_))
    ));
}
