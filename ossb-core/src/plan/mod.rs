//! Typed instructions and the build graph.
//!
//! [`plan`] turns a parsed Dockerfile ([`Ast`]) into a [`BuildGraph`] the way BuildKit's
//! Dockerfile frontend does: every instruction is checked ([`instructions`]), the global and
//! per-stage `ARG` scopes are resolved ([`args`]), arguments are expanded ([`expand`]), and
//! stages are linked, checked for cycles and pruned to what the target needs ([`graph`]).
//!
//! Stages based on an image start from that image's `Env` and run its `ONBUILD` triggers.
//! The executor learns which images those are with [`base_images_needed`], fetches their
//! configs, and plans again with [`PlanOptions::base_images`] filled in.

pub mod args;
pub mod duration;
pub mod error;
pub mod expand;
mod flags;
pub mod graph;
pub mod instructions;
mod lower;
mod onbuild;
pub mod ports;
mod render;
mod sources;
mod suggest;

pub use args::{MetaArg, Platform, ProxyEnv};
pub use error::PlanError;
pub use graph::{BuildGraph, Stage, StageBase, Step};
pub use instructions::{Instruction, parse_instruction};

use crate::dockerfile::Ast;
use std::collections::{BTreeMap, BTreeSet};

/// What planning needs to know about a base image, from its config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BaseImageInfo {
    /// `config.Env`: `KEY=VALUE` entries; a stage based on the image starts with them.
    pub env: Vec<String>,
    /// `config.OnBuild`: triggers that run right after `FROM` in a stage based on the image.
    pub onbuild: Vec<String>,
}

impl BaseImageInfo {
    /// The environment as `(key, value)` pairs; an entry without `=` has an empty value and a
    /// later entry for the same key replaces an earlier one.
    pub fn env_pairs(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::with_capacity(self.env.len());
        for entry in &self.env {
            let (k, v) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
            match out.iter_mut().find(|(key, _)| key == k) {
                Some(e) => e.1 = v.to_string(),
                None => out.push((k.to_string(), v.to_string())),
            }
        }
        out
    }
}

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
    /// Configs of base images, by normalised reference as in [`StageBase::Image`]. A stage
    /// based on an image that is missing here starts with an empty environment and no
    /// triggers.
    pub base_images: BTreeMap<String, BaseImageInfo>,
    /// The registry for image names without a registry part (`FROM team/app`), instead of
    /// `docker.io`; see [`crate::reference::Reference::parse_with_default`].
    pub default_registry: Option<String>,
}

impl Default for PlanOptions {
    fn default() -> Self {
        let host = Platform::host().to_string();
        PlanOptions {
            build_args: BTreeMap::new(),
            target: None,
            build_platform: host.clone(),
            target_platform: host,
            base_images: BTreeMap::new(),
            default_registry: None,
        }
    }
}

/// Turn a parsed Dockerfile into a build graph.
///
/// Errors carry the line of the instruction at fault and map to exit code 2 ("build").
pub fn plan(ast: &Ast, opts: &PlanOptions) -> Result<BuildGraph, PlanError> {
    lower::lower(ast, opts, true)
}

/// The images the target's stages are based on (normalised references), without expanding
/// any step, so an expansion that needs a base image's `Env` does not fail here.
///
/// Triggers of the images already in `opts.base_images` are followed, so a caller fetches
/// the returned images that are not there yet, adds them, and asks again until nothing new
/// comes back; then it calls [`plan`].
pub fn base_images_needed(ast: &Ast, opts: &PlanOptions) -> Result<BTreeSet<String>, PlanError> {
    Ok(lower::lower(ast, opts, false)?.base_images())
}

/// The graph without expanding any step (as [`base_images_needed`] sees it): stages, their
/// bases, `FROM --platform` values and which stages the target needs. The executor uses it
/// to fetch each base image for its stage's platform and to check, before building, that RUN
/// steps of a foreign platform can run here.
pub fn plan_shallow(ast: &Ast, opts: &PlanOptions) -> Result<BuildGraph, PlanError> {
    lower::lower(ast, opts, false)
}
