//! Typed instructions: one AST [`Node`] becomes one [`Instruction`], checked like BuildKit's
//! `instructions.ParseInstruction` (argument counts, flags, forms), with its error texts.
//!
//! Variables are not expanded here; see [`crate::plan::expand`].

mod command;
mod copy;
mod from;
mod meta;
mod run;

pub use command::{CommandLine, Healthcheck, InlineFile, Shell};
pub use copy::{Add, Copy, SourceContent, SourcesAndDest, parse_heredoc_word};
pub use from::From;
pub use meta::{
    Arg, ArgPair, Env, Expose, KeyValue, Label, Maintainer, Onbuild, StopSignal, User, Volume,
    Workdir, validate_signal,
};
pub use run::{
    CacheSharing, Device, Mount, MountType, Network, Run, Security, parse_device, parse_mount,
};
pub(crate) use run::{
    csv_fields as run_csv_fields, parse_network as run_network, parse_security as run_security,
};

use crate::dockerfile::{Heredoc, Node};
use crate::plan::flags::{FlagKind, Flags};
use serde::Serialize;

/// One Dockerfile instruction with its arguments and flags checked.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "instruction", rename_all = "lowercase")]
pub enum Instruction {
    /// `FROM [--platform=p] image [AS name]`.
    From(From),
    /// `RUN [--mount ...] [--network ...] [--security ...] [--device ...] command`.
    Run(Run),
    /// `CMD`.
    Cmd(CommandLine),
    /// `ENTRYPOINT`.
    Entrypoint(CommandLine),
    /// `SHELL ["exe", "arg"]`.
    Shell(Shell),
    /// `COPY`.
    Copy(Copy),
    /// `ADD`.
    Add(Add),
    /// `ENV k=v ...`.
    Env(Env),
    /// `ARG name[=default] ...`.
    Arg(Arg),
    /// `LABEL k=v ...`.
    Label(Label),
    /// `EXPOSE port[/proto] ...`.
    Expose(Expose),
    /// `HEALTHCHECK NONE` or `HEALTHCHECK [flags] CMD ...`.
    Healthcheck(Healthcheck),
    /// `USER user[:group]`.
    User(User),
    /// `WORKDIR path`.
    Workdir(Workdir),
    /// `VOLUME path ...`.
    Volume(Volume),
    /// `STOPSIGNAL signal`.
    #[serde(rename = "stopsignal")]
    StopSignal(StopSignal),
    /// `ONBUILD trigger`.
    Onbuild(Onbuild),
    /// `MAINTAINER name` (deprecated).
    Maintainer(Maintainer),
}

impl Instruction {
    /// The upper-case keyword (`RUN`, `COPY`, ...).
    pub fn keyword(&self) -> &'static str {
        match self {
            Instruction::From(_) => "FROM",
            Instruction::Run(_) => "RUN",
            Instruction::Cmd(_) => "CMD",
            Instruction::Entrypoint(_) => "ENTRYPOINT",
            Instruction::Shell(_) => "SHELL",
            Instruction::Copy(_) => "COPY",
            Instruction::Add(_) => "ADD",
            Instruction::Env(_) => "ENV",
            Instruction::Arg(_) => "ARG",
            Instruction::Label(_) => "LABEL",
            Instruction::Expose(_) => "EXPOSE",
            Instruction::Healthcheck(_) => "HEALTHCHECK",
            Instruction::User(_) => "USER",
            Instruction::Workdir(_) => "WORKDIR",
            Instruction::Volume(_) => "VOLUME",
            Instruction::StopSignal(_) => "STOPSIGNAL",
            Instruction::Onbuild(_) => "ONBUILD",
            Instruction::Maintainer(_) => "MAINTAINER",
        }
    }
}

/// Everything a per-instruction parser needs from the node.
pub(crate) struct Req<'a> {
    pub(crate) args: Vec<String>,
    pub(crate) flags: &'a [String],
    pub(crate) heredocs: &'a [Heredoc],
    pub(crate) json: bool,
    pub(crate) original: &'a str,
    pub(crate) comments: &'a [String],
    pub(crate) child: Option<&'a Node>,
}

