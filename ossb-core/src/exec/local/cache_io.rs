//! Exporting the build cache (`--cache-to`) to a registry or an OCI layout directory, and
//! importing it (`--cache-from`).
//!
//! An export is an OCI image manifest whose config blob (media type [`CONFIG_MEDIA_TYPE`])
//! lists the cache records (key -> layer digest, size, media type, diff_id, created, made_at)
//! and whose layers are the records' layer blobs, so a registry keeps the blobs alive and a
//! later push can mount them. Metadata steps are not exported: a hit re-applies them from the
//! Dockerfile, and a layer's history line is derived from the step, so the records are all a
//! hit needs. Imported records are looked up after the store's own; their blobs are fetched
//! only when something reads them (a later `RUN` or `COPY`, an OCI/docker/store output), and a
//! push to the cache's registry mounts them instead (see docs/caching.md).

use super::BuildCtx;
use super::cache::Record;
use crate::backend::{CacheExport, CacheImport, CacheLocation};
use crate::error::{Error, ExitCode};
use crate::exec::transfer;
use crate::image::digest::Digest;
use crate::image::layout::{import_blob, write_layout_dir};
use crate::image::oci::{self, Descriptor, Index, Manifest, media_types as mt};
use crate::image::store::Store;
use crate::ports::RegistryPort;
use crate::progress::{ProgressEvent, ProgressSink};
use crate::reference::Reference;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The media type of the cache export's config blob (the record list).
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.ossb.cache.config.v1+json";
/// The `org.opencontainers.image.ref.name` of the cache manifest in a local layout.
pub const LOCAL_TAG: &str = "cache";
/// The version of the record list; a reader skips lists of other versions.
const FORMAT_VERSION: u32 = 1;

/// One exported record: the key and what the store's record holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportedRecord {
    /// The step's cache key.
    pub key: String,
    /// The layer it produced.
    #[serde(flatten)]
    pub record: Record,
}

/// The config blob of a cache export.
#[derive(Debug, Serialize, Deserialize)]
struct CacheConfig {
    version: u32,
    records: Vec<ExportedRecord>,
}

/// The record list of an export: records fresh under `ttl` at `now`, sorted by key, one per
/// key (the same inputs always give the same bytes).
pub fn encode(records: &[(String, Record)], ttl: Option<Duration>, now: i64) -> Vec<u8> {
    let mut by_key: BTreeMap<&str, &Record> = BTreeMap::new();
    for (key, record) in records {
        if record.is_fresh(ttl, now) {
            by_key.entry(key).or_insert(record);
        }
    }
    let config = CacheConfig {
        version: FORMAT_VERSION,
        records: by_key
            .into_iter()
            .map(|(key, record)| ExportedRecord {
                key: key.to_string(),
                record: record.clone(),
            })
            .collect(),
    };
    // Plain data: serialising it cannot fail.
    serde_json::to_vec(&config).unwrap_or_default()
}

/// The records of a record list.
pub fn decode(bytes: &[u8]) -> Result<Vec<ExportedRecord>, String> {
    let config: CacheConfig =
        serde_json::from_slice(bytes).map_err(|e| format!("the record list is not valid: {e}"))?;
    if config.version != FORMAT_VERSION {
        return Err(format!(
            "the record list has version {}, this OSSB reads version {FORMAT_VERSION}",
            config.version
        ));
    }
    Ok(config.records)
}

/// The manifest of an export: `config` is the record list, the layers are the records' blobs
/// (each once).
pub fn manifest_for(config: Descriptor, records: &[ExportedRecord]) -> Manifest {
    let mut layers: Vec<Descriptor> = Vec::new();
    for r in records {
        if !layers.iter().any(|l| l.digest == r.record.digest) {
            layers.push(Descriptor::new(
                r.record.media_type.clone(),
                r.record.digest.clone(),
                r.record.size,
            ));
        }
    }
    Manifest {
        schema_version: 2,
        media_type: Some(mt::OCI_MANIFEST.into()),
        artifact_type: None,
        config,
        layers,
        subject: None,
        annotations: BTreeMap::new(),
    }
}

/// Where imported records came from.
#[derive(Debug, Clone)]
enum ImportSource {
    Registry(Reference),
    Local(PathBuf),
}

/// The records of every readable `--cache-from`, and where their blobs are.
#[derive(Debug, Default)]
pub struct Imported {
    records: HashMap<String, Record>,
    /// The source each blob is fetched from (the first that listed it).
    blob_source: HashMap<Digest, usize>,
    sources: Vec<ImportSource>,
}

