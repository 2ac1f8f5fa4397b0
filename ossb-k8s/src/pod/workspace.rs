//! The writable workspace (an `emptyDir`) for the store and temporary files.

use super::PodError;
use std::path::{Path, PathBuf};

/// Overrides [`DEFAULT_WORKSPACE`].
pub const WORKSPACE_ENV: &str = "OSSB_WORKSPACE";
/// Default workspace directory in a pod.
pub const DEFAULT_WORKSPACE: &str = "/workspace/.ossb";

/// A prepared workspace: the directory exists, is writable, and had enough free space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    /// The workspace root.
    pub root: PathBuf,
    /// Bytes free to this user when it was prepared.
    pub free_bytes: u64,
}

impl Workspace {
    /// The workspace from `OSSB_WORKSPACE`, else [`DEFAULT_WORKSPACE`].
    pub fn path_from_env() -> PathBuf {
        std::env::var_os(WORKSPACE_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_WORKSPACE))
    }

    /// Create `root` (and `store/`, `tmp/` in it) if missing, check it is writable, and check
    /// that at least `needed_bytes` are free. Fails early with exit code 6 and a message
    /// naming the path, the free and the needed bytes.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let ws = ossb_k8s::pod::Workspace::prepare(&dir.path().join("ws"), 1).unwrap();
    /// assert!(ws.store_dir().is_dir() && ws.tmp_dir().is_dir());
    /// let err = ossb_k8s::pod::Workspace::prepare(dir.path(), u64::MAX).unwrap_err();
    /// assert_eq!(err.exit_code().code(), 6);
    /// ```
    pub fn prepare(root: &Path, needed_bytes: u64) -> Result<Workspace, PodError> {
        for dir in [root.to_path_buf(), root.join("store"), root.join("tmp")] {
            std::fs::create_dir_all(&dir).map_err(|e| PodError::io("create", &dir, e))?;
        }
        // A real write proves the directory is writable by this uid (read-only root
        // file systems and wrong fsGroup show up here, not halfway through the build).
        tempfile::tempfile_in(root.join("tmp")).map_err(|e| PodError::io("write to", root, e))?;
        let free = free_bytes(root)?;
        if free < needed_bytes {
            return Err(PodError::InsufficientSpace {
                path: root.to_path_buf(),
                free,
                needed: needed_bytes,
            });
        }
        Ok(Workspace {
            root: root.to_path_buf(),
            free_bytes: free,
        })
    }

    /// `store/`: the content store.
    pub fn store_dir(&self) -> PathBuf {
        self.root.join("store")
    }

    /// `tmp/`: temporary files (use it as `TMPDIR`).
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }
}

/// Bytes available to an unprivileged user on the file system holding `path` (`statvfs`).
pub fn free_bytes(path: &Path) -> Result<u64, PodError> {
    let st = rustix::fs::statvfs(path).map_err(|e| PodError::io("statvfs", path, e.into()))?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Parse a size like `10Gi`, `500M`, `2G` or `1048576` (Kubernetes quantity suffixes).
///
/// ```
/// assert_eq!(ossb_k8s::pod::parse_size("10Gi"), Some(10 << 30));
/// assert_eq!(ossb_k8s::pod::parse_size("2k"), Some(2000));
/// assert_eq!(ossb_k8s::pod::parse_size("lots"), None);
/// ```
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suffix) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match suffix {
        "" => 1,
        "k" | "K" => 1000,
        "M" => 1000_u64.pow(2),
        "G" => 1000_u64.pow(3),
        "T" => 1000_u64.pow(4),
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult)
}
