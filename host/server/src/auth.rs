//! Who is calling, and what they may do. With auth off every call is allowed. With it on, a
//! caller is a user named by a token (gRPC metadata `token`, the gateway's `Authorization`
//! header) or by a client certificate's CN. Members never call each other here: their calls
//! travel over the peer transport (`member_calls`), so nothing on the client port answers to
//! a member's word.
//!
//! Tokens are signed with the cluster's token key (replicated state, new at every `auth
//! enable` that turns auth on), so every member checks them without asking another:
//! `name.expiry.fp.mac`, where `fp` fingerprints the user's stored password hash (a new
//! password voids the old tokens) and `mac` is the whole HMAC-SHA256 over the rest, compared
//! in constant time. They last --auth-token-ttl. Passwords
//! are bcrypt hashes of etcd's cost; a verified (user, password, hash) is remembered, so a
//! storm of re-authentication after an election costs one bcrypt per user (etcd #9615).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use base64::Engine;
use conclave_proto::conclavepb::CheckedFor;
use conclave_proto::etcdserverpb::{DeleteRangeRequest, PutRequest, RangeRequest, TxnRequest};
use conclave_store::{Access, AuthState, KeyRange, RequestError, Store};
use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use tonic::Code;
use tonic::metadata::MetadataMap;

use crate::error::AuthError;
use crate::tokens::TokenKind;

/// Where clients put their token, as etcd's clients do.
pub const TOKEN_METADATA: &str = "token";
/// The gateway's header for it.
pub const AUTHORIZATION: &str = "authorization";
/// Verified logins remembered, at most; the set starts over beyond that.
const MAX_VERIFIED: usize = 100_000;

pub const PERMISSION_DENIED: crate::error::EtcdError =
    crate::error::EtcdError::new(Code::PermissionDenied, "etcdserver: permission denied");
pub const INVALID_AUTH_TOKEN: crate::error::EtcdError =
    crate::error::EtcdError::new(Code::Unauthenticated, "etcdserver: invalid auth token");
pub const AUTH_FAILED: crate::error::EtcdError = crate::error::EtcdError::new(
    Code::InvalidArgument,
    "etcdserver: authentication failed, invalid user ID or password",
);
pub const AUTH_NOT_ENABLED: crate::error::EtcdError = crate::error::EtcdError::new(
    Code::FailedPrecondition,
    "etcdserver: authentication is not enabled",
);
pub const AUTH_OLD_REVISION: crate::error::EtcdError = crate::error::EtcdError::new(
    Code::InvalidArgument,
    "etcdserver: revision of auth store is old",
);
pub const USER_EMPTY: crate::error::EtcdError =
    crate::error::EtcdError::new(Code::InvalidArgument, "etcdserver: user name is empty");

/// Who is on the other end of a client connection: the CN of its verified certificate, if it
/// showed one. Requests carry it (as axum's `ConnectInfo`), so that auth can take it as the
/// user.
#[derive(Debug, Clone, Default)]
pub struct ClientIdentity(pub Option<String>);

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Caller {
    /// Auth is off: anyone may do anything.
    Anyone,
    User {
        name: String,
        state: Arc<AuthState>,
    },
}

impl Caller {
    pub fn is_root(&self) -> bool {
        match self {
            Caller::Anyone => true,
            Caller::User { name, state } => state.is_root(name),
        }
    }

    pub fn require_root(&self) -> Result<(), AuthError> {
        if self.is_root() {
            Ok(())
        } else {
            Err(PERMISSION_DENIED.into())
        }
    }

    /// Whether the caller may read or write the keys `key`..`range_end` (etcd's forms).
    pub fn check(&self, key: &[u8], range_end: &[u8], access: Access) -> Result<(), AuthError> {
        self.checked(|state, user| state.check(user, key, range_end, access))
    }

