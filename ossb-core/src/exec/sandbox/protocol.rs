//! The typed messages between the parent (the build) and the sandbox init, one JSON object per
//! line over pipes.
//!
//! The parent writes [`ToInit`] messages to the init's stdin; the init (and, before `execve`,
//! the step's PID 1) writes [`FromInit`] messages to its stdout. Every message is one `write`
//! of less than `PIPE_BUF` bytes where it matters (the child's messages), so writes of the two
//! processes never interleave.

use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};

/// Environment variable that marks a process as a sandbox helper; its value is the mode.
pub const MARKER_ENV: &str = "OSSB_SANDBOX_HELPER";
/// Marker value: this process is the init of one RUN step.
pub const MODE_INIT: &str = "init-v1";
/// Marker value prefix: this process runs one doctor probe (`probe:<name>`).
pub const MODE_PROBE_PREFIX: &str = "probe:";

/// How the rootfs of the step is assembled (inside the step's mount namespace).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RootMount {
    /// An overlay of `lowers` (top first), with a fresh `upper` and `work` dir.
    Overlay {
        /// Lower dirs, top first.
        lowers: Vec<String>,
        /// The upper dir (receives the step's changes).
        upper: String,
        /// The overlay work dir (same filesystem as `upper`).
        work: String,
    },
    /// A recursive bind mount of a plain directory (the step writes into it directly).
    Bind {
        /// The directory.
        rootfs: String,
    },
}

/// Everything the init needs to run one step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitConfig {
    /// The rootfs.
    pub root: RootMount,
    /// An empty directory outside the rootfs used as the mount point of the new root.
    pub mountpoint: String,
    /// Directory with the `hosts`, `resolv.conf` and `hostname` files bind-mounted into `/etc`.
    pub etc_dir: String,
    /// argv of the step; `argv[0]` is looked up in the step's `PATH` when it has no `/`.
    pub argv: Vec<String>,
    /// The step's environment (`KEY=value`).
    pub env: Vec<String>,
    /// Working directory inside the rootfs (absolute; created when missing).
    pub cwd: String,
    /// User id inside the container.
    pub uid: u32,
    /// Group id inside the container.
    pub gid: u32,
    /// Supplementary groups inside the container.
    pub groups: Vec<u32>,
    /// Hostname of the UTS namespace.
    pub hostname: String,
    /// Unshare the network namespace (only `lo`).
    pub network_none: bool,
    /// Container ids that exist inside the user namespace (to decide whether `uid` can be used).
    pub mapped_uids: Vec<(u32, u32)>,
    /// Container gids that exist inside the user namespace.
    pub mapped_gids: Vec<(u32, u32)>,
    /// Extra mounts (`RUN --mount`), set up after the standard ones.
    #[serde(default)]
    pub mounts: Vec<super::mounts::ExtraMount>,
    /// An empty directory outside the rootfs where file mounts are staged on a private tmpfs.
    #[serde(default)]
    pub staging_dir: String,
    /// Emulate ownership with seccomp user notification (single-id mappings): `chown` records
    /// the owner in `user.rootlesscontainers` and the stat family reports it.
    #[serde(default)]
    pub emulate_owners: bool,
    /// The rung of the execution ladder (namespaces or chroot; the ptrace rung has its own
    /// supervisor).
    #[serde(default)]
    pub rung: super::Rung,
}

/// Parent -> init.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToInit {
    /// The step to run (first message).
    Config(Box<InitConfig>),
    /// The uid/gid maps of the init's user namespace are written; go on.
    MapsWritten,
    /// Writing the maps failed; exit.
    Abort,
}

/// Init (or the step's PID 1 before `execve`) -> parent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FromInit {
    /// The namespaces exist; the parent writes the id maps of this process now.
    Unshared,
    /// The step's PID 1 exists; `pid` is its id in the parent's PID namespace.
    Started {
        /// Host pid of the step's PID 1.
        pid: i32,
    },
    /// Mount points the sandbox had to create in the rootfs (removed again afterwards).
    Stubs {
        /// Paths relative to the rootfs, parents first.
        paths: Vec<String>,
    },
    /// Something the user should know (ownership that could not be applied, ...).
    Warning {
        /// Plain-words text.
        text: String,
    },
    /// The step set the owner of a symlink or special file, which cannot carry the ownership
    /// xattr (ownership emulation only).
    LinkOwner {
        /// Absolute path in the container.
        path: String,
        /// Container uid.
        uid: u32,
        /// Container gid.
        gid: u32,
    },
    /// Counters of the ownership supervisor, sent before [`FromInit::Exited`].
    OwnerStats {
        /// Intercepted calls.
        notifications: u64,
        /// Calls the supervisor answered itself (recorded chowns, emulated stats).
        emulated: u64,
    },
    /// Setting up the sandbox failed before the command ran.
    SetupFailed {
        /// What was being done.
        stage: String,
        /// The error.
        error: String,
    },
    /// The step's PID 1 ended.
    Exited {
        /// Exit code, when it exited.
        code: Option<i32>,
        /// Signal number, when it was killed.
        signal: Option<i32>,
    },
}

/// Writes one message as a single line (one `write` call).
pub fn send<T: Serialize, W: Write>(w: &mut W, msg: &T) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(msg).map_err(std::io::Error::other)?;
    line.push(b'\n');
    w.write_all(&line)?;
    w.flush()
}

/// Reads one message; `Ok(None)` at end of file.
pub fn recv<T: for<'de> Deserialize<'de>, R: BufRead>(r: &mut R) -> std::io::Result<Option<T>> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    serde_json::from_str(line.trim_end())
        .map(Some)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Parses one line that was already read.
pub fn parse<T: for<'de> Deserialize<'de>>(line: &[u8]) -> std::io::Result<T> {
    serde_json::from_slice(line)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}
