//! Pushes through the core's `transfer::push` with the registry adapter: a blob that another
//! repository of the same registry holds (known from an earlier push or pull) is mounted, not
//! uploaded again. Counted through a pass-through proxy in front of a real registry.

mod common;

use common::fault_proxy::{FaultProxy, Mode, Rates, Seen};
use common::{skopeo_inspect, write_pseudo_random};
use ossb_core::exec::blob_sources::{BlobSources, FILE_NAME};
use ossb_core::exec::transfer;
use ossb_core::image::digest::Digest;
use ossb_core::image::oci::Descriptor;
use ossb_core::image::store::Store;
use ossb_core::progress::NoopSink;
use ossb_registry::port::RegistryAdapter;
use ossb_registry::{BlockingRegistryClient, Reference, RegistryConfig};
use ossb_testkit::{Registry, require_tool};

const LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn put_random(store: &Store, dir: &std::path::Path, size: usize, seed: u64) -> (Digest, u64) {
    let path = dir.join(format!("blob-{seed}"));
    write_pseudo_random(&path, size, seed);
    let c = store
        .put_bytes(&std::fs::read(&path).expect("read"))
        .expect("put blob");
    (c.digest, c.size)
}

/// An image of the given layers, stored; returns its manifest descriptor.
fn put_image(store: &Store, name: &str, layers: &[(Digest, u64)]) -> Descriptor {
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|(d, _)| d.to_string()).collect::<Vec<_>>()},
        "history": [{"created_by": name}],
    });
    let config = store
        .put_bytes(&serde_json::to_vec(&config).expect("json"))
        .expect("config");
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.digest.to_string(), "size": config.size},
        "layers": layers.iter().map(|(d, s)| serde_json::json!({"mediaType": LAYER, "digest": d.to_string(), "size": s})).collect::<Vec<_>>(),
    });
    let m = store
        .put_bytes(&serde_json::to_vec(&manifest).expect("json"))
        .expect("manifest");
    Descriptor::new(MANIFEST, m.digest, m.size)
}

fn uploads_of(seen: &[Seen], d: &Digest) -> usize {
    seen.iter()
        .filter(|s| (s.method == "PUT" || s.method == "PATCH") && s.body_len > 0)
        .filter(|s| s.method == "PATCH" || s.target.contains(d.hex()))
        .count()
}

fn mounts_of(seen: &[Seen], d: &Digest) -> Vec<(String, Option<u16>)> {
    seen.iter()
        .filter(|s| s.method == "POST" && s.target.contains("mount=") && s.target.contains(d.hex()))
        .map(|s| (s.target.clone(), s.status))
        .collect()
}

