//! `RUN --mount`: turns the parsed mounts of a step into sandbox mounts, with BuildKit's
//! semantics.
//!
//! - `type=secret`: the value of a `--secret` as a read-only file (default
//!   `/run/secrets/<id>`, mode 0400, owned by `uid`/`gid`) and/or an environment variable
//!   (`env=`). Values never enter a cache key, a layer, the history or a log line.
//! - `type=cache`: a persistent directory `cache-mounts/<sanitised id>` of the store, shared,
//!   locked or private (`sharing=`); its contents never enter the layer.
//! - `type=bind`: the build context (default), a stage or an image, read-only unless `rw`;
//!   writes with `rw` go to a private copy and are discarded.
//! - `type=tmpfs`: an empty in-memory filesystem.
//! - `type=ssh`: not supported yet.
//!
//! Targets are relative to the WORKDIR when not absolute.

use super::BuildCtx;
use super::base::{ImageSource, classify, manifest_layers};
use super::cache::KeyBuilder;
use super::state::StageState;
use crate::backend::SecretFrom;
use crate::error::{Error, ExitCode};
use crate::exec::Root;
use crate::exec::context::{ContextKind, ContextScan, scan_context};
use crate::exec::sandbox::{ExtraMount, ExtraMountKind, Ownership, SecretBytes};
use crate::plan::instructions::{CacheSharing, Mount, MountType, Run};
use crate::plan::{StageBase, Step};
use rustix::fs::{FlockOperation, Mode, OFlags, ResolveFlags};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// BuildKit's limit on the size of one secret.
const MAX_SECRET_SIZE: usize = 500 * 1024;

/// Directory of the store that holds cache mounts.
const CACHE_MOUNTS_DIR: &str = "cache-mounts";

/// The sandbox mounts of one step and what must live while it runs.
#[derive(Default)]
pub struct PreparedMounts {
    /// The mounts, in the order written.
    pub mounts: Vec<ExtraMount>,
    /// Secret environment variables (`NAME=value`): for the step's environment only.
    pub env: Vec<String>,
    /// Locks and private copies held for the step's duration.
    _hold: Vec<Hold>,
}

enum Hold {
    Lock(#[allow(dead_code)] OwnedFd),
    Dir(#[allow(dead_code)] tempfile::TempDir),
}

fn build_err(msg: impl Into<String>) -> Error {
    Error::new(ExitCode::Build, msg.into())
}

/// Fails early on mount kinds this builder cannot provide.
pub fn check_supported(run: &Run) -> Result<(), Error> {
    for m in &run.mounts {
        if m.mount_type == MountType::Ssh {
            return Err(build_err(
                "RUN --mount=type=ssh is not supported yet; fetch private sources with a secret \
                 (--mount=type=secret) or copy them into the build context",
            ));
        }
        if m.mount_type == MountType::Cache && m.from.is_some() {
            return Err(build_err(
                "RUN --mount=type=cache,from=... is not supported yet; drop from= to start from an empty cache",
            ));
        }
    }
    Ok(())
}

/// The absolute target of a mount (relative targets are beneath the WORKDIR).
fn target_of(m: &Mount, workdir: &str) -> Option<String> {
    let t = m.target.as_deref().filter(|t| !t.is_empty())?;
    Some(super::steps::abs_path(workdir, t))
}

/// BuildKit's secret id, target and env of a `type=secret` mount.
fn secret_names(m: &Mount, workdir: &str) -> Result<(String, Option<String>), Error> {
    let id = m
        .source
        .clone()
        .or_else(|| m.id.clone())
        .filter(|s| !s.is_empty());
    let id = match id {
        Some(id) => id,
        None => {
            let t = m.target.as_deref().unwrap_or("");
            let base = t.trim_end_matches('/').rsplit('/').next().unwrap_or("");
            if base.is_empty() {
                return Err(build_err(
                    "RUN --mount=type=secret needs an id: add id=ID (or target=PATH)",
                ));
            }
            base.to_string()
        }
    };
    let target = match target_of(m, workdir) {
        Some(t) => Some(t),
        None if m.env.is_none() => {
            let base = id.trim_end_matches('/').rsplit('/').next().unwrap_or(&id);
            Some(format!("/run/secrets/{base}"))
        }
        None => None,
    };
    Ok((id, target))
}

/// The value of secret `id`, or `None` when the build was given none.
fn secret_value(ctx: &BuildCtx<'_>, id: &str) -> Result<Option<Vec<u8>>, Error> {
    let Some(src) = ctx.request.secrets.iter().rev().find(|s| s.id == id) else {
        return Ok(None);
    };
    let value = match &src.from {
        SecretFrom::File(path) => std::fs::read(path).map_err(|e| {
            Error::new(
                ExitCode::Configuration,
                format!(
                    "cannot read secret {id:?} from {}: {e} (check --secret id={id},src=PATH)",
                    path.display()
                ),
            )
        })?,
        SecretFrom::Env(var) => match crate::exec::sandbox::env_var(var) {
            Some(v) => std::os::unix::ffi::OsStringExt::into_vec(v),
            None => return Ok(None),
        },
    };
    if value.len() > MAX_SECRET_SIZE {
        return Err(Error::new(
            ExitCode::Configuration,
            format!("secret {id:?} is larger than {MAX_SECRET_SIZE} bytes; pass a smaller secret"),
        ));
    }
    Ok(Some(value))
}

/// Where a bind mount's files come from.
enum BindRoot<'a> {
    /// The build context (filtered by `.dockerignore`).
    Context,
    /// A named build context that is a directory.
    Dir(PathBuf),
    /// A built stage.
    Stage(&'a StageState),
    /// An image.
    Image(ImageSource),
}

fn bind_root<'a>(
    ctx: &BuildCtx<'_>,
    m: &Mount,
    resolved: Option<&StageBase>,
    done: &'a BTreeMap<usize, StageState>,
) -> Result<BindRoot<'a>, Error> {
    let Some(from) = m.from.as_deref().filter(|f| !f.is_empty()) else {
        return Ok(BindRoot::Context);
    };
    match resolved {
        Some(StageBase::Stage(i)) => done.get(i).map(BindRoot::Stage).ok_or_else(|| {
            Error::new(
                ExitCode::General,
                format!("stage {i} was not built before it was used"),
            )
        }),
        Some(StageBase::Scratch) => Err(build_err(format!(
            "RUN --mount from={from}: scratch has no files to mount"
        ))),
        _ => match classify(from, &ctx.request.build_contexts)? {
            ImageSource::Directory(dir) => Ok(BindRoot::Dir(dir)),
            source => Ok(BindRoot::Image(source)),
        },
    }
}

