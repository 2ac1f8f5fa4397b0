//! Where the store's blobs are known to exist on registries, so that a push can ask the
//! registry to mount a blob from another repository instead of uploading it again.
//!
//! The record is `registry-blobs.json` in the store root: a map from digest to
//! `registry/repository` locations, most recent first, at most [`MAX_PER_BLOB`] per blob.
//! Pulls and pushes add to it; it is rewritten atomically under `registry-blobs.lock`, and
//! entries of blobs that are no longer in the store are dropped then. It is a cache: a missing
//! or unreadable file means nothing is known, and a stale entry only costs a declined mount.

use std::collections::BTreeMap;

use crate::error::Error;
use crate::image::digest::Digest;
use crate::image::error::ImageError;
use crate::image::store::{Store, StoreLock, refs_write_atomic};

/// The file name in the store root.
pub const FILE_NAME: &str = "registry-blobs.json";
/// The lock file serialising updates.
const LOCK_NAME: &str = "registry-blobs.lock";
/// Locations kept per blob.
pub const MAX_PER_BLOB: usize = 8;

/// The known registry locations of blobs, as loaded from the store.
#[derive(Debug, Clone, Default)]
pub struct BlobSources {
    /// digest -> `registry/repository`, most recent first.
    map: BTreeMap<String, Vec<String>>,
}

impl BlobSources {
    /// Loads the record of `store`; empty when there is none or it cannot be read (it is
    /// only a cache).
    pub fn load(store: &Store) -> Self {
        let path = store.root().join(FILE_NAME);
        let map = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable registry blob record");
                BTreeMap::new()
            }),
            Err(_) => BTreeMap::new(),
        };
        BlobSources { map }
    }

    /// The repositories on `registry` known to hold `digest`, most recent first.
    pub fn repositories_on<'a>(
        &'a self,
        digest: &Digest,
        registry: &'a str,
    ) -> impl Iterator<Item = &'a str> + 'a {
        self.map
            .get(&digest.to_string())
            .into_iter()
            .flatten()
            .filter_map(move |loc| {
                loc.strip_prefix(registry)
                    .and_then(|rest| rest.strip_prefix('/'))
            })
    }

    /// Records that `registry/repository` holds `digests`, merging with what other processes
    /// wrote meanwhile, and writes the record atomically.
    pub fn record(
        store: &Store,
        registry: &str,
        repository: &str,
        digests: &[Digest],
    ) -> Result<(), Error> {
        if digests.is_empty() {
            return Ok(());
        }
        let root = store.root();
        let _guard = StoreLock::acquire(&root.join(LOCK_NAME), true)?;
        let mut current = Self::load(store);
        current.map.retain(|d, _| {
            Digest::parse(d).is_ok_and(|d| store.has(&d))
                || digests.iter().any(|x| x.to_string() == *d)
        });
        let location = format!("{registry}/{repository}");
        for d in digests {
            let list = current.map.entry(d.to_string()).or_default();
            list.retain(|l| *l != location);
            list.insert(0, location.clone());
            list.truncate(MAX_PER_BLOB);
        }
        let bytes = serde_json::to_vec(&current.map)
            .map_err(|e| Error::from(ImageError::json(FILE_NAME, e)))?;
        refs_write_atomic(root, FILE_NAME, &bytes)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_merge_and_look_up_by_registry() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let a = store.put_bytes(b"layer a").expect("put").digest;
        let b = store.put_bytes(b"layer b").expect("put").digest;
        assert_eq!(
            BlobSources::load(&store)
                .repositories_on(&a, "r:5000")
                .count(),
            0
        );
        BlobSources::record(&store, "r:5000", "team/one", &[a.clone(), b.clone()]).expect("record");
        BlobSources::record(&store, "r:5000", "team/two", std::slice::from_ref(&a))
            .expect("record");
        BlobSources::record(&store, "other.io", "x", std::slice::from_ref(&a)).expect("record");
        let s = BlobSources::load(&store);
        assert_eq!(
            s.repositories_on(&a, "r:5000").collect::<Vec<_>>(),
            ["team/two", "team/one"]
        );
        assert_eq!(
            s.repositories_on(&b, "r:5000").collect::<Vec<_>>(),
            ["team/one"]
        );
        assert_eq!(
            s.repositories_on(&a, "r:500").count(),
            0,
            "no prefix matches"
        );
        // Recording again moves the location to the front without duplicating it.
        BlobSources::record(&store, "r:5000", "team/one", std::slice::from_ref(&a))
            .expect("record");
        assert_eq!(
            BlobSources::load(&store)
                .repositories_on(&a, "r:5000")
                .collect::<Vec<_>>(),
            ["team/one", "team/two"]
        );
    }

    #[test]
    fn bounded_and_pruned_and_tolerant() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let a = store.put_bytes(b"kept").expect("put").digest;
        for i in 0..(MAX_PER_BLOB + 3) {
            BlobSources::record(&store, "r", &format!("repo{i}"), std::slice::from_ref(&a))
                .expect("record");
        }
        let s = BlobSources::load(&store);
        assert_eq!(s.repositories_on(&a, "r").count(), MAX_PER_BLOB);
        // A blob no longer in the store is dropped at the next write.
        let gone = Digest::of(b"not in the store");
        BlobSources::record(&store, "r", "x", std::slice::from_ref(&gone)).expect("record");
        BlobSources::record(&store, "r", "y", std::slice::from_ref(&a)).expect("record");
        assert_eq!(
            BlobSources::load(&store)
                .repositories_on(&gone, "r")
                .count(),
            0
        );
        // A corrupt record is ignored and replaced.
        std::fs::write(dir.path().join(FILE_NAME), b"{not json").expect("write");
        assert_eq!(
            BlobSources::load(&store).repositories_on(&a, "r").count(),
            0
        );
        BlobSources::record(&store, "r", "z", std::slice::from_ref(&a)).expect("record");
        assert_eq!(
            BlobSources::load(&store)
                .repositories_on(&a, "r")
                .collect::<Vec<_>>(),
            ["z"]
        );
    }
}
