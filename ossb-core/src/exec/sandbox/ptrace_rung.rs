//! DISPATCH POINT of the ptrace rung.
//!
//! The ptrace sandbox lives in `sandbox/ptrace/` (written separately). Until it is part of the
//! build these two functions say so; once it is, each body becomes one call into it
//! (`super::ptrace::run(...)` and `super::ptrace::probe()`), and nothing else in the ladder
//! changes.

use super::{CancelToken, RunSpec, SandboxError, StepReport, StepRoot};
use std::path::Path;

/// Why the ptrace rung cannot run in this build.
pub(crate) const NOT_BUILT: &str = "the ptrace sandbox is not built into this ossb";

/// Runs one step in the ptrace sandbox.
///
/// `helper` is the sandbox helper binary, `root` the step's rootfs (always a
/// [`StepRoot::Dir`]: the ladder pairs this rung with the scan snapshotter).
pub(super) fn run(
    helper: &Path,
    root: &StepRoot,
    spec: &RunSpec,
    cancel: &CancelToken,
    on_line: &mut dyn FnMut(&str),
) -> Result<StepReport, SandboxError> {
    let _ = (helper, root, spec, cancel, on_line);
    Err(SandboxError::RungUnavailable {
        rung: super::Rung::Ptrace,
        cause: NOT_BUILT.into(),
    })
}

/// Whether the ptrace sandbox works here (`Ok` with what was checked, `Err` with why not).
/// Runs in a probe child process (single threaded, may fork).
pub(crate) fn probe() -> Result<String, String> {
    Err(NOT_BUILT.into())
}
