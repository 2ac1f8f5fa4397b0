//! The error type of the image module: every variant names the cause and, where there is one,
//! the fix.

use std::path::PathBuf;

use super::digest::Digest;

/// An error while handling image content (digests, the store, layers, outputs).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// A digest string is not `sha256:<64 lowercase hex>`.
    #[error("invalid digest {value:?}: expected sha256:<64 lowercase hex digits>")]
    InvalidDigest {
        /// The text that failed to parse.
        value: String,
    },
    /// Content hashed to another digest than the one expected.
    #[error(
        "digest mismatch: expected {expected}, found {found}; the content is corrupt, delete it and fetch it again"
    )]
    DigestMismatch {
        /// The digest that was asked for.
        expected: Digest,
        /// The digest of the bytes actually read.
        found: Digest,
    },
    /// Content has another size than the one expected.
    #[error(
        "size mismatch for {digest}: expected {expected} bytes, found {found}; the content is truncated or corrupt"
    )]
    SizeMismatch {
        /// The digest of the content.
        digest: Digest,
        /// The size that was asked for.
        expected: u64,
        /// The size actually found.
        found: u64,
    },
    /// A blob is missing from the store.
    #[error("blob {digest} is not in the store at {root}; pull or rebuild the image")]
    BlobNotFound {
        /// The missing digest.
        digest: Digest,
        /// The store root.
        root: PathBuf,
    },
    /// A file-system operation failed.
    #[error("cannot {op} {path}: {source}")]
    Io {
        /// What was being done (`open`, `rename`).
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A write to a stream (not a named path) failed.
    #[error("cannot write {what}: {source}")]
    Stream {
        /// What was being written.
        what: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// JSON did not parse or serialize.
    #[error("invalid json in {what}: {source}")]
    Json {
        /// Which document.
        what: String,
        /// The parser error.
        #[source]
        source: serde_json::Error,
    },
    /// A platform string is malformed.
    #[error("invalid platform {value:?}: expected os/arch[/variant], e.g. linux/arm64/v8")]
    InvalidPlatform {
        /// The text that failed to parse.
        value: String,
    },
    /// A layer entry is malformed.
    #[error("invalid layer entry {path:?}: {reason}")]
    InvalidEntry {
        /// The entry path.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A source file changed size between the snapshot and the layer write.
    #[error(
        "file {path} has {found} bytes but the entry says {expected}; it changed during the build, rebuild the layer"
    )]
    FileSizeChanged {
        /// The host file.
        path: PathBuf,
        /// Size in the entry.
        expected: u64,
        /// Size found on disk.
        found: u64,
    },
    /// A tag or reference is not known.
    #[error("reference {name:?} not found in {place}; check the name or build/pull it first")]
    RefNotFound {
        /// The reference asked for.
        name: String,
        /// Where it was looked up.
        place: String,
    },
    /// A reference name cannot be stored.
    #[error(
        "invalid reference name {name:?}: it must be non-empty and contain no control characters"
    )]
    InvalidRefName {
        /// The rejected name.
        name: String,
    },
    /// No manifest in an index matches the wanted platform.
    #[error("no manifest for platform {platform} in index {digest}; pick one of: {available}")]
    NoMatchingPlatform {
        /// The platform asked for.
        platform: String,
        /// The index digest.
        digest: Digest,
        /// The platforms present.
        available: String,
    },
    /// A media type is not one this code handles here.
    #[error("unsupported media type {media_type:?} for {what}")]
    UnsupportedMediaType {
        /// The media type found.
        media_type: String,
        /// What it was used for.
        what: &'static str,
    },
    /// An OCI image layout or archive is malformed.
    #[error("invalid image layout at {path}: {reason}")]
    InvalidLayout {
        /// The layout root or archive.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A compression worker thread died.
    #[error("compression worker failed: {reason}")]
    Compression {
        /// What happened.
        reason: String,
    },
}

impl ImageError {
    /// Wraps an I/O error with the operation and path it concerns.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ImageError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Wraps a JSON error with the document it concerns.
    pub fn json(what: impl Into<String>, source: serde_json::Error) -> Self {
        ImageError::Json {
            what: what.into(),
            source,
        }
    }
}

/// Result alias of the image module.
pub type Result<T, E = ImageError> = std::result::Result<T, E>;
