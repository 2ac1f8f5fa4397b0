//! `ossb doctor`: what this host lets an unprivileged build do, and which sandbox to use.
//!
//! Each namespace probe runs in its own child process (a re-exec of the helper binary, like the
//! sandbox init), so a probe can neither change nor crash the caller.

use crate::exec::sandbox::{IdMap, Rung, SandboxMode, SubRange, protocol, sub_ranges};
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

/// One rung of the execution ladder as probed here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RungProbe {
    /// The rung.
    pub rung: Rung,
    /// Whether steps can run on it here.
    pub ok: bool,
    /// What was found, in plain words (why not, when it cannot run).
    pub detail: String,
    /// What it isolates.
    pub isolates: String,
    /// The pod settings that make it available.
    pub enabled_by: String,
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
    /// `no_new_privs` of this process (setuid helpers such as `newuidmap` do not work).
    pub no_new_privs: Option<bool>,
    /// Effective capabilities of this process (`CapEff` of `/proc/self/status`, hex).
    pub capabilities: Option<String>,
    /// A user namespace can be created and mapped.
    pub user_namespace: Probe,
    /// A mount namespace can be created inside it, with a tmpfs mount.
    pub mount_namespace: Probe,
    /// A fresh procfs can be mounted in a new PID namespace.
    pub procfs: Probe,
    /// The existing `/proc` can be bound recursively inside the namespaces (reduced rung).
    pub proc_bind: Probe,
    /// Overlayfs with `userxattr` can be mounted and produces whiteouts.
    pub overlay_userxattr: Probe,
    /// `chroot` as uid 0 with the capabilities the chroot rung needs.
    pub chroot: Probe,
    /// The ptrace sandbox.
    pub ptrace: Probe,
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
    /// The execution ladder, best rung first.
    pub ladder: Vec<RungProbe>,
    /// The rung `--sandbox auto` picks (`None`: RUN steps cannot run here).
    pub rung: Option<Rung>,
    /// The snapshotter a build would use.
    pub best: SandboxChoice,
}

/// No sandbox can run on this host (or not the one asked for).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoSandbox {
    /// The rung `--sandbox` asked for, when one was.
    pub forced: Option<Rung>,
    /// Every rung as probed.
    pub ladder: Vec<RungProbe>,
    /// Host settings that refuse user namespaces, in plain words.
    pub host_hints: Vec<String>,
}

impl std::error::Error for NoSandbox {}

impl std::fmt::Display for NoSandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown: Vec<&RungProbe> = match self.forced {
            Some(r) => self.ladder.iter().filter(|p| p.rung == r).collect(),
            None => self.ladder.iter().collect(),
        };
        match self.forced {
            Some(r) => write!(
                f,
                "the {r} sandbox (--sandbox {r}) cannot run RUN steps here"
            )?,
            None => write!(f, "no sandbox possible for RUN steps")?,
        }
        write!(f, "; probed:")?;
        for p in &shown {
            write!(f, " {}: {};", p.rung, p.detail)?;
        }
        for h in &self.host_hints {
            write!(f, " {h};")?;
        }
        write!(f, " to enable")?;
        for (i, p) in shown.iter().enumerate() {
            let sep = if i == 0 { "" } else { "; or" };
            write!(f, "{sep} the {} sandbox: {}", p.rung, p.enabled_by)?;
        }
        if self.forced.is_some() {
            write!(f, " (or use --sandbox auto)")?;
        }
        Ok(())
    }
}

impl DoctorReport {
    /// The snapshotter choice, or why no rung can run steps.
    pub fn best_sandbox(&self) -> Result<SandboxChoice, NoSandbox> {
        self.select(SandboxMode::Auto).map(|_| self.best)
    }

    /// The rung a build runs on with `mode`, or a precise error naming what was probed, what
    /// failed and the pod settings that enable each rung.
    pub fn select(&self, mode: SandboxMode) -> Result<Rung, NoSandbox> {
        let found = match mode {
            SandboxMode::Auto => self.rung,
            SandboxMode::Force(r) => self
                .ladder
                .iter()
                .find(|p| p.rung == r && p.ok)
                .map(|p| p.rung),
        };
        found.ok_or_else(|| NoSandbox {
            forced: match mode {
                SandboxMode::Auto => None,
                SandboxMode::Force(r) => Some(r),
            },
            ladder: self.ladder.clone(),
            host_hints: self.host_hints(),
        })
    }

