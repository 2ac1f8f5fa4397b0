//! The build cache across stores and processes, through the real `ossb` binary: export to a
//! real Distribution registry and to an OCI layout, import into a fresh store, modes, TTL,
//! `--no-cache-filter`, unreadable caches, concurrent builds on one store, zstd layers.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

use common::{Env, OSSB, busybox_layout, tool};

/// An `ossb` command on the store at `store` (not the Env's own).
fn ossb_in(store: &Path, args: &[&str]) -> Output {
    Command::new(OSSB)
        .env("OSSB_ROOT", store)
        .env_remove("SOURCE_DATE_EPOCH")
        .args(args)
        .output()
        .expect("ossb runs")
}

fn ok(out: Output, what: &str) -> (String, String) {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{what} failed: {stderr}");
    (
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        stderr,
    )
}

/// The `ossb.build` counters of a metadata file.
fn counters(path: &Path) -> serde_json::Value {
    let meta: serde_json::Value =
        serde_json::from_slice(&fs::read(path).expect("metadata file")).expect("json");
    meta["ossb.build"].clone()
}

/// Build `ctx` on `store` with a metadata file; returns (digest, counters, stderr).
fn build(
    store: &Path,
    ctx: &Path,
    meta: &Path,
    extra: &[&str],
) -> (String, serde_json::Value, String) {
    let mut args = vec!["build", "--progress", "plain"];
    args.extend_from_slice(extra);
    let meta_s = meta.to_str().expect("utf8");
    args.extend_from_slice(&["--metadata-file", meta_s, ctx.to_str().expect("utf8")]);
    let (digest, stderr) = ok(ossb_in(store, &args), "ossb build");
    (digest, counters(meta), stderr)
}

/// A context whose Dockerfile copies a file and runs a step that leaves a fresh random value,
/// so a re-run shows in the image digest.
fn app_context(env: &Env, base: &str) -> PathBuf {
    env.write("app/app.txt", "app\n");
    env.write(
        "app/Dockerfile",
        &format!(
            "FROM {base}\nCOPY app.txt /app/\nRUN head -c 16 /dev/urandom | od -An -tx1 > /app/random\n\
             ENV MODE=prod\nRUN cat /app/app.txt /app/random > /app/both\nCMD [\"cat\", \"/app/both\"]\n"
        ),
    );
    env.path("app")
}

/// Two stages: `build` runs a step, the final stage copies its output.
fn two_stage_context(env: &Env, base: &str) -> PathBuf {
    env.write(
        "two/Dockerfile",
        &format!(
            "FROM {base} AS build\nRUN echo built > /out.txt\n\
             FROM {base}\nCOPY --from=build /out.txt /copied.txt\nRUN cat /copied.txt > /again.txt\n"
        ),
    );
    env.path("two")
}

fn blob_exists(store: &Path, digest: &str) -> bool {
    let hex = digest.trim_start_matches("sha256:");
    store.join("blobs/sha256").join(hex).exists()
}

fn fsck_clean(store: &Path) {
    let store = ossb_core::image::store::Store::open(store).expect("store");
    let report = store.fsck().expect("fsck");
    assert!(report.is_clean(), "store not clean: {report:?}");
}

