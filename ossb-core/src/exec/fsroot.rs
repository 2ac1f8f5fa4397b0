//! [`Root`]: a directory handle beneath which every path is resolved, never leaving it.
//!
//! Paths given to [`Root`] are in-root paths (`usr/bin/env`, `/etc/passwd`, `a/../b`); a leading
//! `/` means the root itself. Resolution uses `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`
//! when the kernel has it and otherwise a userspace walker that opens one component at a time
//! with `O_NOFOLLOW`, follows symlinks itself (at most [`MAX_LINKS`]) and clamps `..` at the
//! root, exactly as a chroot would. Operations on the last component (`lstat`, `unlink`,
//! `symlink`, `chown`) resolve the parent directory and act on the name relative to its fd.

use std::ffi::OsString;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

use rustix::fs::{
    AtFlags, Dev, FileType, Mode, OFlags, ResolveFlags, Stat, Timespec, Timestamps, XattrFlags,
};
use rustix::io::Errno;

use super::error::{FsError, Result};

/// The maximum number of symlinks followed while resolving one path (as Linux's `MAXSYMLINKS`).
pub const MAX_LINKS: usize = 40;

/// How paths beneath a [`Root`] are resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolveMode {
    /// `openat2` when the kernel supports it, the userspace walker otherwise.
    Auto,
    /// Always the userspace walker (for old kernels and for tests of the fallback).
    Userspace,
}

/// What [`Root::set_owner`] achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerOutcome {
    /// The owner was set.
    Set,
    /// The process may not set this owner (not root, or the id is not mapped); the caller
    /// records the owner elsewhere.
    NotPermitted,
}

/// A directory beneath which all paths are resolved; see the module docs.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    kernel: bool,
}

/// The result of a userspace walk.
struct Walked {
    /// The final object (`O_PATH`).
    fd: OwnedFd,
    /// Canonical in-root components of the final object.
    names: Vec<String>,
    /// True when a `..` was clamped at the root.
    clamped: bool,
}

/// Splits an in-root path into its components, dropping empty ones and `.`.
pub(crate) fn components(path: &str) -> impl DoubleEndedIterator<Item = &str> + Clone {
    path.split('/').filter(|c| !c.is_empty() && *c != ".")
}

/// Splits `path` into its parent path and last name; `None` when there is no usable last name
/// (the root itself, or a path ending in `..`).
pub(crate) fn split_last(path: &str) -> Option<(String, &str)> {
    let mut comps: Vec<&str> = components(path).collect();
    let last = comps.pop()?;
    if last == ".." {
        return None;
    }
    Some((comps.join("/"), last))
}

fn errno_io(e: Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(e.raw_os_error())
}

impl Root {
    /// Opens the host directory `dir` as a root (`O_PATH | O_DIRECTORY | O_CLOEXEC`).
    pub fn open_host(dir: &Path) -> Result<Root> {
        let fd = rustix::fs::open(
            dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| FsError::io("open root directory", dir.display().to_string(), e))?;
        Ok(Root::from_fd(fd))
    }

