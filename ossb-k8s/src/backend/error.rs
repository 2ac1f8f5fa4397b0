//! Typed errors of the cluster backend and their exit codes.
//!
//! Every error names the cause and the fix. The API server's answers are classified by HTTP
//! status: 401 is authentication (exit 4), 403 a missing permission (exit 4), 404 a missing
//! object (exit 5: the namespace, service account or secret named by a flag), 422 an object the
//! API server refused (exit 5); a connection that cannot be made is a network error (exit 1).

use ossb_core::{Error, ExitCode};

/// An error talking to the Kubernetes API server.
#[derive(Debug, thiserror::Error)]
pub enum K8sError {
    /// The API server answered with an error status.
    #[error("Kubernetes API: {action}: {message} (HTTP {code}{reason})")]
    Api {
        /// What OSSB was doing (`create configmap ossb-1-ctx-0 in namespace ci`).
        action: String,
        /// The API server's message.
        message: String,
        /// The HTTP status.
        code: u16,
        /// `: Reason` when the server gave one.
        reason: String,
    },
    /// The credentials were refused (401).
    #[error(
        "Kubernetes API: {action}: the credentials were refused ({message}); refresh the token or client certificate of the kubeconfig context"
    )]
    Auth {
        /// What OSSB was doing.
        action: String,
        /// The API server's message.
        message: String,
    },
    /// The API server did not answer.
    #[error(
        "cannot reach the Kubernetes API server at {server}: {message}; check that the cluster is running and reachable from here, and the --kubeconfig / --context in use"
    )]
    Network {
        /// The API server's URL.
        server: String,
        /// What went wrong.
        message: String,
    },
    /// The client configuration could not be loaded.
    #[error("{0}")]
    Config(String),
}

impl K8sError {
    /// The exit code of this error.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            K8sError::Api { code: 401, .. } | K8sError::Auth { .. } => ExitCode::Authentication,
            K8sError::Api { code: 403, .. } => ExitCode::Authentication,
            K8sError::Api {
                code: 404 | 409 | 422 | 400,
                ..
            } => ExitCode::Configuration,
            K8sError::Api { .. } | K8sError::Network { .. } => ExitCode::General,
            K8sError::Config(_) => ExitCode::Configuration,
        }
    }

    /// Classify a `kube` error for `action`, with `server` for network errors.
    pub fn from_kube(err: kube::Error, action: &str, server: &str) -> K8sError {
        match err {
            kube::Error::Api(status) => {
                let code = status.code;
                if code == 401 {
                    return K8sError::Auth {
                        action: action.to_string(),
                        message: status.message.clone(),
                    };
                }
                let mut message = status.message.clone();
                if code == 403 {
                    message.push_str(
                        "; the identity in use lacks this permission (see examples/k8s/rbac/)",
                    );
                }
                K8sError::Api {
                    action: action.to_string(),
                    message,
                    code,
                    reason: if status.reason.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", status.reason)
                    },
                }
            }
            kube::Error::Auth(e) => K8sError::Auth {
                action: action.to_string(),
                message: e.to_string(),
            },
            other => K8sError::Network {
                server: server.to_string(),
                message: describe_chain(&other),
            },
        }
    }

    /// True for a 404 answer.
    pub fn is_not_found(&self) -> bool {
        matches!(self, K8sError::Api { code: 404, .. })
    }
}

/// The error and its sources on one line (`error sending request: connection refused`).
fn describe_chain(err: &dyn std::error::Error) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

impl From<K8sError> for Error {
    fn from(err: K8sError) -> Self {
        Error::new(err.exit_code(), err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_statuses_map_to_documented_exit_codes() {
        let api = |code| K8sError::Api {
            action: "create job x".into(),
            message: "m".into(),
            code,
            reason: String::new(),
        };
        assert_eq!(api(403).exit_code(), ExitCode::Authentication);
        assert_eq!(api(404).exit_code(), ExitCode::Configuration);
        assert_eq!(api(500).exit_code(), ExitCode::General);
        let net = K8sError::Network {
            server: "https://k:6443".into(),
            message: "connection refused".into(),
        };
        assert_eq!(net.exit_code(), ExitCode::General);
        assert!(net.to_string().contains("https://k:6443"));
    }
}
