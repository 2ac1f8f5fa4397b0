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

    /// The digest of the manifest `reference` names, or `None` when the registry does not have
    /// it (used to skip builds whose content-addressed image exists). The default fetches the
    /// manifest and cannot tell "missing" from other failures; adapters should override it.
    fn manifest_digest(&self, reference: &Reference) -> Result<Option<Digest>, Error> {
        self.fetch_manifest(reference).map(|m| Some(m.digest))
    }

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

    /// Mount a blob that `from_repository` (on the same registry as `reference`) has into
    /// `reference`'s repository without uploading it. `Ok(true)` when mounted; `Ok(false)`
    /// when the registry declined (then the blob must be uploaded). Adapters that cannot
    /// mount keep this default, which always declines.
    fn mount_blob(
        &self,
        reference: &Reference,
        digest: &Digest,
        from_repository: &str,
    ) -> Result<bool, Error> {
        let _ = (reference, digest, from_repository);
        Ok(false)
    }

    /// Upload a manifest or index under `reference`'s tag (or digest); returns its digest.
    fn push_manifest(
        &self,
        reference: &Reference,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Digest, Error>;
}

/// What a [`UrlFetcher`] learned while downloading a URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchedUrl {
    /// The number of bytes written to the destination.
    pub size: u64,
    /// The `Last-Modified` header as seconds since the epoch, when the server sent a valid one
    /// (BuildKit gives the downloaded file this modification time).
    pub last_modified: Option<i64>,
    /// The file name from a `Content-Disposition` header, when there was one. Dockerfile
    /// builds name the file after the URL path (as BuildKit's frontend does); this is
    /// informational.
    pub content_disposition_filename: Option<String>,
    /// The URL the content finally came from, after redirects.
    pub final_url: String,
}

/// Downloads `ADD https://…` sources. `ossb-registry` implements it over HTTP(S); the core
/// verifies checksums and turns the download into layer entries.
pub trait UrlFetcher: Send + Sync {
    /// Stream the body of `url` (following redirects) into `dest`. A non-success status, a
    /// network failure or an interrupted body that cannot be resumed is an error whose message
    /// names the URL and the cause (`ADD https://x/y: HTTP 404 Not Found`); errors are already
    /// classified (exit code 2, a build failure, as BuildKit reports them; 5 for a bad local
    /// configuration such as an unreadable CA file).
    fn fetch(&self, url: &str, dest: &mut dyn Write) -> Result<FetchedUrl, Error>;
}
