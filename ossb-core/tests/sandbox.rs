//! Real-process tests of the rootless RUN sandbox and the snapshotters.
//!
//! `harness = false`: the binary is also the sandbox helper, so `main` first calls
//! `run_init_if_requested()`. Run it as root and as an unprivileged user.

use ossb_core::exec::sandbox::{CancelToken, Network, RunSpec, Sandbox, SandboxError, SandboxOptions, StepRoot};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

type R = Result<(), String>;

const APPLETS: &[&str] = &[
    "sh", "ls", "echo", "cat", "rm", "mkdir", "touch", "mv", "ln", "chown", "chmod", "sleep", "hostname", "id",
    "true", "false", "grep", "wc", "stat", "printf", "test", "cp", "sort",
];

fn main() {
    ossb_core::exec::sandbox::run_init_if_requested();
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let base = tempfile::Builder::new().prefix("ossb-sandbox-test-").tempdir().expect("temp dir");
    let t = T { base: base.path().to_path_buf(), sandbox: Sandbox::new(SandboxOptions { temp_dir: Some(base.path().join("steps")), ..Default::default() }) };
    std::fs::create_dir(base.path().join("steps")).expect("steps dir");
    println!("running as uid {}, id map {:?}", rustix::process::geteuid().as_raw(), t.sandbox.id_map());
    let checks: Vec<(&str, fn(&T) -> R)> = vec![
        ("echo output is captured", echo_output),
        ("exit status 3 with last lines", exit_status),
        ("step is pid 1", pid_one),
        ("fresh /proc", fresh_proc),
        ("hostname and /etc files", hostname),
        ("network none has only lo", network_none),
        ("no host fd leaks", no_fd_leak),
        ("cancel kills everything", cancel),
        ("user switch", user_switch),
    ];
    let (mut passed, mut failed) = (0, 0);
    for (name, f) in checks {
        if filter.as_deref().is_some_and(|p| !name.contains(p)) {
            continue;
        }
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&t))).unwrap_or_else(|_| Err("panicked".into()));
        match res {
            Ok(()) => {
                passed += 1;
                println!("ok   {name}");
            }
            Err(e) => {
                failed += 1;
                println!("FAIL {name}: {e}");
            }
        }
    }
    let leftovers: Vec<_> = std::fs::read_dir(base.path().join("steps")).map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect()).unwrap_or_default();
    if leftovers.is_empty() {
        passed += 1;
        println!("ok   no step temp dir left");
    } else {
        failed += 1;
        println!("FAIL step temp dirs left: {leftovers:?}");
    }
    println!("{passed} passed, {failed} failed");
    drop(base);
    std::process::exit(if failed == 0 { 0 } else { 1 });
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
        std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n").expect("passwd");
        std::fs::create_dir_all(root.join("tmp")).expect("tmp");
        root
    }

    fn run(&self, root: &StepRoot, spec: &RunSpec) -> Result<Vec<String>, SandboxError> {
        let mut lines = Vec::new();
        let cancel = CancelToken::new().expect("token");
        self.sandbox.run(root, spec, &cancel, &mut |l| lines.push(l.to_string()))?;
        Ok(lines)
    }

    fn sh(&self, root: &Path, script: &str) -> Result<Vec<String>, String> {
        self.run(&StepRoot::Dir(root.to_path_buf()), &RunSpec::shell(script)).map_err(|e| e.to_string())
    }
}

fn expect_eq<A: PartialEq + std::fmt::Debug>(got: A, want: A) -> R {
    if got == want { Ok(()) } else { Err(format!("got {got:?}, want {want:?}")) }
}

fn echo_output(t: &T) -> R {
    let root = t.rootfs("echo");
    expect_eq(t.sh(&root, "echo hello; echo world >&2")?, vec!["hello".to_string(), "world".to_string()])
}

fn exit_status(t: &T) -> R {
    let root = t.rootfs("exit");
    match t.run(&StepRoot::Dir(root), &RunSpec::shell("echo one; echo two; exit 3")) {
        Err(SandboxError::StepFailed { code: Some(3), last_lines, .. }) => expect_eq(last_lines, vec!["one".to_string(), "two".to_string()]),
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
    let out = t.sh(&root, "hostname; cat /etc/hostname; grep -c localhost /etc/hosts")?;
    expect_eq(out, vec!["ossb".to_string(), "ossb".to_string(), "2".to_string()])?;
    // The bind-mounted files left nothing in the rootfs.
    expect_eq(root.join("etc/hosts").exists() || root.join("proc").exists() || root.join("dev").exists(), false)
}

fn network_none(t: &T) -> R {
    let root = t.rootfs("net");
    let mut spec = RunSpec::shell("cat /proc/net/dev | grep : | cut -d: -f1 | tr -d ' '");
    spec.argv[2] = "grep : /proc/net/dev | while read a b; do echo ${a%:}; done".into();
    spec.network = Network::None;
    let out = t.run(&StepRoot::Dir(root), &spec).map_err(|e| e.to_string())?;
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
    expect_eq(out, vec!["0".to_string(), "1".to_string(), "2".to_string(), "3".to_string()])
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
    let res = t.sandbox.run(&StepRoot::Dir(root), &RunSpec::shell("sleep 1000 & echo $!; sleep 1000"), &token, &mut |l| {
        pid = l.parse::<u32>().ok()
    });
    canceller.join().map_err(|_| "canceller panicked")?;
    if !matches!(res, Err(SandboxError::Cancelled)) {
        return Err(format!("unexpected {res:?}"));
    }
    if start.elapsed() > Duration::from_secs(5) {
        return Err("cancel took too long".into());
    }
    // No `sleep 1000` of ours survives anywhere on the host.
    let me = rustix::process::geteuid().as_raw();
    for e in std::fs::read_dir("/proc").map_err(|e| e.to_string())?.flatten() {
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else { continue };
        if cmd == b"sleep\x001000\x00" {
            let st = std::fs::metadata(e.path()).map_err(|e| e.to_string())?;
            if std::os::unix::fs::MetadataExt::uid(&st) == me || me == 0 {
                return Err(format!("process {} survived (step pid {pid:?})", e.file_name().to_string_lossy()));
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
    let report = t.sandbox.run(&StepRoot::Dir(root), &spec, &token, &mut |l| lines.push(l.to_string())).map_err(|e| e.to_string())?;
    if t.sandbox.id_map().is_single() {
        expect_eq(lines, vec!["0".to_string(), "0".to_string()])?;
        expect_eq(report.warnings.len(), 2)
    } else {
        expect_eq(lines, vec!["1000".to_string(), "1000".to_string()])
    }
}
