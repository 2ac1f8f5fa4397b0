//! Unpacking OCI layers into a rootfs: whiteouts, escapes, metadata. Root and non-root.

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;

use ossb_core::exec::{FsError, Root, unpack_layer};

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ossb-exec-unpack")
        .tempdir_in(std::env::temp_dir())
        .expect("temp dir")
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A raw tar builder that allows any name (for malicious archives).
struct Tar(tar::Builder<Vec<u8>>);

impl Tar {
    fn new() -> Self {
        Tar(tar::Builder::new(Vec::new()))
    }
    fn header(name: &str, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        let bytes = name.as_bytes();
        h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(1234);
        h.set_gid(5678);
        h.set_mtime(1_600_000_000);
        h
    }
    fn file(mut self, name: &str, data: &[u8], mode: u32) -> Self {
        let mut h = Self::header(name, tar::EntryType::Regular, mode, data.len() as u64);
        h.set_cksum();
        self.0.append(&h, data).expect("append");
        self
    }
    fn dir(mut self, name: &str, mode: u32) -> Self {
        let mut h = Self::header(name, tar::EntryType::Directory, mode, 0);
        h.set_cksum();
        self.0.append(&h, &[][..]).expect("append");
        self
    }
    fn link(mut self, name: &str, target: &str, kind: tar::EntryType) -> Self {
        let mut h = Self::header(name, kind, 0o777, 0);
        let t = target.as_bytes();
        h.as_old_mut().linkname[..t.len()].copy_from_slice(t);
        h.set_cksum();
        self.0.append(&h, &[][..]).expect("append");
        self
    }
    fn dev(mut self, name: &str, kind: tar::EntryType, major: u32, minor: u32) -> Self {
        let mut h = Self::header(name, kind, 0o666, 0);
        h.set_device_major(major).expect("major");
        h.set_device_minor(minor).expect("minor");
        h.set_cksum();
        self.0.append(&h, &[][..]).expect("append");
        self
    }
    fn bytes(self) -> Vec<u8> {
        self.0.into_inner().expect("finish")
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("gz");
    e.finish().expect("gz")
}

#[test]
fn layers_apply_with_whiteouts_and_opaque_dirs() {
    let t = tmp();
    let root = Root::open_host(t.path()).expect("root");
    let lower = Tar::new()
        .dir("etc/", 0o755)
        .file("etc/keep", b"keep", 0o644)
        .file("etc/gone", b"gone", 0o644)
        .dir("opt/", 0o755)
        .file("opt/lower", b"lower", 0o644)
        .dir("opt/sub/", 0o700)
        .link("etc/hl", "etc/keep", tar::EntryType::Link)
        .link("bin", "usr/bin", tar::EntryType::Symlink)
        .bytes();
    let report = unpack_layer(&root, &gzip(&lower)[..]).expect("lower");
    assert_eq!(report.entries, 8);
    assert_eq!(
        fs::metadata(t.path().join("etc/hl")).expect("stat").ino(),
        fs::metadata(t.path().join("etc/keep")).expect("stat").ino()
    );
    let upper = Tar::new()
        .file("opt/new", b"new", 0o4755)
        .dir("opt/", 0o750)
        .file("opt/.wh..wh..opq", b"", 0o644)
        .file("etc/.wh.gone", b"", 0o644)
        .file("etc/keep", b"changed", 0o600)
        .bytes();
    let z = zstd::encode_all(&upper[..], 1).expect("zstd");
    let report = unpack_layer(&root, &z[..]).expect("upper");
    assert_eq!(report.entries, 5);
    assert!(!t.path().join("etc/gone").exists());
    assert!(!t.path().join("opt/lower").exists());
    assert!(!t.path().join("opt/sub").exists());
    assert_eq!(
        fs::read_to_string(t.path().join("opt/new")).expect("read"),
        "new"
    );
    // Replacing a hard-linked file does not change the other link.
    assert_eq!(
        fs::read_to_string(t.path().join("etc/keep")).expect("read"),
        "changed"
    );
    assert_eq!(
        fs::read_to_string(t.path().join("etc/hl")).expect("read"),
        "keep"
    );
    let md = fs::metadata(t.path().join("opt/new")).expect("stat");
    assert_eq!(md.mode() & 0o7777, 0o4755);
    assert_eq!(md.mtime(), 1_600_000_000);
    let dmd = fs::metadata(t.path().join("opt")).expect("stat");
    assert_eq!(dmd.mode() & 0o7777, 0o750);
    assert_eq!(
        dmd.mtime(),
        1_600_000_000,
        "directory time is set after its contents"
    );
    if is_root() {
        assert_eq!((md.uid(), md.gid()), (1234, 5678));
        assert!(report.owners.is_empty());
    } else {
        assert_eq!(report.owners.get("opt/new"), Some(&(1234, 5678)));
        assert_eq!(report.owners.get("opt"), Some(&(1234, 5678)));
    }
}

#[test]
fn escaping_entries_are_refused_and_touch_nothing_outside() {
    let t = tmp();
    let rootfs = t.path().join("rootfs");
    fs::create_dir(&rootfs).expect("mkdir");
    let root = Root::open_host(&rootfs).expect("root");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("dotdot", Tar::new().file("../evil", b"x", 0o644).bytes()),
        (
            "nested dotdot",
            Tar::new().file("a/../../evil", b"x", 0o644).bytes(),
        ),
        ("absolute", Tar::new().file("/evil", b"x", 0o644).bytes()),
        (
            "through symlink in the same layer",
            Tar::new()
                .link("up", "../..", tar::EntryType::Symlink)
                .file("up/evil", b"x", 0o644)
                .bytes(),
        ),
        (
            "hardlink outside",
            Tar::new()
                .link("hl", "../secret", tar::EntryType::Link)
                .bytes(),
        ),
        (
            "whiteout outside",
            Tar::new().file("../.wh.secret", b"", 0o644).bytes(),
        ),
    ];
    fs::write(t.path().join("secret"), "s").expect("write");
    for (what, tarball) in cases {
        let err = unpack_layer(&root, &tarball[..]).expect_err(what);
        assert!(matches!(err, FsError::Escape { .. }), "{what}: {err}");
        assert!(
            err.to_string().contains("escapes the root"),
            "{what}: {err}"
        );
    }
    // A symlink from a lower layer that climbs out.
    std::os::unix::fs::symlink("../../../../", rootfs.join("lowerlink")).expect("symlink");
    let err = unpack_layer(
        &root,
        &Tar::new().file("lowerlink/evil", b"x", 0o644).bytes()[..],
    )
    .expect_err("lower");
    assert!(err.to_string().contains("lowerlink/evil"), "{err}");
    assert!(!t.path().join("evil").exists());
    assert_eq!(
        fs::read_to_string(t.path().join("secret")).expect("read"),
        "s"
    );
    // An absolute symlink is interpreted inside the root (as the container sees it).
    std::os::unix::fs::symlink("/usr/lib", rootfs.join("lib")).expect("symlink");
    unpack_layer(
        &root,
        &Tar::new()
            .dir("usr/lib/", 0o755)
            .file("lib/libx.so", b"elf", 0o755)
            .bytes()[..],
    )
    .expect("abs link");
    assert_eq!(
        fs::read_to_string(rootfs.join("usr/lib/libx.so")).expect("read"),
        "elf"
    );
    // A symlink may point anywhere: it is only text (Corretto's cacerts).
    unpack_layer(
        &root,
        &Tar::new()
            .link(
                "cacerts",
                "../../../../../etc/pki/java/cacerts",
                tar::EntryType::Symlink,
            )
            .bytes()[..],
    )
    .expect("link text");
    assert_eq!(
        fs::read_link(rootfs.join("cacerts"))
            .expect("readlink")
            .to_str(),
        Some("../../../../../etc/pki/java/cacerts")
    );
}

