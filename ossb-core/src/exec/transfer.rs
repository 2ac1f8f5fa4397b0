//! Moving images between a registry and the content store: pull a base image (platform
//! selection, verification, blobs only fetched when missing) and push a built image (blobs the
//! registry already has are skipped, uploads run in parallel, the manifest goes last).

use crate::error::{Error, ExitCode};
use crate::exec::blob_sources::BlobSources;
use crate::image::digest::Digest;
use crate::image::oci::{self, Descriptor, ImageConfig, Index, Manifest, Platform, media_types};
use crate::image::store::Store;
use crate::ports::RegistryPort;
use crate::progress::{ProgressEvent, ProgressSink};
use crate::reference::Reference;
use std::sync::Mutex;
use std::time::Instant;

/// An image available in the store: its manifest and parsed config.
#[derive(Debug, Clone)]
pub struct StoredImage {
    /// Descriptor of the manifest blob.
    pub manifest_desc: Descriptor,
    /// The manifest.
    pub manifest: Manifest,
    /// The image config.
    pub config: ImageConfig,
}

/// Pick the manifest for `platform` from an index, or say which platforms exist.
pub fn select_platform(
    index: &Index,
    platform: &Platform,
    what: &str,
) -> Result<Descriptor, Error> {
    let wanted = platform.normalize();
    index
        .manifests
        .iter()
        .find(|d| d.platform.as_ref().is_some_and(|p| wanted.matches(&p.normalize())))
        .cloned()
        .ok_or_else(|| {
            let have: Vec<String> = index
                .manifests
                .iter()
                .filter_map(|d| d.platform.as_ref())
                .map(|p| p.to_string())
                .collect();
            Error::new(
                ExitCode::Build,
                format!(
                    "{what} has no image for platform {platform}; it has: {} (pick one with --platform)",
                    if have.is_empty() { "none".to_string() } else { have.join(", ") }
                ),
            )
        })
}

/// Load an image whose manifest is in the store.
pub fn load_stored(store: &Store, manifest_desc: &Descriptor) -> Result<StoredImage, Error> {
    let manifest: Manifest = oci::from_json("manifest", &store.read_blob(&manifest_desc.digest)?)?;
    let config: ImageConfig =
        oci::from_json("image config", &store.read_blob(&manifest.config.digest)?)?;
    Ok(StoredImage {
        manifest_desc: manifest_desc.clone(),
        manifest,
        config,
    })
}

/// Resolve a manifest or index in the store to the image for `platform`.
pub fn resolve_stored(
    store: &Store,
    desc: &Descriptor,
    platform: &Platform,
    what: &str,
) -> Result<StoredImage, Error> {
    if media_types::is_index(&desc.media_type) {
        let index: Index = oci::from_json("index", &store.read_blob(&desc.digest)?)?;
        let chosen = select_platform(&index, platform, what)?;
        return load_stored(store, &chosen);
    }
    load_stored(store, desc)
}

/// Pull `reference` for `platform` into the store, fetching only blobs the store lacks and
/// verifying every digest.
pub fn pull(
    store: &Store,
    port: &dyn RegistryPort,
    reference: &Reference,
    platform: &Platform,
    progress: &dyn ProgressSink,
) -> Result<StoredImage, Error> {
    let started = Instant::now();
    let mut fetched = port.fetch_manifest(reference)?;
    let mut bytes_moved = fetched.bytes.len() as u64;
    if media_types::is_index(&fetched.media_type) {
        let index: Index = oci::from_json("index", &fetched.bytes)?;
        let chosen = select_platform(&index, platform, &reference.to_string())?;
        fetched = port.fetch_manifest(&reference.with_digest(&chosen.digest.to_string())?)?;
        bytes_moved += fetched.bytes.len() as u64;
    }
    if !media_types::is_manifest(&fetched.media_type) {
        return Err(Error::new(
            ExitCode::Registry,
            format!(
                "{reference} is a {:?}, not an image manifest (is it an artifact?)",
                fetched.media_type
            ),
        ));
    }
    let manifest: Manifest = oci::from_json("manifest", &fetched.bytes)?;
    let stored = store.put_bytes(&fetched.bytes)?;
    if stored.digest != fetched.digest {
        return Err(Error::new(
            ExitCode::Registry,
            format!(
                "manifest of {reference} does not match its digest {}",
                fetched.digest
            ),
        ));
    }
    for desc in std::iter::once(&manifest.config).chain(manifest.layers.iter()) {
        if media_types::is_foreign_layer(&desc.media_type) || store.has(&desc.digest) {
            continue;
        }
        let mut writer = store.blob_writer()?;
        bytes_moved += port.fetch_blob(reference, &desc.digest, &mut writer)?;
        writer.commit_sized(Some(&desc.digest), Some(desc.size))?;
    }
    let held: Vec<Digest> = std::iter::once(&manifest.config)
        .chain(manifest.layers.iter())
        .filter(|d| !media_types::is_foreign_layer(&d.media_type))
        .map(|d| d.digest.clone())
        .collect();
    remember_sources(store, reference, &held);
    let manifest_desc = Descriptor::new(fetched.media_type.clone(), stored.digest, stored.size);
    progress.event(&ProgressEvent::Registry {
        operation: "pull".into(),
        registry: reference.registry.clone(),
        repository: reference.repository.clone(),
        bytes: bytes_moved,
        duration: started.elapsed(),
    });
    load_stored(store, &manifest_desc)
}

