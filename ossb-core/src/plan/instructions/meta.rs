//! Image-config instructions: `ENV`, `LABEL`, `ARG`, `EXPOSE`, `USER`, `WORKDIR`, `VOLUME`,
//! `STOPSIGNAL`, `ONBUILD`, `MAINTAINER`.

use super::{Req, doc_comment, err_at_least_one, err_exactly_one};
use crate::dockerfile::Node;
use serde::Serialize;

/// One `key=value` of `ENV`/`LABEL`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyValue {
    /// The key (raw until expanded).
    pub key: String,
    /// The value (raw until expanded: quotes are removed by expansion).
    pub value: String,
    /// True for the legacy `ENV key value` form.
    pub no_delim: bool,
}

/// `ENV key=value ...`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Env {
    /// The pairs, in order.
    pub pairs: Vec<KeyValue>,
}

/// `LABEL key=value ...`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Label {
    /// The pairs, in order.
    pub pairs: Vec<KeyValue>,
}

/// One `name[=default]` of an `ARG` line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArgPair {
    /// The name.
    pub key: String,
    /// The default, if given (raw until expanded).
    pub default: Option<String>,
    /// The doc comment (`# name does this`), without the name.
    pub doc: String,
}

/// `ARG name[=default] ...`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Arg {
    /// The declared arguments, in order.
    pub args: Vec<ArgPair>,
}

/// `EXPOSE spec ...`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Expose {
    /// The specs as written, sorted (BuildKit sorts them).
    pub specs: Vec<String>,
    /// The exposed `port/proto` entries, filled by expansion.
    pub ports: Vec<String>,
}

/// `USER user[:group]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// The user.
    pub user: String,
}

/// `WORKDIR path`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Workdir {
    /// The path, relative paths resolve against the current working directory.
    pub path: String,
}

/// `VOLUME path ...`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Volume {
    /// The volume paths.
    pub paths: Vec<String>,
}

/// `STOPSIGNAL signal`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StopSignal {
    /// The signal, name or number.
    pub signal: String,
}

/// `ONBUILD trigger`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Onbuild {
    /// The trigger text as stored in the image config (`RUN echo hi`).
    pub expression: String,
    /// The parsed trigger node, used when a later stage builds on this one.
    #[serde(skip)]
    pub trigger: Option<Box<Node>>,
}

/// `MAINTAINER name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Maintainer {
    /// The author.
    pub name: String,
}

fn parse_kvps(args: &[String], cmd: &str) -> Result<Vec<KeyValue>, String> {
    if args.is_empty() {
        return Err(err_at_least_one(cmd));
    }
    if !args.len().is_multiple_of(3) {
        return Err(format!("Bad input to {cmd}, too many arguments"));
    }
    args.chunks(3)
        .map(|c| {
            if c[0].is_empty() {
                return Err(format!("{cmd} names can not be blank"));
            }
            Ok(KeyValue {
                key: c[0].clone(),
                value: c[1].clone(),
                no_delim: c[2].is_empty(),
            })
        })
        .collect()
}

pub(super) fn parse_env(req: &Req<'_>) -> Result<Env, String> {
    req.flags(&[])?;
    Ok(Env {
        pairs: parse_kvps(&req.args, "ENV")?,
    })
}

pub(super) fn parse_label(req: &Req<'_>) -> Result<Label, String> {
    req.flags(&[])?;
    Ok(Label {
        pairs: parse_kvps(&req.args, "LABEL")?,
    })
}

pub(super) fn parse_arg(req: &Req<'_>) -> Result<Arg, String> {
    if req.args.is_empty() {
        return Err(err_at_least_one("ARG"));
    }
    let mut args = Vec::new();
    for a in &req.args {
        let (key, default) = match a.split_once('=') {
            Some(("", _)) => return Err("ARG names can not be blank".to_string()),
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (a.clone(), None),
        };
        let doc = doc_comment(req.comments, &key);
        args.push(ArgPair { key, default, doc });
    }
    Ok(Arg { args })
}

pub(super) fn parse_expose(req: &Req<'_>) -> Result<Expose, String> {
    if req.args.is_empty() {
        return Err(err_at_least_one("EXPOSE"));
    }
    req.flags(&[])?;
    let mut specs = req.args.clone();
    specs.sort();
    Ok(Expose {
        specs,
        ports: Vec::new(),
    })
}

