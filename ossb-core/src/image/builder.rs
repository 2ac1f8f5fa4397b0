//! Assembles config and manifest blobs from a base config plus appended layers and history.

use super::digest::Digest;
use super::error::Result;
use super::layer::LayerInfo;
use super::oci::{
    Descriptor, History, ImageConfig, Manifest, Platform, media_types as mt, to_json,
};
use super::store::Store;

/// Accumulates an image: the (base) config, its layers, and what the build appends.
#[derive(Debug, Clone)]
pub struct ImageBuilder {
    config: ImageConfig,
    layers: Vec<Descriptor>,
    docker_media_types: bool,
    annotations: std::collections::BTreeMap<String, String>,
}

/// The blobs written by [`ImageBuilder::write`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    /// The manifest descriptor (with the platform), ready for a ref, an index or a push.
    pub manifest: Descriptor,
    /// The config descriptor.
    pub config: Descriptor,
}

impl ImageBuilder {
    /// Starts from a base image: its config (diff ids and history included) and its manifest's
    /// layer descriptors, in the same order.
    pub fn new(base_config: ImageConfig, base_layers: Vec<Descriptor>) -> Self {
        ImageBuilder {
            config: base_config,
            layers: base_layers,
            docker_media_types: false,
            annotations: Default::default(),
        }
    }

    /// Starts from `scratch` for `platform`.
    pub fn scratch(platform: &Platform) -> Self {
        let config = ImageConfig {
            architecture: platform.architecture.clone(),
            os: platform.os.clone(),
            variant: platform.variant.clone(),
            os_version: platform.os_version.clone(),
            os_features: platform.os_features.clone(),
            ..ImageConfig::default()
        };
        Self::new(config, Vec::new())
    }

    /// Writes Docker schema2 media types (manifest, config, layers) instead of OCI ones.
    pub fn docker_media_types(mut self, docker: bool) -> Self {
        self.docker_media_types = docker;
        self
    }

    /// The config, for instructions that change it (`ENV`, `CMD`, `LABEL`, ...).
    pub fn config_mut(&mut self) -> &mut ImageConfig {
        &mut self.config
    }

    /// The layer descriptors so far, bottom first.
    pub fn layers(&self) -> &[Descriptor] {
        &self.layers
    }

    /// The config as it stands.
    pub fn config(&self) -> &ImageConfig {
        &self.config
    }

    /// Sets a manifest annotation.
    pub fn annotate(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.annotations.insert(key.into(), value.into());
    }

    /// Appends a layer and its history entry.
    pub fn add_layer(&mut self, layer: &LayerInfo, mut history: History) {
        history.empty_layer = false;
        self.config.rootfs.diff_ids.push(layer.diff_id.clone());
        self.layers.push(layer.descriptor());
        self.config.history.push(history);
    }

    /// Appends a history entry for a step without a layer (`ENV`, `WORKDIR` without change).
    pub fn add_empty_history(&mut self, mut history: History) {
        history.empty_layer = true;
        self.config.history.push(history);
    }

    /// The platform the config describes.
    pub fn platform(&self) -> Platform {
        Platform {
            architecture: self.config.architecture.clone(),
            os: self.config.os.clone(),
            os_version: self.config.os_version.clone(),
            os_features: self.config.os_features.clone(),
            variant: self.config.variant.clone(),
        }
    }

    /// Writes the config and manifest blobs into `store` and returns their descriptors.
    pub fn write(&self, store: &Store) -> Result<BuiltImage> {
        let docker = self.docker_media_types;
        let config_bytes = to_json("image config", &self.config)?;
        let config_blob = store.put_bytes(&config_bytes)?;
        let config = Descriptor::new(
            if docker {
                mt::DOCKER_CONFIG
            } else {
                mt::OCI_CONFIG
            },
            config_blob.digest,
            config_blob.size,
        );
        let layers = self
            .layers
            .iter()
            .map(|l| {
                let mut l = l.clone();
                l.media_type = convert_layer_media_type(&l.media_type, docker).to_string();
                l
            })
            .collect();
        let manifest_mt = if docker {
            mt::DOCKER_MANIFEST
        } else {
            mt::OCI_MANIFEST
        };
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(manifest_mt.to_string()),
            artifact_type: None,
            config: config.clone(),
            layers,
            subject: None,
            annotations: self.annotations.clone(),
        };
        let manifest_bytes = to_json("manifest", &manifest)?;
        let blob = store.put_bytes(&manifest_bytes)?;
        let mut desc = Descriptor::new(manifest_mt, blob.digest, blob.size);
        desc.platform = Some(self.platform());
        Ok(BuiltImage {
            manifest: desc,
            config,
        })
    }
}

/// The layer media type in the OCI or Docker family with the same compression; foreign and
/// unknown types are kept.
pub fn convert_layer_media_type(media_type: &str, docker: bool) -> &str {
    match (media_type, docker) {
        (mt::OCI_LAYER_GZIP, true) => mt::DOCKER_LAYER_GZIP,
        (mt::OCI_LAYER_TAR, true) => mt::DOCKER_LAYER_TAR,
        (mt::OCI_LAYER_ZSTD, true) => mt::DOCKER_LAYER_ZSTD,
        (mt::DOCKER_LAYER_GZIP, false) => mt::OCI_LAYER_GZIP,
        (mt::DOCKER_LAYER_TAR, false) => mt::OCI_LAYER_TAR,
        (mt::DOCKER_LAYER_ZSTD, false) => mt::OCI_LAYER_ZSTD,
        (other, _) => other,
    }
}

/// The digest of a config as [`ImageBuilder::write`] would store it (the image id).
pub fn config_digest(config: &ImageConfig) -> Result<Digest> {
    Ok(Digest::of(&to_json("image config", config)?))
}
