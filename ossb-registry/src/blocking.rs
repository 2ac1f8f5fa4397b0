//! A blocking facade over [`RegistryClient`] for synchronous callers (ossb-core).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use ossb_core::reference::Reference;

use crate::client::RegistryClient;
use crate::config::RegistryConfig;
use crate::credentials::CredentialProvider;
use crate::digest::Digest;
use crate::error::{RegistryError, Result};
use crate::manifest::ManifestInfo;
use crate::upload::MountOutcome;

/// A [`RegistryClient`] with its own tokio runtime. Must not be used from inside an async
/// runtime (blocking there would panic); use [`RegistryClient`] directly in async code.
pub struct BlockingRegistryClient {
    runtime: tokio::runtime::Runtime,
    client: RegistryClient,
}

impl std::fmt::Debug for BlockingRegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingRegistryClient")
            .field("client", &self.client)
            .finish()
    }
}

impl BlockingRegistryClient {
    /// A blocking client using `config` and its inline credentials.
    pub fn new(config: RegistryConfig) -> Result<Self> {
        Self::from_client(RegistryClient::new(config)?)
    }

    /// A blocking client using `config` and a credential provider.
    pub fn with_credentials(
        config: RegistryConfig,
        credentials: Arc<dyn CredentialProvider>,
    ) -> Result<Self> {
        Self::from_client(RegistryClient::with_credentials(config, credentials))
    }

    /// Wraps an async client.
    pub fn from_client(client: RegistryClient) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ossb-registry")
            .enable_all()
            .build()
            .map_err(|e| {
                RegistryError::Config(format!("cannot start the registry client runtime: {e}"))
            })?;
        Ok(Self { runtime, client })
    }

    /// The async client inside.
    pub fn client(&self) -> &RegistryClient {
        &self.client
    }

    /// See [`RegistryClient::ping`].
    pub fn ping(&self, registry: &str) -> Result<()> {
        self.runtime.block_on(self.client.ping(registry))
    }

    /// See [`RegistryClient::get_manifest`].
    pub fn get_manifest(&self, r: &Reference) -> Result<(Vec<u8>, String, Digest)> {
        self.runtime.block_on(self.client.get_manifest(r))
    }

    /// See [`RegistryClient::head_manifest`].
    pub fn head_manifest(&self, r: &Reference) -> Result<Option<ManifestInfo>> {
        self.runtime.block_on(self.client.head_manifest(r))
    }

    /// Streams a blob into a `Write`, verifying its digest; see [`RegistryClient::get_blob_with`].
    pub fn get_blob_to_writer(
        &self,
        r: &Reference,
        digest: &Digest,
        out: &mut dyn Write,
    ) -> Result<u64> {
        let n = self.runtime.block_on(
            self.client
                .get_blob_with(r, digest, |chunk| out.write_all(chunk)),
        )?;
        out.flush().map_err(|source| RegistryError::Io {
            registry: r.registry.clone(),
            operation: format!("flushing blob {digest}"),
            source,
        })?;
        Ok(n)
    }

    /// See [`RegistryClient::blob_exists`].
    pub fn blob_exists(&self, r: &Reference, digest: &Digest) -> Result<bool> {
        self.runtime.block_on(self.client.blob_exists(r, digest))
    }

    /// See [`RegistryClient::put_blob`].
    pub fn put_blob(&self, r: &Reference, path: &Path) -> Result<Digest> {
        self.runtime.block_on(self.client.put_blob(r, path))
    }

    /// See [`RegistryClient::put_blob_with_digest`].
    pub fn put_blob_with_digest(
        &self,
        r: &Reference,
        path: &Path,
        digest: &Digest,
        size: u64,
    ) -> Result<()> {
        self.runtime
            .block_on(self.client.put_blob_with_digest(r, path, digest, size))
    }

    /// See [`RegistryClient::mount_blob`].
    pub fn mount_blob(
        &self,
        r: &Reference,
        digest: &Digest,
        from_repository: &str,
        fallback: Option<&Path>,
    ) -> Result<MountOutcome> {
        self.runtime
            .block_on(self.client.mount_blob(r, digest, from_repository, fallback))
    }

    /// See [`RegistryClient::put_manifest`].
    pub fn put_manifest(&self, r: &Reference, bytes: &[u8], media_type: &str) -> Result<Digest> {
        self.runtime
            .block_on(self.client.put_manifest(r, bytes, media_type))
    }
}
