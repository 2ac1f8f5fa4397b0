//! Registry configuration: per-host settings, insecure hosts, CA files and pull mirrors.
//!
//! ```yaml
//! default_registry: registry.example.com   # for names without a registry part
//! registries:
//!   registry.example.com:
//!     username: ci
//!     password: secret
//!     ca_file: certs/example-ca.crt
//!   127.0.0.1:5000:
//!     insecure: true
//! insecure: [build-cache.internal:5000]
//! mirrors:
//!   docker.io: [mirror.example.com]
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ossb_core::reference::{self, Reference};
use serde::Deserialize;

use crate::credentials::{Credentials, StaticCredentials};
use crate::error::{RegistryError, Result};

/// Where per-host CA certificates are looked for by default (`<dir>/<host>/*.crt`).
pub const DEFAULT_CERT_DIRS: &[&str] = &["/etc/containers/certs.d", "/etc/docker/certs.d"];

/// Settings for one registry host. `Debug` never shows the password.
#[derive(Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HostConfig {
    /// User name for basic or token authentication.
    pub username: Option<String>,
    /// Password or access token.
    pub password: Option<String>,
    /// A Docker-style `config.json` to take credentials from (read by the credential sources).
    pub auth_file: Option<PathBuf>,
    /// An extra CA certificate (PEM) trusted for this host.
    pub ca_file: Option<PathBuf>,
    /// Use plain HTTP, or HTTPS without certificate verification.
    pub insecure: bool,
}

impl fmt::Debug for HostConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostConfig")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("auth_file", &self.auth_file)
            .field("ca_file", &self.ca_file)
            .field("insecure", &self.insecure)
            .finish()
    }
}

/// How a registry host is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// HTTPS, the certificate verified against the system roots and the host's CA files.
    Verified,
    /// HTTPS verified as with [`Transport::Verified`]; plain HTTP only when the host does not
    /// answer over HTTPS but does over HTTP. A loopback host when `--tls-ca` is given: the CA
    /// is checked wherever TLS is spoken, and a plain-HTTP registry on `localhost` keeps
    /// working.
    VerifiedOrHttp,
    /// HTTPS without certificate verification, else plain HTTP.
    Insecure,
}

/// Transfer tuning: retries and upload sizes.
#[derive(Debug, Clone)]
pub struct TransferSettings {
    /// Retries after the first attempt for 5xx, 429 and connection errors.
    pub max_retries: u32,
    /// The first backoff delay; doubled on each retry, capped at 10 s.
    pub backoff_base: Duration,
    /// Blobs up to this size are uploaded with one PUT; larger ones in PATCH chunks.
    pub monolithic_max: u64,
    /// The size of each PATCH chunk.
    pub chunk_size: u64,
    /// Connection timeout.
    pub connect_timeout: Duration,
    /// Read timeout (time without any data).
    pub read_timeout: Duration,
}

impl Default for TransferSettings {
    fn default() -> Self {
        Self {
            max_retries: 3,
            backoff_base: Duration::from_millis(200),
            monolithic_max: 32 << 20,
            chunk_size: 16 << 20,
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(300),
        }
    }
}

/// The registry configuration (from YAML, plus command-line settings).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    /// The registry for names without a registry part, instead of `docker.io`.
    pub default_registry: Option<String>,
    /// Per-host settings.
    pub registries: BTreeMap<String, HostConfig>,
    /// Hosts reached over plain HTTP or unverified HTTPS.
    pub insecure: Vec<String>,
    /// Pull mirrors per registry host, tried in order before the registry itself.
    pub mirrors: BTreeMap<String, Vec<String>>,
    /// An extra CA file trusted for every host (`--tls-ca`).
    #[serde(skip)]
    pub tls_ca: Option<PathBuf>,
    /// Directories holding `<host>/*.crt` CA files.
    #[serde(skip)]
    pub cert_dirs: Vec<PathBuf>,
    /// Treat loopback registries (`localhost`, `127.0.0.0/8`, `[::1]`) as insecure, as Docker
    /// does. Default true.
    #[serde(skip)]
    pub loopback_insecure: bool,
    /// Retries, timeouts and upload sizes.
    #[serde(skip)]
    pub transfer: TransferSettings,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            default_registry: None,
            registries: BTreeMap::new(),
            insecure: Vec::new(),
            mirrors: BTreeMap::new(),
            tls_ca: None,
            cert_dirs: DEFAULT_CERT_DIRS.iter().map(PathBuf::from).collect(),
            loopback_insecure: true,
            transfer: TransferSettings::default(),
        }
    }
}

