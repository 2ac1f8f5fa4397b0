//! The image index of a multi-platform build: one entry per platform's image manifest.

use super::error::Result;
use super::oci::{Descriptor, Index, media_types as mt, to_json};
use super::store::Store;
use std::collections::BTreeMap;

/// Writes an OCI image index over `manifests` (each with its platform set, in the order
/// given) into `store`, with `annotations` on the index; returns its descriptor.
pub fn write_index(
    store: &Store,
    manifests: &[Descriptor],
    annotations: BTreeMap<String, String>,
) -> Result<Descriptor> {
    let mut index = Index::new(Some(mt::OCI_INDEX));
    index.manifests = manifests.to_vec();
    index.annotations = annotations;
    let bytes = to_json("image index", &index)?;
    let blob = store.put_bytes(&bytes)?;
    Ok(Descriptor::new(mt::OCI_INDEX, blob.digest, blob.size))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::image::oci::{Platform, from_json};

    #[test]
    fn the_index_lists_each_manifest_with_its_platform() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut descs = Vec::new();
        for (i, p) in ["linux/amd64", "linux/arm64"].iter().enumerate() {
            let blob = store
                .put_bytes(format!("{{\"m\":{i}}}").as_bytes())
                .unwrap();
            let mut d = Descriptor::new(mt::OCI_MANIFEST, blob.digest, blob.size);
            d.platform = Some(Platform::parse(p).unwrap());
            descs.push(d);
        }
        let ann = BTreeMap::from([("k".to_string(), "v".to_string())]);
        let desc = write_index(&store, &descs, ann).unwrap();
        assert_eq!(desc.media_type, mt::OCI_INDEX);
        let index: Index = from_json("index", &store.read_blob(&desc.digest).unwrap()).unwrap();
        assert_eq!(index.manifests, descs);
        assert_eq!(index.annotations.get("k").map(String::as_str), Some("v"));
        // Same input, same bytes.
        let again = write_index(&store, &descs, index.annotations.clone()).unwrap();
        assert_eq!(again.digest, desc.digest);
    }
}
