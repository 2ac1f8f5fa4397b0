//! `ossb build --push` and `ossb push` against a REAL Distribution registry with token
//! authentication (`auth: token:`) in front of the test kit's token server, with credentials
//! from a Docker `config.json`: scopes asked, cross-repository mounts, exit code 4 for a
//! wrong password and for an account that may pull but not push, and no password or token
//! in the output even at debug log level.

mod common;

use std::path::Path;
use std::process::Output;

use common::{Env, output_text as text};
use ossb_testkit::{Registry, TokenAuth, TokenServer};

const USER: &str = "ci-bot";
const PASS: &str = "TOKENCHECK-ci-bot-password";
const READER: &str = "reader";
const READER_PASS: &str = "TOKENCHECK-reader-password";

fn start() -> Option<Registry> {
    for tool in ["docker-registry", "curl", "openssl"] {
        if !common::tool(tool) {
            return None;
        }
    }
    let policy = TokenAuth::new()
        .user(USER, PASS)
        .user(READER, READER_PASS)
        .grant(USER, "team/app", &["pull", "push"])
        .grant(USER, "team/copy", &["pull", "push"])
        .grant(READER, "team/app", &["pull"]);
    Some(Registry::start_token_auth(policy).expect("start token-auth registry"))
}

fn tokens(reg: &Registry) -> &TokenServer {
    reg.token_server().expect("token server")
}