pub(super) fn parse_user(req: &Req<'_>) -> Result<User, String> {
    if req.args.len() != 1 {
        return Err(err_exactly_one("USER"));
    }
    req.flags(&[])?;
    Ok(User {
        user: req.args[0].clone(),
    })
}

pub(super) fn parse_workdir(req: &Req<'_>) -> Result<Workdir, String> {
    if req.args.len() != 1 {
        return Err(err_exactly_one("WORKDIR"));
    }
    req.flags(&[])?;
    Ok(Workdir {
        path: req.args[0].clone(),
    })
}

pub(super) fn parse_volume(req: &Req<'_>) -> Result<Volume, String> {
    if req.args.is_empty() {
        return Err(err_at_least_one("VOLUME"));
    }
    req.flags(&[])?;
    let mut paths = Vec::new();
    for v in &req.args {
        let v = v.trim();
        if v.is_empty() {
            return Err("VOLUME specified can not be an empty string".to_string());
        }
        paths.push(v.to_string());
    }
    Ok(Volume { paths })
}

pub(super) fn parse_stopsignal(req: &Req<'_>) -> Result<StopSignal, String> {
    if req.args.len() != 1 {
        return Err(err_exactly_one("STOPSIGNAL"));
    }
    Ok(StopSignal {
        signal: req.args[0].clone(),
    })
}

pub(super) fn parse_maintainer(req: &Req<'_>) -> Result<Maintainer, String> {
    if req.args.len() != 1 {
        return Err(err_exactly_one("MAINTAINER"));
    }
    req.flags(&[])?;
    Ok(Maintainer {
        name: req.args[0].clone(),
    })
}

pub(super) fn parse_onbuild(req: &Req<'_>) -> Result<Onbuild, String> {
    if req.args.is_empty() {
        return Err(err_at_least_one("ONBUILD"));
    }
    req.flags(&[])?;
    let trigger = req.args[0].trim().to_uppercase();
    match trigger.as_str() {
        "ONBUILD" => {
            return Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".to_string());
        }
        "MAINTAINER" | "FROM" => {
            return Err(format!("{trigger} isn't allowed as an ONBUILD trigger"));
        }
        _ => {}
    }
    let trimmed = req.original.trim_start();
    let mut expression = if trimmed.len() >= 7 && trimmed[..7].eq_ignore_ascii_case("onbuild") {
        trimmed[7..].trim_start().to_string()
    } else {
        trimmed.to_string()
    };
    for h in req.heredocs {
        expression.push('\n');
        expression.push_str(&h.content);
        expression.push_str(&h.name);
    }
    Ok(Onbuild {
        expression,
        trigger: req.child.map(|c| Box::new(c.clone())),
    })
}

const SIGNALS: &[(&str, i32)] = &[
    ("ABRT", 6),
    ("ALRM", 14),
    ("BUS", 7),
    ("CHLD", 17),
    ("CLD", 17),
    ("CONT", 18),
    ("FPE", 8),
    ("HUP", 1),
    ("ILL", 4),
    ("INT", 2),
    ("IO", 29),
    ("IOT", 6),
    ("KILL", 9),
    ("PIPE", 13),
    ("POLL", 29),
    ("PROF", 27),
    ("PWR", 30),
    ("QUIT", 3),
    ("SEGV", 11),
    ("STKFLT", 16),
    ("STOP", 19),
    ("SYS", 31),
    ("TERM", 15),
    ("TRAP", 5),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("USR1", 10),
    ("USR2", 12),
    ("VTALRM", 26),
    ("WINCH", 28),
    ("XCPU", 24),
    ("XFSZ", 25),
];

/// Check a `STOPSIGNAL` value like moby's `signal.ParseSignal` (a number, or a Linux signal name
/// with or without `SIG`, including `RTMIN+n`/`RTMAX-n`).
pub fn validate_signal(raw: &str) -> Result<(), String> {
    let invalid = || format!("Invalid signal: {raw}");
    if let Ok(n) = raw.parse::<i64>() {
        return if n == 0 { Err(invalid()) } else { Ok(()) };
    }
    let upper = raw.to_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if SIGNALS.iter().any(|(n, _)| *n == name) || name == "RTMIN" || name == "RTMAX" {
        return Ok(());
    }
    let rt = |prefix: &str, sep: char| {
        name.strip_prefix(prefix)
            .and_then(|r| r.strip_prefix(sep))
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| (1..=15).contains(&n))
    };
    if rt("RTMIN", '+') || rt("RTMAX", '-') {
        return Ok(());
    }
    Err(invalid())
}
