//! Credentials and where they come from.

use std::collections::HashMap;
use std::fmt;

/// Credentials for one registry. `Debug` never shows secrets.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A user name and password (or personal access token).
    Basic {
        /// The user name.
        username: String,
        /// The password or token.
        password: String,
    },
    /// An OAuth2 refresh token (Docker's `identitytoken`).
    IdentityToken(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Self::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
        }
    }
}

/// Looks up credentials for a registry host (`docker.io`, `localhost:5000`).
pub trait CredentialProvider: Send + Sync {
    /// The credentials for `host`, or `None` for anonymous access.
    fn credentials(&self, host: &str) -> Option<Credentials>;
}

/// A fixed host -> credentials map (tests, and credentials from the registry config).
#[derive(Clone, Default)]
pub struct StaticCredentials {
    by_host: HashMap<String, Credentials>,
}

impl StaticCredentials {
    /// An empty provider (anonymous everywhere).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces the credentials of a host.
    pub fn insert(&mut self, host: impl Into<String>, credentials: Credentials) -> &mut Self {
        self.by_host.insert(host.into(), credentials);
        self
    }

    /// Builder form of [`StaticCredentials::insert`].
    pub fn with(mut self, host: impl Into<String>, credentials: Credentials) -> Self {
        self.insert(host, credentials);
        self
    }
}

impl fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("hosts", &self.by_host.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl CredentialProvider for StaticCredentials {
    fn credentials(&self, host: &str) -> Option<Credentials> {
        self.by_host.get(host).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let c = Credentials::Basic {
            username: "bob".into(),
            password: "hunter2".into(),
        };
        let s = format!("{c:?}");
        assert!(s.contains("bob") && !s.contains("hunter2"), "{s}");
        let t = format!("{:?}", Credentials::IdentityToken("secret-token".into()));
        assert!(!t.contains("secret-token"), "{t}");
        let p = StaticCredentials::new().with("h", c);
        assert!(!format!("{p:?}").contains("hunter2"));
        assert!(p.credentials("h").is_some() && p.credentials("other").is_none());
    }
}
