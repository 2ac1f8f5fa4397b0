//! Real-process tests of the ptrace sandbox (`exec::sandbox::ptrace`): RUN-like steps on a
//! busybox rootfs, a dynamically linked program through the rootfs's loader, ownership
//! emulation and path escapes. No privileges needed: run as root and as an unprivileged user.
//!
//! `harness = false`: the binary is also the tracer helper, so `main` first calls
//! `run_init_if_requested()`.

use ossb_core::exec::sandbox::ptrace::{StepExit, TracedStep, run_traced};
use ossb_core::exec::sandbox::{CancelToken, RunSpec, SandboxError, decode_owner};
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

type R = ossb_testkit::checks::CheckResult;
type Check = fn(&T) -> R;

fn main() {
    ossb_core::exec::sandbox::run_init_if_requested();
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let base = tempfile::Builder::new()
        .prefix("ossb-ptrace-test-")
        .tempdir()
        .expect("temp dir");
    let t = T {
        base: base.path().to_path_buf(),
    };
    std::fs::create_dir(t.base.join("steps")).expect("steps dir");
    println!("running as uid {}", rustix::process::geteuid().as_raw());
    let checks: Vec<(&str, Check)> = vec![
        ("pipes and output", pipes),
        ("exit status and last lines", exit_status),
        ("files: mkdir cp ln rm", files),
        ("id reports root, USER switches", identity),
        ("chown -R is recorded and stat shows it", chown),
        ("escapes stay inside the rootfs", escapes),
        ("a #! script runs through the rootfs's interpreter", script),
        (
            "unix sockets bind and connect beneath the rootfs",
            unix_sockets,
        ),
        (
            "a dynamic program runs through the rootfs's loader",
            dynamic,
        ),
        ("background processes end with the step", background),
        ("cancel kills the traced tree", cancel),
        ("cost per RUN and per trapped call", cost),
    ];
    let ok =
        ossb_testkit::checks::run_checks(&checks, &t, filter.as_deref(), &t.base.join("steps"));
    drop(base);
    std::process::exit(if ok { 0 } else { 1 });
}

struct T {
    base: PathBuf,
}

fn non_root() -> bool {
    rustix::process::geteuid().as_raw() != 0
}

impl T {
    fn rootfs(&self, name: &str) -> PathBuf {
        let root = self.base.join(name);
        ossb_testkit::busybox_rootfs(&root).expect("busybox rootfs");
        root
    }

    fn step(&self, root: &Path, script: &str) -> TracedStep {
        TracedStep {
            helper: PathBuf::from("/proc/self/exe"),
            rootfs: root.to_path_buf(),
            temp_dir: self.base.join("steps"),
            run: RunSpec::shell(script),
        }
    }

    fn exec(&self, step: &TracedStep) -> Result<(StepExit, Vec<String>), SandboxError> {
        let mut lines = Vec::new();
        let cancel = CancelToken::new().expect("token");
        let exit = run_traced(step, &cancel, &mut |l| lines.push(l.to_string()))?;
        Ok((exit, lines))
    }

    /// Runs `script`; its output lines when it exits 0.
    fn run(&self, root: &Path, script: &str) -> Result<Vec<String>, String> {
        let (exit, lines) = self
            .exec(&self.step(root, script))
            .map_err(|e| e.to_string())?;
        if exit.code != Some(0) {
            return Err(format!(
                "exit {:?}/{:?}, output {lines:?}",
                exit.code, exit.signal
            ));
        }
        Ok(lines)
    }
}

fn expect(got: &[String], want: &[&str]) -> R {
    if got != want {
        return Err(format!("output {got:?}, want {want:?}"));
    }
    Ok(())
}

fn pipes(t: &T) -> R {
    let root = t.rootfs("pipes");
    let out = t.run(
        &root,
        "echo hello world | tr a-z A-Z | sed 's/WORLD/there/'; seq 3 | wc -l",
    )?;
    expect(&out, &["HELLO there", "3"])
}

fn exit_status(t: &T) -> R {
    let root = t.rootfs("exit");
    let (exit, lines) = t
        .exec(&t.step(&root, "echo before; exit 3"))
        .map_err(|e| e.to_string())?;
    if exit.code != Some(3) || exit.tail != ["before"] {
        return Err(format!("{exit:?} {lines:?}"));
    }
    match exit.into_report() {
        Err(SandboxError::StepFailed { code: Some(3), .. }) => Ok(()),
        other => Err(format!("into_report gave {other:?}")),
    }
}

