//! The local build backend: runs a [`BuildRequest`] on this machine into the content store.
//!
//! ```no_run
//! use ossb_core::backend::{BuildBackend, BuildRequest, Output};
//! use ossb_core::exec::local::LocalBackend;
//! use ossb_core::progress::NoopSink;
//!
//! let mut request = BuildRequest::new("examples/hello");
//! request.outputs.push(Output::Oci { dest: "hello-oci".into() });
//! let outcome = LocalBackend::new().build(&request, &NoopSink)?;
//! println!("{}", outcome.image_digest);
//! # Ok::<(), ossb_core::Error>(())
//! ```

mod add_url;
mod base;
pub mod cache;
pub mod cache_io;
pub mod context;
mod mounts;
mod outputs;
mod planning;
mod platforms;
mod run;
mod state;
mod steps;

pub use outputs::write_atomic;
pub use state::StageState;

use crate::backend::{BuildBackend, BuildOutcome, BuildRequest, DockerfileSource, StepTiming};
use crate::dockerfile;
use crate::error::{Error, ExitCode};
use crate::exec::context::ContextScan;
use crate::exec::doctor::NoSandbox;
use crate::exec::sandbox::{CancelToken, Rung, Sandbox, SandboxMode, SandboxOptions};
use crate::exec::snapshot::{SnapshotterChoice, SnapshotterKind};
use crate::exec::transfer::StoredImage;
use crate::image::annotations::AnnotationTarget;
use crate::image::builder::BuiltImage;
use crate::image::compress::Compression;
use crate::image::index::write_index;
use crate::image::layer::LayerOptions;
use crate::image::oci::{Descriptor, Platform};
use crate::image::store::Store;
use crate::plan::{self, PlanOptions, StageBase};
use crate::ports::{RegistryPort, UrlFetcher};
use crate::progress::{ProgressEvent, ProgressSink, StepId};
use crate::reference::Reference;
use base::Fetcher;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// Builds images on this machine.
pub struct LocalBackend {
    store_root: Option<PathBuf>,
    registry: Option<Arc<dyn RegistryPort>>,
    url_fetcher: Option<Arc<dyn UrlFetcher>>,
    compression: Compression,
    jobs: usize,
    sandbox_helper: PathBuf,
    snapshotter: SnapshotterChoice,
    sandbox_mode: SandboxMode,
    cancel: Option<CancelToken>,
}

impl Default for LocalBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalBackend {
    /// A backend with the default store root, gzip layers and one job per core.
    pub fn new() -> Self {
        LocalBackend {
            store_root: None,
            registry: None,
            url_fetcher: None,
            compression: Compression::Gzip { level: 6 },
            jobs: crate::image::compress::default_threads(),
            sandbox_helper: PathBuf::from("/proc/self/exe"),
            snapshotter: SnapshotterChoice::Auto,
            sandbox_mode: SandboxMode::Auto,
            cancel: None,
        }
    }

    /// How RUN steps are isolated: the best rung of the execution ladder that works here
    /// (`Auto`, the default) or a forced one (`--sandbox`). On any rung but `full`, the first
    /// RUN step makes this process non-dumpable (`PR_SET_DUMPABLE 0`), since the step can
    /// see it there; see `docs/execution-ladder.md`.
    pub fn with_sandbox_mode(mut self, mode: SandboxMode) -> Self {
        self.sandbox_mode = mode;
        self
    }

    /// The binary that runs RUN steps' sandbox init: it must call
    /// [`crate::exec::sandbox::run_init_if_requested`] first thing in `main`. The default,
    /// `/proc/self/exe`, is right for the `ossb` binary and for programs that make that call.
    pub fn with_sandbox_helper(mut self, helper: impl Into<PathBuf>) -> Self {
        self.sandbox_helper = helper.into();
        self
    }

    /// Force a snapshotter instead of probing for overlayfs.
    pub fn with_snapshotter(mut self, choice: SnapshotterChoice) -> Self {
        self.snapshotter = choice;
        self
    }

    /// Cancel the build (and kill a running RUN step) when `token` is cancelled.
    pub fn with_cancel(mut self, token: CancelToken) -> Self {
        self.cancel = Some(token);
        self
    }

    /// Use the content store at `root` instead of the default.
    pub fn with_store_root(mut self, root: impl Into<PathBuf>) -> Self {
        self.store_root = Some(root.into());
        self
    }

