//! A metadata index of an image's merged filesystem, built from layer tars or layer entries.
//!
//! COPY and ADD only need to know the destination's ancestors (do they exist, are they
//! directories or symlinks, with which owner and mode) and a few small files such as
//! `/etc/passwd`; they do not need the base image unpacked. The index answers exactly that,
//! which is why a COPY-only build never writes the base image's files to disk.

use crate::image::entry::{Entry, EntryKind};
use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

/// Files whose contents the index keeps (small, needed to resolve `--chown` and `USER` names).
pub const CAPTURED_FILES: &[&str] = &["etc/passwd", "etc/group"];

/// Maximum symlinks followed while resolving one path (like Linux's `MAXSYMLINKS`).
const MAX_LINKS: usize = 40;

/// The type of an indexed path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    /// A regular file of this size.
    File(u64),
    /// A directory.
    Dir,
    /// A symbolic link with this target.
    Symlink(String),
    /// A hard link to another path.
    Hardlink(String),
    /// A device node or FIFO.
    Special,
}

/// Metadata of one indexed path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// What it is.
    pub kind: NodeKind,
    /// Permission bits.
    pub mode: u32,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Modification time (seconds).
    pub mtime: i64,
}

/// Errors reading a layer into the index.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The layer is not a readable tar stream.
    #[error("cannot read layer tar: {0}")]
    Tar(#[from] std::io::Error),
    /// A symlink chain is too long or loops.
    #[error("too many levels of symbolic links resolving /{0}")]
    SymlinkLoop(String),
    /// An entry's path climbs out of the image root (`../x`): a hostile or broken layer.
    #[error(
        "layer entry {0:?} climbs out of the image root with `..`; the image is broken or hostile, rebuild it or use another base"
    )]
    Escape(String),
}

/// The merged view of a stack of layers: path (relative, no leading `/`) -> metadata.
#[derive(Debug, Clone, Default)]
pub struct FsIndex {
    nodes: BTreeMap<String, Node>,
    captured: BTreeMap<String, Arc<Vec<u8>>>,
}

/// Normalise a tar or entry path: strip `./` and `/`, drop `.` parts and trailing slashes.
/// Returns `None` for paths with `..` parts or the root itself.
pub fn clean_rel(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        None
    } else {
        Some(parts.join("/"))
    }
}

fn parent_of(path: &str) -> &str {
    path.rsplit_once('/').map(|(p, _)| p).unwrap_or("")
}

impl FsIndex {
    /// An empty filesystem (`FROM scratch`).
    pub fn new() -> Self {
        FsIndex::default()
    }

    /// Metadata of `path` (relative), without following a final symlink.
    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// The contents of a captured small file (see [`CAPTURED_FILES`]).
    pub fn captured(&self, path: &str) -> Option<&[u8]> {
        self.captured.get(path).map(|b| b.as_slice())
    }

    /// Number of indexed paths.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Remove `path` and everything below it.
    fn remove_tree(&mut self, path: &str) {
        self.nodes.remove(path);
        self.captured.remove(path);
        let prefix = format!("{path}/");
        let doomed: Vec<String> = self
            .nodes
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for k in doomed {
            self.nodes.remove(&k);
            self.captured.remove(&k);
        }
    }

    /// Remove everything below `dir`, keeping `dir` itself.
    fn clear_dir(&mut self, dir: &str) {
        let keep = self.nodes.remove(dir);
        self.remove_tree(dir);
        if let Some(n) = keep {
            self.nodes.insert(dir.to_string(), n);
        }
    }

    fn insert(&mut self, path: String, node: Node) {
        // A non-directory replaces a whole tree; a directory over a directory keeps children.
        if !matches!(node.kind, NodeKind::Dir)
            || !matches!(self.nodes.get(&path).map(|n| &n.kind), Some(NodeKind::Dir))
        {
            self.remove_tree(&path);
        }
        self.nodes.insert(path, node);
    }

