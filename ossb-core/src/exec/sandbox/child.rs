//! The step's PID 1 before `execve`: mounts, `pivot_root`, identity, fds, then the command.
//!
//! Runs as root of the new user namespace, in the new mount, PID, IPC and UTS namespaces. Every
//! mount point inside the rootfs is resolved with `openat2(RESOLVE_IN_ROOT)` and mounted with
//! `move_mount` onto the resolved fd, so symlinks planted in the rootfs cannot redirect a mount
//! to the host. After `pivot_root` the old root is detached, every fd above 2 is closed and the
//! working directory is checked to be inside the new root (CVE-2024-21626).
//!
//! The reduced rung differs only in `/proc` (a recursive bind of the existing one); the chroot
//! rung replaces the namespaces, mounts and `pivot_root` with `chroot.rs` and shares the rest
//! (working directory, identity, fds, `execve`).

use super::Rung;
use super::protocol::{self, FromInit, InitConfig, RootMount};
use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountPropagationFlags, MoveMountFlags,
    OpenTreeFlags, UnmountFlags,
};
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

pub(super) type Failure = (String, String);

pub(super) fn at(stage: impl Into<String>) -> impl FnOnce(rustix::io::Errno) -> Failure {
    let stage = stage.into();
    move |e| (stage, std::io::Error::from(e).to_string())
}

/// Sets the sandbox up and executes the command; never returns.
///
/// With `owner_sock` (ownership emulation), the seccomp filter is installed right before
/// `execve` and its listener handed to the init's supervisor over that socket.
pub(super) fn run(cfg: &InitConfig, msg: OwnedFd, owner_sock: Option<UnixStream>) -> ! {
    let err = match setup_and_exec(cfg, &msg, owner_sock) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    send(
        &msg,
        &FromInit::SetupFailed {
            stage: err.0,
            error: err.1,
        },
    );
    exit(127)
}

enum Never {}

fn send(fd: &OwnedFd, m: &FromInit) {
    let mut w = FdWriter(fd.as_fd());
    let _ = protocol::send(&mut w, m);
}

struct FdWriter<'a>(BorrowedFd<'a>);

impl std::io::Write for FdWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        rustix::io::write(self.0, buf).map_err(Into::into)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Host device nodes bind-mounted into `/dev`.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

fn setup_and_exec(
    cfg: &InitConfig,
    msg: &OwnedFd,
    owner_sock: Option<UnixStream>,
) -> Result<Never, Failure> {
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
        .map_err(at("setting the parent-death signal"))?;
    if cfg.rung == Rung::Chroot {
        // Its own process group, so the init can kill whatever the step leaves behind.
        rustix::process::setpgid(None, None).map_err(at("creating a process group"))?;
        let mut stubs = Stubs::default();
        let entered = super::chroot::enter(cfg, &mut stubs, &mut |text| {
            send(msg, &FromInit::Warning { text })
        });
        // The stubs are reported even when entering failed, so the parent removes them.
        if !stubs.paths.is_empty() {
            send(msg, &FromInit::Stubs { paths: stubs.paths });
        }
        entered?;
    } else {
        mount_and_pivot(cfg, msg)?;
    }
    run_command(cfg, msg, owner_sock)
}

