//! The rootless RUN sandbox.
//!
//! A step runs in a re-exec of a helper binary (by default `/proc/self/exe`) whose `main`
//! calls [`run_init_if_requested`] first. The chain of processes is:
//!
//! ```text
//! parent (build, any threads) --spawn--> init (helper: unshare user+mount+pid+ipc+uts[+net])
//!     writes the id maps                    --fork--> PID 1 (mounts, pivot_root, execve)
//! ```
//!
//! The parent and the init talk over pipes with typed messages ([`protocol`]); the step's
//! stdout and stderr reach the parent line by line. When PID 1 exits, the kernel kills every
//! other process of the PID namespace, and the mount namespace dies with its last process, so a
//! finished or cancelled step leaves neither processes nor mounts behind.
//!
//! Under a single-id mapping, PID 1 installs a seccomp user-notification filter for the chown
//! and stat calls right before `execve`, and the init answers them (`seccomp.rs`,
//! `supervisor.rs`): `chown` to ids the namespace cannot represent is recorded in the
//! `user.rootlesscontainers` xattr ([`encode_owner`]) and `stat` reports it. See
//! `docs/rootless-ownership.md`.

mod cancel;
mod child;
mod chroot;
mod error;
mod idmap;
mod init;
mod mounts;
mod netlo;
mod ownerattr;
mod parent;
mod protect;
pub mod protocol;
pub mod ptrace;
mod ptrace_rung;
mod rung;
mod seccomp;
mod supervisor;

pub use cancel::CancelToken;
pub use error::SandboxError;
pub use idmap::{IdMap, IdRange, MapMethod, SubRange, sub_ranges};
pub use mounts::{ExtraMount, ExtraMountKind, Ownership, SecretBytes};
pub use ownerattr::{NOOP_ID, ROOTLESS_XATTR, decode_owner, encode_owner};
pub use protect::{
    env_var, env_vars, is_protected, is_secret_name, protect_process, seal_environment,
};
pub use rung::{Rung, SandboxMode};

use protocol::{InitConfig, RootMount};
use rustix::fs::{Mode, OFlags, ResolveFlags};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Stage name of the `unshare` call (its failure means user namespaces are refused).
pub(crate) const STAGE_UNSHARE: &str = "unsharing the user namespace";

/// Makes this process a sandbox helper when the parent asked for it; returns otherwise.
///
/// Call it first thing in `main`, before any thread is started: the init must be single
/// threaded to unshare a user namespace and to fork. It never returns in a helper process.
pub fn run_init_if_requested() {
    let Some(mode) = std::env::var_os(protocol::MARKER_ENV) else {
        return;
    };
    let mode = mode.to_string_lossy().into_owned();
    if mode == protocol::MODE_INIT {
        init::main();
    }
    if mode == ptrace::MODE_PTRACE {
        ptrace::helper_main();
    }
    if let Some(probe) = mode.strip_prefix(protocol::MODE_PROBE_PREFIX) {
        crate::exec::doctor::probe_main(probe);
    }
    eprintln!("ossb sandbox helper: unknown mode {mode:?}");
    std::process::exit(2)
}

/// Network of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// The host's network (no network namespace), like `RUN --network=host` / the default.
    #[default]
    Host,
    /// A new network namespace with only `lo` (`RUN --network=none`).
    None,
}

/// The rootfs a step runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepRoot {
    /// Overlayfs: `lowers` (top first) read-only, changes go to `upper` (`work` on the same
    /// filesystem).
    Overlay {
        /// Lower dirs, top first.
        lowers: Vec<PathBuf>,
        /// Upper dir, receives the changes.
        upper: PathBuf,
        /// Overlay work dir.
        work: PathBuf,
    },
    /// The step writes into this directory directly.
    Dir(PathBuf),
}

