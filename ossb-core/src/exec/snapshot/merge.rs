//! Folding an overlay upper dir into the lower dir: renames for new and changed paths,
//! whiteouts delete, opaque dirs replace. Runs after the step's processes are gone, on dirs
//! only this process touches; symlinks are never followed (every level is `lstat`ed).
//!
//! What the merge deletes or replaces is first renamed into a trash dir (same filesystem, one
//! `rename` each) and removed afterwards with the whole trash in one parallel pass
//! ([`crate::exec::remove`]): on a disk that waits for a discard per freed file, deleting
//! in place one path at a time was most of a RUN step's own cost.

use super::meta::{fmt, merge_private, read_xattrs, sorted_names};
use super::overlay::{is_opaque, is_whiteout};
use super::{SnapshotError, io_err};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn lstat(p: &Path) -> Option<rustix::fs::Stat> {
    rustix::fs::lstat(p).ok()
}

fn errno(p: &Path) -> impl FnOnce(rustix::io::Errno) -> SnapshotError + '_ {
    move |e| io_err(p)(e.into())
}

/// Merges `upper` into `lower` (both dirs). Replaced and deleted lower paths are moved into
/// `trash` (created on first use, same filesystem as `lower`); the caller removes it.
pub(crate) fn merge_upper(upper: &Path, lower: &Path, trash: &Path) -> Result<(), SnapshotError> {
    let mut trash = Trash {
        dir: trash,
        made: false,
        next: 0,
    };
    merge_dir(upper, lower, &mut trash)?;
    if let Some(st) = lstat(upper) {
        apply_dir_meta(upper, &st, lower)?;
    }
    Ok(())
}

/// Where the merge puts what it deletes.
struct Trash<'a> {
    dir: &'a Path,
    made: bool,
    next: u64,
}

impl Trash<'_> {
    /// Moves `path` into the trash; removes it in place when it cannot be moved (an
    /// unprivileged user cannot move a directory it may not write into another parent).
    fn discard(&mut self, path: &Path) -> Result<(), SnapshotError> {
        if !self.made {
            std::fs::create_dir_all(self.dir).map_err(io_err(self.dir))?;
            self.made = true;
        }
        let dest = self.dir.join(self.next.to_string());
        self.next += 1;
        if std::fs::rename(path, &dest).is_ok() {
            return Ok(());
        }
        remove_any(path)
    }
}

fn merge_dir(upper: &Path, lower: &Path, trash: &mut Trash<'_>) -> Result<(), SnapshotError> {
    let restore = make_writable(lower)?;
    for name in sorted_names(upper)? {
        let u = upper.join(&name);
        let l = lower.join(&name);
        let st = rustix::fs::lstat(&u).map_err(errno(&u))?;
        let lower_st = lstat(&l);
        if is_whiteout(&u, &st) {
            if lower_st.is_some() {
                trash.discard(&l)?;
            }
            continue;
        }
        let lower_is_dir = lower_st.is_some_and(|s| fmt(&s) == libc::S_IFDIR);
        if fmt(&st) == libc::S_IFDIR && lower_is_dir && !is_opaque(&u) {
            merge_dir(&u, &l, trash)?;
            apply_dir_meta(&u, &st, &l)?;
            continue;
        }
        // A replaced file is moved away too: renaming over it would free its blocks here.
        if lower_st.is_some() {
            trash.discard(&l)?;
        }
        std::fs::rename(&u, &l).map_err(io_err(&l))?;
        clean_tree(&l)?;
    }
    if let Some(mode) = restore {
        std::fs::set_permissions(lower, std::fs::Permissions::from_mode(mode))
            .map_err(io_err(lower))?;
    }
    Ok(())
}

/// Lets the owner write into `dir` for the merge (an unprivileged user has no
/// CAP_DAC_OVERRIDE); returns the mode to restore.
fn make_writable(dir: &Path) -> Result<Option<u32>, SnapshotError> {
    let st = rustix::fs::lstat(dir).map_err(errno(dir))?;
    if rustix::process::geteuid().is_root() || st.st_mode & 0o300 == 0o300 {
        return Ok(None);
    }
    std::fs::set_permissions(
        dir,
        std::fs::Permissions::from_mode((st.st_mode & 0o7777) | 0o700),
    )
    .map_err(io_err(dir))?;
    Ok(Some(st.st_mode & 0o7777))
}

