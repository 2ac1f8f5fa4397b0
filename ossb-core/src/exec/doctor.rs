//! `ossb doctor`: what this host lets an unprivileged build do, and which sandbox to use.
//!
//! Each namespace probe runs in its own child process (a re-exec of the helper binary, like the
//! sandbox init), so a probe can neither change nor crash the caller.

use crate::exec::sandbox::{IdMap, SubRange, protocol, sub_ranges};
use rustix::fs::{Mode, OFlags};
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountPropagationFlags, MoveMountFlags,
};
use rustix::thread::UnshareFlags;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::process::Command;

/// The result of one probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    /// Whether it worked.
    pub ok: bool,
    /// What happened, in plain words (the error when it failed).
    pub detail: String,
}

/// The sandbox a build would use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SandboxChoice {
    /// Namespaces plus overlayfs: the diff is the overlay's upper dir.
    Overlay,
    /// Namespaces, steps run on the rootfs dir and the diff comes from a metadata scan.
    Scan,
    /// No sandbox possible: RUN steps cannot run.
    None,
}

/// Everything `ossb doctor` finds out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoctorReport {
    /// `uname -r`.
    pub kernel: String,
    /// Effective uid of the caller.
    pub uid: u32,
    /// `user.max_user_namespaces` (0 disables user namespaces).
    pub max_user_namespaces: Option<u64>,
    /// `kernel.unprivileged_userns_clone` (Debian/Ubuntu; 0 refuses unprivileged ones).
    pub unprivileged_userns_clone: Option<u64>,
    /// `kernel.apparmor_restrict_unprivileged_userns` (Ubuntu 23.10+; 1 restricts them).
    pub apparmor_restrict_unprivileged_userns: Option<u64>,
    /// Seccomp mode of this process (0 none, 1 strict, 2 filter).
    pub seccomp_mode: Option<u32>,
    /// A user namespace can be created and mapped.
    pub user_namespace: Probe,
    /// A mount namespace can be created inside it, with a tmpfs mount.
    pub mount_namespace: Probe,
    /// A fresh procfs can be mounted in a new PID namespace.
    pub procfs: Probe,
    /// Overlayfs with `userxattr` can be mounted and produces whiteouts.
    pub overlay_userxattr: Probe,
    /// Ranges for this user in `/etc/subuid`.
    pub subuid: Vec<SubRange>,
    /// Ranges for this user in `/etc/subgid`.
    pub subgid: Vec<SubRange>,
    /// Path of `newuidmap`, when installed.
    pub newuidmap: Option<String>,
    /// Path of `newgidmap`, when installed.
    pub newgidmap: Option<String>,
    /// The id mapping steps would get.
    pub id_map: IdMap,
    /// Enabled binfmt_misc handlers with the platforms they run (foreign-architecture RUN
    /// needs one per architecture; `F` marks handlers that work in any root).
    pub binfmt_misc: Vec<String>,
    /// The sandbox a build would use.
    pub best: SandboxChoice,
}

/// No sandbox can run on this host.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "no sandbox possible for RUN steps: {cause}. Allow user namespaces: sysctl user.max_user_namespaces > 0 \
     (and kernel.unprivileged_userns_clone=1, kernel.apparmor_restrict_unprivileged_userns=0 where they exist); \
     in Kubernetes set `hostUsers: false` on the pod, use a seccomp profile that allows unshare/clone with \
     CLONE_NEWUSER (e.g. `seccompProfile: {{type: Unconfined}}` or a custom Localhost profile), and \
     `securityContext.procMount: Unmasked` so a fresh /proc can be mounted"
)]
pub struct NoSandbox {
    /// Why, in plain words.
    pub cause: String,
}

impl DoctorReport {
    /// The snapshotter choice, or why none is possible.
    pub fn best_sandbox(&self) -> Result<SandboxChoice, NoSandbox> {
        match self.best {
            SandboxChoice::None => Err(NoSandbox {
                cause: self.no_sandbox_cause(),
            }),
            c => Ok(c),
        }
    }

