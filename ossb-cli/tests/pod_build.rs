//! A simulated Kubernetes pod, end to end through the real `ossb` binary: Secret and ConfigMap
//! volumes laid out like the kubelet's atomic writer (`..data` symlinks), the environment of a
//! Job's pod, and a real build pushed to a TLS registry with htpasswd authentication. Checks
//! what an operator sees: the exit code, the status and progress files, and `kubectl logs`
//! (every stderr line a JSON object with the pod fields). The failure classes end with their
//! documented exit codes. `as_uid_1000_without_capabilities` re-runs the `pod_build_` tests
//! as uid 1000 with no capabilities, like the restricted Job.

mod common;
#[path = "../../ossb-k8s/tests/volume_layout.rs"]
mod volume_layout;

use common::processes_with;
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use volume_layout::{Key, atomic_volume};

const OSSB: &str = env!("CARGO_BIN_EXE_ossb");
const USER: &str = "builder";

/// Tools a real registry needs; a missing one skips the test (fails it under `CI`).
fn tools() -> bool {
    ["docker-registry", "htpasswd", "openssl", "curl"]
        .iter()
        .all(|t| ossb_testkit::require_tool(t))
}

/// A password no other text contains, so finding it anywhere is a leak.
fn password() -> String {
    format!("Pw-{}-n0t-in-logs", std::process::id())
}

fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The `.dockerconfigjson` of `kubectl create secret docker-registry`.
fn dockerconfigjson(host: &str, user: &str, pass: &str) -> String {
    serde_json::json!({
        "auths": {
            host: {
                "username": user,
                "password": pass,
                "auth": base64(format!("{user}:{pass}").as_bytes()),
            }
        }
    })
    .to_string()
}

/// What one `ossb build` in the pod left behind.
struct Run {
    out: Output,
    /// Every stderr line, parsed (the test fails on a line that is not JSON).
    lines: Vec<Value>,
    status: Value,
    progress: Option<Value>,
}

impl Run {
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).trim().to_string()
    }

    /// The `status` field of each `job_status` line with one.
    fn job_statuses(&self) -> Vec<String> {
        self.lines
            .iter()
            .filter(|l| l["component"] == "job_status")
            .filter_map(|l| l["status"].as_str().map(str::to_string))
            .collect()
    }

    fn last_job_status(&self) -> Value {
        self.lines
            .iter()
            .rev()
            .find(|l| l["component"] == "job_status" && l.get("status").is_some())
            .cloned()
            .unwrap_or(Value::Null)
    }
}

/// A pod: Secret and ConfigMap volumes under their own roots, a workspace and `/tmp`.
struct Pod {
    dir: tempfile::TempDir,
    runs: std::cell::Cell<usize>,
}

impl Pod {
    /// A pod whose `registry-secret` holds `user`/`pass` for `registry`, and whose
    /// `registry-config` ConfigMap trusts the registry's CA (`ca_file: ca.crt`, another key
    /// of the same ConfigMap).
    fn new(registry: &ossb_testkit::Registry, user: &str, pass: &str) -> Pod {
        let ca = fs::read(registry.ca_cert_path().expect("a TLS registry")).expect("ca");
        Pod::with_ca(registry, user, pass, &ca)
    }

