//! `docker-archive` output: a tar loadable by `docker load` (and, thanks to the OCI layout files
//! it also carries, by OCI tools).
//!
//! ```text
//! manifest.json   [{"Config":"blobs/sha256/<config>","RepoTags":["name:tag"],"Layers":[...]}]
//! repositories    {"name":{"tag":"<config hex>"}}
//! oci-layout, index.json, blobs/sha256/...
//! ```
//! Layers stay compressed: `docker load` detects gzip and zstd itself.

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;

use super::entry::Source;
use super::error::{ImageError, Result};
use super::layer::write_tar;
use super::layout::{OCI_LAYOUT_FILE, blob_entries, dir_entry, file_entry, read_manifest};
use super::oci::{Descriptor, Index, media_types as mt, to_json};
use super::store::Store;

#[derive(Serialize)]
struct ArchiveManifest {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags")]
    repo_tags: Vec<String>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// Writes the image manifest `manifest` (from `store`) as a docker-archive tar to `out`,
/// tagged with `tags` (`name:tag`; `:latest` is added when the tag is missing).
pub fn write_docker_archive<W: Write>(
    store: &Store,
    manifest: &Descriptor,
    tags: &[String],
    out: &mut W,
) -> Result<()> {
    if !mt::is_manifest(&manifest.media_type) {
        return Err(ImageError::UnsupportedMediaType {
            media_type: manifest.media_type.clone(),
            what: "docker-archive (pick one platform's manifest from the index)",
        });
    }
    let m = read_manifest(store, manifest)?;
    let blob = |d: &Descriptor| format!("blobs/sha256/{}", d.digest.hex());
    let tags: Vec<String> = tags.iter().map(|t| normalize_tag(t)).collect();
    let doc = vec![ArchiveManifest {
        config: blob(&m.config),
        repo_tags: tags.clone(),
        layers: m.layers.iter().map(blob).collect(),
    }];
    let manifest_json = to_json("manifest.json", &doc)?;
    let mut repos: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for t in &tags {
        if let Some((name, tag)) = split_tag(t) {
            repos
                .entry(name.to_string())
                .or_default()
                .insert(tag.to_string(), m.config.digest.hex().to_string());
        }
    }
    let repos_json = to_json("repositories", &repos)?;
    let mut index = Index::new(Some(mt::OCI_INDEX));
    let mut entry = Descriptor::new(
        manifest.media_type.clone(),
        manifest.digest.clone(),
        manifest.size,
    );
    if let Some(t) = tags.first() {
        entry
            .annotations
            .insert("io.containerd.image.name".into(), t.clone());
        if let Some((_, tag)) = split_tag(t) {
            entry
                .annotations
                .insert(mt::ANNOTATION_REF_NAME.into(), tag.to_string());
        }
    }
    index.manifests.push(entry);
    let index_json = to_json("index.json", &index)?;

    let bytes_entry = |path: &str, b: Vec<u8>| {
        let n = b.len() as u64;
        file_entry(path, Source::Bytes(b), n)
    };
    let mut entries = vec![
        bytes_entry("manifest.json", manifest_json),
        bytes_entry("repositories", repos_json),
        bytes_entry("oci-layout", OCI_LAYOUT_FILE.as_bytes().to_vec()),
        bytes_entry("index.json", index_json),
        dir_entry("blobs"),
        dir_entry("blobs/sha256"),
    ];
    entries.extend(blob_entries(store, manifest)?);
    write_tar(entries, out, None)
}

/// Adds `:latest` when `name` has no tag.
pub fn normalize_tag(name: &str) -> String {
    if split_tag(name).is_some() {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

/// Splits `name:tag`, where the tag follows the last `/`.
fn split_tag(name: &str) -> Option<(&str, &str)> {
    let (n, t) = name.rsplit_once(':')?;
    (!t.contains('/') && !n.is_empty() && !t.is_empty()).then_some((n, t))
}