#[test]
fn devices_are_created_or_recorded() {
    let t = tmp();
    let root = Root::open_host(t.path()).expect("root");
    let layer = Tar::new()
        .dev("dev/null", tar::EntryType::Char, 1, 3)
        .dev("fifo", tar::EntryType::Fifo, 0, 0)
        .bytes();
    let report = unpack_layer(&root, &layer[..]).expect("unpack");
    use std::os::unix::fs::FileTypeExt;
    assert!(
        fs::symlink_metadata(t.path().join("fifo"))
            .expect("stat")
            .file_type()
            .is_fifo()
    );
    let created = fs::symlink_metadata(t.path().join("dev/null"))
        .map(|m| m.file_type().is_char_device())
        .unwrap_or(false);
    if created {
        assert!(report.devices.is_empty());
    } else {
        assert!(matches!(
            report.devices.get("dev/null"),
            Some((
                ossb_core::image::entry::EntryKind::CharDevice { major: 1, minor: 3 },
                0o666
            ))
        ));
    }
}

#[test]
fn add_archive_extracts_to_entries_with_escape_checks() {
    use ossb_core::exec::archive_src::{ArchiveTarget, archive_entries};
    use ossb_core::image::entry::{EntryKind, Source};
    let t = tmp();
    let target = ArchiveTarget {
        dest: "opt/app",
        owner: Some((7, 8)),
        build_time: 42,
        scratch: t.path(),
    };
    let tarball = Tar::new()
        .file("bin/tool", b"#!/bin/sh\n", 0o755)
        .link("bin/tool2", "bin/tool", tar::EntryType::Link)
        .link("cur", "bin/tool", tar::EntryType::Symlink)
        .bytes();
    let bz = {
        let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        e.write_all(&tarball).expect("bz");
        e.finish().expect("bz")
    };
    let es = archive_entries(&bz[..], &target).expect("extract");
    let names: Vec<&str> = es.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        names,
        [
            "opt",
            "opt/app",
            "opt/app/bin",
            "opt/app/bin/tool",
            "opt/app/bin/tool2",
            "opt/app/cur"
        ]
    );
    assert_eq!(
        (es[3].uid, es[3].gid, es[3].mode, es[3].mtime),
        (7, 8, 0o755, 1_600_000_000)
    );
    match &es[3].kind {
        EntryKind::File {
            source: Source::Path(p),
            size,
        } => {
            assert_eq!(*size, 10);
            assert_eq!(fs::read(p).expect("read"), b"#!/bin/sh\n");
            assert!(p.starts_with(t.path()));
        }
        other => panic!("not a file: {other:?}"),
    }
    assert!(matches!(&es[4].kind, EntryKind::Hardlink { target } if target == "opt/app/bin/tool"));
    assert_eq!(es[0].mtime, 42);
    for bad in [
        Tar::new().file("../x", b"x", 0o644).bytes(),
        Tar::new().file("/x", b"x", 0o644).bytes(),
        Tar::new()
            .link("h", "../../etc/shadow", tar::EntryType::Link)
            .bytes(),
    ] {
        assert!(archive_entries(&gzip(&bad)[..], &target).is_err());
    }
}
