//! Users, roles and whether auth is on: part of the replicated state, as etcd's auth store.
//! Applying the auth commands with etcd's rules and errors, and the permission check the
//! server runs on every request (a user may touch a key range when the union of its roles'
//! permissions of that kind covers it; the `root` role may touch everything).
//!
//! On disk, in `meta` (so snapshots and backups carry it): `auth/enabled`, `auth/revision`,
//! `auth/token-key` (what members sign tokens with), `auth/user/<name>` -> authpb.User,
//! `auth/role/<name>` -> authpb.Role. In memory, one immutable [`AuthState`] replaced on every
//! change, so that a request's check takes no lock for long.

use std::collections::BTreeMap;
use std::sync::Arc;

use conclave_proto::authpb::{Permission, Role, User, permission::Type as PermType};
use conclave_proto::conclavepb::{AuthChanged, AuthCommand, auth_command::Request as Cmd};
use conclave_proto::etcdserverpb::{
    DeleteRangeRequest, PutRequest, RangeRequest, TxnRequest, request_op,
};
use prost::Message;

use crate::error::{RequestError, Result, StoreError};
use crate::key_range::KeyRange;
use crate::write::BatchWriter;

pub(crate) const META_AUTH_PREFIX: &[u8] = b"auth/";
const META_ENABLED: &[u8] = b"auth/enabled";
const META_REVISION: &[u8] = b"auth/revision";
const META_TOKEN_KEY: &[u8] = b"auth/token-key";
const META_USER_PREFIX: &[u8] = b"auth/user/";
const META_ROLE_PREFIX: &[u8] = b"auth/role/";

/// The user and the role with every right, as in etcd.
pub const ROOT: &str = "root";

/// What a request wants to do with a key range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// The whole auth state at one point.
#[derive(Debug, Default, Clone)]
pub struct AuthState {
    pub enabled: bool,
    pub revision: u64,
    pub token_key: Vec<u8>,
    pub users: BTreeMap<String, User>,
    pub roles: BTreeMap<String, Role>,
}

impl AuthState {
    pub fn is_root(&self, user: &str) -> bool {
        self.users
            .get(user)
            .is_some_and(|u| u.roles.iter().any(|r| r == ROOT))
    }

    /// Whether `user` may read or write every key of `range`.
    pub fn permits(&self, user: &str, range: &KeyRange, access: Access) -> bool {
        let Some(u) = self.users.get(user) else {
            return false;
        };
        if u.roles.iter().any(|r| r == ROOT) {
            return true;
        }
        let granted: Vec<KeyRange> = u
            .roles
            .iter()
            .filter_map(|r| self.roles.get(r))
            .flat_map(|r| &r.key_permission)
            .filter(|p| grants(p, access))
            .map(|p| KeyRange::new(&p.key, &p.range_end))
            .collect();
        range.covered_by(&granted)
    }

    /// Whether `user` may read or write the keys `key`..`range_end` (etcd's forms).
    pub fn check(
        &self,
        user: &str,
        key: &[u8],
        range_end: &[u8],
        access: Access,
    ) -> Result<(), RequestError> {
        if self.permits(user, &KeyRange::new(key, range_end), access) {
            Ok(())
        } else {
            Err(RequestError::PermissionDenied)
        }
    }

    /// A range request's keys.
    pub fn check_read(&self, user: &str, r: &RangeRequest) -> Result<(), RequestError> {
        self.check(user, &r.key, &r.range_end, Access::Read)
    }

    /// A put's key (and its old value, when asked for).
    pub fn check_put(&self, user: &str, r: &PutRequest) -> Result<(), RequestError> {
        self.check(user, &r.key, &[], Access::Write)?;
        if r.prev_kv {
            self.check(user, &r.key, &[], Access::Read)?;
        }
        Ok(())
    }

    /// A delete's keys (and their old values, when asked for).
    pub fn check_delete(&self, user: &str, r: &DeleteRangeRequest) -> Result<(), RequestError> {
        self.check(user, &r.key, &r.range_end, Access::Write)?;
        if r.prev_kv {
            self.check(user, &r.key, &r.range_end, Access::Read)?;
        }
        Ok(())
    }

    /// Every compare and every operation of both branches, nested txns included, as etcd
    /// checks a txn whichever branch it takes.
    pub fn check_txn(&self, user: &str, t: &TxnRequest) -> Result<(), RequestError> {
        for c in &t.compare {
            self.check(user, &c.key, &c.range_end, Access::Read)?;
        }
        for op in t.success.iter().chain(&t.failure) {
            match &op.request {
                Some(request_op::Request::RequestRange(r)) => self.check_read(user, r)?,
                Some(request_op::Request::RequestPut(p)) => self.check_put(user, p)?,
                Some(request_op::Request::RequestDeleteRange(d)) => self.check_delete(user, d)?,
                Some(request_op::Request::RequestTxn(inner)) => self.check_txn(user, inner)?,
                None => {}
            }
        }
        Ok(())
    }

