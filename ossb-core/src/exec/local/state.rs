//! The state of a stage while it builds: the image being assembled and its filesystem index.

use crate::error::Error;
use crate::exec::compress::decompress;
use crate::exec::fsindex::FsIndex;
use crate::exec::transfer::StoredImage;
use crate::image::builder::ImageBuilder;
use crate::image::oci::Platform;
use crate::image::store::Store;
use std::sync::Arc;

/// One stage's image under construction.
#[derive(Debug, Clone)]
pub struct StageState {
    /// Config, layers and history so far.
    pub builder: ImageBuilder,
    /// The merged filesystem metadata of those layers.
    pub index: FsIndex,
    /// Whether this stage set `CMD` itself (an inherited `CMD` is reset by `ENTRYPOINT`).
    pub cmd_set: bool,
    /// The stage's filesystem on disk, made on the first `RUN` and kept in step afterwards.
    /// Not shared: a stage started from this one unpacks its own copy.
    /// Removed in parallel when the last clone drops it.
    pub rootfs: Option<Arc<crate::exec::remove::TreeDir>>,
    /// The cache key of everything so far (base and steps).
    pub key: String,
    /// `created` of the newest layer: metadata-only steps take it, so an unchanged rebuild
    /// gives the same config.
    pub last_created: Option<String>,
    /// Layers of `RUN` hits not yet applied to `index` (their blobs may still be in a
    /// `--cache-from` cache); the first step that needs the index applies them.
    pub deferred: Vec<(crate::image::digest::Digest, u64)>,
    /// The cache records of the layers so far (base stages' included), for `--cache-to`.
    pub chain: Vec<(super::cache::CacheKey, super::cache::Record)>,
    /// `--no-cache-filter` names this stage: its steps ignore the cache.
    pub no_cache: bool,
    /// The platform the stage builds for when it is not the build's target (`FROM
    /// --platform=...`, or inherited from such a base stage); `None` means the target. Step
    /// keys use it, so the platforms of a multi-platform build share such a stage's steps.
    pub platform: Option<Platform>,
}

impl StageState {
    /// Add a history entry for a step without a layer, dated like the newest layer.
    pub fn add_meta_history(&mut self, now: &str, created_by: String) {
        let created = self.last_created.clone().unwrap_or_else(|| now.to_string());
        self.builder.add_empty_history(crate::image::oci::History {
            created: Some(created),
            created_by: Some(created_by),
            ..Default::default()
        });
    }

    /// Add a layer made (or first made) at `created`.
    pub fn add_layer(
        &mut self,
        layer: &crate::image::layer::LayerInfo,
        created: &str,
        created_by: String,
    ) {
        self.builder.add_layer(
            layer,
            crate::image::oci::History {
                created: Some(created.to_string()),
                created_by: Some(created_by),
                ..Default::default()
            },
        );
        self.last_created = Some(created.to_string());
    }

    /// `FROM scratch`.
    pub fn scratch(platform: &Platform) -> Self {
        // BuildKit's empty image: working directory `/` and the default PATH.
        let mut builder = ImageBuilder::scratch(platform);
        let cfg = &mut builder.config_mut().config;
        cfg.working_dir = "/".into();
        if platform.os != "windows" {
            cfg.env =
                vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()];
        }
        StageState {
            builder,
            index: FsIndex::new(),
            cmd_set: false,
            rootfs: None,
            key: {
                let mut k = super::cache::KeyBuilder::new("scratch");
                k.field("platform", platform.to_string().as_bytes());
                k.finish()
            },
            last_created: None,
            deferred: Vec::new(),
            chain: Vec::new(),
            no_cache: false,
            platform: None,
        }
    }

    /// A stage based on an image in the store; its layers are read once to index them.
    pub fn from_image(store: &Store, image: &StoredImage) -> Result<Self, Error> {
        let mut index = FsIndex::new();
        for layer in &image.manifest.layers {
            let blob = store.open_blob_sized(&layer.digest, layer.size)?;
            let (_, reader) = decompress(blob).map_err(|e| {
                Error::new(
                    crate::ExitCode::Build,
                    format!("cannot read layer {} of the base image: {e}", layer.digest),
                )
            })?;
            index.apply_tar(reader).map_err(|e| {
                Error::new(
                    crate::ExitCode::Build,
                    format!(
                        "layer {} of the base image is not a valid tar: {e}",
                        layer.digest
                    ),
                )
            })?;
        }
        let mut builder = ImageBuilder::new(image.config.clone(), image.manifest.layers.clone());
        // A base image's `created` belongs to the base; ours is set when the image is written.
        let last_created = builder.config_mut().created.take();
        Ok(StageState {
            builder,
            index,
            cmd_set: false,
            rootfs: None,
            key: image.manifest_desc.digest.to_string(),
            last_created,
            deferred: Vec::new(),
            chain: Vec::new(),
            no_cache: false,
            platform: None,
        })
    }
}
