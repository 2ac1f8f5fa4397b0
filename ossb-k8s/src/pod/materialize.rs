//! Copying a ConfigMap build context out of its volume into plain files.

use super::PodError;
use super::volume::list_files;
use std::path::{Path, PathBuf};

/// What [`materialize_context`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaterializedContext {
    /// The directory holding the plain files.
    pub dir: PathBuf,
    /// Files written.
    pub files: usize,
    /// Bytes written.
    pub bytes: u64,
}

/// Create the directories of `rel` under `dest`, refusing any component that exists as
/// something other than a real directory (a planted symlink would redirect writes).
fn make_parents(dest: &Path, rel: &Path) -> Result<(), PodError> {
    let mut dir = dest.to_path_buf();
    let Some(parent) = rel.parent() else {
        return Ok(());
    };
    for comp in parent.components() {
        dir.push(comp);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(PodError::Invalid {
                    what: "build context destination",
                    path: dir,
                    reason: "exists and is not a directory; use an empty workspace directory"
                        .into(),
                    class: ossb_core::ExitCode::Configuration,
                });
            }
            Err(_) => std::fs::create_dir(&dir).map_err(|e| PodError::io("create", &dir, e))?,
        }
    }
    Ok(())
}

/// Copy every key of the ConfigMap volume at `volume` (atomic-writer layout, `items` with
/// nested paths allowed) into `dest` as plain files and directories. The `..`-prefixed
/// bookkeeping entries are never copied, symlinks that leave the volume are refused, and no
/// existing file or symlink in `dest` is followed or overwritten. Executable bits of the
/// volume's `mode` are kept.
///
/// ```
/// let vol = tempfile::tempdir().unwrap();
/// std::fs::write(vol.path().join("Dockerfile"), "FROM scratch\n").unwrap();
/// let ws = tempfile::tempdir().unwrap();
/// let out = ossb_k8s::pod::materialize_context(vol.path(), &ws.path().join("context")).unwrap();
/// assert_eq!((out.files, out.bytes), (1, 13));
/// ```
pub fn materialize_context(volume: &Path, dest: &Path) -> Result<MaterializedContext, PodError> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let files = list_files(volume)?;
    std::fs::create_dir_all(dest).map_err(|e| PodError::io("create", dest, e))?;
    let mut bytes = 0;
    for f in &files {
        let rel = Path::new(&f.key);
        make_parents(dest, rel)?;
        let out_path = dest.join(rel);
        let data = std::fs::read(&f.path).map_err(|e| PodError::io("read", &f.path, e))?;
        let mode = 0o644 | (f.mode & 0o111);
        // create_new = O_CREAT|O_EXCL: fails on an existing file and never follows a symlink.
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&out_path)
            .map_err(|e| PodError::io("create", &out_path, e))?;
        out.write_all(&data)
            .map_err(|e| PodError::io("write", &out_path, e))?;
        out.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(|e| PodError::io("chmod", &out_path, e))?;
        bytes += data.len() as u64;
    }
    Ok(MaterializedContext {
        dir: dest.to_path_buf(),
        files: files.len(),
        bytes,
    })
}
