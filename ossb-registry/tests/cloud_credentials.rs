//! Cloud credential providers against FAKE services (see `common/cloud_fakes.rs`) that speak
//! each service's real wire protocol, reached through the endpoint overrides; and the OAuth2
//! identity-token flow against a FAKE registry endpoint with a token server of its own.

#![cfg(all(feature = "ecr", feature = "gcr", feature = "acr"))]

mod common;

use std::sync::Arc;

use common::cloud_fakes::{self, Entra};
use ossb_registry::credentials::cloud::acr::ACR_TOKEN_USER;
use ossb_registry::{
    CredentialChain, CredentialProvider, Credentials, Environment, Reference, RegistryClient,
    RegistryConfig,
};

const ECR_HOST: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";
const AK: &str = "AKIDOSSBTEST0001";
const SK: &str = "ossb-test-secret-key/9b1f";

struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// An environment with an empty home and no IMDS (unless a test points it at a fake).
    fn env(&self) -> Environment {
        Environment::from_vars([
            ("HOME", self.dir.path().display().to_string()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
            ("OSSB_AZURE_IMDS_ENDPOINT", "http://127.0.0.1:9".to_string()),
        ])
    }

    fn chain(&self, env: Environment) -> CredentialChain {
        CredentialChain::builder(&RegistryConfig::default())
            .environment(env)
            .registry_secret_dir(self.dir.path().join("no-secret"))
            .registry_auth_dir(self.dir.path().join("no-auth"))
            .build()
    }

    fn write(&self, name: &str, text: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        p.display().to_string()
    }
}

fn basic(user: &str, pass: &str) -> Credentials {
    Credentials::Basic {
        username: user.into(),
        password: pass.into(),
    }
}

#[test]
fn ecr_with_environment_credentials() {
    let ecr = cloud_fakes::ecr(AK, SK, "eu-west-1", "ecr-password-from-fake");
    let sb = Sandbox::new();
    let env = sb
        .env()
        .with("AWS_ACCESS_KEY_ID", AK)
        .with("AWS_SECRET_ACCESS_KEY", SK)
        .with("OSSB_ECR_ENDPOINT", ecr.url());
    let chain = sb.chain(env);
    let found = chain.lookup(ECR_HOST).expect("lookup").expect("found");
    assert_eq!(found.credentials, basic("AWS", "ecr-password-from-fake"));
    assert!(
        found.source.contains("amazon ecr")
            && found.source.contains("environment AWS_ACCESS_KEY_ID"),
        "{}",
        found.source
    );
    assert_eq!(
        chain.credentials(ECR_HOST),
        Some(basic("AWS", "ecr-password-from-fake"))
    );
    assert_eq!(
        ecr.requests().len(),
        1,
        "the token is cached until expiresAt"
    );
    assert_eq!(
        chain.credentials("quay.io"),
        None,
        "other hosts are not ECR"
    );
}

#[test]
fn ecr_refusal_is_an_error_naming_the_source() {
    let ecr = cloud_fakes::ecr(AK, "a-different-secret", "eu-west-1", "x");
    let sb = Sandbox::new();
    let env = sb
        .env()
        .with("AWS_ACCESS_KEY_ID", AK)
        .with("AWS_SECRET_ACCESS_KEY", SK)
        .with("OSSB_ECR_ENDPOINT", ecr.url());
    let err = sb.chain(env).lookup(ECR_HOST).expect_err("bad signature");
    let msg = err.to_string();
    assert!(
        msg.contains(ECR_HOST)
            && msg.contains("amazon ecr")
            && msg.contains("InvalidSignatureException"),
        "{msg}"
    );
    assert!(!msg.contains(SK), "{msg}");
}

#[test]
fn ecr_with_web_identity_irsa() {
    let (tmp_ak, tmp_sk, session) = (
        "ASIAOSSBTEMP0002",
        "temp-secret-from-sts-77",
        "session-token-from-sts-88",
    );
    let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6Y2k6b3NzYiJ9.c2ln";
    let role = "arn:aws:iam::123456789012:role/ossb-builder";
    let sts = cloud_fakes::sts(role, jwt, tmp_ak, tmp_sk, session);
    let ecr = cloud_fakes::ecr(tmp_ak, tmp_sk, "eu-west-1", "ecr-password-irsa");
    let sb = Sandbox::new();
    let token_file = sb.write("token", jwt);
    let env = sb
        .env()
        .with("AWS_WEB_IDENTITY_TOKEN_FILE", token_file)
        .with("AWS_ROLE_ARN", role)
        .with("OSSB_STS_ENDPOINT", sts.url())
        .with("OSSB_ECR_ENDPOINT", ecr.url());
    let found = sb
        .chain(env)
        .lookup(ECR_HOST)
        .expect("lookup")
        .expect("found");
    assert_eq!(found.credentials, basic("AWS", "ecr-password-irsa"));
    assert!(found.source.contains("web identity"), "{}", found.source);
    let reqs = ecr.requests();
    assert_eq!(reqs[0].header("x-amz-security-token"), Some(session));
}

