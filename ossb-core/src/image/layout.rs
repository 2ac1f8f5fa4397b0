//! OCI image layout directories and tars: export from the store, import into it.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::digest::Digest;
use super::entry::{Entry, EntryKind, Source};
use super::error::{ImageError, Result};
use super::layer::write_tar;
use super::oci::{Descriptor, Index, Manifest, Platform, from_json, media_types as mt, to_json};
use super::store::{Store, refs_write_atomic, unwrap_verify_error};

/// The content of the `oci-layout` file.
pub const OCI_LAYOUT_FILE: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;

/// A parsed `oci-layout://DIR[:TAG|@DIGEST]` reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutRef {
    /// The layout directory.
    pub dir: PathBuf,
    /// The `org.opencontainers.image.ref.name` to find.
    pub tag: Option<String>,
    /// The manifest or index digest to find.
    pub digest: Option<Digest>,
}

impl LayoutRef {
    /// Parses `oci-layout://DIR[:TAG|@DIGEST]` (the scheme is optional).
    pub fn parse(value: &str) -> Result<Self> {
        let rest = value.strip_prefix("oci-layout://").unwrap_or(value);
        if let Some((dir, digest)) = rest.rsplit_once('@') {
            return Ok(LayoutRef {
                dir: dir.into(),
                tag: None,
                digest: Some(Digest::parse(digest)?),
            });
        }
        if let Some((dir, tag)) = rest.rsplit_once(':')
            && !tag.contains('/')
            && !dir.is_empty()
        {
            return Ok(LayoutRef {
                dir: dir.into(),
                tag: Some(tag.to_string()),
                digest: None,
            });
        }
        Ok(LayoutRef {
            dir: rest.into(),
            tag: None,
            digest: None,
        })
    }
}

/// Writes the image `root` (manifest or index, from `store`) as an OCI layout in `dir`,
/// tagged `tag` in `index.json`. An existing layout is extended: entries with the same tag are
/// replaced, other entries kept. Blobs are hard-linked from the store when possible.
pub fn write_layout_dir(
    store: &Store,
    root: &Descriptor,
    dir: &Path,
    tag: Option<&str>,
) -> Result<()> {
    let blobs = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs).map_err(|e| ImageError::io("create", &blobs, e))?;
    for desc in store.closure(root)? {
        let dest = blobs.join(desc.digest.hex());
        if dest.is_file() {
            continue;
        }
        copy_blob(store, &desc.digest, &dest)?;
    }
    std::fs::write(dir.join("oci-layout"), OCI_LAYOUT_FILE)
        .map_err(|e| ImageError::io("write", dir.join("oci-layout"), e))?;
    let index_path = dir.join("index.json");
    let mut index = match std::fs::read(&index_path) {
        Ok(bytes) => from_json::<Index>(&index_path.display().to_string(), &bytes)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Index::new(Some(mt::OCI_INDEX)),
        Err(e) => return Err(ImageError::io("read", index_path, e)),
    };
    let entry = index_entry(root, tag);
    index.manifests.retain(|d| match tag {
        Some(t) => {
            d.annotations
                .get(mt::ANNOTATION_REF_NAME)
                .map(String::as_str)
                != Some(t)
        }
        None => d.digest != root.digest || d.annotations.contains_key(mt::ANNOTATION_REF_NAME),
    });
    index.manifests.push(entry);
    let bytes = to_json("index.json", &index)?;
    refs_write_atomic(dir, "index.json", &bytes)
}

/// The `index.json` entry for `root`: its platform and annotations (a build's
/// `index-descriptor:` annotations), and `tag` as the ref name.
fn index_entry(root: &Descriptor, tag: Option<&str>) -> Descriptor {
    let mut entry = Descriptor::new(root.media_type.clone(), root.digest.clone(), root.size);
    entry.platform = root.platform.clone();
    entry.annotations = root.annotations.clone();
    if let Some(t) = tag {
        entry
            .annotations
            .insert(mt::ANNOTATION_REF_NAME.into(), t.into());
    }
    entry
}

fn copy_blob(store: &Store, digest: &Digest, dest: &Path) -> Result<()> {
    let src = store.blob_path(digest);
    if std::fs::hard_link(&src, dest).is_ok() {
        return Ok(());
    }
    let dir = dest.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(|e| ImageError::io("create temp file in", dir, e))?;
    let mut reader = store.open_blob(digest)?;
    std::io::copy(&mut reader, &mut tmp).map_err(|e| unwrap_verify_error(e, &src))?;
    tmp.persist(dest)
        .map_err(|e| ImageError::io("rename to", dest, e.error))?;
    Ok(())
}

/// Writes the image `root` as a tar of an OCI layout (`oci-layout`, `index.json`,
/// `blobs/sha256/...`) to `out`; the same image always gives the same bytes.
pub fn write_layout_tar<W: Write>(
    store: &Store,
    root: &Descriptor,
    tag: Option<&str>,
    out: &mut W,
) -> Result<()> {
    let mut index = Index::new(Some(mt::OCI_INDEX));
    index.manifests.push(index_entry(root, tag));
    let index_bytes = to_json("index.json", &index)?;
    let mut entries = vec![
        file_entry(
            "oci-layout",
            Source::Bytes(OCI_LAYOUT_FILE.as_bytes().to_vec()),
            OCI_LAYOUT_FILE.len() as u64,
        ),
        file_entry(
            "index.json",
            Source::Bytes(index_bytes.clone()),
            index_bytes.len() as u64,
        ),
        dir_entry("blobs"),
        dir_entry("blobs/sha256"),
    ];
    entries.extend(blob_entries(store, root)?);
    write_tar(entries, out, None)
}

