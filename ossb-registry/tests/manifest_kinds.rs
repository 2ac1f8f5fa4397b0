//! Docker schema 2 manifests, Docker manifest lists and OCI indexes pushed to and pulled from
//! a REAL Distribution registry (which validates them and their references), and the
//! `Docker-Content-Digest` check against a registry that lies about it (a proxy in front of
//! the real registry rewrites the header: a real registry never sends a wrong one).

mod common;

use common::build_image;
use common::fault_proxy::{FaultProxy, Mode, Rates};
use ossb_registry::manifest::{DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST};
use ossb_registry::{Digest, Reference, RegistryClient, RegistryConfig, RegistryError};
use ossb_testkit::{Registry, require_tool};

fn start() -> Option<Registry> {
    if !require_tool("docker-registry") || !require_tool("curl") {
        return None;
    }
    Some(Registry::start_plain().expect("start registry"))
}

fn client() -> RegistryClient {
    RegistryClient::new(RegistryConfig {
        cert_dirs: Vec::new(),
        ..RegistryConfig::default()
    })
    .expect("client")
}

fn reference(host: &str, rest: &str) -> Reference {
    Reference::parse(&format!("{host}/{rest}")).expect("reference")
}

/// An index (OCI) or manifest list (Docker) with one linux/amd64 entry.
fn index(media_type: &str, entry_type: &str, digest: &Digest, size: usize) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [{
            "mediaType": entry_type,
            "digest": digest.to_string(),
            "size": size,
            "platform": {"architecture": "amd64", "os": "linux"},
        }],
    }))
    .expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_schema2_manifest_list_and_oci_index_round_trip() {
    let Some(reg) = start() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let img = build_image(dir.path(), "kinds");
    let c = client();
    let host = reg.host();
    let oci = reference(host, "ossb/kinds:oci");
    c.put_blob(&oci, &img.layer_path).await.expect("layer");
    c.put_blob(&oci, &img.config_path).await.expect("config");
    let oci_digest = c
        .put_manifest(&oci, &img.manifest, OCI_MANIFEST)
        .await
        .expect("oci manifest");

    // The same blobs under a Docker schema 2 manifest.
    let docker = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "digest": img.config_digest.to_string(),
            "size": img.config_size,
        },
        "layers": [{
            "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "digest": img.layer_digest.to_string(),
            "size": img.layer_size,
        }],
    }))
    .expect("json");
    let docker_ref = reference(host, "ossb/kinds:docker");
    let docker_digest = c
        .put_manifest(&docker_ref, &docker, DOCKER_MANIFEST)
        .await
        .expect("docker manifest");

    let list = index(
        DOCKER_MANIFEST_LIST,
        DOCKER_MANIFEST,
        &docker_digest,
        docker.len(),
    );
    let list_ref = reference(host, "ossb/kinds:list");
    let list_digest = c
        .put_manifest(&list_ref, &list, DOCKER_MANIFEST_LIST)
        .await
        .expect("manifest list");
    let oci_index = index(OCI_INDEX, OCI_MANIFEST, &oci_digest, img.manifest.len());
    let index_ref = reference(host, "ossb/kinds:index");
    let index_digest = c
        .put_manifest(&index_ref, &oci_index, OCI_INDEX)
        .await
        .expect("oci index");

    for (r, bytes, mt, d) in [
        (&oci, &img.manifest, OCI_MANIFEST, &oci_digest),
        (&docker_ref, &docker, DOCKER_MANIFEST, &docker_digest),
        (&list_ref, &list, DOCKER_MANIFEST_LIST, &list_digest),
        (&index_ref, &oci_index, OCI_INDEX, &index_digest),
    ] {
        let (got, got_mt, got_d) = c.get_manifest(r).await.expect("get manifest");
        assert_eq!((&got, got_mt.as_str(), &got_d), (bytes, mt, d), "{r}");
        let info = c.head_manifest(r).await.expect("head").expect("exists");
        assert_eq!(
            (&info.digest, info.media_type.as_str(), info.size),
            (d, mt, bytes.len() as u64)
        );
        // By digest too: the bytes are checked against the digest asked for.
        let by_digest = reference(host, &format!("ossb/kinds@{d}"));
        let (got, _, got_d) = c.get_manifest(&by_digest).await.expect("by digest");
        assert_eq!((&got, &got_d), (bytes, d));
    }

    // Distribution checks what an index refers to: an entry that does not exist is refused.
    let dangling = index(
        OCI_INDEX,
        OCI_MANIFEST,
        &Digest::sha256_of(b"no such manifest"),
        10,
    );
    let err = c
        .put_manifest(
            &reference(host, "ossb/kinds:dangling"),
            &dangling,
            OCI_INDEX,
        )
        .await
        .expect_err("dangling index");
    assert_eq!(err.exit_code() as i32, 3, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_docker_content_digest_is_refused() {
    let Some(reg) = start() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let img = build_image(dir.path(), "lying");
    let c = client();
    let real = reference(reg.host(), "ossb/lying:v1");
    c.put_blob(&real, &img.layer_path).await.expect("layer");
    c.put_blob(&real, &img.config_path).await.expect("config");
    c.put_manifest(&real, &img.manifest, OCI_MANIFEST)
        .await
        .expect("manifest");

    let proxy = FaultProxy::start(reg.host(), Mode::Random(Rates::NONE), 1);
    let lie = Digest::sha256_of(b"something else");
    proxy.set_header_override("Docker-Content-Digest", lie.as_str());
    let lying = client();
    let r = reference(&proxy.host(), "ossb/lying:v1");
    let err = lying
        .get_manifest(&r)
        .await
        .expect_err("wrong header on pull");
    assert!(
        matches!(err, RegistryError::DigestMismatch { .. }),
        "{err:?}"
    );
    assert_eq!(err.exit_code() as i32, 3);
    assert!(err.to_string().contains(lie.as_str()), "{err}");

    let err = lying
        .put_manifest(&r, &img.manifest, OCI_MANIFEST)
        .await
        .expect_err("wrong header on push");
    assert!(
        matches!(err, RegistryError::DigestMismatch { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("pushed manifest"), "{err}");
}
