//! The documented in-pod mount points, under two overridable roots.

use std::path::{Path, PathBuf};

/// Default root of Secret volumes.
pub const DEFAULT_SECRETS_ROOT: &str = "/var/run/secrets";
/// Default root of ConfigMap volumes.
pub const DEFAULT_CONFIGMAPS_ROOT: &str = "/var/run/configmaps";
/// Overrides [`DEFAULT_SECRETS_ROOT`].
pub const SECRETS_ROOT_ENV: &str = "OSSB_SECRETS_ROOT";
/// Overrides [`DEFAULT_CONFIGMAPS_ROOT`].
pub const CONFIGMAPS_ROOT_ENV: &str = "OSSB_CONFIGMAPS_ROOT";

/// Where OSSB looks for mounted Secrets and ConfigMaps. Every path is derived from the two
/// roots, so tests and unusual clusters can move them.
///
/// ```
/// use ossb_k8s::pod::PodPaths;
/// let p = PodPaths::default();
/// assert_eq!(p.registry_secret().to_str(), Some("/var/run/secrets/registry-secret/.dockerconfigjson"));
/// assert_eq!(p.build_context().to_str(), Some("/var/run/configmaps/build-context"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodPaths {
    /// Root of Secret volumes (`/var/run/secrets`).
    pub secrets_root: PathBuf,
    /// Root of ConfigMap volumes (`/var/run/configmaps`).
    pub configmaps_root: PathBuf,
}

impl Default for PodPaths {
    fn default() -> Self {
        PodPaths::with_roots(DEFAULT_SECRETS_ROOT, DEFAULT_CONFIGMAPS_ROOT)
    }
}

impl PodPaths {
    /// Paths under the given roots.
    pub fn with_roots(
        secrets_root: impl Into<PathBuf>,
        configmaps_root: impl Into<PathBuf>,
    ) -> Self {
        PodPaths {
            secrets_root: secrets_root.into(),
            configmaps_root: configmaps_root.into(),
        }
    }

    /// The defaults, with `OSSB_SECRETS_ROOT` and `OSSB_CONFIGMAPS_ROOT` applied when set.
    pub fn from_env() -> Self {
        Self::from_lookup(|k| std::env::var_os(k).map(PathBuf::from))
    }

    /// The defaults, with overrides from `lookup` (an environment).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<PathBuf>) -> Self {
        let get = |k: &str, d: &str| {
            lookup(k)
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or_else(|| PathBuf::from(d))
        };
        PodPaths::with_roots(
            get(SECRETS_ROOT_ENV, DEFAULT_SECRETS_ROOT),
            get(CONFIGMAPS_ROOT_ENV, DEFAULT_CONFIGMAPS_ROOT),
        )
    }

    /// The service-account token (`kubernetes.io/serviceaccount/token`).
    pub fn service_account_token(&self) -> PathBuf {
        self.secrets_root.join("kubernetes.io/serviceaccount/token")
    }

    /// The `registry-secret` volume (a `kubernetes.io/dockerconfigjson` Secret).
    pub fn registry_secret_dir(&self) -> PathBuf {
        self.secrets_root.join("registry-secret")
    }

    /// Its `.dockerconfigjson` key.
    pub fn registry_secret(&self) -> PathBuf {
        self.registry_secret_dir().join(".dockerconfigjson")
    }

    /// The `registry-auth` volume (keys `registry`, `username`, `password`).
    pub fn registry_auth(&self) -> PathBuf {
        self.secrets_root.join("registry-auth")
    }

    /// The `build-secrets` volume (one key per `RUN --mount=type=secret,id=...`).
    pub fn build_secrets(&self) -> PathBuf {
        self.secrets_root.join("build-secrets")
    }

    /// The `registry-config` ConfigMap's `config.yaml`.
    pub fn registry_config(&self) -> PathBuf {
        self.configmaps_root.join("registry-config/config.yaml")
    }

    /// The `build-context` ConfigMap volume.
    pub fn build_context(&self) -> PathBuf {
        self.configmaps_root.join("build-context")
    }

    /// True when `path` is under one of the roots (used to word messages).
    pub fn contains(&self, path: &Path) -> bool {
        path.starts_with(&self.secrets_root) || path.starts_with(&self.configmaps_root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_overrides_each_root_and_ignores_empty_values() {
        let p = PodPaths::from_lookup(|k| match k {
            SECRETS_ROOT_ENV => Some(PathBuf::from("/tmp/s")),
            CONFIGMAPS_ROOT_ENV => Some(PathBuf::new()),
            _ => None,
        });
        assert_eq!(p.registry_auth(), Path::new("/tmp/s/registry-auth"));
        assert_eq!(
            p.registry_config(),
            Path::new("/var/run/configmaps/registry-config/config.yaml")
        );
        assert!(p.contains(Path::new("/tmp/s/build-secrets/x")));
    }
}
