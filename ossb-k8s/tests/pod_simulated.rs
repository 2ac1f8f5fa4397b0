//! A simulated pod: Secret and ConfigMap volumes laid out like the kubelet writes them, the
//! Job's environment, and discovery, materialisation and the workspace check against them.
//! `as_uid_1000` re-runs this whole binary as uid 1000 without capabilities.

mod volume_layout;

use ossb_core::ExitCode;
use ossb_core::backend::SecretFrom;
use ossb_k8s::pod::{
    LogLevel, PodContext, PodError, PodPaths, RegistryCredential, Workspace, discover,
    materialize_context,
};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use volume_layout::{atomic_volume, update_volume};

const DOCKER_CONFIG: &[u8] =
    br#"{"auths":{"registry.example.com:5000":{"auth":"Ym90OmRvY2tlci1zZWNyZXQ="}}}"#;

struct Pod {
    _dir: tempfile::TempDir,
    paths: PodPaths,
    token: PathBuf,
}

fn simulated_pod() -> Pod {
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = PodPaths::with_roots(dir.path().join("secrets"), dir.path().join("configmaps"));
    let sa = paths.secrets_root.join("kubernetes.io/serviceaccount");
    atomic_volume(
        &sa,
        &[("token", b"eyJhbGciOi", 0o644), ("namespace", b"ci", 0o644)],
    );
    atomic_volume(
        &paths.registry_secret_dir(),
        &[(".dockerconfigjson", DOCKER_CONFIG, 0o644)],
    );
    atomic_volume(
        &paths.registry_auth(),
        &[
            ("registry", b"ghcr.io\n", 0o644),
            ("username", b"robot\n", 0o644),
            ("password", b"s3cr3t-pa55\n", 0o644),
        ],
    );
    // `items` with a nested path: `aws/credentials`.
    atomic_volume(
        &paths.build_secrets(),
        &[
            ("npm_token", b"npm-abc", 0o400),
            ("aws/credentials", b"[default]\nkey=1", 0o400),
        ],
    );
    atomic_volume(
        &paths.configmaps_root.join("registry-config"),
        &[(
            "config.yaml",
            b"mirrors:\n  docker.io: [mirror.local]\n",
            0o644,
        )],
    );
    atomic_volume(
        &paths.build_context(),
        &[
            ("Dockerfile", b"FROM scratch\nCOPY . /\n", 0o644),
            ("src/main.rs", b"fn main() {}\n", 0o644),
            ("src/bin/tool.rs", b"// tool\n", 0o644),
            ("build.sh", b"#!/bin/sh\n", 0o755),
        ],
    );
    let token = sa.join("token");
    Pod {
        _dir: dir,
        paths,
        token,
    }
}

fn job_env(k: &str) -> Option<String> {
    let env = [
        ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
        ("JOB_NAME", "ossb-build"),
        ("POD_NAME", "ossb-build-7xk2p"),
        ("POD_NAMESPACE", "ci"),
        ("NODE_NAME", "worker-3"),
        ("LOG_LEVEL", "warn"),
    ];
    env.iter()
        .find(|(n, _)| *n == k)
        .map(|(_, v)| v.to_string())
}

#[test]
fn pod_context_from_the_jobs_environment_and_token() {
    let pod = simulated_pod();
    let ctx = PodContext::from_lookup(job_env, &pod.token);
    assert_eq!(
        ctx,
        PodContext {
            in_pod: true,
            job_name: Some("ossb-build".into()),
            pod_name: Some("ossb-build-7xk2p".into()),
            namespace: Some("ci".into()),
            node_name: Some("worker-3".into()),
            log_level: LogLevel::Warn,
            invalid_log_level: None,
        }
    );
    // The token alone (no KUBERNETES_SERVICE_HOST) is enough to detect the pod.
    assert!(PodContext::from_lookup(|_| None, &pod.token).in_pod);
    assert!(!PodContext::from_lookup(|_| None, &pod.token.with_file_name("nope")).in_pod);
    assert_eq!(pod.paths.service_account_token(), pod.token);
}

