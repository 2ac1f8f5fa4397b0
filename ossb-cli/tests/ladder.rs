//! The execution ladder: which rung RUN steps run on, in simulated pods (ossb-testkit's
//! `podsim`, root only: a new mount namespace with `/proc` masked like runc does, capabilities
//! dropped, `no_new_privs`, the runtime's default seccomp profile transcribed) and on this
//! host with `--sandbox`.
//!
//! Each build runs a small RUN workload (a file created and `chown -R 1000:1000`, checked in
//! the layer tar) and a step that tries to read OSSB's environment, memory, root and a
//! credential file of the pod; none of it may reach the step's output, the log or a layer.

mod common;

use common::{Env, OSSB, busybox_layout};
use ossb_testkit::podsim::Pod;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

/// Skips (with the reason printed) unless pods can be simulated here.
fn pods_available() -> bool {
    match Pod::available() {
        Ok(()) => true,
        Err(why) => {
            eprintln!("skipped: {why}");
            false
        }
    }
}

fn token(tag: &str) -> String {
    let mut bytes = [0u8; 12];
    let _ = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    format!("{tag}{}", hex::encode(bytes))
}

/// A scratch area the pod's user can use: a busybox base built outside the pod, a context,
/// and a credential file standing for a mounted Secret of the pod.
struct Setup {
    env: Env,
    env_token: String,
    plain_token: String,
    secret_token: String,
    sleeper: u32,
}

impl Setup {
    fn new() -> Setup {
        let env = Env::new();
        let base = busybox_layout(&env);
        let env_token = token("ENVTOK");
        let plain_token = token("PLAINTOK");
        let secret_token = token("SECRETTOK");
        // Unique per test: builds of parallel tests must not see each other's sleeper.
        let sleeper = 900_000 + u32::from_str_radix(&token("")[..4], 16).unwrap_or(0);
        let secret = env.write("pod-secrets/registry-password", &secret_token);
        env.write(
            "ctx/Dockerfile",
            &dockerfile(&base, &secret.display().to_string(), sleeper),
        );
        // The pod user (uid 1000) owns the scratch area, as a pod's emptyDir would be.
        let status = Command::new("chown")
            .args(["-R", "1000:1000"])
            .arg(env.dir.path())
            .status();
        if rustix::process::geteuid().is_root() {
            assert!(status.is_ok_and(|s| s.success()), "chown the scratch dir");
        }
        let _ = std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755));
        Setup {
            env,
            env_token,
            plain_token,
            secret_token,
            sleeper,
        }
    }

    /// `ossb ARGS` in `pod` (or on the host with `None`), with the secret-looking variable in
    /// its environment and a status file.
    fn ossb(&self, pod: Option<&Pod>, store: &str, args: &[&str]) -> Output {
        let mut cmd = match pod {
            Some(p) => p.command(OSSB).expect("pod command"),
            None => Command::new(OSSB),
        };
        cmd.env("OSSB_ROOT", self.env.path(store))
            .env(
                "OSSB_STATUS_FILE",
                self.env.path(&format!("{store}.status.json")),
            )
            // A credential-looking name (removed from the environment block at start-up) and a
            // plain one (protected only by OSSB being non-dumpable).
            .env("OSSB_TEST_REGISTRY_TOKEN", &self.env_token)
            .env("OSSB_TEST_MARKER", &self.plain_token)
            .env("HOME", self.env.path("home"))
            .env_remove("SOURCE_DATE_EPOCH")
            .env_remove("OSSB_SANDBOX")
            .current_dir(self.env.dir.path())
            .args(args);
        cmd.output().expect("ossb runs")
    }

    fn doctor(&self, pod: Option<&Pod>) -> serde_json::Value {
        let out = self.ossb(pod, "store-doctor", &["doctor", "--json"]);
        assert!(
            out.status.success(),
            "doctor failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("doctor --json is JSON")
    }

    fn build(&self, pod: Option<&Pod>, store: &str, sandbox: &str) -> Output {
        let dest = format!(
            "type=oci,dest={}",
            self.env.path(&format!("{store}-oci")).display()
        );
        let ctx = self.env.path("ctx");
        self.ossb(
            pod,
            store,
            &[
                "build",
                "--progress",
                "plain",
                "--compression",
                "uncompressed",
                "--sandbox",
                sandbox,
                "--label",
                "ossb-leak-marker=1",
                "--output",
                &dest,
                ctx.to_str().expect("utf8"),
            ],
        )
    }

    fn status(&self, store: &str) -> serde_json::Value {
        let text = std::fs::read(self.env.path(&format!("{store}.status.json"))).expect("status");
        serde_json::from_slice(&text).expect("status JSON")
    }
}