    fn restore(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("auth entry {key:?}: {what}"));
        let be8 = |v: &[u8]| <[u8; 8]>::try_from(v).map_err(|_| corrupt("not 8 bytes"));
        match auth_entry(key) {
            Some(AuthEntry::Enabled) => self.enabled = value == [1],
            Some(AuthEntry::Revision) => self.revision = u64::from_be_bytes(be8(value)?),
            Some(AuthEntry::TokenKey) => self.token_key = value.to_vec(),
            Some(AuthEntry::User(name)) => {
                let user = User::decode(value).map_err(|e| corrupt(&e.to_string()))?;
                self.users
                    .insert(String::from_utf8_lossy(name).into_owned(), user);
            }
            Some(AuthEntry::Role(name)) => {
                let role = Role::decode(value).map_err(|e| corrupt(&e.to_string()))?;
                self.roles
                    .insert(String::from_utf8_lossy(name).into_owned(), role);
            }
            None => {}
        }
        Ok(())
    }
}

/// What an auth meta entry is, by its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthEntry<'a> {
    Enabled,
    Revision,
    TokenKey,
    User(&'a [u8]),
    Role(&'a [u8]),
}

impl AuthEntry<'_> {
    /// The meta key this entry is kept under.
    pub fn key(self) -> Vec<u8> {
        match self {
            AuthEntry::Enabled => META_ENABLED.to_vec(),
            AuthEntry::Revision => META_REVISION.to_vec(),
            AuthEntry::TokenKey => META_TOKEN_KEY.to_vec(),
            AuthEntry::User(name) => [META_USER_PREFIX, name].concat(),
            AuthEntry::Role(name) => [META_ROLE_PREFIX, name].concat(),
        }
    }
}

/// The auth entry a meta key holds; None for a key that is not one.
pub(crate) fn auth_entry(key: &[u8]) -> Option<AuthEntry<'_>> {
    if key == META_ENABLED {
        Some(AuthEntry::Enabled)
    } else if key == META_REVISION {
        Some(AuthEntry::Revision)
    } else if key == META_TOKEN_KEY {
        Some(AuthEntry::TokenKey)
    } else if let Some(name) = key.strip_prefix(META_USER_PREFIX) {
        Some(AuthEntry::User(name))
    } else {
        key.strip_prefix(META_ROLE_PREFIX).map(AuthEntry::Role)
    }
}

fn grants(p: &Permission, access: Access) -> bool {
    match PermType::try_from(p.perm_type).unwrap_or(PermType::Read) {
        PermType::Readwrite => true,
        PermType::Read => access == Access::Read,
        PermType::Write => access == Access::Write,
    }
}

/// The auth state as the store holds it.
#[derive(Debug, Default, Clone)]
pub(crate) struct Auth {
    pub current: Arc<AuthState>,
}

impl Auth {
    /// Rebuild helper for start-up: one `auth/` meta entry read back from disk.
    pub fn restore(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        Arc::make_mut(&mut self.current).restore(key, value)
    }
}

fn user_key(name: &str) -> Vec<u8> {
    AuthEntry::User(name.as_bytes()).key()
}

fn role_key(name: &str) -> Vec<u8> {
    AuthEntry::Role(name.as_bytes()).key()
}

