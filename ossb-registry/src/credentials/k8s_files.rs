//! The "individual files" Kubernetes secret layout: a directory holding `registry`,
//! `username` and `password` files (a secret with those keys mounted as a volume).
//! The credentials apply only to the host written in `registry`. Files are read through
//! symlinks (the atomic-writer `..data` layout).

use std::path::{Path, PathBuf};

use super::docker_config::read_optional;
use super::{CredentialError, Credentials, FoundCredentials, host};

/// The default directory of the individual-files secret mount.
pub const DEFAULT_REGISTRY_AUTH_DIR: &str = "/var/run/secrets/registry-auth";

/// A `registry`/`username`/`password` directory.
#[derive(Debug, Clone)]
pub struct FilesDir {
    /// The directory.
    pub dir: PathBuf,
}

fn trim_newline(s: &str) -> &str {
    s.strip_suffix('\n')
        .map(|s| s.strip_suffix('\r').unwrap_or(s))
        .unwrap_or(s)
}

impl FilesDir {
    /// The directory at `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    fn origin(&self) -> String {
        format!("kubernetes secret files {}", self.dir.display())
    }

    fn read(&self, registry: &str, name: &str) -> Result<Option<String>, CredentialError> {
        let path: &Path = &self.dir.join(name);
        let bytes = read_optional(path).map_err(|e| {
            CredentialError::new(
                registry,
                self.origin(),
                format!("cannot read {}: {e}", path.display()),
                "check the secret volume's permissions (defaultMode) and fsGroup",
            )
        })?;
        bytes
            .map(|b| {
                String::from_utf8(b)
                    .map(|s| trim_newline(&s).to_string())
                    .map_err(|_| {
                        CredentialError::new(
                            registry,
                            self.origin(),
                            format!("{} is not utf-8 text", path.display()),
                            "check the secret's keys",
                        )
                    })
            })
            .transpose()
    }

    /// The credentials when the directory's `registry` file names `registry`.
    pub fn lookup(&self, registry: &str) -> Result<Option<FoundCredentials>, CredentialError> {
        let Some(target) = self.read(registry, "registry")? else {
            return Ok(None);
        };
        if !host::matches(target.trim(), registry) {
            return Ok(None);
        }
        let (Some(username), Some(password)) = (
            self.read(registry, "username")?,
            self.read(registry, "password")?,
        ) else {
            return Err(CredentialError::new(
                registry,
                self.origin(),
                "the directory names this registry but lacks a username or password file",
                "add the username and password keys to the secret",
            ));
        };
        Ok(Some(FoundCredentials {
            credentials: Credentials::Basic { username, password },
            source: self.origin(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_matching_registry_only() {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::write(d.path().join("registry"), "https://reg.example:5000\n").expect("w");
        std::fs::write(d.path().join("username"), "ci\n").expect("w");
        std::fs::write(d.path().join("password"), "pw\r\n").expect("w");
        let f = FilesDir::new(d.path());
        let found = f.lookup("reg.example:5000").expect("ok").expect("found");
        assert_eq!(
            found.credentials,
            Credentials::Basic {
                username: "ci".into(),
                password: "pw".into()
            }
        );
        assert!(f.lookup("other.example").expect("ok").is_none());
        std::fs::remove_file(d.path().join("password")).expect("rm");
        assert!(f.lookup("reg.example:5000").is_err());
        assert!(
            FilesDir::new(d.path().join("none"))
                .lookup("x")
                .expect("ok")
                .is_none()
        );
    }
}