#[test]
fn shared_layers_are_mounted_from_the_repository_they_were_pushed_to() {
    if !require_tool("docker-registry") {
        return;
    }
    let reg = Registry::start_plain().expect("registry");
    let proxy = FaultProxy::start(reg.host(), Mode::Random(Rates::NONE), 0);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("store")).expect("store");
    let shared = put_random(&store, dir.path(), 2 << 20, 1);
    let own_a = put_random(&store, dir.path(), 10_000, 2);
    let own_b = put_random(&store, dir.path(), 10_000, 4);
    let image_a = put_image(&store, "a", &[shared.clone(), own_a.clone()]);
    let image_b = put_image(&store, "b", &[shared.clone(), own_b.clone()]);
    let client = BlockingRegistryClient::new(RegistryConfig::default()).expect("client");
    let port = RegistryAdapter::new(client);
    let host = proxy.host();
    let reference = |repo: &str| Reference::parse(&format!("{host}/{repo}")).expect("reference");

    // Image A goes to repo-a: everything is uploaded, and where it went is recorded.
    transfer::push(
        &store,
        &port,
        &reference("ossb/repo-a:v1"),
        &image_a,
        2,
        &NoopSink,
    )
    .expect("push a");
    assert_eq!(
        uploads_of(&proxy.seen(), &shared.0),
        1,
        "{:#?}",
        proxy.seen()
    );
    assert!(dir.path().join("store").join(FILE_NAME).is_file());
    let known = BlobSources::load(&store);
    assert_eq!(
        known.repositories_on(&shared.0, &host).collect::<Vec<_>>(),
        ["ossb/repo-a"]
    );

    // Image B shares the big layer: it is mounted from repo-a, not uploaded again.
    proxy.reset_seen();
    let digest_b = transfer::push(
        &store,
        &port,
        &reference("ossb/repo-b:v1"),
        &image_b,
        2,
        &NoopSink,
    )
    .expect("push b");
    let seen = proxy.seen();
    let mounts = mounts_of(&seen, &shared.0);
    assert_eq!(mounts.len(), 1, "{seen:#?}");
    assert!(mounts[0].0.contains("from=ossb%2Frepo-a"), "{mounts:?}");
    assert_eq!(
        mounts[0].1,
        Some(201),
        "the registry mounted it: {mounts:?}"
    );
    let shared_puts = seen
        .iter()
        .filter(|s| (s.method == "PUT" || s.method == "PATCH") && s.target.contains(shared.0.hex()))
        .count();
    assert_eq!(
        shared_puts, 0,
        "the shared layer was not uploaded again: {seen:#?}"
    );
    let own_b_uploads = seen
        .iter()
        .filter(|s| s.method == "PUT" && s.body_len > 0 && s.target.contains(own_b.0.hex()))
        .count();
    assert_eq!(own_b_uploads, 1, "the new layer was uploaded: {seen:#?}");
    let uploaded_bytes: usize = seen
        .iter()
        .filter(|s| s.method == "PUT" || s.method == "PATCH")
        .map(|s| s.body_len)
        .sum();
    assert!(
        uploaded_bytes < 1 << 20,
        "only small blobs went up: {uploaded_bytes}"
    );

    // The image in repo-b is complete and valid, straight from the registry.
    if require_tool("skopeo") {
        let v = skopeo_inspect(&format!("{}/ossb/repo-b:v1", reg.host()), None);
        assert_eq!(v["Digest"].as_str(), Some(digest_b.to_string().as_str()));
        assert_eq!(v["Layers"][0].as_str(), Some(shared.0.to_string().as_str()));
        assert_eq!(v["Layers"][1].as_str(), Some(own_b.0.to_string().as_str()));
    }
    let direct = BlockingRegistryClient::new(RegistryConfig::default()).expect("client");
    let r = Reference::parse(&format!("{}/ossb/repo-b:v1", reg.host())).expect("ref");
    let mut out = Vec::new();
    direct
        .get_blob_to_writer(
            &r,
            &ossb_registry::Digest::parse(&shared.0.to_string()).expect("digest"),
            &mut out,
        )
        .expect("the mounted layer is readable from repo-b");
    assert_eq!(out.len() as u64, shared.1);

    // A stale record (the repository does not have the blob) costs a declined mount, then the
    // blob is uploaded; known good sources still mount.
    BlobSources::record(
        &store,
        &host,
        "ossb/nowhere",
        std::slice::from_ref(&own_b.0),
    )
    .expect("record");
    let known = BlobSources::load(&store);
    assert_eq!(
        known.repositories_on(&own_b.0, &host).collect::<Vec<_>>(),
        ["ossb/nowhere", "ossb/repo-b"]
    );
    proxy.reset_seen();
    // Pushing B to a fresh repository: for its own layer, nowhere (most recent) is tried
    // first and declines, then repo-b mounts.
    transfer::push(
        &store,
        &port,
        &reference("ossb/repo-c:v1"),
        &image_b,
        1,
        &NoopSink,
    )
    .expect("push c");
    let seen = proxy.seen();
    let tried = mounts_of(&seen, &own_b.0);
    assert_eq!(tried.len(), 2, "{seen:#?}");
    assert!(
        tried[0].0.contains("from=ossb%2Fnowhere") && tried[0].1 == Some(202),
        "{tried:?}"
    );
    assert!(
        tried[1].0.contains("from=ossb%2Frepo-b") && tried[1].1 == Some(201),
        "{tried:?}"
    );
    assert_eq!(uploads_of(&seen, &shared.0), 0, "{seen:#?}");
}

#[test]
fn pulled_blobs_are_recorded_and_mounted_on_push() {
    if !require_tool("docker-registry") {
        return;
    }
    let reg = Registry::start_plain().expect("registry");
    let proxy = FaultProxy::start(reg.host(), Mode::Random(Rates::NONE), 0);
    let host = proxy.host();
    let dir = tempfile::tempdir().expect("tempdir");
    // Someone else pushed the base image to ossb/base.
    let other = Store::open(dir.path().join("other")).expect("store");
    let base_layer = put_random(&other, dir.path(), 1 << 20, 9);
    let base = put_image(&other, "base", std::slice::from_ref(&base_layer));
    let port = RegistryAdapter::new(
        BlockingRegistryClient::new(RegistryConfig::default()).expect("client"),
    );
    let base_ref = Reference::parse(&format!("{host}/ossb/base:1")).expect("ref");
    transfer::push(&other, &port, &base_ref, &base, 1, &NoopSink).expect("push base");

    // This store pulls it, builds on it and pushes to another repository.
    let store = Store::open(dir.path().join("store")).expect("store");
    let platform = ossb_core::image::oci::Platform::parse("linux/amd64").expect("platform");
    transfer::pull(&store, &port, &base_ref, &platform, &NoopSink).expect("pull");
    assert_eq!(
        BlobSources::load(&store)
            .repositories_on(&base_layer.0, &host)
            .collect::<Vec<_>>(),
        ["ossb/base"]
    );
    let own = put_random(&store, dir.path(), 5_000, 10);
    let app = put_image(&store, "app", &[base_layer.clone(), own]);
    proxy.reset_seen();
    transfer::push(
        &store,
        &port,
        &Reference::parse(&format!("{host}/ossb/app:1")).expect("ref"),
        &app,
        2,
        &NoopSink,
    )
    .expect("push app");
    let seen = proxy.seen();
    assert_eq!(mounts_of(&seen, &base_layer.0).len(), 1, "{seen:#?}");
    assert_eq!(mounts_of(&seen, &base_layer.0)[0].1, Some(201));
    assert_eq!(
        seen.iter()
            .filter(|s| s.target.contains(base_layer.0.hex()) && s.method == "PUT")
            .count(),
        0,
        "{seen:#?}"
    );
    if require_tool("skopeo") {
        let v = skopeo_inspect(&format!("{}/ossb/app:1", reg.host()), None);
        assert_eq!(
            v["Layers"][0].as_str(),
            Some(base_layer.0.to_string().as_str())
        );
    }
}