    fn host_hints(&self) -> Vec<String> {
        let mut why = Vec::new();
        if self.user_namespace.ok {
            return why;
        }
        if self.max_user_namespaces == Some(0) {
            why.push("user.max_user_namespaces is 0".to_string());
        }
        if self.unprivileged_userns_clone == Some(0) {
            why.push("kernel.unprivileged_userns_clone is 0".to_string());
        }
        if self.apparmor_restrict_unprivileged_userns == Some(1) {
            why.push("AppArmor restricts unprivileged user namespaces".to_string());
        }
        if self.seccomp_mode == Some(2) {
            why.push(
                "a seccomp filter is active (a container runtime's default profile refuses \
                 unshare and clone with namespace flags without CAP_SYS_ADMIN)"
                    .to_string(),
            );
        }
        why
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

fn mark_ok(ok: bool) -> &'static str {
    if ok { "yes" } else { "NO " }
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
            "  no_new_privs: {}; effective capabilities: {}",
            match self.no_new_privs {
                Some(true) => "set (setuid helpers do not work)",
                Some(false) => "not set",
                None => "unknown",
            },
            self.capabilities.as_deref().unwrap_or("unknown")
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
        writeln!(
            f,
            "{} /proc bind (reduced sandbox): {}",
            mark(&self.proc_bind),
            self.proc_bind.detail
        )?;
        writeln!(f, "{} chroot: {}", mark(&self.chroot), self.chroot.detail)?;
        writeln!(f, "{} ptrace: {}", mark(&self.ptrace), self.ptrace.detail)?;
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
        writeln!(f, "execution ladder (best first):")?;
        for p in &self.ladder {
            let pick = if Some(p.rung) == self.rung {
                "  <= picked"
            } else {
                ""
            };
            writeln!(
                f,
                "  {} {:<8} {}{pick}",
                mark_ok(p.ok),
                p.rung.name(),
                p.detail
            )?;
        }
        let snap = match self.best {
            SandboxChoice::Overlay => "overlayfs",
            _ => "a metadata scan (no overlayfs)",
        };
        match self.best_sandbox() {
            Ok(_) => writeln!(
                f,
                "=> RUN steps use the {} sandbox ({}) + {snap}",
                self.rung.map_or("", Rung::name),
                self.rung.map_or("", Rung::summary)
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
    let (mount_namespace, procfs, proc_bind, overlay_userxattr) = if user_namespace.ok {
        (
            run_probe(helper, "mountns"),
            run_probe(helper, "proc"),
            run_probe(helper, "procbind"),
            run_probe(helper, "overlay"),
        )
    } else {
        (skipped(), skipped(), skipped(), skipped())
    };
    let chroot = if uid == 0 {
        run_probe(helper, "chroot")
    } else {
        Probe {
            ok: false,
            detail: format!("ossb runs as uid {uid}, the chroot sandbox needs uid 0"),
        }
    };
    let ptrace = run_probe(helper, "ptrace");
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_string()))
    };
    let ladder = ladder(
        &user_namespace,
        &mount_namespace,
        &procfs,
        &proc_bind,
        &chroot,
        &ptrace,
    );
    let rung = ladder.iter().find(|p| p.ok).map(|p| p.rung);
    let best = match rung {
        None => SandboxChoice::None,
        Some(r) if r.mounts() && overlay_userxattr.ok => SandboxChoice::Overlay,
        Some(_) => SandboxChoice::Scan,
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
        seccomp_mode: field("Seccomp:").and_then(|v| v.parse().ok()),
        no_new_privs: field("NoNewPrivs:").map(|v| v == "1"),
        capabilities: field("CapEff:"),
        user_namespace,
        mount_namespace,
        procfs,
        proc_bind,
        overlay_userxattr,
        chroot,
        ptrace,
        subuid: sub_ranges(Path::new("/etc/subuid"), uid, name.as_deref()),
        subgid: sub_ranges(Path::new("/etc/subgid"), uid, name.as_deref()),
        newuidmap: find("newuidmap"),
        newgidmap: find("newgidmap"),
        id_map: IdMap::detect(),
        binfmt_misc: binfmt_handlers(),
        ladder,
        rung,
        best,
    }
}

