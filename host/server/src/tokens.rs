//! etcd's `--auth-token` choices: what a token is, how it is made at login and how any member
//! reads it back.
//!
//! - `simple` (etcd's default): an opaque token. conclave signs it with the cluster's token
//!   key (`auth`): every member checks it without asking another, and it survives a leader
//!   change and a restart, which etcd's in-memory simple tokens do not.
//! - `jwt,pub-key=PATH,priv-key=PATH,sign-method=ALG[,ttl=DURATION]`: a JSON Web Token with
//!   etcd's claims (`username`, `revision`, `exp`), signed with the operator's key, so tokens
//!   from etcd's tooling and conclave's read alike. A member given only the public key checks
//!   tokens and hands out none. As in etcd, a token from before the last auth change is stale
//!   ("revision of auth store is old"); etcd's clients log in again when told so.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// etcd's JWT lifetime when `ttl=` is not given.
const DEFAULT_JWT_TTL: Duration = Duration::from_secs(300);

/// Why `--auth-token` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenConfigError {
    #[error("--auth-token {0:?}: unknown token type (simple or jwt)")]
    UnknownType(String),
    #[error("--auth-token: option {0:?} is not name=value")]
    BadOption(String),
    #[error("--auth-token: unknown jwt option {0:?}")]
    UnknownOption(String),
    #[error("--auth-token jwt needs sign-method")]
    NoSignMethod,
    #[error("--auth-token jwt: unknown sign-method {0:?}")]
    UnknownSignMethod(String),
    #[error("--auth-token jwt needs pub-key (and priv-key to hand out tokens)")]
    NoKey,
    #[error("--auth-token jwt: ttl {0:?}: {1}")]
    BadTtl(String, humantime::DurationError),
    #[error("--auth-token jwt: cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--auth-token jwt: {path} is not a {what} key for {alg:?}: {source}")]
    Key {
        path: PathBuf,
        what: &'static str,
        alg: Algorithm,
        source: jsonwebtoken::errors::Error,
    },
}

/// How this member's tokens are made.
pub enum TokenKind {
    Simple,
    Jwt(Jwt),
}

impl TokenKind {
    /// Parses etcd's `--auth-token` value.
    pub fn parse(spec: &str) -> Result<TokenKind, TokenConfigError> {
        let mut parts = spec.split(',').map(str::trim);
        match parts.next().unwrap_or_default() {
            "simple" | "" => Ok(TokenKind::Simple),
            "jwt" => Jwt::from_options(parts).map(TokenKind::Jwt),
            other => Err(TokenConfigError::UnknownType(other.to_string())),
        }
    }
}

/// The claims etcd puts in its JWTs.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    username: String,
    revision: u64,
    exp: i64,
}

/// What a JWT said, once its signature and expiry were checked.
#[derive(Debug, PartialEq, Eq)]
pub struct JwtUser {
    pub name: String,
    /// The auth revision at login.
    pub revision: u64,
}

pub struct Jwt {
    algorithm: Algorithm,
    /// Absent on a member given only the public key: it checks tokens and issues none.
    signing: Option<EncodingKey>,
    checking: DecodingKey,
    ttl: Duration,
}

