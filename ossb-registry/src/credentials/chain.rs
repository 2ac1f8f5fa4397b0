//! [`CredentialChain`]: credentials per registry host from every place users keep them.
//!
//! # Lookup order
//!
//! For each registry host, the first source that has credentials for it wins:
//!
//! 1. **registry config**: `registries.HOST.username`/`password` in the YAML configuration,
//!    else the Docker-style file named by `registries.HOST.auth_file`;
//! 2. **Kubernetes secret (dockerconfigjson)**: `SECRET_DIR/.dockerconfigjson`, then the
//!    legacy `SECRET_DIR/.dockercfg`; `SECRET_DIR` is `/var/run/secrets/registry-secret`
//!    (override: `$OSSB_REGISTRY_SECRET_DIR`, [`ChainBuilder::registry_secret_dir`]);
//! 3. **Kubernetes secret (individual files)**: `AUTH_DIR/{registry,username,password}`;
//!    `AUTH_DIR` is `/var/run/secrets/registry-auth` (override: `$OSSB_REGISTRY_AUTH_DIR`,
//!    [`ChainBuilder::registry_auth_dir`]);
//! 4. **`$REGISTRY_AUTH_FILE`**;
//! 5. **containers auth.json**: `$XDG_RUNTIME_DIR/containers/auth.json`, then
//!    `$XDG_CONFIG_HOME/containers/auth.json` (default `~/.config/containers/auth.json`);
//! 6. **docker config**: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`;
//! 7. **cloud providers** by host pattern (cargo features `ecr`, `gcr`, `acr`): Amazon ECR
//!    (`*.dkr.ecr.REGION.amazonaws.com[.cn]`, `dkr.ecr-fips`), Google (`gcr.io`,
//!    `*.gcr.io`, `*-docker.pkg.dev`), Azure (`*.azurecr.io`).
//!
//! Inside a Docker-style file the host is looked up in `credHelpers`, then through
//! `credsStore`, then in `auths` (see [`super::docker_config`]). Keys match as in Docker:
//! `docker.io` finds `https://index.docker.io/v1/`, and keys may carry a scheme or a path.
//!
//! A source that fails (unreadable or malformed file, failing helper, refused cloud token
//! request) stops the lookup with a [`CredentialError`] naming it, rather than silently
//! falling back to another identity. Results (also "no credentials") are cached per host for
//! the life of the chain; cloud tokens until shortly before they expire.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use super::docker_config::{AuthFile, FileFormat};
use super::environment::Environment;
use super::helper::DEFAULT_HELPER_TIMEOUT;
use super::k8s_files::{DEFAULT_REGISTRY_AUTH_DIR, FilesDir};
use super::{CredentialError, CredentialProvider, Credentials, FoundCredentials, host};
use crate::config::{HostConfig, RegistryConfig};

/// The default directory of the `kubernetes.io/dockerconfigjson` secret mount.
pub const DEFAULT_REGISTRY_SECRET_DIR: &str = "/var/run/secrets/registry-secret";

/// What a source found, and until when it may be reused.
pub(crate) struct Lookup {
    pub(crate) found: FoundCredentials,
    pub(crate) expires: Option<SystemTime>,
}

impl From<FoundCredentials> for Lookup {
    fn from(found: FoundCredentials) -> Self {
        Self {
            found,
            expires: None,
        }
    }
}

/// One place credentials are looked up.
pub(crate) trait Source: Send + Sync {
    /// What the source is, for logs and [`CredentialChain::describe`].
    fn describe(&self) -> String;
    /// The credentials of `registry`, if this source has them.
    fn lookup(&self, registry: &str) -> Result<Option<Lookup>, CredentialError>;
}

struct FileSource {
    file: AuthFile,
    env: Environment,
    timeout: Duration,
}

impl Source for FileSource {
    fn describe(&self) -> String {
        format!("{} {}", self.file.label, self.file.path.display())
    }

    fn lookup(&self, registry: &str) -> Result<Option<Lookup>, CredentialError> {
        Ok(self
            .file
            .lookup(registry, &self.env, self.timeout)?
            .map(Lookup::from))
    }
}

impl Source for FilesDir {
    fn describe(&self) -> String {
        format!("kubernetes secret files {}", self.dir.display())
    }

    fn lookup(&self, registry: &str) -> Result<Option<Lookup>, CredentialError> {
        Ok(FilesDir::lookup(self, registry)?.map(Lookup::from))
    }
}

struct ConfigSource {
    hosts: BTreeMap<String, HostConfig>,
    env: Environment,
    timeout: Duration,
}

impl Source for ConfigSource {
    fn describe(&self) -> String {
        "registry config".to_string()
    }

