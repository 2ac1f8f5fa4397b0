//! Removing directory trees with many deletions in flight.
//!
//! On a filesystem mounted with `discard` (common on cloud VMs) every `unlink` or `rmdir` that
//! frees blocks waits for a discard request to the disk, about a millisecond each: removing a
//! 4,000-file tree one entry at a time takes seconds while the CPU idles. The time is latency,
//! not work, so a few threads deleting at once remove the same tree about ten times faster.
//!
//! [`remove_trees`] walks the trees once (no `stat` per file: the directory entries carry the
//! type), unlinks every non-directory from [`THREADS`] threads, then removes the directories
//! deepest first, each depth in parallel (a directory goes only after all of its children).
//! Symlinks are never followed. [`TreeDir`] is a temp dir that is removed this way when dropped.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Deletions in flight at once (they wait on the disk, not the CPU).
pub const THREADS: usize = 8;

/// Below this many deletions one thread does them (spawning would cost more).
const INLINE: usize = 16;

/// A failed deletion: the path and the error.
#[derive(Debug)]
pub struct RemoveError {
    /// The path that could not be read or removed.
    pub path: PathBuf,
    /// The error.
    pub source: io::Error,
}

impl std::fmt::Display for RemoveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot remove {}: {}", self.path.display(), self.source)
    }
}

impl std::error::Error for RemoveError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

fn err(path: &Path) -> impl FnOnce(io::Error) -> RemoveError + '_ {
    move |source| RemoveError {
        path: path.to_path_buf(),
        source,
    }
}

/// Removes `path` (a directory tree, a file or a symlink); a missing path is not an error.
pub fn remove_tree(path: &Path) -> Result<(), RemoveError> {
    remove_trees(&[path.to_path_buf()])
}

/// Removes every path of `paths` (directory trees, files or symlinks); missing paths are not
/// an error. Directories the owner cannot write or search are made so first (an unprivileged
/// user has no CAP_DAC_OVERRIDE).
pub fn remove_trees(paths: &[PathBuf]) -> Result<(), RemoveError> {
    let mut files = Vec::new();
    let mut dirs: Vec<(usize, PathBuf)> = Vec::new();
    let root = rustix::process::geteuid().is_root();
    for path in paths {
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(err(path)(e)),
        };
        if meta.is_dir() {
            collect(
                path.clone(),
                0,
                meta.permissions().mode(),
                root,
                &mut files,
                &mut dirs,
            )?;
        } else {
            files.push(path.clone());
        }
    }
    in_parallel(&files, |p| std::fs::remove_file(p))?;
    // Deepest first; one depth at a time, so every directory is empty when it goes.
    dirs.sort_by_key(|d| std::cmp::Reverse(d.0));
    for group in dirs.chunk_by(|a, b| a.0 == b.0) {
        let paths: Vec<PathBuf> = group.iter().map(|(_, p)| p.clone()).collect();
        in_parallel(&paths, |p| std::fs::remove_dir(p))?;
    }
    Ok(())
}

/// Lists the tree below `dir` (at `depth`, with permission bits `mode`): its non-directories
/// into `files`, its directories (itself included) into `dirs`.
fn collect(
    dir: PathBuf,
    depth: usize,
    mode: u32,
    root: bool,
    files: &mut Vec<PathBuf>,
    dirs: &mut Vec<(usize, PathBuf)>,
) -> Result<(), RemoveError> {
    if !root && mode & 0o700 != 0o700 {
        // Overlay's `work/work` is mode 0; a step may leave read-only directories.
        std::fs::set_permissions(
            &dir,
            std::fs::Permissions::from_mode(0o700 | (mode & 0o7777)),
        )
        .map_err(err(&dir))?;
    }
    let entries = std::fs::read_dir(&dir).map_err(err(&dir))?;
    for entry in entries {
        let entry = entry.map_err(err(&dir))?;
        let path = entry.path();
        let ty = entry.file_type().map_err(err(&path))?;
        if ty.is_dir() {
            // The mode matters only where a directory may deny its owner.
            let mode = if root {
                0o700
            } else {
                entry.metadata().map_err(err(&path))?.permissions().mode()
            };
            collect(path, depth + 1, mode, root, files, dirs)?;
        } else {
            files.push(path);
        }
    }
    dirs.push((depth, dir));
    Ok(())
}

