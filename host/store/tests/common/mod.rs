//! A store on a temporary directory that applies entries as a leader would propose them
//! (numbered in order, stamped with the given clock), and reopens itself like a restart.

#![allow(dead_code)]

use conclave_proto::authpb::{Permission, permission::Type as PermType};
use conclave_proto::conclavepb::{AuthCommand, auth_command::Request as Cmd, command::Request};
use conclave_proto::etcdserverpb::{
    AuthRoleAddRequest, AuthRoleGrantPermissionRequest, AuthUserAddRequest,
    AuthUserGrantRoleRequest, RangeRequest,
};
use conclave_proto::mvccpb::KeyValue;
use conclave_store::{Applied, Durability, Entry, Store};

pub struct StampedStore {
    pub dir: tempfile::TempDir,
    store: Option<Store>,
    /// The last entry index applied; a test may move it (a store that lives on another log).
    pub index: u64,
}

impl StampedStore {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Some(Store::open(dir.path()).unwrap());
        Self {
            dir,
            store,
            index: 0,
        }
    }

    pub fn store(&self) -> &Store {
        self.store.as_ref().unwrap()
    }

    /// Applies the requests as one batch of entries, each with its stamp (ms).
    pub fn apply_all(&mut self, reqs: Vec<(Request, i64)>) -> Vec<Applied> {
        let entries: Vec<Entry> = reqs
            .into_iter()
            .map(|(req, stamp)| {
                self.index += 1;
                Entry::stamped(self.index, 1, req, stamp)
            })
            .collect();
        self.store().apply(&entries, Durability::Sync).unwrap()
    }

    pub fn apply(&mut self, req: Request, stamp_ms: i64) -> Applied {
        self.apply_all(vec![(req, stamp_ms)]).pop().unwrap()
    }

    /// Applies a client's write as a member checked it for `user` ("" with auth off then).
    pub fn apply_for(&mut self, user: &str, req: Request) -> Applied {
        self.index += 1;
        let mut entry = Entry::stamped(self.index, 1, req, 0);
        if let Some(command) = &mut entry.command {
            command.checked_for = Some(conclave_proto::conclavepb::CheckedFor {
                user: user.to_string(),
            });
        }
        self.store()
            .apply(&[entry], Durability::Sync)
            .unwrap()
            .pop()
            .unwrap()
    }

    /// Closes the store and opens it again from disk.
    pub fn reopen(&mut self) {
        drop(self.store.take());
        self.store = Some(Store::open(self.dir.path()).unwrap());
    }
}

/// An auth command as a leader proposes it (with the token key `auth enable` carries).
pub fn auth(request: Cmd) -> Request {
    Request::Auth(AuthCommand {
        request: Some(request),
        token_key: vec![7; 32],
    })
}

/// root with the root role; alice with readwrite on /alice/ through the role "writer".
/// Auth stays off.
pub fn root_and_alice() -> Vec<Request> {
    [
        Cmd::UserAdd(AuthUserAddRequest {
            name: "root".into(),
            ..Default::default()
        }),
        Cmd::RoleAdd(AuthRoleAddRequest {
            name: "root".into(),
        }),
        Cmd::UserGrantRole(AuthUserGrantRoleRequest {
            user: "root".into(),
            role: "root".into(),
        }),
        Cmd::RoleAdd(AuthRoleAddRequest {
            name: "writer".into(),
        }),
        Cmd::RoleGrantPermission(AuthRoleGrantPermissionRequest {
            name: "writer".into(),
            perm: Some(Permission {
                perm_type: PermType::Readwrite as i32,
                key: b"/alice/".to_vec(),
                range_end: b"/alice0".to_vec(),
            }),
        }),
        Cmd::UserAdd(AuthUserAddRequest {
            name: "alice".into(),
            ..Default::default()
        }),
        Cmd::UserGrantRole(AuthUserGrantRoleRequest {
            user: "alice".into(),
            role: "writer".into(),
        }),
    ]
    .into_iter()
    .map(auth)
    .collect()
}

/// Every key at revision `rev`.
pub fn all_at(store: &Store, rev: i64) -> Vec<KeyValue> {
    store
        .range(&RangeRequest {
            key: vec![0],
            range_end: vec![0],
            revision: rev,
            ..Default::default()
        })
        .unwrap()
        .kvs
}
