//! The local build cache: a key per step, chained from the parent's key, and a record of the
//! layer the step produced, kept in the store. Equal keys give equal layers, so a hit reuses the
//! stored layer without running the step.
//!
//! Keys cover what ends up in the layer and nothing else: the instruction with its expanded
//! arguments, the build args it uses, the platform, and for COPY/ADD the sources' paths, types,
//! modes, owners, link targets and content digests (not their mtimes: on a hit the old layer,
//! old mtimes included, is reused, so an mtime-only change gives the same image digest, as in
//! BuildKit). Secret mount contents never enter a key. Content digests come from a stat cache
//! (path, size, mtime, ctime, inode, mode -> sha256), so an unchanged context is checked
//! without reading file contents.

use crate::error::{Error, ExitCode};
use crate::image::digest::Digest;
use crate::image::entry::{Entry, EntryKind, Source};
use crate::image::layer::LayerInfo;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::collections::HashSet;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

/// A cache key: 64 hex digits.
pub type CacheKey = String;

/// Accumulates the inputs of a key; fields are length-prefixed so no two inputs collide.
#[derive(Default)]
pub struct KeyBuilder(Sha256);

impl KeyBuilder {
    /// A key derived from `parent`.
    pub fn new(parent: &str) -> Self {
        let mut k = KeyBuilder(Sha256::new());
        k.field("parent", parent.as_bytes());
        k
    }

    /// Add one named input.
    pub fn field(&mut self, name: &str, value: &[u8]) -> &mut Self {
        for part in [name.as_bytes(), value] {
            self.0.update((part.len() as u64).to_le_bytes());
            self.0.update(part);
        }
        self
    }

    /// The key.
    pub fn finish(self) -> CacheKey {
        hex::encode(self.0.finalize())
    }
}

/// What a cache record remembers about a layer-producing step.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Record {
    /// The compressed blob.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// Its media type.
    pub media_type: String,
    /// The uncompressed digest.
    pub diff_id: Digest,
    /// Uncompressed size.
    pub uncompressed_size: u64,
    /// When the layer was first made (its history `created`), reused on hits so an unchanged
    /// rebuild gives the same image.
    pub created: String,
    /// Wall-clock seconds since the epoch when the record was first written; the age
    /// `--cache-ttl` is measured from. Unlike `created` it ignores `SOURCE_DATE_EPOCH`.
    /// Records written before this field existed fall back to `created`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub made_at: Option<i64>,
}

impl Record {
    /// The layer as the image builder wants it.
    pub fn layer(&self) -> LayerInfo {
        LayerInfo {
            diff_id: self.diff_id.clone(),
            digest: self.digest.clone(),
            size: self.size,
            media_type: self.media_type.clone(),
            uncompressed_size: self.uncompressed_size,
        }
    }

    /// A record of a layer just written at `created`.
    pub fn of(info: &LayerInfo, created: &str) -> Self {
        Record {
            digest: info.digest.clone(),
            size: info.size,
            media_type: info.media_type.clone(),
            diff_id: info.diff_id.clone(),
            uncompressed_size: info.uncompressed_size,
            created: created.to_string(),
            made_at: Some(now_secs()),
        }
    }

    /// When the record was made: `made_at`, else its `created` time.
    pub fn made(&self) -> Option<i64> {
        self.made_at.or_else(|| {
            chrono::DateTime::parse_from_rfc3339(&self.created)
                .ok()
                .map(|t| t.timestamp())
        })
    }

    /// Whether the record may still be used at `now` (seconds since the epoch) under `ttl`.
    /// A record whose age cannot be told is stale under any TTL.
    pub fn is_fresh(&self, ttl: Option<std::time::Duration>, now: i64) -> bool {
        let Some(ttl) = ttl else { return true };
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        self.made()
            .is_some_and(|made| now.saturating_sub(made) <= ttl)
    }
}

/// Wall-clock seconds since the epoch.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// Cache records in the store (`cache/v1/<key>.json`).
pub struct CacheStore {
    dir: PathBuf,
}