    fn lookup(&self, registry: &str) -> Result<Option<Lookup>, CredentialError> {
        let Some(key) = host::best_key(self.hosts.keys(), registry) else {
            return Ok(None);
        };
        let h = &self.hosts[key];
        if let (Some(username), Some(password)) = (&h.username, &h.password) {
            return Ok(Some(Lookup::from(FoundCredentials {
                credentials: Credentials::Basic {
                    username: username.clone(),
                    password: password.clone(),
                },
                source: format!("registry config (registries.{key} username/password)"),
            })));
        }
        let Some(path) = &h.auth_file else {
            return Ok(None);
        };
        let file = AuthFile::new(
            path,
            FileFormat::DockerConfig,
            format!("registry config auth_file (registries.{key}.auth_file)"),
        );
        Ok(file
            .lookup(registry, &self.env, self.timeout)?
            .map(Lookup::from))
    }
}

/// Builds a [`CredentialChain`]; see the [module docs](self) for the order.
#[derive(Debug, Clone)]
pub struct ChainBuilder {
    hosts: BTreeMap<String, HostConfig>,
    env: Environment,
    secret_dir: Option<PathBuf>,
    auth_dir: Option<PathBuf>,
    helper_timeout: Duration,
    clouds: bool,
}

impl ChainBuilder {
    /// Uses `env` instead of the process environment (for every source, including the
    /// cloud providers and credential helpers' `PATH`).
    pub fn environment(mut self, env: Environment) -> Self {
        self.env = env;
        self
    }

    /// The directory of the `kubernetes.io/dockerconfigjson` secret mount.
    pub fn registry_secret_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.secret_dir = Some(dir.into());
        self
    }

    /// The directory of the `registry`/`username`/`password` secret mount.
    pub fn registry_auth_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.auth_dir = Some(dir.into());
        self
    }

    /// How long a credential helper may run (default 30 s).
    pub fn helper_timeout(mut self, timeout: Duration) -> Self {
        self.helper_timeout = timeout;
        self
    }

    /// Whether the cloud providers compiled in are consulted (default true).
    pub fn cloud_providers(mut self, enabled: bool) -> Self {
        self.clouds = enabled;
        self
    }

    /// The chain.
    pub fn build(self) -> CredentialChain {
        let env = &self.env;
        let file = |path: PathBuf, format: FileFormat, label: &str| -> Box<dyn Source> {
            Box::new(FileSource {
                file: AuthFile::new(path, format, label),
                env: env.clone(),
                timeout: self.helper_timeout,
            })
        };
        let mut sources: Vec<Box<dyn Source>> = vec![Box::new(ConfigSource {
            hosts: self.hosts.clone(),
            env: env.clone(),
            timeout: self.helper_timeout,
        })];
        let secret_dir = self
            .secret_dir
            .clone()
            .or_else(|| env.path("OSSB_REGISTRY_SECRET_DIR"))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_REGISTRY_SECRET_DIR));
        sources.push(file(
            secret_dir.join(".dockerconfigjson"),
            FileFormat::DockerConfig,
            "kubernetes secret",
        ));
        sources.push(file(
            secret_dir.join(".dockercfg"),
            FileFormat::LegacyDockercfg,
            "kubernetes secret",
        ));
        let auth_dir = self
            .auth_dir
            .clone()
            .or_else(|| env.path("OSSB_REGISTRY_AUTH_DIR"))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_REGISTRY_AUTH_DIR));
        sources.push(Box::new(FilesDir::new(auth_dir)));
        if let Some(p) = env.path("REGISTRY_AUTH_FILE") {
            sources.push(file(p, FileFormat::DockerConfig, "$REGISTRY_AUTH_FILE"));
        }
        if let Some(p) = env.path("XDG_RUNTIME_DIR") {
            sources.push(file(
                p.join("containers/auth.json"),
                FileFormat::DockerConfig,
                "containers auth.json",
            ));
        }
        if let Some(p) = env
            .path("XDG_CONFIG_HOME")
            .or_else(|| env.home().map(|h| h.join(".config")))
        {
            sources.push(file(
                p.join("containers/auth.json"),
                FileFormat::DockerConfig,
                "containers auth.json",
            ));
        }
        if let Some(p) = env
            .path("DOCKER_CONFIG")
            .or_else(|| env.home().map(|h| h.join(".docker")))
        {
            sources.push(file(
                p.join("config.json"),
                FileFormat::DockerConfig,
                "docker config",
            ));
        }
        if self.clouds {
            #[cfg(any(feature = "ecr", feature = "gcr", feature = "acr"))]
            sources.extend(super::cloud::sources(env));
        }
        CredentialChain {
            sources,
            cache: Mutex::new(HashMap::new()),
        }
    }
}

struct CacheEntry {
    found: Option<FoundCredentials>,
    until: Option<Instant>,
}

/// Looks up credentials per registry host in the order given in the [module docs](self),
/// caching the results. `Debug` names the sources, never credentials.
pub struct CredentialChain {
    sources: Vec<Box<dyn Source>>,
    cache: Mutex<HashMap<String, CacheEntry>>,
}