fn files(t: &T) -> R {
    let root = t.rootfs("files");
    let out = t.run(
        &root,
        "mkdir -p /a/b && echo x > /a/b/f && cp /a/b/f /a/g && ln -s /a/g /a/l && cat /a/l \
         && mv /a/b/f /a/b/h && rm /a/g && ! cat /a/l 2>/dev/null && readlink /a/l \
         && cd /a/b && ls && rmdir /a/b 2>/dev/null; echo done",
    )?;
    expect(&out, &["x", "/a/g", "h", "done"])?;
    // On the host side, everything is beneath the rootfs.
    if std::fs::read_to_string(root.join("a/b/h")).ok().as_deref() != Some("x\n") {
        return Err("a/b/h missing in the rootfs".into());
    }
    if std::fs::read_link(root.join("a/l")).ok() != Some(PathBuf::from("/a/g")) {
        return Err("the symlink keeps its guest target".into());
    }
    if Path::new("/a/b/h").exists() {
        return Err("the step wrote to the host's /a".into());
    }
    Ok(())
}

fn identity(t: &T) -> R {
    let root = t.rootfs("ids");
    expect(&t.run(&root, "id -u; id -g; whoami")?, &["0", "0", "root"])?;
    let mut step = t.step(&root, "id -u; id -g");
    step.run.uid = 1000;
    step.run.gid = 1000;
    let (exit, lines) = t.exec(&step).map_err(|e| e.to_string())?;
    if exit.code != Some(0) {
        return Err(format!("{exit:?}"));
    }
    expect(&lines, &["1000", "1000"])
}

fn chown(t: &T) -> R {
    let root = t.rootfs("chown");
    let out = t.run(
        &root,
        "mkdir -p /d/e && touch /d/e/f && ln -s f /d/e/l && chown -R 1000:1000 /d \
         && stat -c %u:%g /d /d/e/f && chgrp 5 /d/e/f && stat -c %u:%g /d/e/f \
         && ls -ln /d/e/f | awk '{print $3\":\"$4}' && stat -c %u /tmp \
         && touch /d/m && chmod 0 /d/m && chown 7:8 /d/m && stat -c %u:%g:%a /d/m",
    )?;
    expect(
        &out,
        &["1000:1000", "1000:1000", "1000:5", "1000:5", "0", "7:8:0"],
    )?;
    let f = root.join("d/e/f");
    if non_root() {
        let v = xattr(&f).ok_or("no user.rootlesscontainers on d/e/f")?;
        if decode_owner(&v) != (Some(1000), Some(5)) {
            return Err(format!("record {:?}", decode_owner(&v)));
        }
        let d = xattr(&root.join("d")).ok_or("no record on d")?;
        if decode_owner(&d) != (Some(1000), Some(1000)) {
            return Err(format!("record of d {:?}", decode_owner(&d)));
        }
    } else {
        let md = std::fs::metadata(&f).map_err(|e| e.to_string())?;
        if (md.uid(), md.gid()) != (1000, 5) {
            return Err(format!(
                "as root the chown is real, got {}:{}",
                md.uid(),
                md.gid()
            ));
        }
    }
    Ok(())
}