impl CacheStore {
    /// The cache below a store root.
    pub fn open(store_root: &Path) -> Result<Self, Error> {
        let dir = store_root.join("cache").join("v1");
        std::fs::create_dir_all(&dir).map_err(|e| {
            Error::new(
                ExitCode::Resource,
                format!("cannot create {}: {e}", dir.display()),
            )
        })?;
        Ok(CacheStore { dir })
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    /// The record for `key`, when there is one whose blob is still in `store`.
    pub fn get(&self, key: &str, store: &crate::image::store::Store) -> Option<Record> {
        let bytes = std::fs::read(self.path(key)).ok()?;
        let record: Record = serde_json::from_slice(&bytes).ok()?;
        store.has(&record.digest).then_some(record)
    }

    /// Remember `record` under `key` (atomically; a failure only costs a future miss).
    pub fn put(&self, key: &str, record: &Record) {
        let Ok(bytes) = serde_json::to_vec(record) else {
            return;
        };
        if let Err(e) = super::write_atomic(&self.path(key), &bytes, "cache record") {
            tracing::debug!(component = "cache", error = %e, "cache record not written");
        }
    }

    /// Forget every record (their layers go at the next garbage collection).
    pub fn clear(&self) -> Result<(), Error> {
        let dir = std::fs::read_dir(&self.dir).map_err(|e| {
            Error::new(
                ExitCode::General,
                format!("cannot list {}: {e}", self.dir.display()),
            )
        })?;
        for entry in dir.flatten() {
            std::fs::remove_file(entry.path()).map_err(|e| {
                Error::new(
                    ExitCode::General,
                    format!("cannot remove {}: {e}", entry.path().display()),
                )
            })?;
        }
        Ok(())
    }

    /// Every record (for garbage collection roots).
    pub fn records(&self) -> Vec<Record> {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        dir.filter_map(|e| std::fs::read(e.ok()?.path()).ok())
            .filter_map(|b| serde_json::from_slice(&b).ok())
            .collect()
    }
}

/// File identity that changes whenever the content may have changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
    dev: u64,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Self {
        Stamp {
            size: meta.size(),
            mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
            ctime_ns: meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128,
            ino: meta.ino(),
            dev: meta.dev(),
        }
    }
}

/// Content digests of host files, remembered by stamp across builds.
pub struct StatCache {
    path: PathBuf,
    entries: Mutex<HashMap<PathBuf, (Stamp, String)>>,
    dirty: Mutex<bool>,
    /// Bytes of file content read to hash it (stamp misses).
    read: std::sync::atomic::AtomicU64,
}