/// The canonical path of `source` beneath a scanned tree, following its symlinks.
fn resolve_in(base: &Path, source: &str) -> Result<String, Error> {
    Ok(Root::open_host(base)?.resolve(source)?)
}

/// A digest of everything beneath `rel` of a scanned tree: paths, types, modes, link targets
/// and contents (not times).
fn tree_digest(ctx: &BuildCtx<'_>, scan: &ContextScan, rel: &str) -> Result<String, Error> {
    let top = scan
        .get(rel)
        .ok_or_else(|| build_err(format!("RUN --mount source {rel:?} not found")))?;
    let mut h = Sha256::new();
    let prefix_len = if rel.is_empty() { 0 } else { rel.len() + 1 };
    let sub: &[_] = if top.kind == ContextKind::Dir {
        scan.subtree(rel)
    } else {
        &[]
    };
    for f in std::iter::once(top).chain(sub) {
        let name = f.rel_path.get(prefix_len..).unwrap_or("");
        let content = match f.kind {
            ContextKind::File => ctx
                .stat_cache
                .digest(&scan.host_path(&f.rel_path))
                .map_err(|e| build_err(format!("cannot read {}: {e}", f.rel_path)))?,
            ContextKind::Symlink => f.link_target.clone().unwrap_or_default(),
            _ => String::new(),
        };
        let line = format!("{name}\0{:?}\0{:o}\0{content}\n", f.kind, f.mode);
        h.update((line.len() as u64).to_le_bytes());
        h.update(line.as_bytes());
    }
    Ok(hex::encode(h.finalize()))
}

/// Adds what the mounts make the step see to its key: the mount specs (never a secret's
/// value) and the contents of bind sources.
pub fn add_to_key(
    ctx: &BuildCtx<'_>,
    step: &Step,
    run: &Run,
    done: &BTreeMap<usize, StageState>,
    key: &mut KeyBuilder,
) -> Result<(), Error> {
    if run.mounts.is_empty() {
        return Ok(());
    }
    let specs = serde_json::to_vec(&run.mounts).unwrap_or_default();
    key.field("mounts", &specs);
    for (i, m) in run.mounts.iter().enumerate() {
        if m.mount_type != MountType::Bind {
            continue;
        }
        let source = m.source.as_deref().unwrap_or("/");
        let value = match bind_root(
            ctx,
            m,
            step.mount_from.get(i).and_then(Option::as_ref),
            done,
        )? {
            BindRoot::Context => {
                let scan = ctx.context_scan()?;
                let rel = resolve_in(&scan.base, source)?;
                tree_digest(ctx, scan, &rel)?
            }
            BindRoot::Dir(dir) => {
                let scan = scan_context(&dir, &|_, _| false)?;
                let rel = resolve_in(&dir, source)?;
                tree_digest(ctx, &scan, &rel)?
            }
            BindRoot::Stage(state) => format!("stage {} {source}", state.key),
            BindRoot::Image(src) => {
                let image = ctx.fetcher.image(&src)?;
                format!("image {} {source}", image.manifest_desc.digest)
            }
        };
        key.field(&format!("mount-{i}"), value.as_bytes());
    }
    Ok(())
}

