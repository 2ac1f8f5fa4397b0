//! Layer compression: none, gzip (block-parallel, deterministic at any thread count) and zstd.

use std::io::{self, Write};

use super::oci::media_types as mt;

pub mod pgzip;

pub use pgzip::ParallelGzip;

/// Inputs at least this large are zstd-compressed on several workers.
pub const ZSTD_MT_MIN: u64 = 4 << 20;

/// How a layer is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Uncompressed tar.
    None,
    /// Gzip at `level` (0-9); BuildKit's default.
    Gzip {
        /// Deflate level, 0 (store) to 9 (best).
        level: u32,
    },
    /// Zstandard at `level` (1-22).
    Zstd {
        /// Zstd level.
        level: i32,
    },
}

impl Default for Compression {
    fn default() -> Self {
        Compression::Gzip { level: 6 }
    }
}

impl Compression {
    /// The OCI layer media type for this compression.
    pub fn oci_media_type(&self) -> &'static str {
        match self {
            Compression::None => mt::OCI_LAYER_TAR,
            Compression::Gzip { .. } => mt::OCI_LAYER_GZIP,
            Compression::Zstd { .. } => mt::OCI_LAYER_ZSTD,
        }
    }

    /// The Docker schema2 layer media type for this compression.
    pub fn docker_media_type(&self) -> &'static str {
        match self {
            Compression::None => mt::DOCKER_LAYER_TAR,
            Compression::Gzip { .. } => mt::DOCKER_LAYER_GZIP,
            Compression::Zstd { .. } => mt::DOCKER_LAYER_ZSTD,
        }
    }

    /// Wraps `inner` in a compressing writer using up to `threads` threads.
    pub fn writer<W: Write>(&self, inner: W, threads: usize) -> io::Result<CompressWriter<W>> {
        self.writer_sized(inner, threads, None)
    }

    /// Like [`Compression::writer`], told roughly how many bytes will be written: zstd uses
    /// `threads` workers only for inputs of at least [`ZSTD_MT_MIN`] bytes (or of unknown
    /// size), where the worker hand-off pays for itself. The output is one ordinary zstd frame
    /// either way, readable by `zstd -d` and every OCI tool.
    pub fn writer_sized<W: Write>(
        &self,
        inner: W,
        threads: usize,
        size_hint: Option<u64>,
    ) -> io::Result<CompressWriter<W>> {
        Ok(match *self {
            Compression::None => CompressWriter::Plain(inner),
            Compression::Gzip { level } => {
                CompressWriter::Gzip(Box::new(ParallelGzip::new(inner, level.min(9), threads)))
            }
            Compression::Zstd { level } => {
                let mut enc = zstd::stream::write::Encoder::new(inner, level)?;
                let large = size_hint.is_none_or(|n| n >= ZSTD_MT_MIN);
                if threads > 1 && large {
                    enc.multithread(threads.min(64) as u32)?;
                }
                CompressWriter::Zstd(Box::new(enc))
            }
        })
    }
}

/// A streaming compressor; call [`CompressWriter::finish`] to write the trailer.
pub enum CompressWriter<W: Write> {
    /// No compression.
    Plain(W),
    /// Block-parallel gzip.
    Gzip(Box<ParallelGzip<W>>),
    /// Zstd.
    Zstd(Box<zstd::stream::write::Encoder<'static, W>>),
}

impl<W: Write> CompressWriter<W> {
    /// Flushes everything, writes the trailer and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            CompressWriter::Plain(mut w) => {
                w.flush()?;
                Ok(w)
            }
            CompressWriter::Gzip(g) => g.finish(),
            CompressWriter::Zstd(z) => z.finish(),
        }
    }
}

impl<W: Write> Write for CompressWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            CompressWriter::Plain(w) => w.write(buf),
            CompressWriter::Gzip(g) => g.write(buf),
            CompressWriter::Zstd(z) => z.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            CompressWriter::Plain(w) => w.flush(),
            CompressWriter::Gzip(g) => g.flush(),
            CompressWriter::Zstd(z) => z.flush(),
        }
    }
}

/// A sensible default thread count for compression: the available parallelism.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_zstd_inputs_compress_on_workers_into_one_decodable_stream() {
        // Above the threshold, in pieces, like the tar writer hands them over.
        let data: Vec<u8> = (0..(ZSTD_MT_MIN as usize + 1_000_000))
            .map(|i| (i % 251) as u8 ^ (i / 4096) as u8)
            .collect();
        for (threads, hint) in [(4, Some(data.len() as u64)), (1, None), (4, Some(10))] {
            let mut w = Compression::Zstd { level: 3 }
                .writer_sized(Vec::new(), threads, hint)
                .expect("encoder");
            for chunk in data.chunks(100_000) {
                w.write_all(chunk).expect("write");
            }
            let compressed = w.finish().expect("finish");
            assert!(compressed.len() < data.len() / 4, "it compresses");
            let back = zstd::stream::decode_all(compressed.as_slice()).expect("decodes");
            assert!(back == data, "{threads} threads, hint {hint:?}: round trip");
        }
    }
}
