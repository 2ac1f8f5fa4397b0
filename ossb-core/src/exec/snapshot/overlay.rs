//! The overlayfs snapshotter: a fresh upper dir per step is the step's diff.

use super::meta::{Diff, entry_for, fmt, get_xattr, join, marker, sorted_names};
use super::{SnapshotError, Snapshotter, SnapshotterKind, io_err, merge};
use crate::exec::remove::TreeDir;
use crate::exec::sandbox::{IdMap, StepRoot};
use crate::image::entry::{Entry, EntryKind, Source};
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Overlay upper dirs over one lower dir.
#[derive(Debug)]
pub struct OverlaySnapshotter {
    lower: PathBuf,
    scratch: PathBuf,
    id_map: IdMap,
    step: Option<tempfile::TempDir>,
}

impl OverlaySnapshotter {
    /// Over `lower`, with per-step upper/work dirs under `scratch` (same filesystem).
    pub fn new(lower: PathBuf, scratch: PathBuf, id_map: IdMap) -> Result<Self, SnapshotError> {
        std::fs::create_dir_all(&scratch).map_err(io_err(&scratch))?;
        let l = std::fs::metadata(&lower).map_err(io_err(&lower))?;
        let s = std::fs::metadata(&scratch).map_err(io_err(&scratch))?;
        if l.dev() != s.dev() {
            return Err(SnapshotError::CrossDevice { scratch, lower });
        }
        Ok(OverlaySnapshotter {
            lower,
            scratch,
            id_map,
            step: None,
        })
    }

    fn upper(&self) -> Result<PathBuf, SnapshotError> {
        self.step
            .as_ref()
            .map(|s| s.path().join("upper"))
            .ok_or(SnapshotError::State("no prepared step"))
    }
}

impl Snapshotter for OverlaySnapshotter {
    fn kind(&self) -> SnapshotterKind {
        SnapshotterKind::Overlay
    }

    fn lower(&self) -> &Path {
        &self.lower
    }

    fn prepare(&mut self) -> Result<StepRoot, SnapshotError> {
        if let Some(old) = self.step.take() {
            merge::remove_tree(old.path())?;
        }
        let dir = tempfile::Builder::new()
            .prefix("ossb-snap-")
            .tempdir_in(&self.scratch)
            .map_err(io_err(&self.scratch))?;
        let (upper, work) = (dir.path().join("upper"), dir.path().join("work"));
        std::fs::create_dir(&upper).map_err(io_err(&upper))?;
        std::fs::create_dir(&work).map_err(io_err(&work))?;
        self.step = Some(dir);
        Ok(StepRoot::Overlay {
            lowers: vec![self.lower.clone()],
            upper,
            work,
        })
    }

    fn diff(&mut self) -> Result<Diff, SnapshotError> {
        diff_upper(&self.upper()?, &self.id_map)
    }

    fn commit(&mut self) -> Result<(), SnapshotError> {
        let upper = self.upper()?;
        let Some(dir) = self.step.take() else {
            return Err(SnapshotError::State("no prepared step"));
        };
        // What the merge replaces lands in the step dir, removed with it in one pass.
        let merged = merge::merge_upper(&upper, &self.lower, &dir.path().join("trash"));
        merge::remove_tree(dir.path())?;
        merged?;
        Ok(())
    }

    fn commit_detached(&mut self, entries: &mut [Entry]) -> Result<Option<TreeDir>, SnapshotError> {
        let upper = self.upper()?;
        let Some(dir) = self.step.take() else {
            return Err(SnapshotError::State("no prepared step"));
        };
        let dir = TreeDir::new(dir);
        merge::merge_upper(&upper, &self.lower, &dir.path().join("trash"))?;
        // Every file moved from `upper/<rel>` to `lower/<rel>` (renames keep the inode).
        for entry in entries.iter_mut() {
            if let EntryKind::File {
                source: Source::Path(path),
                ..
            } = &mut entry.kind
                && let Ok(rel) = path.strip_prefix(&upper)
            {
                *path = self.lower.join(rel);
            }
        }
        Ok(Some(dir))
    }

    fn pipelined(&self) -> bool {
        true
    }

    fn abort(&mut self) -> Result<(), SnapshotError> {
        if let Some(dir) = self.step.take() {
            merge::remove_tree(dir.path())?;
        }
        Ok(())
    }
}

impl Drop for OverlaySnapshotter {
    fn drop(&mut self) {
        if let Some(dir) = self.step.take() {
            let _ = merge::remove_tree(dir.path());
        }
    }
}

/// Whether an upper-dir path is an overlay whiteout (0/0 char device, or a file marked with
/// the `overlay.whiteout` xattr).
pub(crate) fn is_whiteout(path: &Path, st: &rustix::fs::Stat) -> bool {
    match fmt(st) {
        libc::S_IFCHR => st.st_rdev == 0,
        libc::S_IFREG if st.st_size == 0 => {
            get_xattr(path, "user.overlay.whiteout").is_some()
                || get_xattr(path, "trusted.overlay.whiteout").is_some()
        }
        _ => false,
    }
}

/// Whether an upper dir hides the lower dir's contents (`overlay.opaque` = `y`).
pub(crate) fn is_opaque(path: &Path) -> bool {
    ["user.overlay.opaque", "trusted.overlay.opaque"]
        .iter()
        .any(|n| get_xattr(path, n).as_deref() == Some(b"y"))
}

/// Converts an overlay upper dir into layer entries (sorted by path, so a hard link always
/// follows the path it links to).
pub fn diff_upper(upper: &Path, id_map: &IdMap) -> Result<Diff, SnapshotError> {
    let mut found = Vec::new();
    walk(upper, "", &mut found)?;
    found.sort_by(|a, b| a.0.cmp(&b.0));
    let mut diff = Diff::default();
    let mut links = HashMap::new();
    for (rel, full, st) in found {
        if is_whiteout(&full, &st) {
            diff.entries.push(marker(&rel, EntryKind::Whiteout));
            continue;
        }
        let Some(entry) = entry_for(&full, &rel, &st, id_map, &mut links, &mut diff.warnings)?
        else {
            continue;
        };
        let opaque = entry.kind == EntryKind::Dir && is_opaque(&full);
        diff.entries.push(entry);
        if opaque {
            diff.entries.push(marker(&rel, EntryKind::OpaqueDir));
        }
    }
    Ok(diff)
}

fn walk(
    dir: &Path,
    rel: &str,
    found: &mut Vec<(String, PathBuf, rustix::fs::Stat)>,
) -> Result<(), SnapshotError> {
    for name in sorted_names(dir)? {
        let full = dir.join(&name);
        let r = join(rel, &name);
        let st = rustix::fs::lstat(&full).map_err(|e| io_err(&full)(e.into()))?;
        let is_dir = fmt(&st) == libc::S_IFDIR;
        found.push((r.clone(), full.clone(), st));
        if is_dir {
            walk(&full, &r, found)?;
        }
    }
    Ok(())
}
