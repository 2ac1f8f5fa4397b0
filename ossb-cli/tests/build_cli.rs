//! End-to-end builds through the real `ossb` binary: images checked by skopeo and umoci, pushed
//! to and pulled from a real Distribution registry, exit codes for user mistakes.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

use common::{Env, OSSB, busybox_layout, processes_with, tool};

fn skopeo_inspect(layout: &Path, tag: &str, config: bool) -> serde_json::Value {
    let mut cmd = Command::new("skopeo");
    cmd.arg("inspect");
    if config {
        cmd.arg("--config");
    }
    let out = cmd
        .arg(format!("oci:{}:{tag}", layout.display()))
        .output()
        .expect("skopeo runs");
    assert!(
        out.status.success(),
        "skopeo inspect: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("skopeo prints json")
}

/// `umoci unpack` the layout; returns the rootfs path (inside `into`).
fn umoci_unpack(layout: &Path, tag: &str, into: &Path) -> PathBuf {
    let mut cmd = Command::new("umoci");
    cmd.arg("unpack");
    if !rustix::process::geteuid().is_root() {
        cmd.arg("--rootless");
    }
    let out = cmd
        .arg("--image")
        .arg(format!("{}:{tag}", layout.display()))
        .arg(into)
        .output()
        .expect("umoci runs");
    assert!(
        out.status.success(),
        "umoci unpack: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    into.join("rootfs")
}

fn hello_context(env: &Env) -> PathBuf {
    env.write("ctx/hello.txt", "hello\n");
    env.write("ctx/sub/a.txt", "a\n");
    env.write("ctx/sub/deeper/b.txt", "bb\n");
    env.write("ctx/ignored.log", "noise\n");
    env.write("ctx/.dockerignore", "*.log\n");
    let script = env.write("ctx/run.sh", "#!/bin/sh\necho hi\n");
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod");
    env.write(
        "ctx/Dockerfile",
        "FROM scratch\n\
         COPY hello.txt /hello.txt\n\
         COPY sub/ /opt/sub/\n\
         COPY --chmod=0700 run.sh /usr/local/bin/\n\
         COPY --chown=1000:1000 . /all/\n\
         COPY <<EOF /etc/motd\nwelcome\nEOF\n\
         WORKDIR /app\n\
         ENV A=1 B=\"two words\"\n\
         LABEL team=build\n\
         EXPOSE 8080/tcp 53/udp\n\
         USER 1000:1000\n\
         ENTRYPOINT [\"/usr/local/bin/run.sh\"]\n\
         CMD [\"--flag\"]\n",
    );
    env.path("ctx")
}

#[test]
fn oci_layout_output_is_valid_for_skopeo_and_umoci_with_docker_semantics() {
    if !tool("skopeo") || !tool("umoci") {
        return;
    }
    let env = Env::new();
    let ctx = hello_context(&env);
    let out = env.path("out-oci");
    let digest = env.ossb_ok(&[
        "build",
        "--progress",
        "quiet",
        "-t",
        "example.com/hello:v1",
        "--output",
        &format!("type=oci,dest={}", out.display()),
        ctx.to_str().expect("utf8"),
    ]);
    assert!(digest.starts_with("sha256:"), "prints the digest: {digest}");

    let inspect = skopeo_inspect(&out, "v1", false);
    assert_eq!(inspect["Digest"], digest.as_str());
    let config = skopeo_inspect(&out, "v1", true);
    let c = &config["config"];
    assert_eq!(
        c["Env"],
        serde_json::json!([
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "A=1",
            "B=two words"
        ]),
        "scratch starts with BuildKit's default PATH"
    );
    assert_eq!(c["WorkingDir"], "/app");
    assert_eq!(c["User"], "1000:1000");
    assert_eq!(c["Labels"]["team"], "build");
    assert_eq!(
        c["Entrypoint"],
        serde_json::json!(["/usr/local/bin/run.sh"])
    );
    assert_eq!(c["Cmd"], serde_json::json!(["--flag"]));
    assert!(
        c["ExposedPorts"].get("8080/tcp").is_some() && c["ExposedPorts"].get("53/udp").is_some()
    );
    let history = config["history"].as_array().expect("history");
    let layered: Vec<&str> = history
        .iter()
        .filter(|h| h.get("empty_layer").is_none())
        .map(|h| h["created_by"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        layered.len(),
        config["rootfs"]["diff_ids"]
            .as_array()
            .expect("diff ids")
            .len()
    );
    assert!(
        layered[0].starts_with("COPY hello.txt /hello.txt"),
        "{layered:?}"
    );

    let rootfs = umoci_unpack(&out, "v1", &env.path("bundle"));
    assert_eq!(
        fs::read_to_string(rootfs.join("hello.txt")).expect("hello"),
        "hello\n"
    );
    assert_eq!(
        fs::read_to_string(rootfs.join("opt/sub/deeper/b.txt")).expect("b"),
        "bb\n"
    );
    assert!(
        !rootfs.join("opt/sub/sub").exists(),
        "a directory source copies its contents"
    );
    assert_eq!(
        fs::read_to_string(rootfs.join("etc/motd")).expect("motd"),
        "welcome\n"
    );
    let run = fs::metadata(rootfs.join("usr/local/bin/run.sh")).expect("run.sh");
    assert_eq!(run.mode() & 0o7777, 0o700);
    assert!(rootfs.join("app").is_dir(), "WORKDIR creates the directory");
    assert!(rootfs.join("all/hello.txt").is_file());
    assert!(
        !rootfs.join("all/ignored.log").exists(),
        ".dockerignore applies"
    );
    let src_mtime = fs::metadata(ctx.join("hello.txt")).expect("src").mtime();
    assert_eq!(
        fs::metadata(rootfs.join("hello.txt")).expect("dst").mtime(),
        src_mtime,
        "COPY keeps mtimes"
    );
    if rustix::process::geteuid().is_root() {
        let all = fs::metadata(rootfs.join("all/sub/a.txt")).expect("chowned");
        assert_eq!(
            (all.uid(), all.gid()),
            (1000, 1000),
            "--chown applies to every copied file"
        );
        assert_eq!(
            fs::metadata(rootfs.join("hello.txt")).expect("hello").uid(),
            0
        );
    }
}

#[test]
fn same_build_with_source_date_epoch_gives_the_same_digest_in_fresh_stores() {
    let env = Env::new();
    let ctx = hello_context(&env);
    let build = |store: &str| {
        let out = Command::new(OSSB)
            .args([
                "build",
                "--progress",
                "quiet",
                "--source-date-epoch",
                "1700000000",
            ])
            .arg(&ctx)
            .env("OSSB_ROOT", env.path(store))
            .output()
            .expect("ossb runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let (a, b) = (build("store-a"), build("store-b"));
    assert_eq!(a, b, "reproducible digest");
    // Touching a source file changes nothing: mtimes are clamped to SOURCE_DATE_EPOCH.
    let f = ctx.join("hello.txt");
    let now = std::time::SystemTime::now();
    fs::File::options()
        .write(true)
        .open(&f)
        .expect("open")
        .set_modified(now)
        .expect("touch");
    assert_eq!(build("store-c"), a);
}

#[test]
fn user_mistakes_end_with_a_clear_message_and_the_documented_exit_code() {
    let env = Env::new();
    let ctx = hello_context(&env);
    let cases: &[(&str, &str, i32, &str)] = &[
        ("missing", "FROM scratch\nCOPY nope.txt /\n", 2, "nope.txt"),
        ("outside", "FROM scratch\nCOPY ../secret /\n", 2, "outside"),
        (
            "syntax",
            "FROM scratch\nCOPYY a /\n",
            2,
            "unknown instruction",
        ),
        ("stage", "FROM scratch\nCOPY --from=nope /x /x\n", 3, "nope"),
        ("empty", "", 2, "no instructions"),
        ("run", "FROM scratch\nRUN true\n", 2, "RUN"),
    ];
    for (name, dockerfile, code, needle) in cases {
        let df = env.write(&format!("df/{name}"), dockerfile);
        let out = env.ossb(&[
            "build",
            "--progress",
            "quiet",
            "-f",
            df.to_str().expect("utf8"),
            ctx.to_str().expect("utf8"),
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(*code), "{name}: {err}");
        assert!(
            err.contains(needle),
            "{name}: message names the cause: {err}"
        );
    }
    let out = env.ossb(&["build", "--no-such-flag", ctx.to_str().expect("utf8")]);
    assert_eq!(
        out.status.code(),
        Some(5),
        "unknown flags are configuration errors"
    );
    let out = env.ossb(&[
        "build",
        "--output",
        "type=tarball",
        ctx.to_str().expect("utf8"),
    ]);
    assert_eq!(out.status.code(), Some(5));
    let out = env.ossb(&[
        "build",
        "--progress",
        "quiet",
        env.path("no-such-dir").to_str().expect("utf8"),
    ]);
    assert_eq!(out.status.code(), Some(2));
}

/// Make a busybox base image with ossb itself and push it to `registry`.
fn push_busybox_base(env: &Env, registry: &str) -> String {
    let base = env.path("base-ctx");
    ossb_testkit::busybox_rootfs(&base.join("rootfs")).expect("busybox rootfs");
    fs::write(
        base.join("Dockerfile"),
        "FROM scratch\nCOPY rootfs/ /\nCMD [\"/bin/sh\"]\n",
    )
    .expect("df");
    let name = format!("{registry}/base/busybox:latest");
    env.ossb_ok(&[
        "build",
        "--progress",
        "quiet",
        "--push",
        "-t",
        &name,
        base.to_str().expect("utf8"),
    ]);
    name
}

#[test]
fn from_a_registry_image_build_push_and_validate_with_skopeo() {
    if !tool("docker-registry") || !tool("skopeo") || !tool("umoci") {
        return;
    }
    let registry = ossb_testkit::Registry::start_plain().expect("registry starts");
    let env = Env::new();
    let base = push_busybox_base(&env, registry.host());
    env.write("app/app.conf", "key=value\n");
    env.write(
        "app/Dockerfile",
        &format!(
            "ARG BASE\nFROM ${{BASE}} AS build\nCOPY app.conf /etc/app/\n\
             FROM {base}\nCOPY --from=build --chown=user:user /etc/app/app.conf /home/app.conf\n\
             WORKDIR /tmp\nCMD [\"cat\", \"/home/app.conf\"]\n"
        ),
    );
    let target = format!("{}/team/app:1", registry.host());
    let digest = env.ossb_ok(&[
        "build",
        "--progress",
        "quiet",
        "--build-arg",
        &format!("BASE={base}"),
        "--push",
        "-t",
        &target,
        env.path("app").to_str().expect("utf8"),
    ]);
    let out = Command::new("skopeo")
        .args([
            "inspect",
            "--tls-verify=false",
            &format!("docker://{target}"),
        ])
        .output()
        .expect("skopeo runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inspect: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        inspect["Digest"],
        digest.as_str(),
        "the registry serves what we built"
    );
    assert_eq!(
        inspect["Layers"].as_array().expect("layers").len(),
        2,
        "base layer + one COPY"
    );

    let layout = env.path("copied");
    let out = Command::new("skopeo")
        .args([
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{target}"),
            &format!("oci:{}:app", layout.display()),
        ])
        .output()
        .expect("skopeo copy");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rootfs = umoci_unpack(&layout, "app", &env.path("bundle"));
    assert!(rootfs.join("bin/busybox").is_file(), "base layer present");
    assert_eq!(
        fs::read_to_string(rootfs.join("home/app.conf")).expect("copied"),
        "key=value\n"
    );
    let tmp = fs::metadata(rootfs.join("tmp")).expect("tmp");
    assert_eq!(
        tmp.mode() & 0o7777,
        0o1777,
        "WORKDIR /tmp keeps the base's mode"
    );
    if rustix::process::geteuid().is_root() {
        let conf = fs::metadata(rootfs.join("home/app.conf")).expect("conf");
        assert_eq!(
            (conf.uid(), conf.gid()),
            (1000, 1000),
            "--chown user:user resolved from /etc/passwd"
        );
    }
}

#[test]
fn unreachable_registry_is_a_registry_error() {
    let env = Env::new();
    env.write("c/Dockerfile", "FROM 127.0.0.1:1/nothing/here:latest\n");
    let out = env.ossb(&[
        "build",
        "--progress",
        "quiet",
        env.path("c").to_str().expect("utf8"),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("127.0.0.1:1"), "names the registry: {err}");
}

#[test]
fn docker_archive_loads_into_docker_and_runs() {
    let docker_ok = Command::new("docker")
        .arg("info")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !docker_ok {
        eprintln!("skipped: docker info failed (no Docker Engine)");
        return;
    }
    let env = Env::new();
    let base = env.path("ctx");
    ossb_testkit::busybox_rootfs(&base.join("rootfs")).expect("busybox rootfs");
    fs::write(
        base.join("Dockerfile"),
        "FROM scratch\nCOPY rootfs/ /\nENV MSG=loaded\nWORKDIR /srv\nCMD [\"sh\", \"-c\", \"echo $MSG in $(pwd)\"]\n",
    )
    .expect("df");
    let tar = env.path("img.tar");
    let tag = format!("ossb-test/archive:{}", std::process::id());
    env.ossb_ok(&[
        "build",
        "--progress",
        "quiet",
        "-t",
        &tag,
        "--output",
        &format!("type=docker,dest={}", tar.display()),
        base.to_str().expect("utf8"),
    ]);
    let load = Command::new("docker")
        .arg("load")
        .arg("-i")
        .arg(&tar)
        .output()
        .expect("docker load");
    assert!(
        load.status.success(),
        "{}",
        String::from_utf8_lossy(&load.stderr)
    );
    let run = Command::new("docker")
        .args(["run", "--rm", &tag])
        .output()
        .expect("docker run");
    let _ = Command::new("docker").args(["rmi", "-f", &tag]).output();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&run.stdout).trim(),
        "loaded in /srv"
    );
}

#[test]
fn run_steps_change_the_filesystem_and_failures_show_the_output() {
    if !tool("umoci") {
        return;
    }
    let env = Env::new();
    let base = busybox_layout(&env);
    env.write(
        "r/Dockerfile",
        &format!(
            "FROM {base}\nARG GREETING=hi\n\
             RUN echo \"$GREETING from run\" > /greeting && rm /bin/vi && mkdir -p /w/d && touch /w/d/f\n\
             RUN rm -rf /w/d && mkdir /w/d && echo new > /w/d/only\n\
             WORKDIR /w\nRUN pwd > where && id -u > uid\n"
        ),
    );
    let out = env.path("r-oci");
    let build = env.ossb(&[
        "build",
        "--progress",
        "plain",
        "--output",
        &format!("type=oci,dest={}", out.display()),
        env.path("r").to_str().expect("utf8"),
    ]);
    let stderr = String::from_utf8_lossy(&build.stderr);
    assert!(build.status.success(), "{stderr}");
    let rootfs = umoci_unpack(&out, "latest", &env.path("r-bundle"));
    assert_eq!(
        fs::read_to_string(rootfs.join("greeting")).expect("greeting"),
        "hi from run\n"
    );
    assert!(
        !rootfs.join("bin/vi").exists(),
        "deleting a base file is a whiteout"
    );
    assert!(rootfs.join("bin/sh").exists());
    let listing: Vec<String> = fs::read_dir(rootfs.join("w/d"))
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(listing, vec!["only"], "a replaced directory is opaque");
    assert_eq!(
        fs::read_to_string(rootfs.join("w/where"))
            .expect("where")
            .trim(),
        "/w"
    );
    assert_eq!(
        fs::read_to_string(rootfs.join("w/uid"))
            .expect("uid")
            .trim(),
        "0"
    );

    env.write(
        "f/Dockerfile",
        &format!("FROM {base}\nRUN echo about to fail && echo details >&2 && exit 7\n"),
    );
    let failed = env.ossb(&[
        "build",
        "--progress",
        "quiet",
        env.path("f").to_str().expect("utf8"),
    ]);
    let err = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(
        failed.status.code(),
        Some(2),
        "a failing RUN is a build error: {err}"
    );
    assert!(err.contains("exited with code 7"), "{err}");
    assert!(
        err.contains("about to fail") && err.contains("details"),
        "the last output lines are shown: {err}"
    );
}

#[test]
fn sigterm_during_run_exits_8_with_status_cancelled_and_leaves_nothing_behind() {
    let env = Env::new();
    let base = busybox_layout(&env);
    let marker = format!("sleep 3{}", std::process::id() % 1000 + 100);
    env.write(
        "s/Dockerfile",
        &format!("FROM {base}\nRUN echo started && {marker}\n"),
    );
    let status = env.path("status.json");
    let child = Command::new(OSSB)
        .args(["build", "--progress", "plain"])
        .arg(env.path("s"))
        .env("OSSB_ROOT", env.path("store"))
        .env("OSSB_STATUS_FILE", &status)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("ossb starts");
    let started = std::time::Instant::now();
    while processes_with(&marker).is_empty() {
        assert!(
            started.elapsed().as_secs() < 60,
            "the RUN step never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).expect("pid"),
        rustix::process::Signal::TERM,
    )
    .expect("kill");
    let out = child.wait_with_output().expect("ossb ends");
    assert_eq!(
        out.status.code(),
        Some(8),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        processes_with(&marker).is_empty(),
        "the RUN step's processes are gone"
    );
    let record: serde_json::Value =
        serde_json::from_slice(&fs::read(&status).expect("status file")).expect("json");
    assert_eq!(record["status"], "Cancelled");
    let leftovers: Vec<_> = fs::read_dir(env.path("store/tmp"))
        .expect("store tmp")
        .collect();
    assert!(leftovers.is_empty(), "no temp dir is left: {leftovers:?}");
    // The store is still usable: a rebuild of something else succeeds.
    env.write("ok/Dockerfile", &format!("FROM {base}\nRUN echo fine\n"));
    env.ossb_ok(&[
        "build",
        "--progress",
        "quiet",
        env.path("ok").to_str().expect("utf8"),
    ]);
}

#[test]
fn a_build_past_its_timeout_exits_7() {
    let env = Env::new();
    let base = busybox_layout(&env);
    env.write("t/Dockerfile", &format!("FROM {base}\nRUN sleep 120\n"));
    let out = env.ossb(&[
        "build",
        "--progress",
        "quiet",
        "--timeout",
        "1s",
        env.path("t").to_str().expect("utf8"),
    ]);
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Build `ctx` with plain progress; returns (digest, number of CACHED steps).
fn build_counting_hits(env: &Env, ctx: &Path, extra: &[&str]) -> (String, usize) {
    let mut args = vec!["build", "--progress", "plain"];
    args.extend_from_slice(extra);
    let ctx_s = ctx.to_str().expect("utf8");
    args.push(ctx_s);
    let out = env.ossb(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let digest = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (
        digest,
        stderr.lines().filter(|l| l.contains(" CACHED ")).count(),
    )
}

#[test]
fn rebuilds_hit_the_cache_unless_content_changes_and_mtime_alone_changes_nothing() {
    let env = Env::new();
    let base = busybox_layout(&env);
    env.write("c/big/one.bin", &"x".repeat(100_000));
    for i in 0..50 {
        env.write(
            &format!("c/small/d{}/f{i}.txt", i % 5),
            &format!("file {i}\n"),
        );
    }
    env.write(
        "c/Dockerfile",
        &format!("FROM {base}\nCOPY big/ /data/big/\nCOPY small/ /data/small/\nRUN ls -R /data > /listing\n"),
    );
    let ctx = env.path("c");
    let (cold, hits) = build_counting_hits(&env, &ctx, &[]);
    assert_eq!(hits, 0, "a cold build runs everything");

    let (again, hits) = build_counting_hits(&env, &ctx, &[]);
    assert_eq!(
        (again.as_str(), hits),
        (cold.as_str(), 3),
        "an unchanged rebuild is a full hit"
    );

    let f = ctx.join("small/d1/f1.txt");
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
    fs::File::options()
        .write(true)
        .open(&f)
        .expect("open")
        .set_modified(later)
        .expect("touch");
    let (touched, hits) = build_counting_hits(&env, &ctx, &[]);
    assert_eq!(
        (touched.as_str(), hits),
        (cold.as_str(), 3),
        "an mtime-only change is still a full hit"
    );

    fs::write(&f, "changed\n").expect("edit");
    let (changed, hits) = build_counting_hits(&env, &ctx, &[]);
    assert_ne!(changed, cold);
    assert_eq!(
        hits, 1,
        "only the steps from the changed COPY on are rebuilt (big/ is reused)"
    );

    let (_, hits) = build_counting_hits(&env, &ctx, &["--no-cache"]);
    assert_eq!(hits, 0, "--no-cache runs every step");
}

#[test]
fn store_commands_list_inspect_remove_and_prune() {
    let env = Env::new();
    env.write("s/a.txt", "a\n");
    env.write("s/Dockerfile", "FROM scratch\nCOPY a.txt /\nLABEL k=v\n");
    let digest = env.ossb_ok(&[
        "build",
        "--progress",
        "quiet",
        "-t",
        "app:1",
        env.path("s").to_str().expect("utf8"),
    ]);
    let list: serde_json::Value =
        serde_json::from_str(&env.ossb_ok(&["images", "--json"])).expect("json");
    let names: Vec<&str> = list
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|i| i["name"].as_str())
        .collect();
    assert!(names.contains(&"docker.io/library/app:1"), "{names:?}");
    let inspect: serde_json::Value =
        serde_json::from_str(&env.ossb_ok(&["inspect", "app:1"])).expect("json");
    assert_eq!(inspect["descriptor"]["digest"], digest.as_str());
    assert_eq!(inspect["config"]["config"]["Labels"]["k"], "v");
    // A build dir left by a killed build is cleaned by prune.
    fs::create_dir_all(env.path("store/tmp/build-leftover/x")).expect("leftover");
    env.ossb_ok(&["rm", "app:1", &digest]);
    let out = env.ossb(&["inspect", "app:1"]);
    assert_eq!(out.status.code(), Some(5));
    let pruned = env.ossb_ok(&["prune", "--cache"]);
    assert!(pruned.starts_with("removed "), "{pruned}");
    assert!(!env.path("store/tmp/build-leftover").exists());
    let blobs = fs::read_dir(env.path("store/blobs/sha256"))
        .expect("blobs")
        .count();
    assert_eq!(blobs, 0, "nothing references any blob any more");
}

/// Write an OCI layout whose single layer is `tar` (uncompressed), tagged `latest`.
fn layout_with_layer(dir: &Path, tar: &[u8]) {
    use sha2::Digest as _;
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).expect("blobs");
    let put = |bytes: &[u8]| -> (String, usize) {
        let hex = hex::encode(sha2::Sha256::digest(bytes));
        fs::write(blobs.join(&hex), bytes).expect("blob");
        (format!("sha256:{hex}"), bytes.len())
    };
    let (layer, layer_size) = put(tar);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer]},
    });
    let (cfg, cfg_size) = put(config.to_string().as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg, "size": cfg_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": layer_size}],
    });
    let (man, man_size) = put(manifest.to_string().as_bytes());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": man, "size": man_size,
                       "annotations": {"org.opencontainers.image.ref.name": "latest"}}],
    });
    fs::write(dir.join("index.json"), index.to_string()).expect("index");
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).expect("oci-layout");
}

