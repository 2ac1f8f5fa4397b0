//! The credential chain against a real Distribution registry with TLS and htpasswd: each
//! source pushes and pulls, wrong credentials are an authentication error naming the source,
//! and a higher-priority source wins.

mod common;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use common::build_image;
use ossb_registry::manifest::OCI_MANIFEST;
use ossb_registry::{
    CredentialChain, Environment, Reference, RegistryClient, RegistryConfig, RegistryError,
};
use ossb_testkit::{Registry, require_tool};

const USER: &str = "ossb-creds";
const PASS: &str = "right-Pa55word-7f3a";
const WRONG: &str = "wrong-Pa55word-91c2";

fn start() -> Option<Registry> {
    for tool in ["docker-registry", "openssl", "htpasswd"] {
        if !require_tool(tool) {
            return None;
        }
    }
    Some(Registry::start_tls_htpasswd(USER, PASS).expect("start tls registry"))
}

/// A sandbox: an empty home, no secret mounts, and only the system PATH.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("home")).expect("mkdir");
        Self { dir }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn env(&self) -> Environment {
        Environment::from_vars([
            ("HOME", self.path("home").display().to_string()),
            ("PATH", "/usr/bin:/bin".to_string()),
        ])
    }

    fn chain(&self, config: &RegistryConfig, env: Environment) -> CredentialChain {
        CredentialChain::builder(config)
            .environment(env)
            .registry_secret_dir(self.path("secret"))
            .registry_auth_dir(self.path("auth"))
            .build()
    }

    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, text).expect("write");
        p
    }
}

fn auths_json(host: &str, user: &str, pass: &str) -> String {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    format!(r#"{{"auths": {{"https://{host}/v1/": {{"auth": "{auth}"}}}}}}"#)
}

/// Lays out files as the kubelet's atomic writer does: the data in `..TIMESTAMP/`, a
/// `..data` symlink to it, and one symlink per key through `..data`.
fn atomic_writer(dir: &Path, files: &[(&str, &str)]) {
    let stamp = dir.join("..2026_01_02_03_04_05.123456789");
    std::fs::create_dir_all(&stamp).expect("mkdir");
    for (name, text) in files {
        std::fs::write(stamp.join(name), text).expect("write");
        symlink(format!("..data/{name}"), dir.join(name)).expect("symlink key");
    }
    symlink("..2026_01_02_03_04_05.123456789", dir.join("..data")).expect("symlink ..data");
}

fn registry_config(yaml: &str) -> RegistryConfig {
    RegistryConfig {
        cert_dirs: Vec::new(),
        ..RegistryConfig::from_yaml(yaml).expect("yaml")
    }
}

async fn push_pull(
    reg: &Registry,
    config: RegistryConfig,
    chain: CredentialChain,
    repo: &str,
) -> Result<(), RegistryError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let img = build_image(dir.path(), repo);
    let client = RegistryClient::with_credentials(config, Arc::new(chain));
    let r = Reference::parse(&format!("{}/ossb/{repo}:v1", reg.host())).expect("ref");
    client.put_blob(&r, &img.layer_path).await?;
    client.put_blob(&r, &img.config_path).await?;
    let d = client.put_manifest(&r, &img.manifest, OCI_MANIFEST).await?;
    let (bytes, _, digest) = client.get_manifest(&r).await?;
    assert_eq!((bytes, digest), (img.manifest.clone(), d));
    Ok(())
}

