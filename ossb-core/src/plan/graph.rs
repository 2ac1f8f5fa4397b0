//! The build graph: stages, their bases and dependencies, and the steps of each stage with
//! their arguments expanded. Built by [`crate::plan::plan`].

use crate::plan::args::{MetaArg, ProxyEnv};
use crate::plan::instructions::Instruction;
use crate::plan::render::render_instruction;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// What a stage starts from (and what `COPY --from` / `RUN --mount from=` point at).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "lowercase")]
pub enum StageBase {
    /// `FROM scratch`: an empty file system.
    Scratch,
    /// An image, as a normalised reference (`docker.io/library/alpine:latest`).
    Image(String),
    /// An earlier stage, by index.
    Stage(usize),
}

/// One instruction of a stage, ready for the executor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// First line (1-based).
    pub line: usize,
    /// Last line (1-based).
    pub end_line: usize,
    /// The instruction text as written (continuations joined).
    pub original: String,
    /// The typed instruction; its arguments are expanded when `expanded` is true.
    pub instruction: Instruction,
    /// False for steps of stages the target does not need (left as written).
    pub expanded: bool,
    /// Build args this step depends on (for cache keys): the args its expansion used, and for
    /// `RUN` every arg in scope with a value (they are in its environment).
    pub used_args: BTreeSet<String>,
    /// The args in scope with a value at this step (the extra environment of `RUN`).
    pub build_args: BTreeMap<String, String>,
    /// `COPY --from` resolved.
    pub copy_from: Option<StageBase>,
    /// `RUN --mount from=` resolved, one entry per mount spec (`None` for the build context).
    pub mount_from: Vec<Option<StageBase>>,
    /// True when the step came from an `ONBUILD` trigger of the base stage.
    pub from_onbuild: bool,
}

impl Step {
    /// A Dockerfile-like rendering of the (expanded) instruction.
    pub fn text(&self) -> String {
        render_instruction(&self.instruction)
    }
}

/// One build stage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stage {
    /// Position in the Dockerfile, from 0.
    pub index: usize,
    /// The `AS name`, lower-cased.
    pub name: Option<String>,
    /// The name, or `stage-N` for an unnamed stage.
    pub display_name: String,
    /// The base after expansion, as written otherwise.
    pub base_name: String,
    /// What the stage starts from.
    pub base: StageBase,
    /// `--platform` after expansion and normalisation; `None` means the target platform.
    pub platform: Option<String>,
    /// The steps after `FROM`, in order (triggers inherited from a base stage first).
    pub instructions: Vec<Step>,
    /// Stages this one needs: its base stage, `COPY --from` and `RUN --mount from=` stages.
    pub deps: BTreeSet<usize>,
    /// Images used by `COPY --from` and `RUN --mount from=` (normalised references).
    pub image_deps: BTreeSet<String>,
    /// False when the target does not need this stage (it is skipped).
    pub needed: bool,
    /// The `FROM` line.
    pub line: usize,
    /// The `FROM` line's doc comment.
    pub doc: String,
    /// Global args the `FROM` line used.
    pub from_used_args: BTreeSet<String>,
    /// The environment after the last step: the base's (a base stage's, or a base image's
    /// `Env` when the planner was given it), then this stage's `ENV`, in order.
    pub env: Vec<(String, String)>,
}

/// The whole build: every stage, which one is the target, and the build-wide inputs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BuildGraph {
    /// The stages, in Dockerfile order.
    pub stages: Vec<Stage>,
    /// Index of the stage to build.
    pub target: usize,
    /// The global args with their values.
    pub meta_args: Vec<MetaArg>,
    /// The build platform.
    pub build_platform: String,
    /// The target platform.
    pub target_platform: String,
    /// Proxy settings from the proxy build args, for every `RUN` (never in the image).
    pub proxy: Option<ProxyEnv>,
    /// `BUILDKIT_*` build args: frontend options.
    pub frontend_args: BTreeMap<String, String>,
    /// Build args that no `ARG` declared.
    pub unused_build_args: Vec<String>,
}