/// Runs `op` on every path from up to [`THREADS`] threads; the first error wins (a path
/// already gone counts as done).
fn in_parallel(
    paths: &[PathBuf],
    op: impl Fn(&Path) -> io::Result<()> + Sync,
) -> Result<(), RemoveError> {
    let run = |p: &PathBuf| match op(p) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(err(p)(e)),
        _ => Ok(()),
    };
    if paths.len() < INLINE {
        return paths.iter().try_for_each(run);
    }
    let next = AtomicUsize::new(0);
    let failed: Mutex<Option<RemoveError>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..THREADS.min(paths.len() / 2) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(p) = paths.get(i) else { return };
                    if let Err(e) = run(p) {
                        if let Ok(mut f) = failed.lock() {
                            f.get_or_insert(e);
                        }
                        // Let the other threads stop too.
                        next.store(paths.len(), Ordering::Relaxed);
                        return;
                    }
                }
            });
        }
    });
    match failed.into_inner() {
        Ok(Some(e)) => Err(e),
        _ => Ok(()),
    }
}

/// A temporary directory removed with [`remove_tree`] when dropped (a tempfile `TempDir`
/// removes one entry at a time).
#[derive(Debug)]
pub struct TreeDir {
    path: Option<PathBuf>,
}

impl TreeDir {
    /// Takes over `dir`: it is no longer removed by `TempDir`'s own drop.
    pub fn new(dir: tempfile::TempDir) -> Self {
        TreeDir {
            path: Some(dir.keep()),
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new(""))
    }
}

impl Drop for TreeDir {
    fn drop(&mut self) {
        if let Some(path) = self.path.take()
            && let Err(e) = remove_tree(&path)
        {
            tracing::debug!(error = %e, "temp dir not removed in parallel; retrying serially");
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(base: &Path) {
        for d in 0..5 {
            let dir = base.join(format!("d{d}/sub/deeper"));
            std::fs::create_dir_all(&dir).expect("mkdir");
            for f in 0..20 {
                std::fs::write(dir.join(format!("f{f}")), b"x").expect("write");
                std::fs::write(base.join(format!("d{d}/g{f}")), b"y").expect("write");
            }
        }
        std::os::unix::fs::symlink("/etc", base.join("d0/link-out")).expect("symlink");
        std::fs::create_dir(base.join("empty")).expect("mkdir");
    }

    #[test]
    fn removes_trees_files_and_missing_paths_without_following_links() {
        let outside = tempfile::tempdir().expect("tempdir");
        let kept = outside.path().join("kept");
        std::fs::write(&kept, b"keep").expect("write");
        let t = tempfile::tempdir().expect("tempdir");
        let a = t.path().join("a");
        tree(&a);
        std::os::unix::fs::symlink(outside.path(), a.join("d1/to-outside")).expect("symlink");
        let single = t.path().join("single");
        std::fs::write(&single, b"z").expect("write");
        let missing = t.path().join("missing");
        remove_trees(&[a.clone(), single.clone(), missing]).expect("removed");
        assert!(!a.exists() && !single.exists());
        assert!(kept.exists(), "a symlink's target is never removed");
        assert_eq!(std::fs::read_dir(t.path()).expect("read").count(), 0);
    }

    #[test]
    fn read_only_directories_are_removed() {
        let t = tempfile::tempdir().expect("tempdir");
        let a = t.path().join("a");
        tree(&a);
        for d in ["a/d1/sub/deeper", "a/d1/sub", "a/d2"] {
            std::fs::set_permissions(t.path().join(d), std::fs::Permissions::from_mode(0o500))
                .expect("chmod");
        }
        std::fs::set_permissions(
            t.path().join("a/empty"),
            std::fs::Permissions::from_mode(0o000),
        )
        .expect("chmod");
        remove_tree(&a).expect("removed");
        assert!(!a.exists());
    }

    #[test]
    fn tree_dir_is_removed_on_drop() {
        let t = tempfile::tempdir().expect("tempdir");
        let dir = TreeDir::new(tempfile::tempdir_in(t.path()).expect("tempdir"));
        let path = dir.path().to_path_buf();
        tree(&path);
        drop(dir);
        assert!(!path.exists());
    }
}
