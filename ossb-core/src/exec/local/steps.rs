//! Executing one build step against a stage's state: metadata instructions change the config,
//! COPY/ADD/WORKDIR produce layers from entries, RUN goes to the sandbox.

use super::BuildCtx;
use super::add_url::{self, UrlAdd};
use super::base::{ImageSource, classify, manifest_layers};
use super::cache::{KeyBuilder, Record, add_entries};
use super::state::StageState;
use crate::error::{Error, ExitCode};
use crate::exec::archive_src::{ArchiveTarget, archive_entries};
use crate::exec::context::{ContextScan, scan_context};
use crate::exec::copy::{CopyRequest, copy_entries};
use crate::exec::fsindex::NodeKind;
use crate::exec::{Chmod, Root, resolve_user};
use crate::image::entry::{Entry, EntryKind, Source};
use crate::image::layer::write_layer;
use crate::image::oci::{Empty, Healthcheck};
use crate::plan::instructions::{Add, Copy, Instruction};
use crate::plan::{StageBase, Step};
use std::collections::BTreeMap;

/// What a step produced.
#[derive(Debug, Default)]
pub struct StepResult {
    /// Uncompressed bytes of the layer it added (0 for metadata steps).
    pub bytes: u64,
    /// The layer came from the cache.
    pub cache_hit: bool,
}

/// Go's `%q` of a string slice: `["a" "b"]`, as BuildKit writes CMD/ENTRYPOINT history.
fn go_quoted_list(items: &[String]) -> String {
    let inner: Vec<String> = items
        .iter()
        .map(|s| crate::dockerfile::dump::go_quote(s))
        .collect();
    format!("[{}]", inner.join(" "))
}

fn pairs_text(pairs: &[crate::plan::instructions::KeyValue]) -> String {
    pairs
        .iter()
        .map(|kv| format!("{}={}", kv.key, kv.value))
        .collect::<Vec<_>>()
        .join(" ")
}

fn set_env(env: &mut Vec<String>, key: &str, value: &str) {
    let entry = format!("{key}={value}");
    match env
        .iter_mut()
        .find(|e| e.split_once('=').map(|(k, _)| k) == Some(key))
    {
        Some(slot) => *slot = entry,
        None => env.push(entry),
    }
}

/// The image's default shell, or `/bin/sh -c`.
fn shell_of(state: &StageState) -> Vec<String> {
    let shell = &state.builder.config().config.shell;
    if shell.is_empty() {
        vec!["/bin/sh".into(), "-c".into()]
    } else {
        shell.clone()
    }
}