impl Imported {
    /// Read every import; one that cannot be read is a warning (the build goes on without
    /// it, as with buildx).
    pub fn load(
        imports: &[CacheImport],
        port: Option<&dyn RegistryPort>,
        progress: &dyn ProgressSink,
    ) -> Imported {
        let mut out = Imported::default();
        for import in imports {
            let (source, read) = match &import.location {
                CacheLocation::Registry(r) => match Reference::parse(r) {
                    Ok(reference) => (
                        ImportSource::Registry(reference.clone()),
                        read_registry(port, &reference),
                    ),
                    Err(e) => {
                        progress.event(&ProgressEvent::Warning {
                            message: format!(
                                "--cache-from ref={r} is not a valid reference ({e}); building without it"
                            ),
                        });
                        continue;
                    }
                },
                CacheLocation::Local(dir) => (ImportSource::Local(dir.clone()), read_local(dir)),
            };
            let name = location_name(&import.location);
            match read {
                Ok(records) => {
                    let index = out.sources.len();
                    out.sources.push(source);
                    tracing::debug!(component = "cache", source = %name, records = records.len(), "cache imported");
                    for r in records {
                        out.blob_source
                            .entry(r.record.digest.clone())
                            .or_insert(index);
                        out.records.entry(r.key).or_insert(r.record);
                    }
                }
                Err(e) => progress.event(&ProgressEvent::Warning {
                    message: format!("cannot read the cache {name}: {e}; building without it"),
                }),
            }
        }
        out
    }

    /// The imported record for `key`.
    pub fn get(&self, key: &str) -> Option<&Record> {
        self.records.get(key)
    }

    /// The registry reference an imported blob lives at, when it came from a registry.
    pub fn registry_holder(&self, digest: &Digest) -> Option<&Reference> {
        match self.sources.get(*self.blob_source.get(digest)?)? {
            ImportSource::Registry(r) => Some(r),
            ImportSource::Local(_) => None,
        }
    }

    /// Copy an imported blob into `store`; returns the bytes read, or `None` when no import
    /// lists it.
    pub fn fetch(
        &self,
        store: &Store,
        port: Option<&dyn RegistryPort>,
        digest: &Digest,
        size: u64,
    ) -> Option<Result<u64, Error>> {
        let source = self.sources.get(*self.blob_source.get(digest)?)?;
        Some(match source {
            ImportSource::Registry(reference) => (|| -> Result<u64, Error> {
                let port = port.ok_or_else(no_registry_client)?;
                let mut writer = store.blob_writer()?;
                let n = port.fetch_blob(reference, digest, &mut writer)?;
                writer.commit_sized(Some(digest), Some(size))?;
                Ok(n)
            })(),
            ImportSource::Local(dir) => {
                let desc = Descriptor::new(String::new(), digest.clone(), size);
                import_blob(store, dir, &desc)
                    .map(|_| size)
                    .map_err(Error::from)
            }
        })
    }
}

fn no_registry_client() -> Error {
    Error::new(
        ExitCode::Configuration,
        "a registry cache needs a registry client; none is configured",
    )
}

/// `type=registry,ref=…` or `type=local,…=DIR`, for messages.
fn location_name(location: &CacheLocation) -> String {
    match location {
        CacheLocation::Registry(r) => format!("type=registry,ref={r}"),
        CacheLocation::Local(d) => format!("type=local ({})", d.display()),
    }
}

fn read_registry(
    port: Option<&dyn RegistryPort>,
    reference: &Reference,
) -> Result<Vec<ExportedRecord>, String> {
    let port = port.ok_or_else(|| no_registry_client().to_string())?;
    let fetched = port.fetch_manifest(reference).map_err(|e| e.to_string())?;
    let manifest: Manifest =
        oci::from_json("cache manifest", &fetched.bytes).map_err(|e| e.to_string())?;
    check_config(&manifest)?;
    let mut bytes = Vec::new();
    port.fetch_blob(reference, &manifest.config.digest, &mut bytes)
        .map_err(|e| e.to_string())?;
    decode(&bytes)
}

fn check_config(manifest: &Manifest) -> Result<(), String> {
    if manifest.config.media_type != CONFIG_MEDIA_TYPE {
        return Err(format!(
            "it is not an OSSB build cache (its config is {:?}, not {CONFIG_MEDIA_TYPE})",
            manifest.config.media_type
        ));
    }
    Ok(())
}

