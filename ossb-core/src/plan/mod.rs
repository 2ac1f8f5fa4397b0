//! Typed instructions and the build graph.
//!
//! [`plan`] turns a parsed Dockerfile ([`Ast`]) into a [`BuildGraph`] the way BuildKit's
//! Dockerfile frontend does: every instruction is checked ([`instructions`]), the global and
//! per-stage `ARG` scopes are resolved ([`args`]), arguments are expanded ([`expand`]), and
//! stages are linked, checked for cycles and pruned to what the target needs ([`graph`]).

pub mod args;
pub mod duration;
pub mod error;
pub mod expand;
mod flags;
pub mod graph;
pub mod instructions;
mod lower;
pub mod ports;
mod render;

pub use args::{MetaArg, Platform, ProxyEnv};
pub use error::PlanError;
pub use graph::{BuildGraph, Stage, StageBase, Step};
pub use instructions::{Instruction, parse_instruction};

use crate::dockerfile::Ast;
use std::collections::BTreeMap;

/// What the caller decides about a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanOptions {
    /// `--build-arg` values.
    pub build_args: BTreeMap<String, String>,
    /// `--target`: the stage to build (default: the last stage).
    pub target: Option<String>,
    /// The platform the build runs on (`linux/amd64`).
    pub build_platform: String,
    /// The platform the image is for (`linux/arm64`).
    pub target_platform: String,
}

impl Default for PlanOptions {
    fn default() -> Self {
        let host = Platform::host().to_string();
        PlanOptions {
            build_args: BTreeMap::new(),
            target: None,
            build_platform: host.clone(),
            target_platform: host,
        }
    }
}

/// Turn a parsed Dockerfile into a build graph.
///
/// Errors carry the line of the instruction at fault and map to exit code 2 ("build").
pub fn plan(ast: &Ast, opts: &PlanOptions) -> Result<BuildGraph, PlanError> {
    lower::lower(ast, opts)
}
