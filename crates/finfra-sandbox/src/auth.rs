//! Authentication (CONTRACT §2): Basic credentials for tokens, Bearer access tokens, refresh.
//!
//! Tokens are JWT-shaped (`base64url(header).base64url(payload).base64url(signature)`) so a
//! client that inspects them sees the usual shape, but they are opaque to the sandbox: it
//! keeps every token it issued in a table and looks it up. The signature is random bytes.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use rand::RngCore;
use rand::rngs::StdRng;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::config::ClientCredentials;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Access,
    Refresh,
}

#[derive(Debug, Clone)]
struct Issued {
    client_id: String,
    kind: Kind,
    expires_at: DateTime<Utc>,
    /// Revoked access tokens stay known, so that a refresh may still present them.
    revoked: bool,
}

/// A fresh token pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
}

/// Why a Bearer or refresh was refused (the `401` message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Missing,
    NotBearer,
    Unknown,
    Expired,
    Revoked,
    RefreshUnknown,
    RefreshExpired,
    AccessUnknown,
    OtherClient,
}

impl Refusal {
    pub fn message(self) -> &'static str {
        match self {
            Refusal::Missing => "Missing Authorization header",
            Refusal::NotBearer => "Authorization must be a Bearer token",
            Refusal::Unknown => "Invalid access token",
            Refusal::Expired => "Access token expired",
            Refusal::Revoked => "Access token revoked",
            Refusal::RefreshUnknown => "Invalid refresh token",
            Refusal::RefreshExpired => "Refresh token expired",
            Refusal::AccessUnknown => "x-access-token is not a token issued by Finfra",
            Refusal::OtherClient => {
                "x-access-token and x-refresh-token belong to different clients"
            }
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct TokenStore {
    tokens: HashMap<String, Issued>,
}

impl TokenStore {
    /// Issues an access and a refresh token to `client_id`.
    pub fn issue(
        &mut self,
        rng: &mut StdRng,
        client_id: &str,
        now: DateTime<Utc>,
        access_ttl: Duration,
        refresh_ttl: Duration,
    ) -> TokenPair {
        let access_token = jwt_shaped(rng, client_id, "access", now, access_ttl);
        let refresh_token = jwt_shaped(rng, client_id, "refresh", now, refresh_ttl);
        for (token, kind, ttl) in [
            (&access_token, Kind::Access, access_ttl),
            (&refresh_token, Kind::Refresh, refresh_ttl),
        ] {
            self.tokens.insert(
                token.clone(),
                Issued {
                    client_id: client_id.to_owned(),
                    kind,
                    expires_at: now + ttl,
                    revoked: false,
                },
            );
        }
        TokenPair {
            access_token,
            refresh_token,
            expires_in: access_ttl.as_secs(),
        }
    }

    /// The client a valid access token belongs to.
    pub fn check_access(&self, token: &str, now: DateTime<Utc>) -> Result<&str, Refusal> {
        match self.tokens.get(token) {
            Some(t) if t.kind == Kind::Access => {
                if t.revoked {
                    Err(Refusal::Revoked)
                } else if now >= t.expires_at {
                    Err(Refusal::Expired)
                } else {
                    Ok(&t.client_id)
                }
            }
            _ => Err(Refusal::Unknown),
        }
    }

    /// CONTRACT §2: the refresh token must be known and unexpired (reusable); the access token
    /// must be one issued to the same client, expired or revoked is fine.
    pub fn check_refresh(
        &self,
        access: &str,
        refresh: &str,
        now: DateTime<Utc>,
    ) -> Result<String, Refusal> {
        let r = match self.tokens.get(refresh) {
            Some(r) if r.kind == Kind::Refresh => r,
            _ => return Err(Refusal::RefreshUnknown),
        };
        if now >= r.expires_at {
            return Err(Refusal::RefreshExpired);
        }
        match self.tokens.get(access) {
            Some(a) if a.kind == Kind::Access && a.client_id == r.client_id => {
                Ok(r.client_id.clone())
            }
            Some(a) if a.kind == Kind::Access => Err(Refusal::OtherClient),
            _ => Err(Refusal::AccessUnknown),
        }
    }

    /// The client a known token (valid or not) was issued to: rate limiting counts a client's
    /// requests even when its token has expired.
    pub fn owner(&self, token: &str) -> Option<&str> {
        self.tokens.get(token).map(|t| t.client_id.as_str())
    }

    /// Invalidates every access token issued so far; refresh tokens stay valid.
    pub fn revoke_access(&mut self) {
        for t in self.tokens.values_mut() {
            if t.kind == Kind::Access {
                t.revoked = true;
            }
        }
    }
}

fn jwt_shaped(
    rng: &mut StdRng,
    client_id: &str,
    typ: &str,
    now: DateTime<Utc>,
    ttl: Duration,
) -> String {
    jwt_like(
        rng,
        &json!({
            "sub": client_id,
            "typ": typ,
            "iat": now.timestamp(),
            "exp": (now + ttl).timestamp(),
        }),
    )
}

/// A JWT-shaped opaque string carrying `claims` plus a random `jti`, with a random
/// signature. Also the shape of KYC session ids ("JWT-formatted", says the reference).
pub(crate) fn jwt_like(rng: &mut StdRng, claims: &serde_json::Value) -> String {
    let mut jti = [0u8; 16];
    rng.fill_bytes(&mut jti);
    let mut signature = [0u8; 32];
    rng.fill_bytes(&mut signature);
    let mut payload = claims.clone();
    if let Some(o) = payload.as_object_mut() {
        o.insert("jti".into(), json!(URL_SAFE_NO_PAD.encode(jti)));
    }
    let header = json!({"alg": "HS256", "typ": "JWT"});
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

/// The Bearer token of an `Authorization` header value.
pub(crate) fn bearer(header: Option<&str>) -> Result<&str, Refusal> {
    let h = header.ok_or(Refusal::Missing)?;
    match h.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err(Refusal::NotBearer),
    }
}

/// The `(client_id, client_secret)` of a Basic `Authorization` header value.
pub(crate) fn basic(header: Option<&str>) -> Option<(String, String)> {
    let (scheme, encoded) = header?.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

/// Whether the credentials belong to a configured client; the secret is compared in
/// constant time.
pub(crate) fn credentials_valid(clients: &[ClientCredentials], id: &str, secret: &str) -> bool {
    clients.iter().any(|c| {
        c.client_id == id && bool::from(c.client_secret.as_bytes().ct_eq(secret.as_bytes()))
    })
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn tokens_are_jwt_shaped_and_checked() {
        let mut store = TokenStore::default();
        let mut rng = StdRng::seed_from_u64(1);
        let now = Utc::now();
        let pair = store.issue(
            &mut rng,
            "c1",
            now,
            Duration::from_secs(60),
            Duration::from_secs(600),
        );
        assert_eq!(pair.access_token.split('.').count(), 3);
        assert_eq!(store.check_access(&pair.access_token, now), Ok("c1"));
        assert_eq!(
            store.check_access(&pair.access_token, now + Duration::from_secs(61)),
            Err(Refusal::Expired)
        );
        assert_eq!(
            store.check_access(&pair.refresh_token, now),
            Err(Refusal::Unknown)
        );
        // Expired access + valid refresh: fine, and reusable.
        let later = now + Duration::from_secs(120);
        for _ in 0..2 {
            assert_eq!(
                store.check_refresh(&pair.access_token, &pair.refresh_token, later),
                Ok("c1".to_owned())
            );
        }
        let other = store.issue(
            &mut rng,
            "c2",
            now,
            Duration::from_secs(60),
            Duration::from_secs(600),
        );
        assert_eq!(
            store.check_refresh(&other.access_token, &pair.refresh_token, later),
            Err(Refusal::OtherClient)
        );
        store.revoke_access();
        assert_eq!(
            store.check_access(&other.access_token, now),
            Err(Refusal::Revoked)
        );
    }

    #[test]
    fn basic_header_parses() {
        let h = format!("Basic {}", STANDARD.encode("id:se:cret"));
        assert_eq!(basic(Some(&h)), Some(("id".into(), "se:cret".into())));
        assert_eq!(basic(Some("Bearer x")), None);
    }
}
