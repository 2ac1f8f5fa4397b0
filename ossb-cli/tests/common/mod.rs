//! Helpers shared by the `ossb` binary's integration tests: a scratch area with a private
//! store, a busybox base image built by ossb itself, and process lookups.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};

/// The binary under test.
pub const OSSB: &str = env!("CARGO_BIN_EXE_ossb");

/// A scratch area: a store, contexts and outputs, removed on drop.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Write a file below the scratch dir, creating parents.
    pub fn write(&self, rel: &str, data: &str) -> PathBuf {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().expect("has parent")).expect("mkdir");
        fs::write(&p, data).expect("write");
        p
    }

    /// An `ossb` command with the private store and no inherited `SOURCE_DATE_EPOCH`.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(OSSB);
        c.env("OSSB_ROOT", self.path("store"))
            .env_remove("SOURCE_DATE_EPOCH");
        c
    }

    /// An `ossb` command with the private store, no credential source (docker/podman auth
    /// files, pod secret dirs) and no inherited registry settings.
    pub fn without_credentials(&self) -> Command {
        let none = self.path("no-such-dir");
        let mut c = self.cmd();
        c.env("DOCKER_CONFIG", &none)
            .env("HOME", self.path("home"))
            .env("XDG_RUNTIME_DIR", &none)
            .env("XDG_CONFIG_HOME", &none)
            .env("OSSB_REGISTRY_SECRET_DIR", &none)
            .env("OSSB_REGISTRY_AUTH_DIR", &none)
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("OSSB_REGISTRY_CONFIG")
            .env_remove("OSSB_DEFAULT_REGISTRY")
            .env_remove("OSSB_TLS_CA");
        c
    }

    /// Run ossb with the private store.
    pub fn ossb(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("ossb runs")
    }

    /// Run ossb, assert it succeeded, return its trimmed stdout.
    pub fn ossb_ok(&self, args: &[&str]) -> String {
        let out = self.ossb(args);
        assert!(
            out.status.success(),
            "ossb {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

/// A command's stdout and stderr, for assertion messages and searches.
pub fn output_text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Whether a tool is installed (a missing one fails the test under CI, see ossb-testkit).
pub fn tool(name: &str) -> bool {
    ossb_testkit::require_tool(name)
}

/// Build a busybox base into an OCI layout with ossb; returns `oci-layout://DIR:latest`.
pub fn busybox_layout(env: &Env) -> String {
    let base = env.path("bb-ctx");
    ossb_testkit::busybox_rootfs(&base.join("rootfs")).expect("busybox rootfs");
    fs::write(base.join("Dockerfile"), "FROM scratch\nCOPY rootfs/ /\n").expect("df");
    let out = env.path("bb-oci");
    env.ossb_ok(&[
        "build",
        "--progress",
        "quiet",
        "--output",
        &format!("type=oci,dest={}", out.display()),
        base.to_str().expect("utf8"),
    ]);
    format!("oci-layout://{}:latest", out.display())
}

/// Processes whose command line contains `needle` (from /proc).
pub fn processes_with(needle: &str) -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .contains(needle)
                })
                .unwrap_or(false)
        })
        .collect()
}