impl BuildGraph {
    /// The stage called `name` (case-insensitive).
    pub fn stage_by_name(&self, name: &str) -> Option<&Stage> {
        let lower = name.to_lowercase();
        self.stages
            .iter()
            .find(|s| s.name.as_deref() == Some(lower.as_str()))
    }

    /// The images the needed stages start `FROM` (normalised references).
    pub fn base_images(&self) -> BTreeSet<String> {
        self.stages
            .iter()
            .filter(|s| s.needed)
            .filter_map(|s| match &s.base {
                StageBase::Image(r) => Some(r.clone()),
                _ => None,
            })
            .collect()
    }

    /// The stages the target needs, dependencies first (the order to build them in).
    pub fn build_order(&self) -> Vec<usize> {
        let mut order = Vec::new();
        let mut seen = BTreeSet::new();
        // Iterative DFS; cycles were rejected when the graph was built.
        let mut stack = vec![(self.target, false)];
        while let Some((i, done)) = stack.pop() {
            if done {
                if seen.insert(i) {
                    order.push(i);
                }
                continue;
            }
            if seen.contains(&i) {
                continue;
            }
            stack.push((i, true));
            if let Some(s) = self.stages.get(i) {
                for d in s.deps.iter().rev() {
                    if !seen.contains(d) {
                        stack.push((*d, false));
                    }
                }
            }
        }
        order
    }

    /// The graph as pretty JSON (`ossb dockerfile plan --format json`).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self)
            .unwrap_or_else(|e| format!("{{\"error\":{:?}}}", e.to_string()))
    }

    /// A human view (`ossb dockerfile plan --format text`): stages, bases, deps and every step
    /// with its expanded arguments.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "build platform {}, target platform {}",
            self.build_platform, self.target_platform
        );
        for a in &self.meta_args {
            let _ = writeln!(
                out,
                "global ARG {}{}",
                a.name,
                a.value
                    .as_ref()
                    .map(|v| format!("={v}"))
                    .unwrap_or_default()
            );
        }
        if !self.unused_build_args.is_empty() {
            let _ = writeln!(
                out,
                "unused build args: {}",
                self.unused_build_args.join(", ")
            );
        }
        for s in &self.stages {
            let mut tags = Vec::new();
            if s.index == self.target {
                tags.push("target");
            }
            if !s.needed {
                tags.push("skipped");
            }
            let tags = if tags.is_empty() {
                String::new()
            } else {
                format!(" [{}]", tags.join(", "))
            };
            let _ = writeln!(
                out,
                "\nstage {} {}{} (line {})",
                s.index, s.display_name, tags, s.line
            );
            let base = match &s.base {
                StageBase::Scratch => "scratch".to_string(),
                StageBase::Image(r) => format!("image {r}"),
                StageBase::Stage(i) => format!(
                    "stage {i} {}",
                    self.stages
                        .get(*i)
                        .map(|b| b.display_name.as_str())
                        .unwrap_or("?")
                ),
            };
            let _ = writeln!(out, "  from: {base}");
            if let Some(p) = &s.platform {
                let _ = writeln!(out, "  platform: {p}");
            }
            if !s.deps.is_empty() {
                let deps: Vec<String> = s.deps.iter().map(|d| d.to_string()).collect();
                let _ = writeln!(out, "  deps: stages {}", deps.join(", "));
            }
            if !s.image_deps.is_empty() {
                let imgs: Vec<&str> = s.image_deps.iter().map(String::as_str).collect();
                let _ = writeln!(out, "  images: {}", imgs.join(", "));
            }
            for st in &s.instructions {
                let mut line = format!("  {:>4}  {}", st.line, st.text());
                if !st.used_args.is_empty() {
                    let used: Vec<&str> = st.used_args.iter().map(String::as_str).collect();
                    let _ = write!(line, "    # args: {}", used.join(","));
                }
                if st.from_onbuild {
                    line.push_str("    # onbuild");
                }
                let _ = writeln!(out, "{line}");
            }
        }
        out
    }
}
