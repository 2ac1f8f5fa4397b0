//! Runs every credential flow with debug-level tracing captured into a buffer, and checks
//! that no password, token or key appears in the logs, in any error text or in `Debug`
//! output. Real registries (TLS + htpasswd, TLS + token authentication) for the file and
//! helper sources and the bearer flow; FAKE cloud
//! services (`common/cloud_fakes.rs`) for ECR, STS, GCE metadata, Entra ID and ACR.

#![cfg(all(feature = "ecr", feature = "gcr", feature = "acr"))]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use common::build_image;
use common::cloud_fakes::{self, Entra};
use ossb_registry::manifest::OCI_MANIFEST;
use ossb_registry::{
    CredentialChain, CredentialProvider, Environment, Reference, RegistryClient, RegistryConfig,
};
use ossb_testkit::{Registry, TokenAuth, require_tool};

const USER: &str = "leak-user";
const PASS: &str = "LEAKCHECK-registry-password-a1";
const WRONG: &str = "LEAKCHECK-wrong-password-b2";
const AWS_SECRET: &str = "LEAKCHECK-aws-secret-c3";
const ECR_PASSWORD: &str = "LEAKCHECK-ecr-password-d4";
const STS_SECRET: &str = "LEAKCHECK-sts-secret-e5";
const STS_SESSION: &str = "LEAKCHECK-sts-session-f6";
const JWT: &str = "LEAKCHECK-web-identity-jwt-g7";
const GCE_TOKEN: &str = "LEAKCHECK-gce-token-h8";
const AZ_SECRET: &str = "LEAKCHECK-azure-secret-i9";
const AZ_ACCESS: &str = "LEAKCHECK-entra-access-j0";
const ACR_REFRESH: &str = "LEAKCHECK-acr-refresh-k1";
const ID_TOKEN: &str = "LEAKCHECK-identity-token-l2";
const BEARER: &str = "LEAKCHECK-bearer-access-m3";

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn chain(dir: &std::path::Path, env: Environment) -> CredentialChain {
    CredentialChain::builder(&RegistryConfig::default())
        .environment(env.with("HOME", dir.join("home").display().to_string()))
        .registry_secret_dir(dir.join("secret"))
        .registry_auth_dir(dir.join("auth"))
        .build()
}

