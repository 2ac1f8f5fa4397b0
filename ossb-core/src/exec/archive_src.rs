//! ADD of a local tar archive (plain, gzip, bzip2, xz, zstd; detected by magic): the archive is
//! read as a stream, file contents go to temp files in a caller-given scratch directory and the
//! result is a list of layer entries beneath the destination. Names are checked like layer
//! entries (no `..`, no absolute names, hard links only to earlier entries of the archive).

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::Path;

use tar::EntryType;

use super::compress::decompress;
use super::error::{FsError, Result};
use super::tarpath::clean_tar_path;
use crate::image::entry::{Entry, EntryKind, Source};

/// Where an archive is extracted to and with which owner.
pub struct ArchiveTarget<'a> {
    /// The destination directory in the image (no leading `/`; empty for the root).
    pub dest: &'a str,
    /// `--chown`, or `None` to keep the archive's owners.
    pub owner: Option<(u32, u32)>,
    /// Timestamp for directories created for the destination.
    pub build_time: i64,
    /// A host directory for the extracted contents (kept after the call; the caller cleans it).
    pub scratch: &'a Path,
}

fn err(entry: &str, message: impl Into<String>) -> FsError {
    FsError::Entry {
        entry: entry.to_string(),
        message: message.into(),
    }
}

fn join(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else {
        format!("{a}/{b}")
    }
}

/// Extracts the archive read from `reader` into entries beneath `target.dest`, sorted by path.
pub fn archive_entries<R: Read>(reader: R, target: &ArchiveTarget<'_>) -> Result<Vec<Entry>> {
    let (_, stream) =
        decompress(reader).map_err(|e| FsError::io("read archive", "<archive>", e))?;
    let mut archive = tar::Archive::new(stream);
    let mut out: BTreeMap<String, Entry> = BTreeMap::new();
    let entries = archive
        .entries()
        .map_err(|e| FsError::io("read archive", "<archive>", e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| FsError::io("read archive entry", "<archive>", e))?;
        let raw = entry.path_bytes().into_owned();
        let Some(rel) = clean_tar_path(&raw)? else {
            continue;
        };
        if rel
            .rsplit('/')
            .next()
            .is_some_and(|b| b.starts_with(".wh."))
        {
            return Err(err(
                &rel,
                "whiteout names are not allowed in an ADD archive; rename the file",
            ));
        }
        let path = join(target.dest, &rel);
        let h = entry.header();
        let bad = |w: &str| {
            err(
                &rel,
                format!("bad {w} in the tar header; rebuild the archive"),
            )
        };
        let mode = h.mode().map_err(|_| bad("mode"))? & 0o7777;
        let (uid, gid) = match target.owner {
            Some(o) => o,
            None => (
                h.uid().map_err(|_| bad("uid"))? as u32,
                h.gid().map_err(|_| bad("gid"))? as u32,
            ),
        };
        let mtime = h.mtime().map_err(|_| bad("mtime"))? as i64;
        let etype = h.entry_type();
        let link = entry.link_name_bytes().map(|l| l.into_owned());
        let kind = match etype {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let mut tmp = tempfile::Builder::new()
                    .prefix("add-")
                    .tempfile_in(target.scratch)
                    .map_err(|e| {
                        FsError::io(
                            "create temp file in",
                            target.scratch.display().to_string(),
                            e,
                        )
                    })?;
                let size = io::copy(&mut entry, tmp.as_file_mut())
                    .map_err(|e| FsError::io("extract", &rel, e))?;
                let (_, kept) = tmp
                    .keep()
                    .map_err(|e| FsError::io("keep temp file for", &rel, e.error))?;
                EntryKind::File {
                    source: Source::Path(kept),
                    size,
                }
            }
            EntryType::Directory => EntryKind::Dir,
            EntryType::Symlink => {
                let l =
                    link.ok_or_else(|| err(&rel, "symlink without a target; rebuild the archive"))?;
                EntryKind::Symlink {
                    target: String::from_utf8(l)
                        .map_err(|_| err(&rel, "symlink target is not UTF-8"))?,
                }
            }
            EntryType::Link => {
                let l = link
                    .ok_or_else(|| err(&rel, "hard link without a target; rebuild the archive"))?;
                let t = clean_tar_path(&l)?
                    .ok_or_else(|| err(&rel, "hard link to the root; rebuild the archive"))?;
                let t = join(target.dest, &t);
                if !matches!(out.get(&t).map(|e| &e.kind), Some(EntryKind::File { .. })) {
                    return Err(err(
                        &rel,
                        format!("hard link to `{t}`, which is not an earlier file of the archive"),
                    ));
                }
                EntryKind::Hardlink { target: t }
            }
            EntryType::Char | EntryType::Block => {
                let major = h.device_major().ok().flatten().unwrap_or(0);
                let minor = h.device_minor().ok().flatten().unwrap_or(0);
                if etype == EntryType::Char {
                    EntryKind::CharDevice { major, minor }
                } else {
                    EntryKind::BlockDevice { major, minor }
                }
            }
            EntryType::Fifo => EntryKind::Fifo,
            _ => continue,
        };
        out.insert(
            path.clone(),
            Entry {
                path,
                kind,
                mode,
                uid,
                gid,
                mtime,
                mtime_nsec: 0,
                xattrs: BTreeMap::new(),
            },
        );
    }
    // Parents (inside the archive and of the destination) that the archive did not list.
    let mut missing = Vec::new();
    let mut wanted: Vec<String> = out
        .keys()
        .filter_map(|k| k.rsplit_once('/').map(|p| p.0.to_string()))
        .collect();
    wanted.push(target.dest.to_string());
    for p in wanted {
        let mut acc = String::new();
        for c in p.split('/').filter(|c| !c.is_empty()) {
            acc = join(&acc, c);
            if !out.contains_key(&acc) && !missing.contains(&acc) {
                missing.push(acc.clone());
            }
        }
    }
    for p in missing {
        out.insert(
            p.clone(),
            Entry {
                path: p,
                kind: EntryKind::Dir,
                mode: 0o755,
                uid: 0,
                gid: 0,
                mtime: target.build_time,
                mtime_nsec: 0,
                xattrs: BTreeMap::new(),
            },
        );
    }
    Ok(out.into_values().collect())
}
