//! [`ossb_core::ports::RegistryPort`] for [`BlockingRegistryClient`]: how the synchronous core
//! pulls and pushes through this crate.

use crate::{
    BlockingRegistryClient, CredentialChain, Digest, MountOutcome, RegistryConfig, RegistryError,
};
use ossb_core::image::digest::Digest as CoreDigest;
use ossb_core::ports::{FetchedManifest, RegistryPort};
use ossb_core::reference::Reference;
use ossb_core::{Error, ExitCode};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

/// The registry client as the core's port.
#[derive(Debug)]
pub struct RegistryAdapter {
    client: BlockingRegistryClient,
}

fn to_core_error(err: RegistryError) -> Error {
    Error::new(err.exit_code(), err.to_string())
}

fn to_registry_digest(d: &CoreDigest) -> Result<Digest, Error> {
    Digest::parse(&d.to_string()).map_err(|e| Error::new(ExitCode::General, e.to_string()))
}

fn to_core_digest(d: &Digest) -> Result<CoreDigest, Error> {
    CoreDigest::parse(d.as_str()).map_err(|e| {
        Error::new(
            ExitCode::Registry,
            format!("the registry returned an unsupported digest: {e}"),
        )
    })
}

impl RegistryAdapter {
    /// An adapter over a client.
    pub fn new(client: BlockingRegistryClient) -> Self {
        RegistryAdapter { client }
    }

    /// A client from `config` with the full [`CredentialChain`] (configuration, Kubernetes
    /// secret mounts, auth files, Docker config and helpers, cloud providers) over the
    /// process environment.
    pub fn from_config(config: RegistryConfig) -> Result<Self, Error> {
        let chain = Arc::new(CredentialChain::from_env(&config));
        Ok(Self::new(
            BlockingRegistryClient::with_credentials(config, chain).map_err(to_core_error)?,
        ))
    }
}

impl RegistryPort for RegistryAdapter {
    fn manifest_digest(&self, reference: &Reference) -> Result<Option<CoreDigest>, Error> {
        match self
            .client
            .head_manifest(reference)
            .map_err(to_core_error)?
        {
            Some(info) => Ok(Some(to_core_digest(&info.digest)?)),
            None => Ok(None),
        }
    }

    fn fetch_manifest(&self, reference: &Reference) -> Result<FetchedManifest, Error> {
        let (bytes, media_type, digest) =
            self.client.get_manifest(reference).map_err(to_core_error)?;
        Ok(FetchedManifest {
            bytes,
            media_type,
            digest: to_core_digest(&digest)?,
        })
    }

    fn fetch_blob(
        &self,
        reference: &Reference,
        digest: &CoreDigest,
        out: &mut dyn Write,
    ) -> Result<u64, Error> {
        self.client
            .get_blob_to_writer(reference, &to_registry_digest(digest)?, out)
            .map_err(to_core_error)
    }

    fn blob_exists(&self, reference: &Reference, digest: &CoreDigest) -> Result<bool, Error> {
        self.client
            .blob_exists(reference, &to_registry_digest(digest)?)
            .map_err(to_core_error)
    }

    fn push_blob(
        &self,
        reference: &Reference,
        digest: &CoreDigest,
        size: u64,
        path: &Path,
    ) -> Result<(), Error> {
        self.client
            .put_blob_with_digest(reference, path, &to_registry_digest(digest)?, size)
            .map_err(to_core_error)
    }

    fn mount_blob(
        &self,
        reference: &Reference,
        digest: &CoreDigest,
        from_repository: &str,
    ) -> Result<bool, Error> {
        let outcome = self
            .client
            .mount_blob(
                reference,
                &to_registry_digest(digest)?,
                from_repository,
                None,
            )
            .map_err(to_core_error)?;
        Ok(outcome == MountOutcome::Mounted)
    }

    fn push_manifest(
        &self,
        reference: &Reference,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<CoreDigest, Error> {
        let d = self
            .client
            .put_manifest(reference, bytes, media_type)
            .map_err(to_core_error)?;
        to_core_digest(&d)
    }
}
