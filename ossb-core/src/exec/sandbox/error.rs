//! Errors of the RUN sandbox.

/// Why a step could not run or did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The step ran and exited non-zero (or was killed by a signal).
    #[error("the command exited with {}; last output lines:\n{}", describe_status(*.code, *.signal), .last_lines.join("\n"))]
    StepFailed {
        /// Exit code, when it exited.
        code: Option<i32>,
        /// Signal, when it was killed.
        signal: Option<i32>,
        /// The last lines of the step's output.
        last_lines: Vec<String>,
    },
    /// The step was cancelled and every process of it is gone.
    #[error("the step was cancelled; all its processes were killed")]
    Cancelled,
    /// The kernel refused to create a user namespace.
    #[error(
        "user namespaces are refused ({cause}); allow them: sysctl user.max_user_namespaces > 0, \
         kernel.unprivileged_userns_clone=1 / kernel.apparmor_restrict_unprivileged_userns=0 where present, \
         and in Kubernetes run the pod with `hostUsers: false` or a seccomp profile that allows \
         unshare/clone with CLONE_NEWUSER (and `procMount: Unmasked` for /proc)"
    )]
    UserNamespaceRefused {
        /// What the kernel said.
        cause: String,
    },
    /// Writing the uid/gid map of the sandbox failed.
    #[error(
        "cannot map user ids into the sandbox: {0}; check /etc/subuid, /etc/subgid and that newuidmap/newgidmap are installed setuid"
    )]
    IdMap(String),
    /// The sandbox was set up wrongly (mounts, pivot_root, exec).
    #[error("sandbox setup failed while {stage}: {error}")]
    Setup {
        /// What was being done.
        stage: String,
        /// The error.
        error: String,
    },
    /// The helper binary could not be started or talked to.
    #[error(
        "sandbox helper {helper}: {error}; the helper binary must call ossb_core::exec::sandbox::run_init_if_requested() first in main"
    )]
    Helper {
        /// The helper path.
        helper: String,
        /// The error.
        error: String,
    },
    /// The chosen rung of the execution ladder cannot run steps in this build or here.
    #[error("the {rung} sandbox is not available: {cause}")]
    RungUnavailable {
        /// The rung.
        rung: super::Rung,
        /// Why, in plain words.
        cause: String,
    },
    /// An I/O error on the host side.
    #[error("sandbox i/o error while {context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A spec value is invalid (NUL bytes, relative cwd, empty argv).
    #[error("invalid run spec: {0}")]
    InvalidSpec(String),
}

impl SandboxError {
    pub(crate) fn io(context: impl Into<String>, source: impl Into<std::io::Error>) -> Self {
        SandboxError::Io {
            context: context.into(),
            source: source.into(),
        }
    }
}

fn describe_status(code: Option<i32>, signal: Option<i32>) -> String {
    match (code, signal) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("signal {s}"),
        (None, None) => "an unknown status".to_string(),
    }
}
