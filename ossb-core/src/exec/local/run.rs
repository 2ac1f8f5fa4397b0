//! `RUN`: materialise the stage's filesystem once, run the command in the sandbox on a
//! snapshot, and turn the snapshot's diff into a layer.

use super::BuildCtx;
use super::cache::{CacheKey, KeyBuilder, Record};
use super::mounts;
use super::state::StageState;
use super::steps::StepResult;
use crate::backend::RunNetwork;
use crate::error::{Error, ExitCode};
use crate::exec::binfmt;
use crate::exec::sandbox::{Network, RunSpec, SandboxError};
use crate::exec::snapshot;
use crate::exec::{Root, resolve_user};
use crate::image::layer::{LayerInfo, tar_len, write_layer};
use crate::plan::Step;
use crate::plan::instructions::{Network as PlanNetwork, Run};
use crate::progress::{ProgressEvent, StepId};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The default `PATH` of a RUN step when the image sets none (as BuildKit).
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Make sure the stage has its filesystem on disk; returns the directory.
pub fn ensure_rootfs(
    ctx: &BuildCtx<'_>,
    state: &mut StageState,
) -> Result<std::path::PathBuf, Error> {
    if let Some(dir) = &state.rootfs {
        return Ok(dir.path().to_path_buf());
    }
    let layers: Vec<_> = state
        .builder
        .layers()
        .iter()
        .map(|l| (l.digest.clone(), l.size))
        .collect();
    let dir = ctx.materialize(&layers)?;
    let path = dir.path().to_path_buf();
    state.rootfs = Some(Arc::new(crate::exec::remove::TreeDir::new(dir)));
    tracing::debug!(
        component = "exec",
        "stage filesystem unpacked for RUN steps"
    );
    Ok(path)
}

/// Apply a layer just written by a non-RUN step to a materialised rootfs, so later RUN steps
/// see it.
pub fn apply_layer_to_rootfs(
    ctx: &BuildCtx<'_>,
    state: &StageState,
    digest: &crate::image::digest::Digest,
    size: u64,
) -> Result<(), Error> {
    let Some(dir) = &state.rootfs else {
        return Ok(());
    };
    ctx.ensure_blob(digest, size)?;
    let root = Root::open_host(dir.path())?;
    let blob = ctx.store.open_blob_sized(digest, size)?;
    let (_, reader) = crate::exec::compress::decompress(blob).map_err(|e| {
        Error::new(
            ExitCode::General,
            format!("cannot read layer {digest}: {e}"),
        )
    })?;
    crate::exec::unpack_layer(&root, reader)?;
    Ok(())
}

/// The argv of a RUN: exec form as written; shell form through the stage's shell. A RUN that
/// is only a heredoc runs the heredoc's body as the script; other heredocs are handed to the
/// shell as written, which redirects them itself.
fn argv(state: &StageState, run: &Run) -> Vec<String> {
    let cmd = &run.cmd;
    if !cmd.prepend_shell {
        return cmd.args.clone();
    }
    let mut argv = {
        let shell = &state.builder.config().config.shell;
        if shell.is_empty() {
            vec!["/bin/sh".to_string(), "-c".to_string()]
        } else {
            shell.clone()
        }
    };
    let line = cmd.args.join(" ");
    let body = |f: &crate::plan::instructions::InlineFile| {
        if f.chomp {
            f.data
                .lines()
                .map(|l| l.trim_start_matches('\t'))
                .collect::<Vec<_>>()
                .join("\n")
                + "\n"
        } else {
            f.data.clone()
        }
    };
    let script = match cmd.files.as_slice() {
        [only]
            if line
                .trim()
                .trim_start_matches("<<-")
                .trim_start_matches("<<")
                .trim_matches(|c| c == '"' || c == '\'')
                == only.name =>
        {
            body(only)
        }
        [] => line,
        files => {
            let mut s = line;
            for f in files {
                s.push('\n');
                s.push_str(&body(f));
                s.push_str(&f.name);
            }
            s
        }
    };
    argv.push(script);
    argv
}

/// BuildKit's history text for a RUN: `RUN |N K=V ... /bin/sh -c cmd # buildkit`.
fn created_by(step: &Step, argv: &[String]) -> String {
    let mut out = String::from("RUN ");
    let used: Vec<String> = step
        .used_args
        .iter()
        .filter_map(|k| step.build_args.get(k).map(|v| format!("{k}={v}")))
        .collect();
    if !used.is_empty() {
        out.push_str(&format!("|{} {} ", used.len(), used.join(" ")));
    }
    out.push_str(&argv.join(" "));
    out.push_str(" # buildkit");
    out
}

