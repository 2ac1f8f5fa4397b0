//! Resolving what a stage starts from, and what `COPY --from` reads: `scratch`, an earlier
//! stage, an image in a registry, an OCI layout, or a named build context.

use crate::error::{Error, ExitCode};
use crate::exec::transfer::{self, StoredImage};
use crate::exec::unpack::unpack_layer;
use crate::exec::{Root, compress::decompress};
use crate::image::digest::Digest;
use crate::image::layout::{LayoutRef, import_layout};
use crate::image::oci::{Manifest, Platform};
use crate::image::store::Store;
use crate::ports::RegistryPort;
use crate::progress::ProgressSink;
use crate::reference::Reference;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where an image name points after named build contexts are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// A registry reference.
    Registry(Reference),
    /// An OCI layout on disk.
    Layout(String),
    /// A local directory (only valid as a `COPY --from` source).
    Directory(PathBuf),
}

/// The `--build-context` value for `name`: by the name as given, else like BuildKit's
/// `NamedContext` by its familiar form without `:latest` (`FROM base` is planned as
/// `docker.io/library/base:latest` but matches `--build-context base=...`).
fn named_context<'a>(name: &str, contexts: &'a BTreeMap<String, String>) -> Option<&'a str> {
    if let Some(v) = contexts.get(name) {
        return Some(v);
    }
    let familiar = Reference::parse(name).ok()?.familiar();
    let short = familiar.strip_suffix(":latest").unwrap_or(&familiar);
    contexts
        .get(short)
        .or_else(|| contexts.get(&familiar))
        .map(String::as_str)
}

/// Apply `--build-context name=value` overrides and the `oci-layout://` scheme to `name`.
pub fn classify(name: &str, contexts: &BTreeMap<String, String>) -> Result<ImageSource, Error> {
    let named = named_context(name, contexts);
    let value = named.unwrap_or(name);
    if value.starts_with("oci-layout://") {
        return Ok(ImageSource::Layout(value.to_string()));
    }
    if let Some(r) = value.strip_prefix("docker-image://") {
        return Ok(ImageSource::Registry(Reference::parse(r)?));
    }
    if named.is_some() {
        if value.contains("://") {
            return Err(Error::new(
                ExitCode::Configuration,
                format!(
                    "--build-context {name}={value}: unsupported scheme (use oci-layout://, docker-image:// or a directory)"
                ),
            ));
        }
        return Ok(ImageSource::Directory(PathBuf::from(value)));
    }
    Ok(ImageSource::Registry(Reference::parse(value)?))
}

/// Everything needed to fetch images.
pub struct Fetcher<'a> {
    /// The content store.
    pub store: &'a Store,
    /// The registry client, when one is configured.
    pub registry: Option<&'a dyn RegistryPort>,
    /// The target platform.
    pub platform: &'a Platform,
    /// Progress events go here.
    pub progress: &'a dyn ProgressSink,
    /// `--pull`: always resolve registry images in the registry, never from a copy the
    /// local store holds under the same name.
    pub pull: bool,
}

impl Fetcher<'_> {
    /// Bring an image into the store and return it.
    pub fn image(&self, source: &ImageSource) -> Result<StoredImage, Error> {
        match source {
            ImageSource::Layout(spec) => {
                let layout = LayoutRef::parse(spec)?;
                if !layout.dir.join("oci-layout").is_file() {
                    return Err(Error::new(
                        ExitCode::Build,
                        format!(
                            "{spec}: {} is not an OCI image layout (no oci-layout file)",
                            layout.dir.display()
                        ),
                    ));
                }
                let desc = import_layout(self.store, &layout, Some(self.platform))?;
                transfer::resolve_stored(self.store, &desc, self.platform, spec)
            }
            ImageSource::Registry(reference) => match self.registry {
                Some(port) => {
                    if !self.pull
                        && let Some(image) = self.stored_copy(reference)
                    {
                        return Ok(image);
                    }
                    transfer::pull(self.store, port, reference, self.platform, self.progress)
                }
                None => {
                    let desc = self.store.get_ref(&reference.to_string()).map_err(|_| {
                        Error::new(
                            ExitCode::Registry,
                            format!(
                                "image {reference} is not in the local store and no registry client is configured"
                            ),
                        )
                    })?;
                    transfer::resolve_stored(
                        self.store,
                        &desc,
                        self.platform,
                        &reference.to_string(),
                    )
                }
            },
            ImageSource::Directory(dir) => Err(Error::new(
                ExitCode::Build,
                format!(
                    "{} is a directory build context; it can only be used with COPY --from",
                    dir.display()
                ),
            )),
        }
    }

    /// The image the local store holds under `reference` (an image built with `-t`), when it
    /// has one for the platform: like docker, a local image is used unless `--pull` is given.
    fn stored_copy(&self, reference: &Reference) -> Option<StoredImage> {
        let desc = self.store.get_ref(&reference.to_string()).ok()?;
        let image =
            transfer::resolve_stored(self.store, &desc, self.platform, &reference.to_string())
                .ok()?;
        let cfg = &image.config;
        let platform = Platform {
            architecture: cfg.architecture.clone(),
            os: cfg.os.clone(),
            variant: cfg.variant.clone(),
            ..Platform::default()
        };
        // A stored single-platform image for another platform is not a copy of this one.
        (cfg.architecture.is_empty() || self.platform.matches(&platform)).then_some(image)
    }
}

/// Unpack layers into a fresh directory under `scratch` (for `COPY --from` sources).
pub fn materialize(
    store: &Store,
    layers: &[(Digest, u64)],
    scratch: &Path,
) -> Result<tempfile::TempDir, Error> {
    let dir = tempfile::Builder::new()
        .prefix("rootfs-")
        .tempdir_in(scratch)
        .map_err(|e| {
            Error::new(
                ExitCode::Resource,
                format!("cannot create a temp dir in {}: {e}", scratch.display()),
            )
        })?;
    let root =
        Root::open_host(dir.path()).map_err(|e| Error::new(ExitCode::General, e.to_string()))?;
    for (digest, size) in layers {
        let blob = store.open_blob_sized(digest, *size)?;
        let (_, reader) = decompress(blob)
            .map_err(|e| Error::new(ExitCode::Build, format!("cannot read layer {digest}: {e}")))?;
        unpack_layer(&root, reader).map_err(|e| {
            Error::new(
                ExitCode::Build,
                format!("cannot unpack layer {digest}: {e}"),
            )
        })?;
    }
    Ok(dir)
}

/// The layers of a manifest as `(digest, size)` pairs.
pub fn manifest_layers(manifest: &Manifest) -> Vec<(Digest, u64)> {
    manifest
        .layers
        .iter()
        .map(|l| (l.digest.clone(), l.size))
        .collect()
}
