//! Builds directories exactly like the kubelet's atomic writer lays out Secret and ConfigMap
//! volumes (shared by the integration tests).

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

/// A key (path, possibly nested like `items` allow), its content and its mode.
pub type Key<'a> = (&'a str, &'a [u8], u32);

fn write_payload(dir: &Path, files: &[Key]) {
    for (key, data, mode) in files {
        let p = dir.join(key);
        std::fs::create_dir_all(p.parent().expect("key has a parent")).expect("mkdir");
        std::fs::write(&p, data).expect("write key");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode)).expect("chmod");
    }
}

fn top_level(files: &[Key]) -> BTreeSet<String> {
    files
        .iter()
        .map(|(k, _, _)| k.split('/').next().expect("non-empty key").to_string())
        .collect()
}

/// Write a volume at `root`: `..<timestamp>/` with the payload, `..data -> ..<timestamp>`,
/// and `top -> ..data/top` for each top-level name.
pub fn atomic_volume(root: &Path, files: &[Key]) {
    std::fs::create_dir_all(root).expect("mkdir root");
    let ts = "..2026_01_02_03_04_05.123456789";
    write_payload(&root.join(ts), files);
    symlink(ts, root.join("..data")).expect("..data");
    for top in top_level(files) {
        symlink(format!("..data/{top}"), root.join(&top)).expect("key symlink");
    }
}

/// Update a volume the way the kubelet does: a new timestamped directory, `..data`
/// swapped atomically with a rename, the old directory removed.
pub fn update_volume(root: &Path, files: &[Key]) {
    let old = std::fs::read_link(root.join("..data")).expect("..data exists");
    let ts = "..2026_01_02_03_09_09.987654321";
    write_payload(&root.join(ts), files);
    symlink(ts, root.join("..data_tmp")).expect("..data_tmp");
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).expect("swap ..data");
    for top in top_level(files) {
        if std::fs::symlink_metadata(root.join(&top)).is_err() {
            symlink(format!("..data/{top}"), root.join(&top)).expect("key symlink");
        }
    }
    std::fs::remove_dir_all(root.join(old)).expect("remove old payload");
}
