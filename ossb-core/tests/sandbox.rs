//! Real-process tests of the rootless RUN sandbox and the snapshotters.
//!
//! `harness = false`: the binary is also the sandbox helper, so `main` first calls
//! `run_init_if_requested()`. Run it as root and as an unprivileged user.

use ossb_core::exec::sandbox::{
    CancelToken, ExtraMount, ExtraMountKind, Network, RunSpec, Rung, Sandbox, SandboxError,
    SandboxOptions, SecretBytes, StepRoot,
};
use ossb_core::exec::snapshot::{self, SnapshotterChoice, SnapshotterKind};
use ossb_core::image::entry::{Entry, EntryKind, Source};
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

type R = ossb_testkit::checks::CheckResult;
type Check = fn(&T) -> R;

const APPLETS: &[&str] = &[
    "sh", "ls", "echo", "cat", "rm", "mkdir", "touch", "mv", "ln", "chown", "chmod", "sleep",
    "hostname", "id", "true", "false", "grep", "wc", "stat", "printf", "test", "cp", "sort",
    "chgrp", "awk", "yes", "head", "xargs", "tr", "cut",
];

fn main() {
    ossb_core::exec::sandbox::run_init_if_requested();
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let base = tempfile::Builder::new()
        .prefix("ossb-sandbox-test-")
        .tempdir()
        .expect("temp dir");
    let t = T {
        base: base.path().to_path_buf(),
        sandbox: Sandbox::new(SandboxOptions {
            temp_dir: Some(base.path().join("steps")),
            ..Default::default()
        }),
    };
    std::fs::create_dir(base.path().join("steps")).expect("steps dir");
    println!(
        "running as uid {}, id map {:?}",
        rustix::process::geteuid().as_raw(),
        t.sandbox.id_map()
    );
    let checks: Vec<(&str, Check)> = vec![
        ("echo output is captured", echo_output),
        ("exit status 3 with last lines", exit_status),
        ("step is pid 1", pid_one),
        ("fresh /proc", fresh_proc),
        ("hostname and /etc files", hostname),
        ("network none has only lo", network_none),
        ("no host fd leaks", no_fd_leak),
        ("cancel kills everything", cancel),
        ("user switch", user_switch),
        ("overlay snapshotter entries and commit", |t| {
            snapshot_scenario(t, SnapshotterKind::Overlay)
        }),
        ("scan snapshotter entries and commit", |t| {
            snapshot_scenario(t, SnapshotterKind::Scan)
        }),
        ("overlay xattr whiteouts and opaque dirs", xattr_forms),
        ("ownership emulation with the overlay snapshotter", |t| {
            owner_emulation(t, SnapshotterKind::Overlay)
        }),
        ("ownership emulation with the scan snapshotter", |t| {
            owner_emulation(t, SnapshotterKind::Scan)
        }),
        ("cost of an intercepted stat", owner_cost),
        ("overlay: RUN --mount leaves nothing in the diff", |t| {
            extra_mounts(t, SnapshotterKind::Overlay)
        }),
        ("scan: RUN --mount leaves nothing in the diff", |t| {
            extra_mounts(t, SnapshotterKind::Scan)
        }),
        (
            "chroot rung: /dev and /etc stubs leave the diff unchanged",
            chroot_rung,
        ),
        ("reduced rung: the existing /proc", reduced_rung),
        ("doctor", doctor),
        ("per-step overhead", overhead),
    ];
    let ok = ossb_testkit::checks::run_checks(
        &checks,
        &t,
        filter.as_deref(),
        &base.path().join("steps"),
    );
    drop(base);
    std::process::exit(if ok { 0 } else { 1 });
}

struct T {
    base: PathBuf,
    sandbox: Sandbox,
}

impl T {
    /// A fresh busybox rootfs.
    fn rootfs(&self, name: &str) -> PathBuf {
        let root = self.base.join(name);
        std::fs::create_dir_all(root.join("bin")).expect("bin");
        std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("copy busybox");
        for a in APPLETS {
            symlink("busybox", root.join("bin").join(a)).expect("applet link");
        }
        std::fs::create_dir_all(root.join("etc")).expect("etc");
        std::fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n",
        )
        .expect("passwd");
        std::fs::create_dir_all(root.join("tmp")).expect("tmp");
        root
    }

    fn run(&self, root: &StepRoot, spec: &RunSpec) -> Result<Vec<String>, SandboxError> {
        let mut lines = Vec::new();
        let cancel = CancelToken::new().expect("token");
        self.sandbox
            .run(root, spec, &cancel, &mut |l| lines.push(l.to_string()))?;
        Ok(lines)
    }

    fn sh(&self, root: &Path, script: &str) -> Result<Vec<String>, String> {
        self.run(&StepRoot::Dir(root.to_path_buf()), &RunSpec::shell(script))
            .map_err(|e| e.to_string())
    }
}

