//! Extra mounts of a step (`RUN --mount`): host binds, tmpfs and single read-only files.
//!
//! The parent describes them in [`ExtraMount`]s; the step's PID 1 sets them up in its mount
//! namespace after the rootfs and its standard mounts, before `pivot_root`. Every target is
//! resolved beneath the new root with `openat2(RESOLVE_IN_ROOT)` and missing mount points are
//! created as stubs (removed again, or kept in an extra overlay lower layer), so neither a
//! mount point nor anything written to a mount ends up in the step's layer.
//!
//! File mounts (secrets) are written by PID 1 onto a private tmpfs attached at a staging
//! directory of the step: their bytes never touch a disk, and after `pivot_root` only the
//! read-only bind of each file is reachable.

use super::child::{Failure, Stubs, at, ensure, mapped};
use super::protocol::InitConfig;
use rustix::fs::{Mode, OFlags};
use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, OpenTreeFlags};
use serde::{Deserialize, Serialize};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

/// One extra mount of a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraMount {
    /// Absolute path inside the container; resolved beneath the rootfs.
    pub target: String,
    /// What is mounted there.
    pub kind: ExtraMountKind,
}

/// What an [`ExtraMount`] mounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExtraMountKind {
    /// A recursive bind of a host directory or file.
    Bind {
        /// The host path.
        source: String,
        /// Mounted read-only.
        read_only: bool,
        /// Owner and mode given to the source's root before it is mounted (a cache directory
        /// on first use); applied inside the user namespace, where container ids exist.
        init_owner: Option<Ownership>,
    },
    /// A fresh, empty tmpfs (`nosuid`, `nodev`).
    Tmpfs {
        /// Size limit in bytes (the kernel's default, half the memory, when absent).
        size: Option<u64>,
    },
    /// A read-only file holding `data` (a secret), on a private tmpfs.
    File {
        /// The contents.
        data: SecretBytes,
        /// Owner inside the container.
        uid: u32,
        /// Group inside the container.
        gid: u32,
        /// Permission bits.
        mode: u32,
    },
}

impl ExtraMountKind {
    /// Whether the mount point is a directory (else a regular file).
    pub fn is_dir(&self) -> bool {
        match self {
            ExtraMountKind::Bind { source, .. } => std::fs::metadata(source)
                .map(|m| m.is_dir())
                .unwrap_or(true),
            ExtraMountKind::Tmpfs { .. } => true,
            ExtraMountKind::File { .. } => false,
        }
    }
}

/// Owner and permission bits inside the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ownership {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Permission bits.
    pub mode: u32,
}

/// Bytes that are never shown: `Debug` prints only their length.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretBytes(pub Vec<u8>);

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBytes(<{} bytes redacted>)", self.0.len())
    }
}

/// Number of `/`-separated components: parents are mounted before their children.
fn depth(target: &str) -> usize {
    target.split('/').filter(|p| !p.is_empty()).count()
}

/// The mounts in the order they are set up (parents first, otherwise as given).
pub(super) fn ordered(mounts: &[ExtraMount]) -> Vec<(usize, &ExtraMount)> {
    let mut v: Vec<(usize, &ExtraMount)> = mounts.iter().enumerate().collect();
    v.sort_by_key(|(_, m)| depth(&m.target));
    v
}