    /// Pull and push through this registry client.
    pub fn with_registry(mut self, registry: Arc<dyn RegistryPort>) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Download `ADD http(s)://…` sources through this fetcher (without one, such sources
    /// fail with a configuration error).
    pub fn with_url_fetcher(mut self, fetcher: Arc<dyn UrlFetcher>) -> Self {
        self.url_fetcher = Some(fetcher);
        self
    }

    /// Layer compression.
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Parallelism for compression and uploads.
    pub fn with_jobs(mut self, jobs: usize) -> Self {
        self.jobs = jobs.max(1);
        self
    }
}

/// What every step of one build shares.
pub(crate) struct BuildCtx<'a> {
    pub store: &'a Store,
    pub fetcher: Fetcher<'a>,
    /// Downloads `ADD` URL sources, when the caller provided a fetcher.
    pub url_fetcher: Option<&'a dyn UrlFetcher>,
    pub request: &'a BuildRequest,
    pub scratch: &'a std::path::Path,
    /// Shared by the platforms of a build: the context is scanned and hashed once.
    pub context: &'a OnceLock<ContextScan>,
    pub dockerfile_path: Option<PathBuf>,
    /// RFC 3339 time written into history entries and the config.
    pub created: String,
    /// Seconds since the epoch for directories the build creates.
    pub build_time: i64,
    pub layer_opts: LayerOptions,
    pub progress: &'a dyn ProgressSink,
    pub jobs: usize,
    pub sandbox_helper: PathBuf,
    snapshotter: SnapshotterChoice,
    sandbox_mode: SandboxMode,
    pub cancel: CancelToken,
    sandbox: OnceLock<Sandbox>,
    /// Layer records by key.
    pub cache: cache::CacheStore,
    /// Content digests of context files by stamp (shared by the platforms of a build).
    pub stat_cache: &'a cache::StatCache,
    /// Keys of the steps being built now (shared by the platforms of a build).
    pub in_flight: &'a cache::InFlight,
    /// `--no-cache`: build every step, still record the results.
    pub no_cache: bool,
    /// Stages `--no-cache-filter` names (by index).
    pub no_cache_stages: std::collections::BTreeSet<usize>,
    /// Records of the `--cache-from` caches.
    pub imported: cache_io::Imported,
    /// `--cache-ttl`.
    pub cache_ttl: Option<std::time::Duration>,
    /// Wall-clock seconds at the start of the build (record ages are measured against it).
    pub now: i64,
    /// Every record this build used or made, for `--cache-to mode=max`.
    pub used: std::sync::Mutex<Vec<(cache::CacheKey, cache::Record)>>,
    /// The build's counters.
    pub stats: Counters,
    preflight: std::sync::Mutex<Option<std::thread::JoinHandle<Result<Rung, NoSandbox>>>>,
    /// The rung the preflight chose, once joined.
    rung: OnceLock<Rung>,
}

