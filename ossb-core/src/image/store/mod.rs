//! The content store: verified blobs by digest, local references, locking, `gc` and `fsck`.
//!
//! Layout under the root:
//!
//! ```text
//! blobs/sha256/<hex>   content, immutable, named by its digest
//! tmp/                 blobs being written (a crash leaves files here, removed by gc)
//! refs.json            name -> descriptor of a manifest or index
//! lock, refs.lock      flock files
//! ```

mod blob_writer;
mod gc;
mod lock;
mod refs;
mod walk;

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

pub use blob_writer::{BlobWriter, CommittedBlob};
pub use gc::{FsckReport, GcReport};
pub use lock::StoreLock;
pub(crate) use refs::write_atomic as refs_write_atomic;

use super::digest::{Digest, VerifyingReader};
use super::error::{ImageError, Result};

/// A content store rooted at a directory. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// A reader over a blob that fails with `InvalidData` at the end when the bytes do not match
/// the digest.
pub type BlobReader = VerifyingReader<std::io::BufReader<File>>;

impl Store {
    /// Opens (creating if needed) a store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let store = Store { root: root.into() };
        for dir in [store.blobs_dir(), store.tmp_dir()] {
            std::fs::create_dir_all(&dir).map_err(|e| ImageError::io("create", &dir, e))?;
        }
        Ok(store)
    }

    /// Opens the store at [`Store::default_root`].
    pub fn open_default() -> Result<Self> {
        Self::open(Self::default_root())
    }

    /// `$OSSB_ROOT`, else `$XDG_DATA_HOME/ossb`, else `$HOME/.local/share/ossb`, else
    /// `.ossb` in the current directory.
    pub fn default_root() -> PathBuf {
        let non_empty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        if let Some(r) = non_empty("OSSB_ROOT") {
            return PathBuf::from(r);
        }
        if let Some(x) = non_empty("XDG_DATA_HOME") {
            return PathBuf::from(x).join("ossb");
        }
        if let Some(h) = non_empty("HOME") {
            return PathBuf::from(h).join(".local/share/ossb");
        }
        PathBuf::from(".ossb")
    }

    /// The store root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `blobs/sha256`.
    pub fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn refs_path(&self) -> PathBuf {
        self.root.join("refs.json")
    }

    /// Where the blob with `digest` lives (whether or not it exists).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(digest.hex())
    }

    /// Whether the blob is present.
    pub fn has(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// The blob's size on disk.
    pub fn size(&self, digest: &Digest) -> Result<u64> {
        let path = self.blob_path(digest);
        match std::fs::metadata(&path) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(self.not_found(digest)),
            Err(e) => Err(ImageError::io("stat", path, e)),
        }
    }

    /// Takes the store-wide lock: shared while building (blobs not yet referenced), exclusive
    /// for `gc`.
    pub fn lock(&self, exclusive: bool) -> Result<StoreLock> {
        StoreLock::acquire(&self.root.join("lock"), exclusive)
    }

    /// Starts writing a new blob.
    pub fn blob_writer(&self) -> Result<BlobWriter> {
        BlobWriter::new(self)
    }

    /// Stores `bytes` and returns their digest.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<CommittedBlob> {
        let digest = Digest::of(bytes);
        if self.has(&digest) {
            return Ok(CommittedBlob {
                digest,
                size: bytes.len() as u64,
            });
        }
        let mut w = self.blob_writer()?;
        std::io::Write::write_all(&mut w, bytes).map_err(|e| ImageError::Stream {
            what: "blob",
            source: e,
        })?;
        w.commit(Some(&digest))
    }

    /// Copies `reader` into the store, verifying it against `expected` (and `size`).
    pub fn put_reader(
        &self,
        reader: &mut dyn Read,
        expected: Option<&Digest>,
        size: Option<u64>,
    ) -> Result<CommittedBlob> {
        let mut w = self.blob_writer()?;
        std::io::copy(reader, &mut w).map_err(|e| ImageError::Stream {
            what: "blob",
            source: e,
        })?;
        w.commit_sized(expected, size)
    }

    /// Opens a blob for reading. The size is checked now, the digest at end of stream.
    pub fn open_blob(&self, digest: &Digest) -> Result<BlobReader> {
        let path = self.blob_path(digest);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(self.not_found(digest));
            }
            Err(e) => return Err(ImageError::io("open", path, e)),
        };
        let size = file
            .metadata()
            .map_err(|e| ImageError::io("stat", &path, e))?
            .len();
        Ok(VerifyingReader::new(
            std::io::BufReader::with_capacity(256 * 1024, file),
            digest.clone(),
            Some(size),
        ))
    }

    /// Opens a blob and checks its size against `expected_size` before any read.
    pub fn open_blob_sized(&self, digest: &Digest, expected_size: u64) -> Result<BlobReader> {
        let found = self.size(digest)?;
        if found != expected_size {
            return Err(ImageError::SizeMismatch {
                digest: digest.clone(),
                expected: expected_size,
                found,
            });
        }
        self.open_blob(digest)
    }

    /// Reads a whole (small) blob, verified.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let mut r = self.open_blob(digest)?;
        let mut out = Vec::new();
        r.read_to_end(&mut out)
            .map_err(|e| unwrap_verify_error(e, &self.blob_path(digest)))?;
        Ok(out)
    }

    /// Re-hashes a blob; returns its size, or the mismatch.
    pub fn verify_blob(&self, digest: &Digest) -> Result<u64> {
        let mut r = self.open_blob(digest)?;
        std::io::copy(&mut r, &mut std::io::sink())
            .map_err(|e| unwrap_verify_error(e, &self.blob_path(digest)))
    }

    fn not_found(&self, digest: &Digest) -> ImageError {
        ImageError::BlobNotFound {
            digest: digest.clone(),
            root: self.root.clone(),
        }
    }
}

/// Turns the `InvalidData` error of a [`VerifyingReader`] back into its [`ImageError`].
pub fn unwrap_verify_error(e: std::io::Error, path: &Path) -> ImageError {
    if e.get_ref().is_some_and(|inner| inner.is::<ImageError>()) {
        if let Some(inner) = e.into_inner()
            && let Ok(img) = inner.downcast::<ImageError>()
        {
            return *img;
        }
        return ImageError::io("verify", path, std::io::Error::other("verification failed"));
    }
    ImageError::io("read", path, e)
}

/// fsyncs a directory so a rename in it is durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ImageError::io("fsync directory", dir, e))
}