/// Execute a RUN step. `pending` is the previous RUN's layer still being written; it is
/// finished (added to the stage) before this step changes the stage's filesystem or layers,
/// and this step's own layer may be left there in turn.
#[allow(clippy::too_many_arguments)]
pub fn execute<'a>(
    ctx: &BuildCtx<'a>,
    state: &mut StageState,
    step: &Step,
    run: &Run,
    id: &StepId,
    done: &BTreeMap<usize, StageState>,
    mut key: KeyBuilder,
    pending: &mut Option<PendingLayer<'a>>,
) -> Result<StepResult, Error> {
    let cfg = state.builder.config().config.clone();
    let argv = argv(state, run);
    mounts::check_supported(run)?;
    // What the step sees decides what it writes: command, environment, user, directory, network.
    key.field("argv", argv.join("\0").as_bytes());
    key.field("env", cfg.env.join("\0").as_bytes());
    key.field("user", cfg.user.as_bytes());
    key.field("cwd", cfg.working_dir.as_bytes());
    let network = effective_network(run.network, ctx.request.network);
    key.field("network", format!("{network:?}").as_bytes());
    // The mount specs and bind sources' contents; never a secret's value.
    mounts::add_to_key(ctx, step, run, done, &mut key)?;
    let key = key.finish();
    // Another platform running the same step right now: wait for it, then take its record.
    let claim = ctx.in_flight.claim(&key);
    if let Some(record) = ctx.lookup(state, &key) {
        if let Some(previous) = pending.take() {
            previous.finish(ctx, state)?;
        }
        if state.rootfs.is_none() && (!state.deferred.is_empty() || !ctx.store.has(&record.digest))
        {
            // Nothing reads this stage's files yet: put the layer off, so a chain of
            // imported RUN hits fetches no blob.
            state.deferred.push((record.digest.clone(), record.size));
        } else {
            ctx.settle(state)?;
            ctx.ensure_blob(&record.digest, record.size)?;
            // The index needs the layer's paths; the tar headers are enough.
            let blob = ctx.store.open_blob_sized(&record.digest, record.size)?;
            let (_, reader) = crate::exec::compress::decompress(blob).map_err(|e| {
                Error::new(
                    ExitCode::General,
                    format!("cannot read layer {}: {e}", record.digest),
                )
            })?;
            state
                .index
                .apply_tar(reader)
                .map_err(|e| Error::new(ExitCode::General, e.to_string()))?;
            apply_layer_to_rootfs(ctx, state, &record.digest, record.size)?;
        }
        state.add_layer(&record.layer(), &record.created, created_by(step, &argv));
        ctx.remember(state, &key, &record);
        state.key = key;
        return Ok(StepResult {
            bytes: record.uncompressed_size,
            cache_hit: true,
        });
    }
    ctx.settle(state)?;
    let lower = ensure_rootfs(ctx, state)?;

    let mut env = cfg.env.clone();
    let has = |env: &[String], k: &str| {
        env.iter()
            .any(|e| e.split_once('=').map(|(a, _)| a) == Some(k))
    };
    for (k, v) in &step.build_args {
        if !has(&env, k) {
            env.push(format!("{k}={v}"));
        }
    }
    if !has(&env, "PATH") {
        env.push(DEFAULT_PATH.to_string());
    }
    let (uid, gid) = if cfg.user.is_empty() {
        (0, 0)
    } else {
        let root = Root::open_host(&lower)?;
        resolve_user(Some(&root), &cfg.user)?
    };
    let cwd = if cfg.working_dir.is_empty() {
        "/".to_string()
    } else {
        cfg.working_dir.clone()
    };
    let prepared = mounts::prepare(ctx, step, run, done, &cwd)?;
    for var in &prepared.env {
        let name = var.split_once('=').map(|(k, _)| k).unwrap_or(var);
        env.retain(|e| e.split_once('=').map(|(k, _)| k) != Some(name));
        env.push(var.clone());
    }
    let spec = RunSpec {
        argv: argv.clone(),
        env,
        cwd,
        uid,
        gid,
        groups: Vec::new(),
        hostname: "ossb".into(),
        network: match network {
            PlanNetwork::None => Network::None,
            _ => Network::Host,
        },
        extra_hosts: Vec::new(),
        mounts: prepared.mounts.clone(),
    };

    check_emulator(state, &lower)?;
    let sandbox = ctx.sandbox()?;
    // Where a step's wall time goes (logged at debug level; docs/benchmarks.md).
    let mut phases = Phases::start();
    let mut snap = snapshot::open(
        ctx.snapshotter(sandbox.rung()),
        lower.clone(),
        ctx.scratch.to_path_buf(),
        sandbox.id_map().clone(),
        &ctx.sandbox_helper,
    )
    .map_err(|e| {
        Error::new(
            ExitCode::Build,
            format!("cannot prepare the RUN snapshot: {e}"),
        )
    })?;
    let root = snap.prepare().map_err(|e| {
        Error::new(
            ExitCode::Build,
            format!("cannot prepare the RUN snapshot: {e}"),
        )
    })?;
    let mut on_line = |line: &str| {
        ctx.progress.event(&ProgressEvent::StepOutput {
            id: id.clone(),
            line: line.to_string(),
        });
    };
    phases.lap("prepare");
    let report = match sandbox.run(&root, &spec, &ctx.cancel, &mut on_line) {
        Ok(r) => r,
        Err(e) => {
            let _ = snap.abort();
            return Err(sandbox_error(e, &argv));
        }
    };
    phases.lap("run");
    // Release cache locks and private copies now that the step is over.
    drop(prepared);
    for w in &report.warnings {
        ctx.progress
            .event(&ProgressEvent::Warning { message: w.clone() });
    }
    let mut diff = snap.diff().map_err(|e| {
        Error::new(
            ExitCode::Build,
            format!("cannot read what the RUN step changed: {e}"),
        )
    })?;
    // Owners of symlinks set under ownership emulation (they cannot carry the xattr).
    diff.apply_link_owners(&report.link_owners);
    if let Some((intercepted, emulated)) = report.owner_calls {
        tracing::debug!(
            component = "exec",
            intercepted,
            emulated,
            "ownership emulation"
        );
    }
    for w in &diff.warnings {
        ctx.progress
            .event(&ProgressEvent::Warning { message: w.clone() });
    }
    state.index.apply_entries(&diff.entries);
    phases.lap("diff");
    // The previous step's layer is read from the lower dir, which the commit changes.
    if let Some(previous) = pending.take() {
        previous.finish(ctx, state)?;
    }
    phases.lap("wait");
    let mut entries = diff.entries;
    let bytes = tar_len(&entries, ctx.layer_opts.source_date_epoch)?;
    let leftover = snap.commit_detached(&mut entries).map_err(|e| {
        Error::new(
            ExitCode::Build,
            format!("cannot apply the RUN step's changes: {e}"),
        )
    })?;
    phases.lap("commit");
    // The layer is tarred and compressed from the lower dir while the next step runs in its
    // own upper dir (the first thing that changes the lower dir or reads the stage's layers
    // waits for it); the step's scratch goes with it.
    // The claim is held until the record is in the cache, so an equal step elsewhere waits
    // for the layer instead of running again.
    let layer = PendingLayer::spawn(
        ctx,
        key.clone(),
        created_by(step, &argv),
        entries,
        leftover,
        claim,
    );
    if snap.pipelined() {
        *pending = Some(layer);
    } else {
        layer.finish(ctx, state)?;
    }
    tracing::debug!(component = "exec", stage = id.stage, step = id.step, phases = %phases, "RUN step phases (ms)");
    state.key = key;
    Ok(StepResult {
        bytes,
        cache_hit: false,
    })
}