/// Prepares the sandbox mounts of a step that is about to run.
pub fn prepare(
    ctx: &BuildCtx<'_>,
    step: &Step,
    run: &Run,
    done: &BTreeMap<usize, StageState>,
    workdir: &str,
) -> Result<PreparedMounts, Error> {
    let mut out = PreparedMounts::default();
    for (i, m) in run.mounts.iter().enumerate() {
        match m.mount_type {
            MountType::Secret => secret(ctx, m, workdir, &mut out)?,
            MountType::Tmpfs => {
                let target = required_target(m, workdir)?;
                out.mounts.push(ExtraMount {
                    target,
                    kind: ExtraMountKind::Tmpfs {
                        size: m.size_limit.filter(|s| *s > 0).map(|s| s as u64),
                    },
                });
            }
            MountType::Cache => cache(ctx, m, workdir, &mut out)?,
            MountType::Bind => {
                let resolved = step.mount_from.get(i).and_then(Option::as_ref);
                bind(ctx, m, resolved, done, workdir, &mut out)?
            }
            MountType::Ssh => check_supported(run)?,
        }
    }
    Ok(out)
}

fn required_target(m: &Mount, workdir: &str) -> Result<String, Error> {
    target_of(m, workdir).ok_or_else(|| {
        build_err(format!(
            "RUN --mount=type={} requires a target: add target=<path>",
            m.mount_type.as_str()
        ))
    })
}

fn secret(
    ctx: &BuildCtx<'_>,
    m: &Mount,
    workdir: &str,
    out: &mut PreparedMounts,
) -> Result<(), Error> {
    let (id, target) = secret_names(m, workdir)?;
    let Some(value) = secret_value(ctx, &id)? else {
        if m.required {
            return Err(build_err(format!(
                "secret {id:?} is required but was not provided: pass it with --secret id={id},src=PATH (or --secret id={id},env=VAR)"
            )));
        }
        return Ok(());
    };
    if let Some(name) = &m.env {
        let text = String::from_utf8(value.clone()).map_err(|_| {
            build_err(format!(
                "secret {id:?} is not UTF-8 text and cannot be put in the environment variable {name}; mount it as a file instead"
            ))
        })?;
        if text.contains('\0') {
            return Err(build_err(format!(
                "secret {id:?} contains a NUL byte and cannot be put in the environment variable {name}"
            )));
        }
        out.env.push(format!("{name}={text}"));
    }
    if let Some(target) = target {
        out.mounts.push(ExtraMount {
            target,
            kind: ExtraMountKind::File {
                data: SecretBytes(value),
                uid: m.uid.unwrap_or(0),
                gid: m.gid.unwrap_or(0),
                mode: m.mode.unwrap_or(0o400),
            },
        });
    }
    Ok(())
}

/// A directory name for a cache id: safe characters of the id plus a hash of all of it, so
/// different ids never share a directory and no id can name anything but one entry.
pub fn cache_dir_name(id: &str) -> String {
    let safe: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    let hash = hex::encode(Sha256::digest(id.as_bytes()));
    format!("{}-{}", safe.trim_start_matches('.'), &hash[..16])
}

fn io_err(what: String) -> impl FnOnce(rustix::io::Errno) -> Error {
    move |e| Error::new(ExitCode::Resource, format!("{what}: {e}"))
}

