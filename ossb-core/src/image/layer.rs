//! Deterministic layer writer: entries in, one streaming pass out to a verified store blob.
//!
//! The same entries always give the same tar bytes: entries are sorted by path components (a
//! directory precedes its contents, an opaque marker precedes the directory's other children),
//! headers are written by hand (ustar, PAX where needed, empty uname/gname, no sparse files),
//! and nothing depends on the host beyond the file contents.

mod header;
mod order;

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;

use super::compress::{Compression, default_threads};
use super::digest::{Digest, Hasher};
use super::entry::{Entry, EntryKind, Source};
use super::error::{ImageError, Result};
use super::oci::Descriptor;
use super::store::Store;

pub use order::sort_entries;

/// Options for writing one layer.
#[derive(Debug, Clone)]
pub struct LayerOptions {
    /// Compression of the stored blob.
    pub compression: Compression,
    /// Compression threads (gzip only).
    pub threads: usize,
    /// `SOURCE_DATE_EPOCH`: mtimes newer than this are clamped to it.
    pub source_date_epoch: Option<i64>,
    /// Use Docker schema2 media types instead of OCI ones.
    pub docker_media_types: bool,
}

impl Default for LayerOptions {
    fn default() -> Self {
        LayerOptions {
            compression: Compression::default(),
            threads: default_threads(),
            source_date_epoch: None,
            docker_media_types: false,
        }
    }
}

/// A layer written to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    /// SHA-256 of the uncompressed tar (goes into the config's `rootfs.diff_ids`).
    pub diff_id: Digest,
    /// Digest of the stored (compressed) blob.
    pub digest: Digest,
    /// Size of the stored blob.
    pub size: u64,
    /// Media type of the stored blob.
    pub media_type: String,
    /// Size of the uncompressed tar.
    pub uncompressed_size: u64,
}

impl LayerInfo {
    /// The manifest descriptor for this layer.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(self.media_type.clone(), self.digest.clone(), self.size)
    }
}

/// Writes `entries` as a layer blob into `store` in one streaming pass (tar, diff_id hash,
/// compression, blob hash) and returns its digests and sizes.
pub fn write_layer(store: &Store, entries: Vec<Entry>, opts: &LayerOptions) -> Result<LayerInfo> {
    let blob = store.blob_writer()?;
    // File contents dominate a layer's size; the hint picks multi-threaded zstd for big ones.
    let size_hint: u64 = entries
        .iter()
        .map(|e| match &e.kind {
            EntryKind::File { size, .. } => *size,
            _ => 0,
        })
        .sum();
    let comp = opts
        .compression
        .writer_sized(blob, opts.threads, Some(size_hint))
        .map_err(|e| ImageError::Stream {
            what: "layer",
            source: e,
        })?;
    let mut sink = DiffIdWriter {
        inner: comp,
        hasher: Hasher::new(),
    };
    write_tar(entries, &mut sink, opts.source_date_epoch)?;
    let diff_id = sink.hasher.digest();
    let uncompressed_size = sink.hasher.len();
    let blob = sink.inner.finish().map_err(|e| ImageError::Stream {
        what: "layer",
        source: e,
    })?;
    let committed = blob.commit(None)?;
    let media_type = if opts.docker_media_types {
        opts.compression.docker_media_type()
    } else {
        opts.compression.oci_media_type()
    };
    Ok(LayerInfo {
        diff_id,
        digest: committed.digest,
        size: committed.size,
        media_type: media_type.to_string(),
        uncompressed_size,
    })
}

/// Writes `entries` as an uncompressed tar stream to `out` (sorted, validated, clamped to
/// `source_date_epoch` when given), ending with the two zero blocks.
pub fn write_tar<W: Write>(
    mut entries: Vec<Entry>,
    out: &mut W,
    source_date_epoch: Option<i64>,
) -> Result<()> {
    sort_entries(&mut entries)?;
    let mut buf = vec![0u8; 128 * 1024];
    for mut entry in entries {
        clamp_mtime(&mut entry, source_date_epoch);
        write_entry(&entry, out, &mut buf)?;
    }
    out.write_all(&[0u8; 1024]).map_err(stream)?;
    Ok(())
}

/// The length of the tar [`write_tar`] writes for `entries`, without reading any file: the
/// headers are encoded, file contents counted by their sizes.
pub fn tar_len(entries: &[Entry], source_date_epoch: Option<i64>) -> Result<u64> {
    let mut entries = entries.to_vec();
    sort_entries(&mut entries)?;
    let mut len = 1024;
    for mut entry in entries {
        clamp_mtime(&mut entry, source_date_epoch);
        len += header::encode(&entry, &order::tar_name(&entry))?.len() as u64;
        if let EntryKind::File { size, .. } = entry.kind {
            len += size.div_ceil(512) * 512;
        }
    }
    Ok(len)
}

