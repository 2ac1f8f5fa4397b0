//! Instruction flags (`--from=x`, `--link`), checked like BuildKit's `BFlags`.

use std::collections::{BTreeMap, BTreeSet};

/// The kind of value a flag takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlagKind {
    /// `--flag`, `--flag=true|false`.
    Bool,
    /// `--flag=value`, at most once.
    String,
    /// `--flag=value`, repeatable.
    Strings,
}

/// Flags of one instruction after checking them against the allowed set.
#[derive(Debug, Default, Clone)]
pub(crate) struct Flags {
    values: BTreeMap<String, Vec<String>>,
}

impl Flags {
    /// Check `raw` (as the parser keeps them: `--name=value`) against `allowed`.
    pub(crate) fn parse(raw: &[String], allowed: &[(&str, FlagKind)]) -> Result<Flags, String> {
        let mut values: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for arg in raw {
            let Some(body) = arg.strip_prefix("--") else {
                return Err(format!("Arg should start with -- : {arg}"));
            };
            if body.is_empty() {
                break;
            }
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            let Some(&(_, kind)) = allowed.iter().find(|(n, _)| *n == name) else {
                return Err(format!("unknown flag: --{name}"));
            };
            if values.contains_key(name) && kind != FlagKind::Strings {
                return Err(format!("Duplicate flag specified: {name}"));
            }
            let stored = match kind {
                FlagKind::Bool => match value {
                    None => "true".to_string(),
                    Some("") => return Err(format!("Missing a value on flag: {name}")),
                    Some(v) => {
                        let lower = v.to_ascii_lowercase();
                        if lower != "true" && lower != "false" {
                            return Err(format!(
                                "Expecting boolean value for flag {name}, not: {v}"
                            ));
                        }
                        lower
                    }
                },
                FlagKind::String | FlagKind::Strings => match value {
                    None => return Err(format!("Missing a value on flag: {name}")),
                    Some(v) => v.to_string(),
                },
            };
            values.entry(name.to_string()).or_default().push(stored);
        }
        Ok(Flags { values })
    }

    /// The value of a string flag, when given.
    pub(crate) fn string(&self, name: &str) -> Option<String> {
        self.values.get(name).and_then(|v| v.last().cloned())
    }

    /// The value of a bool flag (false when absent).
    pub(crate) fn bool(&self, name: &str) -> bool {
        self.values
            .get(name)
            .and_then(|v| v.last())
            .is_some_and(|v| v == "true")
    }

    /// The value of a bool flag, `None` when absent.
    pub(crate) fn opt_bool(&self, name: &str) -> Option<bool> {
        self.values
            .get(name)
            .and_then(|v| v.last())
            .map(|v| v == "true")
    }

    /// All values of a repeatable flag.
    pub(crate) fn strings(&self, name: &str) -> Vec<String> {
        self.values.get(name).cloned().unwrap_or_default()
    }

    /// The names of the flags that were given.
    pub(crate) fn used(&self) -> BTreeSet<String> {
        self.values.keys().cloned().collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn raw(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flag_kinds() {
        let allowed = [
            ("link", FlagKind::Bool),
            ("from", FlagKind::String),
            ("exclude", FlagKind::Strings),
        ];
        let f = Flags::parse(
            &raw(&["--link", "--from=a", "--exclude=x", "--exclude=y"]),
            &allowed,
        )
        .unwrap();
        assert!(f.bool("link"));
        assert_eq!(f.string("from").as_deref(), Some("a"));
        assert_eq!(f.strings("exclude"), vec!["x", "y"]);
        let err = Flags::parse(&raw(&["--boo"]), &allowed).unwrap_err();
        assert_eq!(err, "unknown flag: --boo");
        let err = Flags::parse(&raw(&["--from"]), &allowed).unwrap_err();
        assert_eq!(err, "Missing a value on flag: from");
        let err = Flags::parse(&raw(&["--from=a", "--from=b"]), &allowed).unwrap_err();
        assert_eq!(err, "Duplicate flag specified: from");
        let err = Flags::parse(&raw(&["--link=maybe"]), &allowed).unwrap_err();
        assert!(err.contains("Expecting boolean value for flag link"));
        let f = Flags::parse(&raw(&["--link=FALSE"]), &allowed).unwrap();
        assert!(!f.bool("link"));
    }
}