/// Copies mode, owner, xattrs and times of an upper dir onto the lower dir.
fn apply_dir_meta(upper: &Path, st: &rustix::fs::Stat, lower: &Path) -> Result<(), SnapshotError> {
    let lst = rustix::fs::lstat(lower).map_err(errno(lower))?;
    if (lst.st_uid, lst.st_gid) != (st.st_uid, st.st_gid) {
        rustix::fs::chownat(
            rustix::fs::CWD,
            lower,
            Some(rustix::fs::Uid::from_raw(st.st_uid)),
            Some(rustix::fs::Gid::from_raw(st.st_gid)),
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(errno(lower))?;
    }
    if lst.st_mode & 0o7777 != st.st_mode & 0o7777 {
        std::fs::set_permissions(lower, std::fs::Permissions::from_mode(st.st_mode & 0o7777))
            .map_err(io_err(lower))?;
    }
    let want: std::collections::BTreeMap<_, _> = read_xattrs(upper)
        .into_iter()
        .filter(|(k, _)| !merge_private(k))
        .collect();
    let have = read_xattrs(lower);
    for k in have
        .keys()
        .filter(|k| !want.contains_key(*k) && !merge_private(k))
    {
        let _ = rustix::fs::lremovexattr(lower, k.as_str());
    }
    for (k, v) in want.iter().filter(|(k, v)| have.get(*k) != Some(v)) {
        rustix::fs::lsetxattr(lower, k.as_str(), v, rustix::fs::XattrFlags::empty())
            .map_err(errno(lower))?;
    }
    set_times(lower, st)
}

fn set_times(path: &Path, st: &rustix::fs::Stat) -> Result<(), SnapshotError> {
    let times = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: st.st_atime,
            tv_nsec: st.st_atime_nsec as _,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: st.st_mtime,
            tv_nsec: st.st_mtime_nsec as _,
        },
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &times,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(errno(path))
}

/// Removes overlay xattrs and stray whiteouts from a subtree moved into the lower dir.
fn clean_tree(path: &Path) -> Result<(), SnapshotError> {
    let st = rustix::fs::lstat(path).map_err(errno(path))?;
    let f = fmt(&st);
    if f == libc::S_IFREG || f == libc::S_IFDIR {
        let names: Vec<String> = read_xattrs(path)
            .into_keys()
            .filter(|k| k.contains(".overlay."))
            .collect();
        if !names.is_empty() {
            for k in names {
                let _ = rustix::fs::lremovexattr(path, k.as_str());
            }
            set_times(path, &st)?;
        }
    }
    if f == libc::S_IFDIR {
        let mut changed = false;
        for name in sorted_names(path)? {
            let c = path.join(&name);
            let cst = rustix::fs::lstat(&c).map_err(errno(&c))?;
            if is_whiteout(&c, &cst) {
                std::fs::remove_file(&c).map_err(io_err(&c))?;
                changed = true;
            } else {
                clean_tree(&c)?;
            }
        }
        if changed {
            set_times(path, &st)?;
        }
    }
    Ok(())
}

fn remove_any(path: &Path) -> Result<(), SnapshotError> {
    let st = rustix::fs::lstat(path).map_err(errno(path))?;
    if fmt(&st) == libc::S_IFDIR {
        remove_tree(path)
    } else {
        std::fs::remove_file(path).map_err(io_err(path))
    }
}

/// Removes a directory tree, making read-only dirs (such as overlay's `work/work`, mode 0)
/// writable first; never follows symlinks. Many deletions are in flight at once
/// ([`crate::exec::remove`]); a failure there is retried one entry at a time.
pub(crate) fn remove_tree(path: &Path) -> Result<(), SnapshotError> {
    if lstat(path).is_none() {
        return Ok(());
    }
    if crate::exec::remove::remove_tree(path).is_ok() {
        return Ok(());
    }
    fn fix(p: &Path) {
        if lstat(p).is_some_and(|st| fmt(&st) == libc::S_IFDIR) {
            let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700));
            if let Ok(rd) = std::fs::read_dir(p) {
                for e in rd.flatten() {
                    fix(&e.path());
                }
            }
        }
    }
    fix(path);
    std::fs::remove_dir_all(path).map_err(io_err(path))
}