#[test]
fn a_registry_cache_makes_a_fresh_store_hit_every_step_without_fetching_layers() {
    if !tool("docker-registry") || !tool("skopeo") {
        return;
    }
    let registry = ossb_testkit::Registry::start_plain().expect("registry starts");
    let env = Env::new();
    let base = busybox_layout(&env);
    let ctx = app_context(&env, &base);
    let cache = format!("{}/cache/app:buildcache", registry.host());
    let store_a = env.path("store-a");
    let (digest_a, first, _) = build(
        &store_a,
        &ctx,
        &env.path("meta-a.json"),
        &["--cache-to", &format!("type=registry,ref={cache}")],
    );
    assert_eq!(first["cache_hits"], 0, "a cold build runs everything");
    assert!(first["bytes_written"].as_u64().expect("u64") > 0);
    assert!(
        first["bytes_read"].as_u64().expect("u64") > 0,
        "base layers and context are read"
    );
    assert_eq!(
        first["steps"].as_array().expect("steps").len(),
        first["operations"].as_u64().expect("ops") as usize,
        "one timing per operation"
    );

    // A fresh store: every layer step hits, nothing runs, and the image is the same.
    let store_b = env.path("store-b");
    let pushed = format!("{}/team/app:1", registry.host());
    let (digest_b, second, stderr) = build(
        &store_b,
        &ctx,
        &env.path("meta-b.json"),
        &[
            "--cache-from",
            &format!("type=registry,ref={cache}"),
            "--output",
            &format!("type=registry,name={pushed}"),
        ],
    );
    // The first RUN writes random bytes: an equal digest proves it did not run again.
    assert_eq!(digest_b, digest_a, "the same image from the cache");
    assert_eq!(
        second["cache_hits"], 3,
        "COPY and both RUN steps hit: {stderr}"
    );
    assert_eq!(second["bytes_written"], 0, "no layer was written: {stderr}");
    // The layers went from the cache repository to the image's by a cross-repository mount:
    // the fresh store never fetched them.
    let manifest = skopeo_manifest(&pushed);
    for layer in manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .skip(1)
    {
        let d = layer["digest"].as_str().expect("digest");
        assert!(
            !blob_exists(&store_b, d),
            "layer {d} was fetched into the store"
        );
    }
    assert_eq!(
        format!("sha256:{}", sha256_hex(&skopeo_raw(&pushed))),
        digest_b,
        "the pushed manifest is the built image"
    );

    // An OCI output needs the blobs: a third fresh store fetches them and the layout is valid.
    let store_c = env.path("store-c");
    let out = env.path("oci-c");
    let (digest_c, third, _) = build(
        &store_c,
        &ctx,
        &env.path("meta-c.json"),
        &[
            "--cache-from",
            &format!("type=registry,ref={cache}"),
            "--output",
            &format!("type=oci,dest={}", out.display()),
        ],
    );
    assert_eq!(
        (digest_c.as_str(), third["cache_hits"].as_u64()),
        (digest_a.as_str(), Some(3))
    );
    let inspect = Command::new("skopeo")
        .args(["inspect", &format!("oci:{}:latest", out.display())])
        .output()
        .expect("skopeo");
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    fsck_clean(&store_b);
    fsck_clean(&store_c);
}