/// A Docker config directory with `auths` for the registry.
fn docker_config(env: &Env, name: &str, host: &str, user: &str, pass: &str) -> String {
    let auth = base64(&format!("{user}:{pass}"));
    let dir = env.path(name);
    env.write(
        &format!("{name}/config.json"),
        &format!(r#"{{"auths": {{"{host}": {{"auth": "{auth}"}}}}}}"#),
    );
    dir.display().to_string()
}

/// Runs ossb with only the given Docker config as a credential source and debug logging.
fn ossb(env: &Env, docker_config: &str, args: &[&str]) -> Output {
    let none = env.path("no-such-dir");
    env.cmd()
        .env("DOCKER_CONFIG", docker_config)
        .env("HOME", env.path("home"))
        .env("XDG_RUNTIME_DIR", &none)
        .env("XDG_CONFIG_HOME", &none)
        .env("OSSB_REGISTRY_SECRET_DIR", &none)
        .env("OSSB_REGISTRY_AUTH_DIR", &none)
        .env_remove("REGISTRY_AUTH_FILE")
        .env("LOG_LEVEL", "debug")
        .env("OSSB_LOG_FORMAT", "text")
        .args(args)
        .output()
        .expect("ossb runs")
}

fn base64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// No password (plain or base64) and no issued token in the output.
fn assert_no_secrets(out: &Output, reg: &Registry) {
    let all = text(out);
    for secret in [PASS, READER_PASS, "wrong-TOKENCHECK"] {
        assert!(!all.contains(secret), "a password leaked:\n{all}");
    }
    for user in [USER, READER] {
        for pass in [PASS, READER_PASS, "wrong-TOKENCHECK"] {
            assert!(
                !all.contains(&base64(&format!("{user}:{pass}"))),
                "a basic credential leaked:\n{all}"
            );
        }
    }
    for token in tokens(reg).issued_tokens() {
        // The signature part alone is unique to the token.
        let sig = token.rsplit('.').next().expect("jws");
        assert!(!all.contains(sig), "an issued token leaked:\n{all}");
    }
    assert!(!all.contains("TOKENCHECK"), "a secret leaked:\n{all}");
}

fn context(env: &Env) -> String {
    env.write("ctx/app.txt", "built for a token-auth registry\n");
    env.write("ctx/Dockerfile", "FROM scratch\nCOPY app.txt /\n");
    env.path("ctx").display().to_string()
}

#[test]
fn build_push_and_push_through_token_auth() {
    let Some(reg) = start() else { return };
    let env = Env::new();
    let host = reg.host();
    let good = docker_config(&env, "docker-good", host, USER, PASS);
    let ctx = context(&env);
    let app = format!("{host}/team/app:1");

    let out = ossb(
        &env,
        &good,
        &[
            "build",
            "--progress",
            "quiet",
            "--output",
            "type=image",
            "--push",
            "-t",
            &app,
            &ctx,
        ],
    );
    assert!(out.status.success(), "build --push failed:\n{}", text(&out));
    let digest = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(digest.starts_with("sha256:"), "{digest}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("DEBUG"),
        "debug logging is on:\n{}",
        text(&out)
    );
    assert_no_secrets(&out, &reg);
    let reqs = tokens(&reg).requests();
    assert!(!reqs.is_empty());
    for q in &reqs {
        assert_eq!(q.user.as_deref(), Some(USER), "{reqs:#?}");
        assert_eq!(q.status, 200);
        assert!(
            q.scopes == ["repository:team/app:pull"]
                || q.scopes == ["repository:team/app:pull,push"],
            "only team/app is asked for: {reqs:#?}"
        );
    }
    assert!(
        reqs.iter()
            .any(|q| q.scopes == ["repository:team/app:pull,push"]),
        "{reqs:#?}"
    );

    // `ossb push` to another repository mounts the layers from team/app: one token for
    // push on team/copy and pull on team/app.
    tokens(&reg).clear_requests();
    let copy = format!("{host}/team/copy:1");
    let out = ossb(&env, &good, &["push", &app, &copy]);
    assert!(out.status.success(), "push failed:\n{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), digest);
    assert_no_secrets(&out, &reg);
    let reqs = tokens(&reg).requests();
    let mount = [
        "repository:team/copy:pull,push".to_string(),
        "repository:team/app:pull".to_string(),
    ];
    let mounted = reqs.iter().find(|q| q.scopes == mount);
    assert!(mounted.is_some(), "a mount token was asked for: {reqs:#?}");
    assert_eq!(mounted.map(|q| q.granted.clone()), Some(mount.to_vec()));

    // A pull-only account builds FROM the pushed image: only pull scopes are asked for.
    let reader = docker_config(&env, "docker-reader", host, READER, READER_PASS);
    env.write(
        "from/Dockerfile",
        &format!("FROM {app}\nCOPY extra.txt /\n"),
    );
    env.write("from/extra.txt", "on top\n");
    tokens(&reg).clear_requests();
    let dest = env.path("from-oci");
    let out = ossb(
        &env,
        &reader,
        &[
            "build",
            "--progress",
            "quiet",
            // The store holds the image under that name; --pull asks the registry anyway.
            "--pull",
            "--output",
            &format!("type=oci,dest={}", dest.display()),
            env.path("from").to_str().expect("utf8"),
        ],
    );
    assert!(out.status.success(), "build FROM failed:\n{}", text(&out));
    assert_no_secrets(&out, &reg);
    let reqs = tokens(&reg).requests();
    assert!(
        !reqs.is_empty(),
        "the base image was pulled through token auth"
    );
    for q in &reqs {
        assert_eq!(q.scopes, ["repository:team/app:pull"], "{reqs:#?}");
        assert_eq!(q.user.as_deref(), Some(READER));
    }
}

#[test]
fn wrong_password_and_denied_push_exit_4() {
    let Some(reg) = start() else { return };
    let env = Env::new();
    let host = reg.host();
    let ctx = context(&env);
    let app = format!("{host}/team/app:1");
    let good = docker_config(&env, "docker-good", host, USER, PASS);
    let out = ossb(
        &env,
        &good,
        &[
            "build",
            "--progress",
            "quiet",
            "--output",
            "type=image",
            "--push",
            "-t",
            &app,
            &ctx,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));

    // Wrong password: the token server refuses it.
    let wrong = docker_config(&env, "docker-wrong", host, USER, "wrong-TOKENCHECK");
    let out = ossb(&env, &wrong, &["push", &app]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let config = Path::new(&wrong).join("config.json");
    for part in [
        format!("authentication failed for registry {host}"),
        "team/app".to_string(),
        "refused the credentials from docker config".to_string(),
        config.display().to_string(),
        "incorrect username or password".to_string(),
        format!("check the credentials for {host}"),
    ] {
        assert!(stderr.contains(&part), "{part:?} missing from:\n{stderr}");
    }
    assert_no_secrets(&out, &reg);

    // A reader may pull but not push: the token withholds push and the registry refuses.
    let reader = docker_config(&env, "docker-reader", host, READER, READER_PASS);
    tokens(&reg).clear_requests();
    let out = ossb(
        &env,
        &reader,
        &["push", &app, &format!("{host}/team/app:2")],
    );
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for part in [
        format!("authentication failed for registry {host}"),
        "does not grant repository:team/app:pull,push".to_string(),
        "insufficient_scope".to_string(),
        "docker config".to_string(),
        "their access to the repository".to_string(),
    ] {
        assert!(stderr.contains(&part), "{part:?} missing from:\n{stderr}");
    }
    assert_no_secrets(&out, &reg);
    let reqs = tokens(&reg).requests();
    assert!(
        reqs.iter()
            .any(|q| q.scopes == ["repository:team/app:pull,push"]
                && q.granted == ["repository:team/app:pull"]),
        "{reqs:#?}"
    );
}

#[test]
fn push_with_credentials_from_the_registry_config() {
    let Some(reg) = start() else { return };
    let env = Env::new();
    let host = reg.host();
    let ctx = context(&env);
    let app = format!("{host}/team/app:1");
    // Built into the store only; no Docker config anywhere.
    let empty = env.path("docker-empty").display().to_string();
    let out = ossb(
        &env,
        &empty,
        &["build", "--progress", "quiet", "-t", &app, &ctx],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = ossb(&env, &empty, &["push", &app]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no credentials are configured"),
        "{}",
        text(&out)
    );

    // A loopback registry with its own `ca_file` is verified against it: a CA that did not
    // sign the registry's certificate is a TLS error (exit 3), the right one works.
    let config = |name: &str, ca: &Path| {
        env.write(
            name,
            &format!(
                "registries:\n  \"{host}\":\n    username: {USER}\n    password: {PASS}\n    \
                 ca_file: {}\n",
                ca.display()
            ),
        )
    };
    let wrong_ca = config("wrong-ca.yaml", tokens(&reg).root_cert_bundle());
    let out = ossb(
        &env,
        &empty,
        &[
            "push",
            "--registry-config",
            wrong_ca.to_str().expect("utf8"),
            &app,
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("tls error talking to registry {host}")),
        "{stderr}"
    );
    assert_no_secrets(&out, &reg);
    let cfg = config("registries.yaml", reg.ca_cert_path().expect("ca"));
    tokens(&reg).clear_requests();
    let out = ossb(
        &env,
        &empty,
        &[
            "push",
            "--registry-config",
            cfg.to_str().expect("utf8"),
            &app,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_no_secrets(&out, &reg);
    let reqs = tokens(&reg).requests();
    assert!(
        !reqs.is_empty() && reqs.iter().all(|q| q.user.as_deref() == Some(USER)),
        "{reqs:#?}"
    );
}