/// The namespace rungs: mounts in the new mount namespace, then `pivot_root`.
fn mount_and_pivot(cfg: &InitConfig, msg: &OwnedFd) -> Result<(), Failure> {
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .map_err(at("making / private"))?;
    mount_root(cfg)?;
    let root = rustix::fs::open(
        &cfg.mountpoint,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(at("opening the new root"))?;
    let mut stubs = Stubs::default();

    let target = ensure(&root, "proc", true, &mut stubs)?;
    if cfg.rung == Rung::Reduced {
        // /proc: the existing one with everything mounted over it (a runtime's masks are
        // locked in this user namespace and must come along: only a recursive bind may copy
        // them). OSSB itself is non-dumpable, so its entries there are closed to the step.
        let src = rustix::mount::open_tree(
            rustix::fs::CWD,
            "/proc",
            OpenTreeFlags::OPEN_TREE_CLONE
                | OpenTreeFlags::OPEN_TREE_CLOEXEC
                | OpenTreeFlags::AT_RECURSIVE,
        )
        .map_err(at("cloning the existing /proc"))?;
        rustix::mount::move_mount(
            &src,
            "",
            &target,
            "",
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
        )
        .map_err(at("mounting /proc"))?;
    } else {
        // /proc: a fresh procfs of the new PID namespace.
        let fs = fsopen_ctx("proc", &[], &[])?;
        attach(
            &fs,
            &target,
            MountAttrFlags::MOUNT_ATTR_NOSUID
                | MountAttrFlags::MOUNT_ATTR_NODEV
                | MountAttrFlags::MOUNT_ATTR_NOEXEC,
            "/proc",
        )?;
    }

    // /dev: a small tmpfs with the host's harmless devices bound in.
    let target = ensure(&root, "dev", true, &mut stubs)?;
    let fs = fsopen_ctx("tmpfs", &[("mode", "755"), ("size", "65536k")], &[])?;
    attach(
        &fs,
        &target,
        MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_STRICTATIME,
        "/dev",
    )?;
    let dev = openat_in(&root, "dev", OFlags::RDONLY | OFlags::DIRECTORY)?;
    for name in DEVICES {
        let src = match rustix::mount::open_tree(
            rustix::fs::CWD,
            format!("/dev/{name}"),
            OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
        ) {
            Ok(fd) => fd,
            // A host without /dev/tty (no terminal device) or similar: skip that node.
            Err(rustix::io::Errno::NOENT) | Err(rustix::io::Errno::NXIO) => continue,
            Err(e) => return Err(at(format!("cloning host /dev/{name}"))(e)),
        };
        drop(
            rustix::fs::openat(
                &dev,
                *name,
                OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o666),
            )
            .map_err(at(format!("creating /dev/{name}")))?,
        );
        let t = rustix::fs::openat(
            &dev,
            *name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(at(format!("opening /dev/{name}")))?;
        rustix::mount::move_mount(
            &src,
            "",
            &t,
            "",
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
        )
        .map_err(at(format!("mounting /dev/{name}")))?;
    }
    rustix::fs::mkdirat(&dev, "pts", Mode::from_raw_mode(0o755))
        .map_err(at("creating /dev/pts"))?;
    let t = openat_in(&root, "dev/pts", OFlags::PATH | OFlags::DIRECTORY)?;
    let fs = fsopen_ctx(
        "devpts",
        &[("ptmxmode", "0666"), ("mode", "0620")],
        &["newinstance"],
    )?;
    attach(
        &fs,
        &t,
        MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NOEXEC,
        "/dev/pts",
    )?;
    rustix::fs::mkdirat(&dev, "shm", Mode::from_raw_mode(0o1777))
        .map_err(at("creating /dev/shm"))?;
    let t = openat_in(&root, "dev/shm", OFlags::PATH | OFlags::DIRECTORY)?;
    let fs = fsopen_ctx("tmpfs", &[("mode", "1777"), ("size", "65536k")], &[])?;
    attach(
        &fs,
        &t,
        MountAttrFlags::MOUNT_ATTR_NOSUID
            | MountAttrFlags::MOUNT_ATTR_NODEV
            | MountAttrFlags::MOUNT_ATTR_NOEXEC,
        "/dev/shm",
    )?;
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        rustix::fs::symlinkat(target, &dev, link).map_err(at(format!("creating /dev/{link}")))?;
    }
    drop(dev);

    // /etc/hosts, /etc/resolv.conf, /etc/hostname: bind-mounted, never written into the layer.
    for name in ["hosts", "resolv.conf", "hostname"] {
        let rel = format!("etc/{name}");
        let t = match ensure(&root, &rel, false, &mut stubs) {
            Ok(t) => t,
            // A dangling symlink (resolv.conf -> ../run/...) or a read-only /etc: not mounted.
            Err(e) => {
                send(
                    msg,
                    &FromInit::Warning {
                        text: format!("/etc/{name} not provided: {}", e.1),
                    },
                );
                continue;
            }
        };
        let src = rustix::mount::open_tree(
            rustix::fs::CWD,
            format!("{}/{name}", cfg.etc_dir),
            OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
        )
        .map_err(at(format!("cloning the {name} file")))?;
        rustix::mount::move_mount(
            &src,
            "",
            &t,
            "",
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
        )
        .map_err(at(format!("mounting /etc/{name}")))?;
    }
    // RUN --mount: binds, tmpfs and secret files.
    super::mounts::setup(cfg, &root, &mut stubs, &mut |text| {
        send(msg, &FromInit::Warning { text })
    })?;
    if !stubs.paths.is_empty() {
        send(
            msg,
            &FromInit::Stubs {
                paths: stubs.paths.clone(),
            },
        );
    }

    rustix::system::sethostname(cfg.hostname.as_bytes()).map_err(at("setting the hostname"))?;
    if cfg.network_none {
        super::netlo::loopback_up().map_err(|e| ("bringing lo up".to_string(), e.to_string()))?;
    }

    // pivot_root(".", ".") stacks the old root on the new one; detaching it leaves only the new.
    rustix::process::fchdir(&root).map_err(at("entering the new root"))?;
    drop(root);
    rustix::process::pivot_root(".", ".").map_err(at("pivot_root"))?;
    rustix::mount::unmount(".", UnmountFlags::DETACH).map_err(at("detaching the old root"))?;
    rustix::process::chdir("/").map_err(at("chdir /"))?;
    Ok(())
}

