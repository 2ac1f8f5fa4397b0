//! Docker-style credential files: `config.json`, containers `auth.json`, Kubernetes
//! `.dockerconfigjson` (all the same format) and the legacy `.dockercfg` (the `auths` map
//! at the top level).
//!
//! Within one `config.json`, a host is looked up as Docker does: `credHelpers[host]`, then
//! `credsStore`, then the `auths` entry (`identitytoken`, else `auth` = base64
//! `user:password`, else `username`/`password`). Files are read through symlinks, so the
//! Kubernetes atomic-writer layout (`..data` -> `..2024_…` directories) works.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;

use super::environment::Environment;
use super::{CredentialError, Credentials, FoundCredentials, helper, host};

/// The layout of a credential file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// `{"auths": {...}, "credHelpers": {...}, "credsStore": "..."}`.
    DockerConfig,
    /// Legacy `.dockercfg`: `{"host": {"auth": "...", "email": "..."}}`.
    LegacyDockercfg,
}

/// One credential file of a known format. `label` names the source in messages
/// (`docker config`, `kubernetes secret`).
#[derive(Debug, Clone)]
pub struct AuthFile {
    /// The file.
    pub path: PathBuf,
    /// Its format.
    pub format: FileFormat,
    /// What the file is, for messages.
    pub label: String,
}

/// An `auths` entry. No `Debug`: it holds secrets.
#[derive(Deserialize, Default)]
#[serde(default)]
struct AuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    identitytoken: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ConfigFile {
    auths: BTreeMap<String, AuthEntry>,
    #[serde(rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
    #[serde(rename = "credsStore")]
    creds_store: Option<String>,
}

impl AuthFile {
    /// A file of `format` at `path`.
    pub fn new(path: impl Into<PathBuf>, format: FileFormat, label: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            format,
            label: label.into(),
        }
    }

    fn origin(&self) -> String {
        format!("{} {}", self.label, self.path.display())
    }

    /// The credentials for `host` in this file (running credential helpers it names).
    /// A missing file gives `Ok(None)`; an unreadable or malformed one an error.
    pub fn lookup(
        &self,
        registry: &str,
        env: &Environment,
        helper_timeout: Duration,
    ) -> Result<Option<FoundCredentials>, CredentialError> {
        let Some(text) = read_optional(&self.path).map_err(|e| {
            CredentialError::new(
                registry,
                self.origin(),
                format!("cannot read the file: {e}"),
                "check the file's permissions and mount",
            )
        })?
        else {
            tracing::trace!(registry, source = %self.origin(), "credential file not present");
            return Ok(None);
        };
        let file: ConfigFile = match self.format {
            FileFormat::DockerConfig => serde_json::from_slice(&text),
            FileFormat::LegacyDockercfg => serde_json::from_slice(&text).map(|auths| ConfigFile {
                auths,
                ..ConfigFile::default()
            }),
        }
        .map_err(|e| {
            CredentialError::new(
                registry,
                self.origin(),
                format!("the file is not valid json: {e}"),
                "fix or remove the file",
            )
        })?;
        let found = |credentials: Credentials, how: String| FoundCredentials {
            credentials,
            source: format!("{} ({how})", self.origin()),
        };
        if let Some(key) = host::best_key(file.cred_helpers.keys(), registry) {
            let name = &file.cred_helpers[key];
            return Ok(helper::get(
                name,
                &host::helper_server_url(registry),
                env,
                helper_timeout,
                registry,
                &format!("{} credHelpers", self.origin()),
            )?
            .map(|c| found(c, format!("credHelpers: docker-credential-{name}"))));
        }
        if let Some(name) = file.creds_store.as_deref().filter(|n| !n.is_empty())
            && let Some(c) = helper::get(
                name,
                &host::helper_server_url(registry),
                env,
                helper_timeout,
                registry,
                &format!("{} credsStore", self.origin()),
            )?
        {
            return Ok(Some(found(
                c,
                format!("credsStore: docker-credential-{name}"),
            )));
        }
        let Some(key) = host::best_key(file.auths.keys(), registry) else {
            return Ok(None);
        };
        let entry = &file.auths[key];
        Ok(entry_credentials(entry, key)
            .map_err(|detail| {
                CredentialError::new(
                    registry,
                    self.origin(),
                    detail,
                    "log in again or fix the entry",
                )
            })?
            .map(|c| found(c, format!("auths {key:?}"))))
    }
}