impl fmt::Debug for CredentialChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialChain")
            .field("sources", &self.describe())
            .finish()
    }
}

/// When to stop reusing credentials that expire at `expires`: a minute early, or halfway for
/// short-lived ones.
fn reuse_until(expires: SystemTime) -> Instant {
    let left = expires
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    let margin = Duration::from_secs(60).min(left / 2);
    Instant::now() + (left - margin)
}

impl CredentialChain {
    /// A builder over the per-host settings of `config` and the process environment.
    pub fn builder(config: &RegistryConfig) -> ChainBuilder {
        ChainBuilder {
            hosts: config.registries.clone(),
            env: Environment::from_process(),
            secret_dir: None,
            auth_dir: None,
            helper_timeout: DEFAULT_HELPER_TIMEOUT,
            clouds: true,
        }
    }

    /// The chain for `config` with every default source and the process environment.
    pub fn from_env(config: &RegistryConfig) -> Self {
        Self::builder(config).build()
    }

    /// The sources in lookup order, as text (`docker config /home/u/.docker/config.json`).
    pub fn describe(&self) -> Vec<String> {
        self.sources.iter().map(|s| s.describe()).collect()
    }

    fn cached(&self, registry: &str) -> Option<Option<FoundCredentials>> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let entry = cache.get(registry)?;
        match entry.until {
            Some(until) if until <= Instant::now() => None,
            _ => Some(entry.found.clone()),
        }
    }
}

impl CredentialProvider for CredentialChain {
    fn credentials(&self, host: &str) -> Option<Credentials> {
        match self.lookup(host) {
            Ok(found) => found.map(|f| f.credentials),
            Err(e) => {
                tracing::warn!(registry = host, error = %e, "credential lookup failed; continuing without credentials");
                None
            }
        }
    }

    fn lookup(&self, registry: &str) -> Result<Option<FoundCredentials>, CredentialError> {
        if let Some(hit) = self.cached(registry) {
            return Ok(hit);
        }
        let mut result = None;
        for source in &self.sources {
            if let Some(lookup) = source.lookup(registry)? {
                result = Some(lookup);
                break;
            }
        }
        let entry = match result {
            Some(Lookup { found, expires }) => {
                tracing::debug!(registry, source = %found.source, "using registry credentials");
                CacheEntry {
                    found: Some(found),
                    until: expires.map(reuse_until),
                }
            }
            None => {
                tracing::debug!(
                    registry,
                    sources = self.sources.len(),
                    "no credentials found for the registry; using anonymous access"
                );
                CacheEntry {
                    found: None,
                    until: None,
                }
            }
        };
        let found = entry.found.clone();
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(registry.to_string(), entry);
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_caching() {
        let d = tempfile::tempdir().expect("tempdir");
        let home = d.path().join("home");
        std::fs::create_dir_all(home.join(".docker")).expect("mkdir");
        let docker = home.join(".docker/config.json");
        std::fs::write(
            &docker,
            r#"{"auths": {"a.example": {"username": "docker", "password": "d"},
                          "b.example": {"username": "docker", "password": "d"}}}"#,
        )
        .expect("write");
        let config = RegistryConfig::from_yaml(
            "registries:\n  a.example:\n    username: cfg\n    password: c\n",
        )
        .expect("yaml");
        let chain = CredentialChain::builder(&config)
            .environment(Environment::from_vars([(
                "HOME",
                home.display().to_string(),
            )]))
            .registry_secret_dir(d.path().join("none1"))
            .registry_auth_dir(d.path().join("none2"))
            .cloud_providers(false)
            .build();
        let names = chain.describe();
        assert_eq!(names[0], "registry config");
        assert!(
            names.last().expect("some").starts_with("docker config"),
            "{names:?}"
        );
        let user = |h: &str| match chain.credentials(h) {
            Some(Credentials::Basic { username, .. }) => Some(username),
            _ => None,
        };
        assert_eq!(user("a.example").as_deref(), Some("cfg"));
        assert_eq!(user("b.example").as_deref(), Some("docker"));
        assert_eq!(user("c.example"), None);
        std::fs::remove_file(&docker).expect("rm");
        assert_eq!(user("b.example").as_deref(), Some("docker"), "cached");
        assert!(!format!("{chain:?}").contains("\"d\""));
    }

    #[test]
    fn expiry_margin() {
        let soon = reuse_until(SystemTime::now() + Duration::from_secs(20));
        assert!(soon <= Instant::now() + Duration::from_secs(11));
        let later = reuse_until(SystemTime::now() + Duration::from_secs(3600));
        assert!(later > Instant::now() + Duration::from_secs(3000));
        assert!(reuse_until(SystemTime::UNIX_EPOCH) <= Instant::now());
    }
}
