//! The chroot rung's PID-1 setup: no namespaces and no mounts, only `chroot`.
//!
//! OSSB runs as uid 0 without `CAP_SYS_ADMIN` (a container with the runtime's default
//! capabilities). The step's root is the rootfs directory itself (the scan snapshotter), so
//! everything the sandbox adds to it is recorded as a stub and removed after the step, with
//! the times of its directory restored: the layer diff is the step's changes only.
//!
//! - `/dev`: `null`, `zero`, `full`, `random`, `urandom` and `tty` are created with `mknod`
//!   (needs `CAP_MKNOD`, in the default set) where the rootfs has no such entry; without the
//!   capability they are missing and the step is told.
//! - `/etc/hosts`, `/etc/resolv.conf`, `/etc/hostname`: written where the rootfs has none (a
//!   file the image ships is left as it is).
//! - `/proc` cannot be provided without mounting: it is absent.
//! - Before the command runs, every capability outside [`KEPT`] (the runtime's default set
//!   without `CAP_SYS_CHROOT` and `CAP_MKNOD`) is dropped from the bounding set, so even a
//!   step running as root cannot get it back after `execve`. Without `CAP_SETPCAP` that is
//!   impossible and the step does not run.

use super::child::{Failure, Stubs, at};
use super::protocol::{InitConfig, RootMount};
use rustix::fs::{Dev, FileType, Mode, OFlags, ResolveFlags};
use rustix::thread::CapabilitySet as Cap;
use std::os::fd::OwnedFd;

