//! `[console]` in `finflow.toml`: where the console listens, who may sign in and with what
//! role, and how sessions are kept.

use std::net::IpAddr;

use serde::Deserialize;

/// The default address of `finflow console`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8081";

/// What a person may do, each role including the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads every page.
    Viewer,
    /// Also asks for retries, cancels and resolves.
    Operator,
    /// Also approves or rejects commands that wait for a second person.
    Approver,
}

impl Role {
    /// The configured name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::Approver => "approver",
        }
    }
}

/// One person who may use the console.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// The sign-in name, journaled as who asked or approved.
    pub name: String,
    /// `viewer`, `operator` or `approver`.
    pub role: Role,
    /// An argon2 PHC string from `finflow console hash-password`; absent for a user who
    /// signs in only through the trusted proxy header.
    #[serde(default)]
    pub password_hash: Option<String>,
    /// Whether this person sees personal data unmasked (NIKs, names, phone numbers).
    #[serde(default)]
    pub personal_data: bool,
}

/// `[console]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Address to listen on (default 127.0.0.1:8081).
    pub listen: String,
    /// The key that signs session cookies and CSRF tokens (at least 32 characters). When
    /// absent, a random key is made at start: sessions end when the console restarts.
    pub session_secret: Option<String>,
    /// How long a session lasts, in seconds (default 8 hours).
    pub session_ttl_secs: u64,
    /// Mark cookies `Secure` (serve the console behind HTTPS).
    pub secure_cookies: bool,
    /// A header the lender's reverse proxy / SSO sets to the signed-in user's name; only
    /// honoured on requests from `trusted_proxies`. The name must be one of `users`.
    pub trusted_user_header: Option<String>,
    /// The proxies' addresses.
    pub trusted_proxies: Vec<IpAddr>,
    /// Failed sign-ins allowed per name and per address within `login_window_secs`.
    pub max_failed_logins: u32,
    /// The window of `max_failed_logins`, in seconds.
    pub login_window_secs: u64,
    /// Who may sign in.
    pub users: Vec<UserConfig>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.to_owned(),
            session_secret: None,
            session_ttl_secs: 8 * 3600,
            secure_cookies: false,
            trusted_user_header: None,
            trusted_proxies: Vec::new(),
            max_failed_logins: 5,
            login_window_secs: 900,
            users: Vec::new(),
        }
    }
}

impl ConsoleConfig {
    /// The user named `name`.
    #[must_use]
    pub fn user(&self, name: &str) -> Option<&UserConfig> {
        self.users.iter().find(|u| u.name == name)
    }
}
