//! Shell-dependent command lines: `CMD`, `ENTRYPOINT`, `SHELL`, `HEALTHCHECK`.

use super::{Req, err_at_least_one, handle_json_args};
use crate::plan::duration::{format_go_duration, parse_go_duration};
use crate::plan::flags::FlagKind;
use serde::Serialize;

/// A heredoc body attached to a `RUN` (kept raw: `<<-` tab stripping happens when it runs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InlineFile {
    /// The heredoc delimiter name.
    pub name: String,
    /// The raw body.
    pub data: String,
    /// True for `<<-`.
    pub chomp: bool,
}

/// A command line in exec form (`PrependShell` false) or shell form (one string, run through
/// the stage's shell).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommandLine {
    /// The words of the JSON form, or the one shell-form string (heredoc bodies removed).
    pub args: Vec<String>,
    /// True for the shell form: the stage's `SHELL` is prepended when it runs.
    pub prepend_shell: bool,
    /// Heredoc bodies (RUN only).
    pub files: Vec<InlineFile>,
}

/// `SHELL ["executable", "parameters"]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shell {
    /// The new shell, exec form.
    pub shell: Vec<String>,
}

/// A health check, as it goes into the image config. Durations are nanoseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Healthcheck {
    /// `["NONE"]`, `["CMD", args...]` or `["CMD-SHELL", "command"]`.
    pub test: Vec<String>,
    /// `--interval`, 0 when unset.
    pub interval_ns: i64,
    /// `--timeout`, 0 when unset.
    pub timeout_ns: i64,
    /// `--start-period`, 0 when unset.
    pub start_period_ns: i64,
    /// `--start-interval`, 0 when unset.
    pub start_interval_ns: i64,
    /// `--retries`, 0 when unset.
    pub retries: i64,
}

impl Healthcheck {
    /// The image history `created_by` text BuildKit writes for this health check.
    pub fn history_created_by(&self) -> String {
        format!(
            "HEALTHCHECK {{Test:[{}] Interval:{} Timeout:{} StartPeriod:{} StartInterval:{} Retries:{}}}",
            self.test.join(" "),
            format_go_duration(self.interval_ns),
            format_go_duration(self.timeout_ns),
            format_go_duration(self.start_period_ns),
            format_go_duration(self.start_interval_ns),
            self.retries
        )
    }
}

pub(super) fn shell_dependent(req: &Req<'_>, with_files: bool) -> CommandLine {
    let files = if with_files {
        req.heredocs
            .iter()
            .map(|h| InlineFile {
                name: h.name.clone(),
                data: h.content.clone(),
                chomp: h.chomp,
            })
            .collect()
    } else {
        Vec::new()
    };
    CommandLine {
        args: handle_json_args(&req.args, req.json),
        prepend_shell: !req.json,
        files,
    }
}

pub(super) fn parse_cmd(req: &Req<'_>) -> Result<CommandLine, String> {
    req.flags(&[])?;
    Ok(shell_dependent(req, true))
}

pub(super) fn parse_entrypoint(req: &Req<'_>) -> Result<CommandLine, String> {
    req.flags(&[])?;
    Ok(shell_dependent(req, true))
}

pub(super) fn parse_shell(req: &Req<'_>) -> Result<Shell, String> {
    req.flags(&[])?;
    let shell = handle_json_args(&req.args, req.json);
    if shell.is_empty() {
        return Err(err_at_least_one("SHELL"));
    }
    if !req.json {
        return Err("SHELL requires the arguments to be in JSON form".to_string());
    }
    Ok(Shell { shell })
}

/// The minimum non-zero health check interval, 1ms.
const MIN_INTERVAL_NS: i64 = 1_000_000;

fn opt_interval(name: &str, value: Option<String>) -> Result<i64, String> {
    let Some(v) = value.filter(|v| !v.is_empty()) else {
        return Ok(0);
    };
    let d = parse_go_duration(&v)?;
    if d == 0 {
        return Ok(0);
    }
    if d < MIN_INTERVAL_NS {
        return Err(format!("Interval {name:?} cannot be less than 1ms"));
    }
    Ok(d)
}

pub(super) fn parse_healthcheck(req: &Req<'_>) -> Result<Healthcheck, String> {
    if req.args.is_empty() {
        return Err(err_at_least_one("HEALTHCHECK"));
    }
    let typ = req.args[0].to_uppercase();
    let rest = &req.args[1..];
    if typ == "NONE" {
        if !rest.is_empty() {
            return Err("HEALTHCHECK NONE takes no arguments".to_string());
        }
        return Ok(Healthcheck {
            test: vec![typ],
            interval_ns: 0,
            timeout_ns: 0,
            start_period_ns: 0,
            start_interval_ns: 0,
            retries: 0,
        });
    }
    let flags = req.flags(&[
        ("interval", FlagKind::String),
        ("timeout", FlagKind::String),
        ("start-period", FlagKind::String),
        ("start-interval", FlagKind::String),
        ("retries", FlagKind::String),
    ])?;
    if typ != "CMD" {
        return Err(format!("Unknown type {typ:?} in HEALTHCHECK (try CMD)"));
    }
    let cmd = handle_json_args(rest, req.json);
    if cmd.is_empty() {
        return Err("Missing command after HEALTHCHECK CMD".to_string());
    }
    let kind = if req.json { "CMD" } else { "CMD-SHELL" };
    let mut test = vec![kind.to_string()];
    test.extend(cmd);
    let retries = match flags.string("retries").filter(|v| !v.is_empty()) {
        None => 0,
        Some(v) => {
            let n: i32 = v
                .parse()
                .map_err(|_| format!("strconv.ParseInt: parsing {v:?}: invalid syntax"))?;
            if n < 0 {
                return Err(format!("--retries cannot be negative ({n})"));
            }
            i64::from(n)
        }
    };
    Ok(Healthcheck {
        test,
        interval_ns: opt_interval("interval", flags.string("interval"))?,
        timeout_ns: opt_interval("timeout", flags.string("timeout"))?,
        start_period_ns: opt_interval("start-period", flags.string("start-period"))?,
        start_interval_ns: opt_interval("start-interval", flags.string("start-interval"))?,
        retries,
    })
}