#[test]
fn a_hostile_base_layer_is_refused_and_nothing_escapes_the_store() {
    let env = Env::new();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..12].copy_from_slice(b"../../escape");
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(5);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, &b"owned"[..]).expect("append");
    layout_with_layer(&env.path("evil"), &b.into_inner().expect("tar"));
    env.write("c/a.txt", "a\n");
    for dockerfile in [
        format!(
            "FROM oci-layout://{}:latest\nCOPY a.txt /a\n",
            env.path("evil").display()
        ),
        format!(
            "FROM oci-layout://{}:latest\nRUN true\n",
            env.path("evil").display()
        ),
    ] {
        env.write("c/Dockerfile", &dockerfile);
        let out = env.ossb(&[
            "build",
            "--progress",
            "quiet",
            env.path("c").to_str().expect("utf8"),
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("climbs out"), "names the cause: {err}");
    }
    assert!(
        !env.path("escape").exists()
            && !env
                .dir
                .path()
                .parent()
                .expect("parent")
                .join("escape")
                .exists()
    );
    let store = ossb_core::image::store::Store::open(env.path("store")).expect("store");
    assert!(
        store.fsck().expect("fsck").is_clean(),
        "the store is still consistent"
    );
}

#[test]
fn independent_stages_run_together_and_a_failure_cancels_the_others() {
    let env = Env::new();
    let base = busybox_layout(&env);
    let marker = format!("sleep 2{}", std::process::id() % 1000 + 100);
    env.write(
        "p/Dockerfile",
        &format!(
            "FROM {base} AS slow\nRUN {marker}\nFROM {base} AS broken\nRUN echo breaking && exit 3\n\
             FROM {base}\nCOPY --from=slow /etc/passwd /a\nCOPY --from=broken /etc/passwd /b\n"
        ),
    );
    let out = env.ossb(&[
        "build",
        "--progress",
        "plain",
        "--jobs",
        "2",
        env.path("p").to_str().expect("utf8"),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("stage broken") && err.contains("exited with code 3"),
        "the first failure is reported: {err}"
    );
    assert!(
        processes_with(&marker).is_empty(),
        "the sibling stage's RUN was killed"
    );
    // Both stages had started: the slow one's RUN appears in the progress before the failure.
    assert!(err.contains(&marker), "{err}");
}

#[test]
fn stages_built_from_one_stage_do_not_see_each_others_run_changes() {
    let env = Env::new();
    let base = busybox_layout(&env);
    env.write(
        "fork/Dockerfile",
        &format!(
            "FROM {base} AS deps\nRUN echo deps > /deps\n\
             FROM deps AS a\nRUN echo a > /a\n\
             FROM deps AS b\nRUN test -e /deps && test ! -e /a && echo b > /b\n\
             FROM b\nCOPY --from=a /a /a\nRUN test -e /a && test -e /b\n"
        ),
    );
    for jobs in ["1", "2"] {
        env.ossb_ok(&[
            "build",
            "--progress",
            "quiet",
            "--no-cache",
            "--jobs",
            jobs,
            env.path("fork").to_str().expect("utf8"),
        ]);
    }
}
