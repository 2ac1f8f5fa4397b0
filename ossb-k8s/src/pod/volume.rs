//! Reading Secret and ConfigMap volumes through Kubernetes' atomic-writer layout.
//!
//! The kubelet writes a volume as a timestamped directory `..2026_01_02_03_04_05.123456789`,
//! a symlink `..data -> ..2026_...`, and one symlink per top-level key, `key -> ..data/key`
//! (with `items` paths like `a/b/c`, `a -> ..data/a` is a directory). An update writes a new
//! timestamped directory and swaps `..data` atomically. Readers must go through the visible
//! key names, never list the `..`-prefixed entries, and must not follow a symlink out of the
//! volume.

use super::PodError;
use std::path::{Component, Path, PathBuf};

/// Directory nesting deeper than this is refused (it also stops symlink loops).
const MAX_DEPTH: usize = 32;

/// One key (file) of a mounted volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeFile {
    /// The key as a relative path with `/` separators (`config.yaml`, `src/main.rs`).
    pub key: String,
    /// The visible path (`<root>/<key>`); reading it always reads the current data.
    pub path: PathBuf,
    /// Permission bits of the file (from the volume's `defaultMode`/`mode`).
    pub mode: u32,
    /// Size in bytes.
    pub size: u64,
}

/// True for the kubelet's bookkeeping entries (`..data`, `..2026_...`, `..tmp`).
pub fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.as_encoded_bytes().starts_with(b"..")
}

fn canonical_root(root: &Path) -> Result<PathBuf, PodError> {
    std::fs::canonicalize(root).map_err(|e| PodError::io("open volume", root, e))
}

fn check_inside(path: &Path, root: &Path, canon_root: &Path) -> Result<PathBuf, PodError> {
    let target = std::fs::canonicalize(path).map_err(|e| PodError::io("resolve", path, e))?;
    if target.starts_with(canon_root) {
        Ok(target)
    } else {
        Err(PodError::Escape {
            path: path.to_path_buf(),
            target,
            root: root.to_path_buf(),
        })
    }
}

/// Resolve `key` (a relative path) in the volume at `root`: `Ok(None)` when it does not exist,
/// an error when it is `..`-prefixed, not relative, or resolves outside the volume.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// std::fs::write(dir.path().join("username"), "robot\n").unwrap();
/// let p = ossb_k8s::pod::volume::resolve_key(dir.path(), "username").unwrap();
/// assert_eq!(p, Some(dir.path().join("username")));
/// assert_eq!(ossb_k8s::pod::volume::resolve_key(dir.path(), "password").unwrap(), None);
/// ```
pub fn resolve_key(root: &Path, key: &str) -> Result<Option<PathBuf>, PodError> {
    let rel = Path::new(key);
    let valid = !key.is_empty()
        && rel.components().all(|c| match c {
            Component::Normal(n) => !is_hidden(n),
            _ => false,
        });
    if !valid {
        return Err(PodError::Invalid {
            what: "volume key",
            path: root.join(key),
            reason: "keys must be relative paths without `..` components".into(),
            class: ossb_core::ExitCode::Configuration,
        });
    }
    let path = root.join(rel);
    if std::fs::symlink_metadata(&path).is_err() {
        return Ok(None);
    }
    let canon = canonical_root(root)?;
    check_inside(&path, root, &canon)?;
    Ok(Some(path))
}

/// Read the text of `key`; `Ok(None)` when it does not exist.
pub fn read_key(root: &Path, key: &str) -> Result<Option<String>, PodError> {
    match resolve_key(root, key)? {
        None => Ok(None),
        Some(path) => std::fs::read_to_string(&path)
            .map(Some)
            .map_err(|e| PodError::io("read", path, e)),
    }
}

/// List every file of the volume at `root`, sorted by key, skipping the `..`-prefixed entries
/// and following the key symlinks (which must stay inside the volume).
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// std::fs::create_dir(dir.path().join("..2026_01_01_00_00_00.1")).unwrap();
/// std::fs::write(dir.path().join("..2026_01_01_00_00_00.1/a"), "x").unwrap();
/// std::os::unix::fs::symlink("..2026_01_01_00_00_00.1", dir.path().join("..data")).unwrap();
/// std::os::unix::fs::symlink("..data/a", dir.path().join("a")).unwrap();
/// let files = ossb_k8s::pod::volume::list_files(dir.path()).unwrap();
/// assert_eq!(files.iter().map(|f| f.key.as_str()).collect::<Vec<_>>(), ["a"]);
/// ```
pub fn list_files(root: &Path) -> Result<Vec<VolumeFile>, PodError> {
    let canon = canonical_root(root)?;
    let mut out = Vec::new();
    walk(root, &canon, root, "", 0, &mut out)?;
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

fn walk(
    root: &Path,
    canon: &Path,
    dir: &Path,
    prefix: &str,
    depth: usize,
    out: &mut Vec<VolumeFile>,
) -> Result<(), PodError> {
    use std::os::unix::fs::PermissionsExt;
    if depth > MAX_DEPTH {
        return Err(PodError::Invalid {
            what: "volume",
            path: dir.to_path_buf(),
            reason: format!("directories nest deeper than {MAX_DEPTH} levels (a symlink loop?)"),
            class: ossb_core::ExitCode::Configuration,
        });
    }
    let entries = std::fs::read_dir(dir).map_err(|e| PodError::io("list", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| PodError::io("list", dir, e))?;
        let name = entry.file_name();
        if is_hidden(&name) {
            continue;
        }
        let Some(name_str) = name.to_str() else {
            return Err(PodError::Invalid {
                what: "volume key",
                path: entry.path(),
                reason: "key names must be UTF-8".into(),
                class: ossb_core::ExitCode::Configuration,
            });
        };
        let visible = entry.path();
        let target = check_inside(&visible, root, canon)?;
        let meta = std::fs::metadata(&target).map_err(|e| PodError::io("stat", &target, e))?;
        let key = if prefix.is_empty() {
            name_str.to_string()
        } else {
            format!("{prefix}/{name_str}")
        };
        if meta.is_dir() {
            walk(root, canon, &visible, &key, depth + 1, out)?;
        } else if meta.is_file() {
            out.push(VolumeFile {
                key,
                path: visible,
                mode: meta.permissions().mode() & 0o7777,
                size: meta.len(),
            });
        }
    }
    Ok(())
}