#[test]
fn ecr_with_instance_metadata_v2() {
    let (tmp_ak, tmp_sk, session) = ("ASIAOSSBIMDS0003", "imds-secret-55", "imds-session-66");
    let imds = cloud_fakes::imds("ossb-node-role", tmp_ak, tmp_sk, session);
    let ecr = cloud_fakes::ecr(tmp_ak, tmp_sk, "eu-west-1", "ecr-password-imds");
    let sb = Sandbox::new();
    let env = Environment::from_vars([("HOME", sb.dir.path().display().to_string())])
        .with("OSSB_AWS_IMDS_ENDPOINT", imds.url())
        .with("OSSB_ECR_ENDPOINT", ecr.url());
    let found = sb
        .chain(env)
        .lookup(ECR_HOST)
        .expect("lookup")
        .expect("found");
    assert_eq!(found.credentials, basic("AWS", "ecr-password-imds"));
    assert!(found.source.contains("instance metadata") && found.source.contains("ossb-node-role"));
    assert_eq!(
        imds.requests()[0].method,
        "PUT",
        "IMDSv2 starts with a session token"
    );
}

#[test]
fn ecr_without_any_aws_credentials_is_anonymous() {
    let sb = Sandbox::new();
    assert_eq!(sb.chain(sb.env()).lookup(ECR_HOST).expect("no error"), None);
}

#[test]
fn google_metadata_server() {
    let gce = cloud_fakes::gce_metadata("ya29.fake-gce-access-token");
    let sb = Sandbox::new();
    let env = sb.env().with("OSSB_GCE_METADATA_HOST", gce.host());
    let chain = sb.chain(env);
    for host in ["europe-west1-docker.pkg.dev", "gcr.io"] {
        let found = chain.lookup(host).expect("lookup").expect("found");
        assert_eq!(
            found.credentials,
            basic("oauth2accesstoken", "ya29.fake-gce-access-token")
        );
        assert!(
            found.source.contains("gce metadata server"),
            "{}",
            found.source
        );
    }
}

#[test]
fn google_service_account_key_file() {
    let sb = Sandbox::new();
    let key = r#"{"type": "service_account", "project_id": "p", "private_key": "-----BEGIN PRIVATE KEY-----\nMIIfake\n-----END PRIVATE KEY-----\n", "client_email": "ci@p.iam.gserviceaccount.com"}"#;
    let path = sb.write("key.json", key);
    let env = sb
        .env()
        .with("GOOGLE_APPLICATION_CREDENTIALS", path)
        .with("OSSB_GCE_METADATA_HOST", "127.0.0.1:9");
    let found = sb
        .chain(env)
        .lookup("us-docker.pkg.dev")
        .expect("lookup")
        .expect("found");
    assert_eq!(found.credentials, basic("_json_key", key));
}

fn entra(secret: &str) -> Entra {
    Entra {
        tenant: "11111111-2222-3333-4444-555555555555".into(),
        client_id: "66666666-7777-8888-9999-000000000000".into(),
        secret_or_assertion: secret.into(),
        access_token: "entra-access-token-abc".into(),
        refresh_token: "acr-refresh-token-xyz".into(),
        registry: "ossbtest.azurecr.io".into(),
    }
}

fn azure_env(sb: &Sandbox, fake: &common::fake_http::FakeServer, e: &Entra) -> Environment {
    sb.env()
        .with("AZURE_CLIENT_ID", &e.client_id)
        .with("AZURE_TENANT_ID", &e.tenant)
        .with("OSSB_AZURE_AUTHORITY_HOST", fake.url())
        .with(
            "OSSB_ACR_EXCHANGE_ENDPOINT",
            format!("{}/oauth2/exchange", fake.url()),
        )
}

