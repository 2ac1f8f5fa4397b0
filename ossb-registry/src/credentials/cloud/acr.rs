//! Azure Container Registry: `*.azurecr.io` (also `.azurecr.cn`, `.azurecr.us`).
//!
//! An Entra ID access token for `https://containerregistry.azure.net` comes from, in order:
//! a client secret (`AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`, `AZURE_TENANT_ID`), workload
//! identity (`AZURE_FEDERATED_TOKEN_FILE` with `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`), or a
//! managed identity through the instance metadata service. It is exchanged at
//! `https://REGISTRY/oauth2/exchange` for an ACR refresh token, used as an identity token
//! (Docker stores it with the user `00000000-0000-0000-0000-000000000000`).
//!
//! Endpoints: `OSSB_AZURE_AUTHORITY_HOST`, else `AZURE_AUTHORITY_HOST`, else
//! `https://login.microsoftonline.com`; `OSSB_AZURE_IMDS_ENDPOINT` (default
//! `http://169.254.169.254`); `OSSB_ACR_EXCHANGE_ENDPOINT` (the full exchange URL).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;

use super::{CallError, Reply, bare_host, client, endpoint, run, send};
use crate::credentials::chain::{Lookup, Source};
use crate::credentials::environment::Environment;
use crate::credentials::{CredentialError, Credentials, FoundCredentials};

/// The user name ACR refresh tokens go with.
pub const ACR_TOKEN_USER: &str = "00000000-0000-0000-0000-000000000000";

const RESOURCE: &str = "https://containerregistry.azure.net";

/// True for Azure registry hosts.
pub fn is_azure_host(registry: &str) -> bool {
    let h = bare_host(registry);
    [".azurecr.io", ".azurecr.cn", ".azurecr.us"]
        .iter()
        .any(|s| h.ends_with(s) && h.len() > s.len())
}

/// The Azure credential source.
pub struct Acr {
    env: Environment,
}

impl Acr {
    /// Azure over `env`.
    pub fn new(env: Environment) -> Self {
        Self { env }
    }
}

const HINT: &str = "check AZURE_CLIENT_ID/AZURE_TENANT_ID with AZURE_CLIENT_SECRET or AZURE_FEDERATED_TOKEN_FILE, or the managed identity, and its AcrPull/AcrPush role on the registry";

#[derive(serde::Deserialize)]
struct AccessToken {
    access_token: String,
}

#[derive(serde::Deserialize)]
struct OauthError {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

#[derive(serde::Deserialize)]
struct Exchange {
    refresh_token: String,
}

fn failure(what: &str, reply: &Reply) -> String {
    let detail = serde_json::from_slice::<OauthError>(&reply.body)
        .map(|e| {
            let d: String = e.error_description.chars().take(200).collect();
            format!("{} {d}", e.error)
        })
        .unwrap_or_else(|_| reply.snippet());
    format!("{what} answered {}: {detail}", reply.status)
}

/// An Entra ID token and where it came from; `None` when no Azure identity is available.
async fn entra_token(
    env: &Environment,
    http: &reqwest::Client,
) -> Result<Option<(String, String, Option<String>)>, (String, String)> {
    let authority = endpoint(
        env,
        &["OSSB_AZURE_AUTHORITY_HOST", "AZURE_AUTHORITY_HOST"],
        "https://login.microsoftonline.com",
    );
    let scope = format!("{RESOURCE}/.default");
    let client_id = env.get("AZURE_CLIENT_ID");
    let tenant = env.get("AZURE_TENANT_ID");
    let (origin, form) = match (
        client_id,
        tenant,
        env.get("AZURE_CLIENT_SECRET"),
        env.path("AZURE_FEDERATED_TOKEN_FILE"),
    ) {
        (Some(id), Some(_), Some(secret), _) => (
            format!("azure client secret of AZURE_CLIENT_ID {id}"),
            vec![
                ("grant_type", "client_credentials".to_string()),
                ("client_id", id.to_string()),
                ("client_secret", secret.to_string()),
                ("scope", scope),
            ],
        ),
        (Some(id), Some(_), None, Some(file)) => {
            let origin = format!(
                "azure workload identity {} for AZURE_CLIENT_ID {id}",
                file.display()
            );
            let assertion = std::fs::read_to_string(&file).map_err(|e| {
                (
                    origin.clone(),
                    format!("cannot read the federated token file: {e}"),
                )
            })?;
            (
                origin,
                vec![
                    ("grant_type", "client_credentials".to_string()),
                    ("client_id", id.to_string()),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_string(),
                    ),
                    ("client_assertion", assertion.trim().to_string()),
                    ("scope", scope),
                ],
            )
        }
        _ => return managed_identity(env, http).await,
    };
    let tenant = tenant.unwrap_or_default();
    let url = format!("{authority}/{tenant}/oauth2/v2.0/token");
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())))
        .finish();
    let reply = send(
        http.post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body),
    )
    .await
    .map_err(|e| match e {
        CallError::Unreachable(d) | CallError::Other(d) => {
            (origin.clone(), format!("{url} failed: {d}"))
        }
    })?;
    if !reply.status.is_success() {
        return Err((
            origin,
            failure(&format!("the token endpoint {url}"), &reply),
        ));
    }
    let t: AccessToken = serde_json::from_slice(&reply.body).map_err(|e| {
        (
            origin.clone(),
            format!("invalid token json from {url}: {e}"),
        )
    })?;
    Ok(Some((t.access_token, origin, Some(tenant.to_string()))))
}

