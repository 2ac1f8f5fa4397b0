//! Turning a path's metadata into an [`Entry`]: kind, mode, owner (host ids mapped back into
//! the container), times and the extended attributes that belong in a layer.

use super::{SnapshotError, io_err};
use crate::exec::sandbox::IdMap;
use crate::image::entry::{Entry, EntryKind, Source};
use rustix::fs::Stat;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// A step's changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    /// Layer entries, sorted by path, parents first.
    pub entries: Vec<Entry>,
    /// Ownership or content that could not be represented faithfully (never silently dropped).
    pub warnings: Vec<String>,
}

/// xattr recording the owner a rootless chown asked for
/// (<https://github.com/rootless-containers/proto>); see [`crate::exec::sandbox::encode_owner`].
pub use crate::exec::sandbox::ROOTLESS_XATTR;

impl Diff {
    /// Applies owners recorded outside the filesystem (symlinks and special files under
    /// ownership emulation, see [`crate::exec::sandbox::StepReport::link_owners`]) to the
    /// entries; keys are absolute container paths.
    pub fn apply_link_owners(&mut self, owners: &std::collections::BTreeMap<String, (u32, u32)>) {
        if owners.is_empty() {
            return;
        }
        for e in &mut self.entries {
            if matches!(e.kind, EntryKind::Whiteout | EntryKind::OpaqueDir) {
                continue;
            }
            if let Some(&(uid, gid)) = owners.get(&format!("/{}", e.path)) {
                e.uid = uid;
                e.gid = gid;
            }
        }
    }
}

/// Whether an xattr is overlay-internal or host-specific and stays out of layers.
pub(crate) fn internal_xattr(name: &str) -> bool {
    merge_private(name) || name == ROOTLESS_XATTR
}

/// Whether an xattr stays out of the lower dir when a step's changes are merged into it (the
/// ownership record stays: later steps must still see the emulated owner).
pub(crate) fn merge_private(name: &str) -> bool {
    name.starts_with("trusted.overlay.")
        || name.starts_with("user.overlay.")
        || name == "security.selinux"
}

/// All xattrs of a path (not following symlinks).
pub(crate) fn read_xattrs(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut names = vec![0u8; 4096];
    let n = match rustix::fs::llistxattr(path, &mut names) {
        Ok(n) => n,
        Err(rustix::io::Errno::RANGE) => {
            match rustix::fs::llistxattr(path, &mut vec![0u8; 65536][..]) {
                Ok(_) => return read_xattrs_big(path),
                Err(_) => return out,
            }
        }
        Err(_) => return out,
    };
    for name in names[..n].split(|&b| b == 0).filter(|s| !s.is_empty()) {
        let Ok(name) = std::str::from_utf8(name) else {
            continue;
        };
        if let Some(v) = get_xattr(path, name) {
            out.insert(name.to_string(), v);
        }
    }
    out
}

fn read_xattrs_big(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut names = vec![0u8; 65536];
    if let Ok(n) = rustix::fs::llistxattr(path, &mut names) {
        for name in names[..n]
            .split(|&b| b == 0)
            .filter_map(|s| std::str::from_utf8(s).ok())
            .filter(|s| !s.is_empty())
        {
            if let Some(v) = get_xattr(path, name) {
                out.insert(name.to_string(), v);
            }
        }
    }
    out
}

/// One xattr value, `None` when absent.
pub(crate) fn get_xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    loop {
        match rustix::fs::lgetxattr(path, name, &mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Some(buf);
            }
            Err(rustix::io::Errno::RANGE) if buf.len() < 1 << 20 => buf.resize(buf.len() * 8, 0),
            Err(_) => return None,
        }
    }
}

/// Decodes the `user.rootlesscontainers` protobuf (fields 1 uid, 2 gid, varints; a missing
/// field is 0, the noop id keeps the real owner and decodes to `None`).
pub(crate) fn decode_rootless(v: &[u8]) -> (Option<u32>, Option<u32>) {
    crate::exec::sandbox::decode_owner(v)
}

/// File type bits of a stat.
pub(crate) fn fmt(st: &Stat) -> u32 {
    st.st_mode & libc::S_IFMT
}