fn assert_auth_error(err: &RegistryError, source_part: &str) {
    assert!(err.is_auth(), "{err:?}");
    assert_eq!(err.exit_code() as i32, 4);
    let msg = err.to_string();
    assert!(
        msg.contains(source_part),
        "the error should name {source_part}: {msg}"
    );
    for secret in [PASS, WRONG] {
        assert!(
            !msg.contains(secret) && !format!("{err:?}").contains(secret),
            "{msg}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_config_json() {
    let Some(reg) = start() else { return };
    let sb = Sandbox::new();
    sb.write(
        "home/.docker/config.json",
        &auths_json(reg.host(), USER, PASS),
    );
    let chain = sb.chain(&RegistryConfig::default(), sb.env());
    push_pull(&reg, registry_config(""), chain, "dockercfg")
        .await
        .expect("push and pull");
    // $DOCKER_CONFIG replaces ~/.docker.
    sb.write("dc/config.json", &auths_json(reg.host(), USER, PASS));
    let env = Environment::from_vars([("DOCKER_CONFIG", sb.path("dc").display().to_string())]);
    push_pull(
        &reg,
        registry_config(""),
        sb.chain(&RegistryConfig::default(), env),
        "dockercfg2",
    )
    .await
    .expect("push and pull with DOCKER_CONFIG");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_dockerconfigjson_atomic_writer_layout() {
    let Some(reg) = start() else { return };
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.path("secret")).expect("mkdir");
    atomic_writer(
        &sb.path("secret"),
        &[(".dockerconfigjson", &auths_json(reg.host(), USER, PASS))],
    );
    assert!(
        std::fs::symlink_metadata(sb.path("secret/.dockerconfigjson"))
            .expect("meta")
            .is_symlink()
    );
    let chain = sb.chain(&RegistryConfig::default(), sb.env());
    push_pull(&reg, registry_config(""), chain, "k8sjson")
        .await
        .expect("push and pull");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_legacy_dockercfg() {
    let Some(reg) = start() else { return };
    let sb = Sandbox::new();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASS}"));
    sb.write(
        "secret/.dockercfg",
        &format!(
            r#"{{"{}": {{"auth": "{auth}", "email": "ci@example.com"}}}}"#,
            reg.host()
        ),
    );
    let chain = sb.chain(&RegistryConfig::default(), sb.env());
    push_pull(&reg, registry_config(""), chain, "k8slegacy")
        .await
        .expect("push and pull");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_individual_files() {
    let Some(reg) = start() else { return };
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.path("auth")).expect("mkdir");
    let registry = format!("{}\n", reg.host());
    atomic_writer(
        &sb.path("auth"),
        &[
            ("registry", &registry),
            ("username", USER),
            ("password", PASS),
        ],
    );
    let chain = sb.chain(&RegistryConfig::default(), sb.env());
    push_pull(&reg, registry_config(""), chain, "k8sfiles")
        .await
        .expect("push and pull");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_helper_script() {
    let Some(reg) = start() else { return };
    let sb = Sandbox::new();
    let log = sb.path("helper.log");
    // A helper speaking the real protocol: `get`, server on stdin, JSON on stdout.
    let script = format!(
        r#"#!/bin/sh
[ "$1" = get ] || {{ echo "unsupported action $1" >&2; exit 2; }}
read server
echo "$server" >> '{log}'
if [ "$server" = '{host}' ]; then
  printf '{{"ServerURL":"%s","Username":"{USER}","Secret":"{PASS}"}}\n' "$server"
else
  echo "credentials not found in native keychain"; exit 1
fi
"#,
        log = log.display(),
        host = reg.host()
    );
    let helper = sb.write("bin/docker-credential-ossbtest", &script);
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    sb.write(
        "home/.docker/config.json",
        &format!(
            r#"{{"auths": {{}}, "credHelpers": {{"{}": "ossbtest"}}}}"#,
            reg.host()
        ),
    );
    let env = sb.env().with(
        "PATH",
        format!("{}:/usr/bin:/bin", sb.path("bin").display()),
    );
    push_pull(
        &reg,
        registry_config(""),
        sb.chain(&RegistryConfig::default(), env.clone()),
        "helper",
    )
    .await
    .expect("push and pull");
    let asked = std::fs::read_to_string(&log).expect("helper ran");
    assert_eq!(
        asked.lines().next(),
        Some(reg.host()),
        "the helper got the server on stdin"
    );
    assert_eq!(
        asked.lines().count(),
        1,
        "the result is cached for the process"
    );

    // credsStore names the same helper.
    sb.write(
        "home/.docker/config.json",
        r#"{"auths": {}, "credsStore": "ossbtest"}"#,
    );
    push_pull(
        &reg,
        registry_config(""),
        sb.chain(&RegistryConfig::default(), env),
        "store",
    )
    .await
    .expect("push and pull via credsStore");

    // A helper that is not installed is an authentication error naming it and the file.
    sb.write(
        "home/.docker/config.json",
        &format!(
            r#"{{"credHelpers": {{"{}": "not-installed"}}}}"#,
            reg.host()
        ),
    );
    let err = push_pull(
        &reg,
        registry_config(""),
        sb.chain(&RegistryConfig::default(), sb.env()),
        "nohelper",
    )
    .await
    .expect_err("missing helper");
    assert_auth_error(
        &err,
        "docker-credential-not-installed was not found in PATH",
    );
    assert!(err.to_string().contains("config.json"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_auth_json_and_registry_auth_file() {
    let Some(reg) = start() else { return };
    let sb = Sandbox::new();
    let text = format!(
        r#"{{"auths": {{"{}": {{"auth": "{}"}}}}}}"#,
        reg.host(),
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASS}"))
    );
    sb.write("run/containers/auth.json", &text);
    let env = sb
        .env()
        .with("XDG_RUNTIME_DIR", sb.path("run").display().to_string());
    push_pull(
        &reg,
        registry_config(""),
        sb.chain(&RegistryConfig::default(), env),
        "authjson",
    )
    .await
    .expect("push and pull with auth.json");
    let f = sb.write("elsewhere/auth.json", &text);
    let env = sb.env().with("REGISTRY_AUTH_FILE", f.display().to_string());
    push_pull(
        &reg,
        registry_config(""),
        sb.chain(&RegistryConfig::default(), env),
        "authfile",
    )
    .await
    .expect("push and pull with REGISTRY_AUTH_FILE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_config_inline_and_auth_file() {
    let Some(reg) = start() else { return };
    let sb = Sandbox::new();
    let yaml = format!(
        "registries:\n  \"{}\":\n    username: {USER}\n    password: {PASS}\n",
        reg.host()
    );
    let config = registry_config(&yaml);
    push_pull(&reg, config.clone(), sb.chain(&config, sb.env()), "inline")
        .await
        .expect("inline");
    let f = sb.write("cfg/auth.json", &auths_json(reg.host(), USER, PASS));
    let yaml = format!(
        "registries:\n  \"{}\":\n    auth_file: {}\n",
        reg.host(),
        f.display()
    );
    let config = registry_config(&yaml);
    push_pull(
        &reg,
        config.clone(),
        sb.chain(&config, sb.env()),
        "authfilecfg",
    )
    .await
    .expect("auth_file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_name_the_source() {
    let Some(reg) = start() else { return };
    let sb = Sandbox::new();
    let cfg = sb.write(
        "home/.docker/config.json",
        &auths_json(reg.host(), USER, WRONG),
    );
    let err = push_pull(
        &reg,
        registry_config(""),
        sb.chain(&RegistryConfig::default(), sb.env()),
        "wrong",
    )
    .await
    .expect_err("wrong password");
    assert_auth_error(&err, &format!("docker config {}", cfg.display()));
    assert!(
        err.to_string().contains("rejected the credentials"),
        "{err}"
    );

    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.path("auth")).expect("mkdir");
    atomic_writer(
        &sb.path("auth"),
        &[
            ("registry", reg.host()),
            ("username", USER),
            ("password", WRONG),
        ],
    );
    let err = push_pull(
        &reg,
        registry_config(""),
        sb.chain(&RegistryConfig::default(), sb.env()),
        "wrong2",
    )
    .await
    .expect_err("wrong password");
    assert_auth_error(&err, "kubernetes secret files");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn higher_priority_source_wins() {
    let Some(reg) = start() else { return };
    // The Kubernetes secret (right) is consulted before ~/.docker/config.json (wrong).
    let sb = Sandbox::new();
    sb.write(
        "home/.docker/config.json",
        &auths_json(reg.host(), USER, WRONG),
    );
    sb.write(
        "secret/.dockerconfigjson",
        &auths_json(reg.host(), USER, PASS),
    );
    push_pull(
        &reg,
        registry_config(""),
        sb.chain(&RegistryConfig::default(), sb.env()),
        "prio1",
    )
    .await
    .expect("the secret wins");

    // The registry config (wrong) is consulted before the Kubernetes secret (right).
    let yaml = format!(
        "registries:\n  \"{}\":\n    username: {USER}\n    password: {WRONG}\n",
        reg.host()
    );
    let config = registry_config(&yaml);
    let err = push_pull(&reg, config.clone(), sb.chain(&config, sb.env()), "prio2")
        .await
        .expect_err("the registry config wins, with its wrong password");
    assert_auth_error(&err, "registry config");

    // $REGISTRY_AUTH_FILE (right) before containers auth.json (wrong) before docker config.
    let sb = Sandbox::new();
    sb.write(
        "run/containers/auth.json",
        &auths_json(reg.host(), USER, WRONG),
    );
    let f = sb.write("raf.json", &auths_json(reg.host(), USER, PASS));
    let env = sb
        .env()
        .with("XDG_RUNTIME_DIR", sb.path("run").display().to_string())
        .with("REGISTRY_AUTH_FILE", f.display().to_string());
    push_pull(
        &reg,
        registry_config(""),
        sb.chain(&RegistryConfig::default(), env),
        "prio3",
    )
    .await
    .expect("REGISTRY_AUTH_FILE wins");
}