/// The rungs from the probes, best first.
fn ladder(
    userns: &Probe,
    mountns: &Probe,
    procfs: &Probe,
    proc_bind: &Probe,
    chroot: &Probe,
    ptrace: &Probe,
) -> Vec<RungProbe> {
    let first_failed = |probes: &[(&str, &Probe)]| {
        probes
            .iter()
            .find(|(_, p)| !p.ok)
            .map(|(what, p)| format!("{what} failed: {}", p.detail))
    };
    let ns = [("user namespace", userns), ("mount namespace", mountns)];
    let full = first_failed(&[ns[0], ns[1], ("fresh /proc", procfs)]);
    let reduced = first_failed(&[ns[0], ns[1], ("/proc bind", proc_bind)]);
    let chroot = first_failed(&[("chroot", chroot)]);
    let ptrace = first_failed(&[("ptrace", ptrace)]);
    let ok_detail = |r: Rung| format!("available ({})", r.summary());
    [
        (Rung::Full, full),
        (Rung::Reduced, reduced),
        (Rung::Chroot, chroot),
        (Rung::Ptrace, ptrace),
    ]
    .into_iter()
    .map(|(rung, failed)| RungProbe {
        rung,
        ok: failed.is_none(),
        detail: failed.unwrap_or_else(|| ok_detail(rung)),
        isolates: rung.summary().to_string(),
        enabled_by: rung.enabled_by().to_string(),
    })
    .collect()
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
                // One line: the probe's lines joined (the ladder quotes it in one sentence).
                let e = String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect::<Vec<_>>()
                    .join("; ");
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
        "procbind" => probe_proc_bind(),
        "chroot" => probe_chroot(),
        "ptrace" => crate::exec::sandbox::probe_ptrace(),
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
                _ => Err("so a fresh procfs cannot be mounted".into()),
            }
        }
    }
}

fn probe_proc_bind() -> Result<String, String> {
    use rustix::mount::OpenTreeFlags;
    let dir = enter_mountns()?;
    let tree = rustix::mount::open_tree(
        rustix::fs::CWD,
        "/proc",
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_RECURSIVE,
    )
    .map_err(errno("cloning /proc recursively"))?;
    rustix::mount::move_mount(
        &tree,
        "",
        rustix::fs::CWD,
        dir.path(),
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(errno("mounting the /proc clone"))?;
    Ok("the existing /proc can be bound recursively in a user namespace".into())
}

/// `chroot` into an empty directory in a child, and the capabilities the chroot rung needs:
/// `CAP_SETPCAP` to drop the escape capabilities from the step's bounding set.
fn probe_chroot() -> Result<String, String> {
    let dir = tempfile::Builder::new()
        .prefix("ossb-probe-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?;
    let has = |c: rustix::thread::CapabilitySet| {
        rustix::thread::capability_is_in_bounding_set(c).unwrap_or(false)
    };
    let eff = capabilities_effective();
    let effective = |bit: u32| eff.is_some_and(|e| e & (1u64 << bit) != 0);
    if !effective(CAP_SETPCAP) || !has(rustix::thread::CapabilitySet::SETPCAP) {
        return Err(
            "CAP_SETPCAP is missing (needed to drop CAP_SYS_CHROOT from the step)".to_string(),
        );
    }
    match fork()? {
        None => {
            let code = match rustix::process::chroot(dir.path()) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("chroot: {}", std::io::Error::from(e));
                    1
                }
            };
            exit(code)
        }
        Some(pid) => {
            let status = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty())
                .map_err(errno("waitpid"))?
                .map(|(_, s)| s);
            if status.and_then(|s| s.exit_status()) != Some(0) {
                return Err("so it cannot chroot (that needs CAP_SYS_CHROOT)".into());
            }
        }
    }
    let mknod = if effective(CAP_MKNOD) {
        "/dev nodes made with mknod"
    } else {
        "no CAP_MKNOD: the step gets no /dev nodes"
    };
    Ok(format!("chroot works as uid 0; {mknod}"))
}

