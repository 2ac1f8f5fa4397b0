//! COPY and ADD of scanned sources into layer entries, without materialising the image rootfs.
//!
//! Rules (Docker/BuildKit): sources are cleaned and may not leave the context; wildcards match
//! per segment; several sources (or a wildcard matching several) need a destination ending in
//! `/`; a directory source copies its contents; a file copied to `dir/` keeps its name; a
//! top-level symlink source is followed inside the scanned tree, symlinks beneath a copied
//! directory are kept. Copied files keep their mtime; directories created for the destination
//! get `build_time`, mode 0755 and 0:0. Hard links among copied files are kept.

use std::collections::{BTreeMap, HashMap};

use super::chmod::Chmod;
use super::context::{ContextFile, ContextKind, ContextScan, ExcludeFn};
use super::error::{FsError, Result};
use super::fsroot::MAX_LINKS;
use super::glob::{has_wildcard, match_segment};
use crate::image::entry::{Entry, EntryKind, Source};

/// One COPY/ADD instruction, with flags already resolved.
pub struct CopyRequest<'a> {
    /// The sources as written (`src/`, `*.txt`, `./a/./b`).
    pub sources: &'a [String],
    /// The destination as written (`/app/`, `.`, `conf.d`).
    pub dest: &'a str,
    /// The absolute WORKDIR the destination is relative to.
    pub workdir: &'a str,
    /// `--chown` as numeric ids; `None` means 0:0 (or the source owner with `keep_owner`).
    pub owner: Option<(u32, u32)>,
    /// Keep the sources' owners when `owner` is `None` (`COPY --from` a stage).
    pub keep_owner: bool,
    /// `--chmod`.
    pub chmod: Option<&'a Chmod>,
    /// `--exclude`: called with the path relative to the matched source and whether it is a dir.
    pub exclude: Option<ExcludeFn<'a>>,
    /// `--parents`: keep each source's parent directories (below a `/./` pivot, if any).
    pub parents: bool,
    /// `--link`: do not consult the base for existing directories.
    pub link: bool,
    /// Whether an absolute image path (no leading `/`) is a directory in the base image.
    pub base_has_dir: Option<&'a dyn Fn(&str) -> bool>,
    /// Timestamp for directories created for the destination.
    pub build_time: i64,
    /// What the sources come from, for errors (`build context`, `stage builder`).
    pub context_name: &'a str,
}

fn invalid(message: String) -> FsError {
    FsError::Invalid { message }
}

/// Cleans an image path lexically against `/` (`..` clamps at the root), no leading `/`.
fn clean_abs(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out.join("/")
}

/// Cleans a source path; `None` when it climbs out of the context.
fn clean_source(path: &str) -> Option<String> {
    let mut out: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            c => out.push(c),
        }
    }
    Some(out.join("/"))
}

fn parent_of(p: &str) -> &str {
    p.rsplit_once('/').map(|(d, _)| d).unwrap_or("")
}

fn base_name(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}/{b}"),
    }
}

/// Follows `rel` through symlinks inside the scan (lexically, clamped at the scan root).
fn follow<'s>(
    scan: &'s ContextScan,
    rel: &str,
    shown: &str,
    ctx: &str,
) -> Result<(&'s ContextFile, String)> {
    let mut cur = rel.to_string();
    for _ in 0..=MAX_LINKS {
        // Resolve parents first: a symlinked directory in the middle of the path.
        let mut resolved = String::new();
        let comps: Vec<&str> = cur.split('/').filter(|c| !c.is_empty()).collect();
        let mut restart = None;
        for (i, c) in comps.iter().enumerate() {
            let next = join(&resolved, c);
            let f = scan.get(&next).ok_or_else(|| FsError::SourceNotFound {
                path: shown.to_string(),
                context: ctx.to_string(),
            })?;
            if f.kind == ContextKind::Symlink {
                let target = f.link_target.clone().unwrap_or_default();
                let base = if target.starts_with('/') {
                    String::new()
                } else {
                    resolved.clone()
                };
                let rest = comps[i + 1..].join("/");
                restart = Some(clean_abs(&join(&join(&base, &target), &rest)));
                break;
            }
            resolved = next;
        }
        match restart {
            Some(next) => cur = next,
            None => {
                let f = scan.get(&resolved).ok_or_else(|| FsError::SourceNotFound {
                    path: shown.to_string(),
                    context: ctx.to_string(),
                })?;
                return Ok((f, resolved));
            }
        }
    }
    Err(invalid(format!(
        "source `{shown}`: too many levels of symbolic links; fix the link"
    )))
}

