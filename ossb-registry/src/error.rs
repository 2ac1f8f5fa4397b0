//! Registry errors, classified for exit codes (3 registry, 4 authentication).

use ossb_core::ExitCode;

/// Everything that can go wrong talking to a registry. Messages name the registry, the
/// operation and what to check; they never contain credentials.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry could not be reached (DNS, connection refused, timeout, reset).
    #[error(
        "registry {registry} is unreachable during {operation}: {detail}; check the address, that the registry is running and network access to it"
    )]
    Unreachable {
        /// The registry host.
        registry: String,
        /// What was being done.
        operation: String,
        /// The underlying error.
        detail: String,
    },
    /// TLS failed: unknown CA, wrong host name, or a plain-HTTP server.
    #[error(
        "tls error talking to registry {registry} during {operation}: {detail}; check the CA (--tls-ca, registries.{registry}.ca_file, /etc/containers/certs.d/{registry}/*.crt) or mark the registry insecure"
    )]
    Tls {
        /// The registry host.
        registry: String,
        /// What was being done.
        operation: String,
        /// The underlying error.
        detail: String,
    },
    /// Credentials were missing, refused, or do not grant the operation.
    #[error(
        "authentication failed for registry {registry} during {operation}: {detail}; check the credentials for {registry} and their access to the repository"
    )]
    Auth {
        /// The registry host.
        registry: String,
        /// What was being done.
        operation: String,
        /// What the registry said.
        detail: String,
    },
    /// The manifest, blob or repository does not exist.
    #[error("{what} not found in registry {registry}; check the name, tag and digest")]
    NotFound {
        /// The registry host.
        registry: String,
        /// What was looked for (`manifest repo:tag`, `blob sha256:…`).
        what: String,
    },
    /// Downloaded or uploaded content does not hash to the expected digest.
    #[error(
        "digest mismatch from registry {registry} for {what}: expected {expected}, got {actual}; the content was corrupted or the registry is misbehaving"
    )]
    DigestMismatch {
        /// The registry host.
        registry: String,
        /// What was checked.
        what: String,
        /// The digest that was expected.
        expected: String,
        /// The digest of the bytes received.
        actual: String,
    },
    /// The registry answered something the distribution protocol does not allow.
    #[error("unexpected answer from registry {registry} during {operation}: {detail}")]
    Protocol {
        /// The registry host.
        registry: String,
        /// What was being done.
        operation: String,
        /// What was wrong.
        detail: String,
    },
    /// The registry answered a server error (5xx) or 429 Too Many Requests.
    #[error(
        "registry {registry} answered {status} during {operation}: {detail}; the registry is failing or overloaded, retry later"
    )]
    ServerError {
        /// The registry host.
        registry: String,
        /// What was being done.
        operation: String,
        /// The HTTP status code.
        status: u16,
        /// What the registry said.
        detail: String,
    },
    /// Every attempt of an operation failed with a transient error (5xx, 429, dropped or
    /// refused connections) until the retry budget ran out.
    #[error(
        "registry {registry}: gave up on {operation} after {attempts} attempts in {elapsed:.1?}; last error: {last}; check that the registry is healthy and reachable, or raise the retry budget"
    )]
    GaveUp {
        /// The registry host.
        registry: String,
        /// What was being done.
        operation: String,
        /// How many attempts were made.
        attempts: u32,
        /// The time from the first attempt to giving up.
        elapsed: std::time::Duration,
        /// The error of the last attempt.
        #[source]
        last: Box<RegistryError>,
    },
    /// A local file could not be read or written.
    #[error("i/o error during {operation} for registry {registry}: {source}")]
    Io {
        /// The registry host.
        registry: String,
        /// What was being done (`reading /path/layer.tar.gz`).
        operation: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The registry configuration is wrong (bad YAML, unreadable CA file).
    #[error("registry configuration error: {0}")]
    Config(String),
}

impl RegistryError {
    /// True for authentication errors (exit code 4).
    pub fn is_auth(&self) -> bool {
        matches!(self, Self::Auth { .. })
    }

    /// True for errors that a retry may cure (unreachable registry, dropped connection, 5xx or
    /// 429 answer). [`RegistryError::GaveUp`] is not transient: its retries are spent.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unreachable { .. } | Self::ServerError { .. })
    }

    /// Wraps the last error of an operation whose retry budget ran out. A single attempt is
    /// returned as it is.
    pub fn gave_up(
        self,
        registry: &str,
        operation: &str,
        attempts: u32,
        started: std::time::Instant,
    ) -> Self {
        if attempts <= 1 {
            return self;
        }
        Self::GaveUp {
            registry: registry.to_string(),
            operation: operation.to_string(),
            attempts,
            elapsed: started.elapsed(),
            last: Box::new(self),
        }
    }

    /// The process exit code class: 4 for authentication, 5 for configuration, 3 otherwise.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Self::Auth { .. } => ExitCode::Authentication,
            Self::Config(_) => ExitCode::Configuration,
            _ => ExitCode::Registry,
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;
