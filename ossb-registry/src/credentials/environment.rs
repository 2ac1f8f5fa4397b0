//! A snapshot of the environment variables the credential sources read.
//!
//! The chain never reads the process environment directly: it reads an [`Environment`],
//! taken from the process by default and given explicitly in tests and by embedders (so
//! nothing has to change the process environment, which is unsound in threaded programs).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// Environment variables for the credential sources. `Debug` shows only the variable names,
/// since values such as `AWS_SECRET_ACCESS_KEY` are secrets.
#[derive(Clone, Default)]
pub struct Environment {
    vars: BTreeMap<String, String>,
}

impl Environment {
    /// The process environment (variables that are not valid UTF-8 are left out), as it was
    /// at start-up when `ossb` sealed it (credential variables are then gone from the live
    /// environment; see `ossb_core::exec::sandbox::seal_environment`).
    pub fn from_process() -> Self {
        Self::from_vars(
            ossb_core::exec::sandbox::env_vars()
                .into_iter()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )
    }

    /// An environment holding exactly `vars`.
    pub fn from_vars<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            vars: vars
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// Sets one variable (builder style).
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.vars.insert(key.into(), value.into());
        self
    }

    /// A variable's value; empty values count as unset.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// A variable as a path.
    pub fn path(&self, key: &str) -> Option<PathBuf> {
        self.get(key).map(PathBuf::from)
    }

    /// The home directory (`$HOME`).
    pub fn home(&self) -> Option<PathBuf> {
        self.path("HOME")
    }
}

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Environment")
            .field("vars", &self.vars.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_unset_and_debug_hides_values() {
        let e = Environment::from_vars([("A", ""), ("AWS_SECRET_ACCESS_KEY", "s3cr3t")])
            .with("HOME", "/home/u");
        assert_eq!(e.get("A"), None);
        assert_eq!(e.home(), Some(PathBuf::from("/home/u")));
        let d = format!("{e:?}");
        assert!(
            d.contains("AWS_SECRET_ACCESS_KEY") && !d.contains("s3cr3t"),
            "{d}"
        );
        assert!(
            Environment::from_process()
                .get("OSSB_SURELY_UNSET_VARIABLE")
                .is_none()
        );
    }
}
