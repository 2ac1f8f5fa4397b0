//! Entry validation, tar names and the deterministic order of entries in a layer.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use crate::image::entry::{Entry, EntryKind};
use crate::image::error::{ImageError, Result};

/// Name of the opaque-directory marker inside a directory.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// Prefix of a whiteout file.
pub const WHITEOUT_PREFIX: &str = ".wh.";

/// The path written in the tar header (without the trailing `/` of directories).
pub fn tar_name(entry: &Entry) -> String {
    match entry.kind {
        EntryKind::Whiteout => match entry.path.rsplit_once('/') {
            Some((dir, base)) => format!("{dir}/{WHITEOUT_PREFIX}{base}"),
            None => format!("{WHITEOUT_PREFIX}{}", entry.path),
        },
        EntryKind::OpaqueDir => format!("{}/{OPAQUE_MARKER}", entry.path),
        _ => entry.path.clone(),
    }
}

fn check_path(path: &str, what: &str) -> Result<()> {
    let reason = if path.is_empty() {
        Some("path is empty")
    } else if path.starts_with('/') {
        Some("path must be relative (no leading /)")
    } else if path.contains('\0') {
        Some("path contains a NUL byte")
    } else if path
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        Some("path has an empty, `.` or `..` component")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(ImageError::InvalidEntry {
            path: format!("{what}{path}"),
            reason,
        }),
        None => Ok(()),
    }
}

/// Sort key: path components, with the opaque marker first among its siblings.
fn key(name: &str) -> Vec<&str> {
    name.split('/')
        .map(|c| if c == OPAQUE_MARKER { "" } else { c })
        .collect()
}

fn compare(a: &str, b: &str) -> Ordering {
    key(a).cmp(&key(b))
}

/// Validates entries and sorts them into layer order; rejects duplicate tar names.
pub fn sort_entries(entries: &mut [Entry]) -> Result<()> {
    for e in entries.iter() {
        check_path(&e.path, "")?;
        if let EntryKind::Hardlink { target } = &e.kind {
            check_path(target, "hard link target of ")?;
        }
        if e.path.ends_with(OPAQUE_MARKER)
            || e.path
                .rsplit('/')
                .next()
                .is_some_and(|b| b.starts_with(WHITEOUT_PREFIX))
        {
            return Err(ImageError::InvalidEntry {
                path: e.path.clone(),
                reason: "names starting with .wh. are reserved for whiteouts; use EntryKind::Whiteout",
            });
        }
    }
    entries.sort_by(|a, b| compare(&tar_name(a), &tar_name(b)));
    for pair in entries.windows(2) {
        if tar_name(&pair[0]) == tar_name(&pair[1]) {
            return Err(ImageError::InvalidEntry {
                path: pair[0].path.clone(),
                reason: "duplicate path in one layer",
            });
        }
    }
    reroot_hardlinks(entries);
    Ok(())
}

/// Makes the first path of each hard-link group (in layer order) carry the data, so every
/// link entry follows its target in the tar, as extractors require.
fn reroot_hardlinks(entries: &mut [Entry]) {
    let index: BTreeMap<String, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.path.clone(), i))
        .collect();
    // Group link entries by the data-carrying entry they resolve to.
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..entries.len() {
        let mut cur = i;
        let mut hops = 0;
        while let EntryKind::Hardlink { target } = &entries[cur].kind {
            match index.get(target) {
                Some(&t) if hops < entries.len() => {
                    cur = t;
                    hops += 1;
                }
                _ => break,
            }
        }
        if cur != i && !matches!(entries[cur].kind, EntryKind::Hardlink { .. }) {
            groups.entry(cur).or_default().push(i);
        }
        // Otherwise the target is outside this layer (or a cycle): the entry stays as it is.
    }
    for (root, links) in groups {
        let first = links.iter().copied().chain([root]).min().unwrap_or(root);
        let first_path = entries[first].path.clone();
        if first != root {
            let mut carrier = entries[root].clone();
            carrier.path = first_path.clone();
            let mut link = entries[root].clone();
            link.kind = EntryKind::Hardlink {
                target: first_path.clone(),
            };
            entries[first] = carrier;
            entries[root] = link;
        }
        for l in links {
            if l != first {
                entries[l].kind = EntryKind::Hardlink {
                    target: first_path.clone(),
                };
            }
        }
    }
}