/// Both kinds of rung, inside the new root: working directory, identity, fds, `execve`.
fn run_command(
    cfg: &InitConfig,
    msg: &OwnedFd,
    owner_sock: Option<UnixStream>,
) -> Result<Never, Failure> {
    // The working directory, created as container root when missing.
    std::fs::create_dir_all(&cfg.cwd).map_err(|e| {
        (
            format!("creating the working directory {}", cfg.cwd),
            e.to_string(),
        )
    })?;

    // Identity: the requested ids when they exist in the namespace, else root with a warning.
    let uid = if mapped(&cfg.mapped_uids, cfg.uid) {
        cfg.uid
    } else {
        send(
            msg,
            &FromInit::Warning {
                text: format!(
                    "uid {} is not mapped in this rootless sandbox (single-uid mapping); the step runs as uid 0",
                    cfg.uid
                ),
            },
        );
        0
    };
    let gid = if mapped(&cfg.mapped_gids, cfg.gid) {
        cfg.gid
    } else {
        send(
            msg,
            &FromInit::Warning {
                text: format!(
                    "gid {} is not mapped in this rootless sandbox (single-gid mapping); the step runs as gid 0",
                    cfg.gid
                ),
            },
        );
        0
    };
    let groups: Vec<rustix::process::Gid> = cfg
        .groups
        .iter()
        .filter(|g| mapped(&cfg.mapped_gids, **g))
        .map(|g| rustix::process::Gid::from_raw(*g))
        .collect();
    match rustix::thread::set_thread_groups(&groups) {
        Ok(()) => {}
        // setgroups is denied in a single-id namespace made by an unprivileged user.
        Err(rustix::io::Errno::PERM) if groups.is_empty() => {}
        Err(e) => return Err(at("setting supplementary groups")(e)),
    }
    let g = rustix::process::Gid::from_raw(gid);
    rustix::thread::set_thread_res_gid(g, g, g).map_err(at(format!("switching to gid {gid}")))?;
    let u = rustix::process::Uid::from_raw(uid);
    rustix::thread::set_thread_res_uid(u, u, u).map_err(at(format!("switching to uid {uid}")))?;
    // Changing credentials cleared the parent-death signal: set it again.
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
        .map_err(at("setting the parent-death signal"))?;

    // stdin from /dev/null; stdout and stderr are the output pipe (fd 2 of the init).
    let null = rustix::fs::open("/dev/null", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
        .map_err(at("opening /dev/null"))?;
    rustix::stdio::dup2_stdin(&null).map_err(at("redirecting stdin"))?;
    drop(null);
    rustix::stdio::dup2_stdout(rustix::stdio::stderr()).map_err(at("redirecting stdout"))?;

    // Command lookup and argv/env as C strings, before closing the message fd's siblings.
    let env_path = cfg
        .env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    let prog = resolve_program(&cfg.argv[0], env_path).ok_or_else(|| {
        (
            "looking up the command".to_string(),
            format!(
                "{:?} not found in PATH {env_path:?} or not executable",
                cfg.argv[0]
            ),
        )
    })?;
    let argv = cstrings(&cfg.argv)?;
    let env = cstrings(&cfg.env)?;
    let prog = CString::new(prog).map_err(|_| {
        (
            "preparing the command".to_string(),
            "NUL byte in the path".to_string(),
        )
    })?;

    // Ownership emulation: from here on nothing before execve stats or chowns a file.
    if let Some(mut sock) = owner_sock {
        let listener = super::seccomp::install();
        if let Err(e) = &listener {
            let text = e.to_string();
            // In the step's output as well: its chown calls will fail.
            let _ = rustix::io::write(
                rustix::stdio::stderr(),
                format!("ossb: warning: {text}\n").as_bytes(),
            );
            send(msg, &FromInit::Warning { text });
        }
        super::seccomp::send_listener(&mut sock, listener.as_ref())
            .map_err(|e| ("starting ownership emulation".to_string(), e.to_string()))?;
        drop(listener);
        drop(sock);
    }

    // Close every inherited fd above 2 except the message fd, which is O_CLOEXEC.
    close_from(3, msg.as_raw_fd())?;
    std::env::set_current_dir(&cfg.cwd).map_err(|e| {
        (
            format!("entering the working directory {}", cfg.cwd),
            e.to_string(),
        )
    })?;
    let cwd = std::env::current_dir()
        .map_err(|e| ("checking the working directory".to_string(), e.to_string()))?;
    if !cwd.starts_with("/") {
        return Err((
            "checking the working directory".into(),
            "it is outside the container root".into(),
        ));
    }
    reset_signals();
    let e = execve(&prog, &argv, &env);
    // Report and exit right here: the fds still owned by this frame were closed by
    // close_from, and dropping them on the way out would abort (I/O safety).
    send(
        msg,
        &FromInit::SetupFailed {
            stage: format!("executing {:?}", cfg.argv[0]),
            error: e.to_string(),
        },
    );
    exit(127)
}

pub(super) fn mapped(ranges: &[(u32, u32)], id: u32) -> bool {
    ranges
        .iter()
        .any(|&(start, count)| id >= start && u64::from(id - start) < u64::from(count))
}

fn cstrings(v: &[String]) -> Result<Vec<CString>, Failure> {
    v.iter()
        .map(|s| {
            CString::new(s.as_bytes()).map_err(|_| {
                (
                    "preparing the command".to_string(),
                    format!("NUL byte in {s:?}"),
                )
            })
        })
        .collect()
}

fn resolve_program(name: &str, path: &str) -> Option<String> {
    if name.contains('/') {
        return Some(name.to_string());
    }
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| format!("{}/{name}", d.trim_end_matches('/')))
        .find(|p| {
            rustix::fs::access(p.as_str(), rustix::fs::Access::EXEC_OK).is_ok()
                && rustix::fs::stat(p.as_str())
                    .map(|s| s.st_mode & libc::S_IFMT == libc::S_IFREG)
                    .unwrap_or(false)
        })
}