/// The network of a RUN step: its own `--network`, else the build's `--network`.
fn effective_network(step: PlanNetwork, build: RunNetwork) -> PlanNetwork {
    match (step, build) {
        (PlanNetwork::Default, RunNetwork::Host) => PlanNetwork::Host,
        (PlanNetwork::Default, RunNetwork::None) => PlanNetwork::None,
        (step, _) => step,
    }
}

/// A RUN step for another architecture runs through a `binfmt_misc` emulator; the build
/// checked that one is registered, and here, with the root filesystem at hand, that a handler
/// without the F flag finds its interpreter inside it.
fn check_emulator(state: &StageState, rootfs: &std::path::Path) -> Result<(), Error> {
    let platform = state.builder.platform();
    if platform.architecture.is_empty() || platform.os.is_empty() {
        return Ok(());
    }
    let host = crate::image::oci::Platform::host();
    let dir = std::path::Path::new(binfmt::BINFMT_DIR);
    match binfmt::emulation_for(&host, &platform.normalize(), dir)? {
        binfmt::Emulation::Native => Ok(()),
        binfmt::Emulation::Handler(h) => binfmt::check_interpreter_in_root(&h, &platform, rootfs),
    }
}

/// A RUN step's layer being written on another thread.
pub struct PendingLayer<'a> {
    handle: Option<std::thread::JoinHandle<Result<LayerInfo, Error>>>,
    key: CacheKey,
    created_by: String,
    /// The step's in-flight claim, released once its record is in the cache.
    claim: Option<super::cache::Claim<'a>>,
}

