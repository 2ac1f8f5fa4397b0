//! Blob downloads redirected to object storage, as Distribution does with an S3 or GCS
//! storage driver (`storage: redirect:`). Distribution's filesystem driver cannot redirect,
//! so a proxy in front of a REAL registry answers blob `GET`s with `307` to a FAKE storage
//! server (`common/fake_http.rs`), and demands basic authentication so that the client
//! carries `Authorization`. Checked: the redirect is followed, the credentials stay with the
//! registry (not sent to the storage host), and the downloaded bytes are digest-verified.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use common::build_image;
use common::fake_http::{FakeResponse, FakeServer};
use common::fault_proxy::{FaultProxy, Mode, Rates};
use ossb_registry::manifest::OCI_MANIFEST;
use ossb_registry::{
    Credentials, Digest, Reference, RegistryClient, RegistryConfig, RegistryError,
    StaticCredentials,
};
use ossb_testkit::{Registry, require_tool};

const PASS: &str = "redirect-test-password";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_redirect_to_storage_drops_credentials_and_checks_the_digest() {
    if !require_tool("docker-registry") || !require_tool("curl") {
        return;
    }
    let reg = Registry::start_plain().expect("registry");
    let proxy = FaultProxy::start(reg.host(), Mode::Random(Rates::NONE), 1);
    proxy.set_basic_gate(true);
    let host = proxy.host();
    let creds = StaticCredentials::new().with(
        host.clone(),
        Credentials::Basic {
            username: "u".into(),
            password: PASS.into(),
        },
    );
    let client = RegistryClient::with_credentials(
        RegistryConfig {
            cert_dirs: Vec::new(),
            ..RegistryConfig::default()
        },
        Arc::new(creds),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let img = build_image(dir.path(), "redirect");
    let r = Reference::parse(&format!("{host}/ossb/redirect:v1")).expect("ref");
    client
        .put_blob(&r, &img.layer_path)
        .await
        .expect("push layer");
    client
        .put_blob(&r, &img.config_path)
        .await
        .expect("push config");
    client
        .put_manifest(&r, &img.manifest, OCI_MANIFEST)
        .await
        .expect("push manifest");

    // The storage serves the layer under its digest, and wrong bytes under the config's.
    let layer = std::fs::read(&img.layer_path).expect("read layer");
    let objects: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::new(Mutex::new(HashMap::from([
        (img.layer_digest.to_string(), layer.clone()),
        (img.config_digest.to_string(), b"not the config".to_vec()),
    ])));
    let served = objects.clone();
    let storage = FakeServer::start(move |req, _| {
        let key = req.path().trim_start_matches("/objects/").to_string();
        match served.lock().expect("lock").get(&key) {
            Some(bytes) => FakeResponse::new(200, "application/octet-stream", bytes.clone()),
            None => FakeResponse::text(404, "no such object"),
        }
    });
    proxy.set_blob_redirect(Some(format!("{}/objects", storage.url())));
    proxy.reset_seen();

    let mut out = Vec::new();
    let n = client
        .get_blob_to(&r, &img.layer_digest, &mut out)
        .await
        .expect("pull through the redirect");
    assert_eq!((n as usize, &out), (layer.len(), &layer));
    let seen = proxy.seen();
    assert!(
        seen.iter()
            .any(|s| s.method == "GET" && s.target.contains("/blobs/") && s.authorized),
        "the registry got the credentials: {seen:#?}"
    );
    let reqs = storage.requests();
    assert_eq!(reqs.len(), 1, "{reqs:#?}");
    assert_eq!(
        reqs[0].query().get("signature").map(String::as_str),
        Some("ossb-test")
    );
    assert!(
        reqs[0].header("authorization").is_none(),
        "credentials must not follow a redirect to another host: {reqs:#?}"
    );

    let err = client
        .get_blob_to(&r, &img.config_digest, &mut Vec::new())
        .await
        .expect_err("storage served the wrong bytes");
    assert!(
        matches!(err, RegistryError::DigestMismatch { .. }),
        "{err:?}"
    );
    assert_eq!(err.exit_code() as i32, 3);
    let actual = Digest::sha256_of(b"not the config");
    assert!(err.to_string().contains(actual.as_str()), "{err}");
    assert!(!format!("{err:?}").contains(PASS));
}
