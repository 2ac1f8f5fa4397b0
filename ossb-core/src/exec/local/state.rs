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
    pub rootfs: Option<Arc<tempfile::TempDir>>,
}

impl StageState {
    /// `FROM scratch`.
    pub fn scratch(platform: &Platform) -> Self {
        StageState {
            builder: ImageBuilder::scratch(platform),
            index: FsIndex::new(),
            cmd_set: false,
            rootfs: None,
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
        builder.config_mut().created = None;
        Ok(StageState {
            builder,
            index,
            cmd_set: false,
            rootfs: None,
        })
    }
}
