//! Streaming blob writer: hashes into a temp file inside the store, verifies, fsyncs and renames.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use rustix::fs::{FlockOperation, flock};

use super::{Store, sync_dir};
use crate::image::digest::{Digest, Hasher};
use crate::image::error::{ImageError, Result};

/// Writes one blob. Bytes go to `tmp/` in the store; [`BlobWriter::commit`] checks the digest
/// (and size), fsyncs and renames the file to `blobs/sha256/<hex>`. A crash or a drop before
/// `commit` leaves only a temp file (removed by `gc`), never a wrong blob under its digest.
pub struct BlobWriter {
    store: Store,
    file: BufWriter<File>,
    path: PathBuf,
    hasher: Hasher,
    committed: bool,
}

/// A committed blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedBlob {
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
}

impl BlobWriter {
    pub(super) fn new(store: &Store) -> Result<Self> {
        let tmp_dir = store.tmp_dir();
        let named = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(&tmp_dir)
            .map_err(|e| ImageError::io("create temp file in", &tmp_dir, e))?;
        let (file, path) = named
            .keep()
            .map_err(|e| ImageError::io("keep temp file", &tmp_dir, e.error))?;
        // The lock tells `gc` this temp file belongs to a live writer.
        flock(&file, FlockOperation::LockExclusive)
            .map_err(|e| ImageError::io("lock", &path, e.into()))?;
        Ok(BlobWriter {
            store: store.clone(),
            file: BufWriter::with_capacity(256 * 1024, file),
            path,
            hasher: Hasher::new(),
            committed: false,
        })
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.hasher.len()
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.hasher.is_empty()
    }

    /// Digest of the bytes written so far.
    pub fn digest(&self) -> Digest {
        self.hasher.digest()
    }

    /// Commits without a size check; see [`BlobWriter::commit_sized`].
    pub fn commit(self, expected: Option<&Digest>) -> Result<CommittedBlob> {
        self.commit_sized(expected, None)
    }

    /// Verifies the digest and size (when given), fsyncs and atomically renames the blob into
    /// place. An existing blob with the same digest is kept and the temp file removed.
    pub fn commit_sized(
        mut self,
        expected: Option<&Digest>,
        expected_size: Option<u64>,
    ) -> Result<CommittedBlob> {
        let digest = self.hasher.digest();
        let size = self.hasher.len();
        if let Some(want) = expected
            && *want != digest
        {
            return Err(ImageError::DigestMismatch {
                expected: want.clone(),
                found: digest,
            });
        }
        if let Some(want) = expected_size
            && want != size
        {
            return Err(ImageError::SizeMismatch {
                digest,
                expected: want,
                found: size,
            });
        }
        self.file
            .flush()
            .map_err(|e| ImageError::io("write", &self.path, e))?;
        let dest = self.store.blob_path(&digest);
        if !self.store.has(&digest) {
            self.file
                .get_ref()
                .sync_all()
                .map_err(|e| ImageError::io("fsync", &self.path, e))?;
            std::fs::rename(&self.path, &dest)
                .map_err(|e| ImageError::io("rename blob to", &dest, e))?;
            sync_dir(&self.store.blobs_dir())?;
        } else {
            let _ = std::fs::remove_file(&self.path);
        }
        self.committed = true;
        Ok(CommittedBlob { digest, size })
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