    fn no_sandbox_cause(&self) -> String {
        if !self.user_namespace.ok {
            let mut why = format!(
                "creating a user namespace failed ({})",
                self.user_namespace.detail
            );
            if self.max_user_namespaces == Some(0) {
                why.push_str("; user.max_user_namespaces is 0");
            }
            if self.unprivileged_userns_clone == Some(0) {
                why.push_str("; kernel.unprivileged_userns_clone is 0");
            }
            if self.apparmor_restrict_unprivileged_userns == Some(1) {
                why.push_str("; AppArmor restricts unprivileged user namespaces");
            }
            if self.seccomp_mode == Some(2) {
                why.push_str("; a seccomp filter is active and may refuse CLONE_NEWUSER");
            }
            why
        } else if !self.mount_namespace.ok {
            format!(
                "mounting inside a user namespace failed ({})",
                self.mount_namespace.detail
            )
        } else {
            format!(
                "mounting a fresh /proc failed ({}); /proc is probably masked",
                self.procfs.detail
            )
        }
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

impl std::fmt::Display for DoctorReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mark = |p: &Probe| if p.ok { "yes" } else { "NO " };
        let opt = |v: Option<u64>| v.map_or("not present".to_string(), |v| v.to_string());
        writeln!(f, "kernel {}, running as uid {}", self.kernel, self.uid)?;
        writeln!(
            f,
            "  user.max_user_namespaces: {}",
            opt(self.max_user_namespaces)
        )?;
        writeln!(
            f,
            "  kernel.unprivileged_userns_clone: {}",
            opt(self.unprivileged_userns_clone)
        )?;
        writeln!(
            f,
            "  kernel.apparmor_restrict_unprivileged_userns: {}",
            opt(self.apparmor_restrict_unprivileged_userns)
        )?;
        writeln!(
            f,
            "  seccomp mode: {}",
            self.seccomp_mode
                .map_or("unknown".into(), |m| m.to_string())
        )?;
        writeln!(
            f,
            "{} user namespace: {}",
            mark(&self.user_namespace),
            self.user_namespace.detail
        )?;
        writeln!(
            f,
            "{} mount namespace: {}",
            mark(&self.mount_namespace),
            self.mount_namespace.detail
        )?;
        writeln!(
            f,
            "{} fresh /proc: {}",
            mark(&self.procfs),
            self.procfs.detail
        )?;
        writeln!(
            f,
            "{} overlayfs (userxattr): {}",
            mark(&self.overlay_userxattr),
            self.overlay_userxattr.detail
        )?;
        let ranges = |r: &[SubRange]| {
            if r.is_empty() {
                "none".to_string()
            } else {
                r.iter()
                    .map(|r| format!("{}+{}", r.start, r.count))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        writeln!(
            f,
            "  /etc/subuid ranges: {}; /etc/subgid ranges: {}",
            ranges(&self.subuid),
            ranges(&self.subgid)
        )?;
        writeln!(
            f,
            "  newuidmap: {}; newgidmap: {}",
            self.newuidmap.as_deref().unwrap_or("not installed"),
            self.newgidmap.as_deref().unwrap_or("not installed")
        )?;
        let single = if self.id_map.is_single() {
            " (single id: files can only be owned by root in the image)"
        } else {
            ""
        };
        writeln!(
            f,
            "  id mapping: {} uid range(s){single}",
            self.id_map.uids.len()
        )?;
        let binfmt = if self.binfmt_misc.is_empty() {
            "none".to_string()
        } else {
            self.binfmt_misc.join(", ")
        };
        writeln!(f, "  binfmt_misc handlers: {binfmt}")?;
        match self.best_sandbox() {
            Ok(SandboxChoice::Overlay) => writeln!(f, "=> RUN steps use namespaces + overlayfs"),
            Ok(_) => writeln!(
                f,
                "=> RUN steps use namespaces + a metadata scan (no overlayfs)"
            ),
            Err(e) => writeln!(f, "=> {e}"),
        }
    }
}

/// Runs every probe (each in a child process of `helper`) and reads the host's settings.
pub fn diagnose(helper: &Path) -> DoctorReport {
    let uid = rustix::process::geteuid().as_raw();
    let name = crate::exec::sandbox::idmap_user_name(uid);
    let find = |n: &str| crate::exec::sandbox::find_program(n).map(|p| p.display().to_string());
    let user_namespace = run_probe(helper, "userns");
    let skipped = || Probe {
        ok: false,
        detail: "skipped: no user namespace".into(),
    };
    let (mount_namespace, procfs, overlay_userxattr) = if user_namespace.ok {
        (
            run_probe(helper, "mountns"),
            run_probe(helper, "proc"),
            run_probe(helper, "overlay"),
        )
    } else {
        (skipped(), skipped(), skipped())
    };
    let best = if user_namespace.ok && mount_namespace.ok && procfs.ok {
        if overlay_userxattr.ok {
            SandboxChoice::Overlay
        } else {
            SandboxChoice::Scan
        }
    } else {
        SandboxChoice::None
    };
    DoctorReport {
        kernel: rustix::system::uname()
            .release()
            .to_string_lossy()
            .into_owned(),
        uid,
        max_user_namespaces: read_num("/proc/sys/user/max_user_namespaces"),
        unprivileged_userns_clone: read_num("/proc/sys/kernel/unprivileged_userns_clone"),
        apparmor_restrict_unprivileged_userns: read_num(
            "/proc/sys/kernel/apparmor_restrict_unprivileged_userns",
        ),
        seccomp_mode: std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines().find_map(|l| {
                    l.strip_prefix("Seccomp:")
                        .and_then(|v| v.trim().parse().ok())
                })
            }),
        user_namespace,
        mount_namespace,
        procfs,
        overlay_userxattr,
        subuid: sub_ranges(Path::new("/etc/subuid"), uid, name.as_deref()),
        subgid: sub_ranges(Path::new("/etc/subgid"), uid, name.as_deref()),
        newuidmap: find("newuidmap"),
        newgidmap: find("newgidmap"),
        id_map: IdMap::detect(),
        binfmt_misc: binfmt_handlers(),
        best,
    }
}