    /// Wraps an already opened directory fd; probes whether `openat2` is usable.
    pub fn from_fd(fd: OwnedFd) -> Root {
        let kernel = rustix::fs::openat2(
            &fd,
            ".",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
        .is_ok();
        Root { fd, kernel }
    }

    /// Chooses the resolver; [`ResolveMode::Userspace`] forces the fallback walker.
    pub fn with_resolve_mode(mut self, mode: ResolveMode) -> Root {
        if mode == ResolveMode::Userspace {
            self.kernel = false;
        }
        self
    }

    /// True when paths are resolved by the kernel's `openat2`.
    pub fn uses_openat2(&self) -> bool {
        self.kernel
    }

    /// The root directory's fd.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Opens a second handle on the same root (same resolver).
    pub fn try_clone(&self) -> Result<Root> {
        let fd = self
            .fd
            .try_clone()
            .map_err(|e| FsError::io("duplicate root fd", "/", e))?;
        Ok(Root {
            fd,
            kernel: self.kernel,
        })
    }

    /// Opens `path` beneath the root, following symlinks inside it; `flags` get `O_CLOEXEC`.
    /// With `O_CREAT`, the last component is created with `mode` if missing (never through a
    /// dangling symlink: creation adds `O_NOFOLLOW`).
    pub fn open(&self, path: &str, flags: OFlags, mode: u32) -> Result<OwnedFd> {
        let flags = flags | OFlags::CLOEXEC;
        if flags.contains(OFlags::CREATE) {
            let (parent, name) = self.open_parent(path)?;
            return rustix::fs::openat(
                &parent,
                name.as_str(),
                flags | OFlags::NOFOLLOW,
                Mode::from_raw_mode(mode),
            )
            .map_err(|e| FsError::io("create", path, e));
        }
        if self.kernel {
            return self
                .openat2_retry(path, flags)
                .map_err(|e| FsError::io("open", path, e));
        }
        let walked = self.walk(path, true, false)?;
        if flags.contains(OFlags::PATH) && !flags.contains(OFlags::DIRECTORY) {
            return Ok(walked.fd);
        }
        // Reopen the O_PATH fd with the wanted flags; the object is already pinned.
        rustix::fs::openat(&walked.fd, ".", flags, Mode::empty())
            .or_else(|_| {
                let proc = format!(
                    "/proc/self/fd/{}",
                    std::os::fd::AsRawFd::as_raw_fd(&walked.fd)
                );
                rustix::fs::open(proc.as_str(), flags, Mode::empty())
            })
            .map_err(|e| FsError::io("open", path, e))
    }

    fn openat2_retry(&self, path: &str, flags: OFlags) -> std::result::Result<OwnedFd, Errno> {
        let p = if path.is_empty() { "." } else { path };
        let mut tries = 0;
        loop {
            match rustix::fs::openat2(
                &self.fd,
                p,
                flags,
                Mode::empty(),
                ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
            ) {
                Err(Errno::AGAIN) if tries < 16 => tries += 1,
                other => return other,
            }
        }
    }

    /// Opens the directory at `path` (`O_PATH | O_DIRECTORY`), following symlinks inside the root.
    pub fn open_dir(&self, path: &str) -> Result<OwnedFd> {
        if self.kernel {
            return self
                .openat2_retry(path, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC)
                .map_err(|e| FsError::io("open directory", path, e));
        }
        let walked = self.walk(path, true, false)?;
        let st = rustix::fs::fstat(&walked.fd).map_err(|e| FsError::io("stat", path, e))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
            return Err(FsError::io("open directory", path, errno_io(Errno::NOTDIR)));
        }
        Ok(walked.fd)
    }

    /// Opens the parent directory of `path` and returns it with the last name.
    pub fn open_parent(&self, path: &str) -> Result<(OwnedFd, String)> {
        let (parent, name) = split_last(path).ok_or_else(|| FsError::Invalid {
            message: format!(
                "path `{path}` names the root or ends in `..`; name a file beneath the root"
            ),
        })?;
        let fd = self.open_dir(&parent)?;
        Ok((fd, name.to_string()))
    }