#[test]
fn pod_discovery_finds_every_documented_volume() {
    let pod = simulated_pod();
    let found = discover(&pod.paths).expect("discovery succeeds");
    assert_eq!(found.registry_credentials.len(), 2);
    match &found.registry_credentials[0] {
        RegistryCredential::DockerConfig { path, registries } => {
            assert_eq!(path, &pod.paths.registry_secret());
            assert_eq!(registries, &["registry.example.com:5000"]);
            assert_eq!(std::fs::read(path).expect("readable"), DOCKER_CONFIG);
        }
        other => panic!("expected the docker config first, got {other:?}"),
    }
    match &found.registry_credentials[1] {
        RegistryCredential::Basic {
            registry,
            username,
            password,
            source,
        } => {
            assert_eq!((registry.as_str(), username.as_str()), ("ghcr.io", "robot"));
            assert_eq!(password.expose(), "s3cr3t-pa55");
            assert_eq!(source, &pod.paths.registry_auth());
        }
        other => panic!("expected basic auth second, got {other:?}"),
    }
    let debug = format!("{found:?}");
    assert!(!debug.contains("s3cr3t-pa55"), "password leaked: {debug}");

    let ids: Vec<&str> = found.build_secrets.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["aws/credentials", "npm_token"]);
    for s in &found.build_secrets {
        let SecretFrom::File(p) = &s.from else {
            panic!("secrets come from files")
        };
        assert!(p.starts_with(pod.paths.build_secrets()));
        assert!(!p.to_string_lossy().contains(".."), "{}", p.display());
    }
    let cfg = found.registry_config.expect("registry config found");
    assert_eq!(cfg.path, pod.paths.registry_config());
    assert!(cfg.text.starts_with("mirrors:"));
    assert_eq!(found.build_context, Some(pod.paths.build_context()));
}

#[test]
fn pod_discovery_with_nothing_mounted_finds_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = PodPaths::with_roots(dir.path().join("s"), dir.path().join("c"));
    let found = discover(&paths).expect("nothing mounted is fine");
    assert!(found.registry_credentials.is_empty() && found.build_secrets.is_empty());
    assert!(found.registry_config.is_none() && found.build_context.is_none());
}

#[test]
fn pod_secret_updates_are_read_through_the_key_path() {
    let pod = simulated_pod();
    let found = discover(&pod.paths).expect("discovery");
    let SecretFrom::File(path) = &found.build_secrets[1].from else {
        panic!("file secret")
    };
    update_volume(
        &pod.paths.build_secrets(),
        &[
            ("npm_token", b"npm-rotated", 0o400),
            ("aws/credentials", b"[default]\nkey=2", 0o400),
        ],
    );
    assert_eq!(std::fs::read(path).expect("still readable"), b"npm-rotated");
}