/// Turns the sources of `req` (looked up in `scan`) into layer entries, sorted by path.
pub fn copy_entries(scan: &ContextScan, req: &CopyRequest<'_>) -> Result<Vec<Entry>> {
    let ctx = req.context_name;
    let dest_joined = if req.dest.starts_with('/') {
        req.dest.to_string()
    } else {
        format!("{}/{}", req.workdir, req.dest)
    };
    let dest = clean_abs(&dest_joined);
    let dest_slash = req.dest.ends_with('/')
        || req.dest == "."
        || req.dest.ends_with("/.")
        || req.dest.is_empty();
    let dest_is_dir =
        dest_slash || (!req.link && req.base_has_dir.is_some_and(|f| f(&dest))) || dest.is_empty();

    // Match every source.
    struct Match<'s> {
        shown: String,
        keep_prefix: String,
        name: String,
        file: &'s ContextFile,
        resolved: String,
    }
    let mut matches: Vec<Match<'_>> = Vec::new();
    let mut wildcard_many = false;
    for src in req.sources {
        let (pre, post) = match src.split_once("/./") {
            Some((a, b)) if req.parents => (a.to_string(), b.to_string()),
            _ => (String::new(), src.clone()),
        };
        let full = join(&pre, &post);
        let cleaned = clean_source(&full).ok_or_else(|| {
            invalid(format!(
                "COPY failed: forbidden path outside the {ctx}: `{src}`; copy only files inside the {ctx}"
            ))
        })?;
        let pivot = clean_source(&pre).unwrap_or_default();
        let found: Vec<String> = if has_wildcard(&cleaned) {
            let pat: Vec<&str> = cleaned.split('/').collect();
            let mut out = Vec::new();
            for f in &scan.files {
                let segs: Vec<&str> = f.rel_path.split('/').collect();
                if segs.len() != pat.len() {
                    continue;
                }
                let mut ok = true;
                for (p, s) in pat.iter().zip(&segs) {
                    match match_segment(p, s) {
                        Some(true) => {}
                        Some(false) => {
                            ok = false;
                            break;
                        }
                        None => {
                            return Err(invalid(format!(
                                "bad wildcard pattern `{src}`; fix the brackets"
                            )));
                        }
                    }
                }
                if ok {
                    out.push(f.rel_path.clone());
                }
            }
            if out.len() > 1 {
                wildcard_many = true;
            }
            out
        } else {
            vec![cleaned.clone()]
        };
        if found.is_empty() {
            return Err(FsError::SourceNotFound {
                path: src.clone(),
                context: ctx.to_string(),
            });
        }
        for rel in found {
            let (file, resolved) = follow(scan, &rel, src, ctx)?;
            if file.kind == ContextKind::Socket {
                continue;
            }
            let keep_prefix = if req.parents {
                let under = rel
                    .strip_prefix(&pivot)
                    .unwrap_or(&rel)
                    .trim_start_matches('/');
                parent_of(under).to_string()
            } else {
                String::new()
            };
            matches.push(Match {
                shown: src.clone(),
                keep_prefix,
                name: base_name(&rel).to_string(),
                file,
                resolved,
            });
        }
    }
    if (req.sources.len() > 1 || wildcard_many) && !dest_is_dir && !req.parents {
        return Err(invalid(format!(
            "When using COPY with more than one source file, the destination must be a directory and end with a /: `{}`",
            req.dest
        )));
    }

    let mut out: BTreeMap<String, Entry> = BTreeMap::new();
    let mut first_link: HashMap<(u64, u64), String> = HashMap::new();
    let owner_of = |f: &ContextFile| match (req.owner, req.keep_owner) {
        (Some(o), _) => o,
        (None, true) => (f.uid, f.gid),
        (None, false) => (0, 0),
    };
    let mut emit =
        |out: &mut BTreeMap<String, Entry>, path: String, f: &ContextFile, src_rel: &str| {
            let (uid, gid) = owner_of(f);
            let is_dir = f.kind == ContextKind::Dir;
            let mode = match (req.chmod, f.kind) {
                (Some(c), ContextKind::File | ContextKind::Dir) => c.apply(f.mode, is_dir),
                _ => f.mode,
            };
            let kind = match f.kind {
                ContextKind::Dir => EntryKind::Dir,
                ContextKind::Symlink => EntryKind::Symlink {
                    target: f.link_target.clone().unwrap_or_default(),
                },
                ContextKind::Fifo => EntryKind::Fifo,
                ContextKind::CharDevice => EntryKind::CharDevice {
                    major: rustix::fs::major(f.rdev as _),
                    minor: rustix::fs::minor(f.rdev as _),
                },
                ContextKind::BlockDevice => EntryKind::BlockDevice {
                    major: rustix::fs::major(f.rdev as _),
                    minor: rustix::fs::minor(f.rdev as _),
                },
                ContextKind::Socket => return,
                ContextKind::File => {
                    let key = (f.dev, f.ino);
                    match first_link.get(&key) {
                        Some(target) if f.nlink > 1 && *target != path => EntryKind::Hardlink {
                            target: target.clone(),
                        },
                        _ => {
                            if f.nlink > 1 {
                                first_link.insert(key, path.clone());
                            }
                            EntryKind::File {
                                source: Source::Path(scan.host_path(src_rel)),
                                size: f.size,
                            }
                        }
                    }
                }
            };
            out.insert(
                path.clone(),
                Entry {
                    path,
                    kind,
                    mode: if f.kind == ContextKind::Symlink {
                        0o777
                    } else {
                        mode
                    },
                    uid,
                    gid,
                    mtime: f.mtime,
                    mtime_nsec: f.mtime_nsec,
                    xattrs: BTreeMap::new(),
                },
            );
        };

    for m in &matches {
        let base_dest = join(&dest, &m.keep_prefix);
        // Parent directories kept by --parents take the sources' metadata.
        if req.parents && !m.keep_prefix.is_empty() {
            let src_prefix_root = m
                .resolved
                .strip_suffix(&format!("{}/{}", m.keep_prefix, m.name));
            if let Some(root) = src_prefix_root {
                let mut acc = String::new();
                for c in m.keep_prefix.split('/') {
                    acc = join(&acc, c);
                    if let Some(f) = scan.get(&join(root.trim_end_matches('/'), &acc)) {
                        emit(&mut out, join(&dest, &acc), f, "");
                    }
                }
            }
        }
        if m.file.kind == ContextKind::Dir {
            let target = if req.parents {
                join(&base_dest, &m.name)
            } else {
                base_dest.clone()
            };
            if !target.is_empty() {
                emit(&mut out, target.clone(), m.file, &m.resolved);
            }
            let mut skipped: Vec<String> = Vec::new();
            for f in scan.subtree(&m.resolved) {
                let within = &f.rel_path[m.resolved.len() + usize::from(!m.resolved.is_empty())..];
                if skipped.iter().any(|s| within.starts_with(s.as_str())) {
                    continue;
                }
                if req
                    .exclude
                    .is_some_and(|ex| ex(within, f.kind == ContextKind::Dir))
                {
                    if f.kind == ContextKind::Dir {
                        skipped.push(format!("{within}/"));
                    }
                    continue;
                }
                emit(&mut out, join(&target, within), f, &f.rel_path);
            }
        } else {
            if req.exclude.is_some_and(|ex| ex(&m.name, false)) {
                continue;
            }
            let target = if dest_is_dir || req.parents {
                join(&base_dest, &m.name)
            } else {
                dest.clone()
            };
            if target.is_empty() {
                return Err(invalid(format!(
                    "cannot copy file `{}` onto the root directory; name a destination file or directory",
                    m.shown
                )));
            }
            emit(&mut out, target, m.file, &m.resolved);
        }
    }

    // Missing parents of everything emitted (and the destination directory itself).
    let mut parents: Vec<String> = Vec::new();
    let keys: Vec<String> = out.keys().cloned().collect();
    let mut wanted: Vec<&str> = keys.iter().map(|k| parent_of(k)).collect();
    if dest_is_dir && !dest.is_empty() {
        wanted.push(&dest);
    }
    for p in wanted {
        let mut acc = String::new();
        for c in p.split('/').filter(|c| !c.is_empty()) {
            acc = join(&acc, c);
            if !out.contains_key(&acc) && !parents.contains(&acc) {
                parents.push(acc.clone());
            }
        }
    }
    for p in parents {
        let in_base = !req.link && req.base_has_dir.is_some_and(|f| f(&p));
        if in_base {
            continue;
        }
        out.insert(
            p.clone(),
            Entry {
                path: p,
                kind: EntryKind::Dir,
                mode: 0o755,
                uid: 0,
                gid: 0,
                mtime: req.build_time,
                mtime_nsec: 0,
                xattrs: BTreeMap::new(),
            },
        );
    }
    order_hardlinks(&mut out);
    Ok(out.into_values().collect())
}

/// Makes the first path (in layer order) of each hard-link group the file and the others links
/// to it, so a link never precedes its target in the tar stream.
fn order_hardlinks(out: &mut BTreeMap<String, Entry>) {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in out.values() {
        if let EntryKind::Hardlink { target } = &e.kind {
            groups
                .entry(target.clone())
                .or_default()
                .push(e.path.clone());
        }
    }
    for (target, links) in groups {
        let Some(first) = links.iter().min().cloned() else {
            continue;
        };
        if first > target {
            continue;
        }
        let Some(file_kind) = out.get(&target).map(|e| e.kind.clone()) else {
            continue;
        };
        for p in links.iter().chain(std::iter::once(&target)) {
            if let Some(e) = out.get_mut(p) {
                e.kind = if *p == first {
                    file_kind.clone()
                } else {
                    EntryKind::Hardlink {
                        target: first.clone(),
                    }
                };
            }
        }
    }
}