fn cache(
    ctx: &BuildCtx<'_>,
    m: &Mount,
    workdir: &str,
    out: &mut PreparedMounts,
) -> Result<(), Error> {
    let target = required_target(m, workdir)?;
    let id =
        m.id.clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| target.clone());
    let parent = ctx.store.root().join(CACHE_MOUNTS_DIR);
    std::fs::create_dir_all(&parent).map_err(|e| {
        Error::new(
            ExitCode::Resource,
            format!("cannot create {}: {e}", parent.display()),
        )
    })?;
    let dirfd = rustix::fs::open(
        &parent,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io_err(format!("cannot open {}", parent.display())))?;
    let name = cache_dir_name(&id);
    let created = match rustix::fs::mkdirat(&dirfd, name.as_str(), Mode::from_raw_mode(0o755)) {
        Ok(()) => true,
        Err(rustix::io::Errno::EXIST) => false,
        Err(e) => return Err(io_err(format!("cannot create the cache mount {id:?}"))(e)),
    };
    let dir = rustix::fs::openat2(
        &dirfd,
        name.as_str(),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(io_err(format!("cannot open the cache mount {id:?}")))?;
    let owner = Ownership {
        uid: m.uid.unwrap_or(0),
        gid: m.gid.unwrap_or(0),
        mode: m.mode.unwrap_or(0o755),
    };
    let lock = |op| rustix::fs::flock(&dir, op);
    let source = match m.sharing.unwrap_or(CacheSharing::Shared) {
        CacheSharing::Shared => {
            lock(FlockOperation::LockShared)
                .map_err(io_err(format!("cannot lock the cache mount {id:?}")))?;
            None
        }
        CacheSharing::Locked => {
            lock(FlockOperation::LockExclusive)
                .map_err(io_err(format!("cannot lock the cache mount {id:?}")))?;
            None
        }
        CacheSharing::Private => match lock(FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => None,
            // Busy: this step gets a fresh directory of its own.
            Err(rustix::io::Errno::WOULDBLOCK) => Some(
                tempfile::Builder::new()
                    .prefix("cache-private-")
                    .tempdir_in(ctx.scratch)
                    .map_err(|e| {
                        Error::new(ExitCode::Resource, format!("cannot create a temp dir: {e}"))
                    })?,
            ),
            Err(e) => return Err(io_err(format!("cannot lock the cache mount {id:?}"))(e)),
        },
    };
    let (path, fresh) = match source {
        Some(tmp) => {
            let p = tmp.path().to_path_buf();
            out._hold.push(Hold::Dir(tmp));
            (p, true)
        }
        None => (parent.join(&name), created),
    };
    out._hold.push(Hold::Lock(dir));
    out.mounts.push(ExtraMount {
        target,
        kind: ExtraMountKind::Bind {
            source: path_string(&path)?,
            read_only: m.read_only,
            init_owner: fresh.then_some(owner),
        },
    });
    Ok(())
}

fn path_string(p: &Path) -> Result<String, Error> {
    p.to_str().map(str::to_string).ok_or_else(|| {
        Error::new(
            ExitCode::Resource,
            format!("path {} is not UTF-8", p.display()),
        )
    })
}

fn temp_dir(ctx: &BuildCtx<'_>, prefix: &str) -> Result<tempfile::TempDir, Error> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(ctx.scratch)
        .map_err(|e| Error::new(ExitCode::Resource, format!("cannot create a temp dir: {e}")))
}

fn bind(
    ctx: &BuildCtx<'_>,
    m: &Mount,
    resolved: Option<&StageBase>,
    done: &BTreeMap<usize, StageState>,
    workdir: &str,
    out: &mut PreparedMounts,
) -> Result<(), Error> {
    let target = required_target(m, workdir)?;
    let source = m.source.as_deref().unwrap_or("/");
    let path = match bind_root(ctx, m, resolved, done)? {
        BindRoot::Context => {
            let scan = ctx.context_scan()?;
            let rel = resolve_in(&scan.base, source)?;
            copy_scanned(ctx, scan, &rel, source, !m.read_only, out)?
        }
        BindRoot::Dir(dir) => {
            let scan = scan_context(&dir, &|_, _| false)?;
            let rel = resolve_in(&dir, source)?;
            copy_scanned(ctx, &scan, &rel, source, !m.read_only, out)?
        }
        BindRoot::Stage(state) => {
            let built = state.builder.write(ctx.store)?;
            let manifest = crate::image::layout::read_manifest(ctx.store, &built.manifest)?;
            materialized(ctx, &manifest_layers(&manifest), source, out)?
        }
        BindRoot::Image(src) => {
            let image = ctx.fetcher.image(&src)?;
            materialized(ctx, &manifest_layers(&image.manifest), source, out)?
        }
    };
    out.mounts.push(ExtraMount {
        target,
        kind: ExtraMountKind::Bind {
            source: path_string(&path)?,
            read_only: m.read_only,
            init_owner: None,
        },
    });
    Ok(())
}

