//! Filesystem operations of the executor on real files: root confinement, unpacking, context
//! scanning and COPY semantics. Runs as root and as an unprivileged user.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use ossb_core::exec::{ResolveMode, Root};
use rustix::fs::OFlags;

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ossb-exec-fs")
        .tempdir_in(std::env::temp_dir())
        .expect("temp dir")
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn both_roots(dir: &Path) -> Vec<Root> {
    vec![
        Root::open_host(dir).expect("root"),
        Root::open_host(dir)
            .expect("root")
            .with_resolve_mode(ResolveMode::Userspace),
    ]
}

fn read_fd(fd: std::os::fd::OwnedFd) -> String {
    let mut s = String::new();
    fs::File::from(fd).read_to_string(&mut s).expect("read");
    s
}

/// A tree with an outside "secret" next to the rootfs and escape attempts inside it.
fn escape_tree() -> (tempfile::TempDir, std::path::PathBuf) {
    let t = tmp();
    let rootfs = t.path().join("rootfs");
    fs::create_dir_all(rootfs.join("etc")).expect("mkdir");
    fs::write(t.path().join("secret"), "host secret").expect("write");
    fs::write(rootfs.join("secret"), "inside").expect("write");
    fs::write(rootfs.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").expect("write");
    std::os::unix::fs::symlink("../../../../secret", rootfs.join("etc/up")).expect("symlink");
    std::os::unix::fs::symlink("/secret", rootfs.join("abs")).expect("symlink");
    std::os::unix::fs::symlink("/proc/self/root/secret", rootfs.join("magic")).expect("symlink");
    std::os::unix::fs::symlink("..", rootfs.join("dotdot")).expect("symlink");
    std::os::unix::fs::symlink("loop", rootfs.join("loop")).expect("symlink");
    (t, rootfs)
}

#[test]
fn symlinks_and_dotdot_stay_inside_the_root() {
    let (_t, rootfs) = escape_tree();
    for root in both_roots(&rootfs) {
        for p in [
            "etc/up",
            "abs",
            "../secret",
            "/../../secret",
            "dotdot/dotdot/secret",
            "magic",
        ] {
            let fd = root.open(p, OFlags::RDONLY, 0);
            match fd {
                Ok(fd) => assert_eq!(read_fd(fd), "inside", "{p} openat2={}", root.uses_openat2()),
                // The magic link resolves to /proc inside the root, which does not exist.
                Err(e) => assert!(p == "magic", "{p}: {e}"),
            }
        }
        assert_eq!(root.resolve("etc/up").expect("resolve"), "secret");
        assert_eq!(
            root.resolve("dotdot/../etc/./passwd").expect("resolve"),
            "etc/passwd"
        );
        let err = root.open("loop", OFlags::RDONLY, 0).expect_err("loop");
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
    }
}

#[test]
fn proc_self_fd_inside_the_root_is_not_the_hosts() {
    let (_t, rootfs) = escape_tree();
    let keep = fs::File::open(rootfs.parent().expect("parent").join("secret")).expect("open");
    let fdnum = std::os::fd::AsRawFd::as_raw_fd(&keep);
    for root in both_roots(&rootfs) {
        let p = format!("/proc/self/fd/{fdnum}");
        assert!(
            root.open(&p, OFlags::RDONLY, 0).is_err(),
            "{p} must not reach the host"
        );
    }
}

#[test]
fn writes_through_symlinks_land_inside() {
    let (t, rootfs) = escape_tree();
    fs::create_dir(rootfs.join("tmp")).expect("mkdir");
    std::os::unix::fs::symlink("../../..", rootfs.join("tmp/out")).expect("symlink");
    for root in both_roots(&rootfs) {
        let mut f = root.create_file("tmp/out/planted", 0o644).expect("create");
        f.write_all(b"x").expect("write");
        root.mkdir_all("tmp/out/newdir/sub", 0o750, None, None)
            .expect("mkdir_all");
        root.remove_all("tmp/out/link").expect("remove");
        root.symlink("/etc/shadow", "tmp/out/link")
            .expect("symlink");
    }
    assert!(
        fs::symlink_metadata(rootfs.join("link"))
            .expect("lstat")
            .file_type()
            .is_symlink()
    );
    assert!(rootfs.join("planted").is_file());
    assert!(rootfs.join("newdir/sub").is_dir());
    assert_eq!(
        fs::metadata(rootfs.join("newdir/sub"))
            .expect("stat")
            .permissions()
            .mode()
            & 0o7777,
        0o750
    );
    assert!(!t.path().join("planted").exists());
    assert!(!t.path().join("newdir").exists());
    // A symlink as the final component is never followed on create.
    let root = Root::open_host(&rootfs).expect("root");
    let err = root.create_file("abs", 0o644).expect_err("must not follow");
    assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
    assert_eq!(
        fs::read_to_string(t.path().join("secret")).expect("read"),
        "host secret"
    );
}

#[test]
fn corretto_cacerts_deep_relative_link_resolves_in_root() {
    let t = tmp();
    let rootfs = t.path().join("rootfs");
    let sec = rootfs.join("usr/lib/jvm/java-17-amazon-corretto/lib/security");
    fs::create_dir_all(&sec).expect("mkdir");
    fs::create_dir_all(rootfs.join("etc/pki/java")).expect("mkdir");
    fs::write(rootfs.join("etc/pki/java/cacerts"), "certs").expect("write");
    std::os::unix::fs::symlink(
        "../../../../../../../../../etc/pki/java/cacerts",
        sec.join("cacerts"),
    )
    .expect("symlink");
    for root in both_roots(&rootfs) {
        let p = "usr/lib/jvm/java-17-amazon-corretto/lib/security/cacerts";
        assert_eq!(root.resolve(p).expect("resolve"), "etc/pki/java/cacerts");
        assert_eq!(
            read_fd(root.open(p, OFlags::RDONLY, 0).expect("open")),
            "certs"
        );
        assert_eq!(
            root.read_link(p).expect("readlink"),
            "../../../../../../../../../etc/pki/java/cacerts"
        );
    }
}

#[test]
fn remove_rename_hardlink_stat_times() {
    let t = tmp();
    for root in both_roots(t.path()) {
        root.mkdir_all("a/b/c", 0o755, None, None).expect("mkdir");
        fs::write(t.path().join("a/b/c/f"), "data").expect("write");
        fs::set_permissions(t.path().join("a/b/c"), fs::Permissions::from_mode(0o000))
            .expect("chmod");
        root.hardlink("a/b/c/../../../a/b/c/f", "hl").ok();
        fs::set_permissions(t.path().join("a/b/c"), fs::Permissions::from_mode(0o755))
            .expect("chmod");
        root.hardlink("a/b/c/f", "hl2").expect("hardlink");
        assert_eq!(
            fs::metadata(t.path().join("hl2")).expect("stat").nlink(),
            if t.path().join("hl").exists() { 3 } else { 2 }
        );
        root.rename("hl2", "a/renamed").expect("rename");
        assert_eq!(
            fs::read_to_string(t.path().join("a/renamed")).expect("read"),
            "data"
        );
        root.set_times("a/renamed", 1_000_000, 5).expect("times");
        let st = root.lstat("a/renamed").expect("lstat");
        assert_eq!(st.st_mtime, 1_000_000);
        assert_eq!(st.st_mtime_nsec, 5);
        fs::set_permissions(t.path().join("a/b/c"), fs::Permissions::from_mode(0o000))
            .expect("chmod");
        root.remove_all("a").expect("remove_all");
        root.remove_all("hl").expect("remove_all");
        root.remove_all("missing/also").expect_err("parent missing");
        root.remove_all("missing").expect("missing is fine");
        assert_eq!(fs::read_dir(t.path()).expect("ls").count(), 0);
    }
}

#[test]
fn set_owner_reports_when_not_permitted() {
    let t = tmp();
    fs::write(t.path().join("f"), "x").expect("write");
    std::os::unix::fs::symlink("f", t.path().join("l")).expect("symlink");
    let root = Root::open_host(t.path()).expect("root");
    let out = root.set_owner("l", 4242, 4343).expect("chown");
    if is_root() {
        assert_eq!(out, ossb_core::exec::OwnerOutcome::Set);
        let md = fs::symlink_metadata(t.path().join("l")).expect("stat");
        assert_eq!((md.uid(), md.gid()), (4242, 4343));
        assert_eq!(fs::metadata(t.path().join("f")).expect("stat").uid(), 0);
    } else {
        assert_eq!(out, ossb_core::exec::OwnerOutcome::NotPermitted);
    }
    root.set_xattr("f", "user.ossb", b"v").expect("xattr");
    let mut buf = [0u8; 16];
    let n = rustix::fs::getxattr(t.path().join("f"), "user.ossb", &mut buf[..]).expect("getxattr");
    assert_eq!(&buf[..n], b"v");
}