/// One command to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpec {
    /// The command and its arguments (`["/bin/sh", "-c", "..."]`).
    pub argv: Vec<String>,
    /// The environment, `KEY=value`.
    pub env: Vec<String>,
    /// Absolute working directory inside the rootfs; created when missing.
    pub cwd: String,
    /// Numeric user id (the caller resolves names).
    pub uid: u32,
    /// Numeric group id.
    pub gid: u32,
    /// Supplementary group ids.
    pub groups: Vec<u32>,
    /// Hostname inside the step.
    pub hostname: String,
    /// Network mode.
    pub network: Network,
    /// Extra `/etc/hosts` lines (`ip name...`), like `--add-host`.
    pub extra_hosts: Vec<String>,
    /// Extra mounts (`RUN --mount`); their mount points and contents never reach the diff.
    pub mounts: Vec<ExtraMount>,
}

impl RunSpec {
    /// `sh -c <script>` as root in `/`, with a default `PATH`, hostname `ossb`, host network.
    pub fn shell(script: &str) -> RunSpec {
        RunSpec {
            argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
            env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
            cwd: "/".into(),
            uid: 0,
            gid: 0,
            groups: Vec::new(),
            hostname: "ossb".into(),
            network: Network::Host,
            extra_hosts: Vec::new(),
            mounts: Vec::new(),
        }
    }
}

/// What a successful step reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepReport {
    /// Things the user should know (ownership or ids the sandbox could not honour, ...).
    pub warnings: Vec<String>,
    /// How long the step took, sandbox setup included.
    pub duration: Duration,
    /// Owners the step gave to symlinks and special files under ownership emulation (absolute
    /// container path -> `(uid, gid)`); they cannot carry the ownership xattr, so the layer
    /// writer applies them to the step's entries.
    pub link_owners: BTreeMap<String, (u32, u32)>,
    /// Calls intercepted by ownership emulation and how many the supervisor answered itself
    /// (`None` when emulation was off).
    pub owner_calls: Option<(u64, u64)>,
}

/// Options of a [`Sandbox`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxOptions {
    /// The helper binary (its `main` calls [`run_init_if_requested`]).
    pub helper: PathBuf,
    /// Where per-step temp dirs go (default: the system temp dir).
    pub temp_dir: Option<PathBuf>,
    /// The id mapping (default: [`IdMap::detect`]).
    pub id_map: Option<IdMap>,
    /// Emulate `chown` with seccomp user notification when the mapping is single-id
    /// (default: true; see `docs/rootless-ownership.md`).
    pub emulate_owners: bool,
    /// The rung of the execution ladder steps run on (default: [`Rung::Full`]; the build
    /// picks it with `exec::doctor`).
    pub rung: Rung,
}

impl Default for SandboxOptions {
    fn default() -> Self {
        SandboxOptions {
            helper: PathBuf::from("/proc/self/exe"),
            temp_dir: None,
            id_map: None,
            emulate_owners: true,
            rung: Rung::Full,
        }
    }
}

/// Runs RUN steps in rootless sandboxes.
#[derive(Debug, Clone)]
pub struct Sandbox {
    helper: PathBuf,
    temp_dir: PathBuf,
    id_map: IdMap,
    emulate_owners: bool,
    rung: Rung,
}

impl Sandbox {
    /// A sandbox with these options.
    pub fn new(options: SandboxOptions) -> Sandbox {
        Sandbox {
            helper: options.helper,
            temp_dir: options.temp_dir.unwrap_or_else(std::env::temp_dir),
            // Without namespaces (ptrace) files are made with the caller's own ids.
            id_map: options.id_map.unwrap_or_else(|| {
                let uid = rustix::process::geteuid().as_raw();
                if options.rung == Rung::Ptrace && uid != 0 {
                    IdMap::single(uid, rustix::process::getegid().as_raw())
                } else {
                    IdMap::detect()
                }
            }),
            emulate_owners: options.emulate_owners,
            rung: options.rung,
        }
    }

    /// The rung steps run on.
    pub fn rung(&self) -> Rung {
        self.rung
    }

    /// The id mapping steps run with.
    pub fn id_map(&self) -> &IdMap {
        &self.id_map
    }

