//! Ports the core needs from adapters. `ossb-registry` implements [`RegistryPort`]; the core
//! does the orchestration (platform selection, verification, what to upload) so every adapter
//! behaves the same.

use crate::error::Error;
use crate::image::digest::Digest;
use crate::reference::Reference;
use std::io::Write;
use std::path::Path;

/// A manifest or index as the registry returned it.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    /// The raw bytes (digests are computed over exactly these).
    pub bytes: Vec<u8>,
    /// The `Content-Type` the registry gave.
    pub media_type: String,
    /// The digest of `bytes` (verified by the adapter against `Docker-Content-Digest`).
    pub digest: Digest,
}

/// Raw registry operations, blocking. Errors must already be classified (exit code 3 for
/// registry problems, 4 for authentication) and name the registry and the operation.
pub trait RegistryPort: Send + Sync {
    /// Fetch the manifest or index that `reference` names (by tag or digest).
    fn fetch_manifest(&self, reference: &Reference) -> Result<FetchedManifest, Error>;

    /// Stream a blob of `reference`'s repository into `out`, verifying its digest; returns the
    /// number of bytes written.
    fn fetch_blob(
        &self,
        reference: &Reference,
        digest: &Digest,
        out: &mut dyn Write,
    ) -> Result<u64, Error>;

    /// Whether the repository already has the blob.
    fn blob_exists(&self, reference: &Reference, digest: &Digest) -> Result<bool, Error>;

    /// Upload the blob stored at `path` (its digest and size are known).
    fn push_blob(
        &self,
        reference: &Reference,
        digest: &Digest,
        size: u64,
        path: &Path,
    ) -> Result<(), Error>;

    /// Upload a manifest or index under `reference`'s tag (or digest); returns its digest.
    fn push_manifest(
        &self,
        reference: &Reference,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Digest, Error>;
}