impl RegistryConfig {
    /// Parses the YAML configuration.
    pub fn from_yaml(text: &str) -> Result<Self> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let mut config: Self = serde_yaml_ng::from_str(text).map_err(|e| {
            RegistryError::Config(format!("invalid registry configuration yaml: {e}"))
        })?;
        if let Some(default) = &config.default_registry {
            let checked = reference::validate_default_registry(default).map_err(|e| {
                RegistryError::Config(format!("invalid default_registry {default:?}: {e}"))
            })?;
            config.default_registry = Some(checked);
        }
        Ok(config)
    }

    /// Reads and parses a YAML configuration file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            RegistryError::Config(format!(
                "cannot read registry configuration {}: {e}",
                path.display()
            ))
        })?;
        Self::from_yaml(&text)
    }

    /// The settings of a host, if configured.
    pub fn host(&self, host: &str) -> Option<&HostConfig> {
        self.registries.get(host)
    }

    /// How `host` is reached; see [`Transport`]. In order: a host listed as insecure (or
    /// with `insecure: true`) is [`Transport::Insecure`]; a host that is not a loopback one
    /// (or with `loopback_insecure` off) is [`Transport::Verified`]; a loopback host with its
    /// own `ca_file` is [`Transport::Verified`], one with only `--tls-ca` is
    /// [`Transport::VerifiedOrHttp`], any other is [`Transport::Insecure`], as in Docker.
    pub fn transport(&self, host: &str) -> Transport {
        let bare = reference::host_without_port(host);
        let configured = self.host(host);
        if self.insecure.iter().any(|h| h == host || h == bare)
            || configured.is_some_and(|h| h.insecure)
        {
            return Transport::Insecure;
        }
        if !(self.loopback_insecure && reference::is_loopback_host(host)) {
            return Transport::Verified;
        }
        if configured.is_some_and(|h| h.ca_file.is_some()) {
            Transport::Verified
        } else if self.tls_ca.is_some() {
            Transport::VerifiedOrHttp
        } else {
            Transport::Insecure
        }
    }

    /// True when `host` is reached over plain HTTP or HTTPS without verification
    /// ([`Transport::Insecure`]).
    pub fn is_insecure(&self, host: &str) -> bool {
        self.transport(host) == Transport::Insecure
    }

    /// The extra CA files trusted for `host`: `--tls-ca`, the host's `ca_file`, and every
    /// `*.crt` in `<cert dir>/<host>/`.
    pub fn ca_files(&self, host: &str) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self.tls_ca.iter().cloned().collect();
        files.extend(self.host(host).and_then(|h| h.ca_file.clone()));
        for dir in &self.cert_dirs {
            let Ok(entries) = std::fs::read_dir(dir.join(host)) else {
                continue;
            };
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "crt"))
                .collect();
            found.sort();
            files.extend(found);
        }
        files
    }

    /// The pull mirrors of `host`, in order.
    pub fn mirrors_for(&self, host: &str) -> &[String] {
        self.mirrors
            .get(host)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// The credentials written inline in the configuration (`username`/`password`).
    pub fn inline_credentials(&self) -> StaticCredentials {
        let mut creds = StaticCredentials::new();
        for (host, h) in &self.registries {
            if let (Some(username), Some(password)) = (&h.username, &h.password) {
                creds.insert(
                    host.clone(),
                    Credentials::Basic {
                        username: username.clone(),
                        password: password.clone(),
                    },
                );
            }
        }
        creds
    }

    /// Parses an image reference, putting names without a registry part on
    /// `default_registry` when one is configured (`app` -> `<default>/app`; Docker Hub's
    /// `library/` prefix is not added there). See [`Reference::parse_with_default`].
    pub fn resolve(
        &self,
        image: &str,
    ) -> std::result::Result<Reference, reference::ReferenceError> {
        Reference::parse_with_default(image, self.default_registry.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = r#"
default_registry: registry.example.com
registries:
  registry.example.com:
    username: ci
    password: s3cret
    ca_file: certs/example-ca.crt
  "10.1.2.3:5000":
    insecure: true
insecure: [build-cache.internal]
mirrors:
  docker.io: [mirror-a.example.com, "mirror-b.example.com:5000"]
"#;

    #[test]
    fn default_cert_dirs_are_the_containers_and_docker_ones() {
        assert_eq!(
            RegistryConfig::default().cert_dirs,
            [
                PathBuf::from("/etc/containers/certs.d"),
                PathBuf::from("/etc/docker/certs.d")
            ]
        );
    }

    #[test]
    fn parses_yaml() {
        let c = RegistryConfig::from_yaml(YAML).expect("valid yaml");
        assert_eq!(c.default_registry.as_deref(), Some("registry.example.com"));
        assert!(c.is_insecure("10.1.2.3:5000"));
        assert!(c.is_insecure("build-cache.internal:5000"));
        assert!(c.is_insecure("127.0.0.1:5000"));
        assert!(c.is_insecure("localhost"));
        assert!(!c.is_insecure("registry.example.com"));
        assert_eq!(c.mirrors_for("docker.io").len(), 2);
        assert!(c.mirrors_for("quay.io").is_empty());
        let ca = c.ca_files("registry.example.com");
        assert_eq!(ca, vec![PathBuf::from("certs/example-ca.crt")]);
        use crate::credentials::CredentialProvider;
        assert!(matches!(
            c.inline_credentials().credentials("registry.example.com"),
            Some(Credentials::Basic { username, .. }) if username == "ci"
        ));
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn loopback_host_with_its_own_ca_is_verified() {
        let c = RegistryConfig::from_yaml(
            "registries:\n  127.0.0.1:5443:\n    ca_file: /ca.crt\n  127.0.0.1:5444:\n    ca_file: /ca.crt\n    insecure: true\n",
        )
        .expect("parses");
        assert!(!c.is_insecure("127.0.0.1:5443"));
        assert!(c.is_insecure("127.0.0.1:5444"), "explicitly insecure wins");
        assert!(
            c.is_insecure("127.0.0.1:5000"),
            "other loopback hosts stay insecure"
        );
    }

    #[test]
    fn tls_ca_verifies_loopback_hosts_that_speak_tls() {
        let c = RegistryConfig {
            tls_ca: Some(PathBuf::from("/ca.pem")),
            insecure: vec!["127.0.0.1:5001".into()],
            ..RegistryConfig::from_yaml("registries:\n  localhost:5443:\n    ca_file: /own.crt\n")
                .expect("parses")
        };
        assert_eq!(c.transport("127.0.0.1:5000"), Transport::VerifiedOrHttp);
        assert_eq!(c.transport("[::1]:5000"), Transport::VerifiedOrHttp);
        assert_eq!(c.transport("localhost:5443"), Transport::Verified);
        assert_eq!(c.transport("127.0.0.1:5001"), Transport::Insecure);
        assert_eq!(c.transport("registry.example.com"), Transport::Verified);
        assert!(!c.is_insecure("127.0.0.1:5000"));
        let plain = RegistryConfig::default();
        assert_eq!(plain.transport("127.0.0.1:5000"), Transport::Insecure);
    }

    #[test]
    fn loopback_can_be_secure() {
        let c = RegistryConfig {
            loopback_insecure: false,
            ..RegistryConfig::default()
        };
        assert!(!c.is_insecure("127.0.0.1:5000"));
    }

    #[test]
    fn rejects_bad_yaml() {
        let e = RegistryConfig::from_yaml("registries: [1, 2]").expect_err("invalid");
        assert!(e.to_string().contains("registry configuration"), "{e}");
        assert!(RegistryConfig::from_yaml("unknown_key: 1").is_err());
        assert!(RegistryConfig::from_yaml("").is_ok());
    }

    #[test]
    fn cert_dirs_are_scanned() {
        let dir = tempfile::tempdir().expect("tempdir");
        let host_dir = dir.path().join("myreg:5000");
        std::fs::create_dir_all(&host_dir).expect("mkdir");
        std::fs::write(host_dir.join("ca.crt"), "x").expect("write");
        std::fs::write(host_dir.join("client.key"), "x").expect("write");
        let c = RegistryConfig {
            cert_dirs: vec![dir.path().to_path_buf()],
            tls_ca: Some(PathBuf::from("global.pem")),
            ..RegistryConfig::default()
        };
        assert_eq!(
            c.ca_files("myreg:5000"),
            vec![PathBuf::from("global.pem"), host_dir.join("ca.crt")]
        );
    }

    #[test]
    fn default_registry_resolution() {
        let c = RegistryConfig::from_yaml(YAML).expect("valid yaml");
        assert_eq!(
            c.resolve("app:1").expect("ok").to_string(),
            "registry.example.com/app:1"
        );
        assert_eq!(
            c.resolve("team/app").expect("ok").to_string(),
            "registry.example.com/team/app:latest"
        );
        assert_eq!(
            c.resolve("docker.io/library/alpine")
                .expect("ok")
                .to_string(),
            "docker.io/library/alpine:latest"
        );
        assert_eq!(
            c.resolve("localhost:5000/x").expect("ok").to_string(),
            "localhost:5000/x:latest"
        );
        assert_eq!(
            c.resolve("library/alpine").expect("ok").to_string(),
            "registry.example.com/library/alpine:latest"
        );
        let e = RegistryConfig::from_yaml("default_registry: registry.example.com/team")
            .expect_err("a path is not a registry");
        assert!(e.to_string().contains("default_registry"), "{e}");
        let hub = RegistryConfig::from_yaml("default_registry: index.docker.io").expect("ok");
        assert_eq!(hub.default_registry.as_deref(), Some("docker.io"));
        let plain = RegistryConfig::default();
        assert_eq!(
            plain.resolve("alpine").expect("ok").to_string(),
            "docker.io/library/alpine:latest"
        );
    }
}