async fn managed_identity(
    env: &Environment,
    http: &reqwest::Client,
) -> Result<Option<(String, String, Option<String>)>, (String, String)> {
    let base = endpoint(env, &["OSSB_AZURE_IMDS_ENDPOINT"], "http://169.254.169.254");
    let origin = format!("azure managed identity {base}");
    let mut url =
        format!("{base}/metadata/identity/oauth2/token?api-version=2018-02-01&resource={RESOURCE}");
    if let Some(id) = env.get("AZURE_CLIENT_ID") {
        url.push_str("&client_id=");
        url.push_str(&url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>());
    }
    let reply = match send(
        http.get(&url)
            .header("Metadata", "true")
            .timeout(Duration::from_secs(3)),
    )
    .await
    {
        Ok(r) => r,
        Err(CallError::Unreachable(d)) => {
            tracing::debug!(source = %origin, reason = %d, "azure instance metadata not reachable; no managed identity");
            return Ok(None);
        }
        Err(CallError::Other(d)) => return Err((origin, d)),
    };
    if !reply.status.is_success() {
        return Err((
            origin.clone(),
            failure("the managed identity endpoint", &reply),
        ));
    }
    let t: AccessToken = serde_json::from_slice(&reply.body)
        .map_err(|e| (origin.clone(), format!("invalid token json: {e}")))?;
    Ok(Some((t.access_token, origin, None)))
}

/// The `exp` claim of a JWT, if it is one.
fn jwt_expiry(token: &str) -> Option<SystemTime> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(v.get("exp")?.as_u64()?))
}

async fn fetch(env: Environment, registry: String) -> Result<Option<Lookup>, (String, String)> {
    let http = client(Duration::from_secs(30)).map_err(|e| ("azure".to_string(), e))?;
    let Some((aad, origin, tenant)) = entra_token(&env, &http).await? else {
        tracing::debug!(registry = %registry, "no azure identity found for acr");
        return Ok(None);
    };
    let url = endpoint(
        &env,
        &["OSSB_ACR_EXCHANGE_ENDPOINT"],
        &format!("https://{registry}/oauth2/exchange"),
    );
    let origin = format!("azure container registry token exchange ({origin})");
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "access_token")
        .append_pair("service", &registry)
        .append_pair("access_token", &aad);
    if let Some(t) = tenant.filter(|t| !t.is_empty()) {
        form.append_pair("tenant", &t);
    }
    let reply = send(
        http.post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.finish()),
    )
    .await
    .map_err(|e| match e {
        CallError::Unreachable(d) | CallError::Other(d) => {
            (origin.clone(), format!("{url} failed: {d}"))
        }
    })?;
    if !reply.status.is_success() {
        return Err((origin, failure(&format!("the exchange {url}"), &reply)));
    }
    let x: Exchange = serde_json::from_slice(&reply.body).map_err(|e| {
        (
            origin.clone(),
            format!("invalid exchange json from {url}: {e}"),
        )
    })?;
    let expires = jwt_expiry(&x.refresh_token)
        .or_else(|| Some(SystemTime::now() + Duration::from_secs(3600)));
    Ok(Some(Lookup {
        found: FoundCredentials {
            credentials: Credentials::IdentityToken(x.refresh_token),
            source: origin,
        },
        expires,
    }))
}

impl Source for Acr {
    fn describe(&self) -> String {
        "azure (*.azurecr.io)".into()
    }

    fn lookup(&self, registry: &str) -> Result<Option<Lookup>, CredentialError> {
        if !is_azure_host(registry) {
            return Ok(None);
        }
        {
            let (env, host) = (self.env.clone(), bare_host(registry));
            run(move || fetch(env, host))
        }
        .map_err(|d| ("azure".to_string(), d))
        .and_then(|r| r)
        .map_err(|(origin, detail)| CredentialError::new(registry, origin, detail, HINT))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_jwt() {
        assert!(is_azure_host("myreg.azurecr.io") && !is_azure_host("azurecr.io"));
        assert!(!is_azure_host("myreg.azurecr.io.evil.com"));
        let payload =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"exp":2000000000}"#);
        assert_eq!(
            jwt_expiry(&format!("h.{payload}.s")),
            Some(UNIX_EPOCH + Duration::from_secs(2_000_000_000))
        );
        assert_eq!(jwt_expiry("opaque"), None);
    }
}
