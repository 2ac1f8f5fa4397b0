//! End-to-end checks of the image module against real tools: skopeo, umoci, gzip, docker.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use ossb_core::image::builder::ImageBuilder;
use ossb_core::image::compress::Compression;
use ossb_core::image::entry::{Entry, EntryKind, Source};
use ossb_core::image::layer::{LayerOptions, write_layer};
use ossb_core::image::layout::{LayoutRef, import_layout, write_layout_dir};
use ossb_core::image::oci::{History, Platform};
use ossb_core::image::store::Store;

const LONG_DIR: &str = "usr/share/a-directory-name-that-is-quite-long-indeed-0123456789";
const LONG_FILE: &str = "and-a-file-name-that-pushes-the-path-beyond-one-hundred-bytes.txt";

fn entry(path: &str, kind: EntryKind, mode: u32) -> Entry {
    Entry {
        path: path.into(),
        kind,
        mode,
        uid: 0,
        gid: 0,
        mtime: 1_700_000_000,
        mtime_nsec: 0,
        xattrs: BTreeMap::new(),
    }
}

fn bytes(path: &str, content: &[u8], mode: u32) -> Entry {
    entry(
        path,
        EntryKind::File {
            source: Source::Bytes(content.to_vec()),
            size: content.len() as u64,
        },
        mode,
    )
}

/// The first layer: every entry kind the umoci comparison covers.
fn base_entries(host_file: &Path) -> Vec<Entry> {
    let host_size = std::fs::metadata(host_file).map(|m| m.len()).unwrap_or(0);
    let mut owned = bytes("home/user/owned.txt", b"mine\n", 0o600);
    owned.uid = 1000;
    owned.gid = 1001;
    owned.mtime_nsec = 123_456_789;
    let mut xattr = bytes("etc/xattr.txt", b"x\n", 0o644);
    xattr
        .xattrs
        .insert("user.ossb.test".into(), b"hello".to_vec());
    vec![
        // Deliberately unsorted: the writer orders entries.
        bytes("etc/hello.txt", b"hello world\n", 0o644),
        entry("etc", EntryKind::Dir, 0o755),
        entry(
            "etc/link",
            EntryKind::Symlink {
                target: "hello.txt".into(),
            },
            0o777,
        ),
        entry(
            "etc/hard",
            EntryKind::Hardlink {
                target: "etc/hello.txt".into(),
            },
            0o644,
        ),
        xattr,
        entry("tmp", EntryKind::Dir, 0o1777),
        entry("bin", EntryKind::Dir, 0o755),
        bytes("bin/su", b"#!/bin/sh\n", 0o4755),
        entry(
            "bin/big",
            EntryKind::File {
                source: Source::Path(host_file.to_path_buf()),
                size: host_size,
            },
            0o755,
        ),
        entry("usr", EntryKind::Dir, 0o755),
        entry("usr/share", EntryKind::Dir, 0o755),
        entry(LONG_DIR, EntryKind::Dir, 0o755),
        bytes(&format!("{LONG_DIR}/{LONG_FILE}"), b"long\n", 0o644),
        entry("home", EntryKind::Dir, 0o755),
        entry("home/user", EntryKind::Dir, 0o750),
        owned,
        entry("var", EntryKind::Dir, 0o755),
        bytes("var/gone.txt", b"deleted later\n", 0o644),
        entry("var/cache", EntryKind::Dir, 0o755),
        bytes("var/cache/old", b"hidden by opaque\n", 0o644),
    ]
}

/// The second layer: a whiteout, an opaque directory and a new file.
fn top_entries() -> Vec<Entry> {
    vec![
        entry("var/gone.txt", EntryKind::Whiteout, 0o644),
        entry("var/cache", EntryKind::OpaqueDir, 0o755),
        entry("var/cache", EntryKind::Dir, 0o755),
        bytes("var/cache/new", b"new\n", 0o644),
        entry("var", EntryKind::Dir, 0o755),
    ]
}

fn host_file(dir: &Path) -> PathBuf {
    let p = dir.join("big.bin");
    let data: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i % 251) as u8 ^ (i >> 12) as u8)
        .collect();
    std::fs::write(&p, data).expect("write host file");
    p
}