    /// Like [`Pod::new`] with `ca` (PEM) as the registry's CA in the ConfigMap.
    fn with_ca(registry: &ossb_testkit::Registry, user: &str, pass: &str, ca: &[u8]) -> Pod {
        let dir = tempfile::Builder::new()
            .prefix("ossb-pod-")
            .tempdir()
            .expect("tempdir");
        let pod = Pod {
            dir,
            runs: std::cell::Cell::new(0),
        };
        let host = registry.host();
        let secret = dockerconfigjson(host, user, pass);
        atomic_volume(
            &pod.path("secrets/registry-secret"),
            &[(".dockerconfigjson", secret.as_bytes(), 0o644)],
        );
        let config = format!("registries:\n  \"{host}\":\n    ca_file: ca.crt\n");
        atomic_volume(
            &pod.path("configmaps/registry-config"),
            &[
                ("config.yaml", config.as_bytes(), 0o644),
                ("ca.crt", ca, 0o644),
            ],
        );
        for d in ["workspace", "tmp", "home"] {
            fs::create_dir_all(pod.path(d)).expect("mkdir");
        }
        pod
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `ossb build` as the Job runs it, with `files` as the `build-context` ConfigMap (a
    /// fresh volume per run, materialised into a fresh context directory). Returns the
    /// command, the run's `/tmp` (status and progress files) and the context directory.
    fn command(
        &self,
        files: &[Key],
        args: &[&str],
        env: &[(&str, &str)],
    ) -> (Command, PathBuf, PathBuf) {
        let n = self.runs.get() + 1;
        self.runs.set(n);
        let cm = self.path("configmaps/build-context");
        if cm.exists() {
            fs::remove_dir_all(&cm).expect("remove the old context volume");
        }
        atomic_volume(&cm, files);
        let context = self.path(&format!("workspace/context-{n}"));
        let (cmd, tmp) = self.command_in(&context, args, env);
        (cmd, tmp, context)
    }

    /// `ossb build` of the directory `context` (used as is when it exists).
    fn command_in(
        &self,
        context: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> (Command, PathBuf) {
        let n = self.runs.get() + 1;
        self.runs.set(n);
        let tmp = self.path(&format!("tmp/{n}"));
        fs::create_dir_all(&tmp).expect("mkdir tmp");
        let mut cmd = Command::new(OSSB);
        cmd.arg("build")
            .args(args)
            .arg(context)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.path("home"))
            .env("TMPDIR", &tmp)
            .env("KUBERNETES_SERVICE_HOST", "10.96.0.1")
            .env("KUBERNETES_SERVICE_PORT", "443")
            .env("JOB_NAME", "ossb-build")
            .env("POD_NAME", "ossb-build-x7k2p")
            .env("POD_NAMESPACE", "ci")
            .env("NODE_NAME", "node-3")
            .env("LOG_LEVEL", "debug")
            .env("OSSB_SECRETS_ROOT", self.path("secrets"))
            .env("OSSB_CONFIGMAPS_ROOT", self.path("configmaps"))
            .env("OSSB_WORKSPACE", self.path("workspace/.ossb"))
            .env("OSSB_STATUS_FILE", tmp.join("ossb-status.json"))
            .env("OSSB_PROGRESS_FILE", tmp.join("ossb-progress.json"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        (cmd, tmp)
    }

    fn run(&self, files: &[Key], args: &[&str], env: &[(&str, &str)]) -> Run {
        let (mut cmd, tmp, _) = self.command(files, args, env);
        let out = cmd.output().expect("ossb runs");
        collect(out, &tmp)
    }

    /// Every file ossb could have written (workspace, `/tmp`, `$HOME`), for leak checks.
    fn written_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for d in ["workspace", "tmp", "home"] {
            walk(&self.path(d), &mut files);
        }
        files
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => walk(&p, out),
            Ok(t) if t.is_file() => out.push(p),
            _ => {}
        }
    }
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_slice(&fs::read(path).ok()?).ok()
}

fn collect(out: Output, tmp: &Path) -> Run {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines: Vec<Value> = stderr
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("stderr line is not JSON ({e}): {l:?}\n{stderr}"))
        })
        .collect();
    for line in &lines {
        for field in ["timestamp", "level", "msg", "component"] {
            assert!(line.get(field).is_some(), "no {field}: {line}");
        }
        for (field, value) in [
            ("job_name", "ossb-build"),
            ("pod_name", "ossb-build-x7k2p"),
            ("namespace", "ci"),
            ("node_name", "node-3"),
        ] {
            assert_eq!(line[field], value, "pod field {field}: {line}");
        }
    }
    let status = read_json(&tmp.join("ossb-status.json"))
        .unwrap_or_else(|| panic!("no status file; stderr:\n{stderr}"));
    Run {
        progress: read_json(&tmp.join("ossb-progress.json")),
        out,
        lines,
        status,
    }
}

/// Push a busybox base built by ossb itself (in the pod, with its credentials) to `registry`.
fn push_busybox_base(pod: &Pod, registry: &ossb_testkit::Registry) -> String {
    let base = pod.path("base-ctx");
    ossb_testkit::busybox_rootfs(&base.join("rootfs")).expect("busybox rootfs");
    fs::write(
        base.join("Dockerfile"),
        "FROM scratch\nCOPY rootfs/ /\nCMD [\"/bin/sh\"]\n",
    )
    .expect("df");
    let name = format!("{}/base/busybox:latest", registry.host());
    let (mut cmd, tmp) = pod.command_in(&base, &["--push", "-t", &name], &[]);
    let run = collect(cmd.output().expect("ossb runs"), &tmp);
    assert!(
        run.out.status.success(),
        "base push failed: {}\nregistry log:\n{}",
        run.stderr(),
        registry.log()
    );
    name
}