/// Absolute, lexically clean path for `path` relative to `workdir`.
pub(super) fn abs_path(workdir: &str, path: &str) -> String {
    let joined = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{workdir}/{path}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for p in joined.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

fn workdir_of(state: &StageState) -> String {
    let wd = &state.builder.config().config.working_dir;
    if wd.is_empty() {
        "/".into()
    } else {
        wd.clone()
    }
}

/// Resolve `user[:group]` against the image's `/etc/passwd` and `/etc/group` as indexed.
fn resolve_owner(ctx: &BuildCtx<'_>, state: &StageState, spec: &str) -> Result<(u32, u32), Error> {
    let numeric = spec
        .split(':')
        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if numeric {
        return resolve_user(None, spec).map_err(Error::from);
    }
    // Lay the two small files out in a private dir so the one resolver reads them beneath a root.
    let dir = tempfile::Builder::new()
        .prefix("passwd-")
        .tempdir_in(ctx.scratch)
        .map_err(|e| Error::new(ExitCode::Resource, format!("cannot create a temp dir: {e}")))?;
    std::fs::create_dir(dir.path().join("etc"))
        .map_err(|e| Error::new(ExitCode::Resource, format!("cannot create a temp dir: {e}")))?;
    for file in ["etc/passwd", "etc/group"] {
        if let Some(bytes) = state.index.captured(file) {
            std::fs::write(dir.path().join(file), bytes).map_err(|e| {
                Error::new(ExitCode::Resource, format!("cannot write a temp file: {e}"))
            })?;
        }
    }
    let root = Root::open_host(dir.path())?;
    Ok(resolve_user(Some(&root), spec)?)
}

/// Resolve the destination's parent directories through the image's symlinks, keeping a
/// trailing slash (it changes COPY's meaning).
fn resolve_dest(state: &StageState, dest_abs: &str, trailing_slash: bool) -> Result<String, Error> {
    let resolved = state
        .index
        .resolve(dest_abs, false)
        .map_err(|e| Error::new(ExitCode::Build, e.to_string()))?;
    let (parent, name) = match resolved.rsplit_once('/') {
        Some((p, n)) => (p.to_string(), n.to_string()),
        None => (String::new(), resolved.clone()),
    };
    let parent = state
        .index
        .resolve(&format!("/{parent}"), true)
        .map_err(|e| Error::new(ExitCode::Build, e.to_string()))?;
    let mut out = if name.is_empty() {
        format!("/{parent}")
    } else if parent.is_empty() {
        format!("/{name}")
    } else {
        format!("/{parent}/{name}")
    };
    // A destination that is a symlink to a directory in the image is followed (Docker does).
    if let Ok(full) = state.index.resolve(&out, true)
        && matches!(state.index.get(&full).map(|n| &n.kind), Some(NodeKind::Dir))
    {
        out = format!("/{full}");
    }
    if trailing_slash && !out.ends_with('/') {
        out.push('/');
    }
    Ok(out)
}

/// Write entries as a layer, record it, and update the index; or, when the cache has a layer
/// for the same key (the step's inputs plus these entries' metadata and content), reuse it.
fn commit_layer(
    ctx: &BuildCtx<'_>,
    state: &mut StageState,
    entries: Vec<Entry>,
    created_by: String,
    mut key: KeyBuilder,
) -> Result<StepResult, Error> {
    add_entries(&mut key, &entries, ctx.stat_cache, ctx.jobs)?;
    let key = key.finish();
    // Another platform making the same layer right now: wait for it, then take its record.
    let _claim = ctx.in_flight.claim(&key);
    if let Some(record) = ctx.lookup(state, &key) {
        state.index.apply_entries(&entries);
        super::run::apply_layer_to_rootfs(ctx, state, &record.digest, record.size)?;
        state.add_layer(&record.layer(), &record.created, created_by);
        ctx.remember(state, &key, &record);
        state.key = key;
        return Ok(StepResult {
            bytes: record.uncompressed_size,
            cache_hit: true,
        });
    }
    state.index.apply_entries(&entries);
    // The layer writer reads every file that comes from the context or another tree.
    let source_bytes: u64 = entries
        .iter()
        .filter_map(|e| match &e.kind {
            EntryKind::File {
                source: Source::Path(_),
                size,
            } => Some(*size),
            _ => None,
        })
        .sum();
    let info = write_layer(ctx.store, entries, &ctx.layer_opts)?;
    ctx.stats
        .bytes_read
        .fetch_add(source_bytes, std::sync::atomic::Ordering::Relaxed);
    ctx.stats
        .bytes_written
        .fetch_add(info.size, std::sync::atomic::Ordering::Relaxed);
    super::run::apply_layer_to_rootfs(ctx, state, &info.digest, info.size)?;
    let record = Record::of(&info, &ctx.created);
    ctx.cache.put(&key, &record);
    state.add_layer(&info, &ctx.created, created_by);
    ctx.remember(state, &key, &record);
    state.key = key;
    Ok(StepResult {
        bytes: info.uncompressed_size,
        cache_hit: false,
    })
}

/// Entries for the directory `path` and its missing parents (WORKDIR, COPY heredocs).
fn mkdir_entries(state: &StageState, path: &str, owner: (u32, u32), mtime: i64) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        cur = if cur.is_empty() {
            part.to_string()
        } else {
            format!("{cur}/{part}")
        };
        if state.index.get(&cur).is_none() {
            out.push(Entry {
                path: cur.clone(),
                kind: EntryKind::Dir,
                mode: 0o755,
                uid: owner.0,
                gid: owner.1,
                mtime,
                mtime_nsec: 0,
                xattrs: BTreeMap::new(),
            });
        }
    }
    out
}

