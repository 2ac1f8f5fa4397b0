//! The scan snapshotter: the step writes into the rootfs dir; the diff compares a metadata
//! snapshot taken before the step with a walk after it.
//!
//! A path is changed when its type, inode, mode, owner, size, mtime, ctime or link target
//! differ (directories: type, mode, owner, mtime, inode; their content shows in their
//! children). New paths are added, deleted ones become whiteouts (only the topmost deleted
//! path), and a directory whose previous children are all gone, or that is a new inode, becomes
//! an opaque directory with all its contents.

use super::meta::{Diff, ROOTLESS_XATTR, entry_for, fmt, get_xattr, join, marker, sorted_names};
use super::{SnapshotError, Snapshotter, SnapshotterKind, io_err};
use crate::exec::sandbox::{IdMap, StepRoot};
use crate::image::entry::EntryKind;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// What the scan remembers of one path.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Meta {
    dev: u64,
    ino: u64,
    mode: u32,
    uid: u32,
    gid: u32,
    size: i64,
    mtime: (i64, u64),
    ctime: (i64, u64),
    link: Option<Vec<u8>>,
    /// The ownership record (single-id mappings only): a recorded chown changes no stat field
    /// a directory is compared by.
    owner: Option<Vec<u8>>,
}

impl Meta {
    fn of(path: &Path, st: &rustix::fs::Stat, with_owner: bool) -> Meta {
        let kind = fmt(st);
        let owner = (with_owner && (kind == libc::S_IFREG || kind == libc::S_IFDIR))
            .then(|| get_xattr(path, ROOTLESS_XATTR))
            .flatten();
        let link = (fmt(st) == libc::S_IFLNK).then(|| {
            rustix::fs::readlink(path, Vec::new())
                .map(|c| c.into_bytes())
                .unwrap_or_default()
        });
        Meta {
            dev: st.st_dev,
            ino: st.st_ino,
            mode: st.st_mode,
            uid: st.st_uid,
            gid: st.st_gid,
            size: st.st_size,
            mtime: (st.st_mtime, st.st_mtime_nsec),
            ctime: (st.st_ctime, st.st_ctime_nsec),
            link,
            owner,
        }
    }

    fn is_dir(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }

    fn changed_from(&self, before: &Meta) -> bool {
        if self.mode & libc::S_IFMT != before.mode & libc::S_IFMT {
            return true;
        }
        let common = self.mode != before.mode
            || self.uid != before.uid
            || self.gid != before.gid
            || self.mtime != before.mtime
            || self.owner != before.owner;
        if self.is_dir() {
            common || (self.dev, self.ino) != (before.dev, before.ino)
        } else {
            common || self != before
        }
    }
}

type Snapshot = BTreeMap<String, Meta>;

/// Steps run on the rootfs dir itself; diffs by metadata comparison.
#[derive(Debug)]
pub struct ScanSnapshotter {
    lower: PathBuf,
    id_map: IdMap,
    before: Option<Snapshot>,
}

impl ScanSnapshotter {
    /// Over the rootfs dir `lower`.
    pub fn new(lower: PathBuf, id_map: IdMap) -> Self {
        ScanSnapshotter {
            lower,
            id_map,
            before: None,
        }
    }
}

/// Metadata of every path under `root`; `with_owner` also reads the ownership records.
fn take(root: &Path, with_owner: bool) -> Result<Snapshot, SnapshotError> {
    let mut snap = Snapshot::new();
    walk(root, "", &mut snap, with_owner)?;
    Ok(snap)
}

fn walk(dir: &Path, rel: &str, snap: &mut Snapshot, with_owner: bool) -> Result<(), SnapshotError> {
    for name in sorted_names(dir)? {
        let full = dir.join(&name);
        let r = join(rel, &name);
        let st = rustix::fs::lstat(&full).map_err(|e| io_err(&full)(e.into()))?;
        let m = Meta::of(&full, &st, with_owner);
        let is_dir = m.is_dir();
        snap.insert(r.clone(), m);
        if is_dir {
            walk(&full, &r, snap, with_owner)?;
        }
    }
    Ok(())
}

