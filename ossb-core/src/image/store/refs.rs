//! Local image references: `name -> descriptor` of a manifest or index, in `refs.json`.

use std::collections::BTreeMap;
use std::io::Write;

use serde::{Deserialize, Serialize};

use super::{Store, lock::StoreLock, sync_dir};
use crate::image::error::{ImageError, Result};
use crate::image::oci::Descriptor;

/// The on-disk form of the reference index.
#[derive(Debug, Default, Serialize, Deserialize)]
struct RefFile {
    refs: BTreeMap<String, Descriptor>,
}

impl Store {
    /// All references, sorted by name.
    pub fn list_refs(&self) -> Result<BTreeMap<String, Descriptor>> {
        Ok(self.read_refs()?.refs)
    }

    /// The descriptor `name` points to.
    pub fn get_ref(&self, name: &str) -> Result<Descriptor> {
        self.read_refs()?
            .refs
            .remove(name)
            .ok_or_else(|| ImageError::RefNotFound {
                name: name.to_string(),
                place: self.root().display().to_string(),
            })
    }

    /// Points `name` at `desc` (a manifest or index already in the store), atomically.
    pub fn set_ref(&self, name: &str, desc: &Descriptor) -> Result<()> {
        if name.is_empty() || name.chars().any(char::is_control) {
            return Err(ImageError::InvalidRefName {
                name: name.to_string(),
            });
        }
        if !self.has(&desc.digest) {
            return Err(ImageError::BlobNotFound {
                digest: desc.digest.clone(),
                root: self.root().to_path_buf(),
            });
        }
        self.update_refs(|refs| {
            refs.insert(name.to_string(), desc.clone());
        })
    }

    /// Removes `name`; returns whether it existed.
    pub fn remove_ref(&self, name: &str) -> Result<bool> {
        let mut existed = false;
        self.update_refs(|refs| existed = refs.remove(name).is_some())?;
        Ok(existed)
    }

    fn read_refs(&self) -> Result<RefFile> {
        let path = self.refs_path();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| ImageError::json(path.display().to_string(), e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RefFile::default()),
            Err(e) => Err(ImageError::io("read", path, e)),
        }
    }

    fn update_refs(&self, f: impl FnOnce(&mut BTreeMap<String, Descriptor>)) -> Result<()> {
        let _guard = StoreLock::acquire(&self.root().join("refs.lock"), true)?;
        let mut file = self.read_refs()?;
        f(&mut file.refs);
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| ImageError::json("refs", e))?;
        write_atomic(self.root(), "refs.json", &bytes)
    }
}

/// Writes `dir/name` atomically: temp file in `dir`, fsync, rename, fsync the directory.
pub(crate) fn write_atomic(dir: &std::path::Path, name: &str, bytes: &[u8]) -> Result<()> {
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(|e| ImageError::io("create temp file in", dir, e))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| ImageError::io("write", tmp.path().to_path_buf(), e))?;
    let dest = dir.join(name);
    tmp.persist(&dest)
        .map_err(|e| ImageError::io("rename to", &dest, e.error))?;
    sync_dir(dir)
}
