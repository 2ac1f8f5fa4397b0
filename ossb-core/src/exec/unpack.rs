//! Streaming, confined unpacking of an OCI layer (tar, gzip or zstd) into a rootfs [`Root`].
//!
//! Every entry is applied relative to an fd of its parent directory, resolved beneath the root.
//! Entries whose names contain `..` or start with `/`, whose parent is reached through a symlink
//! that climbs above the root, and hard links to such names are refused with
//! [`FsError::Escape`]. Whiteouts (`.wh.name`) remove lower paths; opaque markers
//! (`.wh..wh..opq`) clear a directory's lower contents (entries of the same layer are kept).
//! Owners, device nodes and xattrs that the process may not apply are returned in the
//! [`UnpackReport`] for the layer writer. Directory modes and times are applied last.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;
use tar::EntryType;

use super::compress::decompress;
use super::error::{FsError, Result};
use super::fsroot::{Root, join};
use super::tarpath::clean_tar_path;
use crate::image::entry::EntryKind;

/// Whiteout prefix of the OCI layer format.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// Opaque-directory marker of the OCI layer format.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// What an unpack did and what it could not apply on this filesystem as this user.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UnpackReport {
    /// Number of tar entries applied (including whiteouts).
    pub entries: u64,
    /// Owners that could not be set (path -> `(uid, gid)`), to be written by the layer writer.
    pub owners: HashMap<String, (u32, u32)>,
    /// Device nodes that could not be created (path -> kind and permission bits).
    pub devices: HashMap<String, (EntryKind, u32)>,
    /// Extended attributes that could not be set (path -> name -> value).
    pub xattrs: HashMap<String, BTreeMap<String, Vec<u8>>>,
}

/// Metadata of one tar entry, with PAX overrides applied.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    mtime_nsec: u32,
    xattrs: BTreeMap<String, Vec<u8>>,
}

/// Applies one layer tar stream (plain, gzip or zstd, detected by magic) to `root`.
pub fn unpack_layer<R: Read>(root: &Root, reader: R) -> Result<UnpackReport> {
    let (_, stream) = decompress(reader).map_err(|e| FsError::io("read layer", "<stream>", e))?;
    let mut archive = tar::Archive::new(stream);
    let mut state = Unpacker {
        root,
        report: UnpackReport::default(),
        written: HashSet::new(),
        dirs: Vec::new(),
        cache: None,
    };
    let entries = archive
        .entries()
        .map_err(|e| FsError::io("read layer", "<stream>", e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| FsError::io("read layer entry", "<stream>", e))?;
        let raw = entry.path_bytes().into_owned();
        state.apply(&mut entry, &raw)?;
        state.report.entries += 1;
    }
    state.finish()?;
    Ok(state.report)
}

struct Unpacker<'r> {
    root: &'r Root,
    report: UnpackReport,
    /// Paths written by this layer (kept by opaque markers).
    written: HashSet<String>,
    /// Directories whose mode and times are applied at the end.
    dirs: Vec<(String, u32, i64, u32)>,
    /// The last parent directory opened.
    cache: Option<(String, OwnedFd)>,
}

fn entry_err(entry: &str, message: impl Into<String>) -> FsError {
    FsError::Entry {
        entry: entry.to_string(),
        message: message.into(),
    }
}

fn meta_of<R: Read>(entry: &mut tar::Entry<'_, R>, name: &str) -> Result<Meta> {
    let h = entry.header();
    let bad = |what: &str| {
        entry_err(
            name,
            format!("bad {what} field in the tar header; rebuild the layer"),
        )
    };
    let mut meta = Meta {
        mode: h.mode().map_err(|_| bad("mode"))? & 0o7777,
        uid: h.uid().map_err(|_| bad("uid"))? as u32,
        gid: h.gid().map_err(|_| bad("gid"))? as u32,
        mtime: h.mtime().map_err(|_| bad("mtime"))? as i64,
        mtime_nsec: 0,
        xattrs: BTreeMap::new(),
    };
    if let Some(exts) = entry
        .pax_extensions()
        .map_err(|e| FsError::io("read pax header of", name, e))?
    {
        for ext in exts {
            let ext = ext.map_err(|e| FsError::io("read pax header of", name, e))?;
            let Ok(key) = ext.key() else { continue };
            let value = ext.value_bytes();
            let text = std::str::from_utf8(value).unwrap_or("");
            if let Some(x) = key.strip_prefix("SCHILY.xattr.") {
                meta.xattrs.insert(x.to_string(), value.to_vec());
            } else if key == "uid" {
                meta.uid = text.parse().map_err(|_| bad("pax uid"))?;
            } else if key == "gid" {
                meta.gid = text.parse().map_err(|_| bad("pax gid"))?;
            } else if key == "mtime" {
                let (s, frac) = text.split_once('.').unwrap_or((text, ""));
                meta.mtime = s.parse().map_err(|_| bad("pax mtime"))?;
                let digits: String = frac.chars().take(9).collect();
                if !digits.is_empty() {
                    let n: u32 = digits.parse().map_err(|_| bad("pax mtime"))?;
                    meta.mtime_nsec = n * 10u32.pow(9 - digits.len() as u32);
                }
            }
        }
    }
    Ok(meta)
}

