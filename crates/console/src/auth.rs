//! Who is asking: sign-in with argon2 password hashes, sessions in signed cookies
//! (`HttpOnly`, `SameSite=Strict`, expiring), CSRF tokens bound to the session, a trusted
//! proxy header, and a limit on failed sign-ins.
//!
//! A session cookie is `base64url(name|expiry|nonce).base64url(HMAC-SHA256)`; the role is
//! read from the configuration on every request, so a changed role applies at once and a
//! removed user is signed out. The CSRF token of a session is an HMAC of its nonce: a form
//! posted without it, or with another session's, is refused.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

use crate::config::{ConsoleConfig, Role, UserConfig};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "finflow_session";
/// The sign-in form's cookie (its CSRF nonce before there is a session).
pub const LOGIN_COOKIE: &str = "finflow_login";

type HmacSha256 = Hmac<Sha256>;

/// Hashes `password` for `finflow.toml` (argon2id, random salt, PHC string).
///
/// # Errors
/// Only if argon2 refuses its own defaults (never in practice).
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::encode_b64(&random_bytes(16))?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// Whether `password` matches the PHC string `hash`.
#[must_use]
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// A signed-in person, as the handlers see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub role: Role,
    pub personal_data: bool,
    /// The token every form of this session carries.
    pub csrf: String,
}

impl User {
    /// Whether the role includes `role`.
    #[must_use]
    pub fn can(&self, role: Role) -> bool {
        self.role >= role
    }
}

/// Signs and checks cookies and tokens; counts failed sign-ins.
#[derive(Debug)]
pub struct Keys {
    key: Vec<u8>,
    ttl: Duration,
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl Keys {
    /// Keys from the configured secret, or a random one.
    #[must_use]
    pub fn new(config: &ConsoleConfig) -> Self {
        let key = match &config.session_secret {
            Some(secret) => secret.as_bytes().to_vec(),
            None => random_bytes(32),
        };
        Self {
            key,
            ttl: Duration::from_secs(config.session_ttl_secs.max(60)),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// How long a session lasts.
    #[must_use]
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn mac(&self, data: &[u8]) -> Vec<u8> {
        // HMAC takes a key of any length.
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC accepts any key length");
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }

    fn sign(&self, payload: &str) -> String {
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(self.mac(payload.as_bytes()))
        )
    }

    fn verify(&self, signed: &str) -> Option<String> {
        let (payload, sig) = signed.split_once('.')?;
        let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
        bool::from(self.mac(payload.as_bytes()).ct_eq(&sig)).then_some(payload)
    }

    /// A new session for `name`, expiring after the TTL from `now_secs` (Unix seconds).
    #[must_use]
    pub fn session(&self, name: &str, now_secs: i64) -> String {
        let expires = now_secs + i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX / 2);
        self.sign(&format!("{expires}|{}|{name}", nonce()))
    }

    /// The user a session cookie names, if it is genuine, unexpired at `now_secs`, and the
    /// user is still configured.
    #[must_use]
    pub fn user(&self, config: &ConsoleConfig, cookie: &str, now_secs: i64) -> Option<User> {
        let payload = self.verify(cookie)?;
        let mut parts = payload.splitn(3, '|');
        let expires: i64 = parts.next()?.parse().ok()?;
        let nonce = parts.next()?;
        let name = parts.next()?;
        if expires <= now_secs {
            return None;
        }
        let user = config.user(name)?;
        Some(self.signed_in(user, &format!("session|{nonce}")))
    }

    /// The user a trusted proxy names (no cookie: the proxy signs each request in).
    #[must_use]
    pub fn proxied(&self, config: &ConsoleConfig, peer: IpAddr, name: &str) -> Option<User> {
        if config.trusted_user_header.is_none() || !config.trusted_proxies.contains(&peer) {
            return None;
        }
        config
            .user(name)
            .map(|user| self.signed_in(user, &format!("proxy|{name}")))
    }

    fn signed_in(&self, user: &UserConfig, csrf_seed: &str) -> User {
        User {
            name: user.name.clone(),
            role: user.role,
            personal_data: user.personal_data,
            csrf: URL_SAFE_NO_PAD.encode(self.mac(format!("csrf|{csrf_seed}").as_bytes())),
        }
    }

    /// A fresh sign-in form nonce (its cookie) and the token the form carries.
    #[must_use]
    pub fn login_form(&self) -> (String, String) {
        let nonce = nonce();
        let token = self.login_token(&nonce);
        (self.sign(&nonce), token)
    }

    /// Whether `token` is the sign-in form's for the nonce cookie `cookie`.
    #[must_use]
    pub fn check_login_form(&self, cookie: &str, token: &str) -> bool {
        self.verify(cookie).is_some_and(|nonce| {
            bool::from(self.login_token(&nonce).as_bytes().ct_eq(token.as_bytes()))
        })
    }

    fn login_token(&self, nonce: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(format!("login|{nonce}").as_bytes()))
    }