/// Sets up every extra mount beneath `root` (PID 1, before `pivot_root`).
pub(super) fn setup(
    cfg: &InitConfig,
    root: &OwnedFd,
    stubs: &mut Stubs,
    warn: &mut dyn FnMut(String),
) -> Result<(), Failure> {
    if cfg.mounts.is_empty() {
        return Ok(());
    }
    let staging = secret_tmpfs(cfg)?;
    for (i, m) in ordered(&cfg.mounts) {
        let rel = m.target.trim_start_matches('/');
        if rel.is_empty() {
            return Err((
                format!("mounting {}", m.target),
                "cannot mount over the root directory".into(),
            ));
        }
        let target = ensure(root, rel, m.kind.is_dir(), stubs)?;
        let what = format!("the mount at {}", m.target);
        match &m.kind {
            ExtraMountKind::Bind {
                source,
                read_only,
                init_owner,
            } => {
                if let Some(own) = init_owner {
                    apply_owner(cfg, source, own, &m.target, warn)?;
                }
                let tree = rustix::mount::open_tree(
                    rustix::fs::CWD,
                    source.as_str(),
                    OpenTreeFlags::OPEN_TREE_CLONE
                        | OpenTreeFlags::OPEN_TREE_CLOEXEC
                        | OpenTreeFlags::AT_RECURSIVE,
                )
                .map_err(at(format!("cloning the source of {what}")))?;
                if *read_only {
                    set_attrs(&tree, libc::MOUNT_ATTR_RDONLY)
                        .map_err(at(format!("making {what} read-only")))?;
                }
                move_onto(&tree, &target).map_err(at(format!("mounting {what}")))?;
            }
            ExtraMountKind::Tmpfs { size } => {
                let size = size.map(|s| s.to_string());
                let mut opts: Vec<(&str, &str)> = Vec::new();
                if let Some(s) = &size {
                    opts.push(("size", s));
                }
                let fs = fsopen("tmpfs", &opts)?;
                let mnt = rustix::mount::fsmount(
                    &fs,
                    FsMountFlags::FSMOUNT_CLOEXEC,
                    MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NODEV,
                )
                .map_err(at(format!("creating {what}")))?;
                move_onto(&mnt, &target).map_err(at(format!("mounting {what}")))?;
            }
            ExtraMountKind::File {
                data,
                uid,
                gid,
                mode,
            } => {
                let Some(staging) = &staging else {
                    return Err((what, "no staging directory for files".into()));
                };
                let name = i.to_string();
                write_file(cfg, staging, &name, data, (*uid, *gid, *mode), warn)
                    .map_err(|e| (format!("writing the file for {what}"), e.1))?;
                let tree = rustix::mount::open_tree(
                    staging,
                    name.as_str(),
                    OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
                )
                .map_err(at(format!("cloning the file of {what}")))?;
                set_attrs(
                    &tree,
                    libc::MOUNT_ATTR_RDONLY
                        | libc::MOUNT_ATTR_NOSUID
                        | libc::MOUNT_ATTR_NODEV
                        | libc::MOUNT_ATTR_NOEXEC,
                )
                .map_err(at(format!("making {what} read-only")))?;
                move_onto(&tree, &target).map_err(at(format!("mounting {what}")))?;
            }
        }
    }
    Ok(())
}

/// Attaches a private tmpfs at the staging dir when some mount is a file; returns its fd.
fn secret_tmpfs(cfg: &InitConfig) -> Result<Option<OwnedFd>, Failure> {
    let total: usize = cfg
        .mounts
        .iter()
        .map(|m| match &m.kind {
            ExtraMountKind::File { data, .. } => data.0.len() + 4096,
            _ => 0,
        })
        .sum();
    if total == 0 {
        return Ok(None);
    }
    let size = (total + 64 * 1024).to_string();
    let fs = fsopen("tmpfs", &[("size", &size), ("mode", "0700")])?;
    let mnt = rustix::mount::fsmount(
        &fs,
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::MOUNT_ATTR_NOSUID
            | MountAttrFlags::MOUNT_ATTR_NODEV
            | MountAttrFlags::MOUNT_ATTR_NOEXEC,
    )
    .map_err(at("creating the secrets tmpfs"))?;
    rustix::mount::move_mount(
        &mnt,
        "",
        rustix::fs::CWD,
        cfg.staging_dir.as_str(),
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(at("attaching the secrets tmpfs"))?;
    let fd = rustix::fs::open(
        cfg.staging_dir.as_str(),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(at("opening the secrets tmpfs"))?;
    Ok(Some(fd))
}

fn write_file(
    cfg: &InitConfig,
    dir: &OwnedFd,
    name: &str,
    data: &SecretBytes,
    (uid, gid, mode): (u32, u32, u32),
    warn: &mut dyn FnMut(String),
) -> Result<(), Failure> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o400),
    )
    .map_err(at("creating the file"))?;
    let mut rest = data.0.as_slice();
    while !rest.is_empty() {
        let n = rustix::io::write(&fd, rest).map_err(at("writing the file"))?;
        rest = &rest[n..];
    }
    chown_mapped(cfg, &fd, uid, gid, warn).map_err(at("changing the file's owner"))?;
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode & 0o7777))
        .map_err(at("changing the file's mode"))
}

