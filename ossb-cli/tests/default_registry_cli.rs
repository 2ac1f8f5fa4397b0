//! `default_registry` through the real `ossb` binary against a REAL Distribution registry:
//! with `default_registry` in the registry configuration, short names in `FROM`, `-t`,
//! `--cache-to`, `--build-context …=docker-image://` and `ossb push` all mean that registry
//! (checked with skopeo); without it they still mean Docker Hub.
//!
//! There is no network access in CI: a build that goes to Docker Hub fails at once (the
//! name does not resolve) and says so; `--timeout` bounds it where a resolver might hang.

mod common;

use std::fs;
use std::process::{Command, Output};

use common::{Env, output_text as text, tool};
use ossb_testkit::Registry;

/// `ossb` with no credential sources and no inherited registry settings.
fn ossb(env: &Env, args: &[&str]) -> Output {
    env.without_credentials()
        .args(args)
        .output()
        .expect("ossb runs")
}

fn ok(env: &Env, args: &[&str]) -> String {
    let out = ossb(env, args);
    assert!(
        out.status.success(),
        "ossb {args:?} failed:\n{}",
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `skopeo inspect` of an image in the plain-HTTP test registry.
fn skopeo_inspect(image: &str) -> serde_json::Value {
    let out = Command::new("skopeo")
        .args([
            "inspect",
            "--tls-verify=false",
            &format!("docker://{image}"),
        ])
        .output()
        .expect("skopeo runs");
    assert!(
        out.status.success(),
        "skopeo inspect {image}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("skopeo prints json")
}

/// The manifest of an artifact (skopeo inspects only images without `--raw`).
fn skopeo_raw(image: &str) -> serde_json::Value {
    let out = Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{image}"),
        ])
        .output()
        .expect("skopeo runs");
    assert!(
        out.status.success(),
        "skopeo inspect --raw {image}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("a json manifest")
}

/// The base images of a plan printed by `ossb dockerfile plan --format json`.
fn planned_bases(env: &Env, extra: &[&str]) -> String {
    let mut args = vec!["dockerfile", "plan", "--format", "json"];
    args.extend_from_slice(extra);
    ok(env, &args)
}

#[test]
fn short_names_use_the_configured_default_registry() {
    if !tool("docker-registry") || !tool("skopeo") {
        return;
    }
    let reg = Registry::start_plain().expect("registry starts");
    let host = reg.host();
    let env = Env::new();
    let config = env.write(
        "registries.yaml",
        &format!("default_registry: \"{host}\"\n"),
    );
    let config = config.to_str().expect("utf8");

    // `-t busybox-base --push` puts the base on the default registry.
    let base = env.path("base-ctx");
    ossb_testkit::busybox_rootfs(&base.join("rootfs")).expect("busybox rootfs");
    fs::write(base.join("Dockerfile"), "FROM scratch\nCOPY rootfs/ /\n").expect("df");
    let base_digest = ok(
        &env,
        &[
            "build",
            "--progress",
            "quiet",
            "--registry-config",
            config,
            "--push",
            "-t",
            "busybox-base",
            base.to_str().expect("utf8"),
        ],
    );
    let inspect = skopeo_inspect(&format!("{host}/busybox-base:latest"));
    assert_eq!(inspect["Digest"], base_digest.as_str());

    // `FROM busybox-base`, `--build-context base=docker-image://busybox-base`, `-t app`
    // and `--cache-to ref=app-cache` all go to the default registry.
    env.write("app/app.txt", "on the default registry\n");
    env.write(
        "app/Dockerfile",
        "FROM base AS via-context\nCOPY app.txt /via-context.txt\n\
         FROM busybox-base\nCOPY --from=via-context /via-context.txt /\nCOPY app.txt /\n",
    );
    let app = env.path("app");
    let digest = ok(
        &env,
        &[
            "build",
            "--progress",
            "quiet",
            "--registry-config",
            config,
            "--build-context",
            "base=docker-image://busybox-base",
            "--cache-to",
            "type=registry,ref=app-cache",
            "--push",
            "-t",
            "app",
            app.to_str().expect("utf8"),
        ],
    );
    let inspect = skopeo_inspect(&format!("{host}/app:latest"));
    assert_eq!(inspect["Digest"], digest.as_str(), "the pushed image");
    assert_eq!(
        inspect["Layers"].as_array().map(Vec::len),
        Some(3),
        "the base's layer pulled from the default registry, plus two COPY layers"
    );
    let cache = skopeo_raw(&format!("{host}/app-cache:latest"));
    assert_eq!(
        cache["config"]["mediaType"], "application/vnd.ossb.cache.config.v1+json",
        "the cache export: {cache}"
    );

    // `--cache-from ref=app-cache` reads it back: every step is a cache hit in a new store.
    let fresh = Env::new();
    let out = ossb(
        &fresh,
        &[
            "build",
            "--progress",
            "plain",
            "--registry-config",
            config,
            "--build-context",
            "base=docker-image://busybox-base",
            "--cache-from",
            "type=registry,ref=app-cache",
            "-t",
            "app",
            app.to_str().expect("utf8"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let log = text(&out);
    assert!(
        log.contains("CACHED") && !log.contains("warning"),
        "the cache on the default registry was used:\n{log}"
    );

    // `ossb push pushed` finds `-t pushed` in the store and pushes it there too.
    let local = ok(
        &env,
        &[
            "build",
            "--progress",
            "quiet",
            "--registry-config",
            config,
            "--build-context",
            "base=docker-image://busybox-base",
            "-t",
            "pushed:v1",
            app.to_str().expect("utf8"),
        ],
    );
    let pushed = ok(&env, &["push", "--registry-config", config, "pushed:v1"]);
    assert_eq!(pushed, local);
    assert_eq!(
        skopeo_inspect(&format!("{host}/pushed:v1"))["Digest"],
        local.as_str()
    );

    // The plan shows where the short name goes; the flag and the environment variable do
    // the same as the configuration, and the flag wins over the file.
    let df = app.join("Dockerfile");
    let df = df.to_str().expect("utf8");
    let want = format!("\"{host}/busybox-base:latest\"");
    let plan = planned_bases(&env, &["--registry-config", config, "-f", df]);
    assert!(plan.contains(&want), "{plan}");
    let plan = planned_bases(&env, &["--default-registry", host, "-f", df]);
    assert!(plan.contains(&want), "{plan}");
    let out = ossb_env_default(
        &env,
        host,
        &["dockerfile", "plan", "--format", "json", "-f", df],
    );
    assert!(out.contains(&want), "{out}");
    let plan = planned_bases(
        &env,
        &[
            "--registry-config",
            config,
            "--default-registry",
            "docker.io",
            "-f",
            df,
        ],
    );
    assert!(
        plan.contains("\"docker.io/library/busybox-base:latest\""),
        "{plan}"
    );
}

/// `ossb ARGS` with `OSSB_DEFAULT_REGISTRY` set; returns stdout.
fn ossb_env_default(env: &Env, registry: &str, args: &[&str]) -> String {
    let out = env
        .cmd()
        .env_remove("OSSB_REGISTRY_CONFIG")
        .env("OSSB_DEFAULT_REGISTRY", registry)
        .args(args)
        .output()
        .expect("ossb runs");
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn without_a_default_registry_short_names_mean_docker_hub() {
    let env = Env::new();
    env.write("app/Dockerfile", "FROM busybox-base\nCOPY Dockerfile /\n");
    let app = env.path("app");
    let df = app.join("Dockerfile");
    let plan = planned_bases(&env, &["-f", df.to_str().expect("utf8")]);
    assert!(
        plan.contains("\"docker.io/library/busybox-base:latest\""),
        "{plan}"
    );
    // A configuration without default_registry changes nothing.
    let config = env.write("registries.yaml", "insecure: [build-cache.internal:5000]\n");
    let plan = planned_bases(
        &env,
        &[
            "--registry-config",
            config.to_str().expect("utf8"),
            "-f",
            df.to_str().expect("utf8"),
        ],
    );
    assert!(
        plan.contains("\"docker.io/library/busybox-base:latest\""),
        "{plan}"
    );

    // The build goes to Docker Hub, which cannot be reached from here (or, with network
    // access, has no such image), and says so.
    let out = ossb(
        &env,
        &[
            "build",
            "--progress",
            "quiet",
            "--timeout",
            "120s",
            "--registry-config",
            config.to_str().expect("utf8"),
            app.to_str().expect("utf8"),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("docker.io"), "names Docker Hub: {err}");
}

#[test]
fn an_invalid_default_registry_is_a_configuration_error() {
    let env = Env::new();
    env.write("app/Dockerfile", "FROM busybox-base\n");
    let df = env.path("app/Dockerfile");
    let df = df.to_str().expect("utf8");
    let out = ossb(
        &env,
        &[
            "dockerfile",
            "plan",
            "--default-registry",
            "https://registry.internal",
            "-f",
            df,
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(
        err.contains("invalid default registry") && err.contains("scheme"),
        "{err}"
    );
    let config = env.write("bad.yaml", "default_registry: registry.internal/team\n");
    let out = ossb(
        &env,
        &[
            "build",
            "--progress",
            "quiet",
            "--registry-config",
            config.to_str().expect("utf8"),
            env.path("app").to_str().expect("utf8"),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(
        err.contains("default_registry") && err.contains("repository path"),
        "{err}"
    );
}

#[test]
fn store_commands_find_short_names_on_the_default_registry() {
    let env = Env::new();
    env.write("ctx/a.txt", "stored locally\n");
    env.write("ctx/Dockerfile", "FROM scratch\nCOPY a.txt /\n");
    let config = env.write(
        "registries.yaml",
        "default_registry: registry.internal:5000\n",
    );
    let config = config.to_str().expect("utf8");
    let digest = ok(
        &env,
        &[
            "build",
            "--progress",
            "quiet",
            "--registry-config",
            config,
            "-t",
            "local:1",
            env.path("ctx").to_str().expect("utf8"),
        ],
    );
    let images = ok(&env, &["images", "--json"]);
    assert!(
        images.contains("\"registry.internal:5000/local:1\""),
        "{images}"
    );
    // Without the setting `local:1` is docker.io/library/local:1, which is not there.
    let out = ossb(&env, &["inspect", "local:1"]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let store = |args: &[&str]| {
        env.cmd()
            .env("OSSB_REGISTRY_CONFIG", config)
            .env_remove("OSSB_DEFAULT_REGISTRY")
            .args(args)
            .output()
            .expect("ossb runs")
    };
    let out = store(&["inspect", "local:1"]);
    assert!(out.status.success(), "{}", text(&out));
    let inspect: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(inspect["name"], "registry.internal:5000/local:1");
    assert_eq!(inspect["descriptor"]["digest"], digest.as_str());
    let out = store(&["rm", "local:1"]);
    assert!(out.status.success(), "{}", text(&out));
    let images = ok(&env, &["images", "--json"]);
    assert!(!images.contains("local:1"), "{images}");
}

#[test]
fn a_multi_platform_push_of_a_short_name_goes_to_the_default_registry() {
    if !tool("docker-registry") || !tool("skopeo") {
        return;
    }
    let reg = Registry::start_plain().expect("registry starts");
    let env = Env::new();
    env.write("ctx/a.txt", "one per platform\n");
    env.write("ctx/Dockerfile", "FROM scratch\nCOPY a.txt /\n");
    let digest = ok(
        &env,
        &[
            "build",
            "--progress",
            "quiet",
            "--default-registry",
            reg.host(),
            "--platform",
            "linux/amd64,linux/arm64",
            "--push",
            "-t",
            "multi:1",
            env.path("ctx").to_str().expect("utf8"),
        ],
    );
    let index = skopeo_raw(&format!("{}/multi:1", reg.host()));
    assert_eq!(
        index["manifests"].as_array().map(Vec::len),
        Some(2),
        "an index with both platforms: {index}"
    );
    let out = Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{}/multi@{digest}", reg.host()),
        ])
        .output()
        .expect("skopeo runs");
    assert!(
        out.status.success(),
        "the printed digest is the pushed index: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
