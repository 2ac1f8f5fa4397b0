//! Content digests (`sha256:<hex>`) and readers/writers that hash what passes through them.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

use super::error::ImageError;

/// A validated `sha256:<64 lowercase hex>` content digest.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest {
    hex: String,
}

impl Digest {
    /// The algorithm prefix used by every digest this crate produces.
    pub const ALGORITHM: &'static str = "sha256";

    /// Parses `sha256:<64 lowercase hex>`.
    pub fn parse(value: &str) -> Result<Self, ImageError> {
        let invalid = || ImageError::InvalidDigest {
            value: value.to_string(),
        };
        let hex = value.strip_prefix("sha256:").ok_or_else(invalid)?;
        Self::from_hex(hex).map_err(|_| invalid())
    }

    /// Builds a digest from its 64 lowercase hex digits.
    pub fn from_hex(hex: &str) -> Result<Self, ImageError> {
        let ok = hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !ok {
            return Err(ImageError::InvalidDigest {
                value: hex.to_string(),
            });
        }
        Ok(Digest {
            hex: hex.to_string(),
        })
    }

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self::from_raw(&Sha256::digest(bytes).into())
    }

    /// The digest from a raw 32-byte SHA-256 value.
    pub fn from_raw(raw: &[u8; 32]) -> Self {
        Digest {
            hex: hex::encode(raw),
        }
    }

    /// The 64 hex digits without the algorithm prefix.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The algorithm name (`sha256`).
    pub fn algorithm(&self) -> &'static str {
        Self::ALGORITHM
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest(sha256:{})", self.hex)
    }
}

impl FromStr for Digest {
    type Err = ImageError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// An incremental SHA-256 with a byte count.
#[derive(Clone, Default)]
pub struct Hasher {
    inner: Sha256,
    len: u64,
}

impl Hasher {
    /// A fresh hasher.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.inner.update(bytes);
        self.len += bytes.len() as u64;
    }

    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing has been fed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The digest of everything fed so far.
    pub fn digest(&self) -> Digest {
        Digest::from_raw(&self.inner.clone().finalize().into())
    }
}

/// A writer that hashes and counts every byte written through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Hasher::new(),
        }
    }

    /// Digest and byte count of what was written so far.
    pub fn digest(&self) -> (Digest, u64) {
        (self.hasher.digest(), self.hasher.len())
    }

    /// The wrapped writer.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// Returns the inner writer with the digest and size of what was written.
    pub fn finish(self) -> (W, Digest, u64) {
        let (d, n) = self.digest();
        (self.inner, d, n)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes and counts every byte read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Hasher::new(),
        }
    }

    /// Digest and byte count of what was read so far.
    pub fn digest(&self) -> (Digest, u64) {
        (self.hasher.digest(), self.hasher.len())
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// A reader that checks, at end of stream, that the content matches a digest and size; a
/// mismatch surfaces as an `io::ErrorKind::InvalidData` error wrapping [`ImageError`].
pub struct VerifyingReader<R> {
    inner: HashingReader<R>,
    expected: Digest,
    expected_size: Option<u64>,
}

impl<R: Read> VerifyingReader<R> {
    /// Wraps `inner`, expecting `digest` (and `size` when given).
    pub fn new(inner: R, digest: Digest, size: Option<u64>) -> Self {
        VerifyingReader {
            inner: HashingReader::new(inner),
            expected: digest,
            expected_size: size,
        }
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let (found, len) = self.inner.digest();
        if let Some(size) = self.expected_size
            && len > size
        {
            return Err(invalid(ImageError::SizeMismatch {
                digest: self.expected.clone(),
                expected: size,
                found: len,
            }));
        }
        if n == 0 && !buf.is_empty() {
            if let Some(size) = self.expected_size
                && len != size
            {
                return Err(invalid(ImageError::SizeMismatch {
                    digest: self.expected.clone(),
                    expected: size,
                    found: len,
                }));
            }
            if found != self.expected {
                return Err(invalid(ImageError::DigestMismatch {
                    expected: self.expected.clone(),
                    found,
                }));
            }
        }
        Ok(n)
    }
}

fn invalid(e: ImageError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let d = Digest::of(b"");
        assert_eq!(
            d.to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(Digest::parse(&d.to_string()).ok(), Some(d));
        for bad in [
            "",
            "sha256:",
            "sha512:00",
            "sha256:E3B0",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ] {
            assert!(Digest::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn verifying_reader_catches_corruption() {
        let good = Digest::of(b"hello");
        let mut out = Vec::new();
        let mut r = VerifyingReader::new(&b"hello"[..], good.clone(), Some(5));
        assert!(r.read_to_end(&mut out).is_ok());
        let mut r = VerifyingReader::new(&b"hellp"[..], good, Some(5));
        assert!(r.read_to_end(&mut out).is_err());
    }
}