impl BatchWriter<'_> {
    /// Applies one auth change with etcd's rules; every change that succeeds moves the auth
    /// revision on.
    pub(crate) fn auth(&mut self, c: &AuthCommand) -> Result<AuthChanged> {
        let mut next = (*self.state.auth.current).clone();
        let Some(request) = &c.request else {
            return Err(RequestError::InvalidAuthManagement.into());
        };
        let mut touched_users: Vec<String> = Vec::new();
        let mut touched_roles: Vec<String> = Vec::new();
        match request {
            Cmd::Enable(_) => {
                let root = next.users.get(ROOT).ok_or(RequestError::RootUserNotExist)?;
                if !root.roles.iter().any(|r| r == ROOT) {
                    return Err(RequestError::RootRoleNotExist.into());
                }
                // A new key each time auth goes from off to on: tokens signed before are void
                // (the way to rotate the key is `auth disable` then `auth enable`). A command
                // without a key (written before keys travelled with it) keeps the old one.
                if !next.enabled && !c.token_key.is_empty() {
                    next.token_key = c.token_key.clone();
                }
                next.enabled = true;
            }
            Cmd::Disable(_) => next.enabled = false,
            Cmd::UserAdd(r) => {
                if r.name.is_empty() {
                    return Err(RequestError::UserEmpty.into());
                }
                if next.users.contains_key(&r.name) {
                    return Err(RequestError::UserAlreadyExist.into());
                }
                let user = User {
                    name: r.name.clone().into_bytes(),
                    password: r.hashed_password.clone().into_bytes(),
                    roles: Vec::new(),
                    options: r.options,
                };
                next.users.insert(r.name.clone(), user);
                touched_users.push(r.name.clone());
            }
            Cmd::UserDelete(r) => {
                if next.enabled && r.name == ROOT {
                    return Err(RequestError::InvalidAuthManagement.into());
                }
                next.users
                    .remove(&r.name)
                    .ok_or(RequestError::UserNotFound)?;
                touched_users.push(r.name.clone());
            }
            Cmd::UserChangePassword(r) => {
                let user = next
                    .users
                    .get_mut(&r.name)
                    .ok_or(RequestError::UserNotFound)?;
                user.password = r.hashed_password.clone().into_bytes();
                touched_users.push(r.name.clone());
            }
            Cmd::UserGrantRole(r) => {
                if r.role != ROOT && !next.roles.contains_key(&r.role) {
                    return Err(RequestError::RoleNotFound.into());
                }
                let user = next
                    .users
                    .get_mut(&r.user)
                    .ok_or(RequestError::UserNotFound)?;
                if !user.roles.contains(&r.role) {
                    user.roles.push(r.role.clone());
                    user.roles.sort();
                }
                touched_users.push(r.user.clone());
            }
            Cmd::UserRevokeRole(r) => {
                if next.enabled && r.name == ROOT && r.role == ROOT {
                    return Err(RequestError::InvalidAuthManagement.into());
                }
                let user = next
                    .users
                    .get_mut(&r.name)
                    .ok_or(RequestError::UserNotFound)?;
                let before = user.roles.len();
                user.roles.retain(|x| *x != r.role);
                if user.roles.len() == before {
                    return Err(RequestError::RoleNotGranted.into());
                }
                touched_users.push(r.name.clone());
            }
            Cmd::RoleAdd(r) => {
                if r.name.is_empty() {
                    return Err(RequestError::RoleEmpty.into());
                }
                if next.roles.contains_key(&r.name) {
                    return Err(RequestError::RoleAlreadyExist.into());
                }
                next.roles.insert(
                    r.name.clone(),
                    Role {
                        name: r.name.clone().into_bytes(),
                        key_permission: Vec::new(),
                    },
                );
                touched_roles.push(r.name.clone());
            }
            Cmd::RoleDelete(r) => {
                if next.enabled && r.role == ROOT {
                    return Err(RequestError::InvalidAuthManagement.into());
                }
                next.roles
                    .remove(&r.role)
                    .ok_or(RequestError::RoleNotFound)?;
                touched_roles.push(r.role.clone());
                // As etcd: the role leaves every user that had it.
                for (name, user) in next.users.iter_mut() {
                    if user.roles.contains(&r.role) {
                        user.roles.retain(|x| *x != r.role);
                        touched_users.push(name.clone());
                    }
                }
            }
            Cmd::RoleGrantPermission(r) => {
                let perm = r.perm.clone().ok_or(RequestError::PermissionNotGiven)?;
                let role = next
                    .roles
                    .get_mut(&r.name)
                    .ok_or(RequestError::RoleNotFound)?;
                match role
                    .key_permission
                    .iter_mut()
                    .find(|p| p.key == perm.key && p.range_end == perm.range_end)
                {
                    Some(existing) => existing.perm_type = perm.perm_type,
                    None => role.key_permission.push(perm),
                }
                role.key_permission
                    .sort_by(|a, b| (&a.key, &a.range_end).cmp(&(&b.key, &b.range_end)));
                touched_roles.push(r.name.clone());
            }
            Cmd::RoleRevokePermission(r) => {
                let role = next
                    .roles
                    .get_mut(&r.role)
                    .ok_or(RequestError::RoleNotFound)?;
                let before = role.key_permission.len();
                role.key_permission
                    .retain(|p| !(p.key == r.key && p.range_end == r.range_end));
                if role.key_permission.len() == before {
                    return Err(RequestError::PermissionNotGranted.into());
                }
                touched_roles.push(r.role.clone());
            }
        }
        next.revision += 1;
        let meta = &self.backend.meta;
        for name in touched_users {
            match next.users.get(&name) {
                Some(u) => self.batch.insert(meta, user_key(&name), u.encode_to_vec()),
                None => self.batch.remove(meta, user_key(&name)),
            }
        }
        for name in touched_roles {
            match next.roles.get(&name) {
                Some(r) => self.batch.insert(meta, role_key(&name), r.encode_to_vec()),
                None => self.batch.remove(meta, role_key(&name)),
            }
        }
        self.batch
            .insert(meta, META_ENABLED, vec![u8::from(next.enabled)]);
        self.batch
            .insert(meta, META_REVISION, next.revision.to_be_bytes().to_vec());
        if !next.token_key.is_empty() {
            self.batch
                .insert(meta, META_TOKEN_KEY, next.token_key.clone());
        }
        let revision = next.revision;
        self.state.auth.current = Arc::new(next);
        Ok(AuthChanged {
            auth_revision: revision,
        })
    }
}
