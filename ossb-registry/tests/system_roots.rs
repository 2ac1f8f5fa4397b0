//! The system's trusted roots are used: a registry whose CA is only in the "system" store
//! (`SSL_CERT_FILE`, which the platform loader honours) is verified, and without it the same
//! registry is a TLS error. The roots are loaded once per process, so each case runs in a
//! child process of this test binary with its own environment.

use std::process::Command;
use std::sync::Arc;

use ossb_registry::{
    Credentials, RegistryClient, RegistryConfig, RegistryError, StaticCredentials,
};
use ossb_testkit::{Registry, require_tool};

const CHILD: &str = "OSSB_TEST_SYSTEM_ROOTS_HOST";
const EXPECT: &str = "OSSB_TEST_SYSTEM_ROOTS_EXPECT";

/// In the child: ping the registry with verification on and no extra CA anywhere.
fn child(host: &str, expect: &str) {
    let config = RegistryConfig {
        loopback_insecure: false,
        cert_dirs: Vec::new(),
        tls_ca: None,
        ..RegistryConfig::default()
    };
    let creds = StaticCredentials::new().with(
        host,
        Credentials::Basic {
            username: "roots".into(),
            password: "roots-pass".into(),
        },
    );
    let client = RegistryClient::with_credentials(config, Arc::new(creds));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let result = rt.block_on(client.ping(host));
    match (expect, result) {
        ("ok", Ok(())) => {}
        ("tls", Err(RegistryError::Tls { .. })) => {}
        (_, other) => panic!("expected {expect}, got {other:?}"),
    }
}

#[test]
fn system_roots_are_trusted() {
    if let (Ok(host), Ok(expect)) = (std::env::var(CHILD), std::env::var(EXPECT)) {
        return child(&host, &expect);
    }
    for tool in ["docker-registry", "curl", "openssl", "htpasswd"] {
        if !require_tool(tool) {
            return;
        }
    }
    let reg = Registry::start_tls_htpasswd("roots", "roots-pass").expect("registry");
    let ca = reg.ca_cert_path().expect("ca");
    let empty = tempfile::NamedTempFile::new().expect("empty bundle");
    let exe = std::env::current_exe().expect("test binary");
    for (bundle, expect) in [(ca, "ok"), (empty.path(), "tls")] {
        let out = Command::new(&exe)
            .args(["--exact", "system_roots_are_trusted", "--nocapture"])
            .env(CHILD, reg.host())
            .env(EXPECT, expect)
            .env("SSL_CERT_FILE", bundle)
            .env_remove("SSL_CERT_DIR")
            .output()
            .expect("run the child");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "child expecting {expect} failed:\n{}{}",
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