fn clamp_mtime(entry: &mut Entry, source_date_epoch: Option<i64>) {
    if let Some(epoch) = source_date_epoch
        && (entry.mtime > epoch || (entry.mtime == epoch && entry.mtime_nsec > 0))
    {
        entry.mtime = epoch;
        entry.mtime_nsec = 0;
    }
}

fn stream(e: io::Error) -> ImageError {
    ImageError::Stream {
        what: "layer tar",
        source: e,
    }
}

fn write_entry<W: Write>(entry: &Entry, out: &mut W, buf: &mut [u8]) -> Result<()> {
    let name = order::tar_name(entry);
    let headers = header::encode(entry, &name)?;
    out.write_all(&headers).map_err(stream)?;
    let EntryKind::File { source, size } = &entry.kind else {
        return Ok(());
    };
    match source {
        Source::Bytes(bytes) => {
            if bytes.len() as u64 != *size {
                return Err(ImageError::InvalidEntry {
                    path: entry.path.clone(),
                    reason: "in-memory file size does not match the entry size",
                });
            }
            out.write_all(bytes).map_err(stream)?;
        }
        Source::Path(path) => {
            let file = File::options()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(path)
                .map_err(|e| ImageError::io("open", path, e))?;
            let meta = file
                .metadata()
                .map_err(|e| ImageError::io("stat", path, e))?;
            if !meta.is_file() {
                return Err(ImageError::InvalidEntry {
                    path: entry.path.clone(),
                    reason: "source is not a regular file",
                });
            }
            if meta.len() != *size {
                return Err(ImageError::FileSizeChanged {
                    path: path.clone(),
                    expected: *size,
                    found: meta.len(),
                });
            }
            let mut reader = file.take(*size);
            let mut copied = 0u64;
            loop {
                let n = match reader.read(buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(ImageError::io("read", path, e)),
                };
                out.write_all(&buf[..n]).map_err(stream)?;
                copied += n as u64;
            }
            if copied != *size {
                return Err(ImageError::FileSizeChanged {
                    path: path.clone(),
                    expected: *size,
                    found: copied,
                });
            }
        }
    }
    let pad = (512 - (size % 512) as usize) % 512;
    out.write_all(&[0u8; 512][..pad]).map_err(stream)?;
    Ok(())
}

/// Hashes the uncompressed tar on its way into the compressor.
struct DiffIdWriter<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> Write for DiffIdWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, uid: u32, mtime: i64) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::File {
                source: Source::Bytes(b"abc".to_vec()),
                size: 3,
            },
            mode: 0o640,
            uid,
            gid: 5,
            mtime,
            mtime_nsec: 7,
            xattrs: Default::default(),
        }
    }

    #[test]
    fn tar_crate_reads_pax_values_and_epoch_clamps() {
        let long = format!("{}/f", "d".repeat(150));
        let entries = vec![file(&long, 3_000_000, 2_000_000_000), file("a", 1, 10)];
        let mut out = Vec::new();
        assert!(write_tar(entries, &mut out, Some(1_000_000_000)).is_ok());
        let mut ar = tar::Archive::new(&out[..]);
        let mut seen = Vec::new();
        for e in ar.entries().into_iter().flatten() {
            let Ok(mut e) = e else { panic!("bad entry") };
            let path = e
                .path()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            let uid = e.header().uid().unwrap_or(0);
            let mtime = e.header().mtime().unwrap_or(0);
            let mut pax_uid = None;
            if let Ok(Some(exts)) = e.pax_extensions() {
                for x in exts.flatten() {
                    if x.key() == Ok("uid") {
                        pax_uid = x.value().ok().map(str::to_string);
                    }
                }
            }
            seen.push((path, uid, mtime, pax_uid));
        }
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].0, "a");
        assert_eq!(seen[0].2, 10);
        assert_eq!(seen[1].0, long);
        assert_eq!(
            seen[1].2, 1_000_000_000,
            "mtime clamped to SOURCE_DATE_EPOCH"
        );
        assert_eq!(seen[1].3.as_deref(), Some("3000000"));
    }

    #[test]
    fn tar_len_is_the_written_length() {
        let long = format!("{}/f", "d".repeat(150));
        let entries = vec![
            file(&long, 3_000_000, 2_000_000_000),
            file("a", 1, 10),
            Entry {
                path: "d".into(),
                kind: EntryKind::Dir,
                mode: 0o755,
                uid: 0,
                gid: 0,
                mtime: 5,
                mtime_nsec: 0,
                xattrs: Default::default(),
            },
        ];
        for epoch in [None, Some(1_000_000_000)] {
            let mut out = Vec::new();
            assert!(write_tar(entries.clone(), &mut out, epoch).is_ok());
            assert_eq!(tar_len(&entries, epoch).ok(), Some(out.len() as u64));
        }
    }
}
