//! Multi-platform builds through the real `ossb` binary: an amd64 and an arm64 busybox base
//! (Debian's `busybox-static` for each architecture), the image index checked by skopeo,
//! every platform unpacked by umoci, the index pushed to a real Distribution registry; and
//! the emulator check for RUN steps of a foreign architecture.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

use common::{Env, tool};

fn run_ok(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().expect("tool runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).expect("json")
}

/// `e_machine` of an ELF file (0x3e amd64, 0xb7 arm64).
fn elf_machine(path: &Path) -> u16 {
    let bytes = fs::read(path).expect("read elf");
    assert_eq!(&bytes[..4], b"\x7fELF", "{} is an ELF file", path.display());
    u16::from_le_bytes([bytes[18], bytes[19]])
}

/// A multi-platform busybox base (an index over an amd64 and an arm64 image), built by ossb
/// itself with `COPY rootfs-$TARGETARCH/`; returns its layout directory, or `None` (the skip
/// reason printed) without the arm64 busybox.
fn busybox_index(env: &Env) -> Option<PathBuf> {
    let arm64 = ossb_testkit::arm64_busybox()?;
    let ctx = env.path("base-ctx");
    ossb_testkit::busybox_rootfs(&ctx.join("rootfs-amd64")).expect("amd64 rootfs");
    ossb_testkit::busybox_rootfs_from(&ctx.join("rootfs-arm64"), &arm64).expect("arm64 rootfs");
    // TARGETARCH is a global arg for FROM lines, and inside a stage once declared.
    fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nARG TARGETARCH\nCOPY rootfs-${TARGETARCH}/ /\n",
    )
    .expect("dockerfile");
    let out = env.path("base-oci");
    env.ossb_ok(&[
        "build",
        "--progress",
        "quiet",
        "--platform",
        "linux/amd64,linux/arm64",
        "--output",
        &format!("type=oci,dest={}", out.display()),
        ctx.to_str().expect("utf8"),
    ]);
    Some(out)
}

/// The app built on the base: COPY-only for the target platform, with a build stage on the
/// build platform (`FROM --platform=$BUILDPLATFORM`), which needs no emulator for arm64.
fn app_context(env: &Env) -> PathBuf {
    env.write("app/hello.txt", "hello\n");
    env.write(
        "app/Dockerfile",
        "FROM --platform=$BUILDPLATFORM base AS build\n\
         RUN cat /proc/sys/kernel/random/uuid > /shared-run\n\
         ARG TARGETARCH\nARG BUILDPLATFORM\n\
         RUN echo \"$TARGETARCH built on $BUILDPLATFORM\" > /made-for\n\
         FROM base\n\
         LABEL undeclared=x${TARGETARCH}x\n\
         ARG TARGETPLATFORM\nARG TARGETOS\nARG TARGETARCH\nARG TARGETVARIANT\n\
         LABEL target=$TARGETPLATFORM os=$TARGETOS arch=$TARGETARCH variant=x${TARGETVARIANT}x\n\
         COPY hello.txt /hello.txt\n\
         COPY --from=build /made-for /made-for\n\
         COPY --from=build /shared-run /shared-run\n",
    );
    env.path("app")
}