/// A TLS+htpasswd registry, a pod with its credentials, and a busybox base pushed there.
fn setup() -> Option<(ossb_testkit::Registry, Pod, String)> {
    if !tools() {
        return None;
    }
    let registry =
        ossb_testkit::Registry::start_tls_htpasswd(USER, &password()).expect("registry starts");
    let pod = Pod::new(&registry, USER, &password());
    let base = push_busybox_base(&pod, &registry);
    Some((registry, pod, base))
}

/// No output, status file, progress file or file in the pod's writable dirs holds `secret`.
fn assert_no_leak(pod: &Pod, runs: &[&Run], secret: &str) {
    for run in runs {
        assert!(!run.stderr().contains(secret), "stderr leaks the password");
        assert!(!run.stdout().contains(secret), "stdout leaks the password");
    }
    let needle = secret.as_bytes();
    for file in pod.written_files() {
        let data = fs::read(&file).unwrap_or_default();
        assert!(
            !data.windows(needle.len()).any(|w| w == needle),
            "{} holds the password",
            file.display()
        );
    }
}

/// A failed run: the exit code, the terminal status in the file and in the last
/// `job_status` log line, and a `build_result` that says so.
fn assert_failed(run: &Run, code: i32, status: &str) {
    assert_eq!(run.out.status.code(), Some(code), "{}", run.stderr());
    assert_eq!(run.status["status"], status, "{}", run.status);
    assert_eq!(run.status["exit_code"], code, "{}", run.status);
    let result = &run.status["build_result"];
    assert_eq!(result["success"], false, "{}", run.status);
    assert!(result["operations"].is_u64() && result["cache_hits"].is_u64());
    assert!(
        result["duration"]
            .as_str()
            .is_some_and(|d| d.ends_with('s'))
    );
    let last = run.last_job_status();
    assert_eq!(last["status"], status, "{}", run.stderr());
    assert_eq!(last["exit_code"], code, "{last}");
    assert!(last.get("operations").is_some() && last.get("duration").is_some());
    let statuses = run.job_statuses();
    assert_eq!(
        statuses.iter().filter(|s| *s == status).count(),
        1,
        "one terminal line: {statuses:?}"
    );
}

fn context<'a>(dockerfile: &'a str) -> Vec<Key<'a>> {
    vec![("Dockerfile", dockerfile.as_bytes(), 0o644)]
}