/// Only the overlay probe, for picking a snapshotter: whether overlayfs with `userxattr` mounts
/// in a user namespace here.
pub fn overlay_works(helper: &Path) -> Probe {
    run_probe(helper, "overlay")
}

fn read_num(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The enabled handlers with the platforms they run and whether they work in any root
/// (`qemu-aarch64 (linux/arm64, F)`), as `--platform` RUN steps will find them.
fn binfmt_handlers() -> Vec<String> {
    use super::binfmt::{BINFMT_DIR, handlers_in};
    use crate::image::oci::Platform;
    const KNOWN: &[&str] = &[
        "linux/amd64",
        "linux/386",
        "linux/arm64",
        "linux/arm",
        "linux/ppc64le",
        "linux/s390x",
        "linux/riscv64",
        "linux/mips64le",
        "linux/loong64",
    ];
    handlers_in(Path::new(BINFMT_DIR))
        .into_iter()
        .map(|h| {
            let platforms: Vec<&str> = KNOWN
                .iter()
                .copied()
                .filter(|p| Platform::parse(p).is_ok_and(|p| h.matches(&p)))
                .collect();
            let mut what = if platforms.is_empty() {
                "no container platform".to_string()
            } else {
                platforms.join(" ")
            };
            if h.fix_binary() {
                what.push_str(", F");
            }
            format!("{} ({what})", h.name)
        })
        .collect()
}

fn run_probe(helper: &Path, name: &str) -> Probe {
    let out = Command::new(helper)
        .env_clear()
        .env(
            protocol::MARKER_ENV,
            format!("{}{name}", protocol::MODE_PROBE_PREFIX),
        )
        .stdin(std::process::Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => Probe {
            ok: true,
            detail: String::from_utf8_lossy(&o.stdout).trim().to_string(),
        },
        Ok(o) => Probe {
            ok: false,
            detail: {
                let e = String::from_utf8_lossy(&o.stderr).trim().to_string();
                if e.is_empty() {
                    format!("probe ended with {}", o.status)
                } else {
                    e
                }
            },
        },
        Err(e) => Probe {
            ok: false,
            detail: format!("cannot run the probe helper {}: {e}", helper.display()),
        },
    }
}

/// Entry point of a probe child process (called from `run_init_if_requested`); exits.
pub(crate) fn probe_main(name: &str) -> ! {
    let res = match name {
        "userns" => {
            enter_userns().map(|()| "user namespace created, caller mapped to root".to_string())
        }
        "mountns" => probe_mountns(),
        "proc" => probe_proc(),
        "overlay" => probe_overlay(),
        other => Err(format!("unknown probe {other:?}")),
    };
    match res {
        Ok(text) => {
            println!("{text}");
            std::process::exit(0)
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1)
        }
    }
}

fn errno(what: &str) -> impl FnOnce(rustix::io::Errno) -> String + '_ {
    move |e| format!("{what}: {}", std::io::Error::from(e))
}

#[allow(unsafe_code)]
fn unshare(flags: UnshareFlags, what: &str) -> Result<(), String> {
    // SAFETY: the probe process is single threaded (it runs first thing in main) and the flags
    // carry no fd-table or fs-struct sharing changes.
    unsafe { rustix::thread::unshare_unsafe(flags) }.map_err(errno(what))
}