/// A verified blob of the layout in `dir`.
fn read_layout_blob(dir: &Path, desc: &Descriptor) -> Result<Vec<u8>, String> {
    let path = dir
        .join("blobs")
        .join(desc.digest.algorithm())
        .join(desc.digest.hex());
    let bytes = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if Digest::of(&bytes) != desc.digest {
        return Err(format!("{} does not match its digest", path.display()));
    }
    Ok(bytes)
}

fn read_local(dir: &Path) -> Result<Vec<ExportedRecord>, String> {
    let index_path = dir.join("index.json");
    let bytes = std::fs::read(&index_path)
        .map_err(|e| format!("cannot read {}: {e}", index_path.display()))?;
    let index: Index = oci::from_json("index.json", &bytes).map_err(|e| e.to_string())?;
    let entry = index
        .manifests
        .iter()
        .find(|d| {
            d.annotations
                .get(mt::ANNOTATION_REF_NAME)
                .map(String::as_str)
                == Some(LOCAL_TAG)
        })
        .ok_or_else(|| {
            format!(
                "{} names no manifest {LOCAL_TAG:?} (was it written by --cache-to type=local?)",
                index_path.display()
            )
        })?;
    let manifest: Manifest = oci::from_json("cache manifest", &read_layout_blob(dir, entry)?)
        .map_err(|e| e.to_string())?;
    check_config(&manifest)?;
    decode(&read_layout_blob(dir, &manifest.config)?)
}

/// Make sure `target`'s repository has the blob: it is there already, or is mounted from the
/// imported cache on the same registry, or is fetched into the store so the push uploads it.
pub(crate) fn prepare_remote_blob(
    ctx: &BuildCtx<'_>,
    port: &dyn RegistryPort,
    target: &Reference,
    digest: &Digest,
    size: u64,
) -> Result<(), Error> {
    if ctx.store.has(digest) || port.blob_exists(target, digest)? {
        return Ok(());
    }
    if let Some(holder) = ctx.imported.registry_holder(digest)
        && holder.registry == target.registry
    {
        match port.mount_blob(target, digest, &holder.repository) {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => {
                tracing::debug!(%digest, error = %e, "mount from the cache repository failed; fetching");
            }
        }
    }
    ctx.ensure_blob(digest, size)
}

/// Export `records` to `target`. A failure names the destination and is a registry-class
/// error (exit code 3) unless its cause is more specific (see [`export_class`]).
pub(crate) fn export(
    ctx: &BuildCtx<'_>,
    target: &CacheExport,
    records: &[(String, Record)],
) -> Result<(), Error> {
    let name = location_name(&target.location);
    let fail = |e: Error| {
        Error::new(
            export_class(e.exit_code()),
            format!("cannot export the build cache to {name}: {e}"),
        )
    };
    let config_bytes = encode(records, ctx.cache_ttl, ctx.now);
    let exported = decode(&config_bytes).map_err(|e| fail(Error::new(ExitCode::General, e)))?;
    let stored = ctx
        .store
        .put_bytes(&config_bytes)
        .map_err(|e| fail(e.into()))?;
    let config = Descriptor::new(CONFIG_MEDIA_TYPE, stored.digest, stored.size);
    let manifest = manifest_for(config, &exported);
    let bytes = oci::to_json("cache manifest", &manifest).map_err(|e| fail(e.into()))?;
    let stored = ctx.store.put_bytes(&bytes).map_err(|e| fail(e.into()))?;
    let desc = Descriptor::new(mt::OCI_MANIFEST, stored.digest, stored.size);
    match &target.location {
        CacheLocation::Local(dir) => {
            for layer in &manifest.layers {
                ctx.ensure_blob(&layer.digest, layer.size).map_err(fail)?;
            }
            write_layout_dir(ctx.store, &desc, dir, Some(LOCAL_TAG)).map_err(|e| fail(e.into()))
        }
        CacheLocation::Registry(r) => {
            let reference = Reference::parse(r).map_err(|e| fail(e.into()))?;
            let port = ctx
                .fetcher
                .registry
                .ok_or_else(|| fail(no_registry_client()))?;
            for layer in &manifest.layers {
                prepare_remote_blob(ctx, port, &reference, &layer.digest, layer.size)
                    .map_err(fail)?;
            }
            transfer::push(ctx.store, port, &reference, &desc, ctx.jobs, ctx.progress)
                .map(|_| ())
                .map_err(fail)
        }
    }
}

