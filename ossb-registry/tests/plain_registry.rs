//! Push and pull against a real plain-HTTP Distribution registry.

mod common;

use std::sync::Arc;

use common::{build_image, skopeo_inspect, write_pseudo_random};
use ossb_registry::manifest::OCI_MANIFEST;
use ossb_registry::{
    BlockingRegistryClient, Digest, MountOutcome, Reference, RegistryClient, RegistryConfig,
    RegistryError, StaticCredentials,
};
use ossb_testkit::{Registry, require_tool};

fn reference(reg: &Registry, repo_tag: &str) -> Reference {
    Reference::parse(&format!("{}/{repo_tag}", reg.host())).expect("valid reference")
}

fn start() -> Option<Registry> {
    if !require_tool("docker-registry") || !require_tool("curl") {
        return None;
    }
    Some(Registry::start_plain().expect("start registry"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_then_pull_back_with_digest_checks() {
    let Some(reg) = start() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let img = build_image(dir.path(), "plain");
    let client = RegistryClient::new(RegistryConfig::default()).expect("client");
    let r = reference(&reg, "ossb/test:v1");

    assert!(
        !client
            .blob_exists(&r, &img.layer_digest)
            .await
            .expect("exists check")
    );
    assert_eq!(
        client
            .put_blob(&r, &img.layer_path)
            .await
            .expect("push layer"),
        img.layer_digest
    );
    assert!(
        client
            .blob_exists(&r, &img.layer_digest)
            .await
            .expect("exists check")
    );
    assert_eq!(
        client
            .put_blob(&r, &img.config_path)
            .await
            .expect("push config"),
        img.config_digest
    );
    let manifest_digest = client
        .put_manifest(&r, &img.manifest, OCI_MANIFEST)
        .await
        .expect("push manifest");
    assert_eq!(manifest_digest, Digest::sha256_of(&img.manifest));

    let (bytes, media_type, digest) = client.get_manifest(&r).await.expect("pull manifest");
    assert_eq!(bytes, img.manifest);
    assert_eq!(media_type, OCI_MANIFEST);
    assert_eq!(digest, manifest_digest);

    let by_digest = r.with_digest(manifest_digest.as_str()).expect("digest ref");
    let (bytes2, _, _) = client
        .get_manifest(&by_digest)
        .await
        .expect("pull by digest");
    assert_eq!(bytes2, img.manifest);

    let info = client
        .head_manifest(&r)
        .await
        .expect("head")
        .expect("manifest exists");
    assert_eq!(info.digest, manifest_digest);
    assert_eq!(info.size, img.manifest.len() as u64);

    let mut layer = Vec::new();
    let n = client
        .get_blob_to(&r, &img.layer_digest, &mut layer)
        .await
        .expect("pull layer");
    assert_eq!(n, img.layer_size);
    assert_eq!(layer, std::fs::read(&img.layer_path).expect("read layer"));

    // skopeo (containers/image) accepts the pushed image.
    if require_tool("skopeo") {
        let v = skopeo_inspect(&format!("{}/ossb/test:v1", reg.host()), None);
        assert_eq!(v["Digest"].as_str(), Some(manifest_digest.as_str()));
        assert_eq!(v["Layers"][0].as_str(), Some(img.layer_digest.as_str()));
        assert_eq!(v["Os"].as_str(), Some("linux"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_manifest_and_blob_are_not_found() {
    let Some(reg) = start() else { return };
    let client = RegistryClient::new(RegistryConfig::default()).expect("client");
    let r = reference(&reg, "ossb/missing:nope");
    let err = client.get_manifest(&r).await.expect_err("no such manifest");
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains(reg.host()), "{err}");
    assert_eq!(client.head_manifest(&r).await.expect("head"), None);
    let d = Digest::sha256_of(b"never pushed");
    assert!(!client.blob_exists(&r, &d).await.expect("exists check"));
    let err = client
        .get_blob_to(&r, &d, &mut Vec::new())
        .await
        .expect_err("no such blob");
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_upload_of_a_larger_blob() {
    let Some(reg) = start() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("big.bin");
    let size = 300_000;
    write_pseudo_random(&path, size, 7);
    let mut config = RegistryConfig::default();
    config.transfer.monolithic_max = 64 * 1024;
    config.transfer.chunk_size = 50_000;
    let client = RegistryClient::new(config).expect("client");
    let r = reference(&reg, "ossb/chunked:v1");
    let digest = client.put_blob(&r, &path).await.expect("chunked upload");
    let data = std::fs::read(&path).expect("read");
    assert_eq!(digest, Digest::sha256_of(&data));
    let mut back = Vec::new();
    let n = client
        .get_blob_to(&r, &digest, &mut back)
        .await
        .expect("pull");
    assert_eq!(n as usize, size);
    assert_eq!(back, data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_repository_mount_and_fallback_upload() {
    let Some(reg) = start() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let img = build_image(dir.path(), "mount");
    let client = RegistryClient::new(RegistryConfig::default()).expect("client");
    let src = reference(&reg, "ossb/source:v1");
    let dst = reference(&reg, "ossb/dest:v1");
    client
        .put_blob(&src, &img.layer_path)
        .await
        .expect("push layer");
    assert!(
        !client
            .blob_exists(&dst, &img.layer_digest)
            .await
            .expect("exists")
    );
    let outcome = client
        .mount_blob(&dst, &img.layer_digest, "ossb/source", None)
        .await
        .expect("mount");
    assert_eq!(outcome, MountOutcome::Mounted);
    assert!(
        client
            .blob_exists(&dst, &img.layer_digest)
            .await
            .expect("exists")
    );

    // The source repository does not have the config blob: the registry answers 202 and the
    // fallback file is uploaded.
    let outcome = client
        .mount_blob(
            &dst,
            &img.config_digest,
            "ossb/elsewhere",
            Some(&img.config_path),
        )
        .await
        .expect("mount with fallback");
    assert_eq!(outcome, MountOutcome::Uploaded);
    assert!(
        client
            .blob_exists(&dst, &img.config_digest)
            .await
            .expect("exists")
    );

    let other = Digest::sha256_of(b"not anywhere");
    let outcome = client
        .mount_blob(&dst, &other, "ossb/source", None)
        .await
        .expect("mount declined");
    assert_eq!(outcome, MountOutcome::NotMounted);
    assert!(!client.blob_exists(&dst, &other).await.expect("exists"));
}

#[test]
fn blocking_client_round_trip() {
    let Some(reg) = start() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let img = build_image(dir.path(), "blocking");
    let client = BlockingRegistryClient::with_credentials(
        RegistryConfig::default(),
        Arc::new(StaticCredentials::new()),
    )
    .expect("client");
    let r = reference(&reg, "ossb/blocking:1");
    client.ping(reg.host()).expect("ping");
    client.put_blob(&r, &img.layer_path).expect("layer");
    client.put_blob(&r, &img.config_path).expect("config");
    let d = client
        .put_manifest(&r, &img.manifest, OCI_MANIFEST)
        .expect("manifest");
    let (bytes, _, digest) = client.get_manifest(&r).expect("pull manifest");
    assert_eq!((bytes, digest), (img.manifest.clone(), d));
    let mut out = Vec::new();
    client
        .get_blob_to_writer(&r, &img.config_digest, &mut out)
        .expect("pull config");
    assert_eq!(out, std::fs::read(&img.config_path).expect("read"));
}

#[tokio::test]
async fn unreachable_registry_is_classified() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut config = RegistryConfig::default();
    config.transfer.max_retries = 1;
    config.transfer.backoff_base = std::time::Duration::from_millis(10);
    let client = RegistryClient::new(config).expect("client");
    let r = Reference::parse(&format!("127.0.0.1:{port}/ossb/none:v1")).expect("ref");
    let err = client
        .get_manifest(&r)
        .await
        .expect_err("nothing listens there");
    // Two attempts (max_retries 1), each refused: the registry is given up on, and the
    // last error says it is unreachable.
    assert!(
        matches!(&err, RegistryError::GaveUp { attempts: 2, last, .. }
            if matches!(**last, RegistryError::Unreachable { .. })),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("127.0.0.1:{port}"))
            && msg.contains("unreachable")
            && msg.contains("gave up on get manifest"),
        "{msg}"
    );
    assert_eq!(err.exit_code() as i32, 3);
    assert!(!err.is_auth());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_is_tried_first_and_origin_is_the_fallback() {
    let Some(origin) = start() else { return };
    let mirror = Registry::start_plain().expect("mirror registry");
    let dir = tempfile::tempdir().expect("tempdir");
    let img = build_image(dir.path(), "mirror");
    let plain = RegistryClient::new(RegistryConfig::default()).expect("client");
    // The image is only on the origin; the mirror has another manifest under the same tag.
    let r = reference(&origin, "ossb/mirrored:v1");
    plain.put_blob(&r, &img.layer_path).await.expect("layer");
    plain.put_blob(&r, &img.config_path).await.expect("config");
    let origin_digest = plain
        .put_manifest(&r, &img.manifest, OCI_MANIFEST)
        .await
        .expect("manifest");

    let yaml = format!(
        "mirrors:\n  \"{}\": [\"{}\"]\n",
        origin.host(),
        mirror.host()
    );
    let client =
        RegistryClient::new(RegistryConfig::from_yaml(&yaml).expect("yaml")).expect("client");
    let (_, _, d) = client
        .get_manifest(&r)
        .await
        .expect("falls back to the origin");
    assert_eq!(d, origin_digest);

    let img2 = build_image(dir.path(), "mirror-copy");
    let on_mirror = reference(&mirror, "ossb/mirrored:v1");
    plain
        .put_blob(&on_mirror, &img2.layer_path)
        .await
        .expect("layer");
    plain
        .put_blob(&on_mirror, &img2.config_path)
        .await
        .expect("config");
    let mirror_digest = plain
        .put_manifest(&on_mirror, &img2.manifest, OCI_MANIFEST)
        .await
        .expect("manifest");
    let (_, _, d) = client.get_manifest(&r).await.expect("served by the mirror");
    assert_eq!(d, mirror_digest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrors_are_tried_in_order_and_never_pushed_to() {
    let Some(origin) = start() else { return };
    let empty = Registry::start_plain().expect("mirror without the image");
    let full = Registry::start_plain().expect("mirror with the image");
    // A port nobody listens on: a mirror that is down.
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = RegistryClient::new(RegistryConfig::default()).expect("client");
    let on_full = reference(&full, "ossb/mirrored:v1");
    let img = build_image(dir.path(), "second-mirror");
    plain
        .put_blob(&on_full, &img.layer_path)
        .await
        .expect("layer");
    plain
        .put_blob(&on_full, &img.config_path)
        .await
        .expect("config");
    let mirror_digest = plain
        .put_manifest(&on_full, &img.manifest, OCI_MANIFEST)
        .await
        .expect("manifest");

    let yaml = format!(
        "mirrors:\n  \"{}\": [\"{down}\", \"{}\", \"{}\"]\n",
        origin.host(),
        empty.host(),
        full.host()
    );
    let mut config = RegistryConfig::from_yaml(&yaml).expect("yaml");
    config.transfer.max_retries = 1;
    config.transfer.backoff_base = std::time::Duration::from_millis(10);
    let client = RegistryClient::new(config).expect("client");
    let r = reference(&origin, "ossb/mirrored:v1");
    // Down, then not found, then served by the third mirror; the origin has nothing.
    let (_, _, d) = client.get_manifest(&r).await.expect("third mirror serves");
    assert_eq!(d, mirror_digest);
    let mut layer = Vec::new();
    client
        .get_blob_to(&r, &img.layer_digest, &mut layer)
        .await
        .expect("blob from the mirror");
    assert_eq!(Digest::sha256_of(&layer), img.layer_digest);

    // Pushes go to the origin only.
    let pushed = build_image(dir.path(), "pushed");
    let target = reference(&origin, "ossb/pushed:v1");
    client
        .put_blob(&target, &pushed.layer_path)
        .await
        .expect("layer");
    client
        .put_blob(&target, &pushed.config_path)
        .await
        .expect("config");
    let d = client
        .put_manifest(&target, &pushed.manifest, OCI_MANIFEST)
        .await
        .expect("manifest");
    let (_, _, on_origin) = plain.get_manifest(&target).await.expect("on the origin");
    assert_eq!(on_origin, d);
    for m in [&empty, &full] {
        let there = reference(m, "ossb/pushed:v1");
        assert!(
            !plain
                .blob_exists(&there, &pushed.layer_digest)
                .await
                .expect("head"),
            "a push reached mirror {}",
            m.host()
        );
        assert!(
            plain.head_manifest(&there).await.expect("head").is_none(),
            "a push reached mirror {}",
            m.host()
        );
    }
}
