//! The closure of an image: every blob a manifest or index needs.

use std::collections::BTreeSet;

use super::Store;
use crate::image::error::{ImageError, Result};
use crate::image::oci::{Descriptor, media_types};

impl Store {
    /// `root` and every descriptor reachable from it, parents before children, without
    /// duplicates. Manifests of an index that are absent (platforms never pulled) are skipped;
    /// any other missing blob is an error.
    pub fn closure(&self, root: &Descriptor) -> Result<Vec<Descriptor>> {
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        let mut stack = vec![(root.clone(), false)];
        while let Some((desc, optional)) = stack.pop() {
            if !seen.insert(desc.digest.clone()) {
                continue;
            }
            if !self.has(&desc.digest) {
                if optional {
                    continue;
                }
                return Err(ImageError::BlobNotFound {
                    digest: desc.digest.clone(),
                    root: self.root().to_path_buf(),
                });
            }
            let from_index = media_types::is_index(&desc.media_type);
            let children = self.children(&desc)?;
            out.push(desc);
            for child in children.into_iter().rev() {
                stack.push((child, from_index));
            }
        }
        Ok(out)
    }
}