#[test]
fn pod_build_pushes_to_the_tls_registry_and_reports_status_progress_and_logs() {
    let Some((registry, pod, base)) = setup() else {
        return;
    };
    let dockerfile = format!(
        "FROM {base}\nCOPY app/ /app/\nCOPY scripts/run.sh /usr/local/bin/run.sh\n\
         RUN cat /app/config/app.conf > /built && /usr/local/bin/run.sh >> /built\n\
         CMD [\"cat\", \"/built\"]\n"
    );
    let files: Vec<Key> = vec![
        ("Dockerfile", dockerfile.as_bytes(), 0o644),
        ("app/config/app.conf", b"key=value\n", 0o644),
        ("scripts/run.sh", b"#!/bin/sh\necho from-script\n", 0o755),
    ];
    let target = format!("{}/team/app:1", registry.host());
    let (mut cmd, tmp, ctx) = pod.command(&files, &["--push", "--tag", &target], &[]);
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ossb starts");
    // Watch both files while the build runs: progress never goes down.
    let (mut seen_status, mut seen_progress) = (Vec::new(), Vec::new());
    let child = watch(child, &tmp, &mut seen_status, &mut seen_progress);
    let run = collect(child.wait_with_output().expect("ossb ends"), &tmp);
    assert_eq!(
        run.out.status.code(),
        Some(0),
        "{}\nregistry log:\n{}",
        run.stderr(),
        registry.log()
    );
    let digest = run.stdout();
    assert!(digest.starts_with("sha256:"), "prints the digest: {digest}");
    for seen in [&seen_status, &seen_progress] {
        assert!(
            seen.windows(2).all(|w| w[0] <= w[1]),
            "progress never decreases: {seen:?}"
        );
    }

    let s = &run.status;
    assert_eq!(s["status"], "Succeeded", "{s}");
    assert_eq!(s["progress"], 100.0, "{s}");
    assert_eq!(s["exit_code"], 0);
    let result = &s["build_result"];
    assert_eq!(result["success"], true);
    assert!(result["operations"].as_u64().is_some_and(|n| n >= 4), "{s}");
    assert!(result["cache_hits"].is_u64(), "{s}");
    // A cold build reads the base and the context and writes its layers.
    assert!(result["bytes_read"].as_u64().is_some_and(|n| n > 0), "{s}");
    assert!(
        result["bytes_written"].as_u64().is_some_and(|n| n > 0),
        "{s}"
    );
    assert!(
        result["duration"]
            .as_str()
            .is_some_and(|d| d.ends_with('s'))
    );
    assert_eq!(result["digest"], digest.as_str());
    let p = run.progress.as_ref().expect("the progress file is written");
    assert_eq!(
        (p["stage"].as_str(), p["progress"].as_f64()),
        (Some("done"), Some(100.0)),
        "{p}"
    );

    assert_eq!(
        run.job_statuses(),
        ["Running", "Succeeded"],
        "{}",
        run.stderr()
    );
    let last = run.last_job_status();
    assert_eq!(last["operations"], result["operations"], "{last}");
    assert_eq!(last["cache_hits"], result["cache_hits"], "{last}");
    assert_eq!(last["duration"], result["duration"], "{last}");
    assert_eq!(last["digest"], digest.as_str(), "{last}");
    assert!(
        run.lines.iter().any(|l| l["component"] == "operation"),
        "the build's steps are logged"
    );

    // The registry serves what was built: the manifest digest matches, with the credentials
    // and the CA, as any other client would see it.
    let manifest = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code} %header{docker-content-digest}"])
        .arg("--cacert")
        .arg(registry.ca_cert_path().expect("ca"))
        .arg("-u")
        .arg(format!("{USER}:{}", password()))
        .args([
            "-H",
            "Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json",
        ])
        .arg(format!("https://{}/v2/team/app/manifests/1", registry.host()))
        .output()
        .expect("curl runs");
    let answer = String::from_utf8_lossy(&manifest.stdout);
    assert_eq!(answer.trim(), format!("200 {digest}"), "{answer}");

    // The context came from the ConfigMap as plain files, nested `items` paths included.
    assert_eq!(
        fs::read_to_string(ctx.join("app/config/app.conf")).expect("nested key"),
        "key=value\n"
    );
    assert!(!ctx.join("..data").exists(), "no atomic-writer bookkeeping");
    assert_no_leak(&pod, &[&run], &password());
}