fn auths(host: &str, user: &str, pass: &str) -> String {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    format!(r#"{{"auths": {{"{host}": {{"auth": "{auth}"}}}}}}"#)
}

#[test]
fn no_secret_in_logs_errors_or_debug() {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("subscriber");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut texts: Vec<String> = Vec::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::create_dir_all(d.join("home")).expect("mkdir");
    let base = || {
        Environment::from_vars([
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("PATH", "/usr/bin:/bin"),
        ])
    };

    // Real registry: a right and a wrong password from Kubernetes secret files, and a helper.
    if ["docker-registry", "openssl", "htpasswd"]
        .iter()
        .all(|t| require_tool(t))
    {
        let reg = Registry::start_tls_htpasswd(USER, PASS).expect("registry");
        let img = build_image(d, "leak");
        for (i, pass) in [PASS, WRONG].iter().enumerate() {
            let sub = d.join(format!("reg{i}"));
            std::fs::create_dir_all(sub.join("secret")).expect("mkdir");
            std::fs::create_dir_all(sub.join("home")).expect("mkdir");
            std::fs::write(
                sub.join("secret/.dockerconfigjson"),
                auths(reg.host(), USER, pass),
            )
            .expect("w");
            let c = chain(&sub, base());
            texts.push(format!("{c:?} {:?}", c.lookup(reg.host())));
            let client = RegistryClient::with_credentials(
                RegistryConfig {
                    cert_dirs: Vec::new(),
                    ..RegistryConfig::default()
                },
                Arc::new(c),
            );
            let r = Reference::parse(&format!("{}/ossb/leak:v1", reg.host())).expect("ref");
            let result = rt.block_on(async {
                client.put_blob(&r, &img.layer_path).await?;
                client.put_blob(&r, &img.config_path).await?;
                client.put_manifest(&r, &img.manifest, OCI_MANIFEST).await?;
                client.get_manifest(&r).await
            });
            match (i, result) {
                (0, Ok(_)) => {}
                (1, Err(e)) => texts.push(format!("{e} {e:?}")),
                (_, other) => panic!("unexpected result {i}: {:?}", other.map(|_| ())),
            }
        }
        let helper = d.join("bin/docker-credential-leak");
        std::fs::create_dir_all(d.join("bin")).expect("mkdir");
        std::fs::write(
            &helper,
            format!(
                "#!/bin/sh\nread s\necho '{{\"Username\":\"{USER}\",\"Secret\":\"{PASS}\"}}'\n"
            ),
        )
        .expect("w");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let sub = d.join("helper");
        std::fs::create_dir_all(sub.join("home/.docker")).expect("mkdir");
        std::fs::write(
            sub.join("home/.docker/config.json"),
            r#"{"credsStore": "leak"}"#,
        )
        .expect("w");
        let env = base().with("PATH", format!("{}:/usr/bin:/bin", d.join("bin").display()));
        let c = chain(&sub, env);
        let client = RegistryClient::with_credentials(
            RegistryConfig {
                cert_dirs: Vec::new(),
                ..RegistryConfig::default()
            },
            Arc::new(c),
        );
        let r = Reference::parse(&format!("{}/ossb/leak:v1", reg.host())).expect("ref");
        rt.block_on(client.get_manifest(&r))
            .expect("pull with helper credentials");
    }

    // ECR with env keys (good and refused), and with web identity.
    let ecr = cloud_fakes::ecr("AKIDLEAK", AWS_SECRET, "eu-west-1", ECR_PASSWORD);
    let host = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";
    for secret in [AWS_SECRET, WRONG] {
        let env = base()
            .with("AWS_ACCESS_KEY_ID", "AKIDLEAK")
            .with("AWS_SECRET_ACCESS_KEY", secret)
            .with("AWS_SESSION_TOKEN", STS_SESSION)
            .with("OSSB_ECR_ENDPOINT", ecr.url());
        let c = chain(d, env);
        texts.push(format!("{c:?} {:?}", c.lookup(host)));
        if let Err(e) = c.lookup(host) {
            texts.push(e.to_string());
        }
    }
    let sts = cloud_fakes::sts(
        "arn:aws:iam::1:role/r",
        JWT,
        "ASIALEAK",
        STS_SECRET,
        STS_SESSION,
    );
    let ecr2 = cloud_fakes::ecr("ASIALEAK", STS_SECRET, "eu-west-1", ECR_PASSWORD);
    std::fs::write(d.join("jwt"), JWT).expect("w");
    for role in ["arn:aws:iam::1:role/r", "arn:aws:iam::1:role/other"] {
        let env = base()
            .with(
                "AWS_WEB_IDENTITY_TOKEN_FILE",
                d.join("jwt").display().to_string(),
            )
            .with("AWS_ROLE_ARN", role)
            .with("OSSB_STS_ENDPOINT", sts.url())
            .with("OSSB_ECR_ENDPOINT", ecr2.url());
        texts.push(format!("{:?}", chain(d, env).lookup(host)));
    }

    // GCE metadata.
    let gce = cloud_fakes::gce_metadata(GCE_TOKEN);
    let env = base().with("OSSB_GCE_METADATA_HOST", gce.host());
    texts.push(format!("{:?}", chain(d, env).lookup("gcr.io")));

    // ACR with a right and a wrong client secret.
    let e = Entra {
        tenant: "t".into(),
        client_id: "c".into(),
        secret_or_assertion: AZ_SECRET.into(),
        access_token: AZ_ACCESS.into(),
        refresh_token: ACR_REFRESH.into(),
        registry: "leak.azurecr.io".into(),
    };
    let az = cloud_fakes::azure(e);
    for secret in [AZ_SECRET, WRONG] {
        let env = base()
            .with("AZURE_CLIENT_ID", "c")
            .with("AZURE_TENANT_ID", "t")
            .with("AZURE_CLIENT_SECRET", secret)
            .with("OSSB_AZURE_AUTHORITY_HOST", az.url())
            .with(
                "OSSB_ACR_EXCHANGE_ENDPOINT",
                format!("{}/oauth2/exchange", az.url()),
            );
        let r = chain(d, env).lookup("leak.azurecr.io");
        texts.push(format!("{r:?}"));
        if let Err(e) = r {
            texts.push(e.to_string());
        }
    }

    // The identity-token refresh flow against a fake token server, right and wrong token.
    let fake = cloud_fakes::bearer_registry(ID_TOKEN, BEARER, b"{}".to_vec());
    for token in [ID_TOKEN, WRONG] {
        let sub = d.join(format!("bearer-{}", token.len()));
        std::fs::create_dir_all(sub.join("home/.docker")).expect("mkdir");
        std::fs::write(
            sub.join("home/.docker/config.json"),
            format!(
                r#"{{"auths": {{"{}": {{"identitytoken": "{token}"}}}}}}"#,
                fake.host()
            ),
        )
        .expect("w");
        let client = RegistryClient::with_credentials(
            RegistryConfig {
                cert_dirs: Vec::new(),
                ..RegistryConfig::default()
            },
            Arc::new(chain(&sub, base())),
        );
        let r = Reference::parse(&format!("{}/ossb/app:v1", fake.host())).expect("ref");
        if let Err(e) = rt.block_on(client.get_manifest(&r)) {
            texts.push(format!("{e} {e:?}"));
        }
    }

    // A real registry with token authentication: a right and a wrong password, and the
    // issued bearer tokens, which must not show up either.
    let mut issued: Vec<String> = Vec::new();
    if ["docker-registry", "openssl", "curl"]
        .iter()
        .all(|t| require_tool(t))
    {
        let policy = TokenAuth::new()
            .user(USER, PASS)
            .grant(USER, "ossb/leak", &["pull", "push"]);
        let reg = Registry::start_token_auth(policy).expect("token registry");
        let img = build_image(d, "leak-token");
        for (i, pass) in [PASS, WRONG].iter().enumerate() {
            let sub = d.join(format!("token{i}"));
            std::fs::create_dir_all(sub.join("home/.docker")).expect("mkdir");
            std::fs::write(
                sub.join("home/.docker/config.json"),
                auths(reg.host(), USER, pass),
            )
            .expect("w");
            let client = RegistryClient::with_credentials(
                RegistryConfig {
                    cert_dirs: Vec::new(),
                    ..RegistryConfig::default()
                },
                Arc::new(chain(&sub, base())),
            );
            let r = Reference::parse(&format!("{}/ossb/leak:v1", reg.host())).expect("ref");
            let result = rt.block_on(async {
                client.put_blob(&r, &img.layer_path).await?;
                client.put_blob(&r, &img.config_path).await?;
                client.put_manifest(&r, &img.manifest, OCI_MANIFEST).await?;
                client.get_manifest(&r).await
            });
            match (i, result) {
                (0, Ok(_)) => {}
                (1, Err(e)) => texts.push(format!("{e} {e:?}")),
                (_, other) => panic!("unexpected token result {i}: {:?}", other.map(|_| ())),
            }
        }
        issued = reg.token_server().expect("token server").issued_tokens();
        assert!(!issued.is_empty(), "tokens were issued");
    }

    let logs = String::from_utf8_lossy(&buffer.0.lock().expect("lock")).to_string();
    assert!(
        logs.contains("using registry credentials"),
        "debug logs were captured:\n{logs}"
    );
    assert!(logs.contains("source="), "the source is logged:\n{logs}");
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{s}"));
    let secrets = [
        PASS.to_string(),
        WRONG.to_string(),
        AWS_SECRET.to_string(),
        ECR_PASSWORD.to_string(),
        STS_SECRET.to_string(),
        STS_SESSION.to_string(),
        JWT.to_string(),
        GCE_TOKEN.to_string(),
        AZ_SECRET.to_string(),
        AZ_ACCESS.to_string(),
        ACR_REFRESH.to_string(),
        ID_TOKEN.to_string(),
        BEARER.to_string(),
        b64(PASS),
        b64(WRONG),
    ];
    let all_text = texts.join("\n");
    for token in &issued {
        assert!(
            !logs.contains(token.as_str()) && !all_text.contains(token.as_str()),
            "an issued bearer token leaked"
        );
    }
    assert!(
        all_text.contains("rejected the credentials from kubernetes secret"),
        "{all_text}"
    );
    for s in &secrets {
        assert!(
            !logs.contains(s.as_str()),
            "secret {s} leaked into the logs"
        );
        assert!(
            !all_text.contains(s.as_str()),
            "secret {s} leaked into errors or Debug:\n{all_text}"
        );
    }
    assert!(
        !logs.contains("LEAKCHECK") && !all_text.contains("LEAKCHECK"),
        "a secret leaked"
    );
}