impl BuildCtx<'_> {
    /// The RUN sandbox, set up on first use (id mapping detected once per build), on the rung
    /// of the execution ladder the build's preflight probe chose.
    pub fn sandbox(&self) -> Result<&Sandbox, Error> {
        // Held while the ladder is chosen, so parallel stages wait for one answer.
        let mut preflight = self
            .preflight
            .lock()
            .map_err(|_| Error::new(ExitCode::General, "the sandbox probe lock is poisoned"))?;
        if self.rung.get().is_none() {
            let chosen = match preflight.take() {
                Some(handle) => handle.join().map_err(|_| {
                    Error::new(ExitCode::General, "the sandbox probe thread panicked")
                })?,
                // RUN steps the preflight did not foresee (ONBUILD triggers): probe now.
                None => {
                    crate::exec::doctor::diagnose(&self.sandbox_helper).select(self.sandbox_mode)
                }
            };
            let rung = chosen.map_err(|no| Error::new(ExitCode::Configuration, no.to_string()))?;
            if rung != Rung::Full {
                // The step may see this process's /proc entries or its pid: keep them closed.
                crate::exec::sandbox::protect_process().map_err(|e| {
                    Error::new(
                        ExitCode::General,
                        format!("cannot make ossb non-dumpable before the first RUN step: {e}"),
                    )
                })?;
            }
            tracing::info!(component = "sandbox", rung = %rung, "execution ladder: {}", rung.summary());
            self.progress.event(&ProgressEvent::Sandbox {
                rung: rung.name().to_string(),
                detail: rung.summary().to_string(),
            });
            let _ = self.rung.set(rung);
        }
        drop(preflight);
        let Some(rung) = self.rung.get().copied() else {
            return Err(Error::new(
                ExitCode::General,
                "the sandbox was asked for without a preflight probe",
            ));
        };
        Ok(self.sandbox.get_or_init(|| {
            Sandbox::new(SandboxOptions {
                helper: self.sandbox_helper.clone(),
                temp_dir: Some(self.scratch.to_path_buf()),
                id_map: None,
                rung,
                ..SandboxOptions::default()
            })
        }))
    }

    /// The snapshotter for RUN steps: the rungs without mounts need the scan snapshotter.
    pub fn snapshotter(&self, rung: Rung) -> SnapshotterChoice {
        if rung.mounts() {
            self.snapshotter
        } else {
            SnapshotterChoice::Force(SnapshotterKind::Scan)
        }
    }

    /// The record for `key`, unless the stage ignores the cache: the store's own, else an
    /// imported one; either only when fresh under `--cache-ttl`. An imported record's blob may
    /// not be in the store yet (see [`BuildCtx::ensure_blob`]).
    pub fn lookup(&self, state: &StageState, key: &str) -> Option<cache::Record> {
        if self.no_cache || state.no_cache {
            return None;
        }
        let fresh = |r: &cache::Record| r.is_fresh(self.cache_ttl, self.now);
        self.cache
            .get(key, self.store)
            .filter(fresh)
            .or_else(|| self.imported.get(key).filter(|r| fresh(r)).cloned())
    }

    /// Note that the stage's newest layer is `record` under `key` (for `--cache-to`).
    pub fn remember(&self, state: &mut StageState, key: &str, record: &cache::Record) {
        state.chain.push((key.to_string(), record.clone()));
        if let Ok(mut used) = self.used.lock() {
            used.push((key.to_string(), record.clone()));
        }
    }

    /// Make sure a layer blob is in the store, fetching it from the `--cache-from` cache that
    /// listed it.
    pub fn ensure_blob(
        &self,
        digest: &crate::image::digest::Digest,
        size: u64,
    ) -> Result<(), Error> {
        if self.store.has(digest) {
            return Ok(());
        }
        match self
            .imported
            .fetch(self.store, self.fetcher.registry, digest, size)
        {
            Some(Ok(n)) => {
                self.stats.bytes_read.fetch_add(n, Ordering::Relaxed);
                Ok(())
            }
            Some(Err(e)) => Err(Error::new(
                e.exit_code(),
                format!("cannot fetch cached layer {digest}: {e}"),
            )),
            None => Err(Error::new(
                ExitCode::General,
                format!("layer {digest} is neither in the store nor in a --cache-from cache"),
            )),
        }
    }

    /// [`BuildCtx::ensure_blob`] for several layers.
    pub fn ensure_blobs(
        &self,
        layers: &[(crate::image::digest::Digest, u64)],
    ) -> Result<(), Error> {
        for (digest, size) in layers {
            self.ensure_blob(digest, *size)?;
        }
        Ok(())
    }

    /// Unpack `layers` into a fresh directory below the scratch dir (fetching cached blobs
    /// first), counting the bytes read.
    pub fn materialize(
        &self,
        layers: &[(crate::image::digest::Digest, u64)],
    ) -> Result<tempfile::TempDir, Error> {
        self.ensure_blobs(layers)?;
        let bytes: u64 = layers.iter().map(|(_, s)| *s).sum();
        self.stats.bytes_read.fetch_add(bytes, Ordering::Relaxed);
        base::materialize(self.store, layers, self.scratch)
    }

    /// Apply the layers of imported `RUN` hits that were put off to the stage's index (a
    /// chain of `RUN` hits reads no blob; the first step that needs the index does).
    pub fn settle(&self, state: &mut StageState) -> Result<(), Error> {
        for (digest, size) in std::mem::take(&mut state.deferred) {
            self.ensure_blob(&digest, size)?;
            let blob = self.store.open_blob_sized(&digest, size)?;
            self.stats.bytes_read.fetch_add(size, Ordering::Relaxed);
            let (_, reader) = crate::exec::compress::decompress(blob).map_err(|e| {
                Error::new(
                    ExitCode::General,
                    format!("cannot read layer {digest}: {e}"),
                )
            })?;
            state
                .index
                .apply_tar(reader)
                .map_err(|e| Error::new(ExitCode::General, e.to_string()))?;
        }
        Ok(())
    }

    /// The build context, scanned on first use (a build that never reads it never walks it).
    pub fn context_scan(&self) -> Result<&ContextScan, Error> {
        if let Some(scan) = self.context.get() {
            return Ok(scan);
        }
        let ignore = context::ignore_file(&self.request.context, self.dockerfile_path.as_deref());
        let matcher = context::load_matcher(ignore.as_deref())?;
        let scan = context::scan(&self.request.context, matcher.as_ref())?;
        Ok(self.context.get_or_init(|| scan))
    }
}

fn read_dockerfile(request: &BuildRequest) -> Result<(String, String, Option<PathBuf>), Error> {
    match &request.dockerfile {
        DockerfileSource::Inline(text) => Ok((text.clone(), "Dockerfile".into(), None)),
        DockerfileSource::Path(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Error::new(
                    ExitCode::Build,
                    format!(
                        "cannot read Dockerfile {}: {e} (check -f and the context path)",
                        path.display()
                    ),
                )
            })?;
            Ok((text, path.display().to_string(), Some(path.clone())))
        }
    }
}