fn expect_eq<A: PartialEq + std::fmt::Debug>(got: A, want: A) -> R {
    if got == want {
        Ok(())
    } else {
        Err(format!("got {got:?}, want {want:?}"))
    }
}

fn echo_output(t: &T) -> R {
    let root = t.rootfs("echo");
    expect_eq(
        t.sh(&root, "echo hello; echo world >&2")?,
        vec!["hello".to_string(), "world".to_string()],
    )
}

fn exit_status(t: &T) -> R {
    let root = t.rootfs("exit");
    match t.run(
        &StepRoot::Dir(root),
        &RunSpec::shell("echo one; echo two; exit 3"),
    ) {
        Err(SandboxError::StepFailed {
            code: Some(3),
            last_lines,
            ..
        }) => expect_eq(last_lines, vec!["one".to_string(), "two".to_string()]),
        other => Err(format!("unexpected {other:?}")),
    }
}

fn pid_one(t: &T) -> R {
    let root = t.rootfs("pid");
    expect_eq(t.sh(&root, "echo $$")?, vec!["1".to_string()])
}

fn fresh_proc(t: &T) -> R {
    let root = t.rootfs("proc");
    // Only the shell itself (pid 1) is visible: the glob and echo are shell builtins.
    let out = t.sh(&root, "echo /proc/[0-9]*")?;
    expect_eq(out, vec!["/proc/1".to_string()])
}

fn hostname(t: &T) -> R {
    let root = t.rootfs("host");
    let out = t.sh(
        &root,
        "hostname; cat /etc/hostname; grep -c localhost /etc/hosts",
    )?;
    expect_eq(
        out,
        vec!["ossb".to_string(), "ossb".to_string(), "2".to_string()],
    )?;
    // The bind-mounted files left nothing in the rootfs.
    expect_eq(
        root.join("etc/hosts").exists() || root.join("proc").exists() || root.join("dev").exists(),
        false,
    )
}

fn network_none(t: &T) -> R {
    let root = t.rootfs("net");
    let mut spec = RunSpec::shell("cat /proc/net/dev | grep : | cut -d: -f1 | tr -d ' '");
    spec.argv[2] = "grep : /proc/net/dev | while read a b; do echo ${a%:}; done".into();
    spec.network = Network::None;
    let out = t
        .run(&StepRoot::Dir(root), &spec)
        .map_err(|e| e.to_string())?;
    expect_eq(out, vec!["lo".to_string()])
}

fn no_fd_leak(t: &T) -> R {
    let root = t.rootfs("fd");
    // A host fd without O_CLOEXEC must not reach the step.
    let leak = std::fs::File::open("/etc/passwd").map_err(|e| e.to_string())?;
    let raw = std::os::fd::AsRawFd::as_raw_fd(&leak);
    rustix::io::fcntl_setfd(&leak, rustix::io::FdFlags::empty()).map_err(|e| e.to_string())?;
    let out = t.sh(&root, "ls /proc/self/fd")?;
    drop(leak);
    expect_eq(
        out,
        vec![
            "0".to_string(),
            "1".to_string(),
            "2".to_string(),
            "3".to_string(),
        ],
    )
    .map_err(|e| format!("{e} (leaked host fd was {raw})"))
}

fn cancel(t: &T) -> R {
    let root = t.rootfs("cancel");
    let token = CancelToken::new().map_err(|e| e.to_string())?;
    let t2 = token.clone();
    let start = Instant::now();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        t2.cancel();
    });
    let mut pid = None;
    let res = t.sandbox.run(
        &StepRoot::Dir(root),
        &RunSpec::shell("sleep 1000 & echo $!; sleep 1000"),
        &token,
        &mut |l| pid = l.parse::<u32>().ok(),
    );
    canceller.join().map_err(|_| "canceller panicked")?;
    if !matches!(res, Err(SandboxError::Cancelled)) {
        return Err(format!("unexpected {res:?}"));
    }
    if start.elapsed() > Duration::from_secs(5) {
        return Err("cancel took too long".into());
    }
    // No `sleep 1000` of ours survives anywhere on the host.
    let me = rustix::process::geteuid().as_raw();
    for e in std::fs::read_dir("/proc")
        .map_err(|e| e.to_string())?
        .flatten()
    {
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        if cmd == b"sleep\x001000\x00" {
            let st = std::fs::metadata(e.path()).map_err(|e| e.to_string())?;
            if std::os::unix::fs::MetadataExt::uid(&st) == me || me == 0 {
                return Err(format!(
                    "process {} survived (step pid {pid:?})",
                    e.file_name().to_string_lossy()
                ));
            }
        }
    }
    Ok(())
}

