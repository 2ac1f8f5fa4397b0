//! Detecting a pod and reading the pod's identity from the Job's environment.

use std::fmt;
use std::path::Path;

/// The service-account token file every pod gets unless `automountServiceAccountToken: false`.
pub const SERVICE_ACCOUNT_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// The log level from `LOG_LEVEL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogLevel {
    /// `debug`.
    Debug,
    /// `info` (the default).
    #[default]
    Info,
    /// `warn`.
    Warn,
    /// `error`.
    Error,
}

impl LogLevel {
    /// Parse `debug`, `info`, `warn` (or `warning`) or `error`, in any case; `None` otherwise.
    ///
    /// ```
    /// use ossb_k8s::pod::LogLevel;
    /// assert_eq!(LogLevel::parse("WARN"), Some(LogLevel::Warn));
    /// assert_eq!(LogLevel::parse("loud"), None);
    /// ```
    pub fn parse(text: &str) -> Option<LogLevel> {
        match text.trim().to_ascii_lowercase().as_str() {
            "debug" => Some(LogLevel::Debug),
            "info" => Some(LogLevel::Info),
            "warn" | "warning" => Some(LogLevel::Warn),
            "error" => Some(LogLevel::Error),
            _ => None,
        }
    }

    /// The lower-case name, usable as a `tracing` filter directive.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who and where this process runs, from the pod's environment (set by the Job through the
/// downward API).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodContext {
    /// True when the service-account token exists or `KUBERNETES_SERVICE_HOST` is set.
    pub in_pod: bool,
    /// `JOB_NAME`.
    pub job_name: Option<String>,
    /// `POD_NAME`.
    pub pod_name: Option<String>,
    /// `POD_NAMESPACE`.
    pub namespace: Option<String>,
    /// `NODE_NAME`.
    pub node_name: Option<String>,
    /// `LOG_LEVEL`, `info` when unset or invalid.
    pub log_level: LogLevel,
    /// The `LOG_LEVEL` value when it was set but not understood (the caller should warn).
    pub invalid_log_level: Option<String>,
}

impl PodContext {
    /// Read the process environment and the service-account token at its standard path.
    pub fn from_env() -> Self {
        Self::from_lookup(|k| std::env::var(k).ok(), Path::new(SERVICE_ACCOUNT_TOKEN))
    }

    /// Build the context from `lookup` (an environment) and the token file path.
    ///
    /// ```
    /// use ossb_k8s::pod::{LogLevel, PodContext};
    /// let env = [("KUBERNETES_SERVICE_HOST", "10.0.0.1"), ("POD_NAME", "build-x7"), ("LOG_LEVEL", "debug")];
    /// let lookup = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
    /// let ctx = PodContext::from_lookup(lookup, "/nonexistent/token".as_ref());
    /// assert!(ctx.in_pod);
    /// assert_eq!(ctx.pod_name.as_deref(), Some("build-x7"));
    /// assert_eq!(ctx.log_level, LogLevel::Debug);
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>, token: &Path) -> Self {
        let get = |k: &str| {
            lookup(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let (log_level, invalid_log_level) = match get("LOG_LEVEL") {
            None => (LogLevel::Info, None),
            Some(v) => match LogLevel::parse(&v) {
                Some(l) => (l, None),
                None => (LogLevel::Info, Some(v)),
            },
        };
        PodContext {
            in_pod: token.is_file() || get("KUBERNETES_SERVICE_HOST").is_some(),
            job_name: get("JOB_NAME"),
            pod_name: get("POD_NAME"),
            namespace: get("POD_NAMESPACE"),
            node_name: get("NODE_NAME"),
            log_level,
            invalid_log_level,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(vars: &[(&str, &str)], token: &Path) -> PodContext {
        let lookup = |k: &str| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        };
        PodContext::from_lookup(lookup, token)
    }

    #[test]
    fn the_token_file_alone_marks_a_pod() {
        let dir = tempfile::tempdir().expect("tempdir");
        let token = dir.path().join("token");
        assert!(!ctx(&[], &token).in_pod);
        std::fs::write(&token, "eyJ...").expect("write token");
        assert!(ctx(&[], &token).in_pod);
    }

    #[test]
    fn empty_variables_count_as_unset_and_bad_levels_fall_back_to_info() {
        let c = ctx(
            &[
                ("KUBERNETES_SERVICE_HOST", ""),
                ("JOB_NAME", "  "),
                ("LOG_LEVEL", "verbose"),
                ("POD_NAMESPACE", "ci"),
                ("NODE_NAME", "node-1"),
            ],
            Path::new("/nonexistent"),
        );
        assert!(!c.in_pod);
        assert_eq!(c.job_name, None);
        assert_eq!(c.namespace.as_deref(), Some("ci"));
        assert_eq!(c.node_name.as_deref(), Some("node-1"));
        assert_eq!(c.log_level, LogLevel::Info);
        assert_eq!(c.invalid_log_level.as_deref(), Some("verbose"));
    }
}