fn rfc3339(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl BuildBackend for LocalBackend {
    fn build(
        &self,
        request: &BuildRequest,
        progress: &dyn ProgressSink,
    ) -> Result<BuildOutcome, Error> {
        let started = Instant::now();
        let result = self.build_inner(request, progress);
        let (success, digest, error) = match &result {
            Ok(o) => (true, Some(o.image_digest.clone()), None),
            Err(e) => (false, None, Some(e.to_string())),
        };
        let o = result.as_ref().ok();
        progress.event(&ProgressEvent::BuildFinished {
            success,
            digest,
            operations: o.map_or(0, |o| o.operations),
            cache_hits: o.map_or(0, |o| o.cache_hits),
            bytes_read: o.map_or(0, |o| o.bytes_read),
            bytes_written: o.map_or(0, |o| o.bytes_written),
            duration: started.elapsed(),
            error,
        });
        progress.finish();
        result
    }
}

impl LocalBackend {
    fn build_inner(
        &self,
        request: &BuildRequest,
        progress: &dyn ProgressSink,
    ) -> Result<BuildOutcome, Error> {
        // Short image names of the request go to its default registry (see backend::qualify).
        let request = &*request.qualified()?;
        let (text, name, dockerfile_path) = read_dockerfile(request)?;
        let ast = dockerfile::parse(&text).map_err(|e| Error::from(e.with_file(name.clone())))?;
        for w in &ast.warnings {
            progress.event(&ProgressEvent::Warning {
                message: format!("{} (line {:?}): {}", w.short, w.lines, w.detail),
            });
        }
        let host = Platform::host();
        let targets = platforms::targets(request, &host)?;
        platforms::check_request(request, &targets)?;
        let default_registry = request.checked_default_registry()?;
        let options: Vec<(Platform, PlanOptions)> = targets
            .iter()
            .map(|p| {
                let opts = PlanOptions {
                    build_args: request.build_args.clone(),
                    target: request.target.clone(),
                    build_platform: host.to_string(),
                    target_platform: p.to_string(),
                    base_images: BTreeMap::new(),
                    default_registry: default_registry.clone(),
                };
                (p.clone(), opts)
            })
            .collect();
        // Fail fast on Dockerfile errors, before the store is opened.
        for (_, opts) in &options {
            plan::base_images_needed(&ast, opts)
                .map_err(|e| e.with_file(name.clone()).with_column_from(&text))?;
        }
        // RUN steps for a foreign architecture need an emulator: say so before any work.
        platforms::check_emulation(&ast, &options, &host)?;
        let tags: Vec<Reference> = request
            .tags
            .iter()
            .map(|t| Reference::parse(t))
            .collect::<Result<_, _>>()?;

        let store = match &self.store_root {
            Some(root) => Store::open(root)?,
            None => Store::open_default()?,
        };
        let _lock = store.lock(false)?;
        // Removed with many deletions in flight (see `exec::remove`).
        let scratch = crate::exec::remove::TreeDir::new(
            tempfile::Builder::new()
                .prefix("build-")
                .tempdir_in(store.root().join("tmp"))
                .map_err(|e| {
                    Error::new(
                        ExitCode::Resource,
                        format!("cannot create a temp dir in the store: {e}"),
                    )
                })?,
        );
        // Any RUN in the file (a stage that is skipped later only costs an unneeded probe).
        let has_run = ast
            .children
            .iter()
            .any(|n| n.keyword == "run" || n.child.as_ref().is_some_and(|c| c.keyword == "run"));
        let cancel = match &self.cancel {
            Some(c) => c.clone(),
            None => CancelToken::new().map_err(|e| {
                Error::new(
                    ExitCode::Resource,
                    format!("cannot create a cancel pipe: {e}"),
                )
            })?,
        };
        // Platforms build side by side, at most `jobs` at a time, sharing the threads.
        let parallel = self.jobs.min(targets.len()).max(1);
        let jobs = (self.jobs / parallel).max(1);
        let context_scan = OnceLock::new();
        let stat_cache = cache::StatCache::load(store.root());
        let in_flight = cache::InFlight::default();
        let shared = Shared {
            context: &context_scan,
            stat_cache: &stat_cache,
            in_flight: &in_flight,
        };
        let mut ctxs = Vec::with_capacity(targets.len());
        for platform in &targets {
            ctxs.push(self.context(
                request,
                progress,
                &store,
                scratch.path(),
                dockerfile_path.clone(),
                platform,
                has_run,
                jobs,
                cancel.clone(),
                shared,
            )?);
        }

        let mut planned = Vec::with_capacity(targets.len());
        for (ctx, (_, opts)) in ctxs.iter().zip(&options) {
            let (graph, base_images) = planning::plan_with_base_images(
                &ast,
                &name,
                &text,
                opts.clone(),
                &ctx.fetcher,
                &request.build_contexts,
            )?;
            planned.push((graph, base_images));
        }
        for (ctx, (graph, _)) in ctxs.iter_mut().zip(&planned) {
            ctx.no_cache_stages = no_cache_stages(graph, &request.no_cache_filter)?;
        }
        let total_steps: usize = planned
            .iter()
            .map(|(graph, _)| {
                graph
                    .build_order()
                    .iter()
                    .map(|i| graph.stages[*i].instructions.len() + 1)
                    .sum::<usize>()
            })
            .sum();
        progress.event(&ProgressEvent::BuildStarted {
            build_id: format!("{:x}", started_nanos()),
            platforms: targets.iter().map(Platform::to_string).collect(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            total_steps,
        });

        let built = if ctxs.len() == 1 {
            vec![build_platform(&ctxs[0], &planned[0].0, &planned[0].1)?]
        } else {
            build_platforms(&ctxs, &planned, parallel, &cancel)?
        };
        let (mut root, config) = match built.as_slice() {
            [one] => (one.image.manifest.clone(), Some(one.image.config.clone())),
            many => {
                let manifests: Vec<_> = many
                    .iter()
                    .map(|b| {
                        let mut desc = b.image.manifest.clone();
                        // The index lists each image under the platform it was built for.
                        desc.platform = Some(b.platform.clone());
                        desc.annotations = request
                            .annotations
                            .for_target(AnnotationTarget::ManifestDescriptor, Some(&b.platform));
                        desc
                    })
                    .collect();
                let annotations = request
                    .annotations
                    .for_target(AnnotationTarget::Index, None);
                (write_index(&store, &manifests, annotations)?, None)
            }
        };
        // `index-descriptor:` annotations go on the image's entry in an OCI layout's index.json.
        root.annotations.extend(
            request
                .annotations
                .for_target(AnnotationTarget::IndexDescriptor, None),
        );
        let images: Vec<Descriptor> = built.iter().map(|b| b.image.manifest.clone()).collect();
        let mut outcome = BuildOutcome {
            image_digest: root.digest.to_string(),
            config_digest: config.as_ref().map(|c| c.digest.to_string()),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            operations: 0,
            cache_hits: 0,
            bytes_read: 0,
            bytes_written: 0,
            steps: Vec::new(),
        };
        outputs::deliver(&ctxs, &root, config.as_ref(), &images, &tags, &mut outcome)?;
        // Imported records whose blobs this build fetched become the store's own, so the next
        // build hits without --cache-from.
        let used: Vec<(cache::CacheKey, cache::Record)> = ctxs
            .iter()
            .flat_map(|c| c.used.lock().map(|u| u.clone()).unwrap_or_default())
            .collect();
        for (key, record) in &used {
            if store.has(&record.digest) && ctxs[0].cache.get(key, &store).is_none() {
                ctxs[0].cache.put(key, record);
            }
        }
        for target in &request.cache_to {
            let records = match target.mode {
                crate::backend::CacheMode::Min => {
                    built.iter().flat_map(|b| b.chain.iter().cloned()).collect()
                }
                crate::backend::CacheMode::Max => used.clone(),
            };
            cache_io::export(&ctxs[0], target, &records)?;
        }
        Counters::fill_all(&ctxs, &mut outcome);
        Ok(outcome)
    }

    /// What the steps of one platform's build share.
    #[allow(clippy::too_many_arguments)]
    fn context<'a>(
        &'a self,
        request: &'a BuildRequest,
        progress: &'a dyn ProgressSink,
        store: &'a Store,
        scratch: &'a std::path::Path,
        dockerfile_path: Option<PathBuf>,
        platform: &'a Platform,
        has_run: bool,
        jobs: usize,
        cancel: CancelToken,
        shared: Shared<'a>,
    ) -> Result<BuildCtx<'a>, Error> {
        // Probe what RUN steps may use while the first stages pull and copy; the answer is
        // checked before the first RUN, so a forbidden sandbox fails before any RUN work.
        let preflight = has_run.then(|| {
            let helper = self.sandbox_helper.clone();
            let mode = self.sandbox_mode;
            std::thread::spawn(move || crate::exec::doctor::diagnose(&helper).select(mode))
        });
        let now = request
            .source_date_epoch
            .unwrap_or_else(|| chrono::Utc::now().timestamp());
        Ok(BuildCtx {
            store,
            fetcher: Fetcher {
                store,
                registry: self.registry.as_deref(),
                platform,
                progress,
                pull: request.pull,
            },
            url_fetcher: self.url_fetcher.as_deref(),
            request,
            scratch,
            context: shared.context,
            dockerfile_path,
            created: rfc3339(now),
            build_time: now,
            layer_opts: LayerOptions {
                compression: self.compression,
                threads: jobs,
                source_date_epoch: request.source_date_epoch,
                docker_media_types: false,
            },
            progress,
            jobs,
            sandbox_helper: self.sandbox_helper.clone(),
            snapshotter: self.snapshotter,
            sandbox_mode: self.sandbox_mode,
            cancel,
            sandbox: OnceLock::new(),
            cache: cache::CacheStore::open(store.root())?,
            stat_cache: shared.stat_cache,
            in_flight: shared.in_flight,
            no_cache: request.no_cache,
            no_cache_stages: Default::default(),
            // `--no-cache` looks nothing up: do not fetch what would not be read.
            imported: if request.no_cache {
                cache_io::Imported::default()
            } else {
                cache_io::Imported::load(&request.cache_from, self.registry.as_deref(), progress)
            },
            cache_ttl: request.cache_ttl,
            now: cache::now_secs(),
            used: Default::default(),
            stats: Counters::default(),
            preflight: std::sync::Mutex::new(preflight),
            rung: OnceLock::new(),
        })
    }
}