    /// Runs `spec` on `root`, passing each output line (stdout and stderr merged) to `on_line`.
    ///
    /// A non-zero exit is [`SandboxError::StepFailed`] with the last output lines. On return,
    /// every process of the step is gone and the step's temp dir is removed.
    pub fn run(
        &self,
        root: &StepRoot,
        spec: &RunSpec,
        cancel: &CancelToken,
        on_line: &mut dyn FnMut(&str),
    ) -> Result<StepReport, SandboxError> {
        let start = Instant::now();
        validate(spec)?;
        if self.rung == Rung::Ptrace {
            return ptrace_rung::run(&self.helper, &self.temp_dir, root, spec, cancel, on_line);
        }
        if !self.rung.mounts() && matches!(root, StepRoot::Overlay { .. }) {
            return Err(SandboxError::InvalidSpec(format!(
                "the {} sandbox cannot mount an overlay; use the scan snapshotter",
                self.rung
            )));
        }
        let tmp = tempfile::Builder::new()
            .prefix("ossb-step-")
            .tempdir_in(&self.temp_dir)
            .map_err(|e| {
                SandboxError::io(
                    format!("creating a step dir in {}", self.temp_dir.display()),
                    e,
                )
            })?;
        let mountpoint = tmp.path().join("root");
        let etc = tmp.path().join("etc");
        let staging = tmp.path().join("staging");
        for dir in [&mountpoint, &staging] {
            std::fs::create_dir(dir)
                .map_err(|e| SandboxError::io("creating the mount point", e))?;
        }
        write_etc_files(&etc, spec)?;
        let rootmount = match root {
            StepRoot::Overlay {
                lowers,
                upper,
                work,
            } => {
                let stubs = tmp.path().join("stubs");
                write_stub_tree(&stubs)?;
                mount_stubs(&stubs, lowers.first().map(PathBuf::as_path), &spec.mounts);
                let mut l: Vec<String> = lowers
                    .iter()
                    .map(|p| path_str(p))
                    .collect::<Result<_, _>>()?;
                l.push(path_str(&stubs)?);
                RootMount::Overlay {
                    lowers: l,
                    upper: path_str(upper)?,
                    work: path_str(work)?,
                }
            }
            StepRoot::Dir(dir) => RootMount::Bind {
                rootfs: path_str(dir)?,
            },
        };
        let cfg = InitConfig {
            root: rootmount,
            mountpoint: path_str(&mountpoint)?,
            etc_dir: path_str(&etc)?,
            argv: spec.argv.clone(),
            env: spec.env.clone(),
            cwd: spec.cwd.clone(),
            uid: spec.uid,
            gid: spec.gid,
            groups: spec.groups.clone(),
            hostname: spec.hostname.clone(),
            network_none: spec.network == Network::None,
            mapped_uids: self
                .id_map
                .uids
                .iter()
                .map(|r| (r.inside, r.count))
                .collect(),
            mapped_gids: self
                .id_map
                .gids
                .iter()
                .map(|r| (r.inside, r.count))
                .collect(),
            mounts: spec.mounts.clone(),
            staging_dir: path_str(&staging)?,
            emulate_owners: self.emulate_owners && self.id_map.is_single(),
            rung: self.rung,
        };
        let maps = self.rung.namespaces().then_some(&self.id_map);
        let result = parent::run_step(
            &self.helper,
            protocol::MODE_INIT,
            maps,
            !self.rung.namespaces(),
            &protocol::ToInit::Config(Box::new(cfg)),
            cancel,
            on_line,
        );
        // After a failed setup the stage's rootfs is not used again (the scan snapshotter
        // cannot abort a step), so only a completed step needs its stubs removed.
        if let (StepRoot::Dir(dir), Ok(out)) = (root, &result) {
            remove_stubs(dir, &out.stubs, self.rung)?;
        }
        let out = result?;
        drop(tmp);
        match (out.code, out.signal) {
            (Some(0), _) => Ok(StepReport {
                warnings: out.warnings,
                duration: start.elapsed(),
                link_owners: out.link_owners,
                owner_calls: out.owner_calls,
            }),
            (code, signal) => Err(SandboxError::StepFailed {
                code,
                signal,
                last_lines: out.tail,
            }),
        }
    }
}