#[test]
fn a_copy_only_multi_platform_build_makes_an_index_of_both_images() {
    if !tool("skopeo") || !tool("umoci") {
        return;
    }
    let env = Env::new();
    let Some(base) = busybox_index(&env) else {
        return;
    };
    let ctx = app_context(&env);
    let out = env.path("app-oci");
    let digest = env.ossb_ok(&[
        "build",
        "--progress",
        "plain",
        "--platform",
        "linux/amd64,linux/arm64",
        "--build-context",
        &format!("base=oci-layout://{}:latest", base.display()),
        "--annotation",
        "index:org.opencontainers.image.description=two platforms",
        "--annotation",
        "manifest[linux/arm64]:note=arm",
        "-t",
        "app:1",
        "--output",
        &format!("type=oci,dest={}", out.display()),
        ctx.to_str().expect("utf8"),
    ]);
    let layout = format!("oci:{}:1", out.display());
    let raw = json(&run_ok(
        Command::new("skopeo").args(["inspect", "--raw", &layout]),
    ));
    assert_eq!(raw["mediaType"], "application/vnd.oci.image.index.v1+json");
    assert_eq!(
        raw["annotations"]["org.opencontainers.image.description"],
        "two platforms"
    );
    let manifests = raw["manifests"].as_array().expect("manifests");
    let platforms: Vec<String> = manifests
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().expect("os"),
                m["platform"]["architecture"].as_str().expect("arch")
            )
        })
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    let index_json = json(&fs::read(out.join("index.json")).expect("index.json"));
    assert_eq!(index_json["manifests"][0]["digest"], digest.as_str());

    let mut shared_runs = Vec::new();
    for (arch, machine) in [("amd64", 0x3e), ("arm64", 0xb7)] {
        let config = json(&run_ok(Command::new("skopeo").args([
            "inspect",
            "--config",
            "--override-arch",
            arch,
            &layout,
        ])));
        assert_eq!(config["architecture"], arch);
        assert_eq!(config["os"], "linux");
        let labels = &config["config"]["Labels"];
        assert_eq!(labels["target"], format!("linux/{arch}"));
        assert_eq!(labels["arch"], arch);
        assert_eq!(labels["os"], "linux");
        assert_eq!(labels["variant"], "xx");
        assert_eq!(
            labels["undeclared"], "xx",
            "a platform arg is empty in a stage until declared"
        );
        // umoci reads single images: take this platform's out of the index with skopeo.
        let single = env.path(&format!("single-{arch}"));
        run_ok(Command::new("skopeo").args([
            "copy",
            "--override-arch",
            arch,
            &layout,
            &format!("oci:{}:x", single.display()),
        ]));
        let manifest = json(&run_ok(Command::new("skopeo").args([
            "inspect",
            "--raw",
            &format!("oci:{}:x", single.display()),
        ])));
        assert_eq!(
            manifest["annotations"]["note"].as_str(),
            (arch == "arm64").then_some("arm"),
            "manifest[linux/arm64] annotations reach only that image"
        );
        let bundle = env.path(&format!("bundle-{arch}"));
        let mut umoci = Command::new("umoci");
        umoci.arg("unpack");
        if !rustix::process::geteuid().is_root() {
            umoci.arg("--rootless");
        }
        run_ok(
            umoci
                .arg("--image")
                .arg(format!("{}:x", single.display()))
                .arg(&bundle),
        );
        let rootfs = bundle.join("rootfs");
        assert_eq!(elf_machine(&rootfs.join("bin/busybox")), machine);
        assert_eq!(
            fs::read_to_string(rootfs.join("hello.txt")).expect("hello"),
            "hello\n"
        );
        let host = if cfg!(target_arch = "x86_64") {
            "linux/amd64"
        } else {
            "linux/arm64"
        };
        assert_eq!(
            fs::read_to_string(rootfs.join("made-for")).expect("made-for"),
            format!("{arch} built on {host}\n"),
            "the build stage ran on the build platform with this platform's TARGETARCH"
        );
        shared_runs.push(fs::read_to_string(rootfs.join("shared-run")).expect("shared-run"));
    }
    assert_eq!(
        shared_runs[0], shared_runs[1],
        "a build-platform step that does not depend on the target ran once for both platforms"
    );
}

#[test]
fn a_multi_platform_image_is_pushed_with_its_index() {
    if !tool("docker-registry") || !tool("skopeo") {
        return;
    }
    let env = Env::new();
    let Some(base) = busybox_index(&env) else {
        return;
    };
    let registry = ossb_testkit::Registry::start_plain().expect("registry starts");
    env.write("push/hello.txt", "pushed\n");
    env.write("push/Dockerfile", "FROM base\nCOPY hello.txt /hello.txt\n");
    let target = format!("{}/multi/app:1", registry.host());
    let digest = env.ossb_ok(&[
        "build",
        "--progress",
        "quiet",
        "--platform",
        "linux/arm64,linux/amd64",
        "--build-context",
        &format!("base=oci-layout://{}:latest", base.display()),
        "--push",
        "-t",
        &target,
        env.path("push").to_str().expect("utf8"),
    ]);
    let remote = format!("docker://{target}");
    let raw_bytes =
        run_ok(Command::new("skopeo").args(["inspect", "--tls-verify=false", "--raw", &remote]));
    let raw = json(&raw_bytes);
    assert_eq!(raw["mediaType"], "application/vnd.oci.image.index.v1+json");
    assert_eq!(raw["manifests"].as_array().expect("manifests").len(), 2);
    assert_eq!(raw["manifests"][0]["platform"]["architecture"], "arm64");
    use sha2::Digest as _;
    assert_eq!(
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(&raw_bytes))),
        digest,
        "the registry serves the index we printed"
    );
    for arch in ["arm64", "amd64"] {
        let inspect = json(&run_ok(Command::new("skopeo").args([
            "inspect",
            "--tls-verify=false",
            "--override-arch",
            arch,
            &remote,
        ])));
        assert_eq!(inspect["Architecture"], arch);
        assert_eq!(inspect["Layers"].as_array().expect("layers").len(), 2);
    }
}