/// The files a COPY/ADD reads from: the build context, a stage, an image or a named context.
enum SourceTree {
    Context,
    /// A scan of another tree; the temp dir (if any) holds its files until the step is done.
    Scanned(ContextScan, #[allow(dead_code)] Option<tempfile::TempDir>),
}

fn source_tree(
    ctx: &BuildCtx<'_>,
    step: &Step,
    from: Option<&str>,
    done: &BTreeMap<usize, StageState>,
) -> Result<(SourceTree, String), Error> {
    let Some(from) = from else {
        return Ok((SourceTree::Context, "build context".into()));
    };
    let layers = match &step.copy_from {
        Some(StageBase::Stage(i)) => {
            let stage = done.get(i).ok_or_else(|| {
                Error::new(
                    ExitCode::General,
                    format!("stage {i} was not built before it was used"),
                )
            })?;
            let built = stage.builder.write(ctx.store)?;
            let manifest = crate::image::layout::read_manifest(ctx.store, &built.manifest)?;
            manifest_layers(&manifest)
        }
        Some(StageBase::Scratch) => Vec::new(),
        _ => match classify(from, &ctx.request.build_contexts)? {
            ImageSource::Directory(dir) => {
                let scan = scan_context(&dir, &|_, _| false)?;
                return Ok((
                    SourceTree::Scanned(scan, None),
                    format!("build context {from}"),
                ));
            }
            source => manifest_layers(&ctx.fetcher.image(&source)?.manifest),
        },
    };
    let dir = ctx.materialize(&layers)?;
    let scan = scan_context(dir.path(), &|_, _| false)?;
    Ok((
        SourceTree::Scanned(scan, Some(dir)),
        format!("stage {from}"),
    ))
}

struct CopyOptions<'a> {
    sources: &'a [String],
    heredocs: &'a [crate::plan::instructions::SourceContent],
    dest: &'a str,
    from: Option<&'a str>,
    chown: Option<&'a str>,
    chmod: Option<&'a str>,
    link: bool,
    parents: bool,
    excludes: &'a [String],
    unpack_archives: bool,
    /// `ADD`: URL sources are downloaded (`COPY` rejects them).
    urls: bool,
    /// `ADD --checksum` of the URL sources.
    checksum: Option<&'a str>,
    /// `ADD --unpack=true` given explicitly (extracts downloaded archives too).
    unpack_urls: bool,
}