    /// Like [`Root::open_parent`] but also reports whether resolving the parent clamped a `..`
    /// at the root (a path that would leave the root if resolved on the host).
    pub fn open_parent_checked(&self, path: &str) -> Result<(OwnedFd, String, bool)> {
        let (parent, name) = split_last(path).ok_or_else(|| FsError::Invalid {
            message: format!(
                "path `{path}` names the root or ends in `..`; name a file beneath the root"
            ),
        })?;
        let walked = self.walk(&parent, true, false)?;
        let st = rustix::fs::fstat(&walked.fd).map_err(|e| FsError::io("stat", &parent, e))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
            return Err(FsError::io(
                "open directory",
                parent,
                errno_io(Errno::NOTDIR),
            ));
        }
        Ok((walked.fd, name.to_string(), walked.clamped))
    }

    /// Creates (or truncates) the regular file at `path` with `mode` and opens it for writing.
    /// An existing symlink at `path` is not followed (the call fails with `ELOOP`).
    pub fn create_file(&self, path: &str, mode: u32) -> Result<File> {
        let fd = self.open(path, OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC, mode)?;
        Ok(File::from(fd))
    }

    /// Creates directory `path` and its missing parents with `mode`, owned by `uid:gid` when
    /// given (new directories only; ownership failures are ignored as non-root). Returns the
    /// directory's fd. Existing symlinks on the way are followed inside the root.
    pub fn mkdir_all(
        &self,
        path: &str,
        mode: u32,
        uid: Option<u32>,
        gid: Option<u32>,
    ) -> Result<OwnedFd> {
        let mut cur = self
            .fd
            .try_clone()
            .map_err(|e| FsError::io("duplicate root fd", "/", e))?;
        let mut done: Vec<&str> = Vec::new();
        for comp in components(path) {
            done.push(comp);
            let sofar = done.join("/");
            if comp == ".." {
                cur = self.open_dir(&sofar)?;
                continue;
            }
            match rustix::fs::mkdirat(&cur, comp, Mode::from_raw_mode(mode)) {
                Ok(()) => {
                    // mkdir applies the umask; set the exact mode.
                    let _ = rustix::fs::chmodat(
                        &cur,
                        comp,
                        Mode::from_raw_mode(mode),
                        AtFlags::empty(),
                    );
                    if uid.is_some() || gid.is_some() {
                        let _ = rustix::fs::chownat(
                            &cur,
                            comp,
                            uid.map(rustix::fs::Uid::from_raw),
                            gid.map(rustix::fs::Gid::from_raw),
                            AtFlags::SYMLINK_NOFOLLOW,
                        );
                    }
                }
                Err(Errno::EXIST) => {}
                Err(e) => return Err(FsError::io("mkdir", sofar, e)),
            }
            cur = self.open_dir(&sofar)?;
        }
        Ok(cur)
    }

    /// Creates a symlink at `path` whose text is `target` (kept verbatim, never resolved here).
    pub fn symlink(&self, target: &str, path: &str) -> Result<()> {
        let (parent, name) = self.open_parent(path)?;
        rustix::fs::symlinkat(target, &parent, name.as_str())
            .map_err(|e| FsError::io("symlink", path, e))
    }

    /// Creates a hard link at `new` to the existing object at `existing` (the last component of
    /// `existing` is not followed, like tar's hard links).
    pub fn hardlink(&self, existing: &str, new: &str) -> Result<()> {
        let (src_parent, src_name) = self.open_parent(existing)?;
        let (dst_parent, dst_name) = self.open_parent(new)?;
        rustix::fs::linkat(
            &src_parent,
            src_name.as_str(),
            &dst_parent,
            dst_name.as_str(),
            AtFlags::empty(),
        )
        .map_err(|e| FsError::io("hard link", new, e))
    }

    /// Creates a device node or fifo at `path`.
    pub fn mknod(&self, path: &str, kind: FileType, mode: u32, dev: Dev) -> Result<()> {
        let (parent, name) = self.open_parent(path)?;
        rustix::fs::mknodat(&parent, name.as_str(), kind, Mode::from_raw_mode(mode), dev)
            .map_err(|e| FsError::io("mknod", path, e))
    }

    /// Removes `path` and, for a directory, everything beneath it; a missing path is not an
    /// error. Symlinks are removed, never followed.
    pub fn remove_all(&self, path: &str) -> Result<()> {
        let (parent, name) = self.open_parent(path)?;
        remove_at(&parent, &name, path)
    }

    /// Removes everything inside directory `path` except names for which `keep` returns true.
    pub fn clear_dir(&self, path: &str, keep: &dyn Fn(&str) -> bool) -> Result<()> {
        let dir = self.open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW,
            0,
        )?;
        for name in list_dir(&dir, path)? {
            let child = join(path, &name);
            if !keep(&name) {
                remove_at(&dir, &name, &child)?;
            }
        }
        Ok(())
    }

    /// Renames `from` to `to` (both beneath the root; last components are not followed).
    pub fn rename(&self, from: &str, to: &str) -> Result<()> {
        let (fp, fname) = self.open_parent(from)?;
        let (tp, tname) = self.open_parent(to)?;
        rustix::fs::renameat(&fp, fname.as_str(), &tp, tname.as_str())
            .map_err(|e| FsError::io("rename", from, e))
    }

    /// `lstat` of `path` (the last component is not followed).
    pub fn lstat(&self, path: &str) -> Result<Stat> {
        match split_last(path) {
            None => {
                let fd = self.open_dir(path)?;
                rustix::fs::fstat(&fd).map_err(|e| FsError::io("stat", path, e))
            }
            Some(_) => {
                let (parent, name) = self.open_parent(path)?;
                rustix::fs::statat(&parent, name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| FsError::io("stat", path, e))
            }
        }
    }

    /// The text of the symlink at `path`.
    pub fn read_link(&self, path: &str) -> Result<String> {
        let (parent, name) = self.open_parent(path)?;
        let target = rustix::fs::readlinkat(&parent, name.as_str(), Vec::new())
            .map_err(|e| FsError::io("readlink", path, e))?;
        Ok(OsString::from_vec(target.into_bytes())
            .to_string_lossy()
            .into_owned())
    }

    /// Sets the owner of `path` without following a final symlink. `EPERM`/`EINVAL` (not root,
    /// unmapped id) yield [`OwnerOutcome::NotPermitted`] so the caller can record the owner.
    pub fn set_owner(&self, path: &str, uid: u32, gid: u32) -> Result<OwnerOutcome> {
        let (dir, name) = self.at(path)?;
        match rustix::fs::chownat(
            &dir,
            name.as_str(),
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
            AtFlags::SYMLINK_NOFOLLOW
                | if name.is_empty() {
                    AtFlags::EMPTY_PATH
                } else {
                    AtFlags::empty()
                },
        ) {
            Ok(()) => Ok(OwnerOutcome::Set),
            Err(Errno::PERM) | Err(Errno::INVAL) => Ok(OwnerOutcome::NotPermitted),
            Err(e) => Err(FsError::io("chown", path, e)),
        }
    }

    /// Sets the permission bits of `path` (symlinks are left alone: Linux has no symlink modes).
    pub fn set_mode(&self, path: &str, mode: u32) -> Result<()> {
        let st = self.lstat(path)?;
        if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
            return Ok(());
        }
        let (dir, name) = self.at(path)?;
        let name = if name.is_empty() { "." } else { name.as_str() };
        rustix::fs::chmodat(&dir, name, Mode::from_raw_mode(mode), AtFlags::empty())
            .map_err(|e| FsError::io("chmod", path, e))
    }

    /// Sets access and modification time of `path` to `sec.nsec` (final symlink not followed).
    pub fn set_times(&self, path: &str, sec: i64, nsec: u32) -> Result<()> {
        let (dir, name) = self.at(path)?;
        let ts = Timespec {
            tv_sec: sec,
            tv_nsec: nsec.min(999_999_999) as _,
        };
        let times = Timestamps {
            last_access: ts,
            last_modification: ts,
        };
        let name = if name.is_empty() { "." } else { name.as_str() };
        rustix::fs::utimensat(&dir, name, &times, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| FsError::io("set times of", path, e))
    }

    /// Sets extended attribute `name` on `path` (final symlink not followed).
    pub fn set_xattr(&self, path: &str, name: &str, value: &[u8]) -> Result<()> {
        let st = self.lstat(path)?;
        let ft = FileType::from_raw_mode(st.st_mode);
        if ft == FileType::RegularFile || ft == FileType::Directory {
            let fd = self.open(
                path,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK,
                0,
            )?;
            return rustix::fs::fsetxattr(&fd, name, value, XattrFlags::empty())
                .map_err(|e| FsError::io("set xattr on", path, e));
        }
        // Symlinks, devices and fifos cannot be opened safely for fsetxattr: address them by
        // name relative to the pinned parent directory through /proc/self/fd.
        let (parent, last) = self.open_parent(path)?;
        let proc = format!(
            "/proc/self/fd/{}/{}",
            std::os::fd::AsRawFd::as_raw_fd(&parent),
            last
        );
        rustix::fs::lsetxattr(proc.as_str(), name, value, XattrFlags::empty())
            .map_err(|e| FsError::io("set xattr on", path, e))
    }

    /// The canonical in-root path of `path` (`usr/lib/x`, no leading `/`; empty for the root),
    /// following every symlink inside the root and clamping `..` at it. Missing components are
    /// appended lexically.
    pub fn resolve(&self, path: &str) -> Result<String> {
        let walked = self.walk(path, true, true)?;
        Ok(walked.names.join("/"))
    }

    /// Directory fd and name for acting on `path` itself; the name is empty for the root.
    fn at(&self, path: &str) -> Result<(OwnedFd, String)> {
        match split_last(path) {
            Some(_) => self.open_parent(path),
            None => Ok((self.open_dir(path)?, String::new())),
        }
    }

    /// The userspace resolver. `follow_last` follows a final symlink; `lenient` appends missing
    /// components lexically instead of failing (then `fd` is the deepest existing directory).
    fn walk(&self, path: &str, follow_last: bool, lenient: bool) -> Result<Walked> {
        let root_dup = || {
            self.fd
                .try_clone()
                .map_err(|e| FsError::io("duplicate root fd", "/", e))
        };
        let mut pending: Vec<String> = components(path).rev().map(str::to_string).collect();
        let mut dirs: Vec<OwnedFd> = vec![root_dup()?];
        let mut names: Vec<String> = Vec::new();
        let mut clamped = false;
        let mut links = 0usize;
        while let Some(comp) = pending.pop() {
            if comp == ".." {
                if names.pop().is_some() {
                    dirs.pop();
                } else {
                    clamped = true;
                }
                continue;
            }
            let Some(cur) = dirs.last() else {
                return Err(FsError::io("resolve", path, errno_io(Errno::INVAL)));
            };
            let fd = match rustix::fs::openat(
                cur,
                comp.as_str(),
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(fd) => fd,
                Err(Errno::NOENT) if lenient => {
                    names.push(comp);
                    while let Some(rest) = pending.pop() {
                        if rest == ".." {
                            if names.pop().is_none() {
                                clamped = true;
                            }
                        } else {
                            names.push(rest);
                        }
                    }
                    let fd = dirs.pop().unwrap_or(root_dup()?);
                    return Ok(Walked { fd, names, clamped });
                }
                Err(e) => return Err(FsError::io("resolve", path, e)),
            };
            let st = rustix::fs::fstat(&fd).map_err(|e| FsError::io("stat", path, e))?;
            match FileType::from_raw_mode(st.st_mode) {
                FileType::Symlink if follow_last || !pending.is_empty() => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(FsError::io("resolve", path, errno_io(Errno::LOOP)));
                    }
                    let target = rustix::fs::readlinkat(&fd, "", Vec::new())
                        .map_err(|e| FsError::io("readlink", path, e))?;
                    let target = target.to_string_lossy().into_owned();
                    if target.starts_with('/') {
                        dirs.truncate(1);
                        names.clear();
                    }
                    pending.extend(components(&target).rev().map(str::to_string));
                }
                FileType::Directory => {
                    dirs.push(fd);
                    names.push(comp);
                }
                _ if pending.is_empty() => {
                    names.push(comp);
                    return Ok(Walked { fd, names, clamped });
                }
                _ => return Err(FsError::io("resolve", path, errno_io(Errno::NOTDIR))),
            }
        }
        let fd = match dirs.pop() {
            Some(fd) => fd,
            None => root_dup()?,
        };
        Ok(Walked { fd, names, clamped })
    }
}