/// Poll the status and progress files until the child ends, recording the progress values.
fn watch(mut child: Child, tmp: &Path, status: &mut Vec<f64>, progress: &mut Vec<f64>) -> Child {
    let started = Instant::now();
    while matches!(child.try_wait(), Ok(None)) && started.elapsed() < Duration::from_secs(300) {
        if let Some(v) =
            read_json(&tmp.join("ossb-status.json")).and_then(|v| v["progress"].as_f64())
        {
            status.push(v);
        }
        if let Some(v) =
            read_json(&tmp.join("ossb-progress.json")).and_then(|v| v["progress"].as_f64())
        {
            progress.push(v);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

#[test]
fn pod_build_failures_in_the_build_end_with_exit_2_7_and_8() {
    let Some((_registry, pod, base)) = setup() else {
        return;
    };
    // Dockerfile syntax.
    let run = pod.run(&context(&format!("FROM {base}\nFORM x\n")), &[], &[]);
    assert_failed(&run, 2, "Failed");
    let mut runs = vec![run];

    // A failing RUN names the step.
    let df = format!("FROM {base}\nRUN echo about to fail && exit 3\n");
    let run = pod.run(&context(&df), &[], &[]);
    assert_failed(&run, 2, "Failed");
    assert_eq!(
        run.status["failed_step"]["operation"], "RUN",
        "{}",
        run.status
    );
    assert!(
        run.lines
            .iter()
            .any(|l| l.to_string().contains("about to fail")),
        "the step's output is logged"
    );
    runs.push(run);

    // Past --timeout.
    let df = format!("FROM {base}\nRUN sleep 120\n");
    let started = Instant::now();
    let run = pod.run(&context(&df), &["--timeout", "1s"], &[]);
    assert_failed(&run, 7, "Failed");
    assert!(started.elapsed() < Duration::from_secs(60), "stops soon");
    runs.push(run);

    // SIGTERM while a RUN step runs.
    let marker = format!("sleep 4{}", std::process::id() % 1000 + 100);
    let df = format!("FROM {base}\nRUN echo started && {marker}\n");
    let (mut cmd, tmp, _) = pod.command(&context(&df), &[], &[]);
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ossb starts");
    let started = Instant::now();
    while processes_with(&marker).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the RUN step never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).expect("pid"),
        rustix::process::Signal::TERM,
    )
    .expect("kill");
    let run = collect(child.wait_with_output().expect("ossb ends"), &tmp);
    assert_failed(&run, 8, "Cancelled");
    assert_eq!(
        run.job_statuses(),
        ["Running", "Cancelled"],
        "{}",
        run.stderr()
    );
    assert!(processes_with(&marker).is_empty(), "the RUN step is gone");
    runs.push(run);

    assert_no_leak(&pod, &runs.iter().collect::<Vec<_>>(), &password());
}

#[test]
fn pod_build_failures_around_the_build_end_with_exit_3_4_and_6_and_the_ca_is_verified() {
    let Some((registry, pod, base)) = setup() else {
        return;
    };
    let df = format!("FROM {base}\nCOPY Dockerfile /\n");

    // Registry down: nothing listens where the image is pushed.
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        l.local_addr().expect("addr").port()
    };
    let tag = format!("127.0.0.1:{down}/team/app:1");
    let run = pod.run(&context(&df), &["--push", "--tag", &tag], &[]);
    assert_failed(&run, 3, "Failed");
    assert!(
        run.stderr().contains(&format!("127.0.0.1:{down}")),
        "names the registry"
    );
    let mut runs = vec![run];

    // No space: the workspace needs more than the disk has.
    let run = pod.run(&context(&df), &[], &[("OSSB_WORKSPACE_SIZE", "1000000Ti")]);
    assert_failed(&run, 6, "Failed");
    assert!(
        run.stderr().contains("not enough free space"),
        "{}",
        run.stderr()
    );
    runs.push(run);
    assert_no_leak(&pod, &runs.iter().collect::<Vec<_>>(), &password());

    // The ConfigMap's CA is the one verified against: another CA fails the TLS handshake.
    let other = tempfile::tempdir().expect("tempdir");
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=not-the-registry-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ])
        .current_dir(other.path())
        .output()
        .expect("openssl runs");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let wrong_ca = fs::read(other.path().join("ca.crt")).expect("ca");
    let untrusted = Pod::with_ca(&registry, USER, &password(), &wrong_ca);
    let run = untrusted.run(&context(&df), &[], &[]);
    assert_failed(&run, 3, "Failed");
    assert!(run.stderr().contains("tls"), "{}", run.stderr());
    assert_no_leak(&untrusted, &[&run], &password());

    // Bad credentials: a Secret with the wrong password, in a fresh pod (nothing cached).
    let wrong = format!("wrong-{}", password());
    let bad = Pod::new(&registry, USER, &wrong);
    let tag = format!("{}/team/app:2", registry.host());
    let run = bad.run(&context(&df), &["--push", "--tag", &tag], &[]);
    assert_failed(&run, 4, "Failed");
    assert_no_leak(&bad, &[&run], &wrong);
    assert_no_leak(&bad, &[&run], &password());
}

/// Re-run the `pod_build_` tests as uid 1000 with no capabilities (like the restricted Job),
/// with a writable `HOME` and `TMPDIR`.
#[test]
fn as_uid_1000_without_capabilities() {
    if std::env::var_os("OSSB_TEST_AS_UID").is_some() || !rustix::process::geteuid().is_root() {
        return;
    }
    if !tools() || !ossb_testkit::require_tool("setpriv") {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let home = tempfile::Builder::new()
        .prefix("ossb-uid1000-")
        .tempdir()
        .expect("tempdir");
    std::os::unix::fs::chown(home.path(), Some(1000), Some(1000)).expect("chown");
    let out = Command::new("setpriv")
        .args([
            "--reuid=1000",
            "--regid=1000",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(&exe)
        .args(["pod_build_", "--test-threads=2"])
        .env("OSSB_TEST_AS_UID", "1000")
        .env("HOME", home.path())
        .env("TMPDIR", home.path())
        .output()
        .expect("setpriv runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "uid 1000 pass failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("test result: ok. 4 passed"), "{stdout}");
}

#[test]
fn pod_build_runs_as_the_expected_user() {
    if std::env::var_os("OSSB_TEST_AS_UID").is_some() {
        assert_eq!(rustix::process::geteuid().as_raw(), 1000);
        let status = fs::read_to_string("/proc/self/status").expect("status");
        let eff = status
            .lines()
            .find(|l| l.starts_with("CapEff:"))
            .expect("CapEff");
        assert!(eff.ends_with("0000000000000000"), "no capabilities: {eff}");
    }
}