/// Gives the root of a bind source its owner and mode.
fn apply_owner(
    cfg: &InitConfig,
    source: &str,
    own: &Ownership,
    target: &str,
    warn: &mut dyn FnMut(String),
) -> Result<(), Failure> {
    let fd = rustix::fs::open(
        source,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(at(format!("opening the source of the mount at {target}")))?;
    chown_mapped(cfg, &fd, own.uid, own.gid, warn)
        .map_err(at(format!("changing the owner of the mount at {target}")))?;
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(own.mode & 0o7777))
        .map_err(at(format!("changing the mode of the mount at {target}")))
}

/// `fchown` to ids that exist in the namespace; unmapped ids stay root, with a warning.
fn chown_mapped(
    cfg: &InitConfig,
    fd: &OwnedFd,
    uid: u32,
    gid: u32,
    warn: &mut dyn FnMut(String),
) -> rustix::io::Result<()> {
    let u = if mapped(&cfg.mapped_uids, uid) {
        uid
    } else {
        warn(format!(
            "uid {uid} of a RUN --mount is not mapped in this rootless sandbox; uid 0 owns it"
        ));
        0
    };
    let g = if mapped(&cfg.mapped_gids, gid) {
        gid
    } else {
        warn(format!(
            "gid {gid} of a RUN --mount is not mapped in this rootless sandbox; gid 0 owns it"
        ));
        0
    };
    rustix::fs::fchown(
        fd,
        Some(rustix::process::Uid::from_raw(u)),
        Some(rustix::process::Gid::from_raw(g)),
    )
}

fn fsopen(fstype: &str, opts: &[(&str, &str)]) -> Result<OwnedFd, Failure> {
    let fs = rustix::mount::fsopen(fstype, FsOpenFlags::FSOPEN_CLOEXEC)
        .map_err(at(format!("opening a {fstype} context")))?;
    for (k, v) in opts {
        rustix::mount::fsconfig_set_string(&fs, *k, *v)
            .map_err(at(format!("setting {fstype} option {k}={v}")))?;
    }
    rustix::mount::fsconfig_create(&fs).map_err(at(format!("creating the {fstype} filesystem")))?;
    Ok(fs)
}

fn move_onto(tree: &OwnedFd, target: &OwnedFd) -> rustix::io::Result<()> {
    rustix::mount::move_mount(
        tree,
        "",
        target,
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
}

/// The argument of `mount_setattr(2)`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Sets mount attributes on a (detached) mount tree, recursively.
#[allow(unsafe_code)]
fn set_attrs(tree: &OwnedFd, attrs: u64) -> rustix::io::Result<()> {
    let attr = MountAttr {
        attr_set: attrs,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: the path is a valid NUL-terminated empty string, `attr` is a live, properly laid
    // out `struct mount_attr` whose size is passed, and the fd is owned for the whole call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_fd().as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(rustix::io::Errno::from_raw_os_error(
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_bytes_debug_hides_the_value() {
        let s = SecretBytes(b"hunter2".to_vec());
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2"));
        assert!(shown.contains("7 bytes"));
    }

    #[test]
    fn parents_are_mounted_first() {
        let m = |t: &str| ExtraMount {
            target: t.into(),
            kind: ExtraMountKind::Tmpfs { size: None },
        };
        let v = [m("/a/b/c"), m("/a"), m("/x/y")];
        let order: Vec<usize> = ordered(&v).into_iter().map(|(i, _)| i).collect();
        assert_eq!(order, vec![1, 2, 0]);
    }
}