/// Capability bit numbers (`<linux/capability.h>`).
const CAP_SETPCAP: u32 = 8;
const CAP_MKNOD: u32 = 27;

fn capabilities_effective() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(ok: bool, detail: &str) -> Probe {
        Probe {
            ok,
            detail: detail.into(),
        }
    }

    /// A report from hand-made probes: user namespaces as given, everything else following.
    fn report(userns: bool, procfs: bool, chroot: bool, seccomp: u32) -> DoctorReport {
        let ns = probe(userns, "unshare(CLONE_NEWUSER): Operation not permitted");
        let proc = probe(procfs, "creating a proc mount: Operation not permitted");
        let bind = probe(userns, "cloning /proc recursively: Operation not permitted");
        let chroot = probe(
            chroot,
            "ossb runs as uid 1000, the chroot sandbox needs uid 0",
        );
        let ptrace = probe(false, "the ptrace sandbox is not built into this ossb");
        let ladder = ladder(&ns, &ns, &proc, &bind, &chroot, &ptrace);
        let rung = ladder.iter().find(|p| p.ok).map(|p| p.rung);
        DoctorReport {
            kernel: "6.1".into(),
            uid: 1000,
            max_user_namespaces: Some(1000),
            unprivileged_userns_clone: None,
            apparmor_restrict_unprivileged_userns: None,
            seccomp_mode: Some(seccomp),
            no_new_privs: Some(true),
            capabilities: Some("0000000000000000".into()),
            user_namespace: ns.clone(),
            mount_namespace: ns,
            procfs: proc,
            proc_bind: bind,
            overlay_userxattr: probe(false, "no overlay"),
            chroot,
            ptrace,
            subuid: Vec::new(),
            subgid: Vec::new(),
            newuidmap: None,
            newgidmap: None,
            id_map: IdMap::detect(),
            binfmt_misc: Vec::new(),
            ladder,
            rung,
            best: if rung.is_some() {
                SandboxChoice::Scan
            } else {
                SandboxChoice::None
            },
        }
    }

    #[test]
    fn the_best_working_rung_is_picked_and_a_forced_one_must_work() {
        let masked = report(true, false, false, 0);
        assert_eq!(masked.select(SandboxMode::Auto), Ok(Rung::Reduced));
        assert_eq!(
            masked.select(SandboxMode::Force(Rung::Reduced)),
            Ok(Rung::Reduced)
        );
        let err = masked
            .select(SandboxMode::Force(Rung::Full))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.starts_with("the full sandbox (--sandbox full) cannot run RUN steps here")
                && err.contains("full: fresh /proc failed: creating a proc mount")
                && err.contains("procMount: Unmasked")
                && err.ends_with("(or use --sandbox auto)")
                && !err.contains("chroot"),
            "{err}"
        );
        let root = report(false, false, true, 2);
        assert_eq!(root.select(SandboxMode::Auto), Ok(Rung::Chroot));
        assert_eq!(report(true, true, true, 0).rung, Some(Rung::Full));
    }

    #[test]
    fn no_rung_names_every_probe_and_the_pod_settings() {
        let restricted = report(false, false, false, 2);
        let err = restricted
            .select(SandboxMode::Auto)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        for needle in [
            "no sandbox possible for RUN steps; probed:",
            "full: user namespace failed: unshare(CLONE_NEWUSER): Operation not permitted;",
            "reduced: user namespace failed",
            "chroot: chroot failed: ossb runs as uid 1000",
            "ptrace: ptrace failed: the ptrace sandbox is not built",
            "a seccomp filter is active",
            "to enable the full sandbox:",
            "or the reduced sandbox:",
            "or the chroot sandbox: runAsUser: 0",
            "or the ptrace sandbox:",
            "hostUsers: false",
            "SYS_ADMIN",
        ] {
            assert!(err.contains(needle), "missing {needle:?} in {err}");
        }
        assert_eq!(
            restricted.best_sandbox().err().map(|e| e.forced),
            Some(None)
        );
        let json: serde_json::Value =
            serde_json::from_str(&restricted.to_json()).unwrap_or_default();
        assert_eq!(json["rung"], serde_json::Value::Null);
        assert_eq!(json["ladder"][0]["rung"], "full");
        assert_eq!(json["ladder"][3]["ok"], false);
    }
}