impl Jwt {
    fn from_options<'a>(options: impl Iterator<Item = &'a str>) -> Result<Jwt, TokenConfigError> {
        let (mut public, mut private, mut method, mut ttl) = (None, None, None, DEFAULT_JWT_TTL);
        for option in options.filter(|o| !o.is_empty()) {
            let (name, value) = option
                .split_once('=')
                .ok_or_else(|| TokenConfigError::BadOption(option.to_string()))?;
            match name {
                "pub-key" => public = Some(PathBuf::from(value)),
                "priv-key" => private = Some(PathBuf::from(value)),
                "sign-method" => method = Some(value.to_string()),
                "ttl" => {
                    ttl = humantime::parse_duration(value)
                        .map_err(|e| TokenConfigError::BadTtl(value.to_string(), e))?
                }
                other => return Err(TokenConfigError::UnknownOption(other.to_string())),
            }
        }
        let method = method.ok_or(TokenConfigError::NoSignMethod)?;
        let algorithm = algorithm(&method)?;
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| TokenConfigError::Read {
                path: path.to_path_buf(),
                source,
            })
        };
        let key_error = |path: &Path, what, source| TokenConfigError::Key {
            path: path.to_path_buf(),
            what,
            alg: algorithm,
            source,
        };
        if is_hmac(algorithm) {
            // etcd's HMAC methods take the secret from priv-key.
            let path = private.or(public).ok_or(TokenConfigError::NoKey)?;
            let secret = read(&path)?;
            return Ok(Jwt {
                algorithm,
                signing: Some(EncodingKey::from_secret(&secret)),
                checking: DecodingKey::from_secret(&secret),
                ttl,
            });
        }
        let public = public.ok_or(TokenConfigError::NoKey)?;
        let pem = read(&public)?;
        let checking = match algorithm {
            Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(&pem),
            Algorithm::EdDSA => DecodingKey::from_ed_pem(&pem),
            _ => DecodingKey::from_rsa_pem(&pem),
        }
        .map_err(|e| key_error(&public, "public", e))?;
        let signing = match private {
            None => None,
            Some(path) => {
                let pem = read(&path)?;
                Some(
                    match algorithm {
                        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&pem),
                        Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
                        _ => EncodingKey::from_rsa_pem(&pem),
                    }
                    .map_err(|e| key_error(&path, "private", e))?,
                )
            }
        };
        Ok(Jwt {
            algorithm,
            signing,
            checking,
            ttl,
        })
    }

    /// A token for `name` at auth revision `revision`; `None` on a member that has no private
    /// key.
    pub fn issue(&self, name: &str, revision: u64, now_ms: i64) -> Option<String> {
        let signing = self.signing.as_ref()?;
        let claims = Claims {
            username: name.to_string(),
            revision,
            exp: now_ms / 1000 + self.ttl.as_secs() as i64,
        };
        jsonwebtoken::encode(&Header::new(self.algorithm), &claims, signing).ok()
    }

    /// The user a token names, if its signature is ours and it has not expired.
    pub fn read(&self, token: &str) -> Option<JwtUser> {
        let mut validation = Validation::new(self.algorithm);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp"]);
        let data = jsonwebtoken::decode::<Claims>(token, &self.checking, &validation).ok()?;
        Some(JwtUser {
            name: data.claims.username,
            revision: data.claims.revision,
        })
    }
}

fn is_hmac(algorithm: Algorithm) -> bool {
    matches!(
        algorithm,
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
    )
}

/// etcd's sign-method names.
fn algorithm(method: &str) -> Result<Algorithm, TokenConfigError> {
    Ok(match method {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        "HS256" => Algorithm::HS256,
        "HS384" => Algorithm::HS384,
        "HS512" => Algorithm::HS512,
        other => return Err(TokenConfigError::UnknownSignMethod(other.to_string())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hmac(dir: &Path) -> Jwt {
        let secret = dir.join("secret");
        std::fs::write(&secret, b"a secret of some length").unwrap();
        let spec = format!("jwt,priv-key={},sign-method=HS256,ttl=1m", secret.display());
        match TokenKind::parse(&spec).unwrap() {
            TokenKind::Jwt(j) => j,
            TokenKind::Simple => panic!("not jwt"),
        }
    }

    #[test]
    fn a_jwt_reads_back_until_it_expires_or_is_altered() {
        let dir = tempfile::tempdir().unwrap();
        let jwt = hmac(dir.path());
        let now = crate::clock::wall_ms();
        let token = jwt.issue("alice", 7, now).unwrap();
        assert_eq!(
            jwt.read(&token),
            Some(JwtUser {
                name: "alice".into(),
                revision: 7
            })
        );
        // An hour ago, with a one-minute TTL: expired.
        let old = jwt.issue("alice", 7, now - 3_600_000).unwrap();
        assert_eq!(jwt.read(&old), None);
        // Another payload under the same signature.
        let mut parts: Vec<&str> = token.split('.').collect();
        let other = jwt.issue("root", 7, now).unwrap();
        parts[1] = other.split('.').nth(1).unwrap();
        assert_eq!(jwt.read(&parts.join(".")), None);
        // "alg": "none" is not ours.
        let none = format!("eyJhbGciOiJub25lIn0.{}.", token.split('.').nth(1).unwrap());
        assert_eq!(jwt.read(&none), None);
    }

    #[test]
    fn etcds_flag_forms() {
        assert!(matches!(TokenKind::parse("simple"), Ok(TokenKind::Simple)));
        assert!(matches!(
            TokenKind::parse("opaque"),
            Err(TokenConfigError::UnknownType(_))
        ));
        assert!(matches!(
            TokenKind::parse("jwt,pub-key=/nonexistent"),
            Err(TokenConfigError::NoSignMethod)
        ));
        assert!(matches!(
            TokenKind::parse("jwt,sign-method=XS1"),
            Err(TokenConfigError::UnknownSignMethod(_))
        ));
        assert!(matches!(
            TokenKind::parse("jwt,sign-method=RS256,pub-key=/nonexistent"),
            Err(TokenConfigError::Read { .. })
        ));
        assert!(matches!(
            TokenKind::parse("jwt,sign-method=RS256,colour=blue"),
            Err(TokenConfigError::UnknownOption(_))
        ));
    }
}