/// Builds the entry of `rel` (at `full` on the host). `None` for sockets (not representable).
/// `links` maps (dev, ino) of multiply-linked files to the first path seen, for hard links.
pub(crate) fn entry_for(
    full: &Path,
    rel: &str,
    st: &Stat,
    id_map: &IdMap,
    links: &mut HashMap<(u64, u64), String>,
    warnings: &mut Vec<String>,
) -> Result<Option<Entry>, SnapshotError> {
    let mut xattrs = read_xattrs(full);
    let rootless = xattrs.get(ROOTLESS_XATTR).map(|v| decode_rootless(v));
    xattrs.retain(|k, _| !internal_xattr(k));
    let kind = match fmt(st) {
        libc::S_IFREG => {
            if st.st_nlink > 1 {
                let key = (st.st_dev, st.st_ino);
                if let Some(first) = links.get(&key) {
                    EntryKind::Hardlink {
                        target: first.clone(),
                    }
                } else {
                    links.insert(key, rel.to_string());
                    EntryKind::File {
                        source: Source::Path(full.to_path_buf()),
                        size: st.st_size as u64,
                    }
                }
            } else {
                EntryKind::File {
                    source: Source::Path(full.to_path_buf()),
                    size: st.st_size as u64,
                }
            }
        }
        libc::S_IFDIR => EntryKind::Dir,
        libc::S_IFLNK => {
            let t = rustix::fs::readlink(full, Vec::new()).map_err(|e| io_err(full)(e.into()))?;
            EntryKind::Symlink {
                target: t.to_string_lossy().into_owned(),
            }
        }
        libc::S_IFCHR => EntryKind::CharDevice {
            major: rustix::fs::major(st.st_rdev),
            minor: rustix::fs::minor(st.st_rdev),
        },
        libc::S_IFBLK => EntryKind::BlockDevice {
            major: rustix::fs::major(st.st_rdev),
            minor: rustix::fs::minor(st.st_rdev),
        },
        libc::S_IFIFO => EntryKind::Fifo,
        _ => {
            warnings.push(format!(
                "/{rel}: sockets cannot be stored in a layer; skipped"
            ));
            return Ok(None);
        }
    };
    let mut uid = id_map.uid_from_host(st.st_uid);
    let mut gid = id_map.gid_from_host(st.st_gid);
    if let Some((ru, rg)) = rootless {
        uid = ru.or(uid);
        gid = rg.or(gid);
    }
    let uid = uid.unwrap_or_else(|| {
        warnings.push(format!(
            "/{rel}: host owner uid {} is not mapped into the container; stored as 65534",
            st.st_uid
        ));
        65534
    });
    let gid = gid.unwrap_or_else(|| {
        warnings.push(format!(
            "/{rel}: host group gid {} is not mapped into the container; stored as 65534",
            st.st_gid
        ));
        65534
    });
    Ok(Some(Entry {
        path: rel.to_string(),
        kind,
        mode: st.st_mode & 0o7777,
        uid,
        gid,
        mtime: st.st_mtime,
        mtime_nsec: st.st_mtime_nsec as u32,
        xattrs,
    }))
}

/// A metadata-only entry of kind `kind` (whiteouts, opaque markers).
pub(crate) fn marker(rel: &str, kind: EntryKind) -> Entry {
    Entry {
        path: rel.to_string(),
        kind,
        mode: 0,
        uid: 0,
        gid: 0,
        mtime: 0,
        mtime_nsec: 0,
        xattrs: BTreeMap::new(),
    }
}

/// Sorted names of a directory.
pub(crate) fn sorted_names(dir: &Path) -> Result<Vec<String>, SnapshotError> {
    let mut names = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let e = e.map_err(io_err(dir))?;
        match e.file_name().into_string() {
            Ok(n) => names.push(n),
            Err(n) => {
                return Err(SnapshotError::Io {
                    path: dir.join(&n),
                    source: std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "file name is not UTF-8",
                    ),
                });
            }
        }
    }
    names.sort();
    Ok(names)
}

pub(crate) fn join(rel: &str, name: &str) -> String {
    if rel.is_empty() {
        name.to_string()
    } else {
        format!("{rel}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_rootless_proto() {
        // uid 1000 (0x08 0xe8 0x07), gid 5 (0x10 0x05)
        assert_eq!(
            decode_rootless(&[0x08, 0xe8, 0x07, 0x10, 0x05]),
            (Some(1000), Some(5))
        );
        assert_eq!(decode_rootless(&[0x08, 0xe8, 0x07]), (Some(1000), Some(0)));
        assert_eq!(decode_rootless(&[0xff]), (None, None));
    }
}