impl StatCache {
    /// Load the stat cache of a store (empty when missing or unreadable).
    pub fn load(store_root: &Path) -> Self {
        let path = store_root.join("cache").join("v1-statcache.tsv");
        let mut entries = HashMap::new();
        if let Ok(text) = std::fs::read_to_string(&path) {
            for line in text.lines() {
                let f: Vec<&str> = line.splitn(7, '\t').collect();
                if f.len() != 7 {
                    continue;
                }
                let (Ok(size), Ok(mtime_ns), Ok(ctime_ns), Ok(ino), Ok(dev)) = (
                    f[1].parse(),
                    f[2].parse(),
                    f[3].parse(),
                    f[4].parse(),
                    f[5].parse(),
                ) else {
                    continue;
                };
                entries.insert(
                    PathBuf::from(f[6]),
                    (
                        Stamp {
                            size,
                            mtime_ns,
                            ctime_ns,
                            ino,
                            dev,
                        },
                        f[0].to_string(),
                    ),
                );
            }
        }
        StatCache {
            path,
            entries: Mutex::new(entries),
            dirty: Mutex::new(false),
            read: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The sha256 (hex) of the file at `path`, from the cache when its stamp is unchanged.
    pub fn digest(&self, path: &Path) -> std::io::Result<String> {
        let meta = std::fs::symlink_metadata(path)?;
        let stamp = Stamp::of(&meta);
        if let Ok(map) = self.entries.lock()
            && let Some((s, d)) = map.get(path)
            && *s == stamp
        {
            return Ok(d.clone());
        }
        let mut file = std::fs::File::open(path)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            self.read
                .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        }
        let digest = hex::encode(hasher.finalize());
        if let Ok(mut map) = self.entries.lock() {
            map.insert(path.to_path_buf(), (stamp, digest.clone()));
        }
        if let Ok(mut d) = self.dirty.lock() {
            *d = true;
        }
        Ok(digest)
    }

    /// Bytes read so far to hash files whose stamp was new.
    pub fn bytes_read(&self) -> u64 {
        self.read.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Write the cache back when it changed.
    pub fn save(&self) {
        if !self.dirty.lock().map(|d| *d).unwrap_or(false) {
            return;
        }
        let Ok(map) = self.entries.lock() else { return };
        let mut text = String::with_capacity(map.len() * 120);
        for (path, (s, d)) in map.iter() {
            let Some(p) = path.to_str() else { continue };
            if p.contains(['\t', '\n']) {
                continue;
            }
            text.push_str(&format!(
                "{d}\t{}\t{}\t{}\t{}\t{}\t{p}\n",
                s.size, s.mtime_ns, s.ctime_ns, s.ino, s.dev
            ));
        }
        if let Err(e) = super::write_atomic(&self.path, text.as_bytes(), "stat cache") {
            tracing::debug!(component = "cache", error = %e, "stat cache not written");
        }
    }
}

/// Add the entries a COPY/ADD would write to a key: metadata that ends up in the layer and
/// content digests, hashed on `threads` threads. Mtimes are left out on purpose.
pub fn add_entries(
    key: &mut KeyBuilder,
    entries: &[Entry],
    stat: &StatCache,
    threads: usize,
) -> Result<(), Error> {
    let files: Vec<(usize, &Path)> = entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match &e.kind {
            EntryKind::File {
                source: Source::Path(p),
                ..
            } => Some((i, p.as_path())),
            _ => None,
        })
        .collect();
    let digests: Mutex<HashMap<usize, String>> = Mutex::new(HashMap::with_capacity(files.len()));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..threads.clamp(1, 8) {
            scope.spawn(|| {
                loop {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some((i, path)) = files.get(n) else {
                        return;
                    };
                    match stat.digest(path) {
                        Ok(d) => {
                            if let Ok(mut m) = digests.lock() {
                                m.insert(*i, d);
                            }
                        }
                        Err(e) => {
                            if let Ok(mut f) = failure.lock() {
                                f.get_or_insert(Error::new(
                                    ExitCode::Build,
                                    format!("cannot read {}: {e}", path.display()),
                                ));
                            }
                            return;
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().ok().flatten() {
        return Err(e);
    }
    let digests = digests.into_inner().unwrap_or_default();
    for (i, e) in entries.iter().enumerate() {
        let kind = match &e.kind {
            EntryKind::File {
                source: Source::Bytes(b),
                size,
            } => {
                format!("file {size} {}", hex::encode(Sha256::digest(b)))
            }
            EntryKind::File { size, .. } => {
                format!(
                    "file {size} {}",
                    digests.get(&i).map(String::as_str).unwrap_or("")
                )
            }
            EntryKind::Dir => "dir".into(),
            EntryKind::Symlink { target } => format!("symlink {target}"),
            EntryKind::Hardlink { target } => format!("hardlink {target}"),
            EntryKind::CharDevice { major, minor } => format!("char {major} {minor}"),
            EntryKind::BlockDevice { major, minor } => format!("block {major} {minor}"),
            EntryKind::Fifo => "fifo".into(),
            EntryKind::Whiteout => "whiteout".into(),
            EntryKind::OpaqueDir => "opaque".into(),
        };
        let line = format!("{} {:o} {}:{} {kind}", e.path, e.mode, e.uid, e.gid);
        key.field("entry", line.as_bytes());
        for (name, value) in &e.xattrs {
            key.field(name, value);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_depend_on_every_field_and_its_boundaries() {
        let k = |parts: &[(&str, &str)]| {
            let mut b = KeyBuilder::new("p");
            for (n, v) in parts {
                b.field(n, v.as_bytes());
            }
            b.finish()
        };
        assert_eq!(k(&[("a", "1")]), k(&[("a", "1")]));
        assert_ne!(k(&[("a", "1")]), k(&[("a", "2")]));
        assert_ne!(
            k(&[("ab", "")]),
            k(&[("a", "b")]),
            "length prefixes keep fields apart"
        );
        assert_ne!(KeyBuilder::new("x").finish(), KeyBuilder::new("y").finish());
    }

    #[test]
    fn stat_cache_rehashes_only_when_the_stamp_changes_and_survives_a_reload() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("f");
        std::fs::write(&f, b"one").expect("write");
        let cache = StatCache::load(dir.path());
        let d1 = cache.digest(&f).expect("digest");
        assert_eq!(d1, hex::encode(Sha256::digest(b"one")));
        cache.save();
        let reloaded = StatCache::load(dir.path());
        assert_eq!(reloaded.digest(&f).expect("digest"), d1);
        std::fs::write(&f, b"two").expect("rewrite");
        assert_eq!(
            reloaded.digest(&f).expect("digest"),
            hex::encode(Sha256::digest(b"two"))
        );
    }

    #[test]
    fn entry_keys_ignore_mtime_but_not_content_mode_or_owner() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("f");
        std::fs::write(&f, b"data").expect("write");
        let stat = StatCache::load(dir.path());
        let entry = |mode, uid, mtime| Entry {
            path: "app/f".into(),
            kind: EntryKind::File {
                source: Source::Path(f.clone()),
                size: 4,
            },
            mode,
            uid,
            gid: 0,
            mtime,
            mtime_nsec: 0,
            xattrs: Default::default(),
        };
        let key = |e: Entry| {
            let mut k = KeyBuilder::new("p");
            add_entries(&mut k, &[e], &stat, 2).expect("hash");
            k.finish()
        };
        let base = key(entry(0o644, 0, 1));
        assert_eq!(
            base,
            key(entry(0o644, 0, 999)),
            "mtime is not part of the key"
        );
        assert_ne!(base, key(entry(0o600, 0, 1)));
        assert_ne!(base, key(entry(0o644, 1000, 1)));
        std::fs::write(&f, b"DATA").expect("rewrite");
        assert_ne!(base, key(entry(0o644, 0, 1)), "content is part of the key");
    }
}

/// The keys of the steps being built right now, shared by the platforms of one build: a step
/// whose key another platform is building waits for it and then finds its cache record (as
/// BuildKit's solver runs equal vertices once). A thread holds at most one claim at a time,
/// so claims cannot deadlock.
#[derive(Default)]
pub struct InFlight {
    keys: Mutex<HashSet<String>>,
    done: Condvar,
}

/// A claim on a key, released on drop.
pub struct Claim<'a> {
    owner: &'a InFlight,
    key: String,
}

impl InFlight {
    /// Claim `key`, waiting while another thread holds it.
    pub fn claim(&self, key: &str) -> Claim<'_> {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        while keys.contains(key) {
            keys = self.done.wait(keys).unwrap_or_else(|p| p.into_inner());
        }
        keys.insert(key.to_string());
        Claim {
            owner: self,
            key: key.to_string(),
        }
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let mut keys = self.owner.keys.lock().unwrap_or_else(|p| p.into_inner());
        keys.remove(&self.key);
        self.owner.done.notify_all();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod in_flight_tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn one_holder_per_key_at_a_time() {
        let flights = InFlight::default();
        let inside = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..50 {
                        let _c = flights.claim("k");
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::yield_now();
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                });
            }
        });
        assert_eq!(most.load(Ordering::SeqCst), 1);
        // Different keys do not wait for each other.
        let _a = flights.claim("a");
        let _b = flights.claim("b");
    }
}