impl Unpacker<'_> {
    /// The parent directory of `path`, created if missing, refusing symlink climbs.
    fn parent(&mut self, path: &str) -> Result<(OwnedFd, String)> {
        let (parent, name) = match path.rsplit_once('/') {
            Some((p, n)) => (p.to_string(), n.to_string()),
            None => (String::new(), path.to_string()),
        };
        if let Some((cached, fd)) = &self.cache
            && *cached == parent
        {
            let fd = fd
                .try_clone()
                .map_err(|e| FsError::io("duplicate fd of", &parent, e))?;
            return Ok((fd, name));
        }
        let fd = match self.root.open_parent_checked(path) {
            Ok((fd, _, false)) => fd,
            Ok((_, _, true)) => {
                return Err(FsError::Escape {
                    path: path.to_string(),
                    reason: "its parent directory is reached through a symlink that climbs above the root".into(),
                });
            }
            Err(e) if e.is_not_found() => {
                self.root.mkdir_all(&parent, 0o755, None, None)?;
                match self.root.open_parent_checked(path)? {
                    (fd, _, false) => fd,
                    (_, _, true) => {
                        return Err(FsError::Escape {
                            path: path.to_string(),
                            reason: "its parent directory is reached through a symlink that climbs above the root".into(),
                        });
                    }
                }
            }
            Err(e) => return Err(e),
        };
        let keep = fd
            .try_clone()
            .map_err(|e| FsError::io("duplicate fd of", &parent, e))?;
        self.cache = Some((parent, keep));
        Ok((fd, name))
    }

    fn apply<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>, raw: &[u8]) -> Result<()> {
        let Some(path) = clean_tar_path(raw)? else {
            return Ok(()); // the root entry: the rootfs directory itself is not changed
        };
        let base = path.rsplit('/').next().unwrap_or(&path).to_string();
        let dir = path
            .rsplit_once('/')
            .map(|(d, _)| d.to_string())
            .unwrap_or_default();
        if base == OPAQUE_MARKER {
            self.root.mkdir_all(&dir, 0o755, None, None)?;
            self.parent(&path)?; // refuses symlink climbs
            let written = &self.written;
            self.root
                .clear_dir(&dir, &|name| written.contains(&join(&dir, name)))?;
            self.cache = None;
            return Ok(());
        }
        if let Some(target) = base.strip_prefix(WHITEOUT_PREFIX) {
            if target.is_empty() || target == "." || target == ".." {
                return Err(entry_err(
                    &path,
                    "whiteout of an invalid name; rebuild the layer",
                ));
            }
            let (parent, _) = self.parent(&path)?;
            remove_name(self.root, &parent, target, &join(&dir, target))?;
            self.cache = None;
            return Ok(());
        }
        let meta = meta_of(entry, &path)?;
        let etype = entry.header().entry_type();
        let (parent, name) = self.parent(&path)?;
        let existing = rustix::fs::statat(&parent, name.as_str(), AtFlags::SYMLINK_NOFOLLOW).ok();
        let existing_dir =
            existing.is_some_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory);
        if existing.is_some() && !(etype == EntryType::Directory && existing_dir) {
            remove_name(self.root, &parent, &name, &path)?;
            if existing_dir {
                self.cache = None;
            }
        }
        self.written.insert(path.clone());
        match etype {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let fd = rustix::fs::openat(
                    &parent,
                    name.as_str(),
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|e| FsError::io("create", &path, e))?;
                let mut file = File::from(fd);
                io::copy(entry, &mut file).map_err(|e| FsError::io("write", &path, e))?;
                self.owner_fd(&file, &path, &meta)?;
                rustix::fs::fchmod(&file, Mode::from_raw_mode(meta.mode))
                    .map_err(|e| FsError::io("chmod", &path, e))?;
                self.xattrs_fd(&file, &path, &meta);
                rustix::fs::futimens(&file, &times(meta.mtime, meta.mtime_nsec))
                    .map_err(|e| FsError::io("set times of", &path, e))?;
            }
            EntryType::Directory => {
                if !existing_dir {
                    rustix::fs::mkdirat(&parent, name.as_str(), Mode::from_raw_mode(0o700))
                        .map_err(|e| FsError::io("mkdir", &path, e))?;
                }
                // Keep the directory writable for its contents; the real mode comes last.
                rustix::fs::chmodat(
                    &parent,
                    name.as_str(),
                    Mode::from_raw_mode(meta.mode | 0o700),
                    AtFlags::empty(),
                )
                .map_err(|e| FsError::io("chmod", &path, e))?;
                self.owner_at(&parent, &name, &path, &meta)?;
                if !meta.xattrs.is_empty() {
                    let fd = rustix::fs::openat(
                        &parent,
                        name.as_str(),
                        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(|e| FsError::io("open directory", &path, e))?;
                    self.xattrs_fd(&fd, &path, &meta);
                }
                self.dirs
                    .push((path, meta.mode, meta.mtime, meta.mtime_nsec));
            }
            EntryType::Symlink => {
                let target = entry.link_name_bytes().ok_or_else(|| {
                    entry_err(&path, "symlink without a target; rebuild the layer")
                })?;
                let target = std::str::from_utf8(&target)
                    .map_err(|_| entry_err(&path, "symlink target is not UTF-8; fix the link"))?
                    .to_string();
                rustix::fs::symlinkat(target.as_str(), &parent, name.as_str())
                    .map_err(|e| FsError::io("symlink", &path, e))?;
                self.owner_at(&parent, &name, &path, &meta)?;
                self.record_xattrs(&path, &meta);
                rustix::fs::utimensat(
                    &parent,
                    name.as_str(),
                    &times(meta.mtime, meta.mtime_nsec),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(|e| FsError::io("set times of", &path, e))?;
                self.cache = None;
            }
            EntryType::Link => {
                let raw_target = entry.link_name_bytes().ok_or_else(|| {
                    entry_err(&path, "hard link without a target; rebuild the layer")
                })?;
                let target = clean_tar_path(&raw_target)?.ok_or_else(|| {
                    entry_err(&path, "hard link to the root directory; rebuild the layer")
                })?;
                let (tparent, tname) = self.parent(&target)?;
                rustix::fs::linkat(
                    &tparent,
                    tname.as_str(),
                    &parent,
                    name.as_str(),
                    AtFlags::empty(),
                )
                .map_err(|e| FsError::io("hard link", format!("{path} -> {target}"), e))?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let major = entry.header().device_major().ok().flatten().unwrap_or(0);
                let minor = entry.header().device_minor().ok().flatten().unwrap_or(0);
                let (ft, kind) = match etype {
                    EntryType::Char => (
                        FileType::CharacterDevice,
                        EntryKind::CharDevice { major, minor },
                    ),
                    EntryType::Block => (
                        FileType::BlockDevice,
                        EntryKind::BlockDevice { major, minor },
                    ),
                    _ => (FileType::Fifo, EntryKind::Fifo),
                };
                match rustix::fs::mknodat(
                    &parent,
                    name.as_str(),
                    ft,
                    Mode::from_raw_mode(meta.mode),
                    rustix::fs::makedev(major, minor),
                ) {
                    Ok(()) => {
                        let _ = rustix::fs::chmodat(
                            &parent,
                            name.as_str(),
                            Mode::from_raw_mode(meta.mode),
                            AtFlags::empty(),
                        );
                        self.owner_at(&parent, &name, &path, &meta)?;
                        self.record_xattrs(&path, &meta);
                        rustix::fs::utimensat(
                            &parent,
                            name.as_str(),
                            &times(meta.mtime, meta.mtime_nsec),
                            AtFlags::SYMLINK_NOFOLLOW,
                        )
                        .map_err(|e| FsError::io("set times of", &path, e))?;
                    }
                    Err(Errno::PERM) | Err(Errno::ACCESS) => {
                        self.written.remove(&path);
                        self.report.devices.insert(path.clone(), (kind, meta.mode));
                        self.report.owners.insert(path, (meta.uid, meta.gid));
                    }
                    Err(e) => return Err(FsError::io("mknod", &path, e)),
                }
            }
            other => {
                tracing::warn!(entry = %path, kind = ?other, "skipping tar entry of an unsupported type");
                self.written.remove(&path);
            }
        }
        Ok(())
    }

    fn owner_at(&mut self, parent: &OwnedFd, name: &str, path: &str, meta: &Meta) -> Result<()> {
        let res = rustix::fs::chownat(
            parent,
            name,
            Some(rustix::fs::Uid::from_raw(meta.uid)),
            Some(rustix::fs::Gid::from_raw(meta.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        );
        match res {
            Ok(()) | Err(Errno::PERM) | Err(Errno::INVAL) => {
                if res.is_err() {
                    self.report
                        .owners
                        .insert(path.to_string(), (meta.uid, meta.gid));
                }
                if res.is_err() || !is_root() {
                    // Directories carry the ownership record like files (see `record_owner`).
                    if let Ok(fd) = rustix::fs::openat(
                        parent,
                        name,
                        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    ) {
                        record_owner(&fd, meta, true);
                    }
                }
                Ok(())
            }
            Err(e) => Err(FsError::io("chown", path, e)),
        }
    }

    fn owner_fd(&mut self, fd: &File, path: &str, meta: &Meta) -> Result<()> {
        let res = rustix::fs::fchown(
            fd,
            Some(rustix::fs::Uid::from_raw(meta.uid)),
            Some(rustix::fs::Gid::from_raw(meta.gid)),
        );
        match res {
            Ok(()) | Err(Errno::PERM) | Err(Errno::INVAL) => {
                if res.is_err() {
                    self.report
                        .owners
                        .insert(path.to_string(), (meta.uid, meta.gid));
                }
                if res.is_err() || !is_root() {
                    record_owner(fd, meta, false);
                }
                Ok(())
            }
            Err(e) => Err(FsError::io("chown", path, e)),
        }
    }

    fn xattrs_fd(&mut self, fd: &impl std::os::fd::AsFd, path: &str, meta: &Meta) {
        for (k, v) in &meta.xattrs {
            if rustix::fs::fsetxattr(fd, k.as_str(), v, XattrFlags::empty()).is_err() {
                self.report
                    .xattrs
                    .entry(path.to_string())
                    .or_default()
                    .insert(k.clone(), v.clone());
            }
        }
    }

    fn record_xattrs(&mut self, path: &str, meta: &Meta) {
        for (k, v) in &meta.xattrs {
            self.report
                .xattrs
                .entry(path.to_string())
                .or_default()
                .insert(k.clone(), v.clone());
        }
    }

    fn finish(&mut self) -> Result<()> {
        self.cache = None;
        let mut dirs = std::mem::take(&mut self.dirs);
        dirs.sort_by_key(|(p, ..)| std::cmp::Reverse(p.matches('/').count()));
        for (path, mode, mtime, nsec) in dirs {
            self.root.set_mode(&path, mode)?;
            self.root.set_times(&path, mtime, nsec)?;
        }
        Ok(())
    }
}

/// Whether this process is root (its chowns are exact; no ownership record is needed).
fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Records an owner that could not be applied (or, as non-root, that was applied to the
/// caller's own id, which every rootless sandbox maps to root) in the `user.rootlesscontainers` xattr, so RUN
/// steps under ownership emulation see it (`stat`) and the snapshot diff stores it. Root
/// owners need no record: a single-id sandbox maps the caller, who owns the file, to root.
/// Best effort: filesystems without user xattrs keep only the report entry. `existing`: the
/// node may carry a record of an earlier layer (directories), which a root owner removes.
fn record_owner(fd: &impl std::os::fd::AsFd, meta: &Meta, existing: bool) {
    if (meta.uid, meta.gid) == (0, 0) {
        if existing {
            let _ = rustix::fs::fremovexattr(fd, crate::exec::sandbox::ROOTLESS_XATTR);
        }
        return;
    }
    let value = crate::exec::sandbox::encode_owner(meta.uid, meta.gid);
    let _ = rustix::fs::fsetxattr(
        fd,
        crate::exec::sandbox::ROOTLESS_XATTR,
        &value,
        XattrFlags::empty(),
    );
}

fn times(sec: i64, nsec: u32) -> Timestamps {
    let ts = Timespec {
        tv_sec: sec,
        tv_nsec: nsec.min(999_999_999) as _,
    };
    Timestamps {
        last_access: ts,
        last_modification: ts,
    }
}

/// Removes `name` in `parent` (recursively for a directory).
fn remove_name(root: &Root, parent: &OwnedFd, name: &str, path: &str) -> Result<()> {
    match rustix::fs::unlinkat(parent, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(Errno::ISDIR) | Err(Errno::PERM) => root.remove_all(path),
        Err(e) => Err(FsError::io("remove", path, e)),
    }
}