/// Unshares a user namespace and maps the caller to root in it (self-written single map).
fn enter_userns() -> Result<(), String> {
    let uid = rustix::process::geteuid().as_raw();
    let gid = rustix::process::getegid().as_raw();
    unshare(UnshareFlags::NEWUSER, "unshare(CLONE_NEWUSER)")?;
    let w = |p: &str, t: String| std::fs::write(p, t).map_err(|e| format!("writing {p}: {e}"));
    w("/proc/self/setgroups", "deny".into())?;
    w("/proc/self/uid_map", format!("0 {uid} 1"))?;
    w("/proc/self/gid_map", format!("0 {gid} 1"))
}

fn enter_mountns() -> Result<tempfile::TempDir, String> {
    let dir = tempfile::Builder::new()
        .prefix("ossb-probe-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?;
    enter_userns()?;
    unshare(UnshareFlags::NEWNS, "unshare(CLONE_NEWNS)")?;
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .map_err(errno("making / private"))?;
    Ok(dir)
}

fn fs_mount(
    fstype: &str,
    opts: &[(&str, &str)],
    flags: &[&str],
    target: &Path,
) -> Result<(), String> {
    let fs = rustix::mount::fsopen(fstype, FsOpenFlags::FSOPEN_CLOEXEC).map_err(errno("fsopen"))?;
    for (k, v) in opts {
        rustix::mount::fsconfig_set_string(&fs, *k, *v).map_err(errno(k))?;
    }
    for k in flags {
        rustix::mount::fsconfig_set_flag(&fs, *k).map_err(errno(k))?;
    }
    rustix::mount::fsconfig_create(&fs).map_err(errno(&format!("creating a {fstype} mount")))?;
    let m = rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())
        .map_err(errno("fsmount"))?;
    rustix::mount::move_mount(
        &m,
        "",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(errno("move_mount"))
}

fn probe_mountns() -> Result<String, String> {
    let dir = enter_mountns()?;
    fs_mount("tmpfs", &[("size", "64k")], &[], dir.path())?;
    Ok("mount namespace created, tmpfs mounted".into())
}

fn probe_proc() -> Result<String, String> {
    let dir = enter_mountns()?;
    unshare(UnshareFlags::NEWPID, "unshare(CLONE_NEWPID)")?;
    // The procfs instance belongs to the mounter's PID namespace: mount from its first child.
    match fork()? {
        None => {
            let code = match fs_mount("proc", &[], &[], dir.path()) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("{e}");
                    1
                }
            };
            exit(code)
        }
        Some(pid) => {
            let status = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty())
                .map_err(errno("waitpid"))?
                .map(|(_, s)| s);
            match status.and_then(|s| s.exit_status()) {
                Some(0) => Ok("fresh procfs mounted in a new PID namespace".into()),
                _ => Err("mounting procfs failed (see above)".into()),
            }
        }
    }
}

fn probe_overlay() -> Result<String, String> {
    let dir = enter_mountns()?;
    let p = dir.path();
    for d in ["lower", "upper", "work", "merged"] {
        std::fs::create_dir(p.join(d)).map_err(|e| format!("creating {d}: {e}"))?;
    }
    std::fs::write(p.join("lower/f"), b"x").map_err(|e| format!("writing: {e}"))?;
    let s = |d: &str| p.join(d).display().to_string();
    fs_mount(
        "overlay",
        &[
            ("lowerdir", &s("lower")),
            ("upperdir", &s("upper")),
            ("workdir", &s("work")),
        ],
        &["userxattr"],
        &p.join("merged"),
    )?;
    std::fs::remove_file(p.join("merged/f")).map_err(|e| format!("deleting a lower file: {e}"))?;
    let st = rustix::fs::lstat(p.join("upper/f")).map_err(errno("no whiteout in the upper dir"))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR || st.st_rdev != 0 {
        return Err("the overlay did not create a 0/0 whiteout".into());
    }
    drop(rustix::fs::open(
        p,
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    ));
    Ok("overlayfs with userxattr mounted, whiteouts work".into())
}

#[allow(unsafe_code)]
fn fork() -> Result<Option<rustix::process::Pid>, String> {
    // SAFETY: the probe process is single threaded, so the child may run ordinary code.
    match unsafe { libc::fork() } {
        -1 => Err(format!("fork: {}", std::io::Error::last_os_error())),
        0 => Ok(None),
        p => Ok(rustix::process::Pid::from_raw(p)),
    }
}

#[allow(unsafe_code)]
fn exit(code: i32) -> ! {
    // SAFETY: ends the forked child without running the parent's exit handlers twice.
    unsafe { libc::_exit(code) }
}
