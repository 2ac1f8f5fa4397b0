//! The bearer-token flow against a REAL Distribution registry (`docker-registry` with TLS and
//! `auth: token:`) in front of the test kit's own token server, which issues JWTs exactly as
//! Distribution verifies them (RS256 with an `x5c` chain, or ES256 with a libtrust `kid`).
//! The token server records every request, so the tests assert which scopes were asked for,
//! what was granted and how often tokens were fetched.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;

use common::{build_image, skopeo_inspect, write_pseudo_random};
use ossb_registry::auth::{Challenge, canonical_scope, parse_challenge};
use ossb_registry::manifest::OCI_MANIFEST;
use ossb_registry::{
    Credentials, Digest, MountOutcome, Reference, RegistryClient, RegistryConfig, RegistryError,
    StaticCredentials,
};
use ossb_testkit::{
    Registry, Signing, TOKEN_SERVICE, TokenAuth, TokenRequest, TokenServer, require_tool,
};

const ALICE: &str = "alice";
const ALICE_PASS: &str = "alice-token-pass-1";
const BOB: &str = "bob";
const BOB_PASS: &str = "bob-token-pass-2";

fn start(policy: TokenAuth) -> Option<Registry> {
    for tool in ["docker-registry", "curl", "openssl"] {
        if !require_tool(tool) {
            return None;
        }
    }
    Some(Registry::start_token_auth(policy).expect("start token-auth registry"))
}

/// Alice may pull and push `ossb/app`, `ossb/copy` and `ossb/many`; Bob may only pull
/// `ossb/app`.
fn policy() -> TokenAuth {
    TokenAuth::new()
        .user(ALICE, ALICE_PASS)
        .user(BOB, BOB_PASS)
        .grant(ALICE, "ossb/app", &["pull", "push"])
        .grant(ALICE, "ossb/copy", &["pull", "push"])
        .grant(ALICE, "ossb/many", &["pull", "push"])
        .grant(BOB, "ossb/app", &["pull"])
}

fn tokens(reg: &Registry) -> &TokenServer {
    reg.token_server()
        .expect("token-auth registry has a token server")
}

/// A client for the registry (loopback: TLS without verification, as Docker does) with one
/// user's credentials, or none.
fn client(reg: &Registry, who: Option<(&str, &str)>) -> RegistryClient {
    let mut creds = StaticCredentials::new();
    if let Some((u, p)) = who {
        creds.insert(
            reg.host(),
            Credentials::Basic {
                username: u.into(),
                password: p.into(),
            },
        );
    }
    let config = RegistryConfig {
        cert_dirs: Vec::new(),
        ..RegistryConfig::default()
    };
    RegistryClient::with_credentials(config, Arc::new(creds))
}

fn reference(reg: &Registry, repo_tag: &str) -> Reference {
    Reference::parse(&format!("{}/{repo_tag}", reg.host())).expect("reference")
}

/// The scope the registry itself challenges an unauthenticated request with (actions in
/// canonical order).
fn challenged_scope(reg: &Registry, method: &str, path: &str) -> String {
    let out = Command::new("curl")
        .args(["-sk", "-o", "/dev/null", "-D", "-", "-X", method])
        .arg(format!("https://{}{path}", reg.host()))
        .output()
        .expect("run curl");
    let headers = String::from_utf8_lossy(&out.stdout);
    let value = headers
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("www-authenticate"))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no challenge for {method} {path}:\n{headers}"));
    match parse_challenge(&value) {
        Some(Challenge::Bearer {
            service,
            scope: Some(scope),
            ..
        }) => {
            assert_eq!(service.as_deref(), Some(TOKEN_SERVICE), "{value}");
            // Distribution lists the actions in no fixed order.
            canonical_scope(&scope)
        }
        other => panic!("expected a bearer challenge with a scope, got {other:?} from {value}"),
    }
}

fn scopes_of(requests: &[TokenRequest]) -> Vec<Vec<String>> {
    requests.iter().map(|r| r.scopes.clone()).collect()
}

