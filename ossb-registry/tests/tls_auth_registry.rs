//! Push and pull against a real Distribution registry with TLS and htpasswd.

mod common;

use std::sync::Arc;

use common::{build_image, skopeo_inspect};
use ossb_registry::manifest::OCI_MANIFEST;
use ossb_registry::{
    Credentials, Reference, RegistryClient, RegistryConfig, RegistryError, StaticCredentials,
};
use ossb_testkit::{Registry, require_tool};

const USER: &str = "ossb";
const PASS: &str = "ossb-test-pass";

fn start() -> Option<Registry> {
    for tool in ["docker-registry", "curl", "openssl", "htpasswd"] {
        if !require_tool(tool) {
            return None;
        }
    }
    Some(Registry::start_tls_htpasswd(USER, PASS).expect("start tls registry"))
}

fn creds(reg: &Registry, password: &str) -> Arc<StaticCredentials> {
    Arc::new(StaticCredentials::new().with(
        reg.host(),
        Credentials::Basic {
            username: USER.into(),
            password: password.into(),
        },
    ))
}

/// A config that verifies TLS for loopback too, trusting the test CA when given.
fn verifying_config(reg: &Registry, trust_ca: bool) -> RegistryConfig {
    RegistryConfig {
        loopback_insecure: false,
        cert_dirs: Vec::new(),
        tls_ca: trust_ca.then(|| {
            reg.ca_cert_path()
                .expect("tls registry has a ca")
                .to_path_buf()
        }),
        ..RegistryConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_password_with_test_ca_pushes_and_pulls() {
    let Some(reg) = start() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let img = build_image(dir.path(), "tls");
    let client = RegistryClient::with_credentials(verifying_config(&reg, true), creds(&reg, PASS));
    let r = Reference::parse(&format!("{}/ossb/secure:v1", reg.host())).expect("ref");
    client
        .put_blob(&r, &img.layer_path)
        .await
        .expect("push layer");
    client
        .put_blob(&r, &img.config_path)
        .await
        .expect("push config");
    let d = client
        .put_manifest(&r, &img.manifest, OCI_MANIFEST)
        .await
        .expect("push manifest");
    let (bytes, mt, digest) = client.get_manifest(&r).await.expect("pull manifest");
    assert_eq!(
        (bytes.as_slice(), mt.as_str(), &digest),
        (img.manifest.as_slice(), OCI_MANIFEST, &d)
    );
    let mut layer = Vec::new();
    client
        .get_blob_to(&r, &img.layer_digest, &mut layer)
        .await
        .expect("pull layer");
    assert_eq!(layer, std::fs::read(&img.layer_path).expect("read"));

    if require_tool("skopeo") {
        let v = skopeo_inspect(
            &format!("{}/ossb/secure:v1", reg.host()),
            Some((USER, PASS)),
        );
        assert_eq!(v["Digest"].as_str(), Some(d.as_str()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_an_auth_error() {
    let Some(reg) = start() else { return };
    let client = RegistryClient::with_credentials(
        verifying_config(&reg, true),
        creds(&reg, "wrong-password"),
    );
    let r = Reference::parse(&format!("{}/ossb/secure:v1", reg.host())).expect("ref");
    let err = client.get_manifest(&r).await.expect_err("wrong password");
    assert!(err.is_auth(), "{err:?}");
    assert_eq!(err.exit_code() as i32, 4);
    let msg = err.to_string();
    assert!(
        msg.contains(reg.host()) && msg.contains("rejected the credentials"),
        "{msg}"
    );
    assert!(!msg.contains("wrong-password") && !format!("{err:?}").contains("wrong-password"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_credentials_are_an_auth_error() {
    let Some(reg) = start() else { return };
    let client = RegistryClient::with_credentials(
        verifying_config(&reg, true),
        Arc::new(StaticCredentials::new()),
    );
    let r = Reference::parse(&format!("{}/ossb/secure:v1", reg.host())).expect("ref");
    let err = client.head_manifest(&r).await.expect_err("no credentials");
    assert!(err.is_auth(), "{err:?}");
    assert!(
        err.to_string().contains("no credentials are configured"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_ca_is_a_tls_error() {
    let Some(reg) = start() else { return };
    let client = RegistryClient::with_credentials(verifying_config(&reg, false), creds(&reg, PASS));
    let r = Reference::parse(&format!("{}/ossb/secure:v1", reg.host())).expect("ref");
    let err = client
        .get_manifest(&r)
        .await
        .expect_err("untrusted certificate");
    assert!(matches!(err, RegistryError::Tls { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("tls error") && msg.contains("certificate") && msg.contains(reg.host()),
        "{msg}"
    );
    assert_eq!(err.exit_code() as i32, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_is_insecure_by_default() {
    let Some(reg) = start() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let img = build_image(dir.path(), "insecure");
    let config = RegistryConfig {
        cert_dirs: Vec::new(),
        ..RegistryConfig::default()
    };
    let client = RegistryClient::with_credentials(config, creds(&reg, PASS));
    let r = Reference::parse(&format!("{}/ossb/insecure:v1", reg.host())).expect("ref");
    let d = client
        .put_blob(&r, &img.config_path)
        .await
        .expect("push over unverified tls");
    assert!(client.blob_exists(&r, &d).await.expect("exists"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_cert_dir_is_trusted() {
    let Some(reg) = start() else { return };
    let certs = tempfile::tempdir().expect("tempdir");
    let host_dir = certs.path().join(reg.host());
    std::fs::create_dir_all(&host_dir).expect("mkdir");
    std::fs::copy(reg.ca_cert_path().expect("ca"), host_dir.join("ca.crt")).expect("copy ca");
    let config = RegistryConfig {
        loopback_insecure: false,
        cert_dirs: vec![certs.path().to_path_buf()],
        ..RegistryConfig::default()
    };
    let client = RegistryClient::with_credentials(config, creds(&reg, PASS));
    client
        .ping(reg.host())
        .await
        .expect("ca from the cert dir is trusted");
}