/// Push the image (manifest or index) `desc` from the store to `reference`. Blobs the
/// repository already has are skipped; the others upload on `jobs` threads; manifests go last
/// (children before the index) so a reader never sees a manifest with missing blobs.
pub fn push(
    store: &Store,
    port: &dyn RegistryPort,
    reference: &Reference,
    desc: &Descriptor,
    jobs: usize,
    progress: &dyn ProgressSink,
) -> Result<Digest, Error> {
    let started = Instant::now();
    let mut manifests: Vec<Descriptor> = Vec::new();
    let mut blobs: Vec<Descriptor> = Vec::new();
    if media_types::is_index(&desc.media_type) {
        let index: Index = oci::from_json("index", &store.read_blob(&desc.digest)?)?;
        manifests.extend(index.manifests.iter().cloned());
    } else {
        manifests.push(desc.clone());
    }
    for m in &manifests {
        let manifest: Manifest = oci::from_json("manifest", &store.read_blob(&m.digest)?)?;
        blobs.push(manifest.config.clone());
        blobs.extend(
            manifest
                .layers
                .iter()
                .filter(|l| !media_types::is_foreign_layer(&l.media_type))
                .cloned(),
        );
    }
    blobs.sort_by_key(|b| std::cmp::Reverse(b.size));
    blobs.dedup_by(|a, b| a.digest == b.digest);

    let sources = BlobSources::load(store);
    let queue = Mutex::new(blobs.into_iter());
    let uploaded = Mutex::new(0u64);
    let present: Mutex<Vec<Digest>> = Mutex::new(Vec::new());
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| {
                loop {
                    if first_error.lock().map(|e| e.is_some()).unwrap_or(true) {
                        return;
                    }
                    let Some(blob) = queue.lock().ok().and_then(|mut q| q.next()) else {
                        return;
                    };
                    let result = port
                        .blob_exists(reference, &blob.digest)
                        .and_then(|exists| {
                            if exists || mount_from_known(port, &sources, reference, &blob.digest) {
                                return Ok(0);
                            }
                            let path = store.blob_path(&blob.digest);
                            port.push_blob(reference, &blob.digest, blob.size, &path)
                                .map(|_| blob.size)
                        });
                    match result {
                        Ok(n) => {
                            if let Ok(mut u) = uploaded.lock() {
                                *u += n;
                            }
                            if let Ok(mut p) = present.lock() {
                                p.push(blob.digest.clone());
                            }
                        }
                        Err(e) => {
                            if let Ok(mut slot) = first_error.lock() {
                                slot.get_or_insert(e);
                            }
                            return;
                        }
                    }
                }
            });
        }
    });
    if let Some(err) = first_error.into_inner().ok().flatten() {
        return Err(err);
    }
    if media_types::is_index(&desc.media_type) {
        for m in &manifests {
            let bytes = store.read_blob(&m.digest)?;
            port.push_manifest(
                &reference.with_digest(&m.digest.to_string())?,
                &bytes,
                &m.media_type,
            )?;
        }
    }
    let bytes = store.read_blob(&desc.digest)?;
    let digest = port.push_manifest(reference, &bytes, &desc.media_type)?;
    remember_sources(store, reference, &present.into_inner().unwrap_or_default());
    progress.event(&ProgressEvent::Registry {
        operation: "push".into(),
        registry: reference.registry.clone(),
        repository: reference.repository.clone(),
        bytes: uploaded.into_inner().unwrap_or(0),
        duration: started.elapsed(),
    });
    Ok(digest)
}

/// Tries to mount `digest` into `reference`'s repository from the other repositories of the
/// same registry that are known to hold it (at most three). Any failure just means "not
/// mounted": the blob is uploaded instead.
fn mount_from_known(
    port: &dyn RegistryPort,
    sources: &BlobSources,
    reference: &Reference,
    digest: &Digest,
) -> bool {
    sources
        .repositories_on(digest, &reference.registry)
        .filter(|repo| *repo != reference.repository)
        .take(3)
        .any(|from| match port.mount_blob(reference, digest, from) {
            Ok(mounted) => {
                tracing::debug!(%digest, from, mounted, "cross-repository mount");
                mounted
            }
            Err(e) => {
                tracing::debug!(%digest, from, error = %e, "cross-repository mount failed; uploading");
                false
            }
        })
}

/// Records that `reference`'s repository holds `digests` (for later mounts). Best effort: a
/// failure to write the record is logged, never fatal.
fn remember_sources(store: &Store, reference: &Reference, digests: &[Digest]) {
    if let Err(e) = BlobSources::record(store, &reference.registry, &reference.repository, digests)
    {
        tracing::warn!(error = %e, "cannot record where blobs are on the registry; later pushes will not mount them");
    }
}
