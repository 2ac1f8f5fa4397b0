//! Discovery of the mounted Secrets and ConfigMaps at the documented paths.

use super::volume::{list_files, read_key};
use super::{PodError, PodPaths};
use ossb_core::ExitCode;
use ossb_core::backend::{SecretFrom, SecretSource};
use std::fmt;
use std::path::{Path, PathBuf};

/// A password read from a Secret. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wrap a value.
    pub fn new(value: impl Into<String>) -> Self {
        Password(value.into())
    }

    /// The value, for the registry client only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl fmt::Display for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Registry credentials found in the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryCredential {
    /// A `kubernetes.io/dockerconfigjson` Secret: hand `path` to the registry client as a
    /// docker config file.
    DockerConfig {
        /// The `.dockerconfigjson` file (read it through this path to see updates).
        path: PathBuf,
        /// The registry hosts it has entries for (its `auths` keys).
        registries: Vec<String>,
    },
    /// A Secret with `registry`, `username` and `password` keys.
    Basic {
        /// Registry host (`registry` key; `docker.io` when absent).
        registry: String,
        /// `username` key.
        username: String,
        /// `password` key.
        password: Password,
        /// The volume it came from.
        source: PathBuf,
    },
}

/// The registry configuration ConfigMap (`config.yaml`); parsing it is `ossb-registry`'s job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryConfigFile {
    /// Its path.
    pub path: PathBuf,
    /// Its text.
    pub text: String,
}

/// Everything found at the documented paths.
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    /// Registry credentials, docker config first.
    pub registry_credentials: Vec<RegistryCredential>,
    /// Build secrets, one per key of the `build-secrets` volume (id = key).
    pub build_secrets: Vec<SecretSource>,
    /// The registry configuration.
    pub registry_config: Option<RegistryConfigFile>,
    /// The ConfigMap build context volume, when mounted (materialise it with
    /// [`super::materialize_context`] before building).
    pub build_context: Option<PathBuf>,
}

fn auth_error(path: &Path, what: &'static str, reason: impl Into<String>) -> PodError {
    PodError::Invalid {
        what,
        path: path.to_path_buf(),
        reason: reason.into(),
        class: ExitCode::Authentication,
    }
}

fn docker_config(paths: &PodPaths) -> Result<Option<RegistryCredential>, PodError> {
    let dir = paths.registry_secret_dir();
    if !dir.is_dir() {
        return Ok(None);
    }
    let path = paths.registry_secret();
    let Some(text) = read_key(&dir, ".dockerconfigjson")? else {
        return Err(auth_error(
            &path,
            "registry secret",
            "the volume has no .dockerconfigjson key; create the Secret with `kubectl create secret docker-registry`",
        ));
    };
    // Never echo the parse error's excerpt: it could contain a credential.
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        auth_error(
            &path,
            "registry secret",
            format!(
                "not valid JSON (line {}, column {}); recreate the Secret from a docker config file",
                e.line(),
                e.column()
            ),
        )
    })?;
    let Some(auths) = value.get("auths").and_then(|a| a.as_object()) else {
        return Err(auth_error(
            &path,
            "registry secret",
            "no \"auths\" object; a kubernetes.io/dockerconfigjson Secret holds {\"auths\":{\"host\":{...}}}",
        ));
    };
    Ok(Some(RegistryCredential::DockerConfig {
        path,
        registries: auths.keys().cloned().collect(),
    }))
}

fn basic_auth(paths: &PodPaths) -> Result<Option<RegistryCredential>, PodError> {
    let dir = paths.registry_auth();
    if !dir.is_dir() {
        return Ok(None);
    }
    let username = read_key(&dir, "username")?.map(|s| s.trim().to_string());
    let password =
        read_key(&dir, "password")?.map(|s| s.trim_end_matches(['\n', '\r']).to_string());
    let registry = read_key(&dir, "registry")?
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "docker.io".to_string());
    match (username, password) {
        (Some(u), Some(p)) if !u.is_empty() && !p.is_empty() => {
            Ok(Some(RegistryCredential::Basic {
                registry,
                username: u,
                password: Password(p),
                source: dir,
            }))
        }
        (u, p) => {
            let missing: Vec<&str> = [
                ("username", u.is_none_or(|u| u.is_empty())),
                ("password", p.is_none_or(|p| p.is_empty())),
            ]
            .iter()
            .filter(|(_, m)| *m)
            .map(|(k, _)| *k)
            .collect();
            Err(auth_error(
                &dir,
                "registry auth secret",
                format!(
                    "missing or empty key(s) {}; the Secret needs `registry`, `username` and `password` keys",
                    missing.join(", ")
                ),
            ))
        }
    }
}

fn build_secrets(paths: &PodPaths) -> Result<Vec<SecretSource>, PodError> {
    let dir = paths.build_secrets();
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    Ok(list_files(&dir)?
        .into_iter()
        .map(|f| SecretSource {
            id: f.key,
            from: SecretFrom::File(f.path),
        })
        .collect())
}

fn registry_config(paths: &PodPaths) -> Result<Option<RegistryConfigFile>, PodError> {
    let path = paths.registry_config();
    let Some(dir) = path.parent() else {
        return Ok(None);
    };
    if !dir.is_dir() {
        return Ok(None);
    }
    Ok(read_key(dir, "config.yaml")?.map(|text| RegistryConfigFile { path, text }))
}

/// Look at every documented path under `paths`. Missing volumes are fine (they are optional);
/// a volume that is mounted but malformed is an error naming the path and the fix.
///
/// ```
/// use ossb_k8s::pod::{PodPaths, RegistryCredential, discover};
/// let root = tempfile::tempdir().unwrap();
/// let paths = PodPaths::with_roots(root.path().join("s"), root.path().join("c"));
/// std::fs::create_dir_all(paths.registry_auth()).unwrap();
/// for (k, v) in [("registry", "ghcr.io"), ("username", "bot"), ("password", "hunter2\n")] {
///     std::fs::write(paths.registry_auth().join(k), v).unwrap();
/// }
/// let found = discover(&paths).unwrap();
/// let RegistryCredential::Basic { registry, password, .. } = &found.registry_credentials[0] else { panic!() };
/// assert_eq!((registry.as_str(), password.expose()), ("ghcr.io", "hunter2"));
/// assert!(!format!("{found:?}").contains("hunter2"));
/// ```
pub fn discover(paths: &PodPaths) -> Result<Discovery, PodError> {
    let mut found = Discovery::default();
    found.registry_credentials.extend(docker_config(paths)?);
    found.registry_credentials.extend(basic_auth(paths)?);
    found.build_secrets = build_secrets(paths)?;
    found.registry_config = registry_config(paths)?;
    let ctx = paths.build_context();
    if ctx.is_dir() {
        found.build_context = Some(ctx);
    }
    Ok(found)
}