async fn push_image(client: &RegistryClient, r: &Reference, img: &common::TestImage) -> Digest {
    client
        .put_blob(r, &img.layer_path)
        .await
        .expect("push layer");
    client
        .put_blob(r, &img.config_path)
        .await
        .expect("push config");
    client
        .put_manifest(r, &img.manifest, OCI_MANIFEST)
        .await
        .expect("push manifest")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_and_pull_ask_for_the_scopes_the_registry_challenges() {
    let Some(reg) = start(policy()) else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let img = build_image(dir.path(), "token");
    let r = reference(&reg, "ossb/app:v1");

    // What the registry demands, asked without a token.
    let pull_scope = challenged_scope(&reg, "GET", "/v2/ossb/app/manifests/v1");
    let push_scope = challenged_scope(&reg, "POST", "/v2/ossb/app/blobs/uploads/");
    assert_eq!(pull_scope, "repository:ossb/app:pull");
    assert_eq!(push_scope, "repository:ossb/app:pull,push");

    let alice = client(&reg, Some((ALICE, ALICE_PASS)));
    let d = push_image(&alice, &r, &img).await;
    let pushed = tokens(&reg).requests();
    // The existence check before the upload needs pull; the upload and the manifest need
    // pull and push. One token each, reused for every later request of that scope.
    assert_eq!(
        scopes_of(&pushed),
        [vec![pull_scope.clone()], vec![push_scope.clone()]],
        "{pushed:#?}"
    );
    for req in &pushed {
        assert_eq!(req.method, "GET");
        assert_eq!(req.user.as_deref(), Some(ALICE));
        assert_eq!(req.service.as_deref(), Some(TOKEN_SERVICE));
        assert_eq!(req.status, 200);
        assert_eq!(req.granted, req.scopes, "alice gets what she asks for");
    }

    tokens(&reg).clear_requests();
    let bob = client(&reg, Some((BOB, BOB_PASS)));
    let (bytes, mt, digest) = bob.get_manifest(&r).await.expect("bob pulls the manifest");
    assert_eq!(
        (bytes, mt, &digest),
        (img.manifest.clone(), OCI_MANIFEST.into(), &d)
    );
    let mut layer = Vec::new();
    bob.get_blob_to(&r, &img.layer_digest, &mut layer)
        .await
        .expect("bob pulls the layer");
    assert_eq!(layer, std::fs::read(&img.layer_path).expect("read layer"));
    let pulled = tokens(&reg).requests();
    assert_eq!(scopes_of(&pulled), [vec![pull_scope]], "{pulled:#?}");
    assert_eq!(pulled[0].user.as_deref(), Some(BOB));

    // A third-party client accepts the same token server and registry.
    if require_tool("skopeo") {
        let v = skopeo_inspect(
            &format!("{}/ossb/app:v1", reg.host()),
            Some((BOB, BOB_PASS)),
        );
        assert_eq!(v["Digest"].as_str(), Some(d.as_str()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn es256_tokens_identified_by_key_id_are_accepted() {
    let Some(reg) = start(policy().signing(Signing::Es256KeyId)) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let img = build_image(dir.path(), "es256");
    let r = reference(&reg, "ossb/app:es256");
    let alice = client(&reg, Some((ALICE, ALICE_PASS)));
    let d = push_image(&alice, &r, &img).await;
    let (_, _, got) = alice.get_manifest(&r).await.expect("pull");
    assert_eq!(got, d);
    let issued = tokens(&reg).issued_tokens();
    assert!(!issued.is_empty());
    use base64::Engine as _;
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(issued[0].split('.').next().expect("jws header"))
        .expect("base64url header");
    let header: serde_json::Value = serde_json::from_slice(&header).expect("header json");
    assert_eq!(header["alg"], "ES256");
    assert_eq!(
        header["kid"].as_str().map(|k| k.split(':').count()),
        Some(12)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_token_serves_many_blob_requests() {
    let Some(reg) = start(policy()) else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let r = reference(&reg, "ossb/many:v1");
    let alice = client(&reg, Some((ALICE, ALICE_PASS)));
    let mut digests = Vec::new();
    for i in 0..6u64 {
        let path = dir.path().join(format!("blob{i}"));
        write_pseudo_random(&path, 4096 + i as usize, i + 1);
        digests.push(alice.put_blob(&r, &path).await.expect("push blob"));
    }
    let pushed = tokens(&reg).requests();
    assert_eq!(
        scopes_of(&pushed),
        [
            vec!["repository:ossb/many:pull".to_string()],
            vec!["repository:ossb/many:pull,push".to_string()],
        ],
        "six existence checks and six uploads, two tokens: {pushed:#?}"
    );

    tokens(&reg).clear_requests();
    let reader = client(&reg, Some((ALICE, ALICE_PASS)));
    for d in &digests {
        assert!(reader.blob_exists(&r, d).await.expect("head blob"));
        let mut out = Vec::new();
        reader.get_blob_to(&r, d, &mut out).await.expect("get blob");
        assert_eq!(&Digest::sha256_of(&out), d);
    }
    let pulled = tokens(&reg).requests();
    assert_eq!(
        pulled.len(),
        1,
        "twelve blob requests share one pull token: {pulled:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_refused_by_the_registry_is_replaced() {
    // The first token is expired (beyond the registry's leeway) although `expires_in` says
    // it is fresh: the registry answers 401 invalid_token and the client fetches a new one.
    let Some(reg) = start(policy().expired_tokens(1)) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("blob");
    write_pseudo_random(&path, 1000, 7);
    let r = reference(&reg, "ossb/app:v1");
    let alice = client(&reg, Some((ALICE, ALICE_PASS)));
    let d = Digest::sha256_of(&std::fs::read(&path).expect("read"));
    assert!(
        !alice
            .blob_exists(&r, &d)
            .await
            .expect("head with a renewed token")
    );
    let reqs = tokens(&reg).requests();
    assert_eq!(
        scopes_of(&reqs),
        [
            vec!["repository:ossb/app:pull".to_string()],
            vec!["repository:ossb/app:pull".to_string()],
        ],
        "the refused token was replaced once: {reqs:#?}"
    );

    // A registry that refuses every token (all expired) is an authentication error that
    // says the tokens are not accepted, rather than blaming the password.
    let Some(reg) = start(policy().expired_tokens(usize::MAX)) else {
        return;
    };
    let r = reference(&reg, "ossb/app:v1");
    let err = client(&reg, Some((ALICE, ALICE_PASS)))
        .get_manifest(&r)
        .await
        .expect_err("every token is expired");
    assert!(err.is_auth(), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("does not accept the tokens") && msg.contains("invalid_token"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_refused_by_the_token_server() {
    let Some(reg) = start(policy()) else { return };
    let r = reference(&reg, "ossb/app:v1");
    let err = client(&reg, Some((ALICE, "not-alices-password")))
        .get_manifest(&r)
        .await
        .expect_err("wrong password");
    assert!(err.is_auth(), "{err:?}");
    assert_eq!(err.exit_code() as i32, 4);
    let msg = err.to_string();
    let token_host = tokens(&reg)
        .url()
        .trim_start_matches("http://")
        .trim_end_matches("/token")
        .to_string();
    for part in [
        reg.host(),
        "get manifest",
        &format!("the token server {token_host} refused the credentials"),
        "incorrect username or password",
        "check the credentials",
    ] {
        assert!(msg.contains(part), "{part:?} missing from: {msg}");
    }
    assert!(!msg.contains("not-alices-password") && !format!("{err:?}").contains("not-alices"));
    let reqs = tokens(&reg).requests();
    assert_eq!(
        reqs.len(),
        1,
        "a refused password is not retried: {reqs:#?}"
    );
    assert_eq!(
        (reqs[0].status, reqs[0].user.as_deref()),
        (401, Some(ALICE))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_only_account_cannot_push() {
    let Some(reg) = start(policy()) else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let img = build_image(dir.path(), "denied");
    let r = reference(&reg, "ossb/app:v1");
    push_image(&client(&reg, Some((ALICE, ALICE_PASS))), &r, &img).await;
    tokens(&reg).clear_requests();

    let bob = client(&reg, Some((BOB, BOB_PASS)));
    bob.get_manifest(&r).await.expect("bob may pull");
    let err = bob
        .put_manifest(
            &reference(&reg, "ossb/app:bob"),
            &img.manifest,
            OCI_MANIFEST,
        )
        .await
        .expect_err("bob may not push");
    assert!(matches!(err, RegistryError::Auth { .. }), "{err:?}");
    assert_eq!(err.exit_code() as i32, 4);
    let msg = err.to_string();
    for part in [
        reg.host(),
        "put manifest",
        "does not grant repository:ossb/app:pull,push",
        "insufficient_scope",
        "static credentials",
    ] {
        assert!(msg.contains(part), "{part:?} missing from: {msg}");
    }
    let reqs = tokens(&reg).requests();
    let push: Vec<&TokenRequest> = reqs
        .iter()
        .filter(|q| q.scopes == ["repository:ossb/app:pull,push"])
        .collect();
    assert!(!push.is_empty(), "{reqs:#?}");
    for q in push {
        assert_eq!(q.granted, ["repository:ossb/app:pull"], "push is withheld");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_pull_of_a_public_repository_and_refused_push() {
    let Some(reg) = start(policy().grant_anonymous("ossb/app", &["pull"])) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let img = build_image(dir.path(), "anon");
    let r = reference(&reg, "ossb/app:v1");
    let d = push_image(&client(&reg, Some((ALICE, ALICE_PASS))), &r, &img).await;
    tokens(&reg).clear_requests();

    let anonymous = client(&reg, None);
    let (_, _, got) = anonymous.get_manifest(&r).await.expect("anonymous pull");
    assert_eq!(got, d);
    let path = dir.path().join("new");
    write_pseudo_random(&path, 100, 3);
    let err = anonymous
        .put_blob(&r, &path)
        .await
        .expect_err("anonymous push");
    assert!(err.is_auth(), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("anonymous access does not grant repository:ossb/app:pull,push")
            && msg.contains(&format!("no credentials are configured for {}", reg.host())),
        "{msg}"
    );
    assert!(
        tokens(&reg).requests().iter().all(|q| q.user.is_none()),
        "no credentials were sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_repository_mount_asks_for_both_repositories() {
    let policy =
        policy()
            .user("carol", "carol-pass-3")
            .grant("carol", "ossb/carol", &["pull", "push"]);
    let Some(reg) = start(policy) else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let img = build_image(dir.path(), "mount");
    let src = reference(&reg, "ossb/app:v1");
    let dst = reference(&reg, "ossb/copy:v1");
    let alice = client(&reg, Some((ALICE, ALICE_PASS)));
    push_image(&alice, &src, &img).await;

    let path = format!(
        "/v2/ossb/copy/blobs/uploads/?mount={}&from=ossb/app",
        img.layer_digest
    );
    let wanted = challenged_scope(&reg, "POST", &path);
    let wanted: BTreeSet<&str> = wanted.split(' ').collect();
    assert_eq!(
        wanted,
        BTreeSet::from(["repository:ossb/copy:pull,push", "repository:ossb/app:pull"]),
        "the registry wants push on the target and pull on the source"
    );

    tokens(&reg).clear_requests();
    let outcome = alice
        .mount_blob(&dst, &img.layer_digest, "ossb/app", None)
        .await
        .expect("mount");
    assert_eq!(outcome, MountOutcome::Mounted);
    let reqs = tokens(&reg).requests();
    assert_eq!(
        scopes_of(&reqs),
        [vec![
            "repository:ossb/copy:pull,push".to_string(),
            "repository:ossb/app:pull".to_string()
        ]],
        "{reqs:#?}"
    );
    assert_eq!(reqs[0].granted, reqs[0].scopes);
    assert!(
        alice
            .blob_exists(&dst, &img.layer_digest)
            .await
            .expect("exists")
    );

    // Carol may push to her repository but not read alice's: the token lacks the source
    // scope, the registry refuses the mount, and the blob is uploaded instead.
    tokens(&reg).clear_requests();
    let carol = client(&reg, Some(("carol", "carol-pass-3")));
    let mine = reference(&reg, "ossb/carol:v1");
    let outcome = carol
        .mount_blob(&mine, &img.layer_digest, "ossb/app", Some(&img.layer_path))
        .await
        .expect("mount falls back to an upload");
    assert_eq!(outcome, MountOutcome::Uploaded);
    let reqs = tokens(&reg).requests();
    assert_eq!(
        reqs[0].granted,
        ["repository:ossb/carol:pull,push"],
        "no pull on ossb/app for carol: {reqs:#?}"
    );
    assert!(
        carol
            .blob_exists(&mine, &img.layer_digest)
            .await
            .expect("exists")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_token_is_exchanged_with_the_oauth2_form() {
    let Some(reg) = start(policy().refresh_token(ALICE, "alice-refresh-token-4")) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let img = build_image(dir.path(), "identity");
    let r = reference(&reg, "ossb/app:v1");
    let creds = StaticCredentials::new().with(
        reg.host(),
        Credentials::IdentityToken("alice-refresh-token-4".into()),
    );
    let config = RegistryConfig {
        cert_dirs: Vec::new(),
        ..RegistryConfig::default()
    };
    let c = RegistryClient::with_credentials(config, Arc::new(creds));
    let d = push_image(&c, &r, &img).await;
    assert_eq!(c.get_manifest(&r).await.expect("pull").2, d);
    let reqs = tokens(&reg).requests();
    assert!(
        reqs.iter()
            .all(|q| q.method == "POST" && q.user.as_deref() == Some(ALICE) && q.status == 200),
        "{reqs:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unavailable_token_server_is_retried() {
    let Some(reg) = start(policy().unavailable_first(2)) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let img = build_image(dir.path(), "retry");
    let r = reference(&reg, "ossb/app:v1");
    let mut config = RegistryConfig {
        cert_dirs: Vec::new(),
        ..RegistryConfig::default()
    };
    config.transfer.backoff_base = std::time::Duration::from_millis(10);
    let creds = StaticCredentials::new().with(
        reg.host(),
        Credentials::Basic {
            username: ALICE.into(),
            password: ALICE_PASS.into(),
        },
    );
    let alice = RegistryClient::with_credentials(config, Arc::new(creds));
    push_image(&alice, &r, &img).await;
    let statuses: Vec<u16> = tokens(&reg).requests().iter().map(|q| q.status).collect();
    assert_eq!(
        statuses,
        [503, 503, 200, 200],
        "two refusals retried, then a pull token and a push token"
    );
}