    pub fn check_range(&self, range: &KeyRange, access: Access) -> Result<(), AuthError> {
        match self {
            Caller::Anyone => Ok(()),
            Caller::User { name, state } if state.permits(name, range, access) => Ok(()),
            Caller::User { .. } => Err(PERMISSION_DENIED.into()),
        }
    }

    /// A range request's keys.
    pub fn check_read(&self, r: &RangeRequest) -> Result<(), AuthError> {
        self.checked(|state, user| state.check_read(user, r))
    }

    /// A put's key (and its old value, when asked for).
    pub fn check_put(&self, r: &PutRequest) -> Result<(), AuthError> {
        self.checked(|state, user| state.check_put(user, r))
    }

    /// A delete's keys (and their old values, when asked for).
    pub fn check_delete(&self, r: &DeleteRangeRequest) -> Result<(), AuthError> {
        self.checked(|state, user| state.check_delete(user, r))
    }

    /// Every compare and every operation of both branches, nested txns included, as etcd
    /// checks a txn whichever branch it takes. Apply checks writes again with the same rules
    /// (the store's `AuthState`).
    pub fn check_txn(&self, t: &TxnRequest) -> Result<(), AuthError> {
        self.checked(|state, user| state.check_txn(user, t))
    }

    fn checked(
        &self,
        check: impl FnOnce(&AuthState, &str) -> Result<(), RequestError>,
    ) -> Result<(), AuthError> {
        match self {
            Caller::Anyone => Ok(()),
            Caller::User { name, state } => Ok(check(state, name)?),
        }
    }

    /// Whom a write is proposed for, for apply's own check.
    pub fn checked_for(&self) -> CheckedFor {
        CheckedFor {
            user: self.user().unwrap_or_default().to_string(),
        }
    }

    /// The user's name, if a user is calling.
    pub fn user(&self) -> Option<&str> {
        match self {
            Caller::User { name, .. } => Some(name),
            _ => None,
        }
    }
}

pub struct Authenticator {
    store: Arc<Store>,
    token_ttl: Duration,
    /// --auth-token: how tokens are made and read.
    kind: TokenKind,
    /// --bcrypt-cost: the cost new password hashes are made at.
    bcrypt_cost: u32,
    /// Fingerprints of (user, password, stored hash) that bcrypt accepted.
    verified: Mutex<HashSet<[u8; 32]>>,
}

type HmacSha256 = Hmac<Sha256>;

impl Authenticator {
    pub fn new(store: Arc<Store>, token_ttl: Duration, kind: TokenKind, bcrypt_cost: u32) -> Self {
        Self {
            store,
            token_ttl,
            kind,
            bcrypt_cost,
            verified: Mutex::new(HashSet::new()),
        }
    }

    /// Who sent `request`.
    pub fn caller<T>(&self, request: &tonic::Request<T>) -> Result<Caller, AuthError> {
        let certificate = request
            .extensions()
            .get::<ConnectInfo<ClientIdentity>>()
            .and_then(|c| c.0.0.as_deref());
        self.caller_of(request.metadata(), certificate)
    }

    pub fn caller_of(
        &self,
        metadata: &MetadataMap,
        certificate: Option<&str>,
    ) -> Result<Caller, AuthError> {
        let state = self.store.auth();
        if !state.enabled {
            return Ok(Caller::Anyone);
        }
        let token = metadata
            .get(TOKEN_METADATA)
            .or_else(|| metadata.get(AUTHORIZATION))
            .map(|t| t.to_str().unwrap_or_default());
        let name = match (token, certificate) {
            (Some(token), _) => self.verify_token(&state, token)?,
            (None, Some(cn)) if state.users.contains_key(cn) => cn.to_string(),
            (None, Some(_)) => return Err(INVALID_AUTH_TOKEN.into()),
            (None, None) => return Err(USER_EMPTY.into()),
        };
        Ok(Caller::User { name, state })
    }