/// Debian's registration of `qemu-aarch64-static` (magic and mask of an aarch64 ELF
/// executable), with the F flag so the interpreter works inside any root.
const QEMU_AARCH64_REGISTRATION: &str = r":qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64-static:F";

/// A shell prefix that gives the command after it a private `binfmt_misc` (Linux 6.7+ mounts
/// one per user namespace) with the aarch64 handler registered.
fn private_binfmt_script() -> String {
    format!(
        "mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc && \
         printf '%s' '{QEMU_AARCH64_REGISTRATION}' > /proc/sys/fs/binfmt_misc/register && \
         exec \"$@\""
    )
}

/// How to run ossb so that arm64 RUN steps have an emulator: directly when the machine has
/// the handler, else in a user namespace with a private `binfmt_misc`; `None` (with the reason
/// printed) when neither is possible.
fn arm64_runner(env: &Env) -> Option<Command> {
    if !cfg!(target_arch = "x86_64") {
        eprintln!("SKIPPED: the arm64 emulation test is written for an x86_64 host");
        return None;
    }
    if Path::new("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists() {
        return Some(env.cmd());
    }
    let qemu = Path::new("/usr/bin/qemu-aarch64-static");
    if !qemu.exists() || !tool("unshare") {
        eprintln!(
            "SKIPPED: no binfmt_misc handler at /proc/sys/fs/binfmt_misc/qemu-aarch64 and no \
             {} to register a private one (apt-get install qemu-user-static binfmt-support)",
            qemu.display()
        );
        return None;
    }
    let probe = Command::new("unshare")
        .args(["-Urm", "sh", "-c", &private_binfmt_script(), "sh", "true"])
        .output()
        .expect("unshare runs");
    if !probe.status.success() {
        eprintln!(
            "SKIPPED: no binfmt_misc handler for arm64, and this kernel does not mount a \
             private binfmt_misc in a user namespace (Linux 6.7+): {}",
            String::from_utf8_lossy(&probe.stderr).trim()
        );
        return None;
    }
    let mut cmd = Command::new("unshare");
    cmd.args(["-Urm", "sh", "-c", &private_binfmt_script(), "sh"])
        .arg(common::OSSB)
        .env("OSSB_ROOT", env.path("store"))
        .env_remove("SOURCE_DATE_EPOCH");
    Some(cmd)
}

#[test]
fn run_steps_for_arm64_run_under_a_registered_emulator() {
    if !tool("umoci") || !tool("skopeo") {
        return;
    }
    let env = Env::new();
    let Some(mut ossb) = arm64_runner(&env) else {
        return;
    };
    let Some(base) = busybox_index(&env) else {
        return;
    };
    env.write(
        "run/Dockerfile",
        "FROM base\nARG TARGETARCH\nRUN echo \"$(uname -m) $TARGETARCH\" > /machine\n",
    );
    let out = env.path("run-oci");
    run_ok(
        ossb.args([
            "build",
            "--progress",
            "plain",
            "--platform",
            "linux/arm64,linux/amd64",
            "--build-context",
            &format!("base=oci-layout://{}:latest", base.display()),
            "--output",
            &format!("type=oci,dest={}", out.display()),
        ])
        .arg(env.path("run")),
    );
    let layout = format!("oci:{}:latest", out.display());
    for (arch, machine) in [("arm64", "aarch64"), ("amd64", "x86_64")] {
        let single = env.path(&format!("run-{arch}"));
        run_ok(Command::new("skopeo").args([
            "copy",
            "--override-arch",
            arch,
            &layout,
            &format!("oci:{}:x", single.display()),
        ]));
        let bundle = env.path(&format!("run-bundle-{arch}"));
        let mut umoci = Command::new("umoci");
        umoci.arg("unpack");
        if !rustix::process::geteuid().is_root() {
            umoci.arg("--rootless");
        }
        run_ok(
            umoci
                .arg("--image")
                .arg(format!("{}:x", single.display()))
                .arg(&bundle),
        );
        assert_eq!(
            fs::read_to_string(bundle.join("rootfs/machine")).expect("machine"),
            format!("{machine} {arch}\n"),
            "the RUN step ran as {arch}"
        );
    }
}