/// Tar entries for every blob of `root`, as `blobs/sha256/<hex>` read from the store.
pub(crate) fn blob_entries(store: &Store, root: &Descriptor) -> Result<Vec<Entry>> {
    store
        .closure(root)?
        .into_iter()
        .map(|d| {
            let size = store.size(&d.digest)?;
            Ok(file_entry(
                &format!("blobs/sha256/{}", d.digest.hex()),
                Source::Path(store.blob_path(&d.digest)),
                size,
            ))
        })
        .collect()
}

pub(crate) fn file_entry(path: &str, source: Source, size: u64) -> Entry {
    Entry {
        path: path.to_string(),
        kind: EntryKind::File { source, size },
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime: 0,
        mtime_nsec: 0,
        xattrs: Default::default(),
    }
}

pub(crate) fn dir_entry(path: &str) -> Entry {
    Entry {
        path: path.to_string(),
        kind: EntryKind::Dir,
        mode: 0o755,
        uid: 0,
        gid: 0,
        mtime: 0,
        mtime_nsec: 0,
        xattrs: Default::default(),
    }
}

/// Imports the image named by `reference` from an OCI layout into `store`, verifying every
/// blob. Without a tag or digest the layout must hold exactly one image. When the match is an
/// index and `platform` is given, the manifest for that platform is returned (its blobs are
/// imported; other platforms are not); otherwise the matched descriptor is returned.
pub fn import_layout(
    store: &Store,
    reference: &LayoutRef,
    platform: Option<&Platform>,
) -> Result<Descriptor> {
    let dir = &reference.dir;
    let index_path = dir.join("index.json");
    let bytes = std::fs::read(&index_path).map_err(|e| ImageError::io("read", &index_path, e))?;
    let index: Index = from_json(&index_path.display().to_string(), &bytes)?;
    let found: Vec<&Descriptor> = index
        .manifests
        .iter()
        .filter(|d| match (&reference.tag, &reference.digest) {
            (_, Some(dg)) => &d.digest == dg,
            (Some(t), None) => d.annotations.get(mt::ANNOTATION_REF_NAME) == Some(t),
            (None, None) => true,
        })
        .collect();
    let root = match found.as_slice() {
        [one] => (*one).clone(),
        [] => {
            return Err(ImageError::RefNotFound {
                name: reference
                    .tag
                    .clone()
                    .or_else(|| reference.digest.as_ref().map(|d| d.to_string()))
                    .unwrap_or_default(),
                place: index_path.display().to_string(),
            });
        }
        _ => {
            return Err(ImageError::InvalidLayout {
                path: dir.clone(),
                reason: "more than one image matches; name one with :TAG or @DIGEST".into(),
            });
        }
    };
    let mut target = root;
    loop {
        import_blob(store, dir, &target)?;
        if mt::is_index(&target.media_type) {
            let Some(want) = platform else { break };
            let idx: Index = from_json(
                &target.digest.to_string(),
                &store.read_blob(&target.digest)?,
            )?;
            let chosen = idx
                .manifests
                .iter()
                .find(|d| d.platform.as_ref().is_some_and(|p| want.matches(p)))
                .cloned();
            match chosen {
                Some(d) => target = d,
                None => {
                    let available = idx
                        .manifests
                        .iter()
                        .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
                        .collect::<Vec<_>>()
                        .join(", ");
                    return Err(ImageError::NoMatchingPlatform {
                        platform: want.to_string(),
                        digest: target.digest,
                        available,
                    });
                }
            }
        } else {
            break;
        }
    }
    // Import everything below the target (a manifest's config and layers, or an index's
    // manifests that the layout holds).
    let mut stack = vec![target.clone()];
    while let Some(d) = stack.pop() {
        import_blob(store, dir, &d)?;
        let is_index = mt::is_index(&d.media_type);
        for child in store.children(&d)? {
            if is_index && !dir.join("blobs/sha256").join(child.digest.hex()).is_file() {
                continue;
            }
            stack.push(child);
        }
    }
    Ok(target)
}

/// Copies the blob `desc` of the layout in `dir` into `store` (verified), unless it is there.
pub fn import_blob(store: &Store, dir: &Path, desc: &Descriptor) -> Result<()> {
    if store.has(&desc.digest) {
        return Ok(());
    }
    let path = dir
        .join("blobs")
        .join(desc.digest.algorithm())
        .join(desc.digest.hex());
    let mut file = File::open(&path).map_err(|e| ImageError::io("open", &path, e))?;
    store.put_reader(&mut file, Some(&desc.digest), Some(desc.size))?;
    Ok(())
}

/// Reads the manifest a layout reference resolves to (after [`import_layout`]).
pub fn read_manifest(store: &Store, desc: &Descriptor) -> Result<Manifest> {
    if !mt::is_manifest(&desc.media_type) && !desc.media_type.is_empty() {
        return Err(ImageError::UnsupportedMediaType {
            media_type: desc.media_type.clone(),
            what: "image manifest",
        });
    }
    from_json(&desc.digest.to_string(), &store.read_blob(&desc.digest)?)
}