impl Req<'_> {
    pub(crate) fn flags(&self, allowed: &[(&str, FlagKind)]) -> Result<Flags, String> {
        Flags::parse(self.flags, allowed)
    }
}

/// BuildKit's `nodeArgs`: the value nodes, and for ONBUILD the trigger keyword followed by the
/// trigger's own value nodes.
fn node_args(node: &Node) -> Vec<String> {
    match &node.child {
        Some(child) => {
            let mut v = vec![child.keyword.clone()];
            v.extend(child.args.iter().cloned());
            v
        }
        None => node.args.clone(),
    }
}

/// Every instruction keyword, for "did you mean" suggestions.
const INSTRUCTION_NAMES: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Turn one AST node into a typed instruction. The error is BuildKit's message, without location.
pub fn parse_instruction(node: &Node) -> Result<Instruction, String> {
    let req = Req {
        args: node_args(node),
        flags: &node.flags,
        heredocs: &node.heredocs,
        json: node.json,
        original: &node.original,
        comments: &node.prev_comment,
        child: node.child.as_deref(),
    };
    match node.keyword.to_ascii_lowercase().as_str() {
        "from" => from::parse_from(&req).map(Instruction::From),
        "run" => run::parse_run(&req).map(Instruction::Run),
        "cmd" => command::parse_cmd(&req).map(Instruction::Cmd),
        "entrypoint" => command::parse_entrypoint(&req).map(Instruction::Entrypoint),
        "shell" => command::parse_shell(&req).map(Instruction::Shell),
        "healthcheck" => command::parse_healthcheck(&req).map(Instruction::Healthcheck),
        "copy" => copy::parse_copy(&req).map(Instruction::Copy),
        "add" => copy::parse_add(&req).map(Instruction::Add),
        "env" => meta::parse_env(&req).map(Instruction::Env),
        "label" => meta::parse_label(&req).map(Instruction::Label),
        "arg" => meta::parse_arg(&req).map(Instruction::Arg),
        "expose" => meta::parse_expose(&req).map(Instruction::Expose),
        "user" => meta::parse_user(&req).map(Instruction::User),
        "workdir" => meta::parse_workdir(&req).map(Instruction::Workdir),
        "volume" => meta::parse_volume(&req).map(Instruction::Volume),
        "stopsignal" => meta::parse_stopsignal(&req).map(Instruction::StopSignal),
        "onbuild" => meta::parse_onbuild(&req).map(Instruction::Onbuild),
        "maintainer" => meta::parse_maintainer(&req).map(Instruction::Maintainer),
        _ => {
            let written = node
                .original
                .split_whitespace()
                .next()
                .unwrap_or(node.keyword.as_str());
            let message = format!("unknown instruction: {written}");
            Err(
                match crate::plan::suggest::suggest(written, INSTRUCTION_NAMES) {
                    Some(m) => format!("{message} (did you mean {m}?)"),
                    None => message,
                },
            )
        }
    }
}

/// BuildKit's `getComment`: the comment line above an instruction that starts with `name `,
/// without that first word. Empty when there is none.
pub fn doc_comment(comments: &[String], name: &str) -> String {
    if name.is_empty() {
        return String::new();
    }
    let prefix = format!("{name} ");
    comments
        .iter()
        .map(|c| c.trim())
        .find_map(|c| c.strip_prefix(&prefix).map(str::to_string))
        .unwrap_or_default()
}

pub(crate) fn err_at_least_one(cmd: &str) -> String {
    format!("{cmd} requires at least one argument")
}

pub(crate) fn err_exactly_one(cmd: &str) -> String {
    format!("{cmd} requires exactly one argument")
}

/// BuildKit's `handleJSONArgs`: the JSON form as is, the shell form joined into one string.
pub(crate) fn handle_json_args(args: &[String], json: bool) -> Vec<String> {
    if args.is_empty() {
        return Vec::new();
    }
    if json {
        args.to_vec()
    } else {
        vec![args.join(" ")]
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