/// A RUN that owns files by 1000:1000, and one that tries to read OSSB's process and the pod's
/// credential file (the pattern `ossb-leak-mark[e]r` matches OSSB's command line, not the
/// step's own).
fn dockerfile(base: &str, secret: &str, sleeper: u32) -> String {
    format!(
        r#"FROM {base}
RUN mkdir -p /app/sub && echo hi > /app/sub/f && chown -R 1000:1000 /app && ls -ln /app/sub
RUN (sleep {sleeper} &) ; echo left a sleeper behind
RUN found=""; \
    for d in /proc/[0-9]*; do \
      if tr '\0' ' ' < $d/cmdline 2>/dev/null | grep -q 'ossb-leak-mark[e]r'; then found="$found ${{d#/proc/}}"; fi; \
    done; \
    echo "SEEN-OSSB:$found"; \
    test -e /proc/self/status || echo PROC-ABSENT; \
    for p in $found; do \
      cat /proc/$p/environ 2>/dev/null | tr '\0' '\n'; \
      dd if=/proc/$p/mem bs=1 count=0 2>/dev/null && echo LEAK-MEM; \
      ls /proc/$p/root/ >/dev/null 2>&1 && echo LEAK-ROOT; \
      for f in /proc/$p/fd/*; do readlink $f >/dev/null 2>&1 && echo LEAK-FD; done; \
      cat /proc/$p/root{secret} 2>/dev/null; \
    done; \
    cat /proc/*/environ 2>/dev/null | tr '\0' '\n' | grep TOK; \
    cat {secret} 2>/dev/null; \
    cd / && cat ../../../../../../..{secret} 2>/dev/null; \
    busybox chroot / /bin/true 2>/dev/null && echo CHROOT-ALLOWED; \
    busybox mknod /tmp/n c 1 3 2>/dev/null && echo MKNOD-ALLOWED; rm -f /tmp/n; \
    echo PROBE-DONE
"#
    )
}

/// Every entry of every layer: path -> (uid, gid, content).
fn layer_entries(oci: &Path) -> BTreeMap<String, (u64, u64, Vec<u8>)> {
    let read_json = |p: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p).expect("read")).expect("json")
    };
    let blob = |digest: &str| {
        oci.join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    };
    let index = read_json(&oci.join("index.json"));
    let manifest = read_json(&blob(
        index["manifests"][0]["digest"]
            .as_str()
            .expect("manifest digest"),
    ));
    let mut out = BTreeMap::new();
    for layer in manifest["layers"].as_array().expect("layers") {
        // The builds under test write uncompressed layers; the busybox base is gzip.
        let media = layer["mediaType"].as_str().unwrap_or_default();
        if media.ends_with("gzip") || media.ends_with("zstd") {
            continue;
        }
        let file = std::fs::File::open(blob(layer["digest"].as_str().expect("digest")))
            .expect("layer blob");
        let mut ar = tar::Archive::new(file);
        for e in ar.entries().expect("tar") {
            let mut e = e.expect("entry");
            let path = e.path().expect("path").display().to_string();
            let (uid, gid) = (
                e.header().uid().expect("uid"),
                e.header().gid().expect("gid"),
            );
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).expect("data");
            out.insert(path, (uid, gid, data));
        }
    }
    out
}

