//! FAKES of the cloud services the credential chain talks to, speaking each service's real
//! wire protocol (AWS JSON 1.1 + SigV4 for ECR, the STS query API with its XML answer, IMDSv2,
//! the GCE metadata server, Entra ID's token endpoint, ACR's `/oauth2/exchange`, and a Docker
//! token server in front of a fake registry endpoint). They are reached through the chain's
//! endpoint overrides (`OSSB_ECR_ENDPOINT`, …), which exist for exactly this.

use base64::Engine as _;
use ossb_registry::credentials::cloud::{ecr::TARGET, sigv4};
use serde_json::json;

use super::fake_http::{FakeRequest, FakeResponse, FakeServer};

/// Checks the SigV4 `Authorization` header of an ECR request: its shape, the signed
/// headers, and the signature itself (recomputed from the received request with `secret`).
pub fn check_sigv4(
    req: &FakeRequest,
    access_key: &str,
    secret: &str,
    region: &str,
) -> Result<(), String> {
    let auth = req
        .header("authorization")
        .ok_or("no authorization header")?;
    let rest = auth
        .strip_prefix("AWS4-HMAC-SHA256 Credential=")
        .ok_or_else(|| format!("not a sigv4 header: {auth:.40}"))?;
    let (cred, rest) = rest
        .split_once(", SignedHeaders=")
        .ok_or("no SignedHeaders")?;
    let (signed, sig) = rest.split_once(", Signature=").ok_or("no Signature")?;
    let amz_date = req.header("x-amz-date").ok_or("no x-amz-date")?;
    let scope = format!("{}/{region}/ecr/aws4_request", &amz_date[..8]);
    if cred != format!("{access_key}/{scope}") {
        return Err(format!(
            "credential scope {cred:?} is not {access_key}/{scope}"
        ));
    }
    if sig.len() != 64 || !sig.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("the signature is not 64 hex digits".into());
    }
    let names: Vec<&str> = signed.split(';').collect();
    for needed in ["host", "x-amz-date", "x-amz-target", "content-type"] {
        if !names.contains(&needed) {
            return Err(format!("{needed} is not signed"));
        }
    }
    if req.header("x-amz-security-token").is_some() && !names.contains(&"x-amz-security-token") {
        return Err("x-amz-security-token is not signed".into());
    }
    let headers: Vec<(&str, &str)> = names
        .iter()
        .map(|n| (*n, req.header(n).unwrap_or_default()))
        .collect();
    let expected = sigv4::authorization(
        &sigv4::SignRequest {
            method: &req.method,
            path: req.path(),
            query: &[],
            headers: &headers,
            payload: &req.body,
            region,
            service: "ecr",
            amz_date,
        },
        access_key,
        secret,
    );
    if expected != auth {
        return Err("the signature does not verify".into());
    }
    Ok(())
}

/// A fake ECR API: `GetAuthorizationToken` answers `base64(AWS:<password>)` when the
/// request is a signed AWS JSON 1.1 call by `access_key`.
pub fn ecr(access_key: &str, secret: &str, region: &str, password: &str) -> FakeServer {
    let (ak, sk, rg) = (
        access_key.to_string(),
        secret.to_string(),
        region.to_string(),
    );
    let token = base64::engine::general_purpose::STANDARD.encode(format!("AWS:{password}"));
    FakeServer::start(move |req, _| {
        if req.method != "POST" || req.path() != "/" {
            return FakeResponse::text(404, "not found");
        }
        if req.header("x-amz-target") != Some(TARGET)
            || req.header("content-type") != Some("application/x-amz-json-1.1")
        {
            return FakeResponse::json(400, json!({"__type": "UnknownOperationException"}));
        }
        if let Err(why) = check_sigv4(req, &ak, &sk, &rg) {
            return FakeResponse::new(
                403,
                "application/x-amz-json-1.1",
                json!({"__type": "InvalidSignatureException", "message": why}).to_string(),
            );
        }
        let expires = chrono::Utc::now().timestamp() as f64 + 43200.0;
        FakeResponse::new(
            200,
            "application/x-amz-json-1.1",
            json!({"authorizationData": [{
                "authorizationToken": token,
                "expiresAt": expires,
                "proxyEndpoint": "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com"
            }]})
            .to_string(),
        )
    })
}