/// The exit class of a failed cache export: what the cause says when that is more specific
/// (refused credentials are 4, a full disk 6, a cancelled build 8), else a registry error.
fn export_class(cause: ExitCode) -> ExitCode {
    match cause {
        ExitCode::Authentication
        | ExitCode::Configuration
        | ExitCode::Resource
        | ExitCode::Timeout
        | ExitCode::Cancelled => cause,
        _ => ExitCode::Registry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u8, made_at: Option<i64>) -> Record {
        Record {
            digest: Digest::of(&[n]),
            size: 10 + n as u64,
            media_type: mt::OCI_LAYER_GZIP.into(),
            diff_id: Digest::of(&[n, n]),
            uncompressed_size: 100,
            created: "2024-01-01T00:00:00Z".into(),
            made_at,
        }
    }

    #[test]
    fn export_failures_keep_a_specific_cause() {
        assert_eq!(
            export_class(ExitCode::Authentication),
            ExitCode::Authentication
        );
        assert_eq!(export_class(ExitCode::Resource), ExitCode::Resource);
        assert_eq!(export_class(ExitCode::General), ExitCode::Registry);
        assert_eq!(export_class(ExitCode::Build), ExitCode::Registry);
        assert_eq!(export_class(ExitCode::Registry), ExitCode::Registry);
    }

    #[test]
    fn records_round_trip_sorted_and_once_per_key() {
        let records = vec![
            ("b".to_string(), record(2, Some(1000))),
            ("a".to_string(), record(1, Some(1000))),
            ("b".to_string(), record(3, Some(1000))),
            ("c".to_string(), record(1, None)),
        ];
        let bytes = encode(&records, None, 2000);
        assert_eq!(bytes, encode(&records, None, 2000), "deterministic");
        let back = decode(&bytes).expect("decodes");
        let keys: Vec<&str> = back.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["a", "b", "c"]);
        assert_eq!(back[0].record, record(1, Some(1000)));
        assert_eq!(
            back[1].record,
            record(2, Some(1000)),
            "the first record of a key wins"
        );
        assert_eq!(back[2].record.made_at, None);
        let config = Descriptor::new(CONFIG_MEDIA_TYPE, Digest::of(&bytes), bytes.len() as u64);
        let manifest = manifest_for(config, &back);
        assert_eq!(
            manifest.layers.len(),
            2,
            "a blob used by two keys is listed once"
        );
        assert_eq!(manifest.layers[0].digest, record(1, None).digest);
        assert_eq!(manifest.layers[0].media_type, mt::OCI_LAYER_GZIP);
    }

    #[test]
    fn records_older_than_the_ttl_are_not_exported() {
        let day = Duration::from_secs(86_400);
        let now = 10 * 86_400;
        let records = vec![
            ("fresh".to_string(), record(1, Some(now - 3600))),
            ("old".to_string(), record(2, Some(now - 2 * 86_400))),
            ("edge".to_string(), record(3, Some(now - 86_400))),
        ];
        let kept: Vec<String> = decode(&encode(&records, Some(day), now))
            .expect("decodes")
            .into_iter()
            .map(|r| r.key)
            .collect();
        assert_eq!(kept, ["edge", "fresh"]);
        assert_eq!(
            decode(&encode(&records, None, now)).expect("decodes").len(),
            3,
            "no TTL keeps everything"
        );
        // Old records without made_at age from `created` (2024-01-01).
        let legacy = record(4, None);
        assert!(legacy.is_fresh(Some(day), 1_704_067_200 + 60));
        assert!(!legacy.is_fresh(Some(day), 1_704_067_200 + 2 * 86_400));
    }

    #[test]
    fn other_versions_and_garbage_are_refused_with_a_reason() {
        let err = decode(br#"{"version":9,"records":[]}"#).expect_err("version");
        assert!(err.contains("version 9"), "{err}");
        let err = decode(b"not json").expect_err("garbage");
        assert!(err.contains("not valid"), "{err}");
    }

    #[test]
    fn a_local_layout_without_a_cache_is_a_readable_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = read_local(dir.path()).expect_err("empty dir");
        assert!(err.contains("index.json"), "{err}");
        std::fs::write(
            dir.path().join("index.json"),
            br#"{"schemaVersion":2,"manifests":[]}"#,
        )
        .expect("write");
        let err = read_local(dir.path()).expect_err("no cache tag");
        assert!(err.contains("--cache-to type=local"), "{err}");
    }
}