fn skopeo_raw(reference: &str) -> Vec<u8> {
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .output()
        .expect("skopeo runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn skopeo_manifest(reference: &str) -> serde_json::Value {
    serde_json::from_slice(&skopeo_raw(reference)).expect("manifest json")
}

fn sha256_hex(bytes: &[u8]) -> String {
    ossb_core::image::digest::Digest::of(bytes)
        .hex()
        .to_string()
}

#[test]
fn mode_min_exports_the_final_stages_and_mode_max_every_stage() {
    if !tool("docker-registry") {
        return;
    }
    let registry = ossb_testkit::Registry::start_plain().expect("registry starts");
    let env = Env::new();
    let base = busybox_layout(&env);
    let ctx = two_stage_context(&env, &base);
    let min = format!("{}/cache/two:min", registry.host());
    let max = format!("{}/cache/two:max", registry.host());
    let (digest, _, _) = build(
        &env.path("store-a"),
        &ctx,
        &env.path("meta-a.json"),
        &[
            "--cache-to",
            &format!("type=registry,ref={min}"),
            "--cache-to",
            &format!("type=registry,ref={max},mode=max"),
        ],
    );
    // min: the build stage's RUN is not in the cache; it runs again, its output is the same,
    // so the final stage's COPY and RUN still hit.
    let (d_min, from_min, _) = build(
        &env.path("store-min"),
        &ctx,
        &env.path("meta-min.json"),
        &["--cache-from", &format!("type=registry,ref={min}")],
    );
    assert_eq!(from_min["cache_hits"], 2);
    // max: every step hits.
    let (d_max, from_max, _) = build(
        &env.path("store-max"),
        &ctx,
        &env.path("meta-max.json"),
        &["--cache-from", &format!("type=registry,ref={max}")],
    );
    assert_eq!(from_max["cache_hits"], 3);
    assert_eq!(
        (d_min.as_str(), d_max.as_str()),
        (digest.as_str(), digest.as_str())
    );
    // The exports hold 2 and 3 layers besides nothing else: the record list is the config.
    let layers = |r: &str| skopeo_manifest(r)["layers"].as_array().map(Vec::len);
    assert_eq!((layers(&min), layers(&max)), (Some(2), Some(3)));
    assert_eq!(
        skopeo_manifest(&max)["config"]["mediaType"],
        "application/vnd.ossb.cache.config.v1+json"
    );
}

#[test]
fn a_local_cache_round_trips_and_records_past_the_ttl_are_not_used() {
    let env = Env::new();
    let base = busybox_layout(&env);
    let ctx = app_context(&env, &base);
    let dir = env.path("cache-dir");
    let spec_to = format!("type=local,dest={}", dir.display());
    let spec_from = format!("type=local,src={}", dir.display());
    let (digest, _, _) = build(
        &env.path("store-a"),
        &ctx,
        &env.path("m1.json"),
        &["--cache-to", &spec_to],
    );
    assert!(dir.join("index.json").is_file() && dir.join("oci-layout").is_file());

    // Within the TTL: a fresh store hits every step and makes the same image; a second,
    // missing cache only warns.
    let (again, hits, stderr) = build(
        &env.path("store-b"),
        &ctx,
        &env.path("m2.json"),
        &[
            "--cache-from",
            &format!("type=local,src={}", env.path("missing").display()),
            "--cache-from",
            &spec_from,
            "--cache-ttl",
            "1h",
        ],
    );
    assert!(stderr.contains("cannot read the cache"), "{stderr}");
    assert_eq!(
        (again.as_str(), hits["cache_hits"].as_u64()),
        (digest.as_str(), Some(3))
    );

    // Past the TTL (the records are two seconds old, the TTL one): nothing is used, from the
    // import or from the store's own records, and the random step makes a new image.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let (stale, none, _) = build(
        &env.path("store-c"),
        &ctx,
        &env.path("m3.json"),
        &["--cache-from", &spec_from, "--cache-ttl", "1s"],
    );
    assert_eq!(none["cache_hits"], 0);
    assert_ne!(stale, digest);
    let (_, own, _) = build(
        &env.path("store-a"),
        &ctx,
        &env.path("m4.json"),
        &["--cache-ttl", "1s"],
    );
    assert_eq!(
        own["cache_hits"], 0,
        "the store's own old records are stale too"
    );

    // Old records are not exported either: store-b holds no records of its own (its hits were
    // imported), so a 1s-TTL build there rebuilds every step and exports the new records.
    let dir2 = env.path("cache-dir-2");
    let (_, _, _) = build(
        &env.path("store-b"),
        &ctx,
        &env.path("m5.json"),
        &[
            "--cache-ttl",
            "1s",
            "--cache-to",
            &format!("type=local,dest={}", dir2.display()),
        ],
    );
    let (_, fresh, _) = build(
        &env.path("store-d"),
        &ctx,
        &env.path("m6.json"),
        &[
            "--cache-from",
            &format!("type=local,src={}", dir2.display()),
        ],
    );
    assert_eq!(fresh["cache_hits"], 3, "the rebuilt records were exported");

    let bad = ossb_in(
        &env.path("store-a"),
        &["build", "--cache-ttl", "soon", ctx.to_str().expect("utf8")],
    );
    assert_eq!(bad.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--cache-ttl"));
}

#[test]
fn no_cache_filter_reruns_only_the_named_stage() {
    let env = Env::new();
    let base = busybox_layout(&env);
    let ctx = two_stage_context(&env, &base);
    let store = env.path("store");
    let (digest, _, _) = build(&store, &ctx, &env.path("m1.json"), &[]);
    let (_, all, _) = build(&store, &ctx, &env.path("m2.json"), &[]);
    assert_eq!(all["cache_hits"], 3);
    let (again, filtered, stderr) = build(
        &store,
        &ctx,
        &env.path("m3.json"),
        &["--no-cache-filter", "build"],
    );
    assert_eq!(
        filtered["cache_hits"], 2,
        "only the build stage ran again: {stderr}"
    );
    let steps = filtered["steps"].as_array().expect("steps");
    let ran: Vec<&str> = steps
        .iter()
        .filter(|s| s["cache_hit"] == false && s["step"] != 0)
        .filter_map(|s| s["instruction"].as_str())
        .collect();
    assert_eq!(ran, ["RUN echo built > /out.txt"]);
    assert_eq!(again, digest, "the same output gives the same image");

    let bad = ossb_in(
        &store,
        &[
            "build",
            "--no-cache-filter",
            "nope",
            ctx.to_str().expect("utf8"),
        ],
    );
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(5), "{err}");
    assert!(
        err.contains("nope") && err.contains("build"),
        "names the stages: {err}"
    );
}