    /// Whether sign-ins for `name` from `peer` are held back after too many failures.
    #[must_use]
    pub fn locked(&self, config: &ConsoleConfig, name: &str, peer: IpAddr) -> bool {
        let window = Duration::from_secs(config.login_window_secs);
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        failures.retain(|_, (_, first)| first.elapsed() < window);
        [format!("user|{name}"), format!("addr|{peer}")]
            .iter()
            .any(|k| {
                failures
                    .get(k)
                    .is_some_and(|(n, _)| *n >= config.max_failed_logins)
            })
    }

    /// Counts a failed sign-in for `name` and for `peer`.
    pub fn failed(&self, name: &str, peer: IpAddr) {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for key in [format!("user|{name}"), format!("addr|{peer}")] {
            failures.entry(key).or_insert((0, Instant::now())).0 += 1;
        }
    }

    /// Forgets `name`'s failures after a successful sign-in.
    pub fn succeeded(&self, name: &str) {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        failures.remove(&format!("user|{name}"));
    }
}

/// 16 random bytes, base64url.
fn nonce() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes(16))
}

/// `n` bytes from the operating system's generator (through UUID v4: 122 random bits per
/// 16 bytes; the workspace's `rand` is built without an OS source).
fn random_bytes(n: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(n + 16);
    while bytes.len() < n {
        bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    bytes.truncate(n);
    bytes
}

/// Checks `token` against the user's CSRF token in constant time.
#[must_use]
pub fn csrf_ok(user: &User, token: &str) -> bool {
    bool::from(user.csrf.as_bytes().ct_eq(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ConsoleConfig {
        ConsoleConfig {
            session_secret: Some("k".repeat(32)),
            users: vec![UserConfig {
                name: "alice".into(),
                role: Role::Operator,
                password_hash: None,
                personal_data: false,
            }],
            ..ConsoleConfig::default()
        }
    }

    #[test]
    fn sessions_are_signed_and_expire() {
        let config = config();
        let keys = Keys::new(&config);
        let cookie = keys.session("alice", 1_000);
        let user = keys.user(&config, &cookie, 1_001).expect("valid");
        assert_eq!(user.role, Role::Operator);
        assert!(
            keys.user(&config, &cookie, 1_000 + 8 * 3600).is_none(),
            "expired"
        );
        let forged = cookie.replacen('a', "b", 1);
        assert!(keys.user(&config, &forged, 1_001).is_none() || forged == cookie);
        let other = Keys::new(&ConsoleConfig {
            session_secret: Some("x".repeat(32)),
            ..config.clone()
        });
        assert!(other.user(&config, &cookie, 1_001).is_none(), "another key");
        // Another session has another CSRF token.
        let second = keys
            .user(&config, &keys.session("alice", 1_000), 1_001)
            .unwrap();
        assert_ne!(user.csrf, second.csrf);
    }

    #[test]
    fn passwords_hash_and_verify() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn failed_logins_lock_the_name_and_the_address() {
        let config = config();
        let keys = Keys::new(&config);
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..5 {
            assert!(!keys.locked(&config, "alice", peer));
            keys.failed("alice", peer);
        }
        assert!(keys.locked(&config, "alice", peer));
        assert!(keys.locked(&config, "bob", peer), "the address too");
    }
}