fn mount_root(cfg: &InitConfig) -> Result<(), Failure> {
    match &cfg.root {
        RootMount::Overlay {
            lowers,
            upper,
            work,
        } => {
            // The kernel caps each fsconfig string at 256 bytes, which a deep store path
            // overflows: name the dirs relative to their common parent, entered for the
            // duration (overlay resolves the names against the working directory).
            let mut all: Vec<&str> = lowers.iter().map(String::as_str).collect();
            all.extend([upper.as_str(), work.as_str()]);
            let base = common_parent(&all);
            let rel = |p: &str| relative_to(p, &base);
            let lower = lowers
                .iter()
                .map(|l| rel(l).replace('\\', "\\\\").replace(':', "\\:"))
                .collect::<Vec<_>>()
                .join(":");
            let back = rustix::fs::open(
                ".",
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(at("opening the working directory"))?;
            rustix::process::chdir(base.as_str())
                .map_err(at(format!("entering {base} for the overlay options")))?;
            let fs = fsopen_ctx(
                "overlay",
                &[
                    ("lowerdir", &lower),
                    ("upperdir", &rel(upper)),
                    ("workdir", &rel(work)),
                ],
                // `volatile`: no sync of the upper dir at unmount (the upper is merged or
                // dropped right after the step; a crash loses only an unfinished step).
                &["userxattr", "volatile"],
            );
            rustix::process::fchdir(&back).map_err(at("returning to the working directory"))?;
            let fs = fs?;
            let mnt =
                rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())
                    .map_err(at("creating the overlay mount"))?;
            rustix::mount::move_mount(
                &mnt,
                "",
                rustix::fs::CWD,
                cfg.mountpoint.as_str(),
                MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
            )
            .map_err(at("attaching the overlay"))
        }
        RootMount::Bind { rootfs } => {
            rustix::mount::mount_bind_recursive(rootfs.as_str(), cfg.mountpoint.as_str())
                .map_err(at("bind-mounting the rootfs"))
        }
    }
}

