//! `--tls-ca` and authentication failures of `--cache-to` through the real `ossb` binary,
//! against a REAL Distribution registry with TLS (a fresh CA) and htpasswd authentication.
//!
//! A loopback registry is reached without certificate verification by default, as in
//! Docker; with `--tls-ca` it is verified against that CA wherever it speaks TLS. So the
//! right CA works, another CA fails with a TLS error (exit 3) that a verification-free
//! connection would never give, and a plain-HTTP loopback registry keeps working.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{Env, output_text as text, tool};
use ossb_testkit::Registry;

const USER: &str = "ci";
const PASS: &str = "TLSCA-ci-password";

fn start() -> Option<Registry> {
    for t in ["docker-registry", "skopeo", "openssl", "htpasswd", "curl"] {
        if !tool(t) {
            return None;
        }
    }
    Some(Registry::start_tls_htpasswd(USER, PASS).expect("start tls registry"))
}

/// `ossb` with only the credentials of `registry_config` (none when it has none).
fn ossb(env: &Env, args: &[&str]) -> Output {
    env.without_credentials()
        .args(args)
        .output()
        .expect("ossb runs")
}

/// A registry configuration with the test user's credentials for `host` and no CA.
fn credentials_config(env: &Env, host: &str, password: &str) -> String {
    env.write(
        &format!("config-{password}.yaml"),
        &format!("registries:\n  \"{host}\":\n    username: {USER}\n    password: {password}\n"),
    )
    .display()
    .to_string()
}

/// A CA of our own that signed nothing the registry serves.
fn other_ca(env: &Env) -> PathBuf {
    let dir = env.path("other-ca");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let out = Command::new("openssl")
        .current_dir(&dir)
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-sha256",
            "-days",
            "2",
            "-subj",
            "/CN=not-the-registry-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
        ])
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join("ca.crt")
}

fn context(env: &Env) -> String {
    env.write("ctx/app.txt", "pushed over verified tls\n");
    env.write("ctx/Dockerfile", "FROM scratch\nCOPY app.txt /\n");
    env.path("ctx").display().to_string()
}

/// `skopeo inspect` verifying the registry's certificate against its CA; the image's digest.
fn skopeo_digest(reg: &Registry, image: &str) -> String {
    let v: serde_json::Value = serde_json::from_slice(&skopeo(reg, image, false)).expect("json");
    v["Digest"].as_str().expect("digest").to_string()
}

/// `skopeo inspect [--raw]` verifying the registry's certificate against its CA.
fn skopeo(reg: &Registry, image: &str, raw: bool) -> Vec<u8> {
    let certs = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        reg.ca_cert_path().expect("tls registry"),
        certs.path().join("ca.crt"),
    )
    .expect("copy ca");
    let mut cmd = Command::new("skopeo");
    cmd.arg("inspect");
    if raw {
        cmd.arg("--raw");
    }
    let out = cmd
        .args(["--creds", &format!("{USER}:{PASS}"), "--cert-dir"])
        .arg(certs.path())
        .arg(format!("docker://{image}"))
        .output()
        .expect("skopeo runs");
    assert!(
        out.status.success(),
        "skopeo inspect {image}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf8")
}

#[test]
fn tls_ca_verifies_a_loopback_registry_for_build_and_push() {
    let Some(reg) = start() else { return };
    let env = Env::new();
    let host = reg.host();
    let ca = reg.ca_cert_path().expect("tls registry").to_path_buf();
    let wrong = other_ca(&env);
    let config = credentials_config(&env, host, PASS);
    let ctx = context(&env);

    // The registry's CA: verified, and pushed.
    let app = format!("{host}/team/app:1");
    let build = |tls_ca: &Path, tag: &str, push: bool| {
        let mut args = vec![
            "build",
            "--progress",
            "quiet",
            "--registry-config",
            &config,
            "--tls-ca",
            path_str(tls_ca),
            "-t",
            tag,
        ];
        if push {
            args.push("--push");
        }
        args.push(&ctx);
        ossb(&env, &args)
    };
    let out = build(&ca, &app, true);
    assert!(out.status.success(), "{}", text(&out));
    let digest = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(skopeo_digest(&reg, &app), digest);

    // Another CA: the certificate is checked and refused (unverified TLS would have
    // accepted it), exit code 3, and the message says what to do.
    let out = build(&wrong, &format!("{host}/team/app:2"), true);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("tls error") && err.contains(host) && err.contains("--tls-ca"),
        "{err}"
    );

    // `ossb push` takes --tls-ca the same way.
    let local = format!("{host}/team/local:1");
    let out = build(&ca, &local, false);
    assert!(out.status.success(), "{}", text(&out));
    let built = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let push = |tls_ca: &Path| {
        ossb(
            &env,
            &[
                "push",
                "--registry-config",
                &config,
                "--tls-ca",
                path_str(tls_ca),
                &local,
            ],
        )
    };
    let out = push(&wrong);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("tls error"), "{err}");
    let out = push(&ca);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(skopeo_digest(&reg, &local), built);

    // OSSB_TLS_CA is the same as the flag.
    let out = env
        .cmd()
        .env("DOCKER_CONFIG", env.path("no-such-dir"))
        .env("OSSB_TLS_CA", &wrong)
        .args(["push", "--registry-config", &config, &local])
        .output()
        .expect("ossb runs");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));

    // Without --tls-ca a loopback registry is not verified, as in Docker.
    let out = ossb(
        &env,
        &[
            "push",
            "--registry-config",
            &config,
            &local,
            &format!("{host}/team/copy:1"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn tls_ca_keeps_plain_http_loopback_registries_working() {
    if !tool("docker-registry") || !tool("openssl") {
        return;
    }
    let reg = Registry::start_plain().expect("registry starts");
    let env = Env::new();
    let ctx = context(&env);
    let ca = other_ca(&env);
    let out = ossb(
        &env,
        &[
            "build",
            "--progress",
            "quiet",
            "--tls-ca",
            path_str(&ca),
            "--push",
            "-t",
            &format!("{}/plain/app:1", reg.host()),
            &ctx,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_cache_export_refused_for_credentials_exits_4() {
    let Some(reg) = start() else { return };
    let env = Env::new();
    let host = reg.host();
    let ctx = context(&env);
    let cache = format!("type=registry,ref={host}/team/cache");
    let ca = reg.ca_cert_path().expect("tls registry").to_path_buf();

    // No credentials at all, and a wrong password: both are authentication failures.
    let wrong = credentials_config(&env, host, "wrong-TLSCA");
    let empty = env.write("empty.yaml", "").display().to_string();
    for config in [&empty, &wrong] {
        let out = ossb(
            &env,
            &[
                "build",
                "--progress",
                "quiet",
                "--registry-config",
                config,
                "--tls-ca",
                path_str(&ca),
                "--cache-to",
                &cache,
                &ctx,
            ],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{config}: {err}");
        assert!(
            err.contains("cannot export the build cache")
                && err.contains("authentication")
                && err.contains(host),
            "{err}"
        );
        assert!(!err.contains("TLSCA"), "no password in the message: {err}");
    }

    // With the right credentials the same export works.
    let good = credentials_config(&env, host, PASS);
    let out = ossb(
        &env,
        &[
            "build",
            "--progress",
            "quiet",
            "--registry-config",
            &good,
            "--tls-ca",
            path_str(&ca),
            "--cache-to",
            &cache,
            &ctx,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let manifest: serde_json::Value =
        serde_json::from_slice(&skopeo(&reg, &format!("{host}/team/cache:latest"), true))
            .expect("json");
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.ossb.cache.config.v1+json"
    );
}
