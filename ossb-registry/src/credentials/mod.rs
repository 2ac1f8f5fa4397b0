//! Credentials and where they come from.
//!
//! * [`Credentials`]: what is sent to a registry (basic or an OAuth2 identity token);
//! * [`CredentialProvider`]: the lookup interface the client uses;
//! * [`StaticCredentials`]: a fixed map (tests, inline configuration);
//! * [`CredentialChain`]: the full lookup used by `ossb` (configuration, Kubernetes secret
//!   mounts, `auth.json`, Docker's `config.json` and credential helpers, cloud providers),
//!   in the order documented on [`chain`].

pub mod chain;
#[cfg(any(feature = "ecr", feature = "gcr", feature = "acr"))]
pub mod cloud;
pub mod docker_config;
pub mod environment;
pub mod helper;
pub mod host;
pub mod k8s_files;

use std::collections::HashMap;
use std::fmt;

pub use chain::{ChainBuilder, CredentialChain};
pub use environment::Environment;

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

/// Credentials together with a description of where they were found
/// (`docker config /home/u/.docker/config.json (auths)`); the description never holds a
/// secret and is what error messages and debug logs name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundCredentials {
    /// The credentials.
    pub credentials: Credentials,
    /// Where they came from.
    pub source: String,
}

/// A credential source failed (unreadable or malformed file, failing credential helper,
/// refused cloud token request). Messages name the registry, the source and what to check,
/// never a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot get credentials for registry {registry} from {origin}: {detail}; {hint}")]
pub struct CredentialError {
    /// The registry host the credentials were wanted for.
    pub registry: String,
    /// The credential source (a file, a helper, a cloud provider).
    pub origin: String,
    /// What went wrong.
    pub detail: String,
    /// What to check.
    pub hint: String,
}

impl CredentialError {
    /// A new error.
    pub fn new(
        registry: impl Into<String>,
        origin: impl Into<String>,
        detail: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Self {
            registry: registry.into(),
            origin: origin.into(),
            detail: detail.into(),
            hint: hint.into(),
        }
    }
}

/// Looks up credentials for a registry host (`docker.io`, `localhost:5000`).
pub trait CredentialProvider: Send + Sync {
    /// The credentials for `host`, or `None` for anonymous access (also when a source
    /// failed; use [`CredentialProvider::lookup`] to see failures).
    fn credentials(&self, host: &str) -> Option<Credentials>;

    /// The credentials for `host` with their source, or the failure of a source. The
    /// default wraps [`CredentialProvider::credentials`] with the source `static credentials`.
    fn lookup(&self, host: &str) -> Result<Option<FoundCredentials>, CredentialError> {
        Ok(self.credentials(host).map(|credentials| FoundCredentials {
            credentials,
            source: "static credentials".to_string(),
        }))
    }
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
        let found = p.lookup("h").expect("no error").expect("found");
        assert_eq!(found.source, "static credentials");
        assert!(!format!("{found:?}").contains("hunter2"));
    }
}