fn copy_like(
    ctx: &BuildCtx<'_>,
    state: &mut StageState,
    step: &Step,
    opts: CopyOptions<'_>,
    done: &BTreeMap<usize, StageState>,
    key: KeyBuilder,
) -> Result<StepResult, Error> {
    let workdir = workdir_of(state);
    let owner = match opts.chown {
        Some(spec) => Some(resolve_owner(ctx, state, spec)?),
        None => None,
    };
    let chmod = opts
        .chmod
        .map(Chmod::parse)
        .transpose()
        .map_err(|e| Error::new(ExitCode::Build, format!("line {}: {e}", step.line)))?;
    let dest_abs = abs_path(&workdir, opts.dest);
    let trailing = opts.dest.ends_with('/') || opts.dest.ends_with("/.") || opts.dest == ".";
    let dest = resolve_dest(state, &dest_abs, trailing)?;
    let excluder = if opts.excludes.is_empty() {
        None
    } else {
        Some(
            crate::dockerignore::PatternMatcher::new(opts.excludes).map_err(|e| {
                Error::new(
                    ExitCode::Build,
                    format!("line {}: invalid --exclude pattern: {e}", step.line),
                )
            })?,
        )
    };
    let exclude_fn = |rel: &str, _is_dir: bool| -> bool {
        excluder
            .as_ref()
            .is_some_and(|m| m.matches_or_parent_matches(rel).unwrap_or(false))
    };
    let index = &state.index;
    let base_has_dir = |p: &str| matches!(index.get(p).map(|n| &n.kind), Some(NodeKind::Dir));
    let mut entries: Vec<Entry> = Vec::new();
    // Files of a `--from` tree must outlive the layer writer that reads them.
    let mut keep_alive: Option<SourceTree> = None;
    // Downloaded files, read by the layer writer.
    let mut downloads: Vec<add_url::Downloaded> = Vec::new();
    let (url_sources, local_sources): (Vec<String>, Vec<String>) = opts
        .sources
        .iter()
        .cloned()
        .partition(|s| add_url::is_url(s));
    if let Some(url) = url_sources.first()
        && !opts.urls
    {
        return Err(Error::new(
            ExitCode::Build,
            format!("source can't be a URL for COPY: {url}; use ADD to download it"),
        ));
    }

    if !opts.heredocs.is_empty() {
        // `COPY <<EOF dest`: each heredoc is a file named after its delimiter.
        let dir_dest = opts.heredocs.len() > 1 || trailing;
        let dest_rel = dest.trim_matches('/').to_string();
        let (uid, gid) = owner.unwrap_or((0, 0));
        for doc in opts.heredocs {
            let path = if dir_dest || base_has_dir(&dest_rel) {
                format!("{dest_rel}/{}", doc.path)
                    .trim_start_matches('/')
                    .to_string()
            } else {
                dest_rel.clone()
            };
            let parent = path.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
            for e in mkdir_entries(state, parent, (0, 0), ctx.build_time) {
                if !entries.iter().any(|x| x.path == e.path) {
                    entries.push(e);
                }
            }
            let mode = chmod
                .as_ref()
                .map(|c| c.apply(0o644, false))
                .unwrap_or(0o644);
            entries.push(Entry {
                path,
                kind: EntryKind::File {
                    size: doc.data.len() as u64,
                    source: Source::Bytes(doc.data.clone().into_bytes()),
                },
                mode,
                uid,
                gid,
                mtime: ctx.build_time,
                mtime_nsec: 0,
                xattrs: BTreeMap::new(),
            });
        }
    }

    if !url_sources.is_empty() {
        let dest_rel = dest.trim_matches('/');
        let dest_is_dir = trailing
            || dest.ends_with('/')
            || dest_rel.is_empty()
            || (!opts.link && base_has_dir(dest_rel));
        if opts.sources.len() > 1 && !dest_is_dir {
            return Err(Error::new(
                ExitCode::Build,
                format!(
                    "When using ADD with more than one source file, the destination must be a directory and end with a /: `{}`",
                    opts.dest
                ),
            ));
        }
        let checksum = opts.checksum.map(add_url::parse_checksum).transpose()?;
        let no_dirs = |_: &str| false;
        let add = UrlAdd {
            dest: &dest,
            dest_is_dir,
            owner,
            chmod: chmod.as_ref(),
            checksum: checksum.as_ref(),
            unpack: opts.unpack_urls,
            base_has_dir: if opts.link { &no_dirs } else { &base_has_dir },
        };
        for url in &url_sources {
            let mut got = add_url::url_entries(ctx, url, &add)?;
            entries.append(&mut got.entries);
            downloads.push(got);
        }
    }

    if !local_sources.is_empty() {
        let (tree, context_name) = source_tree(ctx, step, opts.from, done)?;
        let scan = match &tree {
            SourceTree::Context => ctx.context_scan()?,
            SourceTree::Scanned(scan, _) => scan,
        };
        // ADD auto-extracts local tar archives (not with --from, like BuildKit).
        let (archives, plain): (Vec<String>, Vec<String>) =
            if opts.unpack_archives && opts.from.is_none() {
                local_sources
                    .iter()
                    .cloned()
                    .partition(|s| is_local_archive(scan, s))
            } else {
                (Vec::new(), local_sources.clone())
            };
        if !plain.is_empty() {
            let req = CopyRequest {
                sources: &plain,
                dest: &dest,
                workdir: &workdir,
                owner,
                keep_owner: opts.from.is_some(),
                chmod: chmod.as_ref(),
                exclude: if excluder.is_some() {
                    Some(&exclude_fn)
                } else {
                    None
                },
                parents: opts.parents,
                link: opts.link,
                base_has_dir: Some(&base_has_dir),
                build_time: ctx.build_time,
                context_name: &context_name,
            };
            entries.extend(copy_entries(scan, &req)?);
        }
        for archive in &archives {
            let file = std::fs::File::open(scan.host_path(archive.trim_start_matches("./")))
                .map_err(|e| Error::new(ExitCode::Build, format!("ADD {archive}: {e}")))?;
            let target = ArchiveTarget {
                dest: dest.trim_matches('/'),
                owner,
                build_time: ctx.build_time,
                scratch: ctx.scratch,
            };
            entries.extend(archive_entries(file, &target)?);
        }
        keep_alive = Some(tree);
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    entries.dedup_by(|a, b| {
        a.path == b.path && matches!(a.kind, EntryKind::Dir) && matches!(b.kind, EntryKind::Dir)
    });
    let created_by = format!("{} # buildkit", step.text());
    let result = commit_layer(ctx, state, entries, created_by, key);
    drop(keep_alive);
    drop(downloads);
    result
}

/// Whether `src` names a regular file in the scan that starts like a tar archive.
fn is_local_archive(scan: &ContextScan, src: &str) -> bool {
    use std::io::Read;
    if src.contains("://") || crate::exec::glob::has_wildcard(src) {
        return false;
    }
    let rel = src.trim_start_matches("./").trim_start_matches('/');
    let Some(f) = scan.get(rel) else { return false };
    if f.kind != crate::exec::ContextKind::File {
        return false;
    }
    let Ok(file) = std::fs::File::open(scan.host_path(rel)) else {
        return false;
    };
    let Ok((_, mut reader)) = crate::exec::compress::decompress(file) else {
        return false;
    };
    let mut block = [0u8; 512];
    let mut n = 0;
    while n < block.len() {
        match reader.read(&mut block[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    n == 512 && &block[257..262] == b"ustar"
}

fn check_add_sources(add: &Add) -> Result<(), Error> {
    for src in &add.sources.source_paths {
        if src.starts_with("git@")
            || src.starts_with("git://")
            || src.ends_with(".git")
            || src.contains(".git#")
        {
            return Err(Error::new(
                ExitCode::Build,
                format!(
                    "ADD {src}: git sources are not supported yet; clone the repository into the context and COPY it"
                ),
            ));
        }
        if add_url::is_url(src) {
            continue;
        }
        if add.checksum.is_some() {
            return Err(Error::new(
                ExitCode::Build,
                format!(
                    "ADD --checksum {src}: checksum can't be specified for non-HTTP(S) sources; drop --checksum or use a URL"
                ),
            ));
        }
    }
    Ok(())
}

/// Execute one step.
pub fn execute<'a>(
    ctx: &BuildCtx<'a>,
    state: &mut StageState,
    step: &Step,
    id: &crate::progress::StepId,
    done: &BTreeMap<usize, StageState>,
    pending: &mut Option<super::run::PendingLayer<'a>>,
) -> Result<StepResult, Error> {
    // Only a RUN step goes on while the previous RUN's layer is being written; every other
    // step reads or adds to the stage's layers or filesystem.
    if !matches!(step.instruction, Instruction::Run(_))
        && let Some(previous) = pending.take()
    {
        previous.finish(ctx, state)?;
    }
    // Steps that read the filesystem index need the layers of earlier RUN hits applied.
    if matches!(
        step.instruction,
        Instruction::Copy(_) | Instruction::Add(_) | Instruction::Workdir(_)
    ) {
        ctx.settle(state)?;
    }
    let mut key = step_key(ctx, state, step);
    let layered = matches!(
        step.instruction,
        Instruction::Copy(_) | Instruction::Add(_) | Instruction::Workdir(_) | Instruction::Run(_)
    );
    if !layered {
        // Metadata steps only chain the key; their effect is recomputed on every build.
        key.field("kind", b"meta");
        state.key = key.finish();
        key = KeyBuilder::new(&state.key);
    }
    execute_step(ctx, state, step, id, done, key, pending)
}

/// The inputs every step's key has: the parent key, the instruction with its expanded
/// arguments, the values of the build args it uses, and the platform.
fn step_key(ctx: &BuildCtx<'_>, state: &StageState, step: &Step) -> KeyBuilder {
    let mut k = KeyBuilder::new(&state.key);
    k.field("instruction", step.text().as_bytes());
    for name in &step.used_args {
        let value = step.build_args.get(name).map(String::as_str).unwrap_or("");
        k.field(name, value.as_bytes());
    }
    let platform = state.platform.as_ref().unwrap_or(ctx.fetcher.platform);
    k.field("platform", platform.to_string().as_bytes());
    k
}

fn execute_step<'a>(
    ctx: &BuildCtx<'a>,
    state: &mut StageState,
    step: &Step,
    id: &crate::progress::StepId,
    done: &BTreeMap<usize, StageState>,
    key: KeyBuilder,
    pending: &mut Option<super::run::PendingLayer<'a>>,
) -> Result<StepResult, Error> {
    let text = step.text();
    let meta = |state: &mut StageState| state.add_meta_history(&ctx.created, text.clone());
    match &step.instruction {
        Instruction::From(_) | Instruction::Arg(_) => Ok(StepResult::default()),
        Instruction::Env(env) => {
            let cfg = &mut state.builder.config_mut().config;
            for kv in &env.pairs {
                set_env(&mut cfg.env, &kv.key, &kv.value);
            }
            // BuildKit records the expanded pairs, unquoted.
            state.add_meta_history(&ctx.created, format!("ENV {}", pairs_text(&env.pairs)));
            Ok(StepResult::default())
        }
        Instruction::Label(label) => {
            let cfg = &mut state.builder.config_mut().config;
            for kv in &label.pairs {
                cfg.labels.insert(kv.key.clone(), kv.value.clone());
            }
            state.add_meta_history(&ctx.created, format!("LABEL {}", pairs_text(&label.pairs)));
            Ok(StepResult::default())
        }
        Instruction::Expose(expose) => {
            let cfg = &mut state.builder.config_mut().config;
            for port in &expose.ports {
                cfg.exposed_ports.insert(port.clone(), Empty {});
            }
            meta(state);
            Ok(StepResult::default())
        }
        Instruction::User(user) => {
            state.builder.config_mut().config.user = user.user.clone();
            meta(state);
            Ok(StepResult::default())
        }
        Instruction::Volume(volume) => {
            let cfg = &mut state.builder.config_mut().config;
            for p in &volume.paths {
                cfg.volumes.insert(p.clone(), Empty {});
            }
            meta(state);
            Ok(StepResult::default())
        }
        Instruction::StopSignal(s) => {
            state.builder.config_mut().config.stop_signal = s.signal.clone();
            meta(state);
            Ok(StepResult::default())
        }
        Instruction::Maintainer(m) => {
            state.builder.config_mut().author = Some(m.name.clone());
            meta(state);
            Ok(StepResult::default())
        }
        Instruction::Shell(s) => {
            state.builder.config_mut().config.shell = s.shell.clone();
            meta(state);
            Ok(StepResult::default())
        }
        Instruction::Onbuild(o) => {
            state
                .builder
                .config_mut()
                .config
                .on_build
                .push(o.expression.clone());
            meta(state);
            Ok(StepResult::default())
        }
        Instruction::Cmd(cmd) => {
            let args = if cmd.prepend_shell {
                let mut a = shell_of(state);
                a.extend(cmd.args.iter().cloned());
                a
            } else {
                cmd.args.clone()
            };
            state.add_meta_history(&ctx.created, format!("CMD {}", go_quoted_list(&args)));
            state.builder.config_mut().config.cmd = args;
            state.cmd_set = true;
            Ok(StepResult::default())
        }
        Instruction::Entrypoint(ep) => {
            let args = if ep.prepend_shell {
                let mut a = shell_of(state);
                a.extend(ep.args.iter().cloned());
                a
            } else {
                ep.args.clone()
            };
            state.add_meta_history(
                &ctx.created,
                format!("ENTRYPOINT {}", go_quoted_list(&args)),
            );
            let cfg = &mut state.builder.config_mut().config;
            cfg.entrypoint = args;
            // An ENTRYPOINT resets a CMD inherited from the base image (Docker's rule).
            if !state.cmd_set {
                cfg.cmd = Vec::new();
            }
            Ok(StepResult::default())
        }
        Instruction::Healthcheck(hc) => {
            let created_by = hc.history_created_by();
            let cfg = &mut state.builder.config_mut().config;
            cfg.healthcheck = Some(Healthcheck {
                test: hc.test.clone(),
                interval: hc.interval_ns,
                timeout: hc.timeout_ns,
                start_period: hc.start_period_ns,
                start_interval: hc.start_interval_ns,
                retries: hc.retries,
            });
            state.add_meta_history(&ctx.created, created_by);
            Ok(StepResult::default())
        }
        Instruction::Workdir(w) => {
            let path = abs_path(&workdir_of(state), &w.path);
            state.builder.config_mut().config.working_dir = path.clone();
            let resolved = state
                .index
                .resolve(&path, true)
                .map_err(|e| Error::new(ExitCode::Build, e.to_string()))?;
            let user = state.builder.config().config.user.clone();
            let owner = if user.is_empty() {
                (0, 0)
            } else {
                resolve_owner(ctx, state, &user)?
            };
            let entries = mkdir_entries(state, &resolved, owner, ctx.build_time);
            if entries.is_empty() {
                meta(state);
                return Ok(StepResult::default());
            }
            commit_layer(ctx, state, entries, format!("{text} # buildkit"), key)
        }
        Instruction::Copy(c) => copy_step(ctx, state, step, c, done, key),
        Instruction::Add(a) => {
            check_add_sources(a)?;
            let opts = CopyOptions {
                sources: &a.sources.source_paths,
                heredocs: &a.sources.source_contents,
                dest: &a.sources.dest,
                from: None,
                chown: a.chown.as_deref(),
                chmod: a.chmod.as_deref(),
                link: a.link,
                parents: false,
                excludes: &a.excludes,
                unpack_archives: a.unpack.unwrap_or(true),
                urls: true,
                checksum: a.checksum.as_deref(),
                unpack_urls: a.unpack == Some(true),
            };
            copy_like(ctx, state, step, opts, done, key)
        }
        Instruction::Run(run) => super::run::execute(ctx, state, step, run, id, done, key, pending),
    }
}

fn copy_step(
    ctx: &BuildCtx<'_>,
    state: &mut StageState,
    step: &Step,
    c: &Copy,
    done: &BTreeMap<usize, StageState>,
    key: KeyBuilder,
) -> Result<StepResult, Error> {
    let opts = CopyOptions {
        sources: &c.sources.source_paths,
        heredocs: &c.sources.source_contents,
        dest: &c.sources.dest,
        from: c.from.as_deref(),
        chown: c.chown.as_deref(),
        chmod: c.chmod.as_deref(),
        link: c.link,
        parents: c.parents,
        excludes: &c.excludes,
        unpack_archives: false,
        urls: false,
        checksum: None,
        unpack_urls: false,
    };
    copy_like(ctx, state, step, opts, done, key)
}