/// The deepest directory that contains every one of `paths` (absolute paths; `/` at least).
fn common_parent(paths: &[&str]) -> String {
    let mut parts: Vec<&str> = match paths.first() {
        Some(p) => p.split('/').filter(|c| !c.is_empty()).collect(),
        None => return "/".into(),
    };
    // A path is never its own parent: the dir itself must stay nameable as a child.
    parts.pop();
    for p in &paths[1..] {
        let other: Vec<&str> = p.split('/').filter(|c| !c.is_empty()).collect();
        let keep = parts
            .iter()
            .zip(&other)
            .take(other.len().saturating_sub(1))
            .take_while(|(a, b)| a == b)
            .count();
        parts.truncate(keep);
    }
    format!("/{}", parts.join("/"))
}

/// `path` relative to its ancestor `base` (from [`common_parent`]).
fn relative_to(path: &str, base: &str) -> String {
    let rest = path
        .strip_prefix(base)
        .unwrap_or(path)
        .trim_start_matches('/');
    if rest.is_empty() {
        ".".into()
    } else {
        rest.into()
    }
}

/// A configured filesystem context (`fsopen` + options + `FSCONFIG_CMD_CREATE`).
fn fsopen_ctx(fstype: &str, opts: &[(&str, &str)], flags: &[&str]) -> Result<OwnedFd, Failure> {
    let fs = rustix::mount::fsopen(fstype, FsOpenFlags::FSOPEN_CLOEXEC)
        .map_err(at(format!("opening a {fstype} context")))?;
    for (k, v) in opts {
        rustix::mount::fsconfig_set_string(&fs, *k, *v)
            .map_err(at(format!("setting {fstype} option {k}={v}")))?;
    }
    for k in flags {
        rustix::mount::fsconfig_set_flag(&fs, *k)
            .map_err(at(format!("setting {fstype} option {k}")))?;
    }
    rustix::mount::fsconfig_create(&fs).map_err(at(format!("creating the {fstype} filesystem")))?;
    Ok(fs)
}