fn build(
    store: &Store,
    host: &Path,
    compression: Compression,
) -> ossb_core::image::builder::BuiltImage {
    let platform = Platform::parse("linux/amd64").expect("platform");
    let mut b = ImageBuilder::scratch(&platform);
    let opts = LayerOptions {
        compression,
        threads: 2,
        ..LayerOptions::default()
    };
    let l1 = write_layer(store, base_entries(host), &opts).expect("layer 1");
    b.add_layer(
        &l1,
        History {
            created_by: Some("COPY . / # buildkit".into()),
            comment: Some("buildkit.dockerfile.v0".into()),
            ..History::default()
        },
    );
    let l2 = write_layer(store, top_entries(), &opts).expect("layer 2");
    b.add_layer(&l2, History::default());
    b.config_mut().config.cmd = vec!["/bin/su".into()];
    b.config_mut().config.env = vec!["PATH=/bin".into()];
    b.write(store).expect("write image")
}

fn tool(name: &str) -> bool {
    Command::new(name)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn same_entries_give_same_digests() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let host = host_file(tmp.path());
    let a = Store::open(tmp.path().join("a")).expect("store a");
    let b = Store::open(tmp.path().join("b")).expect("store b");
    for c in [
        Compression::Gzip { level: 6 },
        Compression::Zstd { level: 3 },
        Compression::None,
    ] {
        let ia = build(&a, &host, c);
        let ib = build(&b, &host, c);
        assert_eq!(ia, ib, "{c:?}");
    }
}