    /// Checks a user's password and hands out a token.
    pub async fn authenticate(&self, name: &str, password: &str) -> Result<String, AuthError> {
        let state = self.store.auth();
        if !state.enabled {
            return Err(AUTH_NOT_ENABLED.into());
        }
        let user = state.users.get(name).ok_or(AUTH_FAILED)?;
        let no_password = user.options.is_some_and(|o| o.no_password);
        if no_password || user.password.is_empty() {
            return Err(AUTH_FAILED.into());
        }
        let hash = String::from_utf8_lossy(&user.password).into_owned();
        let fingerprint: [u8; 32] = Sha256::new()
            .chain_update(name.as_bytes())
            .chain_update([0])
            .chain_update(password.as_bytes())
            .chain_update([0])
            .chain_update(hash.as_bytes())
            .finalize()
            .into();
        if !self.verified.lock().contains(&fingerprint) {
            let password = password.to_string();
            let ok = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
                .await
                .map_err(|e| AuthError::Internal(e.to_string()))?
                .unwrap_or(false);
            if !ok {
                return Err(AUTH_FAILED.into());
            }
            let mut verified = self.verified.lock();
            if verified.len() >= MAX_VERIFIED {
                verified.clear();
            }
            verified.insert(fingerprint);
        }
        let now = crate::clock::wall_ms();
        match &self.kind {
            TokenKind::Simple => {
                if state.token_key.len() < MIN_TOKEN_KEY {
                    // A key anyone could guess would let anyone sign a token.
                    return Err(AuthError::CannotSign(
                        "the cluster has no token signing key; run `auth disable` then `auth enable` to make one",
                    ));
                }
                let expires = now + self.token_ttl.as_millis() as i64;
                Ok(sign_token(&state.token_key, name, expires, &user.password))
            }
            TokenKind::Jwt(jwt) => {
                jwt.issue(name, state.revision, now)
                    .ok_or(AuthError::CannotSign(
                        "this member has no key to sign tokens (--auth-token jwt without priv-key)",
                    ))
            }
        }
    }

    /// The user a token names, if it is valid now.
    fn verify_token(&self, state: &AuthState, token: &str) -> Result<String, AuthError> {
        match &self.kind {
            TokenKind::Simple => self.verify_signed(state, token),
            TokenKind::Jwt(jwt) => {
                let user = jwt.read(token).ok_or(INVALID_AUTH_TOKEN)?;
                if !state.users.contains_key(&user.name) {
                    return Err(INVALID_AUTH_TOKEN.into());
                }
                // As etcd: any auth change since the login makes the token stale, and the
                // client logs in again.
                if user.revision < state.revision {
                    return Err(AUTH_OLD_REVISION.into());
                }
                Ok(user.name)
            }
        }
    }

    /// A token of our own signed kind (`name.expiry.fp.mac`).
    fn verify_signed(&self, state: &AuthState, token: &str) -> Result<String, AuthError> {
        let invalid = || AuthError::from(INVALID_AUTH_TOKEN);
        if state.token_key.len() < MIN_TOKEN_KEY {
            return Err(invalid());
        }
        let mut parts = token.rsplitn(2, '.');
        let (mac, signed) = (
            parts.next().ok_or_else(invalid)?,
            parts.next().ok_or_else(invalid)?,
        );
        let mut fields = signed.split('.');
        let (name, expires, fp) = (
            fields.next().ok_or_else(invalid)?,
            fields.next().ok_or_else(invalid)?,
            fields.next().ok_or_else(invalid)?,
        );
        let name = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(name)
            .ok()
            .and_then(|n| String::from_utf8(n).ok())
            .ok_or_else(invalid)?;
        let expires: i64 = expires.parse().map_err(|_| invalid())?;
        let mac = hex_decode(mac).ok_or_else(invalid)?;
        let mut check = HmacSha256::new_from_slice(&state.token_key).map_err(|_| invalid())?;
        check.update(signed.as_bytes());
        // The whole tag, compared in constant time: a shorter one would be guessable a byte
        // at a time.
        check.verify_slice(&mac).map_err(|_| invalid())?;
        let user = state.users.get(&name).ok_or_else(invalid)?;
        if expires < crate::clock::wall_ms() || fp != password_fingerprint(&user.password) {
            return Err(invalid());
        }
        Ok(name)
    }
}

