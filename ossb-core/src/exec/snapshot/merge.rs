//! Folding an overlay upper dir into the lower dir: renames for new and changed paths,
//! whiteouts delete, opaque dirs replace. Runs after the step's processes are gone, on dirs
//! only this process touches; symlinks are never followed (every level is `lstat`ed).

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

/// Merges `upper` into `lower` (both dirs).
pub(crate) fn merge_upper(upper: &Path, lower: &Path) -> Result<(), SnapshotError> {
    merge_dir(upper, lower)?;
    if let Some(st) = lstat(upper) {
        apply_dir_meta(upper, &st, lower)?;
    }
    Ok(())
}

fn merge_dir(upper: &Path, lower: &Path) -> Result<(), SnapshotError> {
    let restore = make_writable(lower)?;
    for name in sorted_names(upper)? {
        let u = upper.join(&name);
        let l = lower.join(&name);
        let st = rustix::fs::lstat(&u).map_err(errno(&u))?;
        if is_whiteout(&u, &st) {
            if lstat(&l).is_some() {
                remove_any(&l)?;
            }
            continue;
        }
        let lower_is_dir = lstat(&l).is_some_and(|s| fmt(&s) == libc::S_IFDIR);
        if fmt(&st) == libc::S_IFDIR && lower_is_dir && !is_opaque(&u) {
            merge_dir(&u, &l)?;
            apply_dir_meta(&u, &st, &l)?;
            continue;
        }
        if lstat(&l).is_some_and(|s| fmt(&s) == libc::S_IFDIR) {
            remove_any(&l)?;
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
/// writable first; never follows symlinks.
pub(crate) fn remove_tree(path: &Path) -> Result<(), SnapshotError> {
    if lstat(path).is_none() {
        return Ok(());
    }
    if std::fs::remove_dir_all(path).is_ok() {
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