fn attach(
    fs: &OwnedFd,
    target: &OwnedFd,
    attrs: MountAttrFlags,
    what: &str,
) -> Result<(), Failure> {
    let mnt = rustix::mount::fsmount(fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs)
        .map_err(at(format!("creating the {what} mount")))?;
    rustix::mount::move_mount(
        &mnt,
        "",
        target,
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
    .map_err(at(format!("mounting {what}")))
}

fn openat_in(root: &OwnedFd, rel: &str, flags: OFlags) -> Result<OwnedFd, Failure> {
    rustix::fs::openat2(
        root,
        rel,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(at(format!("resolving /{rel} in the rootfs")))
}

#[derive(Default)]
pub(super) struct Stubs {
    pub(super) paths: Vec<String>,
}

/// Resolves `rel` inside the rootfs, creating it (and missing parents) when absent; returns an
/// `O_PATH` fd of the mount target. Created paths are recorded, and the times of the directory
/// they were created in are restored so the step sees an untouched tree.
pub(super) fn ensure(
    root: &OwnedFd,
    rel: &str,
    dir: bool,
    stubs: &mut Stubs,
) -> Result<OwnedFd, Failure> {
    let parts: Vec<&str> = rel.split('/').collect();
    for i in 0..parts.len() {
        let prefix = parts[..=i].join("/");
        match rustix::fs::openat2(
            root,
            prefix.as_str(),
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        ) {
            Ok(_) => continue,
            Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(at(format!("resolving /{prefix}"))(e)),
        }
        let parent_rel = if i == 0 {
            ".".to_string()
        } else {
            parts[..i].join("/")
        };
        let parent = openat_in(root, &parent_rel, OFlags::RDONLY | OFlags::DIRECTORY)?;
        let before = rustix::fs::fstat(&parent).map_err(at(format!("inspecting /{parent_rel}")))?;
        let last = i + 1 == parts.len();
        if !last || dir {
            rustix::fs::mkdirat(&parent, parts[i], Mode::from_raw_mode(0o755))
                .map_err(at(format!("creating mount point /{prefix}")))?;
        } else {
            drop(
                rustix::fs::openat(
                    &parent,
                    parts[i],
                    OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::WRONLY
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o644),
                )
                .map_err(at(format!("creating mount point /{prefix}")))?,
            );
        }
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
        stubs.paths.push(prefix);
    }
    openat_in(root, rel, OFlags::PATH)
}

#[allow(unsafe_code)]
fn close_from(first: i32, keep: i32) -> Result<(), Failure> {
    let close = |lo: i32, hi: u32| -> Result<(), Failure> {
        if lo < 0 || (lo as u32) > hi {
            return Ok(());
        }
        // SAFETY: close_range only closes descriptors; from here on nothing in this process
        // uses an fd in the range (the message fd `keep` is excluded and stays O_CLOEXEC).
        let rc = unsafe { libc::syscall(libc::SYS_close_range, lo as u32, hi, 0u32) };
        if rc == 0 {
            Ok(())
        } else {
            Err((
                "closing inherited fds".into(),
                std::io::Error::last_os_error().to_string(),
            ))
        }
    };
    close(first, (keep - 1).max(0) as u32)?;
    close(keep + 1, u32::MAX)
}

#[allow(unsafe_code)]
fn execve(prog: &CString, argv: &[CString], env: &[CString]) -> std::io::Error {
    let mut a: Vec<*const libc::c_char> = argv.iter().map(|s| s.as_ptr()).collect();
    a.push(std::ptr::null());
    let mut e: Vec<*const libc::c_char> = env.iter().map(|s| s.as_ptr()).collect();
    e.push(std::ptr::null());
    // SAFETY: every pointer comes from a live CString and both arrays are NULL-terminated.
    unsafe { libc::execve(prog.as_ptr(), a.as_ptr(), e.as_ptr()) };
    std::io::Error::last_os_error()
}

/// Default dispositions and an empty signal mask for the command: the Rust runtime of the
/// helper ignores SIGPIPE, and an ignored signal stays ignored across `execve` (`yes | head`
/// would never end).
#[allow(unsafe_code)]
fn reset_signals() {
    for sig in 1..libc::SIGRTMIN() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: SIG_DFL installs no handler; errors (invalid signal numbers) are ignored.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    // SAFETY: `set` is initialised by sigemptyset before use.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

#[allow(unsafe_code)]
fn exit(code: i32) -> ! {
    // SAFETY: _exit ends the process without running the forked copy of the init's atexit
    // handlers or flushing its stdio buffers a second time.
    unsafe { libc::_exit(code) }
}

#[cfg(test)]
mod overlay_path_tests {
    use super::{common_parent, relative_to};

    #[test]
    fn overlay_dirs_are_named_relative_to_their_common_parent() {
        let dirs = [
            "/a/store/tmp/x/lower",
            "/a/store/tmp/x/upper",
            "/a/store/tmp/x/work",
        ];
        let base = common_parent(&dirs);
        assert_eq!(base, "/a/store/tmp/x");
        assert_eq!(relative_to(dirs[0], &base), "lower");
        assert_eq!(common_parent(&["/a/b/c", "/a/d"]), "/a");
        assert_eq!(common_parent(&["/x/lower", "/y/upper"]), "/");
        assert_eq!(relative_to("/x/lower", "/"), "x/lower");
        // A dir that is another's parent is still named from above itself.
        assert_eq!(common_parent(&["/a/b", "/a/b/c"]), "/a");
    }
}