fn user_switch(t: &T) -> R {
    let root = t.rootfs("user");
    let mut spec = RunSpec::shell("id -u; id -g");
    spec.uid = 1000;
    spec.gid = 1000;
    let mut lines = Vec::new();
    let token = CancelToken::new().map_err(|e| e.to_string())?;
    let report = t
        .sandbox
        .run(&StepRoot::Dir(root), &spec, &token, &mut |l| {
            lines.push(l.to_string())
        })
        .map_err(|e| e.to_string())?;
    if t.sandbox.id_map().is_single() {
        expect_eq(lines, vec!["0".to_string(), "0".to_string()])?;
        expect_eq(report.warnings.len(), 2)
    } else {
        expect_eq(lines, vec!["1000".to_string(), "1000".to_string()])
    }
}

fn summary(entries: &[Entry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| match &e.kind {
            EntryKind::File { size, .. } => format!("{} file {size} {}:{}", e.path, e.uid, e.gid),
            EntryKind::Dir => format!("{} dir", e.path),
            EntryKind::Hardlink { target } => format!("{} hardlink {target}", e.path),
            EntryKind::Symlink { target } => format!("{} symlink {target}", e.path),
            EntryKind::Whiteout => format!("{} whiteout", e.path),
            EntryKind::OpaqueDir => format!("{} opaque", e.path),
            other => format!("{} {other:?}", e.path),
        })
        .collect()
}

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, text).expect("write");
}