impl<'a> PendingLayer<'a> {
    fn spawn(
        ctx: &BuildCtx<'a>,
        key: CacheKey,
        created_by: String,
        entries: Vec<crate::image::entry::Entry>,
        leftover: Option<crate::exec::remove::TreeDir>,
        claim: super::cache::Claim<'a>,
    ) -> Self {
        let store = ctx.store.clone();
        let opts = ctx.layer_opts.clone();
        let handle = std::thread::spawn(move || {
            // Removing the step's scratch waits on the disk, compressing on the CPU.
            let removing = std::thread::spawn(move || drop(leftover));
            let info = write_layer(&store, entries, &opts).map_err(Error::from);
            let _ = removing.join();
            info
        });
        PendingLayer {
            handle: Some(handle),
            key,
            created_by,
            claim: Some(claim),
        }
    }

    /// Waits for the layer and adds it to the stage: history, cache record, `--cache-to`
    /// chain, counters.
    pub fn finish(mut self, ctx: &BuildCtx<'_>, state: &mut StageState) -> Result<(), Error> {
        let info = match self.handle.take().map(|h| h.join()) {
            // Named, since the error surfaces during a later step.
            Some(Ok(result)) => result.map_err(|e| {
                Error::new(
                    e.exit_code(),
                    format!("writing the layer of {}: {e}", self.created_by),
                )
            })?,
            _ => {
                return Err(Error::new(
                    ExitCode::General,
                    "the layer writer thread panicked",
                ));
            }
        };
        ctx.stats
            .bytes_written
            .fetch_add(info.size, std::sync::atomic::Ordering::Relaxed);
        let record = Record::of(&info, &ctx.created);
        ctx.cache.put(&self.key, &record);
        state.add_layer(&info, &ctx.created, std::mem::take(&mut self.created_by));
        ctx.remember(state, &self.key, &record);
        drop(self.claim.take());
        Ok(())
    }
}

impl Drop for PendingLayer<'_> {
    /// A build that fails before the layer is added still waits for the thread, which reads
    /// the stage's filesystem.
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// Wall time of a RUN step's phases, for the debug log.
struct Phases {
    last: std::time::Instant,
    laps: Vec<(&'static str, u128)>,
}

impl Phases {
    fn start() -> Self {
        Phases {
            last: std::time::Instant::now(),
            laps: Vec::new(),
        }
    }

    fn lap(&mut self, name: &'static str) {
        let now = std::time::Instant::now();
        self.laps
            .push((name, now.duration_since(self.last).as_millis()));
        self.last = now;
    }
}

impl std::fmt::Display for Phases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (name, ms)) in self.laps.iter().enumerate() {
            let sep = if i == 0 { "" } else { " " };
            write!(f, "{sep}{name}={ms}")?;
        }
        Ok(())
    }
}

fn sandbox_error(e: SandboxError, argv: &[String]) -> Error {
    match e {
        SandboxError::StepFailed {
            code,
            signal,
            last_lines,
        } => {
            let how = match (code, signal) {
                (_, Some(sig)) => format!("was killed by signal {sig}"),
                (Some(c), None) => format!("exited with code {c}"),
                (None, None) => "failed".to_string(),
            };
            let tail = if last_lines.is_empty() {
                String::new()
            } else {
                format!("\nlast output:\n  {}", last_lines.join("\n  "))
            };
            Error::new(
                ExitCode::Build,
                format!("RUN {} {how}{tail}", argv.join(" ")),
            )
        }
        SandboxError::Cancelled => Error::new(
            ExitCode::Cancelled,
            "the build was cancelled during a RUN step",
        ),
        other => Error::new(ExitCode::Build, other.to_string()),
    }
}