/// Whether any enabled binfmt_misc handler exists for s390x (then the no-emulator test
/// cannot show its message).
fn s390x_handler_registered() -> bool {
    fs::read_dir("/proc/sys/fs/binfmt_misc")
        .map(|d| {
            d.filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().contains("s390x"))
        })
        .unwrap_or(false)
}

#[test]
fn run_steps_without_an_emulator_fail_before_the_build_starts() {
    if s390x_handler_registered() {
        eprintln!("SKIPPED: an s390x binfmt_misc handler is registered on this machine");
        return;
    }
    let env = Env::new();
    env.write(
        "s/Dockerfile",
        "FROM scratch\nCOPY Dockerfile /\nRUN true\n",
    );
    let out_dir = env.path("s-oci");
    let out = env.ossb(&[
        "build",
        "--progress",
        "plain",
        "--platform",
        "linux/amd64,linux/s390x",
        "--output",
        &format!("type=oci,dest={}", out_dir.display()),
        env.path("s").to_str().expect("utf8"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("platform linux/s390x"), "{stderr}");
    assert!(
        stderr.contains("apt-get install qemu-user-static binfmt-support"),
        "{stderr}"
    );
    assert!(stderr.contains("node of that architecture"), "{stderr}");
    assert!(
        !stderr.contains("COPY Dockerfile"),
        "no step started before the check: {stderr}"
    );
    assert!(!out_dir.exists(), "nothing was written");
}

#[test]
fn several_platforms_into_a_docker_archive_fail_before_building() {
    let env = Env::new();
    env.write("d/Dockerfile", "FROM scratch\nCOPY Dockerfile /\n");
    let dest = env.path("d.tar");
    let out = env.ossb(&[
        "build",
        "--platform",
        "linux/amd64,linux/arm64",
        "--output",
        &format!("type=docker,dest={}", dest.display()),
        env.path("d").to_str().expect("utf8"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains("docker load") && stderr.contains("type=oci"),
        "{stderr}"
    );
    assert!(!dest.exists());
}

#[test]
fn progress_events_name_the_platform_of_each_step() {
    let env = Env::new();
    env.write("p/a.txt", "a\n");
    env.write("p/Dockerfile", "FROM scratch\nCOPY a.txt /\n");
    let out = env.ossb(&[
        "build",
        "--progress",
        "json",
        "--platform",
        "linux/amd64,linux/arm64",
        "--output",
        &format!("type=oci,dest={}", env.path("p-oci").display()),
        env.path("p").to_str().expect("utf8"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let started = events
        .iter()
        .find(|e| e["event"] == "build_started")
        .expect("build_started");
    assert_eq!(
        started["platforms"],
        serde_json::json!(["linux/amd64", "linux/arm64"])
    );
    for platform in ["linux/amd64", "linux/arm64"] {
        assert!(
            events
                .iter()
                .any(|e| e["event"] == "step_finished" && e["id"]["platform"] == platform),
            "a step of {platform} finished: {stdout}"
        );
    }
}

#[test]
fn a_multi_platform_build_tags_its_index_in_the_store() {
    let env = Env::new();
    env.write("s/a.txt", "a\n");
    env.write("s/Dockerfile", "FROM scratch\nCOPY a.txt /\n");
    let iid = env.path("iid");
    let meta = env.path("meta.json");
    let digest = env.ossb_ok(&[
        "build",
        "-q",
        "--platform",
        "linux/amd64,linux/arm64/v8",
        "-t",
        "multi:1",
        "--iidfile",
        iid.to_str().expect("utf8"),
        "--metadata-file",
        meta.to_str().expect("utf8"),
        env.path("s").to_str().expect("utf8"),
    ]);
    assert_eq!(
        fs::read_to_string(&iid).expect("iidfile"),
        digest,
        "--iidfile names the index"
    );
    let meta = json(&fs::read(&meta).expect("metadata"));
    assert_eq!(meta["containerimage.digest"], digest.as_str());
    assert_eq!(
        meta["containerimage.descriptor"]["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert!(meta.get("containerimage.config.digest").is_none());
    let inspect = json(env.ossb_ok(&["inspect", "multi:1"]).as_bytes());
    assert_eq!(inspect["descriptor"]["digest"], digest.as_str());
    let images = inspect["images"].as_array().expect("images");
    assert_eq!(images.len(), 2);
    assert_eq!(images[0]["config"]["architecture"], "amd64");
    assert_eq!(images[1]["config"]["architecture"], "arm64");
    assert_eq!(images[1]["platform"]["architecture"], "arm64");
    assert!(
        images[1]["platform"].get("variant").is_none(),
        "arm64/v8 is normalised to arm64"
    );
}