fn validate(spec: &RunSpec) -> Result<(), SandboxError> {
    if spec.argv.is_empty() || spec.argv[0].is_empty() {
        return Err(SandboxError::InvalidSpec("the command is empty".into()));
    }
    if !spec.cwd.starts_with('/') {
        return Err(SandboxError::InvalidSpec(format!(
            "the working directory {:?} is not absolute",
            spec.cwd
        )));
    }
    let all = spec
        .argv
        .iter()
        .chain(&spec.env)
        .chain([&spec.cwd, &spec.hostname]);
    if let Some(s) = all.into_iter().find(|s| s.contains('\0')) {
        return Err(SandboxError::InvalidSpec(format!(
            "{s:?} contains a NUL byte"
        )));
    }
    for m in &spec.mounts {
        if !m.target.starts_with('/') || m.target.contains('\0') {
            return Err(SandboxError::InvalidSpec(format!(
                "the mount target {:?} is not an absolute path",
                m.target
            )));
        }
        if m.target.trim_matches('/').is_empty() {
            return Err(SandboxError::InvalidSpec(
                "a mount cannot replace the root directory".into(),
            ));
        }
    }
    if spec.hostname.len() > 64 {
        return Err(SandboxError::InvalidSpec(
            "the hostname is longer than 64 bytes".into(),
        ));
    }
    Ok(())
}

fn path_str(p: &Path) -> Result<String, SandboxError> {
    p.to_str()
        .map(str::to_string)
        .ok_or_else(|| SandboxError::InvalidSpec(format!("path {} is not UTF-8", p.display())))
}

/// `hosts`, `resolv.conf` and `hostname`, as Docker provides them.
fn write_etc_files(etc: &Path, spec: &RunSpec) -> Result<(), SandboxError> {
    let io = |e| SandboxError::io("writing the /etc files of the step", e);
    std::fs::create_dir(etc).map_err(io)?;
    let mut hosts = format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n127.0.1.1\t{}\n",
        spec.hostname
    );
    for h in &spec.extra_hosts {
        hosts.push_str(h);
        hosts.push('\n');
    }
    std::fs::write(etc.join("hosts"), hosts).map_err(io)?;
    let resolv = match spec.network {
        Network::None => String::new(),
        Network::Host => host_resolv_conf(),
    };
    std::fs::write(etc.join("resolv.conf"), resolv).map_err(io)?;
    std::fs::write(etc.join("hostname"), format!("{}\n", spec.hostname)).map_err(io)
}