/// What the platforms of one build share.
#[derive(Clone, Copy)]
struct Shared<'a> {
    context: &'a OnceLock<ContextScan>,
    stat_cache: &'a cache::StatCache,
    in_flight: &'a cache::InFlight,
}

/// One platform's finished image.
struct PlatformImage {
    platform: Platform,
    image: BuiltImage,
    /// The cache records of the image's layers, for `--cache-to mode=min`.
    chain: Vec<(cache::CacheKey, cache::Record)>,
    /// The removal of the platform's stage filesystems, running while the image is delivered.
    _removing: JoinOnDrop,
}

/// Joins a background thread when dropped (also on an early return).
struct JoinOnDrop(Option<std::thread::JoinHandle<()>>);

impl Drop for JoinOnDrop {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            let _ = handle.join();
        }
    }
}

/// Build one platform's stages and write its image (config and manifest) into the store.
fn build_platform(
    ctx: &BuildCtx<'_>,
    graph: &plan::BuildGraph,
    base_images: &BTreeMap<planning::BaseKey, StoredImage>,
) -> Result<PlatformImage, Error> {
    let order = graph.build_order();
    let mut done = run_stages(ctx, graph, &order, base_images, &ctx.stats, ctx.jobs)?;
    let mut final_state = done
        .remove(&graph.target)
        .ok_or_else(|| Error::new(ExitCode::General, "the target stage was not built"))?;
    // No step reads the stages' filesystems any more: remove them while the image is written
    // and delivered (removal mostly waits on the disk). Joined before the build's scratch
    // dir, which holds them, is removed.
    let rootfs: Vec<_> = done
        .values_mut()
        .chain(std::iter::once(&mut final_state))
        .filter_map(|s| s.rootfs.take())
        .collect();
    let removing = JoinOnDrop(Some(std::thread::spawn(move || drop(rootfs))));
    ctx.stat_cache.save();
    // The image is as new as its newest layer (an unchanged rebuild is the same image).
    let created = final_state
        .last_created
        .clone()
        .unwrap_or_else(|| ctx.created.clone());
    let config = final_state.builder.config_mut();
    config.created = Some(created);
    for (k, v) in &ctx.request.labels {
        config.config.labels.insert(k.clone(), v.clone());
    }
    let platform = ctx.fetcher.platform.clone();
    for (k, v) in ctx
        .request
        .annotations
        .for_target(AnnotationTarget::Manifest, Some(&platform))
    {
        final_state.builder.annotate(k, v);
    }
    let image = final_state.builder.write(ctx.store)?;
    Ok(PlatformImage {
        platform,
        image,
        chain: final_state.chain,
        _removing: removing,
    })
}