/// Device nodes provided in `/dev`: name, major, minor.
const DEVICES: &[(&str, u32, u32)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// The capabilities a step may keep in the chroot rung: the container runtime's default set
/// without `CAP_SYS_CHROOT` (a second `chroot` leaves the first) and `CAP_MKNOD` (a block
/// device node reads the disk where no device cgroup stops it). Everything else is dropped
/// from the bounding set, among it `CAP_DAC_READ_SEARCH` (`open_by_handle_at`),
/// `CAP_SYS_PTRACE`, `CAP_SYS_ADMIN`, `CAP_SYS_MODULE` and `CAP_SYS_RAWIO`.
const KEPT: Cap = Cap::CHOWN
    .union(Cap::DAC_OVERRIDE)
    .union(Cap::FOWNER)
    .union(Cap::FSETID)
    .union(Cap::KILL)
    .union(Cap::SETGID)
    .union(Cap::SETUID)
    .union(Cap::SETPCAP)
    .union(Cap::NET_BIND_SERVICE)
    .union(Cap::NET_RAW)
    .union(Cap::SETFCAP)
    .union(Cap::AUDIT_WRITE);

/// Prepares the rootfs and enters it with `chroot`; the working directory is `/` afterwards.
pub(super) fn enter(
    cfg: &InitConfig,
    stubs: &mut Stubs,
    warn: &mut dyn FnMut(String),
) -> Result<(), Failure> {
    let RootMount::Bind { rootfs } = &cfg.root else {
        return Err((
            "preparing the chroot".into(),
            "the chroot rung needs a plain rootfs directory (the scan snapshotter), not an overlay"
                .into(),
        ));
    };
    if let Some(m) = cfg.mounts.first() {
        return Err((
            format!("mounting {}", m.target),
            "RUN --mount needs a mount namespace, which the chroot rung cannot create; run the \
             build in a pod that allows a namespace rung (see docs/execution-ladder.md)"
                .into(),
        ));
    }
    if cfg.network_none {
        return Err((
            "isolating the network".into(),
            "RUN --network=none needs a network namespace, which the chroot rung cannot create"
                .into(),
        ));
    }
    let root = rustix::fs::open(
        rootfs.as_str(),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(at("opening the rootfs"))?;
    make_devices(&root, stubs, warn)?;
    write_etc_files(&root, cfg, stubs, warn)?;
    rustix::process::fchdir(&root).map_err(at("entering the rootfs"))?;
    drop(root);
    rustix::process::chroot(".").map_err(at("chroot into the rootfs"))?;
    rustix::process::chdir("/").map_err(at("chdir /"))?;
    drop_escape_capabilities()
}

fn open_in(root: &OwnedFd, rel: &str, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat2(
        root,
        rel,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
}

/// Runs `f` in `dir` and restores `dir`'s times afterwards (the scan compares directory
/// mtimes; the stubs are removed again after the step).
fn keeping_times<T>(dir: &OwnedFd, f: impl FnOnce() -> T) -> T {
    let before = rustix::fs::fstat(dir).ok();
    let out = f();
    if let Some(b) = before {
        let times = rustix::fs::Timestamps {
            last_access: rustix::fs::Timespec {
                tv_sec: b.st_atime,
                tv_nsec: b.st_atime_nsec as _,
            },
            last_modification: rustix::fs::Timespec {
                tv_sec: b.st_mtime,
                tv_nsec: b.st_mtime_nsec as _,
            },
        };
        let _ = rustix::fs::futimens(dir, &times);
    }
    out
}

fn make_devices(
    root: &OwnedFd,
    stubs: &mut Stubs,
    warn: &mut dyn FnMut(String),
) -> Result<(), Failure> {
    // `ensure` creates /dev (recorded) when the rootfs has none.
    drop(super::child::ensure(root, "dev", true, stubs)?);
    let dev = open_in(root, "dev", OFlags::RDONLY | OFlags::DIRECTORY)
        .map_err(at("opening /dev in the rootfs"))?;
    let mut missing = Vec::new();
    keeping_times(&dev, || {
        for (name, major, minor) in DEVICES {
            match rustix::fs::statat(&dev, *name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
                Ok(_) => continue,
                Err(rustix::io::Errno::NOENT) => {}
                Err(_) => continue,
            }
            let node: Dev = rustix::fs::makedev(*major, *minor);
            match rustix::fs::mknodat(
                &dev,
                *name,
                FileType::CharacterDevice,
                Mode::from_raw_mode(0o666),
                node,
            ) {
                Ok(()) => {
                    // mknod applies the umask.
                    let _ = rustix::fs::chmodat(
                        &dev,
                        *name,
                        Mode::from_raw_mode(0o666),
                        rustix::fs::AtFlags::empty(),
                    );
                    stubs.paths.push(format!("dev/{name}"));
                }
                Err(e) => missing.push(format!("/dev/{name} ({})", std::io::Error::from(e))),
            }
        }
    });
    if !missing.is_empty() {
        warn(format!(
            "the chroot sandbox could not create {} (creating device nodes needs CAP_MKNOD); \
             the step runs without them",
            missing.join(", ")
        ));
    }
    Ok(())
}

fn write_etc_files(
    root: &OwnedFd,
    cfg: &InitConfig,
    stubs: &mut Stubs,
    warn: &mut dyn FnMut(String),
) -> Result<(), Failure> {
    let Ok(etc) = open_in(root, "etc", OFlags::RDONLY | OFlags::DIRECTORY) else {
        warn(
            "the rootfs has no /etc directory: /etc/hosts and /etc/resolv.conf not provided".into(),
        );
        return Ok(());
    };
    for name in ["hosts", "resolv.conf", "hostname"] {
        match rustix::fs::statat(&etc, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
            Err(rustix::io::Errno::NOENT) => {}
            // The image's own file (or a symlink) stays: the chroot rung cannot cover it.
            _ => continue,
        }
        let text = std::fs::read(format!("{}/{name}", cfg.etc_dir))
            .map_err(|e| (format!("reading the {name} file"), e.to_string()))?;
        keeping_times(&etc, || -> Result<(), Failure> {
            let fd = rustix::fs::openat(
                &etc,
                name,
                OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::WRONLY | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o644),
            )
            .map_err(at(format!("creating /etc/{name}")))?;
            stubs.paths.push(format!("etc/{name}"));
            rustix::io::write(&fd, &text).map_err(at(format!("writing /etc/{name}")))?;
            Ok(())
        })?;
    }
    Ok(())
}

fn drop_escape_capabilities() -> Result<(), Failure> {
    for bit in 0..64u32 {
        let cap = Cap::from_bits_retain(1u64 << bit);
        if KEPT.contains(cap) {
            continue;
        }
        match rustix::thread::capability_is_in_bounding_set(cap) {
            Ok(true) => {}
            Ok(false) => continue,
            // Past the last capability this kernel knows.
            Err(_) => break,
        }
        rustix::thread::remove_capability_from_bounding_set(cap).map_err(|e| {
            (
                format!("dropping capability {bit} from the bounding set"),
                format!(
                    "{} (needs CAP_SETPCAP, in the container runtime's default set); without it \
                     a step could leave the chroot",
                    std::io::Error::from(e)
                ),
            )
        })?;
    }
    Ok(())
}