#[test]
fn oci_layout_checks_out_with_skopeo_and_umoci() {
    if !tool("skopeo") || !tool("umoci") {
        eprintln!("skipping: skopeo or umoci is not installed");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let host = host_file(tmp.path());
    let store = Store::open(tmp.path().join("store")).expect("store");
    let img = build(&store, &host, Compression::Gzip { level: 6 });
    let layout = tmp.path().join("layout");
    write_layout_dir(&store, &img.manifest, &layout, Some("v1")).expect("layout");

    let inspect = run(Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci:{}:v1", layout.display())));
    let v: serde_json::Value = serde_json::from_str(&inspect).expect("skopeo json");
    assert_eq!(v["Digest"], img.manifest.digest.to_string());
    assert_eq!(v["Layers"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["Architecture"], "amd64");

    let bundle = tmp.path().join("bundle");
    // Ownership can only be unpacked as root; as another user umoci keeps it in its metadata.
    let root = rustix::process::geteuid().is_root();
    let mut umoci = Command::new("umoci");
    umoci.arg("unpack");
    if !root {
        umoci.arg("--rootless");
    }
    run(umoci
        .arg("--image")
        .arg(format!("{}:v1", layout.display()))
        .arg(&bundle));
    let rootfs = bundle.join("rootfs");

    // Compare what umoci unpacked with the entries (after the second layer applied).
    let gone = rootfs.join("var/gone.txt");
    assert!(!gone.exists(), "whiteout not applied");
    assert!(
        !rootfs.join("var/cache/old").exists(),
        "opaque dir not applied"
    );
    assert_eq!(
        std::fs::read(rootfs.join("var/cache/new")).expect("new"),
        b"new\n"
    );
    for e in base_entries(&host) {
        if e.path.starts_with("var") {
            continue;
        }
        let p = rootfs.join(&e.path);
        let m = std::fs::symlink_metadata(&p).unwrap_or_else(|err| panic!("{}: {err}", e.path));
        if !matches!(e.kind, EntryKind::Symlink { .. }) {
            assert_eq!(
                m.permissions().mode() & 0o7777,
                e.mode,
                "mode of {}",
                e.path
            );
        }
        if root {
            assert_eq!((m.uid(), m.gid()), (e.uid, e.gid), "owner of {}", e.path);
        }
        if !matches!(e.kind, EntryKind::Dir) {
            assert_eq!(
                (m.mtime(), m.mtime_nsec() as u32),
                (e.mtime, e.mtime_nsec),
                "mtime of {}",
                e.path
            );
        }
        match &e.kind {
            EntryKind::File { source, size } => {
                assert!(m.is_file(), "{}", e.path);
                assert_eq!(m.len(), *size, "size of {}", e.path);
                let want = match source {
                    Source::Bytes(b) => b.clone(),
                    Source::Path(p) => std::fs::read(p).expect("host"),
                };
                assert_eq!(
                    std::fs::read(&p).expect("read"),
                    want,
                    "content of {}",
                    e.path
                );
            }
            EntryKind::Dir => assert!(m.is_dir(), "{}", e.path),
            EntryKind::Symlink { target } => {
                assert!(m.file_type().is_symlink());
                assert_eq!(
                    std::fs::read_link(&p).expect("readlink"),
                    PathBuf::from(target)
                );
            }
            EntryKind::Hardlink { target } => {
                let t = std::fs::metadata(rootfs.join(target)).expect("link target");
                assert_eq!(m.ino(), t.ino(), "{} is not a hard link", e.path);
            }
            _ => {}
        }
        for (k, v) in &e.xattrs {
            let mut buf = vec![0u8; 256];
            let n = rustix::fs::lgetxattr(&p, k.as_str(), &mut buf).expect("xattr");
            assert_eq!(&buf[..n], v.as_slice(), "xattr {k} of {}", e.path);
        }
    }

    // Round trip: import the layout into a fresh store by tag and by digest.
    let other = Store::open(tmp.path().join("other")).expect("store");
    let r = LayoutRef::parse(&format!("oci-layout://{}:v1", layout.display())).expect("ref");
    let got = import_layout(&other, &r, None).expect("import");
    assert_eq!(got.digest, img.manifest.digest);
    assert!(other.fsck().expect("fsck").is_clean());
    assert_eq!(other.fsck().expect("fsck").checked, 4);
}

#[test]
fn docker_archive_loads_with_docker() {
    let docker_ok = Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success());
    if !docker_ok {
        eprintln!("skipping: `docker info` failed, no Docker daemon to load into");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let host = host_file(tmp.path());
    let store = Store::open(tmp.path().join("store")).expect("store");
    let img = build(&store, &host, Compression::Gzip { level: 6 });
    let archive = tmp.path().join("image.tar");
    let mut f = std::fs::File::create(&archive).expect("create");
    let tag = format!("ossb-image-test:{}", std::process::id());
    ossb_core::image::archive::write_docker_archive(
        &store,
        &img.manifest,
        std::slice::from_ref(&tag),
        &mut f,
    )
    .expect("archive");
    drop(f);
    let out = run(Command::new("docker").arg("load").arg("-i").arg(&archive));
    assert!(out.contains(&tag), "{out}");
    let id = run(Command::new("docker").args(["image", "inspect", "--format", "{{.Id}}", &tag]));
    let _ = Command::new("docker").args(["rmi", "-f", &tag]).output();
    assert_eq!(id.trim(), img.config.digest.to_string());
}

#[test]
fn layout_tar_and_gzip_layers_read_with_system_tools() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let host = host_file(tmp.path());
    let store = Store::open(tmp.path().join("store")).expect("store");
    let img = build(&store, &host, Compression::Gzip { level: 6 });
    let mut tar_bytes = Vec::new();
    ossb_core::image::layout::write_layout_tar(&store, &img.manifest, Some("v1"), &mut tar_bytes)
        .expect("layout tar");
    let mut again = Vec::new();
    ossb_core::image::layout::write_layout_tar(&store, &img.manifest, Some("v1"), &mut again)
        .expect("layout tar");
    assert_eq!(tar_bytes, again);
    let tar_path = tmp.path().join("layout.tar");
    std::fs::write(&tar_path, &tar_bytes).expect("write");
    let unpacked = tmp.path().join("unpacked");
    std::fs::create_dir(&unpacked).expect("mkdir");
    run(Command::new("tar")
        .arg("-xf")
        .arg(&tar_path)
        .arg("-C")
        .arg(&unpacked));
    if tool("skopeo") {
        let out = run(Command::new("skopeo")
            .arg("inspect")
            .arg(format!("oci:{}:v1", unpacked.display())));
        assert!(out.contains(&img.manifest.digest.to_string()), "{out}");
    }
    // Every gzip layer decompresses with the system gzip to bytes whose sha256 is the diff id.
    let m = ossb_core::image::layout::read_manifest(&store, &img.manifest).expect("manifest");
    let cfg: ossb_core::image::oci::ImageConfig =
        serde_json::from_slice(&store.read_blob(&m.config.digest).expect("config")).expect("json");
    for (layer, diff_id) in m.layers.iter().zip(&cfg.rootfs.diff_ids) {
        let out = Command::new("gzip")
            .arg("-dc")
            .arg(store.blob_path(&layer.digest))
            .output()
            .expect("gzip");
        assert!(out.status.success(), "gzip -d failed");
        assert_eq!(&ossb_core::image::Digest::of(&out.stdout), diff_id);
    }
}
