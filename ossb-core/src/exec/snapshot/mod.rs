//! Snapshotters: how a RUN step's changes become layer entries.
//!
//! A snapshotter keeps one plain directory, the *lower* dir (the stage's rootfs), up to date.
//! For each step it [`prepare`](Snapshotter::prepare)s the root the sandbox mounts, then turns
//! what the step changed into [`Entry`]s ([`diff`](Snapshotter::diff)) and folds the changes
//! into the lower dir ([`commit`](Snapshotter::commit)), so the next step again sees one dir.
//!
//! - [`OverlaySnapshotter`]: overlayfs with a fresh upper dir per step; the upper dir is the
//!   diff. Needs overlayfs with `userxattr` in a user namespace (probed once).
//! - [`ScanSnapshotter`]: the step writes into the lower dir; the diff comes from comparing a
//!   metadata snapshot taken before the step with a walk after it.

mod merge;
mod meta;
mod overlay;
mod scan;

pub use meta::Diff;
pub use overlay::{OverlaySnapshotter, diff_upper};
pub use scan::ScanSnapshotter;

use crate::exec::remove::TreeDir;
use crate::exec::sandbox::{IdMap, StepRoot};
use crate::image::entry::Entry;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Which snapshotter runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SnapshotterKind {
    /// Overlayfs upper dirs.
    Overlay,
    /// Metadata snapshot and scan.
    Scan,
}

/// The user's choice (`--snapshotter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SnapshotterChoice {
    /// Overlay when it mounts here (probed once per process), else scan.
    #[default]
    Auto,
    /// Force one.
    Force(SnapshotterKind),
}

/// Errors of the snapshotters.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A filesystem operation failed.
    #[error("snapshot i/o error on {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The call order was wrong (diff before prepare, ...).
    #[error("snapshotter misuse: {0}")]
    State(&'static str),
    /// A step's changes cannot be undone with this snapshotter.
    #[error(
        "the scan snapshotter cannot undo a step: the step wrote into the rootfs directly; rebuild the stage from its base (use the overlay snapshotter to make failed steps free)"
    )]
    CannotAbort,
    /// Upper and lower dir are on different filesystems (commit renames).
    #[error(
        "the snapshot scratch dir {scratch} is on another filesystem than the rootfs {lower}; put them on the same filesystem"
    )]
    CrossDevice {
        /// The scratch dir.
        scratch: PathBuf,
        /// The lower dir.
        lower: PathBuf,
    },
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One step at a time: prepare, (the sandbox runs), diff, then commit or abort.
pub trait Snapshotter: Send {
    /// Which one this is.
    fn kind(&self) -> SnapshotterKind;
    /// The lower dir (the stage rootfs) kept up to date by commits.
    fn lower(&self) -> &Path;
    /// Prepares a step; returns the root the sandbox mounts.
    fn prepare(&mut self) -> Result<StepRoot, SnapshotError>;
    /// The step's changes as layer entries, sorted by path, parents before children. File
    /// sources point into the snapshot's dirs and stay valid until the next `prepare`.
    fn diff(&mut self) -> Result<Diff, SnapshotError>;
    /// Folds the step's changes into the lower dir.
    fn commit(&mut self) -> Result<(), SnapshotError>;
    /// [`commit`](Snapshotter::commit), then points the file sources of `entries` (from the
    /// last [`diff`](Snapshotter::diff)) at where the files are now, and hands back the step's
    /// leftover scratch for the caller to remove when it likes. After this, the sources stay
    /// valid while the next step runs only if the snapshotter is
    /// [`pipelined`](Snapshotter::pipelined).
    fn commit_detached(&mut self, entries: &mut [Entry]) -> Result<Option<TreeDir>, SnapshotError> {
        let _ = entries;
        self.commit()?;
        Ok(None)
    }
    /// Whether the next step leaves the lower dir alone until its own commit (it writes into
    /// an upper dir), so a layer can be read from the lower dir while that step runs.
    fn pipelined(&self) -> bool {
        false
    }
    /// Forgets the step's changes.
    fn abort(&mut self) -> Result<(), SnapshotError>;
}

/// Opens a snapshotter over `lower`, with per-step scratch dirs in `scratch` (same filesystem
/// as `lower` for the overlay). `Auto` probes overlayfs once per process with `helper`.
pub fn open(
    choice: SnapshotterChoice,
    lower: PathBuf,
    scratch: PathBuf,
    id_map: IdMap,
    helper: &Path,
) -> Result<Box<dyn Snapshotter>, SnapshotError> {
    static OVERLAY_OK: OnceLock<bool> = OnceLock::new();
    let kind = match choice {
        SnapshotterChoice::Force(k) => k,
        SnapshotterChoice::Auto => {
            let ok = *OVERLAY_OK.get_or_init(|| {
                let probe = crate::exec::doctor::overlay_works(helper);
                if !probe.ok {
                    tracing::info!(reason = %probe.detail, "overlayfs unavailable, using the scan snapshotter");
                }
                probe.ok
            });
            if ok {
                SnapshotterKind::Overlay
            } else {
                SnapshotterKind::Scan
            }
        }
    };
    tracing::debug!(snapshotter = ?kind, lower = %lower.display(), "snapshotter selected");
    Ok(match kind {
        SnapshotterKind::Overlay => Box::new(OverlaySnapshotter::new(lower, scratch, id_map)?),
        SnapshotterKind::Scan => Box::new(ScanSnapshotter::new(lower, id_map)),
    })
}
