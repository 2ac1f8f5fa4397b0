//! Variable lookup for expansion.

use std::collections::{BTreeMap, HashMap};

/// Variable lookup for expansion: `Some(value)` when the variable is set (possibly empty).
pub trait EnvLookup {
    /// The value of `name`, or `None` when it is unset.
    fn lookup(&self, name: &str) -> Option<String>;
}

impl EnvLookup for BTreeMap<String, String> {
    fn lookup(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

impl<S: std::hash::BuildHasher> EnvLookup for HashMap<String, String, S> {
    fn lookup(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// An ordered `(key, value)` list; when a key repeats, the last entry wins.
impl EnvLookup for [(String, String)] {
    fn lookup(&self, name: &str) -> Option<String> {
        self.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

impl EnvLookup for Vec<(String, String)> {
    fn lookup(&self, name: &str) -> Option<String> {
        self.as_slice().lookup(name)
    }
}

/// A `KEY=VALUE` list as Docker keeps it: a bare `KEY` means an empty value, and when a key
/// repeats the last entry wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvList(pub Vec<String>);

impl EnvLookup for EnvList {
    fn lookup(&self, name: &str) -> Option<String> {
        self.0.iter().rev().find_map(|entry| {
            let (key, value) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
            (key == name).then(|| value.to_string())
        })
    }
}
