//! The ptrace sandbox: RUN steps with no namespaces at all, in the manner of PRoot.
//!
//! The build re-executes its helper binary (like the namespace sandbox) in mode
//! [`MODE_PTRACE`]; the helper is the tracer. It forks the step, which asks to be traced,
//! installs a seccomp filter that sends only path-taking and identity calls to the tracer
//! (`SECCOMP_RET_TRACE`) and executes the command. For each trapped call the tracer resolves
//! the path arguments beneath the rootfs (`resolve`), writes the host paths below the
//! tracee's stack and points the arguments there; `getcwd`, `readlink` of `/proc` magic links
//! and (when not root) the stat family are fixed up at the call's exit. The identity calls
//! report the step's user (root by default); as a non-root caller `chown` is recorded in the
//! `user.rootlesscontainers` xattr and stat reports it. `execve` runs the rootfs's ELF
//! loader and `#!` interpreters (`exec`). See `docs/ptrace-sandbox.md`.
//!
//! Only x86_64 has a syscall table so far; elsewhere [`run_traced`] fails with a clear error.

#[cfg(target_arch = "x86_64")]
#[path = "arch_x86_64.rs"]
mod arch;
#[cfg(target_arch = "x86_64")]
mod calls;
#[cfg(target_arch = "x86_64")]
mod child;
mod exec;
#[cfg(target_arch = "x86_64")]
mod filter;
mod owner;
#[cfg(target_arch = "x86_64")]
mod probe;
mod resolve;
#[cfg(target_arch = "x86_64")]
mod sys;
mod table;
#[cfg(target_arch = "x86_64")]
mod tracer;

use super::protocol::{self, FromInit};
use super::{CancelToken, Network, RunSpec, SandboxError, StepReport};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Whether the ptrace sandbox works here (`Ok` with what was checked, `Err` with why not);
/// run it in a single-threaded probe process.
pub(crate) fn probe() -> Result<String, String> {
    #[cfg(target_arch = "x86_64")]
    {
        probe::probe()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Err("the ptrace sandbox has a system-call table for x86_64 only".into())
    }
}

/// Marker value of [`protocol::MARKER_ENV`]: this process is the tracer of one step.
pub const MODE_PTRACE: &str = "ptrace-v1";

/// One RUN step for the ptrace sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracedStep {
    /// The helper binary (its `main` calls `run_init_if_requested`).
    pub helper: PathBuf,
    /// The rootfs directory the step writes into.
    pub rootfs: PathBuf,
    /// Where the step's temp dir (its `/etc/hosts`, `/dev/shm`) goes.
    pub temp_dir: PathBuf,
    /// argv, `KEY=value` env, absolute cwd, user, groups, hostname and network, as for the
    /// namespace sandbox ([`RunSpec`]).
    pub run: RunSpec,
}

/// How a traced step ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StepExit {
    /// Exit code of the first process, when it exited.
    pub code: Option<i32>,
    /// Signal that killed it.
    pub signal: Option<i32>,
    /// The last output lines.
    pub tail: Vec<String>,
    /// Things the user should know.
    pub warnings: Vec<String>,
    /// Owners given to symlinks and special files (absolute guest path -> ids).
    pub link_owners: BTreeMap<String, (u32, u32)>,
    /// Calls the tracer trapped.
    pub trapped: u64,
    /// Wall time, setup included.
    pub duration: Duration,
}

impl StepExit {
    /// The namespace sandbox's report, or [`SandboxError::StepFailed`] for a non-zero exit.
    pub fn into_report(self) -> Result<StepReport, SandboxError> {
        match (self.code, self.signal) {
            (Some(0), _) => Ok(StepReport {
                warnings: self.warnings,
                duration: self.duration,
                link_owners: self.link_owners,
                owner_calls: Some((self.trapped, 0)),
            }),
            (code, signal) => Err(SandboxError::StepFailed {
                code,
                signal,
                last_lines: self.tail,
            }),
        }
    }
}

/// What the tracer process gets on its stdin.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TracedConfig {
    rootfs: String,
    /// (guest path, host path)
    binds: Vec<(String, String)>,
    argv: Vec<String>,
    env: Vec<String>,
    cwd: String,
    uid: u32,
    gid: u32,
    groups: Vec<u32>,
    /// Record `chown` in xattrs and report it in stat (the caller is not root).
    emulate_owners: bool,
    caller_uid: u32,
    caller_gid: u32,
}

/// Host device nodes the step sees at the same path.
const DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
    "/dev/ptmx",
    "/dev/pts",
];