/// Unpacks layers into a private dir (writes of an `rw` mount land there and are dropped);
/// returns the host path of `source` beneath it.
fn materialized(
    ctx: &BuildCtx<'_>,
    layers: &[(crate::image::digest::Digest, u64)],
    source: &str,
    out: &mut PreparedMounts,
) -> Result<PathBuf, Error> {
    let dir = ctx.materialize(layers)?;
    let rel = resolve_in(dir.path(), source)?;
    let path = dir.path().join(&rel);
    if std::fs::symlink_metadata(&path).is_err() {
        return Err(build_err(format!(
            "RUN --mount source {source:?} not found in the mounted stage or image"
        )));
    }
    out._hold.push(Hold::Dir(dir));
    Ok(path)
}

/// Lays out `rel` of a scanned tree (only what the scan kept: `.dockerignore` applies) in a
/// private dir: hard links for a read-only mount where possible, copies otherwise (so writes
/// of an `rw` mount never reach the context). Returns the path to mount.
fn copy_scanned(
    ctx: &BuildCtx<'_>,
    scan: &ContextScan,
    rel: &str,
    shown: &str,
    writable: bool,
    out: &mut PreparedMounts,
) -> Result<PathBuf, Error> {
    let top = scan.get(rel).ok_or_else(|| {
        build_err(format!(
            "RUN --mount source {shown:?} not found in the build context (or excluded by .dockerignore)"
        ))
    })?;
    let tmp = temp_dir(ctx, "bind-")?;
    let dest = tmp.path().join("src");
    let io = |what: &str, p: &Path, e: std::io::Error| {
        Error::new(
            ExitCode::Resource,
            format!("cannot {what} {} for a bind mount: {e}", p.display()),
        )
    };
    let place = |from: &Path, to: &Path, kind: ContextKind, link: Option<&str>| {
        match kind {
            ContextKind::Dir => std::fs::create_dir(to).map_err(|e| io("create", to, e)),
            ContextKind::File => {
                if writable || std::fs::hard_link(from, to).is_err() {
                    std::fs::copy(from, to)
                        .map(|_| ())
                        .map_err(|e| io("copy", from, e))
                } else {
                    Ok(())
                }
            }
            ContextKind::Symlink => {
                std::os::unix::fs::symlink(link.unwrap_or(""), to).map_err(|e| io("create", to, e))
            }
            // Devices, fifos and sockets are not part of a bind source.
            _ => Ok(()),
        }
    };
    place(
        &scan.host_path(rel),
        &dest,
        top.kind,
        top.link_target.as_deref(),
    )?;
    let mut dirs = Vec::new();
    if top.kind == ContextKind::Dir {
        dirs.push((dest.clone(), top.mode));
        let prefix_len = if rel.is_empty() { 0 } else { rel.len() + 1 };
        for f in scan.subtree(rel) {
            let Some(sub) = f.rel_path.get(prefix_len..) else {
                continue;
            };
            let to = dest.join(sub);
            place(
                &scan.host_path(&f.rel_path),
                &to,
                f.kind,
                f.link_target.as_deref(),
            )?;
            if f.kind == ContextKind::Dir {
                dirs.push((to, f.mode));
            }
        }
    }
    // Directory modes last, so read-only directories could still be filled.
    for (d, mode) in dirs.iter().rev() {
        let perms = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(*mode);
        std::fs::set_permissions(d, perms).map_err(|e| io("set the mode of", d, e))?;
    }
    out._hold.push(Hold::Dir(tmp));
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::instructions::parse_mount;

    fn mount(spec: &str) -> Mount {
        let f = |w: &str| Ok(w.to_string());
        parse_mount(spec, Some(&f)).expect("valid mount")
    }

    #[test]
    fn secret_ids_and_targets_follow_buildkit() {
        let n = |s: &str| secret_names(&mount(s), "/srv").expect("names");
        assert_eq!(
            n("type=secret,id=tok"),
            ("tok".into(), Some("/run/secrets/tok".into()))
        );
        assert_eq!(
            n("type=secret,target=/etc/pw"),
            ("pw".into(), Some("/etc/pw".into()))
        );
        assert_eq!(
            n("type=secret,id=tok,target=rel"),
            ("tok".into(), Some("/srv/rel".into()))
        );
        assert_eq!(n("type=secret,id=tok,env=TOKEN"), ("tok".into(), None));
        assert_eq!(
            n("type=secret,id=tok,env=TOKEN,target=/s"),
            ("tok".into(), Some("/s".into()))
        );
    }

    #[test]
    fn cache_dir_names_are_one_safe_component() {
        for id in ["/root/.cache", "..", "../../etc", ".", "a/b", "x\0y", ""] {
            let n = cache_dir_name(id);
            assert!(!n.contains('/') && !n.contains('\0') && n != "." && n != "..");
            assert!(!n.starts_with('.'), "{n}");
        }
        assert_ne!(cache_dir_name("a/b"), cache_dir_name("a_b"));
    }
}
