//! Context scanning, COPY semantics and `--chown` resolution on real trees. Root and non-root.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use ossb_core::exec::{
    Chmod, ContextKind, CopyRequest, FsError, Root, copy_entries, resolve_user, scan_context,
};
use ossb_core::image::entry::{Entry, EntryKind, Source};

fn tmp() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ossb-exec-copy")
        .tempdir_in(std::env::temp_dir())
        .expect("temp dir")
}

fn write(p: &Path, data: &str, mode: u32) {
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).expect("mkdir");
    }
    fs::write(p, data).expect("write");
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A small build context.
fn context() -> tempfile::TempDir {
    let t = tmp();
    let c = t.path();
    write(&c.join("a.txt"), "a", 0o644);
    write(&c.join("b.txt"), "bb", 0o600);
    write(&c.join("src/main.rs"), "fn main(){}", 0o644);
    write(&c.join("src/lib/util.rs"), "util", 0o755);
    write(&c.join("src/skip.log"), "log", 0o644);
    write(&c.join("node_modules/x/index.js"), "x", 0o644);
    fs::set_permissions(c.join("src"), fs::Permissions::from_mode(0o750)).expect("chmod");
    symlink("../../etc/passwd", c.join("src/evil")).expect("symlink");
    symlink("a.txt", c.join("alias")).expect("symlink");
    fs::hard_link(c.join("a.txt"), c.join("src/a-hl.txt")).expect("hardlink");
    t
}

fn req<'a>(sources: &'a [String], dest: &'a str) -> CopyRequest<'a> {
    CopyRequest {
        sources,
        dest,
        workdir: "/work",
        owner: None,
        keep_owner: false,
        chmod: None,
        exclude: None,
        parents: false,
        link: false,
        base_has_dir: None,
        build_time: 1_700_000_000,
        context_name: "build context",
    }
}