/// Reads a file, following symlinks; `None` when it (or a parent directory) does not exist.
pub(crate) fn read_optional(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                || e.kind() == std::io::ErrorKind::NotADirectory =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

fn entry_credentials(entry: &AuthEntry, key: &str) -> Result<Option<Credentials>, String> {
    if let Some(t) = entry.identitytoken.as_deref().filter(|t| !t.is_empty()) {
        return Ok(Some(Credentials::IdentityToken(t.to_string())));
    }
    if let Some(auth) = entry
        .auth
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty())
    {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| {
                format!("the auth field of entry {key:?} is not base64 of utf-8 text")
            })?;
        let (username, password) = decoded
            .split_once(':')
            .ok_or_else(|| format!("the auth field of entry {key:?} is not user:password"))?;
        return Ok(Some(Credentials::Basic {
            username: username.to_string(),
            password: password.to_string(),
        }));
    }
    match (&entry.username, &entry.password) {
        (Some(u), Some(p)) if !u.is_empty() => Ok(Some(Credentials::Basic {
            username: u.clone(),
            password: p.clone(),
        })),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(dir: &Path, text: &str, format: FileFormat, host: &str) -> Option<Credentials> {
        let p = dir.join("config.json");
        std::fs::write(&p, text).expect("write");
        AuthFile::new(&p, format, "docker config")
            .lookup(host, &Environment::default(), Duration::from_secs(5))
            .expect("lookup")
            .map(|f| f.credentials)
    }

    #[test]
    fn reads_entries() {
        let d = tempfile::tempdir().expect("tempdir");
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:pa:ss");
        let text = format!(
            r#"{{"auths": {{
                "https://index.docker.io/v1/": {{"auth": "{auth}"}},
                "quay.io": {{"username": "bob", "password": "pw"}},
                "ghcr.io": {{"identitytoken": "rt"}},
                "empty.example": {{}}
            }}, "HttpHeaders": {{"X": "y"}}}}"#
        );
        let basic = |u: &str, p: &str| {
            Some(Credentials::Basic {
                username: u.into(),
                password: p.into(),
            })
        };
        assert_eq!(
            lookup(d.path(), &text, FileFormat::DockerConfig, "docker.io"),
            basic("alice", "pa:ss")
        );
        assert_eq!(
            lookup(d.path(), &text, FileFormat::DockerConfig, "quay.io"),
            basic("bob", "pw")
        );
        assert_eq!(
            lookup(d.path(), &text, FileFormat::DockerConfig, "ghcr.io"),
            Some(Credentials::IdentityToken("rt".into()))
        );
        assert_eq!(
            lookup(d.path(), &text, FileFormat::DockerConfig, "empty.example"),
            None
        );
        let legacy = format!(r#"{{"reg.example:5000": {{"auth": "{auth}", "email": "a@b"}}}}"#);
        assert_eq!(
            lookup(
                d.path(),
                &legacy,
                FileFormat::LegacyDockercfg,
                "reg.example:5000"
            ),
            basic("alice", "pa:ss")
        );
    }

    #[test]
    fn errors_name_the_file_not_the_secret() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("config.json");
        std::fs::write(&p, r#"{"auths": {"r": {"auth": "!!notbase64-secretish"}}}"#)
            .expect("write");
        let e = AuthFile::new(&p, FileFormat::DockerConfig, "docker config")
            .lookup("r", &Environment::default(), Duration::from_secs(1))
            .expect_err("bad base64");
        let msg = e.to_string();
        assert!(
            msg.contains(&p.display().to_string()) && msg.contains("registry r"),
            "{msg}"
        );
        assert!(!msg.contains("notbase64-secretish"), "{msg}");
        std::fs::write(&p, "{not json").expect("write");
        assert!(
            AuthFile::new(&p, FileFormat::DockerConfig, "docker config")
                .lookup("r", &Environment::default(), Duration::from_secs(1))
                .is_err()
        );
        let missing = AuthFile::new(
            d.path().join("nope/config.json"),
            FileFormat::DockerConfig,
            "x",
        );
        assert!(
            missing
                .lookup("r", &Environment::default(), Duration::from_secs(1))
                .expect("missing is fine")
                .is_none()
        );
    }
}