    /// Apply one layer given as an uncompressed tar stream (OCI whiteouts honoured). Whiteouts
    /// of a layer apply to the lower layers only, so they are collected first and applied
    /// before the layer's own entries.
    pub fn apply_tar<R: Read>(&mut self, reader: R) -> Result<(), IndexError> {
        let mut archive = tar::Archive::new(reader);
        let mut additions: Vec<(String, Node)> = Vec::new();
        let mut captured: Vec<(String, Vec<u8>)> = Vec::new();
        let mut whiteouts: Vec<String> = Vec::new();
        let mut opaques: Vec<String> = Vec::new();
        for entry in archive.entries()? {
            let mut entry = entry?;
            let raw = entry.path_bytes();
            let text = String::from_utf8_lossy(&raw).into_owned();
            let Some(path) = clean_rel(&text) else {
                if text.split('/').any(|p| p == "..") {
                    return Err(IndexError::Escape(text));
                }
                continue;
            };
            let name = path.rsplit('/').next().unwrap_or(&path);
            if name == ".wh..wh..opq" {
                opaques.push(parent_of(&path).to_string());
                continue;
            }
            if let Some(hidden) = name.strip_prefix(".wh.") {
                let parent = parent_of(&path);
                whiteouts.push(if parent.is_empty() {
                    hidden.to_string()
                } else {
                    format!("{parent}/{hidden}")
                });
                continue;
            }
            let header = entry.header();
            let kind = match header.entry_type() {
                tar::EntryType::Directory => NodeKind::Dir,
                tar::EntryType::Symlink => NodeKind::Symlink(
                    entry
                        .link_name_bytes()
                        .map(|l| String::from_utf8_lossy(&l).into_owned())
                        .unwrap_or_default(),
                ),
                tar::EntryType::Link => NodeKind::Hardlink(
                    entry
                        .link_name_bytes()
                        .and_then(|l| clean_rel(&String::from_utf8_lossy(&l)))
                        .unwrap_or_default(),
                ),
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    NodeKind::File(entry.size())
                }
                _ => NodeKind::Special,
            };
            let node = Node {
                mode: header.mode().unwrap_or(0o644) & 0o7777,
                uid: header.uid().unwrap_or(0) as u32,
                gid: header.gid().unwrap_or(0) as u32,
                mtime: header.mtime().unwrap_or(0) as i64,
                kind,
            };
            if matches!(node.kind, NodeKind::File(_)) && CAPTURED_FILES.contains(&path.as_str()) {
                let mut buf = Vec::new();
                entry.read_to_end(&mut buf)?;
                captured.push((path.clone(), buf));
            }
            additions.push((path, node));
        }
        for dir in opaques {
            self.clear_dir(&dir);
        }
        for path in whiteouts {
            self.remove_tree(&path);
        }
        for (path, node) in additions {
            self.insert(path, node);
        }
        for (path, bytes) in captured {
            self.captured.insert(path, Arc::new(bytes));
        }
        Ok(())
    }

    /// Apply a layer described by entries (what OSSB itself writes).
    pub fn apply_entries(&mut self, entries: &[Entry]) {
        for e in entries
            .iter()
            .filter(|e| matches!(e.kind, EntryKind::OpaqueDir))
        {
            self.clear_dir(&e.path);
        }
        for e in entries
            .iter()
            .filter(|e| matches!(e.kind, EntryKind::Whiteout))
        {
            self.remove_tree(&e.path);
        }
        for e in entries {
            let mut captured = None;
            let kind = match &e.kind {
                EntryKind::Whiteout | EntryKind::OpaqueDir => continue,
                EntryKind::File { size, source } => {
                    if CAPTURED_FILES.contains(&e.path.as_str()) {
                        captured = match source {
                            crate::image::entry::Source::Bytes(b) => Some(b.clone()),
                            crate::image::entry::Source::Path(p) => std::fs::read(p).ok(),
                        };
                    }
                    NodeKind::File(*size)
                }
                EntryKind::Dir => NodeKind::Dir,
                EntryKind::Symlink { target } => NodeKind::Symlink(target.clone()),
                EntryKind::Hardlink { target } => NodeKind::Hardlink(target.clone()),
                EntryKind::CharDevice { .. } | EntryKind::BlockDevice { .. } | EntryKind::Fifo => {
                    NodeKind::Special
                }
            };
            self.insert(
                e.path.clone(),
                Node {
                    kind,
                    mode: e.mode,
                    uid: e.uid,
                    gid: e.gid,
                    mtime: e.mtime,
                },
            );
            // After the insert, which drops what the replaced node had captured.
            if let Some(b) = captured {
                self.captured.insert(e.path.clone(), Arc::new(b));
            }
        }
    }

    /// Resolve `path` (absolute or relative to `/`) inside the image, following symlinks in
    /// every component (and in the last one when `follow_last`), clamped at the root the way
    /// `openat2(RESOLVE_IN_ROOT)` does. Returns the resolved relative path (empty for `/`),
    /// which may not exist.
    pub fn resolve(&self, path: &str, follow_last: bool) -> Result<String, IndexError> {
        let mut pending: Vec<String> = path
            .split('/')
            .filter(|p| !p.is_empty())
            .rev()
            .map(String::from)
            .collect();
        let mut resolved: Vec<String> = Vec::new();
        let mut links = 0usize;
        while let Some(part) = pending.pop() {
            match part.as_str() {
                "." => continue,
                ".." => {
                    resolved.pop();
                    continue;
                }
                _ => {}
            }
            resolved.push(part);
            let is_last = pending.is_empty();
            if is_last && !follow_last {
                break;
            }
            let current = resolved.join("/");
            if let Some(Node {
                kind: NodeKind::Symlink(target),
                ..
            }) = self.nodes.get(&current)
            {
                links += 1;
                if links > MAX_LINKS {
                    return Err(IndexError::SymlinkLoop(
                        path.trim_start_matches('/').to_string(),
                    ));
                }
                resolved.pop();
                if target.starts_with('/') {
                    resolved.clear();
                }
                for p in target.split('/').filter(|p| !p.is_empty()).rev() {
                    pending.push(p.to_string());
                }
            }
        }
        Ok(resolved.join("/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, tar::EntryType, &str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, ty, link, data) in entries {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(*ty);
            h.set_mode(if *ty == tar::EntryType::Directory {
                0o755
            } else {
                0o644
            });
            h.set_size(data.len() as u64);
            h.set_path(path).expect("short path");
            if !link.is_empty() {
                h.set_link_name(link).expect("short link");
            }
            h.set_cksum();
            b.append(&h, *data).expect("append");
        }
        b.into_inner().expect("finish")
    }

    #[test]
    fn whiteouts_apply_to_lower_layers_only() {
        use tar::EntryType::*;
        let mut idx = FsIndex::new();
        idx.apply_tar(
            &tar_of(&[
                ("etc/", Directory, "", b""),
                ("etc/passwd", Regular, "", b"root:x:0:0::/root:/bin/sh\n"),
                ("w/", Directory, "", b""),
                ("w/old", Regular, "", b"x"),
                ("gone", Regular, "", b"x"),
            ])[..],
        )
        .expect("layer 1");
        idx.apply_tar(
            &tar_of(&[
                ("w/", Directory, "", b""),
                ("w/new", Regular, "", b"y"),
                ("w/.wh..wh..opq", Regular, "", b""),
                (".wh.gone", Regular, "", b""),
            ])[..],
        )
        .expect("layer 2");
        assert!(
            idx.get("w/old").is_none(),
            "opaque dir hides lower contents"
        );
        assert_eq!(idx.get("w/new").map(|n| &n.kind), Some(&NodeKind::File(1)));
        assert!(idx.get("gone").is_none());
        assert_eq!(
            idx.captured("etc/passwd"),
            Some(&b"root:x:0:0::/root:/bin/sh\n"[..])
        );
    }

    #[test]
    fn entries_of_a_run_step_update_the_captured_passwd() {
        use crate::image::entry::{Entry, Source};
        let mut idx = FsIndex::new();
        idx.apply_tar(
            &tar_of(&[
                ("etc/", tar::EntryType::Directory, "", b""),
                (
                    "etc/passwd",
                    tar::EntryType::Regular,
                    "",
                    b"root:x:0:0::/:/bin/sh\n",
                ),
            ])[..],
        )
        .expect("layer");
        let entry = |path: &str, kind| Entry {
            path: path.into(),
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 0,
            mtime_nsec: 0,
            xattrs: Default::default(),
        };
        let passwd = b"root:x:0:0::/:/bin/sh\napp:x:1000:1000::/:/bin/sh\n".to_vec();
        idx.apply_entries(&[
            entry("etc", EntryKind::Dir),
            entry(
                "etc/passwd",
                EntryKind::File {
                    size: passwd.len() as u64,
                    source: Source::Bytes(passwd.clone()),
                },
            ),
        ]);
        assert_eq!(idx.captured("etc/passwd"), Some(&passwd[..]));
    }

    #[test]
    fn resolve_follows_symlinks_clamped_at_root() {
        use tar::EntryType::*;
        let mut idx = FsIndex::new();
        idx.apply_tar(
            &tar_of(&[
                ("usr/", Directory, "", b""),
                ("usr/lib/", Directory, "", b""),
                ("lib", Symlink, "usr/lib", b""),
                ("etc/", Directory, "", b""),
                ("etc/ssl/", Directory, "", b""),
                // Amazon Corretto style: many `..` that climb past the root.
                (
                    "etc/ssl/cacerts",
                    Symlink,
                    "../../../../../../usr/lib/certs",
                    b"",
                ),
                ("loop", Symlink, "loop", b""),
            ])[..],
        )
        .expect("layer");
        assert_eq!(idx.resolve("/lib/x", true).expect("ok"), "usr/lib/x");
        assert_eq!(
            idx.resolve("/etc/ssl/cacerts", true).expect("ok"),
            "usr/lib/certs"
        );
        assert_eq!(
            idx.resolve("/etc/ssl/cacerts", false).expect("ok"),
            "etc/ssl/cacerts"
        );
        assert_eq!(idx.resolve("/../../etc", true).expect("ok"), "etc");
        assert!(matches!(
            idx.resolve("/loop/x", true),
            Err(IndexError::SymlinkLoop(_))
        ));
    }

    #[test]
    fn entries_that_climb_out_of_the_root_are_refused() {
        use tar::EntryType::*;
        // `tar::Header::set_path` refuses `..`, so write the name bytes directly.
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..9].copy_from_slice(b"../escape");
        h.set_entry_type(Regular);
        h.set_size(0);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, &b""[..]).expect("append");
        let tar = b.into_inner().expect("finish");
        let err = FsIndex::new().apply_tar(&tar[..]).expect_err("refused");
        assert!(matches!(err, IndexError::Escape(_)), "{err}");
        assert!(err.to_string().contains("../escape"));
    }
}