/// Joins an in-root directory path and a name.
pub(crate) fn join(dir: &str, name: &str) -> String {
    let dir = dir.trim_matches('/');
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// Lists the names in an open directory (without `.` and `..`).
pub(crate) fn list_dir(dir: &OwnedFd, path: &str) -> Result<Vec<String>> {
    let mut reader =
        rustix::fs::Dir::read_from(dir).map_err(|e| FsError::io("read directory", path, e))?;
    let mut names = Vec::new();
    while let Some(ent) = reader.read() {
        let ent = ent.map_err(|e| FsError::io("read directory", path, e))?;
        let name = ent.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        names.push(String::from_utf8_lossy(name).into_owned());
    }
    Ok(names)
}

/// Removes `name` in `parent` recursively without following symlinks.
fn remove_at(parent: &OwnedFd, name: &str, display: &str) -> Result<()> {
    let st = match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(FsError::io("stat", display, e)),
    };
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        let dir = match rustix::fs::openat(
            parent,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(d) => d,
            Err(Errno::ACCESS) => {
                // A directory without read/exec permission for us (0000 as non-root): open it up.
                rustix::fs::chmodat(parent, name, Mode::from_raw_mode(0o700), AtFlags::empty())
                    .map_err(|e| FsError::io("chmod", display, e))?;
                rustix::fs::openat(
                    parent,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| FsError::io("open directory", display, e))?
            }
            Err(e) => return Err(FsError::io("open directory", display, e)),
        };
        for child in list_dir(&dir, display)? {
            let shown = join(display, &child);
            match remove_at(&dir, &child, &shown) {
                Err(e) if e.raw_os_error() == Some(libc::EACCES) => {
                    let _ = rustix::fs::fchmod(&dir, Mode::from_raw_mode(0o700));
                    remove_at(&dir, &child, &shown)?;
                }
                other => other?,
            }
        }
        match rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(FsError::io("remove directory", display, e)),
        }
    } else {
        match rustix::fs::unlinkat(parent, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(FsError::io("remove", display, e)),
        }
    }
}