/// Every path under `root` except the busybox tree, with a content summary.
fn tree(root: &Path) -> Vec<String> {
    fn walk(dir: &Path, rel: &str, out: &mut Vec<String>) {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .expect("read_dir")
            .flatten()
            .map(|e| e.file_name().into_string().expect("utf8"))
            .collect();
        names.sort();
        for n in names {
            let r = if rel.is_empty() {
                n.clone()
            } else {
                format!("{rel}/{n}")
            };
            if r == "bin" || r == "etc" || r == "tmp" {
                continue;
            }
            let p = dir.join(&n);
            let m = std::fs::symlink_metadata(&p).expect("lstat");
            if m.is_dir() {
                out.push(format!("{r}/"));
                walk(&p, &r, out);
            } else {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                out.push(format!("{r} {text:?} nlink={}", m.nlink()));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, "", &mut out);
    out
}

fn snapshot_scenario(t: &T, kind: SnapshotterKind) -> R {
    let name = format!("snap-{kind:?}");
    let root = t.rootfs(&name);
    write(&root, "data/keep", "keep\n");
    write(&root, "data/gone", "gone\n");
    write(&root, "data/append", "12345");
    write(&root, "olddir/a", "a");
    write(&root, "olddir/b", "b");
    write(&root, "gonedir/sub/f", "f");
    write(&root, "mv_src", "m\n");
    let multi = !t.sandbox.id_map().is_single();
    let scratch = t.base.join(format!("scratch-{kind:?}"));
    let mut snap = snapshot::open(
        SnapshotterChoice::Force(kind),
        root.clone(),
        scratch.clone(),
        t.sandbox.id_map().clone(),
        Path::new("/proc/self/exe"),
    )
    .map_err(|e| e.to_string())?;
    let step = snap.prepare().map_err(|e| e.to_string())?;
    let chown = if multi {
        "chown 1000:1000 data/new; "
    } else {
        ""
    };
    let script = format!(
        "cd / && echo new > data/new && touch -d '2020-01-01 00:00:00' data/new && rm data/gone && echo 678 >> data/append \
         && rm -rf olddir && mkdir olddir && touch olddir/x && rm -rf gonedir && mv mv_src mv_dst && ln data/keep data/keep_link && {chown} true"
    );
    t.run(&step, &RunSpec::shell(&script))
        .map_err(|e| e.to_string())?;
    let diff = snap.diff().map_err(|e| e.to_string())?;
    let owner = if multi { "1000:1000" } else { "0:0" };
    let want = vec![
        "data dir".to_string(),
        "data/append file 9 0:0".into(),
        "data/gone whiteout".into(),
        "data/keep file 5 0:0".into(),
        "data/keep_link hardlink data/keep".into(),
        format!("data/new file 4 {owner}"),
        "gonedir whiteout".into(),
        "mv_dst file 2 0:0".into(),
        "mv_src whiteout".into(),
        "olddir dir".into(),
        "olddir opaque".into(),
        "olddir/x file 0 0:0".into(),
    ];
    expect_eq(summary(&diff.entries), want).map_err(|e| format!("entries: {e}"))?;
    let new = diff
        .entries
        .iter()
        .find(|e| e.path == "data/new")
        .ok_or("no data/new")?;
    expect_eq(new.mtime, 1_577_836_800)?;
    if diff
        .entries
        .iter()
        .any(|e| e.xattrs.keys().any(|k| k.contains("overlay")))
    {
        return Err("overlay xattrs leaked into entries".into());
    }
    // The build commits this way and tars the layer afterwards, from where the files are now.
    let mut entries = diff.entries.clone();
    let leftover = snap
        .commit_detached(&mut entries)
        .map_err(|e| e.to_string())?;
    for e in &entries {
        if let EntryKind::File {
            source: Source::Path(p),
            size,
        } = &e.kind
        {
            let len = std::fs::metadata(p).map_err(|err| format!("{}: {err}", p.display()))?;
            expect_eq(len.len(), *size).map_err(|err| format!("{}: {err}", e.path))?;
            if snap.pipelined() && !p.starts_with(&root) {
                return Err(format!("{} still points into the step's scratch", e.path));
            }
        }
    }
    drop(leftover);
    let want_tree = vec![
        "data/".to_string(),
        "data/append \"12345678\\n\" nlink=1".into(),
        "data/keep \"keep\\n\" nlink=2".into(),
        "data/keep_link \"keep\\n\" nlink=2".into(),
        "data/new \"new\\n\" nlink=1".into(),
        "mv_dst \"m\\n\" nlink=1".into(),
        "olddir/".into(),
        "olddir/x \"\" nlink=1".into(),
    ];
    expect_eq(tree(&root), want_tree).map_err(|e| format!("lower after commit: {e}"))?;
    let xattrs = ossb_core::exec::snapshot::diff_upper(&root.join("olddir"), t.sandbox.id_map())
        .map_err(|e| e.to_string())?;
    drop(xattrs);
    if let Ok(v) = rustix::fs::lgetxattr(root.join("olddir"), "user.overlay.opaque", &mut [0u8; 8])
    {
        return Err(format!("opaque xattr left on the lower dir ({v} bytes)"));
    }
    // A second step sees the committed tree, and the scratch dir is empty again.
    let step = snap.prepare().map_err(|e| e.to_string())?;
    expect_eq(
        t.run(&step, &RunSpec::shell("cat /data/append /mv_dst"))
            .map_err(|e| e.to_string())?,
        vec!["12345678".to_string(), "m".to_string()],
    )?;
    let diff = snap.diff().map_err(|e| e.to_string())?;
    expect_eq(summary(&diff.entries), Vec::<String>::new())
        .map_err(|e| format!("no-op step: {e}"))?;
    snap.commit().map_err(|e| e.to_string())?;
    drop(snap);
    let left: Vec<_> = std::fs::read_dir(&scratch)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    expect_eq(left, Vec::new()).map_err(|e| format!("scratch leftovers: {e}"))
}

fn xattr_forms(t: &T) -> R {
    let upper = t.base.join("handmade-upper");
    std::fs::create_dir_all(upper.join("d")).map_err(|e| e.to_string())?;
    std::fs::write(upper.join("wh"), b"").map_err(|e| e.to_string())?;
    std::fs::write(upper.join("d/f"), b"x").map_err(|e| e.to_string())?;
    let set = |p: &str, k: &str, v: &[u8]| {
        rustix::fs::lsetxattr(upper.join(p), k, v, rustix::fs::XattrFlags::empty())
            .map_err(|e| format!("setxattr {k}: {e}"))
    };
    set("wh", "user.overlay.whiteout", b"y")?;
    set("d", "user.overlay.opaque", b"y")?;
    set("d/f", "user.keep", b"1")?;
    let mut want = vec!["d dir", "d opaque", "d/f file 1 0:0", "wh whiteout"];
    if rustix::process::geteuid().is_root() {
        std::fs::create_dir_all(upper.join("t")).map_err(|e| e.to_string())?;
        set("t", "trusted.overlay.opaque", b"y")?;
        rustix::fs::mknodat(
            rustix::fs::CWD,
            upper.join("c"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0),
            0,
        )
        .map_err(|e| e.to_string())?;
        std::fs::write(upper.join("tw"), b"").map_err(|e| e.to_string())?;
        set("tw", "trusted.overlay.whiteout", b"y")?;
        want = vec![
            "c whiteout",
            "d dir",
            "d opaque",
            "d/f file 1 0:0",
            "t dir",
            "t opaque",
            "tw whiteout",
            "wh whiteout",
        ];
    }
    let diff = ossb_core::exec::snapshot::diff_upper(&upper, t.sandbox.id_map())
        .map_err(|e| e.to_string())?;
    expect_eq(
        summary(&diff.entries),
        want.iter().map(|s| s.to_string()).collect(),
    )?;
    let f = diff
        .entries
        .iter()
        .find(|e| e.path == "d/f")
        .ok_or("no d/f")?;
    expect_eq(
        f.xattrs.keys().cloned().collect::<Vec<_>>(),
        vec!["user.keep".to_string()],
    )?;
    let d = diff.entries.iter().find(|e| e.path == "d").ok_or("no d")?;
    expect_eq(d.xattrs.len(), 0)
}

/// A step on the chroot rung (root only) on a rootfs without `/dev` and with the image's own
/// `/etc/hosts`: it gets device nodes and the missing `/etc` files, no `/proc`, and the diff
/// has only what the step itself did.
fn chroot_rung(t: &T) -> R {
    if !rustix::process::geteuid().is_root() {
        println!("     skipped: the chroot rung needs uid 0");
        return Ok(());
    }
    let root = t.rootfs("chroot");
    write(&root, "etc/hosts", "127.0.0.1 image-host\n");
    let sandbox = Sandbox::new(SandboxOptions {
        temp_dir: Some(t.base.join("steps")),
        rung: Rung::Chroot,
        ..Default::default()
    });
    let mut snap = snapshot::open(
        SnapshotterChoice::Force(SnapshotterKind::Scan),
        root.clone(),
        t.base.join("scratch-chroot"),
        sandbox.id_map().clone(),
        Path::new("/proc/self/exe"),
    )
    .map_err(|e| e.to_string())?;
    let step = snap.prepare().map_err(|e| e.to_string())?;
    let script = "cat /etc/hosts; grep -q nameserver /etc/resolv.conf && echo resolv; \
                  echo x > /dev/null && head -c 4 /dev/zero | wc -c; \
                  test -e /proc/self || echo noproc; echo changed > /etc/hostname; \
                  echo made > /made";
    let mut lines = Vec::new();
    let cancel = CancelToken::new().map_err(|e| e.to_string())?;
    sandbox
        .run(&step, &RunSpec::shell(script), &cancel, &mut |l| {
            lines.push(l.trim().to_string())
        })
        .map_err(|e| e.to_string())?;
    expect_eq(
        lines,
        vec![
            "127.0.0.1 image-host".to_string(),
            "resolv".into(),
            "4".into(),
            "noproc".into(),
        ],
    )?;
    let diff = snap.diff().map_err(|e| e.to_string())?;
    let changed: Vec<String> = summary(&diff.entries)
        .into_iter()
        .filter(|e| !e.starts_with(". ") && !e.starts_with("/ "))
        .collect();
    expect_eq(changed, vec!["made file 5 0:0".to_string()])?;
    if root.join("dev").exists() || root.join("etc/hostname").exists() {
        return Err("a stub stayed in the rootfs".into());
    }
    expect_eq(
        std::fs::read_to_string(root.join("etc/hosts")).map_err(|e| e.to_string())?,
        "127.0.0.1 image-host\n".to_string(),
    )
}

/// The reduced rung binds the existing `/proc`: the step is PID 1 of its namespace but sees
/// the host's processes (this test's own pid among them).
fn reduced_rung(t: &T) -> R {
    let root = t.rootfs("reduced");
    let sandbox = Sandbox::new(SandboxOptions {
        temp_dir: Some(t.base.join("steps")),
        rung: Rung::Reduced,
        ..Default::default()
    });
    let me = std::process::id();
    let mut lines = Vec::new();
    let cancel = CancelToken::new().map_err(|e| e.to_string())?;
    sandbox
        .run(
            &StepRoot::Dir(root),
            &RunSpec::shell(&format!("echo $$; test -d /proc/{me} && echo host-proc")),
            &cancel,
            &mut |l| lines.push(l.trim().to_string()),
        )
        .map_err(|e| e.to_string())?;
    expect_eq(lines, vec!["1".to_string(), "host-proc".into()])
}

fn doctor(_t: &T) -> R {
    let report = ossb_core::exec::doctor::diagnose(Path::new("/proc/self/exe"));
    println!("{report}");
    serde_json::from_str::<ossb_core::exec::doctor::DoctorReport>(&report.to_json())
        .map_err(|e| e.to_string())?;
    if !report.user_namespace.ok || !report.procfs.ok || !report.overlay_userxattr.ok {
        return Err("this host supports all probes".into());
    }
    expect_eq(
        report.best_sandbox().map_err(|e| e.to_string())?,
        ossb_core::exec::doctor::SandboxChoice::Overlay,
    )
}

fn overhead(t: &T) -> R {
    // (rung, snapshotter): the chroot rung only as root, and only with the scan snapshotter.
    let mut cases = vec![
        (Rung::Full, SnapshotterKind::Overlay),
        (Rung::Full, SnapshotterKind::Scan),
        (Rung::Reduced, SnapshotterKind::Overlay),
        (Rung::Reduced, SnapshotterKind::Scan),
    ];
    if rustix::process::geteuid().is_root() {
        cases.push((Rung::Chroot, SnapshotterKind::Scan));
    }
    for (rung, kind) in cases {
        let sandbox = Sandbox::new(SandboxOptions {
            temp_dir: Some(t.base.join("steps")),
            rung,
            ..Default::default()
        });
        let root = t.rootfs(&format!("bench-{rung}-{kind:?}"));
        let mut snap = snapshot::open(
            SnapshotterChoice::Force(kind),
            root,
            t.base.join(format!("bench-scratch-{rung}-{kind:?}")),
            sandbox.id_map().clone(),
            Path::new("/proc/self/exe"),
        )
        .map_err(|e| e.to_string())?;
        let mut times = Vec::new();
        let spec = RunSpec {
            argv: vec!["true".into()],
            ..RunSpec::shell("")
        };
        let cancel = CancelToken::new().map_err(|e| e.to_string())?;
        for _ in 0..20 {
            let start = Instant::now();
            let step = snap.prepare().map_err(|e| e.to_string())?;
            sandbox
                .run(&step, &spec, &cancel, &mut |_| {})
                .map_err(|e| e.to_string())?;
            let diff = snap.diff().map_err(|e| e.to_string())?;
            snap.commit().map_err(|e| e.to_string())?;
            times.push(start.elapsed());
            expect_eq(diff.entries.len(), 0)?;
        }
        times.sort();
        println!(
            "     fixed cost of a `true` step on the {rung} rung with the {kind:?} snapshotter: median {:.1} ms (min {:.1}, max {:.1})",
            times[10].as_secs_f64() * 1e3,
            times[0].as_secs_f64() * 1e3,
            times[19].as_secs_f64() * 1e3
        );
    }
    Ok(())
}

/// `path kind uid:gid` of every entry.
fn owners(entries: &[Entry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| {
            let kind = match &e.kind {
                EntryKind::File { .. } => "file",
                EntryKind::Dir => "dir",
                EntryKind::Symlink { .. } => "symlink",
                EntryKind::Whiteout => "whiteout",
                EntryKind::OpaqueDir => "opaque",
                _ => "other",
            };
            format!("{} {kind} {}:{}", e.path, e.uid, e.gid)
        })
        .collect()
}

/// `chown` to ids the namespace does not map (ownership emulation under a single-id mapping;
/// real chowns with a full mapping): the step sees the owners, the diff records them, the
/// ownership xattr stays out of the layer and a later step still sees them.
fn owner_emulation(t: &T, kind: SnapshotterKind) -> R {
    let root = t.rootfs(&format!("owners-{kind:?}"));
    write(&root, "d/f", "f\n");
    write(&root, "d/sub/g", "g\n");
    write(&root, "h", "h\n");
    let single = t.sandbox.id_map().is_single();
    let mut snap = snapshot::open(
        SnapshotterChoice::Force(kind),
        root.clone(),
        t.base.join(format!("owners-scratch-{kind:?}")),
        t.sandbox.id_map().clone(),
        Path::new("/proc/self/exe"),
    )
    .map_err(|e| e.to_string())?;
    let step = snap.prepare().map_err(|e| e.to_string())?;
    let script = "chown -R 1000:1000 /d && stat -c '%u:%g' /d/f /d && chown 5:6 /h && chgrp 7 /h \
                  && stat -c '%u:%g' /h && ln -s /h /d/l && chown -h 9:8 /d/l && stat -c '%u:%g' /d/l \
                  && stat -L -c '%u:%g' /d/l && touch /n && chown 3:3 /n && chown 0:0 /n && stat -c '%u:%g' /n \
                  && cd /d && stat -c '%u:%g' f sub && chmod 4755 /h && chown :7 /h && stat -c '%a' /h";
    let cancel = CancelToken::new().map_err(|e| e.to_string())?;
    let mut lines = Vec::new();
    let report = t
        .sandbox
        .run(&step, &RunSpec::shell(script), &cancel, &mut |l| {
            lines.push(l.to_string())
        })
        .map_err(|e| e.to_string())?;
    expect_eq(
        lines,
        [
            "1000:1000",
            "1000:1000",
            "5:7",
            "9:8",
            "5:7",
            "0:0",
            "1000:1000",
            "1000:1000",
            "755",
        ]
        .map(String::from)
        .to_vec(),
    )
    .map_err(|e| format!("step output: {e}"))?;
    match (single, report.owner_calls) {
        (true, Some((n, e))) if n > 0 && e > 0 => {}
        (false, None) => {}
        (s, calls) => return Err(format!("single={s} but intercepted calls {calls:?}")),
    }
    let mut diff = snap.diff().map_err(|e| e.to_string())?;
    diff.apply_link_owners(&report.link_owners);
    let want = [
        "d dir 1000:1000",
        "d/f file 1000:1000",
        "d/l symlink 9:8",
        "d/sub dir 1000:1000",
        "d/sub/g file 1000:1000",
        "h file 5:7",
        "n file 0:0",
    ];
    expect_eq(owners(&diff.entries), want.map(String::from).to_vec())
        .map_err(|e| format!("entries: {e}"))?;
    if let Some(e) = diff
        .entries
        .iter()
        .find(|e| e.xattrs.contains_key("user.rootlesscontainers"))
    {
        return Err(format!(
            "{}: the ownership xattr leaked into the layer",
            e.path
        ));
    }
    snap.commit().map_err(|e| e.to_string())?;
    // A later step still sees the owners; its no-op diff is empty.
    let step = snap.prepare().map_err(|e| e.to_string())?;
    expect_eq(
        t.run(
            &step,
            &RunSpec::shell(
                "stat -c '%u:%g' /d/f /d/sub /d /h; ls -ln /d/f | awk '{print $3, $4}'",
            ),
        )
        .map_err(|e| e.to_string())?,
        ["1000:1000", "1000:1000", "1000:1000", "5:7", "1000 1000"]
            .map(String::from)
            .to_vec(),
    )
    .map_err(|e| format!("later step: {e}"))?;
    let diff = snap.diff().map_err(|e| e.to_string())?;
    expect_eq(owners(&diff.entries), Vec::<String>::new()).map_err(|e| format!("no-op: {e}"))?;
    snap.commit().map_err(|e| e.to_string())?;
    // Appending to a chowned file in a later step keeps its owner in the layer.
    let step = snap.prepare().map_err(|e| e.to_string())?;
    t.run(&step, &RunSpec::shell("echo more >> /d/f"))
        .map_err(|e| e.to_string())?;
    let diff = snap.diff().map_err(|e| e.to_string())?;
    expect_eq(
        owners(&diff.entries),
        ["d dir 1000:1000", "d/f file 1000:1000"]
            .map(String::from)
            .to_vec(),
    )
    .map_err(|e| format!("append step: {e}"))?;
    snap.commit().map_err(|e| e.to_string())
}

/// Cost of an intercepted stat: `stat` of a file without a record (the kernel runs it after
/// the supervisor looked) and with one (the supervisor answers), against no interception.
fn owner_cost(t: &T) -> R {
    let root = t.rootfs("owner-cost");
    write(&root, "plain", "p");
    write(&root, "owned", "o");
    let n = 50000;
    // busybox `stat` stats each operand once; xargs passes thousands per exec, so the time is
    // mostly the stat calls.
    let script = format!(
        "chown 1000:1000 /owned; yes /plain | head -n {n} > /tmp/p; yes /owned | head -n {n} > /tmp/o; \
         t() {{ tr -d . < /proc/uptime | cut -d' ' -f1; }}; \
         a=$(t); xargs stat -c %u < /tmp/p >/dev/null; b=$(t); \
         xargs stat -c %u < /tmp/o >/dev/null; c=$(t); echo $((b-a)) $((c-b))"
    );
    let step = StepRoot::Dir(root.clone());
    let cancel = CancelToken::new().map_err(|e| e.to_string())?;
    let mut lines = Vec::new();
    let report = t
        .sandbox
        .run(&step, &RunSpec::shell(&script), &cancel, &mut |l| {
            lines.push(l.to_string())
        })
        .map_err(|e| e.to_string())?;
    let nums: Vec<f64> = lines
        .last()
        .ok_or("no output")?
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    if nums.len() != 2 {
        return Err(format!("bad output {lines:?}"));
    }
    println!(
        "     stat of a file, {n} times: {:.2} µs per call without a record, {:.2} µs with one \
         (interception {}; {:?} calls intercepted/answered)",
        nums[0] * 1e4 / n as f64,
        nums[1] * 1e4 / n as f64,
        if report.owner_calls.is_some() {
            "on"
        } else {
            "off"
        },
        report.owner_calls
    );
    Ok(())
}

/// Binds (read-only dir, file), a tmpfs and a secret file: readable in the step, and neither
/// their contents nor their mount points reach the diff or the rootfs.
fn extra_mounts(t: &T, kind: SnapshotterKind) -> R {
    let root = t.rootfs(&format!("mounts-{kind:?}"));
    let src = t.base.join(format!("mount-src-{kind:?}"));
    write(&src, "dir/in.txt", "from host\n");
    write(&src, "bound.conf", "conf\n");
    let mut snap = snapshot::open(
        SnapshotterChoice::Force(kind),
        root.clone(),
        t.base.join(format!("mounts-scratch-{kind:?}")),
        t.sandbox.id_map().clone(),
        Path::new("/proc/self/exe"),
    )
    .map_err(|e| e.to_string())?;
    let step = snap.prepare().map_err(|e| e.to_string())?;
    let path = |p: &Path| p.to_str().map(str::to_string).ok_or("utf8");
    let mut spec = RunSpec::shell(
        "cat /data/src/in.txt > /out && ! touch /data/src/new 2>/dev/null && echo x > /scratch/t/f \
         && cat /run/secrets/s >> /out && stat -c %a /run/secrets/s >> /out && ! (echo y >> /run/secrets/s) 2>/dev/null \
         && cat /etc/bound.conf >> /out",
    );
    spec.mounts = vec![
        ExtraMount {
            target: "/data/src".into(),
            kind: ExtraMountKind::Bind {
                source: path(&src.join("dir"))?,
                read_only: true,
                init_owner: None,
            },
        },
        ExtraMount {
            target: "/scratch/t".into(),
            kind: ExtraMountKind::Tmpfs {
                size: Some(1 << 20),
            },
        },
        ExtraMount {
            target: "/run/secrets/s".into(),
            kind: ExtraMountKind::File {
                data: SecretBytes(b"s3cret\n".to_vec()),
                uid: 0,
                gid: 0,
                mode: 0o400,
            },
        },
        ExtraMount {
            target: "/etc/bound.conf".into(),
            kind: ExtraMountKind::Bind {
                source: path(&src.join("bound.conf"))?,
                read_only: true,
                init_owner: None,
            },
        },
    ];
    let lines = t.run(&step, &spec).map_err(|e| e.to_string())?;
    let diff = snap.diff().map_err(|e| e.to_string())?;
    let paths: Vec<&str> = diff.entries.iter().map(|e| e.path.as_str()).collect();
    expect_eq(paths, vec!["out"]).map_err(|e| format!("{e}; output {lines:?}"))?;
    snap.commit().map_err(|e| e.to_string())?;
    expect_eq(
        std::fs::read_to_string(root.join("out")).map_err(|e| e.to_string())?,
        "from host\ns3cret\n400\nconf\n".to_string(),
    )?;
    for gone in ["data", "scratch", "run", "etc/bound.conf"] {
        if root.join(gone).symlink_metadata().is_ok() {
            return Err(format!("mount point /{gone} left in the rootfs"));
        }
    }
    if src.join("dir/new").exists() {
        return Err("the read-only bind was written".into());
    }
    Ok(())
}
