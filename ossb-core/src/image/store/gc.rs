//! Reachability walk, garbage collection and integrity checking of the store.

use std::collections::BTreeSet;

use rustix::fs::{FlockOperation, flock};

use super::Store;
use crate::image::digest::Digest;
use crate::image::error::{ImageError, Result};
use crate::image::oci::{Descriptor, Index, Manifest, from_json, media_types};

/// What `gc` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Blobs deleted.
    pub removed_blobs: Vec<Digest>,
    /// Bytes freed by deleted blobs.
    pub removed_bytes: u64,
    /// Abandoned temp files deleted.
    pub removed_temp_files: usize,
}

/// What `fsck` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsckReport {
    /// Blobs checked.
    pub checked: usize,
    /// Blobs whose content does not match their name.
    pub corrupt: Vec<Digest>,
    /// Files under `blobs/sha256` that are not named by a digest.
    pub stray_files: Vec<String>,
}

impl FsckReport {
    /// Whether nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.corrupt.is_empty() && self.stray_files.is_empty()
    }
}

/// Largest manifest or index this code parses while walking (registries cap at 4 MiB).
const MAX_DOC: u64 = 4 * 1024 * 1024;

impl Store {
    /// Every blob reachable from the references: indexes, manifests, configs, layers and
    /// subjects. Blobs absent from the store (other platforms never pulled) are skipped.
    pub fn reachable(&self) -> Result<BTreeSet<Digest>> {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<Descriptor> = self.list_refs()?.into_values().collect();
        while let Some(desc) = stack.pop() {
            if !seen.insert(desc.digest.clone()) || !self.has(&desc.digest) {
                continue;
            }
            stack.extend(self.children(&desc)?);
        }
        Ok(seen)
    }

    /// The descriptors a manifest or index refers to (empty for other blobs).
    pub fn children(&self, desc: &Descriptor) -> Result<Vec<Descriptor>> {
        let mt = desc.media_type.as_str();
        let known_doc = media_types::is_manifest(mt) || media_types::is_index(mt);
        let maybe_doc = known_doc || (mt.is_empty() && desc.size <= MAX_DOC);
        if !maybe_doc {
            return Ok(Vec::new());
        }
        if self.size(&desc.digest)? > MAX_DOC {
            return Ok(Vec::new());
        }
        let bytes = self.read_blob(&desc.digest)?;
        let value: serde_json::Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(_) if !known_doc => return Ok(Vec::new()),
            Err(e) => return Err(ImageError::json(desc.digest.to_string(), e)),
        };
        let what = desc.digest.to_string();
        let mut out = Vec::new();
        if value.get("manifests").is_some() {
            let index: Index = from_json(&what, &bytes)?;
            out.extend(index.manifests);
            out.extend(index.subject);
        } else if value.get("config").is_some() && value.get("layers").is_some() {
            let m: Manifest = from_json(&what, &bytes)?;
            out.push(m.config);
            out.extend(m.layers);
            out.extend(m.subject);
        }
        Ok(out)
    }

    /// Deletes every blob not reachable from a reference, and temp files of dead writers.
    /// Takes the store lock exclusively: builds in progress (holding it shared) finish first.
    pub fn gc(&self) -> Result<GcReport> {
        self.gc_keeping(&[])
    }

    /// Like [`Store::gc`], also keeping `extra` blobs (and what they refer to): the build
    /// cache's layers, for example.
    pub fn gc_keeping(&self, extra: &[Digest]) -> Result<GcReport> {
        let _guard = self.lock(true)?;
        let mut keep = self.reachable()?;
        keep.extend(extra.iter().cloned());
        let mut report = GcReport::default();
        let dir = self.blobs_dir();
        for entry in std::fs::read_dir(&dir).map_err(|e| ImageError::io("list", &dir, e))? {
            let entry = entry.map_err(|e| ImageError::io("list", &dir, e))?;
            let name = entry.file_name();
            let Some(digest) = name.to_str().and_then(|n| Digest::from_hex(n).ok()) else {
                continue;
            };
            if keep.contains(&digest) {
                continue;
            }
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            std::fs::remove_file(entry.path())
                .map_err(|e| ImageError::io("remove", entry.path(), e))?;
            report.removed_bytes += size;
            report.removed_blobs.push(digest);
        }
        report.removed_blobs.sort();
        report.removed_temp_files = self.remove_dead_temp_files()?;
        Ok(report)
    }

    /// Removes temp files whose writer is gone (its `flock` is released when it dies).
    fn remove_dead_temp_files(&self) -> Result<usize> {
        let dir = self.tmp_dir();
        let mut removed = 0;
        for entry in std::fs::read_dir(&dir).map_err(|e| ImageError::io("list", &dir, e))? {
            let entry = entry.map_err(|e| ImageError::io("list", &dir, e))?;
            let path = entry.path();
            // Scratch dirs of builds; none is running while gc holds the lock exclusively.
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                std::fs::remove_dir_all(&path).map_err(|e| ImageError::io("remove", &path, e))?;
                removed += 1;
                continue;
            }
            let Ok(file) = std::fs::File::open(&path) else {
                continue;
            };
            if flock(&file, FlockOperation::NonBlockingLockExclusive).is_ok() {
                std::fs::remove_file(&path).map_err(|e| ImageError::io("remove", &path, e))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Re-hashes every blob and lists the corrupt ones (and stray files).
    pub fn fsck(&self) -> Result<FsckReport> {
        let dir = self.blobs_dir();
        let mut report = FsckReport::default();
        for entry in std::fs::read_dir(&dir).map_err(|e| ImageError::io("list", &dir, e))? {
            let entry = entry.map_err(|e| ImageError::io("list", &dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(digest) = Digest::from_hex(&name) else {
                report.stray_files.push(name);
                continue;
            };
            report.checked += 1;
            match self.verify_blob(&digest) {
                Ok(_) => {}
                Err(ImageError::DigestMismatch { .. } | ImageError::SizeMismatch { .. }) => {
                    report.corrupt.push(digest)
                }
                Err(e) => return Err(e),
            }
        }
        report.corrupt.sort();
        report.stray_files.sort();
        Ok(report)
    }
}