impl Authenticator {
    /// A bcrypt hash of `password` at `--bcrypt-cost`, off the async workers.
    pub async fn hash_password(&self, password: String) -> Result<String, AuthError> {
        let cost = self.bcrypt_cost;
        tokio::task::spawn_blocking(move || bcrypt::hash(password, cost))
            .await
            .map_err(|e| AuthError::Internal(e.to_string()))?
            .map_err(|e| AuthError::Internal(format!("hashing the password: {e}")))
    }
}

/// Bytes of a token signing key: what [`new_token_key`] makes, and the least a token is
/// signed or verified with.
const MIN_TOKEN_KEY: usize = 32;

/// 32 random bytes for a new token key.
pub fn new_token_key() -> Result<Vec<u8>, AuthError> {
    let mut key = vec![0u8; MIN_TOKEN_KEY];
    getrandom::fill(&mut key).map_err(|e| AuthError::Internal(format!("no randomness: {e}")))?;
    Ok(key)
}

fn sign_token(key: &[u8], name: &str, expires_ms: i64, password_hash: &[u8]) -> String {
    let signed = format!(
        "{}.{expires_ms}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(name),
        password_fingerprint(password_hash)
    );
    let mac = match HmacSha256::new_from_slice(key) {
        Ok(mut m) => {
            m.update(signed.as_bytes());
            hex(&m.finalize().into_bytes())
        }
        // HMAC takes keys of any length.
        Err(_) => String::new(),
    };
    format!("{signed}.{mac}")
}

fn password_fingerprint(hash: &[u8]) -> String {
    hex(&Sha256::digest(hash)[..8])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_user_until_it_is_tampered_with() {
        let key = b"0123456789abcdef0123456789abcdef";
        let token = sign_token(key, "alice", i64::MAX, b"$2b$hash");
        let mut state = AuthState {
            enabled: true,
            token_key: key.to_vec(),
            ..Default::default()
        };
        state.users.insert(
            "alice".into(),
            conclave_proto::authpb::User {
                name: b"alice".to_vec(),
                password: b"$2b$hash".to_vec(),
                ..Default::default()
            },
        );
        let dir = tempfile::tempdir().unwrap();
        let auth = Authenticator::new(
            Arc::new(Store::open(dir.path()).unwrap()),
            Duration::from_secs(300),
            TokenKind::Simple,
            4,
        );
        assert_eq!(auth.verify_token(&state, &token).unwrap(), "alice");
        // --bcrypt-cost reaches the hashes made from now on.
        let hash = tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(auth.hash_password("pw".into()))
            .unwrap();
        assert!(hash.starts_with("$2b$04$"), "{hash}");
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let forged = token.replacen(&b64("alice"), &b64("root"), 1);
        assert_ne!(forged, token);
        assert!(auth.verify_token(&state, &forged).is_err());
        let mut other = token.clone();
        let last = other.pop().unwrap();
        other.push(if last == '0' { '1' } else { '0' });
        assert!(auth.verify_token(&state, &other).is_err());
        // A tag cut short is no tag, even if it is the real one's first byte.
        let (signed, mac) = token.rsplit_once('.').unwrap();
        assert!(
            auth.verify_token(&state, &format!("{signed}.{}", &mac[..2]))
                .is_err()
        );
        // A new password voids it.
        state.users.get_mut("alice").unwrap().password = b"$2b$other".to_vec();
        assert!(auth.verify_token(&state, &token).is_err());
        // So does time.
        let old = sign_token(key, "alice", 1, b"$2b$other");
        assert!(auth.verify_token(&state, &old).is_err());
    }
}