/// The build succeeded on `rung`, the layer has the owners, and nothing leaked.
fn assert_built_and_sealed(s: &Setup, store: &str, out: &Output, rung: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "build failed:\n{stderr}\n{stdout}");
    assert!(
        stderr.contains(&format!("RUN steps use the {rung} sandbox")),
        "the log names the rung:\n{stderr}"
    );
    assert_eq!(
        s.status(store)["sandbox"],
        rung,
        "status file names the rung"
    );
    assert!(
        stderr.contains("PROBE-DONE"),
        "the probe step ran:\n{stderr}"
    );
    // What the steps printed (the step descriptions quote the probe script itself).
    let step_output: String = stderr
        .lines()
        .filter_map(|l| l.split_once("  | ").map(|(_, o)| o))
        .collect::<Vec<_>>()
        .join("\n");
    // mknod: refused in a user namespace, dropped in the chroot rung; chroot: dropped there
    // (it would leave the first one), harmless inside the namespaces.
    let mut refused = vec!["LEAK-MEM", "LEAK-ROOT", "LEAK-FD", "MKNOD-ALLOWED"];
    if rung == "chroot" {
        refused.push("CHROOT-ALLOWED");
    }
    for leak in refused {
        assert!(!step_output.contains(leak), "{leak}:\n{stderr}");
    }
    for token in [&s.env_token, &s.plain_token, &s.secret_token] {
        assert!(
            !stderr.contains(token.as_str()),
            "{token} reached the step:\n{stderr}"
        );
        assert!(!stdout.contains(token.as_str()), "{token} in stdout");
    }
    // What a step leaves running dies with it (a PID namespace, or the chroot rung's process
    // group and subreaper init).
    assert!(
        common::processes_with(&format!("sleep {}", s.sleeper)).is_empty(),
        "a step's background process outlived the build"
    );
    let entries = layer_entries(&s.env.path(&format!("{store}-oci")));
    for (dir, (uid, gid, _)) in entries.iter().filter(|(p, _)| p.starts_with("app")) {
        assert_eq!((*uid, *gid), (1000, 1000), "owner of {dir}");
    }
    let f = entries.get("app/sub/f").expect("app/sub/f in a layer");
    assert_eq!(f.2, b"hi\n");
    for (path, (_, _, data)) in &entries {
        let text = String::from_utf8_lossy(data);
        assert!(
            !text.contains(&s.env_token)
                && !text.contains(&s.plain_token)
                && !text.contains(&s.secret_token),
            "a token reached the layer file {path}"
        );
        assert!(
            !path.starts_with("dev/") && path != "etc/hosts",
            "sandbox stub {path} in a layer"
        );
    }
}

fn rung_of(doctor: &serde_json::Value) -> Option<String> {
    doctor["rung"].as_str().map(str::to_string)
}