/// The host's resolv.conf without loopback resolvers (unreachable from the step), or public
/// resolvers when nothing else is left, like Docker.
fn host_resolv_conf() -> String {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut has_ns = false;
    let mut out = String::new();
    for line in text.lines() {
        let mut w = line.split_whitespace();
        if w.next() == Some("nameserver") {
            let ip = w.next().unwrap_or("");
            if ip.starts_with("127.") || ip == "::1" {
                continue;
            }
            has_ns = true;
        }
        out.push_str(line);
        out.push('\n');
    }
    if !has_ns {
        out.push_str("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }
    out
}

/// The bottom overlay layer with every mount point, so none is ever created in the upper.
fn write_stub_tree(dir: &Path) -> Result<(), SandboxError> {
    let io = |e| SandboxError::io("creating the mount-point layer", e);
    for d in ["proc", "dev", "etc"] {
        std::fs::create_dir_all(dir.join(d)).map_err(io)?;
    }
    for f in ["etc/hosts", "etc/resolv.conf", "etc/hostname"] {
        std::fs::write(dir.join(f), b"").map_err(io)?;
    }
    Ok(())
}

/// Adds the mount points of the extra mounts to the bottom overlay layer, at their targets
/// resolved through the symlinks of `top` (the top lower dir), so the step's upper dir never
/// gets one. A stub that cannot be laid out here is created by the step's PID 1 instead.
fn mount_stubs(dir: &Path, top: Option<&Path>, mounts: &[ExtraMount]) {
    let resolver = top.and_then(|t| crate::exec::Root::open_host(t).ok());
    for (_, m) in mounts::ordered(mounts) {
        let resolved = resolver
            .as_ref()
            .and_then(|r| r.resolve(&m.target).ok())
            .unwrap_or_else(|| m.target.trim_start_matches('/').to_string());
        let rel = Path::new(&resolved);
        if resolved.is_empty() || rel.components().any(|c| c.as_os_str() == "..") {
            continue;
        }
        let path = dir.join(rel);
        let made = if m.kind.is_dir() {
            std::fs::create_dir_all(&path)
        } else {
            path.parent()
                .map(std::fs::create_dir_all)
                .unwrap_or(Ok(()))
                .and_then(|()| std::fs::write(&path, b""))
        };
        if let Err(e) = made {
            tracing::debug!(component = "sandbox", target = %m.target, error = %e, "mount point not laid out in the stub layer");
        }
    }
}

/// Removes the mount points the sandbox created in a plain rootfs (children first), only when
/// they are still what was created (an empty dir or an empty regular file; in the chroot rung
/// also the device nodes and the `/etc` files it wrote, whatever the step wrote into them, as
/// writes to Docker's bind-mounted files never reach the image either), and restores the
/// times of the directory they were in. Paths are resolved beneath the rootfs.
fn remove_stubs(rootfs: &Path, stubs: &[String], rung: Rung) -> Result<(), SandboxError> {
    if stubs.is_empty() {
        return Ok(());
    }
    let io = |e: rustix::io::Errno| SandboxError::io("removing the mount points of the step", e);
    let root = rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io)?;
    for rel in stubs.iter().rev() {
        let (parent_rel, name) = rel.rsplit_once('/').unwrap_or((".", rel.as_str()));
        let Ok(parent) = rustix::fs::openat2(
            &root,
            parent_rel,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        ) else {
            continue;
        };
        let Ok(before) = rustix::fs::fstat(&parent) else {
            continue;
        };
        let Ok(st) = rustix::fs::statat(&parent, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
        else {
            continue;
        };
        let fmt = st.st_mode & libc::S_IFMT;
        let removed = if fmt == libc::S_IFDIR {
            rustix::fs::unlinkat(&parent, name, rustix::fs::AtFlags::REMOVEDIR).is_ok()
        } else if (fmt == libc::S_IFREG && (st.st_size == 0 || rung == Rung::Chroot))
            || (fmt == libc::S_IFCHR && rung == Rung::Chroot)
        {
            rustix::fs::unlinkat(&parent, name, rustix::fs::AtFlags::empty()).is_ok()
        } else {
            false
        };
        if removed {
            let times = rustix::fs::Timestamps {
                last_access: rustix::fs::Timespec {
                    tv_sec: before.st_atime,
                    tv_nsec: before.st_atime_nsec as _,
                },
                last_modification: rustix::fs::Timespec {
                    tv_sec: before.st_mtime,
                    tv_nsec: before.st_mtime_nsec as _,
                },
            };
            let _ = rustix::fs::futimens(&parent, &times);
        }
    }
    Ok(())
}

/// The login name of a uid from `/etc/passwd` (for subid lookups).
pub(crate) fn idmap_user_name(uid: u32) -> Option<String> {
    idmap::user_name(uid)
}

/// The ptrace rung's probe (runs in a doctor probe child).
pub(crate) fn probe_ptrace() -> Result<String, String> {
    ptrace_rung::probe()
}

/// A program looked up in `PATH` and the usual bin dirs.
pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    idmap::find_in_path(name)
}