/// Runs one step traced; every process of it is gone on return, also on cancel.
pub fn run_traced(
    spec: &TracedStep,
    cancel: &CancelToken,
    on_line: &mut dyn FnMut(&str),
) -> Result<StepExit, SandboxError> {
    let start = Instant::now();
    if !cfg!(target_arch = "x86_64") {
        return Err(SandboxError::Setup {
            stage: "starting the ptrace sandbox".into(),
            error: "only x86_64 has a syscall table so far".into(),
        });
    }
    let run = &spec.run;
    super::validate(run)?;
    if run.network == Network::None {
        return Err(SandboxError::InvalidSpec(
            "RUN --network=none needs a network namespace, which the ptrace sandbox cannot \
             create; use a sandbox with namespaces (see `ossb doctor`)"
                .into(),
        ));
    }
    let tmp = tempfile::Builder::new()
        .prefix("ossb-traced-")
        .tempdir_in(&spec.temp_dir)
        .map_err(|e| {
            SandboxError::io(
                format!("creating a step dir in {}", spec.temp_dir.display()),
                e,
            )
        })?;
    let etc = tmp.path().join("etc");
    super::write_etc_files(&etc, run)?;
    let shm = tmp.path().join("shm");
    std::fs::create_dir(&shm).map_err(|e| SandboxError::io("creating /dev/shm", e))?;
    let mut binds: Vec<(String, String)> = vec![
        ("/proc".into(), "/proc".into()),
        ("/sys".into(), "/sys".into()),
        ("/dev/shm".into(), path_str(&shm)?),
    ];
    binds.extend(
        DEVICES
            .iter()
            .filter(|d| std::path::Path::new(d).exists())
            .map(|d| (d.to_string(), d.to_string())),
    );
    for f in ["hosts", "resolv.conf", "hostname"] {
        binds.push((format!("/etc/{f}"), path_str(&etc.join(f))?));
    }
    binds.extend(mount_binds(run, tmp.path())?);
    let euid = rustix::process::geteuid().as_raw();
    let cfg = TracedConfig {
        rootfs: path_str(&spec.rootfs)?,
        binds,
        argv: run.argv.clone(),
        env: run.env.clone(),
        cwd: run.cwd.clone(),
        uid: run.uid,
        gid: run.gid,
        groups: run.groups.clone(),
        emulate_owners: euid != 0,
        caller_uid: euid,
        caller_gid: rustix::process::getegid().as_raw(),
    };
    // No namespace, no id maps; the step leads its own session, which is killed with it.
    let out =
        super::parent::run_step(&spec.helper, MODE_PTRACE, None, true, &cfg, cancel, on_line)?;
    drop(tmp);
    Ok(StepExit {
        code: out.code,
        signal: out.signal,
        tail: out.tail,
        warnings: out.warnings,
        link_owners: out.link_owners,
        trapped: out.owner_calls.map_or(0, |(n, _)| n),
        duration: start.elapsed(),
    })
}

/// `RUN --mount`s the tracer can provide as bindings: writable binds (cache mounts) and
/// tmpfs (a fresh dir of the step). Read-only binds (their sources are hard-linked copies a
/// write would change) and secrets (they would have to touch a disk) need mounts.
fn mount_binds(
    run: &RunSpec,
    tmp: &std::path::Path,
) -> Result<Vec<(String, String)>, SandboxError> {
    use super::ExtraMountKind;
    let mut out = Vec::new();
    for (i, m) in run.mounts.iter().enumerate() {
        let unsupported = |what: &str| {
            SandboxError::InvalidSpec(format!(
                "RUN --mount {what} at {} is not supported by the ptrace sandbox (it needs a \
                 mount namespace); use a sandbox with namespaces (see `ossb doctor`), or a \
                 cache or tmpfs mount",
                m.target
            ))
        };
        match &m.kind {
            ExtraMountKind::Bind {
                source,
                read_only: false,
                init_owner,
            } => {
                if let Some(o) = init_owner {
                    // A cache dir on first use: its mode (the owner stays the caller's).
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(source, std::fs::Permissions::from_mode(o.mode))
                        .map_err(|e| SandboxError::io("preparing a cache mount", e))?;
                }
                out.push((m.target.clone(), source.clone()));
            }
            ExtraMountKind::Bind { .. } => return Err(unsupported("type=bind (read-only)")),
            ExtraMountKind::Tmpfs { .. } => {
                let dir = tmp.join(format!("tmpfs-{i}"));
                std::fs::create_dir(&dir)
                    .map_err(|e| SandboxError::io("creating a tmpfs mount's dir", e))?;
                out.push((m.target.clone(), path_str(&dir)?));
            }
            ExtraMountKind::File { .. } => return Err(unsupported("type=secret")),
        }
    }
    Ok(out)
}

fn path_str(p: &std::path::Path) -> Result<String, SandboxError> {
    super::path_str(p)
}

/// The tracer process: runs one step and exits.
pub(crate) fn helper_main() -> ! {
    let mut out = std::io::stdout();
    let code = match helper(&mut out) {
        Ok(()) => 0,
        Err((stage, error)) => {
            let _ = protocol::send(&mut out, &FromInit::SetupFailed { stage, error });
            1
        }
    };
    std::process::exit(code)
}

type Failure = (String, String);

#[cfg(not(target_arch = "x86_64"))]
fn helper(_out: &mut std::io::Stdout) -> Result<(), Failure> {
    Err((
        "starting the ptrace sandbox".into(),
        "only x86_64 has a syscall table so far".into(),
    ))
}

