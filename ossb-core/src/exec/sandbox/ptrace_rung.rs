//! The ptrace rung: no namespaces, every path-taking call translated by a tracer
//! ([`super::ptrace`], `docs/ptrace-sandbox.md`).

use super::ptrace::{StepExit, TracedStep};
use super::{CancelToken, RunSpec, SandboxError, StepReport, StepRoot};
use std::path::Path;

/// Runs one step in the ptrace sandbox.
///
/// `helper` is the sandbox helper binary, `temp_dir` where the step's temp files go, `root`
/// the step's rootfs (always a [`StepRoot::Dir`]: the ladder pairs this rung with the scan
/// snapshotter).
pub(super) fn run(
    helper: &Path,
    temp_dir: &Path,
    root: &StepRoot,
    spec: &RunSpec,
    cancel: &CancelToken,
    on_line: &mut dyn FnMut(&str),
) -> Result<StepReport, SandboxError> {
    let StepRoot::Dir(rootfs) = root else {
        return Err(SandboxError::InvalidSpec(
            "the ptrace sandbox runs on a plain rootfs directory (the scan snapshotter), not an overlay"
                .into(),
        ));
    };
    super::ptrace::run_traced(
        &TracedStep {
            helper: helper.to_path_buf(),
            rootfs: rootfs.clone(),
            temp_dir: temp_dir.to_path_buf(),
            run: spec.clone(),
        },
        cancel,
        on_line,
    )
    .and_then(StepExit::into_report)
}

/// Whether the ptrace sandbox works here (`Ok` with what was checked, `Err` with why not).
/// Runs in a probe child process (single threaded, may fork).
pub(crate) fn probe() -> Result<String, String> {
    super::ptrace::probe()
}