fn ladder_detail(doctor: &serde_json::Value, rung: &str) -> String {
    doctor["ladder"]
        .as_array()
        .and_then(|l| l.iter().find(|r| r["rung"] == rung))
        .map(|r| r["detail"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

#[test]
fn unconfined_pod_runs_steps_on_the_reduced_rung_and_seals_ossb() {
    if !pods_available() {
        return;
    }
    let s = Setup::new();
    let pod = Pod::unconfined();
    let doctor = s.doctor(Some(&pod));
    assert_eq!(rung_of(&doctor).as_deref(), Some("reduced"), "{doctor:#}");
    assert!(
        ladder_detail(&doctor, "full").contains("fresh /proc failed"),
        "{doctor:#}"
    );
    let out = s.build(Some(&pod), "store-reduced", "auto");
    assert_built_and_sealed(&s, "store-reduced", &out, "reduced");
    // The step saw OSSB in /proc (the probes above were real attempts), but nothing of it.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let seen = stderr
        .lines()
        .find_map(|l| l.split("SEEN-OSSB:").nth(1))
        .unwrap_or_default();
    assert!(
        !seen.trim().is_empty(),
        "OSSB not visible in the reduced rung's /proc:\n{stderr}"
    );
}

#[test]
fn root_pod_with_default_capabilities_runs_steps_on_the_chroot_rung() {
    if !pods_available() {
        return;
    }
    let s = Setup::new();
    let pod = Pod::root_default();
    let doctor = s.doctor(Some(&pod));
    assert_eq!(rung_of(&doctor).as_deref(), Some("chroot"), "{doctor:#}");
    assert!(
        ladder_detail(&doctor, "full").contains("user namespace failed"),
        "{doctor:#}"
    );
    let out = s.build(Some(&pod), "store-chroot", "auto");
    assert_built_and_sealed(&s, "store-chroot", &out, "chroot");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("PROC-ABSENT"), "{stderr}");
}

#[test]
fn restricted_pod_picks_ptrace_or_names_what_would_enable_each_rung() {
    if !pods_available() {
        return;
    }
    let s = Setup::new();
    let pod = Pod::restricted();
    let doctor = s.doctor(Some(&pod));
    for rung in ["full", "reduced", "chroot"] {
        let r = doctor["ladder"]
            .as_array()
            .and_then(|l| l.iter().find(|r| r["rung"] == rung))
            .expect("rung in the ladder");
        assert_eq!(r["ok"], false, "{rung} must not be available: {doctor:#}");
    }
    let out = s.build(Some(&pod), "store-restricted", "auto");
    if rung_of(&doctor).as_deref() == Some("ptrace") {
        // Once the ptrace sandbox is built in, the restricted pod builds on it.
        assert_built_and_sealed(&s, "store-restricted", &out, "ptrace");
        return;
    }
    assert_eq!(rung_of(&doctor), None, "{doctor:#}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(5),
        "configuration exit code:\n{err}"
    );
    for needle in [
        "no sandbox possible for RUN steps",
        "full: user namespace failed: unshare(CLONE_NEWUSER)",
        "chroot: chroot failed: ossb runs as uid 1000",
        "ptrace: ptrace failed: the ptrace sandbox is not built into this ossb",
        "a seccomp filter is active",
        "seccompProfile type Unconfined",
        "procMount: Unmasked",
        "hostUsers: false",
        "SYS_ADMIN",
        "runAsUser: 0",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    // A forced rung that cannot run names only itself.
    let out = s.build(Some(&pod), "store-restricted", "reduced");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(
        err.contains("the reduced sandbox (--sandbox reduced) cannot run RUN steps here")
            && err.contains("reduced: user namespace failed")
            && !err.contains("chroot:"),
        "{err}"
    );
}

#[test]
fn forced_reduced_rung_builds_on_this_host() {
    let s = Setup::new();
    let doctor = s.doctor(None);
    if doctor["ladder"][1]["ok"] != true {
        eprintln!(
            "skipped: no user namespaces here: {}",
            ladder_detail(&doctor, "reduced")
        );
        return;
    }
    let out = s.build(None, "store-host-reduced", "reduced");
    assert_built_and_sealed(&s, "store-host-reduced", &out, "reduced");
}

#[test]
fn forced_chroot_rung_builds_as_root_on_this_host() {
    let s = Setup::new();
    let doctor = s.doctor(None);
    if doctor["ladder"][2]["ok"] != true {
        // The precise reason is part of the ladder (e.g. not uid 0): the forced build says it.
        let out = s.build(None, "store-host-chroot", "chroot");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(5), "{err}");
        assert!(
            err.contains("the chroot sandbox (--sandbox chroot)"),
            "{err}"
        );
        eprintln!(
            "skipped the chroot build: {}",
            ladder_detail(&doctor, "chroot")
        );
        return;
    }
    let out = s.build(None, "store-host-chroot", "chroot");
    assert_built_and_sealed(&s, "store-host-chroot", &out, "chroot");
}