fn xattr(p: &Path) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 64];
    let n = rustix::fs::getxattr(p, "user.rootlesscontainers", &mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

fn escapes(t: &T) -> R {
    let root = t.rootfs("escape");
    // A first line the host's passwd cannot have.
    let first = format!("rootfs-marker-{}:x:0:0::/:/bin/sh", std::process::id());
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).map_err(|e| e.to_string())?;
    std::fs::write(root.join("etc/passwd"), format!("{first}\n{passwd}"))
        .map_err(|e| e.to_string())?;
    let tries = [
        "cd /home/user && cat ../../../../etc/passwd",
        "cd / && cat ../../etc/passwd",
        "ln -s /etc/passwd /tmp/l && cat /tmp/l",
        "ln -s ../../../../../../etc /tmp/up && cat /tmp/up/passwd",
        "cat /proc/self/root/etc/passwd",
        "cat /proc/self/cwd/../../../../etc/passwd",
        "cat /proc/$$/root/etc/passwd",
        "exec 3</etc/passwd; cat /proc/self/fd/3",
        "cd /proc/self/root/../../.. && cat etc/passwd",
        "cd /tmp && cd .. && cd .. && cd .. && cat etc/passwd",
    ];
    for script in tries {
        let out = t.run(&root, &format!("{script} | head -n 1"))?;
        if out != [first.as_str()] {
            return Err(format!("{script:?} read {out:?}, not the rootfs's passwd"));
        }
    }
    let out = t.run(
        &root,
        "cd /tmp/../.. && pwd && cd /home/user && pwd && readlink /proc/self/cwd \
         && exec 3</etc/passwd && readlink /proc/self/fd/3 && readlink /proc/self/root \
         && readlink /proc/self/exe",
    )?;
    expect(
        &out,
        &[
            "/",
            "/home/user",
            "/home/user",
            "/etc/passwd",
            "/",
            "/bin/busybox",
        ],
    )?;
    // Processes that are not part of the step do not exist for it.
    let out = t.run(&root, "cat /proc/1/environ >/dev/null 2>&1 && echo seen || echo hidden; test -d /proc/$$ && echo mine")?;
    expect(&out, &["hidden", "mine"])?;
    // Nor can it signal or read them by pid (the build process is this test's process).
    let me = std::process::id();
    let out = t.run(
        &root,
        &format!(
            "kill -0 {me} 2>/dev/null && echo reachable || echo unreachable; \
             kill -0 $$ && echo self; kill -9 -1; echo survived"
        ),
    )?;
    expect(&out, &["unreachable", "self", "survived"])?;
    Ok(())
}

/// busybox syslogd binds `/dev/log` and logger connects to it: both paths are translated.
fn unix_sockets(t: &T) -> R {
    let root = t.rootfs("unix");
    let out = t.run(
        &root,
        "busybox syslogd -n -O /tmp/log & sleep 0.5; busybox logger -t ossb hello-socket; \
         sleep 0.5; grep -o hello-socket /tmp/log; test -S /dev/log && echo socket",
    )?;
    expect(&out, &["hello-socket", "socket"])?;
    let md = std::fs::symlink_metadata(root.join("dev/log")).map_err(|e| e.to_string())?;
    if !std::os::unix::fs::FileTypeExt::is_socket(&md.file_type()) {
        return Err("the socket is not in the rootfs's /dev".into());
    }
    if Path::new("/tmp/log").exists()
        && std::fs::read_to_string("/tmp/log").is_ok_and(|s| s.contains("hello-socket"))
    {
        return Err("the step wrote the host's /tmp/log".into());
    }
    Ok(())
}