#[test]
fn an_unreadable_cache_from_warns_and_a_failed_cache_to_exits_3() {
    if !tool("docker-registry") {
        return;
    }
    let registry = ossb_testkit::Registry::start_plain().expect("registry starts");
    let env = Env::new();
    env.write("s/a.txt", "a\n");
    env.write("s/Dockerfile", "FROM scratch\nCOPY a.txt /\n");
    let ctx = env.path("s");
    let store = env.path("store");
    let missing = format!("type=registry,ref={}/no/such:cache", registry.host());
    let (_, _, stderr) = build(
        &store,
        &ctx,
        &env.path("m.json"),
        &[
            "--cache-from",
            &missing,
            "--cache-from",
            "type=registry,ref=127.0.0.1:1/down/cache:x",
            "--cache-from",
            &format!("type=local,src={}", env.path("nothing").display()),
        ],
    );
    assert_eq!(
        stderr.matches("cannot read the cache").count(),
        3,
        "one warning per unreadable cache: {stderr}"
    );

    let out = ossb_in(
        &store,
        &[
            "build",
            "--cache-to",
            "type=registry,ref=127.0.0.1:1/down/cache:x",
            ctx.to_str().expect("utf8"),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("cannot export the build cache to type=registry,ref=127.0.0.1:1/down/cache:x"),
        "{err}"
    );
    let blocker = env.write("file-not-dir", "x");
    let out = ossb_in(
        &store,
        &[
            "build",
            "--cache-to",
            &format!("type=local,dest={}", blocker.join("sub").display()),
            ctx.to_str().expect("utf8"),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("cannot export the build cache"), "{err}");
    let out = ossb_in(
        &store,
        &[
            "build",
            "--cache-to",
            "type=s3",
            ctx.to_str().expect("utf8"),
        ],
    );
    assert_eq!(out.status.code(), Some(5));
}

#[test]
fn builds_started_together_on_one_store_both_succeed_and_the_store_stays_consistent() {
    let env = Env::new();
    let base = busybox_layout(&env);
    let ctx = app_context(&env, &base);
    env.write("other/b.txt", "b\n");
    env.write(
        "other/Dockerfile",
        &format!("FROM {base}\nCOPY b.txt /b/\nRUN wc -c /b/b.txt > /b/size\n"),
    );
    let other = env.path("other");
    let store = env.path("store");
    for (first, second) in [(&ctx, &ctx), (&ctx, &other)] {
        let start = |c: &Path| {
            Command::new(OSSB)
                .env("OSSB_ROOT", &store)
                .env_remove("SOURCE_DATE_EPOCH")
                .args(["build", "--progress", "quiet", "--no-cache"])
                .arg(c)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("ossb starts")
        };
        let a = start(first);
        let b = start(second);
        for child in [a, b] {
            let out = child.wait_with_output().expect("wait");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        fsck_clean(&store);
    }
    let (_, hits, _) = build(&store, &other, &env.path("m.json"), &[]);
    assert_eq!(
        hits["cache_hits"], 2,
        "records written by concurrent builds are usable"
    );
    fsck_clean(&store);
}

#[test]
fn large_zstd_layers_are_multithreaded_and_readable_by_zstd_and_umoci() {
    if !tool("zstd") || !tool("umoci") || !tool("skopeo") {
        return;
    }
    let env = Env::new();
    // 8 MiB of text that compresses, above the multi-threading threshold.
    let line = "0123456789abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ\n";
    env.write("z/big.txt", &line.repeat(8 * 1024 * 1024 / line.len() + 1));
    env.write("z/Dockerfile", "FROM scratch\nCOPY big.txt /data/\n");
    let out = env.path("oci");
    env.ossb_ok(&[
        "build",
        "--progress",
        "quiet",
        "--compression",
        "zstd",
        "--jobs",
        "4",
        "--output",
        &format!("type=oci,dest={}", out.display()),
        env.path("z").to_str().expect("utf8"),
    ]);
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("index.json")).expect("index")).expect("json");
    let blob = |d: &str| {
        out.join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let manifest: serde_json::Value = serde_json::from_slice(
        &fs::read(blob(
            index["manifests"][0]["digest"].as_str().expect("digest"),
        ))
        .expect("m"),
    )
    .expect("json");
    let layer = &manifest["layers"][0];
    assert_eq!(
        layer["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    let path = blob(layer["digest"].as_str().expect("digest"));
    let test = Command::new("zstd")
        .arg("-t")
        .arg(&path)
        .output()
        .expect("zstd");
    assert!(
        test.status.success(),
        "{}",
        String::from_utf8_lossy(&test.stderr)
    );
    let tar = env.path("layer.tar");
    let dec = Command::new("zstd")
        .args(["-d", "-q", "-o"])
        .arg(&tar)
        .arg(&path)
        .output()
        .expect("zstd");
    assert!(
        dec.status.success(),
        "{}",
        String::from_utf8_lossy(&dec.stderr)
    );
    let config: serde_json::Value = serde_json::from_slice(
        &fs::read(blob(manifest["config"]["digest"].as_str().expect("c"))).expect("c"),
    )
    .expect("json");
    assert_eq!(
        config["rootfs"]["diff_ids"][0].as_str().expect("diff id"),
        format!("sha256:{}", sha256_hex(&fs::read(&tar).expect("tar"))),
        "the decompressed stream is the layer's diff_id"
    );
    // skopeo reads the zstd stream (it recompresses it with gzip here); umoci 0.4.7 knows no
    // tar+zstd media type, so it checks the converted layout's content.
    let gz = env.path("oci-gz");
    let copy = Command::new("skopeo")
        .args(["copy", "--dest-compress-format", "gzip", "--dest-compress"])
        .arg(format!("oci:{}:latest", out.display()))
        .arg(format!("oci:{}:latest", gz.display()))
        .output()
        .expect("skopeo");
    assert!(
        copy.status.success(),
        "{}",
        String::from_utf8_lossy(&copy.stderr)
    );
    let mut cmd = Command::new("umoci");
    cmd.arg("unpack");
    if !rustix::process::geteuid().is_root() {
        cmd.arg("--rootless");
    }
    let bundle = env.path("bundle");
    let unpack = cmd
        .arg("--image")
        .arg(format!("{}:latest", gz.display()))
        .arg(&bundle)
        .output()
        .expect("umoci");
    assert!(
        unpack.status.success(),
        "{}",
        String::from_utf8_lossy(&unpack.stderr)
    );
    assert_eq!(
        fs::read(bundle.join("rootfs/data/big.txt")).expect("unpacked"),
        fs::read(env.path("z/big.txt")).expect("source")
    );
}