fn parent(rel: &str) -> &str {
    rel.rsplit_once('/').map_or("", |(p, _)| p)
}

impl Snapshotter for ScanSnapshotter {
    fn kind(&self) -> SnapshotterKind {
        SnapshotterKind::Scan
    }

    fn lower(&self) -> &Path {
        &self.lower
    }

    fn prepare(&mut self) -> Result<StepRoot, SnapshotError> {
        self.before = Some(take(&self.lower, self.id_map.is_single())?);
        Ok(StepRoot::Dir(self.lower.clone()))
    }

    fn diff(&mut self) -> Result<Diff, SnapshotError> {
        let before = self
            .before
            .as_ref()
            .ok_or(SnapshotError::State("diff without prepare"))?;
        let after = take(&self.lower, self.id_map.is_single())?;
        // Children of each dir before the step.
        let mut children: HashMap<&str, Vec<&str>> = HashMap::new();
        for p in before.keys() {
            children.entry(parent(p)).or_default().push(p);
        }
        // Opaque: an existing dir that is a new inode, or whose old children are all gone.
        let mut opaque = BTreeSet::new();
        for (p, a) in &after {
            let Some(b) = before.get(p) else { continue };
            if !a.is_dir() || !b.is_dir() {
                continue;
            }
            let kids = children.get(p.as_str()).map(Vec::as_slice).unwrap_or(&[]);
            let survivors = kids.iter().any(|k| {
                after
                    .get(*k)
                    .is_some_and(|m| (m.dev, m.ino) == (before[*k].dev, before[*k].ino))
            });
            if (a.dev, a.ino) != (b.dev, b.ino) || (!kids.is_empty() && !survivors) {
                opaque.insert(p.clone());
            }
        }
        let under_opaque = |p: &str| {
            let mut q = parent(p);
            while !q.is_empty() {
                if opaque.contains(q) {
                    return true;
                }
                q = parent(q);
            }
            false
        };
        let mut emit: BTreeSet<String> = BTreeSet::new();
        for (p, a) in &after {
            let changed = match before.get(p) {
                None => true,
                Some(b) => a.changed_from(b),
            };
            if changed || opaque.contains(p) || under_opaque(p) {
                emit.insert(p.clone());
            }
        }
        let mut whiteouts = BTreeSet::new();
        for (p, b) in before {
            if after.contains_key(p) {
                continue;
            }
            let par = parent(p);
            let parent_continues = par.is_empty()
                || (after.get(par).is_some_and(Meta::is_dir)
                    && before.get(par).is_some_and(Meta::is_dir)
                    && !opaque.contains(par)
                    && !under_opaque(p));
            if parent_continues {
                whiteouts.insert(p.clone());
            }
            let _ = b;
        }
        // Parents of everything emitted.
        let mut parents = BTreeSet::new();
        for p in emit.iter().chain(&whiteouts) {
            let mut q = parent(p);
            while !q.is_empty() {
                parents.insert(q.to_string());
                q = parent(q);
            }
        }
        emit.extend(parents);
        let mut all: BTreeSet<&str> = emit.iter().map(String::as_str).collect();
        all.extend(whiteouts.iter().map(String::as_str));
        let mut diff = Diff::default();
        let mut links = HashMap::new();
        for p in all {
            if whiteouts.contains(p) {
                diff.entries.push(marker(p, EntryKind::Whiteout));
                continue;
            }
            let full = self.lower.join(p);
            let st = rustix::fs::lstat(&full).map_err(|e| io_err(&full)(e.into()))?;
            if let Some(e) = entry_for(&full, p, &st, &self.id_map, &mut links, &mut diff.warnings)?
            {
                diff.entries.push(e);
                if opaque.contains(p) {
                    diff.entries.push(marker(p, EntryKind::OpaqueDir));
                }
            }
        }
        Ok(diff)
    }

    fn commit(&mut self) -> Result<(), SnapshotError> {
        self.before = None;
        Ok(())
    }

    fn abort(&mut self) -> Result<(), SnapshotError> {
        self.before = None;
        Err(SnapshotError::CannotAbort)
    }
}