#[test]
fn pod_context_materialises_as_plain_files_without_bookkeeping_entries() {
    let pod = simulated_pod();
    let ws = tempfile::tempdir().expect("workspace");
    let dest = ws.path().join("context");
    let out = materialize_context(&pod.paths.build_context(), &dest).expect("materialise");
    assert_eq!(out.files, 4);
    assert_eq!(out.bytes, 22 + 13 + 8 + 10);
    let mut seen = Vec::new();
    for entry in walk(&dest) {
        let meta = std::fs::symlink_metadata(&entry).expect("stat");
        assert!(
            !meta.file_type().is_symlink(),
            "{} is a symlink",
            entry.display()
        );
        let rel = entry.strip_prefix(&dest).expect("under dest");
        assert!(!rel.to_string_lossy().contains(".."), "{}", rel.display());
        if meta.is_file() {
            seen.push(rel.to_string_lossy().into_owned());
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        ["Dockerfile", "build.sh", "src/bin/tool.rs", "src/main.rs"]
    );
    let mode = |p: &str| {
        std::fs::metadata(dest.join(p))
            .expect("stat")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!((mode("build.sh"), mode("Dockerfile")), (0o755, 0o644));
    assert_eq!(
        std::fs::read_to_string(dest.join("src/main.rs")).expect("read"),
        "fn main() {}\n"
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read_dir") {
        let p = e.expect("entry").path();
        if std::fs::symlink_metadata(&p).expect("stat").is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

#[test]
fn pod_symlink_escaping_the_volume_is_refused() {
    let pod = simulated_pod();
    let outside = pod.paths.secrets_root.join("outside.txt");
    std::fs::write(&outside, "host file").expect("write");
    symlink(&outside, pod.paths.build_context().join("leak")).expect("symlink");
    let ws = tempfile::tempdir().expect("workspace");
    let err = materialize_context(&pod.paths.build_context(), &ws.path().join("ctx"))
        .expect_err("escape refused");
    assert!(matches!(err, PodError::Escape { .. }), "{err}");
    assert_eq!(err.exit_code(), ExitCode::Configuration);
    assert!(err.to_string().contains("outside the volume"), "{err}");
}

#[test]
fn pod_materialise_never_writes_through_a_planted_symlink() {
    let pod = simulated_pod();
    let ws = tempfile::tempdir().expect("workspace");
    let elsewhere = ws.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).expect("mkdir");
    let dest = ws.path().join("ctx");
    std::fs::create_dir(&dest).expect("mkdir");
    symlink(&elsewhere, dest.join("src")).expect("planted symlink");
    let err = materialize_context(&pod.paths.build_context(), &dest).expect_err("refused");
    assert!(err.to_string().contains("not a directory"), "{err}");
    assert_eq!(std::fs::read_dir(&elsewhere).expect("dir").count(), 0);
}

#[test]
fn pod_malformed_registry_secrets_fail_with_exit_4_without_echoing_them() {
    let pod = simulated_pod();
    std::fs::remove_dir_all(pod.paths.registry_secret_dir()).expect("rm");
    atomic_volume(
        &pod.paths.registry_secret_dir(),
        &[(".dockerconfigjson", b"{\"auths\": \"hunter2", 0o644)],
    );
    let err = discover(&pod.paths).expect_err("bad json");
    assert_eq!(err.exit_code(), ExitCode::Authentication);
    let msg = err.to_string();
    assert!(
        msg.contains(".dockerconfigjson") && !msg.contains("hunter2"),
        "{msg}"
    );

    std::fs::remove_dir_all(pod.paths.registry_secret_dir()).expect("rm");
    std::fs::remove_dir_all(pod.paths.registry_auth()).expect("rm");
    atomic_volume(&pod.paths.registry_auth(), &[("username", b"robot", 0o644)]);
    let err = discover(&pod.paths).expect_err("no password");
    assert_eq!(err.exit_code(), ExitCode::Authentication);
    assert!(err.to_string().contains("password"), "{err}");
}

#[test]
fn pod_workspace_free_space_check_fails_early_with_exit_6() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("ws");
    let ws = Workspace::prepare(&root, 1024).expect("a KiB is free");
    assert!(ws.free_bytes >= 1024 && ws.store_dir().is_dir());
    let impossible = u64::MAX / 2;
    let err = Workspace::prepare(&root, impossible).expect_err("impossible size");
    assert_eq!(err.exit_code().code(), 6);
    let msg = err.to_string();
    assert!(msg.contains(&root.display().to_string()), "{msg}");
    assert!(
        msg.contains(&impossible.to_string()) && msg.contains("bytes free"),
        "{msg}"
    );
    let core: ossb_core::Error = err.into();
    assert_eq!(core.exit_code(), ExitCode::Resource);
}

#[test]
fn pod_workspace_that_is_not_writable_is_reported() {
    if rustix::process::geteuid().is_root() {
        return; // root writes anywhere; this runs in the uid 1000 pass
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o555)).expect("chmod");
    let err = Workspace::prepare(&dir.path().join("ws"), 1).expect_err("read-only");
    assert!(err.to_string().contains("cannot create"), "{err}");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[test]
fn pod_runs_as_the_expected_user() {
    if std::env::var_os("OSSB_TEST_AS_UID").is_some() {
        assert_eq!(rustix::process::geteuid().as_raw(), 1000);
        assert_eq!(rustix::process::getegid().as_raw(), 1000);
    }
}

#[test]
fn as_uid_1000() {
    if std::env::var_os("OSSB_TEST_AS_UID").is_some() || !rustix::process::geteuid().is_root() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid=1000",
            "--regid=1000",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(&exe)
        .args(["pod_", "--test-threads=2"])
        .env("OSSB_TEST_AS_UID", "1000")
        .env("TMPDIR", std::env::temp_dir())
        .output();
    let Ok(out) = out else {
        eprintln!("setpriv not available; skipping the uid 1000 pass");
        return;
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "uid 1000 pass failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("test result: ok. 11 passed"), "{stdout}");
}