/// Build several platforms side by side (at most `parallel` at once). The first failure
/// cancels the others and is the build's error; results keep the order of `ctxs`.
fn build_platforms(
    ctxs: &[BuildCtx<'_>],
    planned: &[(plan::BuildGraph, BTreeMap<planning::BaseKey, StoredImage>)],
    parallel: usize,
    cancel: &CancelToken,
) -> Result<Vec<PlatformImage>, Error> {
    let next = AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<PlatformImage>>> =
        ctxs.iter().map(|_| std::sync::Mutex::new(None)).collect();
    let first_error: std::sync::Mutex<Option<Error>> = std::sync::Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..parallel {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= ctxs.len() || cancel.is_cancelled() {
                        return;
                    }
                    match build_platform(&ctxs[i], &planned[i].0, &planned[i].1) {
                        Ok(image) => {
                            if let Ok(mut slot) = results[i].lock() {
                                *slot = Some(image);
                            }
                        }
                        Err(e) => {
                            let e = Error::new(
                                e.exit_code(),
                                format!("platform {}: {e}", ctxs[i].fetcher.platform),
                            );
                            // The failure that cancelled the others is the one to report,
                            // not a platform that stopped because of it.
                            if let Ok(mut slot) = first_error.lock() {
                                let replace = match slot.as_ref() {
                                    None => true,
                                    Some(old) => {
                                        old.exit_code() == ExitCode::Cancelled
                                            && e.exit_code() != ExitCode::Cancelled
                                    }
                                };
                                if replace {
                                    *slot = Some(e);
                                }
                            }
                            cancel.cancel();
                            return;
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().ok().flatten() {
        return Err(e);
    }
    results
        .into_iter()
        .zip(ctxs)
        .map(|(slot, ctx)| {
            slot.into_inner().ok().flatten().ok_or_else(|| {
                Error::new(
                    ExitCode::Cancelled,
                    format!(
                        "the build for {} was cancelled before it finished",
                        ctx.fetcher.platform
                    ),
                )
            })
        })
        .collect()
}

/// The stages `--no-cache-filter` names: by `AS` name (any case), by display name
/// (`stage-N`) or by index. A name that matches no stage is a configuration error.
fn no_cache_stages(
    graph: &plan::BuildGraph,
    filter: &[String],
) -> Result<std::collections::BTreeSet<usize>, Error> {
    let mut out = std::collections::BTreeSet::new();
    for wanted in filter.iter().flat_map(|f| f.split(',')).map(str::trim) {
        if wanted.is_empty() {
            continue;
        }
        let lower = wanted.to_ascii_lowercase();
        let found = graph.stages.iter().find(|s| {
            s.name.as_deref() == Some(lower.as_str())
                || s.display_name == wanted
                || s.index.to_string() == wanted
        });
        match found {
            Some(stage) => {
                out.insert(stage.index);
            }
            None => {
                let names: Vec<&str> = graph
                    .stages
                    .iter()
                    .map(|s| s.display_name.as_str())
                    .collect();
                return Err(Error::new(
                    ExitCode::Configuration,
                    format!(
                        "--no-cache-filter {wanted:?} names no stage of the Dockerfile (its stages: {})",
                        names.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(out)
}

/// What the build counts, over all stages.
#[derive(Default)]
pub(crate) struct Counters {
    /// Steps run or served from the cache.
    pub operations: AtomicUsize,
    /// Steps served from the cache.
    pub cache_hits: AtomicUsize,
    /// Bytes of base and cached layer blobs read (context bytes are added at the end).
    pub bytes_read: AtomicU64,
    /// Bytes of layer blobs written to the store.
    pub bytes_written: AtomicU64,
    /// Per-step wall time.
    pub steps: std::sync::Mutex<Vec<StepTiming>>,
}

impl Counters {
    /// Sum the counters of every platform's build into `outcome` (context bytes come from the
    /// stat cache the platforms share).
    pub(crate) fn fill_all(ctxs: &[BuildCtx<'_>], outcome: &mut BuildOutcome) {
        let sum = |f: &dyn Fn(&Counters) -> u64| ctxs.iter().map(|c| f(&c.stats)).sum::<u64>();
        outcome.operations = sum(&|c| c.operations.load(Ordering::Relaxed) as u64) as usize;
        outcome.cache_hits = sum(&|c| c.cache_hits.load(Ordering::Relaxed) as u64) as usize;
        outcome.bytes_read = sum(&|c| c.bytes_read.load(Ordering::Relaxed))
            + ctxs.first().map_or(0, |c| c.stat_cache.bytes_read());
        outcome.bytes_written = sum(&|c| c.bytes_written.load(Ordering::Relaxed));
        outcome.steps = ctxs
            .iter()
            .flat_map(|c| c.stats.steps.lock().map(|s| s.clone()).unwrap_or_default())
            .collect();
    }

    fn step(&self, id: &StepId, instruction: String, cache_hit: bool, took: std::time::Duration) {
        if let Ok(mut steps) = self.steps.lock() {
            steps.push(StepTiming {
                stage: id.stage,
                step: id.step,
                instruction,
                cache_hit,
                millis: took.as_millis() as u64,
            });
        }
    }
}

/// Build the needed stages, independent ones in parallel (at most `jobs` at a time): a stage
/// starts when every stage it depends on has finished. The first failure cancels the others
/// (their RUN steps are killed) and is the build's error.
fn run_stages(
    ctx: &BuildCtx<'_>,
    graph: &plan::BuildGraph,
    order: &[usize],
    base_images: &BTreeMap<planning::BaseKey, StoredImage>,
    counters: &Counters,
    jobs: usize,
) -> Result<BTreeMap<usize, StageState>, Error> {
    let mut done: BTreeMap<usize, StageState> = BTreeMap::new();
    let mut pending: Vec<usize> = order.to_vec();
    let mut failure: Option<Error> = None;
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::channel::<(usize, Result<StageState, Error>)>();
        let mut running = 0usize;
        loop {
            while failure.is_none() && running < jobs.max(1) {
                let ready = pending
                    .iter()
                    .position(|i| graph.stages[*i].deps.iter().all(|d| done.contains_key(d)));
                let Some(pos) = ready else { break };
                let index = pending.remove(pos);
                // Each stage gets its own copy of the states it reads (its dependencies).
                let deps: BTreeMap<usize, StageState> = graph.stages[index]
                    .deps
                    .iter()
                    .filter_map(|d| done.get(d).map(|s| (*d, s.clone())))
                    .collect();
                let tx = tx.clone();
                running += 1;
                scope.spawn(move || {
                    let result = build_stage(ctx, graph, index, base_images, &deps, counters);
                    // The receiver outlives every sender in this scope.
                    let _ = tx.send((index, result));
                });
            }
            if running == 0 {
                break;
            }
            let Ok((index, result)) = rx.recv() else {
                break;
            };
            running -= 1;
            match result {
                Ok(state) => {
                    done.insert(index, state);
                }
                Err(e) => {
                    if failure.is_none() {
                        ctx.cancel.cancel();
                        failure = Some(e);
                    }
                }
            }
        }
    });
    match failure {
        Some(e) => Err(e),
        None if !pending.is_empty() => Err(Error::new(
            ExitCode::General,
            format!("stages {pending:?} could not be scheduled (a dependency was never built)"),
        )),
        None => Ok(done),
    }
}

/// Build one stage: resolve its base, then run its steps in order.
fn build_stage(
    ctx: &BuildCtx<'_>,
    graph: &plan::BuildGraph,
    index: usize,
    base_images: &BTreeMap<planning::BaseKey, StoredImage>,
    done: &BTreeMap<usize, StageState>,
    counters: &Counters,
) -> Result<StageState, Error> {
    let progress = ctx.progress;
    let stage = &graph.stages[index];
    let plat = ctx.fetcher.platform.to_string();
    progress.event(&ProgressEvent::StageStarted {
        platform: plat.clone(),
        stage: index,
        name: stage.display_name.clone(),
    });
    let step_started = Instant::now();
    let from_id = StepId {
        platform: plat.clone(),
        stage: index,
        step: 0,
    };
    progress.event(&ProgressEvent::StepStarted {
        id: from_id.clone(),
        operation: "FROM".into(),
        description: format!("FROM {}", stage.base_name),
    });
    let mut state = match &stage.base {
        StageBase::Scratch => match &stage.platform {
            Some(p) => StageState::scratch(&Platform::parse(p)?),
            None => StageState::scratch(ctx.fetcher.platform),
        },
        StageBase::Stage(i) => {
            let mut state = done.get(i).cloned().ok_or_else(|| {
                Error::new(
                    ExitCode::General,
                    format!("stage {i} was not built before stage {index}"),
                )
            })?;
            // RUN steps fold their changes into the unpacked filesystem: a stage built on
            // another unpacks its own, or siblings would see each other's changes.
            state.rootfs = None;
            state
        }
        StageBase::Image(name) => {
            let key = (name.clone(), stage.platform.clone());
            let mut state = match base_images.get(&key) {
                Some(image) => StageState::from_image(ctx.store, image)?,
                None => {
                    let image = planning::fetch_for(
                        &ctx.fetcher,
                        name,
                        stage.platform.as_deref(),
                        &ctx.request.build_contexts,
                    )?;
                    StageState::from_image(ctx.store, &image)?
                }
            };
            // The image's ONBUILD triggers ran in this stage (see the plan).
            state.builder.config_mut().config.on_build.clear();
            // Indexing the base read each of its layers once.
            let base_bytes: u64 = state.builder.layers().iter().map(|l| l.size).sum();
            counters.bytes_read.fetch_add(base_bytes, Ordering::Relaxed);
            state
        }
    };
    state.cmd_set = false;
    state.no_cache = ctx.no_cache_stages.contains(&index);
    // A stage on another platform than the target keys its steps by that platform (a base
    // stage's is inherited with its state).
    if let Some(p) = &stage.platform {
        let p = Platform::parse(p)?;
        state.platform = (!p.matches(ctx.fetcher.platform)).then_some(p);
    }
    counters.operations.fetch_add(1, Ordering::Relaxed);
    let took = step_started.elapsed();
    counters.step(&from_id, format!("FROM {}", stage.base_name), false, took);
    progress.event(&ProgressEvent::StepFinished {
        id: from_id,
        cache_hit: false,
        duration: took,
        bytes: 0,
    });
    // A RUN step's layer still being written (see `run::PendingLayer`); declared after
    // `state`, so an early return waits for it before the stage's filesystem goes.
    let mut pending: Option<run::PendingLayer> = None;
    for (n, step) in stage.instructions.iter().enumerate() {
        if ctx.cancel.is_cancelled() {
            return Err(Error::new(ExitCode::Cancelled, "the build was cancelled"));
        }
        let id = StepId {
            platform: plat.clone(),
            stage: index,
            step: n + 1,
        };
        let t = Instant::now();
        progress.event(&ProgressEvent::StepStarted {
            id: id.clone(),
            operation: step.instruction.keyword().to_uppercase(),
            description: step.text(),
        });
        let result =
            steps::execute(ctx, &mut state, step, &id, done, &mut pending).map_err(|e| {
                Error::new(
                    e.exit_code(),
                    format!("stage {} line {}: {}", stage.display_name, step.line, e),
                )
            })?;
        counters.operations.fetch_add(1, Ordering::Relaxed);
        if result.cache_hit {
            counters.cache_hits.fetch_add(1, Ordering::Relaxed);
        }
        let took = t.elapsed();
        counters.step(&id, step.text(), result.cache_hit, took);
        progress.event(&ProgressEvent::StepFinished {
            id,
            cache_hit: result.cache_hit,
            duration: took,
            bytes: result.bytes,
        });
    }
    if let Some(last) = pending.take() {
        last.finish(ctx, &mut state)
            .map_err(|e| Error::new(e.exit_code(), format!("stage {}: {e}", stage.display_name)))?;
    }
    progress.event(&ProgressEvent::StageFinished {
        platform: plat,
        stage: index,
    });
    Ok(state)
}

fn started_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}