/// A fake STS: `AssumeRoleWithWebIdentity` for `role` and the web identity `jwt` answers
/// temporary credentials in STS's XML.
pub fn sts(role: &str, jwt: &str, access_key: &str, secret: &str, session: &str) -> FakeServer {
    let (role, jwt, ak, sk, st) = (
        role.to_string(),
        jwt.to_string(),
        access_key.to_string(),
        secret.to_string(),
        session.to_string(),
    );
    FakeServer::start(move |req, _| {
        let f = req.form();
        let ok = req.method == "POST"
            && f.get("Action").map(String::as_str) == Some("AssumeRoleWithWebIdentity")
            && f.get("Version").map(String::as_str) == Some("2011-06-15")
            && f.get("RoleArn") == Some(&role)
            && f.get("WebIdentityToken") == Some(&jwt)
            && f.get("RoleSessionName").is_some_and(|s| !s.is_empty());
        if !ok {
            return FakeResponse::new(
                403,
                "text/xml",
                "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>Not authorized to perform sts:AssumeRoleWithWebIdentity</Message></Error></ErrorResponse>",
            );
        }
        FakeResponse::new(
            200,
            "text/xml",
            format!(
                "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>{ak}</AccessKeyId><SecretAccessKey>{sk}</SecretAccessKey><SessionToken>{st}</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"
            ),
        )
    })
}

/// A fake EC2 instance metadata service (IMDSv2 only: a session token by PUT is required).
pub fn imds(role: &str, access_key: &str, secret: &str, session: &str) -> FakeServer {
    let (role, ak, sk, st) = (
        role.to_string(),
        access_key.to_string(),
        secret.to_string(),
        session.to_string(),
    );
    let imds_token = "imds-session-token-5d2c".to_string();
    FakeServer::start(move |req, _| {
        if req.method == "PUT" && req.path() == "/latest/api/token" {
            return if req.header("x-aws-ec2-metadata-token-ttl-seconds").is_some() {
                FakeResponse::text(200, &imds_token)
            } else {
                FakeResponse::text(400, "missing ttl")
            };
        }
        if req.header("x-aws-ec2-metadata-token") != Some(imds_token.as_str()) {
            return FakeResponse::text(401, "unauthorized");
        }
        match req
            .path()
            .strip_prefix("/latest/meta-data/iam/security-credentials/")
        {
            Some("") => FakeResponse::text(200, &role),
            Some(r) if r == role => FakeResponse::json(
                200,
                json!({"Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": ak,
                       "SecretAccessKey": sk, "Token": st, "Expiration": "2099-01-01T00:00:00Z"}),
            ),
            _ => FakeResponse::text(404, "not found"),
        }
    })
}

/// A fake GCE metadata server handing out `access_token` for the default service account.
pub fn gce_metadata(access_token: &str) -> FakeServer {
    let token = access_token.to_string();
    FakeServer::start(move |req, _| {
        if req.header("metadata-flavor") != Some("Google") {
            return FakeResponse::text(403, "Missing Metadata-Flavor:Google header.");
        }
        if req.method == "GET"
            && req.path() == "/computeMetadata/v1/instance/service-accounts/default/token"
        {
            FakeResponse::json(
                200,
                json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"}),
            )
            .header("Metadata-Flavor", "Google")
        } else {
            FakeResponse::text(404, "not found").header("Metadata-Flavor", "Google")
        }
    })
}

/// What the fake Entra ID accepts.
#[derive(Clone)]
pub struct Entra {
    pub tenant: String,
    pub client_id: String,
    /// A client secret, or a federated (workload identity) assertion.
    pub secret_or_assertion: String,
    /// The Entra access token issued (also by the managed-identity endpoint).
    pub access_token: String,
    /// The ACR refresh token the exchange answers.
    pub refresh_token: String,
    /// The registry the exchange serves.
    pub registry: String,
}