#[cfg(target_arch = "x86_64")]
fn helper(out: &mut std::io::Stdout) -> Result<(), Failure> {
    use std::collections::{HashMap, HashSet};
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let f = |stage: &str| {
        let stage = stage.to_string();
        move |e: std::io::Error| (stage, e.to_string())
    };
    let mut input = std::io::BufReader::new(std::io::stdin());
    let cfg: TracedConfig = protocol::recv(&mut input)
        .map_err(f("reading the step config"))?
        .ok_or_else(|| {
            (
                "reading the step config".to_string(),
                "no config".to_string(),
            )
        })?;
    // Orphaned tracees are reparented to the tracer, which reaps them.
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
        .map_err(|e| f("becoming a subreaper")(e.into()))?;
    let binds: Vec<(String, PathBuf)> = cfg
        .binds
        .iter()
        .map(|(g, h)| (g.clone(), PathBuf::from(h)))
        .collect();
    let view = resolve::View::new(std::path::Path::new(&cfg.rootfs), &binds)
        .map_err(f("opening the rootfs"))?;
    // The working directory (created when missing) and the program, looked up in the
    // guest's PATH.
    let (none, no_exes) = (HashSet::new(), HashMap::new());
    let who = resolve::Who {
        tid: 0,
        tgid: 0,
        tracees: &none,
        exes: &no_exes,
    };
    let errno = |stage: &str| {
        let stage = stage.to_string();
        move |e: i32| (stage, std::io::Error::from_raw_os_error(e).to_string())
    };
    let cwd = view
        .resolve(b"/", cfg.cwd.as_bytes(), true, &who)
        .map_err(errno("resolving the working directory"))?;
    let cwd_host = PathBuf::from(std::ffi::OsStr::from_bytes(&cwd.host));
    if !cwd_host.is_dir() {
        std::fs::create_dir_all(&cwd_host).map_err(f("creating the working directory"))?;
    }
    let env_path = cfg
        .env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    let argv0 = &cfg.argv[0];
    let prog = if argv0.contains('/') {
        argv0.clone()
    } else {
        env_path
            .split(':')
            .filter(|d| !d.is_empty())
            .map(|d| format!("{}/{argv0}", d.trim_end_matches('/')))
            .find(|cand| {
                view.resolve(cwd.guest.as_slice(), cand.as_bytes(), true, &who)
                    .ok()
                    .and_then(|r| std::fs::metadata(std::ffi::OsStr::from_bytes(&r.host)).ok())
                    .is_some_and(|m| {
                        use std::os::unix::fs::PermissionsExt;
                        m.is_file() && m.permissions().mode() & 0o111 != 0
                    })
            })
            .ok_or_else(|| {
                (
                    "looking up the command".to_string(),
                    format!("{argv0:?} not found in PATH {env_path:?} or not executable"),
                )
            })?
    };
    let cstr = |s: &str| {
        CString::new(s).map_err(|_| ("preparing the command".to_string(), "NUL byte".to_string()))
    };
    let prepared = child::Prepared {
        prog: cstr(&prog)?,
        argv: cfg.argv.iter().map(|s| cstr(s)).collect::<Result<_, _>>()?,
        env: cfg.env.iter().map(|s| cstr(s)).collect::<Result<_, _>>()?,
        cwd: CString::new(cwd.host.clone())
            .map_err(|_| ("preparing the command".to_string(), "NUL byte".to_string()))?,
        filter: filter::program(&trapped_calls(cfg.emulate_owners)),
    };
    let owners = owner::Owners {
        caller_uid: cfg.caller_uid,
        caller_gid: cfg.caller_gid,
    };
    let mut tracer = tracer::Tracer::new(view, cfg.emulate_owners, owners);
    let pid = child::spawn(&prepared).map_err(|e| (e.stage.to_string(), e.error))?;
    protocol::send(out, &FromInit::Started { pid }).map_err(f("reporting the step"))?;
    let creds = owner::Creds::new(cfg.uid, cfg.gid, cfg.groups.clone());
    let exit = tracer.run(pid, creds).map_err(f("tracing the step"))?;
    for (path, (uid, gid)) in std::mem::take(&mut tracer.link_owners) {
        protocol::send(out, &FromInit::LinkOwner { path, uid, gid })
            .map_err(f("reporting owners"))?;
    }
    protocol::send(
        out,
        &FromInit::OwnerStats {
            notifications: tracer.trapped,
            emulated: 0,
        },
    )
    .map_err(f("reporting counters"))?;
    protocol::send(
        out,
        &FromInit::Exited {
            code: exit.code,
            signal: exit.signal,
        },
    )
    .map_err(f("reporting the exit"))?;
    Ok(())
}

/// The calls the filter traps: ownership calls without paths only when emulating owners.
#[cfg(target_arch = "x86_64")]
fn trapped_calls(emulate_owners: bool) -> Vec<u32> {
    arch::trapped()
        .into_iter()
        .filter(|n| {
            emulate_owners
                || !matches!(
                    arch::call(u64::from(*n)),
                    Some(table::Call::Fstat(..) | table::Call::Fchown(..))
                )
        })
        .collect()
}