#[test]
fn acr_with_client_secret() {
    let e = entra("client-secret-value-123");
    let fake = cloud_fakes::azure(e.clone());
    let sb = Sandbox::new();
    let env = azure_env(&sb, &fake, &e).with("AZURE_CLIENT_SECRET", "client-secret-value-123");
    let found = sb
        .chain(env)
        .lookup("ossbtest.azurecr.io")
        .expect("lookup")
        .expect("found");
    assert_eq!(
        found.credentials,
        Credentials::IdentityToken("acr-refresh-token-xyz".into())
    );
    assert!(found.source.contains("client secret"), "{}", found.source);
    let exchange = fake
        .requests()
        .into_iter()
        .find(|r| r.path() == "/oauth2/exchange")
        .expect("exchange");
    assert_eq!(exchange.form().get("tenant"), Some(&e.tenant));
    assert_eq!(ACR_TOKEN_USER, "00000000-0000-0000-0000-000000000000");
}

#[test]
fn acr_with_workload_identity() {
    let assertion = "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJhcGk6Ly9BenVyZUFEVG9rZW5FeGNoYW5nZSJ9.c2ln";
    let e = entra(assertion);
    let fake = cloud_fakes::azure(e.clone());
    let sb = Sandbox::new();
    let file = sb.write("azure-identity-token", assertion);
    let env = azure_env(&sb, &fake, &e).with("AZURE_FEDERATED_TOKEN_FILE", file);
    let found = sb
        .chain(env)
        .lookup("ossbtest.azurecr.io")
        .expect("lookup")
        .expect("found");
    assert_eq!(
        found.credentials,
        Credentials::IdentityToken("acr-refresh-token-xyz".into())
    );
    assert!(
        found.source.contains("workload identity"),
        "{}",
        found.source
    );
}

#[test]
fn acr_with_managed_identity_and_a_refused_secret() {
    let e = entra("unused");
    let fake = cloud_fakes::azure(e.clone());
    let sb = Sandbox::new();
    let env = sb.env().with("OSSB_AZURE_IMDS_ENDPOINT", fake.url()).with(
        "OSSB_ACR_EXCHANGE_ENDPOINT",
        format!("{}/oauth2/exchange", fake.url()),
    );
    let found = sb
        .chain(env)
        .lookup("ossbtest.azurecr.io")
        .expect("lookup")
        .expect("found");
    assert_eq!(
        found.credentials,
        Credentials::IdentityToken("acr-refresh-token-xyz".into())
    );
    assert!(
        found.source.contains("managed identity"),
        "{}",
        found.source
    );

    let env = azure_env(&sb, &fake, &e).with("AZURE_CLIENT_SECRET", "a-wrong-client-secret");
    let err = sb
        .chain(env)
        .lookup("ossbtest.azurecr.io")
        .expect_err("refused");
    let msg = err.to_string();
    assert!(
        msg.contains("invalid_client") && msg.contains("client secret"),
        "{msg}"
    );
    assert!(!msg.contains("a-wrong-client-secret"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_token_is_used_as_oauth2_refresh_token() {
    let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#.to_vec();
    let fake = cloud_fakes::bearer_registry(
        "docker-identity-token-q1",
        "registry-access-token-w2",
        manifest.clone(),
    );
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.dir.path().join(".docker")).expect("mkdir");
    sb.write(
        ".docker/config.json",
        &format!(
            r#"{{"auths": {{"{}": {{"auth": "", "identitytoken": "docker-identity-token-q1"}}}}}}"#,
            fake.host()
        ),
    );
    let chain = sb.chain(sb.env());
    let config = RegistryConfig {
        cert_dirs: Vec::new(),
        ..RegistryConfig::default()
    };
    let client = RegistryClient::with_credentials(config, Arc::new(chain));
    let r = Reference::parse(&format!("{}/ossb/app:v1", fake.host())).expect("ref");
    let (bytes, _, _) = client
        .get_manifest(&r)
        .await
        .expect("pull through the token flow");
    assert_eq!(bytes, manifest);
    let token_reqs: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|q| q.path() == "/token")
        .collect();
    assert_eq!(token_reqs.len(), 1, "one token for the scope");
    let form = token_reqs[0].form();
    assert_eq!(token_reqs[0].method, "POST");
    assert_eq!(
        form.get("grant_type").map(String::as_str),
        Some("refresh_token")
    );
    assert_eq!(
        form.get("scope").map(String::as_str),
        Some("repository:ossb/app:pull")
    );
}