/// One fake for Entra ID (`/TENANT/oauth2/v2.0/token`), Azure IMDS
/// (`/metadata/identity/oauth2/token`) and ACR's `/oauth2/exchange`.
pub fn azure(e: Entra) -> FakeServer {
    FakeServer::start(move |req, _| {
        let f = req.form();
        let get = |k: &str| f.get(k).map(String::as_str).unwrap_or_default();
        if req.method == "POST" && req.path() == format!("/{}/oauth2/v2.0/token", e.tenant) {
            let by_secret = get("client_secret") == e.secret_or_assertion;
            let by_assertion = get("client_assertion") == e.secret_or_assertion
                && get("client_assertion_type")
                    == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
            if get("grant_type") != "client_credentials"
                || get("client_id") != e.client_id
                || get("scope") != "https://containerregistry.azure.net/.default"
                || !(by_secret || by_assertion)
            {
                return FakeResponse::json(
                    401,
                    json!({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."}),
                );
            }
            return FakeResponse::json(
                200,
                json!({"token_type": "Bearer", "expires_in": 3599, "access_token": e.access_token}),
            );
        }
        if req.method == "GET" && req.path() == "/metadata/identity/oauth2/token" {
            let q = req.query();
            if req.header("metadata") != Some("true")
                || q.get("resource").map(String::as_str)
                    != Some("https://containerregistry.azure.net")
                || !q.contains_key("api-version")
            {
                return FakeResponse::json(400, json!({"error": "invalid_request"}));
            }
            return FakeResponse::json(
                200,
                json!({"access_token": e.access_token, "expires_in": "3599", "token_type": "Bearer"}),
            );
        }
        if req.method == "POST" && req.path() == "/oauth2/exchange" {
            if get("grant_type") != "access_token"
                || get("service") != e.registry
                || get("access_token") != e.access_token
            {
                return FakeResponse::json(
                    401,
                    json!({"errors": [{"code": "UNAUTHORIZED", "message": "invalid aad token"}]}),
                );
            }
            return FakeResponse::json(200, json!({"refresh_token": e.refresh_token}));
        }
        FakeResponse::text(404, "not found")
    })
}

/// A fake registry endpoint answering the `WWW-Authenticate: Bearer realm=…` challenge, with
/// a token server of its own that accepts only the OAuth2 refresh-token grant (POST form) for
/// `refresh_token` and issues `access_token`; the manifest of `ossb/app:v1` is served to
/// requests bearing that token.
pub fn bearer_registry(refresh_token: &str, access_token: &str, manifest: Vec<u8>) -> FakeServer {
    let (rt, at) = (refresh_token.to_string(), access_token.to_string());
    FakeServer::start(move |req, base| {
        let challenge = format!(r#"Bearer realm="{base}/token",service="fake-registry""#);
        let unauthorized = || {
            FakeResponse::json(
                401,
                json!({"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}),
            )
            .header("WWW-Authenticate", &challenge)
        };
        if req.path() == "/token" {
            let f = req.form();
            let ok = req.method == "POST"
                && f.get("grant_type").map(String::as_str) == Some("refresh_token")
                && f.get("refresh_token") == Some(&rt)
                && f.get("service").map(String::as_str) == Some("fake-registry")
                && f.get("client_id").is_some_and(|c| !c.is_empty());
            return if ok {
                FakeResponse::json(200, json!({"access_token": at, "expires_in": 300}))
            } else {
                FakeResponse::json(
                    401,
                    json!({"errors": [{"code": "UNAUTHORIZED", "message": "invalid refresh token"}]}),
                )
            };
        }
        if req.header("authorization") != Some(format!("Bearer {at}").as_str()) {
            return unauthorized();
        }
        match req.path() {
            "/v2/" => FakeResponse::json(200, json!({})),
            "/v2/ossb/app/manifests/v1" => {
                let digest = format!("sha256:{}", sha256_hex(&manifest));
                FakeResponse::new(
                    200,
                    "application/vnd.oci.image.manifest.v1+json",
                    manifest.clone(),
                )
                .header("Docker-Content-Digest", &digest)
            }
            _ => FakeResponse::text(404, "not found"),
        }
    })
}

fn sha256_hex(b: &[u8]) -> String {
    ossb_registry::Digest::sha256_of(b)
        .as_str()
        .trim_start_matches("sha256:")
        .to_string()
}