fn script(t: &T) -> R {
    let root = t.rootfs("script");
    std::fs::write(root.join("s.sh"), "#!/bin/sh -e\necho script $0 $1\n")
        .map_err(|e| e.to_string())?;
    std::fs::set_permissions(
        root.join("s.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .map_err(|e| e.to_string())?;
    expect(
        &t.run(&root, "/s.sh arg; cd / && ./s.sh two")?,
        &["script /s.sh arg", "script ./s.sh two"],
    )
}

/// A rootfs with one dynamically linked host program, its libraries and loader (from ldd).
fn dynamic(t: &T) -> R {
    let Some(prog) = ["/usr/bin/readlink", "/bin/readlink"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
    else {
        println!("skip: no /usr/bin/readlink");
        return Ok(());
    };
    if !ossb_testkit::require_tool("ldd") {
        return Ok(());
    }
    let root = t.rootfs("dynamic");
    let out = std::process::Command::new("ldd")
        .arg(&prog)
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut copied = 0;
    for line in text.lines() {
        let path = line
            .split_whitespace()
            .find(|w| w.starts_with('/'))
            .map(PathBuf::from);
        let Some(path) = path else { continue };
        let dest = root.join(path.strip_prefix("/").map_err(|e| e.to_string())?);
        std::fs::create_dir_all(dest.parent().ok_or("no parent")?).map_err(|e| e.to_string())?;
        std::fs::copy(&path, &dest).map_err(|e| format!("{}: {e}", path.display()))?;
        copied += 1;
    }
    if copied < 2 {
        return Err(format!("ldd found too little: {text}"));
    }
    std::fs::create_dir_all(root.join("opt")).map_err(|e| e.to_string())?;
    std::fs::copy(&prog, root.join("opt/rl")).map_err(|e| e.to_string())?;
    symlink("/opt/rl", root.join("opt/link")).map_err(|e| e.to_string())?;
    let out = t.run(
        &root,
        "/opt/rl /proc/self/exe; /opt/link -f /opt/link; cd /opt && ./rl -f ../opt/link",
    )?;
    expect(&out, &["/opt/rl", "/opt/rl", "/opt/rl"])?;
    // The loader and libc mapped into the process are the rootfs's copies (the host has the
    // same files at the same paths, so only the maps tell them apart).
    let cat = ["/usr/bin/cat", "/bin/cat"]
        .iter()
        .find(|p| Path::new(p).exists())
        .ok_or("no cat")?;
    std::fs::copy(cat, root.join("opt/cat")).map_err(|e| e.to_string())?;
    let maps = t.run(&root, "/opt/cat /proc/self/maps")?;
    let libs: Vec<&String> = maps
        .iter()
        .filter(|l| l.contains("ld-linux") || l.contains("libc.so"))
        .collect();
    let canon = std::fs::canonicalize(&root).map_err(|e| e.to_string())?;
    let prefix = canon.to_string_lossy().to_string();
    if libs.is_empty() || libs.iter().any(|l| !l.contains(&prefix)) {
        return Err(format!(
            "loader/libc not from the rootfs {prefix}: {libs:?}"
        ));
    }
    Ok(())
}

fn processes_with(token: &str) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(|e| e.ok())
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(token))
                .unwrap_or(false)
        })
        .count()
}

fn background(t: &T) -> R {
    let root = t.rootfs("bg");
    t.run(&root, "sleep 1234 & echo started")?;
    std::thread::sleep(Duration::from_millis(200));
    if processes_with("sleep\u{0}1234") != 0 {
        return Err("the background sleep survived the step".into());
    }
    Ok(())
}

fn cancel(t: &T) -> R {
    let root = t.rootfs("cancel");
    let step = t.step(&root, "sleep 4321 & sleep 4322; echo never");
    let token = CancelToken::new().map_err(|e| e.to_string())?;
    let c = token.clone();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        c.cancel();
    });
    let start = Instant::now();
    let res = run_traced(&step, &token, &mut |_| {});
    let _ = killer.join();
    if !matches!(res, Err(SandboxError::Cancelled)) {
        return Err(format!("got {res:?}"));
    }
    if start.elapsed() > Duration::from_secs(30) {
        return Err("cancel did not stop the step".into());
    }
    std::thread::sleep(Duration::from_millis(200));
    let left = processes_with("sleep\u{0}432");
    if left != 0 {
        return Err(format!("{left} processes survived the cancel"));
    }
    Ok(())
}

/// Prints what a RUN and a trapped call cost (no thresholds: machines differ).
fn cost(t: &T) -> R {
    let root = t.rootfs("cost");
    let n = 10;
    let start = Instant::now();
    for _ in 0..n {
        t.run(&root, "true")?;
    }
    let per_run = start.elapsed() / n;
    let calls = 20000;
    let script = format!("i=0; while [ $i -lt {calls} ]; do [ -e /etc/passwd ]; i=$((i+1)); done");
    let script_base = format!("i=0; while [ $i -lt {calls} ]; do i=$((i+1)); done");
    let time = |s: &str| -> Result<(Duration, u64), String> {
        let start = Instant::now();
        let (exit, _) = t.exec(&t.step(&root, s)).map_err(|e| e.to_string())?;
        Ok((start.elapsed(), exit.trapped))
    };
    let (with, trapped) = time(&script)?;
    let (without, base_trapped) = time(&script_base)?;
    let per_call = with.saturating_sub(without) / calls;
    println!(
        "     cost: RUN true {per_run:?} per step; a trapped stat {per_call:?} \
         ({trapped} trapped vs {base_trapped} in the loop without stat)"
    );
    if trapped < u64::from(calls) {
        return Err(format!("only {trapped} calls trapped for {calls} stats"));
    }
    Ok(())
}
