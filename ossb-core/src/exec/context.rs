//! One-pass scan of a build context (or any directory tree) into sorted [`ContextFile`]s.
//!
//! The walk never follows symlinks: every name is `fstatat(dirfd, name, AT_SYMLINK_NOFOLLOW)`ed
//! relative to an fd of its directory and subdirectories are opened with `O_NOFOLLOW`, so a
//! symlink stays a symlink (its text recorded) and can never lead the walk outside.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use super::error::{FsError, Result};
use super::fsroot::join;

/// An exclusion predicate: `(relative path, is a directory) -> excluded`.
pub type ExcludeFn<'a> = &'a dyn Fn(&str, bool) -> bool;

/// The type of a scanned file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (see [`ContextFile::link_target`]).
    Symlink,
    /// A named pipe.
    Fifo,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A socket (never copied).
    Socket,
}

/// Metadata of one scanned path, captured once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextFile {
    /// Path relative to the scanned directory, `/`-separated, no leading `/`.
    pub rel_path: String,
    /// The file type.
    pub kind: ContextKind,
    /// Permission bits including setuid, setgid and sticky.
    pub mode: u32,
    /// Size in bytes (regular files; 0 otherwise).
    pub size: u64,
    /// Modification time, seconds.
    pub mtime: i64,
    /// Modification time, nanoseconds part.
    pub mtime_nsec: u32,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// The text of a symlink.
    pub link_target: Option<String>,
    /// Device of the inode (with `ino`, detects hard links).
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Number of hard links.
    pub nlink: u64,
    /// Device number of a device node.
    pub rdev: u64,
}

/// A scanned tree: the host directory it came from and its files sorted by `rel_path` (bytes).
#[derive(Debug, Clone)]
pub struct ContextScan {
    /// The host directory that was scanned (sources are read from beneath it).
    pub base: PathBuf,
    /// The root directory's own metadata (`rel_path` empty).
    pub root: ContextFile,
    /// Every non-excluded path beneath the root, sorted by `rel_path`.
    pub files: Vec<ContextFile>,
}

impl ContextScan {
    /// The file at `rel` (empty or `.` for the root directory).
    pub fn get(&self, rel: &str) -> Option<&ContextFile> {
        if rel.is_empty() || rel == "." {
            return Some(&self.root);
        }
        self.files
            .binary_search_by(|f| f.rel_path.as_str().cmp(rel))
            .ok()
            .map(|i| &self.files[i])
    }

    /// Every path strictly beneath directory `rel`, sorted.
    pub fn subtree(&self, rel: &str) -> &[ContextFile] {
        if rel.is_empty() || rel == "." {
            return &self.files;
        }
        let prefix = format!("{rel}/");
        let start = self
            .files
            .partition_point(|f| f.rel_path.as_str() < prefix.as_str());
        let len = self.files[start..]
            .iter()
            .take_while(|f| f.rel_path.starts_with(&prefix))
            .count();
        &self.files[start..start + len]
    }

    /// The host path of `rel`, for [`crate::image::entry::Source::Path`].
    pub fn host_path(&self, rel: &str) -> PathBuf {
        if rel.is_empty() {
            self.base.clone()
        } else {
            self.base.join(rel)
        }
    }
}

// The stat field types differ between architectures; the casts are needed off x86_64.
#[allow(clippy::unnecessary_cast)]
fn file_of(rel: String, st: &rustix::fs::Stat, link_target: Option<String>) -> ContextFile {
    let kind = match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => ContextKind::Dir,
        FileType::Symlink => ContextKind::Symlink,
        FileType::Fifo => ContextKind::Fifo,
        FileType::CharacterDevice => ContextKind::CharDevice,
        FileType::BlockDevice => ContextKind::BlockDevice,
        FileType::Socket => ContextKind::Socket,
        _ => ContextKind::File,
    };
    ContextFile {
        rel_path: rel,
        kind,
        mode: st.st_mode & 0o7777,
        size: if kind == ContextKind::File {
            st.st_size as u64
        } else {
            0
        },
        mtime: st.st_mtime as i64,
        mtime_nsec: st.st_mtime_nsec as u32,
        uid: st.st_uid,
        gid: st.st_gid,
        link_target,
        dev: st.st_dev as u64,
        ino: st.st_ino as u64,
        nlink: st.st_nlink as u64,
        rdev: st.st_rdev as u64,
    }
}

/// Scans `dir` once. `exclude(rel_path, is_dir)` drops a path; an excluded directory is not
/// descended into (the predicate must return `false` for a directory when some of its contents
/// may be re-included, as `.dockerignore` `!` patterns can).
pub fn scan_context(dir: &Path, exclude: ExcludeFn<'_>) -> Result<ContextScan> {
    let open_dir = |at: Option<&OwnedFd>, name: &str, shown: &str| -> Result<OwnedFd> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match at {
            Some(at) => rustix::fs::openat(at, name, flags, Mode::empty()),
            None => rustix::fs::open(dir, flags, Mode::empty()),
        }
        .map_err(|e| FsError::io("open directory", shown, e))
    };
    let top = open_dir(None, "", &dir.display().to_string())?;
    let st =
        rustix::fs::fstat(&top).map_err(|e| FsError::io("stat", dir.display().to_string(), e))?;
    let root = file_of(String::new(), &st, None);
    let mut files = Vec::new();
    let mut stack: Vec<(OwnedFd, String)> = vec![(top, String::new())];
    while let Some((fd, rel)) = stack.pop() {
        let mut reader =
            rustix::fs::Dir::read_from(&fd).map_err(|e| FsError::io("read directory", &rel, e))?;
        while let Some(ent) = reader.read() {
            let ent = ent.map_err(|e| FsError::io("read directory", &rel, e))?;
            let raw = ent.file_name().to_bytes();
            if raw == b"." || raw == b".." {
                continue;
            }
            let name = std::str::from_utf8(raw).map_err(|_| FsError::Invalid {
                message: format!(
                    "file name `{}` in `{rel}` is not UTF-8; rename it or exclude it in .dockerignore",
                    String::from_utf8_lossy(raw)
                ),
            })?;
            let child = join(&rel, name);
            let st = rustix::fs::statat(&fd, name, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| FsError::io("stat", &child, e))?;
            let ft = FileType::from_raw_mode(st.st_mode);
            let is_dir = ft == FileType::Directory;
            if exclude(&child, is_dir) {
                continue;
            }
            let link = if ft == FileType::Symlink {
                let t = rustix::fs::readlinkat(&fd, name, Vec::new())
                    .map_err(|e| FsError::io("readlink", &child, e))?;
                Some(t.to_string_lossy().into_owned())
            } else {
                None
            };
            if is_dir {
                let sub = open_dir(Some(&fd), name, &child)?;
                stack.push((sub, child.clone()));
            }
            files.push(file_of(child, &st, link));
        }
    }
    files.sort_unstable_by(|a, b| a.rel_path.cmp(&b.rel_path));
    Ok(ContextScan {
        base: dir.to_path_buf(),
        root,
        files,
    })
}