fn paths(es: &[Entry]) -> Vec<&str> {
    es.iter().map(|e| e.path.as_str()).collect()
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[test]
fn scan_is_sorted_excludes_and_keeps_symlinks() {
    let t = context();
    let scan = scan_context(t.path(), &|p, is_dir| p == "node_modules" && is_dir).expect("scan");
    let names: Vec<&str> = scan.files.iter().map(|f| f.rel_path.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert!(!names.iter().any(|n| n.starts_with("node_modules")));
    let evil = scan.get("src/evil").expect("evil");
    assert_eq!(evil.kind, ContextKind::Symlink);
    assert_eq!(evil.link_target.as_deref(), Some("../../etc/passwd"));
    assert_eq!(scan.get("src").expect("src").mode, 0o750);
    assert_eq!(scan.get("b.txt").expect("b").size, 2);
    assert_eq!(
        scan.get("a.txt").expect("a").ino,
        scan.get("src/a-hl.txt").expect("hl").ino
    );
    assert_eq!(scan.subtree("src").len(), 6);
}

#[test]
fn scan_many_files_quickly() {
    // 5,000 files by default (creating the fixture dominates on slow disks);
    // OSSB_SCAN_DIRS=100 gives the 20,000-file case.
    let dirs: usize = std::env::var("OSSB_SCAN_DIRS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(25);
    let t = tmp();
    for d in 0..dirs {
        let dir = t.path().join(format!("d{d:03}"));
        fs::create_dir(&dir).expect("mkdir");
        for f in 0..200 {
            fs::write(dir.join(format!("f{f:03}")), b"").expect("write");
        }
    }
    let start = std::time::Instant::now();
    let scan = scan_context(t.path(), &|_, _| false).expect("scan");
    let took = start.elapsed();
    assert_eq!(scan.files.len(), dirs * 201);
    eprintln!("scan of {} paths took {took:?}", dirs * 201);
    assert!(took.as_secs() < 10, "scan took {took:?}");
}

#[test]
fn copy_file_dir_and_wildcards() {
    let t = context();
    let scan = scan_context(t.path(), &|_, _| false).expect("scan");
    // A file to a new name, relative to WORKDIR.
    let srcs = s(&["a.txt"]);
    let es = copy_entries(&scan, &req(&srcs, "renamed")).expect("copy");
    assert_eq!(paths(&es), ["work", "work/renamed"]);
    assert_eq!(es[0].mtime, 1_700_000_000);
    assert_eq!((es[0].mode, es[0].uid), (0o755, 0));
    let f = &es[1];
    assert_eq!(f.mode, 0o644);
    assert_eq!(
        f.mtime,
        fs::metadata(t.path().join("a.txt"))
            .map(|m| std::os::unix::fs::MetadataExt::mtime(&m))
            .expect("stat")
    );
    assert!(
        matches!(&f.kind, EntryKind::File { source: Source::Path(p), size: 1 } if p == &t.path().join("a.txt"))
    );
    // A file to a directory keeps its name; a symlink source is followed.
    let srcs = s(&["alias"]);
    let es = copy_entries(&scan, &req(&srcs, "/etc/")).expect("copy");
    assert_eq!(paths(&es), ["etc", "etc/alias"]);
    assert!(matches!(&es[1].kind, EntryKind::File { size: 1, .. }));
    // A directory copies its contents; the symlink inside stays a symlink; hard links kept.
    let srcs = s(&["src"]);
    let es = copy_entries(&scan, &req(&srcs, "/app")).expect("copy");
    assert_eq!(
        paths(&es),
        [
            "app",
            "app/a-hl.txt",
            "app/evil",
            "app/lib",
            "app/lib/util.rs",
            "app/main.rs",
            "app/skip.log"
        ]
    );
    assert_eq!(
        es[0].mode, 0o750,
        "the destination takes the source directory's mode"
    );
    assert!(matches!(&es[2].kind, EntryKind::Symlink { target } if target == "../../etc/passwd"));
    // Wildcards need a directory destination when they match several files.
    let srcs = s(&["*.txt"]);
    let err = copy_entries(&scan, &req(&srcs, "/one")).expect_err("needs slash");
    assert!(err.to_string().contains("must be a directory"), "{err}");
    let es = copy_entries(&scan, &req(&srcs, "/d/")).expect("copy");
    assert_eq!(paths(&es), ["d", "d/a.txt", "d/b.txt"]);
    let srcs = s(&["a.txt", "b.txt"]);
    assert!(copy_entries(&scan, &req(&srcs, "/x")).is_err());
    let srcs = s(&["src/[lm]*"]);
    let es = copy_entries(&scan, &req(&srcs, "/w/")).expect("copy");
    assert_eq!(paths(&es), ["w", "w/main.rs", "w/util.rs"]);
    // Base image directories are not re-emitted unless --link.
    let base = |p: &str| p == "usr" || p == "usr/share";
    let srcs = s(&["a.txt"]);
    let mut r = req(&srcs, "/usr/share/doc/");
    r.base_has_dir = Some(&base);
    assert_eq!(
        paths(&copy_entries(&scan, &r).expect("copy")),
        ["usr/share/doc", "usr/share/doc/a.txt"]
    );
    r.link = true;
    assert_eq!(
        paths(&copy_entries(&scan, &r).expect("copy")),
        ["usr", "usr/share", "usr/share/doc", "usr/share/doc/a.txt"]
    );
}

#[test]
fn copy_flags_chown_chmod_exclude_parents() {
    let t = context();
    let scan = scan_context(t.path(), &|_, _| false).expect("scan");
    let srcs = s(&["src"]);
    let chmod = Chmod::parse("u=rwX,go=rX").expect("chmod");
    let exclude = |p: &str, _dir: bool| p.ends_with(".log") || p == "lib";
    let mut r = req(&srcs, "/app/");
    r.owner = Some((1000, 1001));
    r.chmod = Some(&chmod);
    r.exclude = Some(&exclude);
    let es = copy_entries(&scan, &r).expect("copy");
    assert_eq!(
        paths(&es),
        ["app", "app/a-hl.txt", "app/evil", "app/main.rs"]
    );
    let main = &es[3];
    assert_eq!((main.uid, main.gid, main.mode), (1000, 1001, 0o644));
    assert_eq!(es[0].mode, 0o755);
    assert_eq!(es[2].mode, 0o777, "symlinks keep 0777");
    let srcs = s(&["src/lib/util.rs", "a.txt"]);
    let mut r = req(&srcs, "/p");
    r.parents = true;
    let es = copy_entries(&scan, &r).expect("copy");
    assert_eq!(
        paths(&es),
        ["p", "p/a.txt", "p/src", "p/src/lib", "p/src/lib/util.rs"]
    );
    assert_eq!(
        es[2].mode, 0o750,
        "parent dirs kept by --parents take the source metadata"
    );
    let srcs = s(&["src/./lib/util.rs"]);
    let mut r = req(&srcs, "/p/");
    r.parents = true;
    assert_eq!(
        paths(&copy_entries(&scan, &r).expect("copy")),
        ["p", "p/lib", "p/lib/util.rs"]
    );
    // Hard links among copied files stay hard links, the first in layer order is the file.
    let srcs = s(&["a.txt", "src/a-hl.txt"]);
    let es = copy_entries(&scan, &req(&srcs, "/h/")).expect("copy");
    assert_eq!(paths(&es), ["h", "h/a-hl.txt", "h/a.txt"]);
    assert!(matches!(&es[1].kind, EntryKind::File { .. }), "{:?}", es[1]);
    assert!(matches!(&es[2].kind, EntryKind::Hardlink { target } if target == "h/a-hl.txt"));
}

#[test]
fn missing_and_escaping_sources_fail_clearly() {
    let t = context();
    let scan = scan_context(t.path(), &|p, _| p == "b.txt").expect("scan");
    for (src, want) in [
        (
            "missing.txt",
            "file not found in build context or excluded by .dockerignore: stat missing.txt",
        ),
        ("b.txt", "stat b.txt"),
        ("*.nothing", "*.nothing"),
        ("../outside", "outside the build context"),
        ("src/../../x", "outside the build context"),
    ] {
        let srcs = s(&[src]);
        let err = copy_entries(&scan, &req(&srcs, "/")).expect_err(src);
        assert!(err.to_string().contains(want), "{src}: {err}");
    }
    // A symlink that climbs out is followed only inside the context.
    let srcs = s(&["src/evil"]);
    let err = copy_entries(&scan, &req(&srcs, "/x")).expect_err("evil");
    assert!(matches!(err, FsError::SourceNotFound { .. }), "{err}");
}

#[test]
fn chown_names_resolve_from_the_rootfs() {
    let t = tmp();
    let etc = t.path().join("etc");
    fs::create_dir(&etc).expect("mkdir");
    fs::write(
        etc.join("passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1500::/home/app:/bin/sh\n",
    )
    .expect("write");
    fs::write(etc.join("group"), "root:x:0:\nstaff:x:50:app\n").expect("write");
    let root = Root::open_host(t.path()).expect("root");
    assert_eq!(resolve_user(Some(&root), "app").expect("app"), (1000, 1500));
    assert_eq!(
        resolve_user(Some(&root), "app:staff").expect("app"),
        (1000, 50)
    );
    assert_eq!(resolve_user(Some(&root), "app:7").expect("app"), (1000, 7));
    assert_eq!(resolve_user(None, "42").expect("num"), (42, 42));
    assert_eq!(resolve_user(None, "42:43").expect("num"), (42, 43));
    let err = resolve_user(Some(&root), "nobody").expect_err("unknown");
    assert!(
        err.to_string().contains("unable to find user `nobody`"),
        "{err}"
    );
    let err = resolve_user(Some(&root), "app:wheel").expect_err("unknown");
    assert!(err.to_string().contains("group `wheel`"), "{err}");
    assert!(resolve_user(None, "app").is_err());
    assert!(resolve_user(None, "1:").is_err());
}
