//! Amazon ECR: `*.dkr.ecr.REGION.amazonaws.com` (also `dkr.ecr-fips` and China's
//! `.amazonaws.com.cn`). Calls `GetAuthorizationToken` (AWS JSON 1.1, SigV4-signed) with the
//! credentials of [`super::aws`], and returns `Basic { AWS, token }` until `expiresAt`.
//!
//! Endpoint: `OSSB_ECR_ENDPOINT` (default `https://api.ecr.REGION.amazonaws.com`,
//! `https://ecr-fips.REGION.amazonaws.com` for FIPS hosts, `….amazonaws.com.cn` in China).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;

use super::sigv4::{SignRequest, authorization};
use super::{CallError, aws, bare_host, client, endpoint, run, send};
use crate::credentials::chain::{Lookup, Source};
use crate::credentials::environment::Environment;
use crate::credentials::{CredentialError, Credentials, FoundCredentials};

/// The `X-Amz-Target` of the call.
pub const TARGET: &str = "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken";

/// The parts of an ECR registry host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcrHost {
    /// The 12-digit account id.
    pub account: String,
    /// The region (`eu-west-1`).
    pub region: String,
    /// A `dkr.ecr-fips` host.
    pub fips: bool,
    /// An `amazonaws.com.cn` host.
    pub china: bool,
}

/// Parses `ACCOUNT.dkr.ecr[-fips].REGION.amazonaws.com[.cn]`.
pub fn parse_host(registry: &str) -> Option<EcrHost> {
    let host = bare_host(registry);
    let parts: Vec<&str> = host.split('.').collect();
    let (account, dkr, ecr, region, rest) = match parts.as_slice() {
        [a, d, e, r, rest @ ..] => (*a, *d, *e, *r, rest),
        _ => return None,
    };
    let china = match rest {
        ["amazonaws", "com"] => false,
        ["amazonaws", "com", "cn"] => true,
        _ => return None,
    };
    let valid = account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && dkr == "dkr"
        && (ecr == "ecr" || ecr == "ecr-fips")
        && !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    valid.then(|| EcrHost {
        account: account.to_string(),
        region: region.to_string(),
        fips: ecr == "ecr-fips",
        china,
    })
}

/// The ECR credential source.
pub struct Ecr {
    env: Environment,
}

impl Ecr {
    /// ECR over `env`.
    pub fn new(env: Environment) -> Self {
        Self { env }
    }
}

#[derive(serde::Deserialize)]
struct TokenAnswer {
    #[serde(rename = "authorizationData", default)]
    data: Vec<AuthorizationData>,
}

#[derive(serde::Deserialize)]
struct AuthorizationData {
    #[serde(rename = "authorizationToken")]
    token: String,
    #[serde(rename = "expiresAt")]
    expires_at: Option<f64>,
}

#[derive(serde::Deserialize)]
struct AwsError {
    #[serde(rename = "__type", default)]
    kind: String,
    #[serde(default, alias = "Message")]
    message: String,
}

const HINT: &str = "check the aws credentials (AWS_ACCESS_KEY_ID, AWS_PROFILE, AWS_ROLE_ARN with AWS_WEB_IDENTITY_TOKEN_FILE, the instance role) and their ecr:GetAuthorizationToken permission";

async fn fetch(env: Environment, h: EcrHost) -> Result<Option<Lookup>, (String, String)> {
    let Some(creds) = aws::resolve(&env, &h.region, h.china)
        .await
        .map_err(|d| ("amazon ecr".to_string(), d))?
    else {
        tracing::debug!(region = %h.region, "no aws credentials found for ecr");
        return Ok(None);
    };
    let origin = format!("amazon ecr (aws credentials from {})", creds.source);
    let err = |d: String| (origin.clone(), d);
    let default = match (h.fips, h.china) {
        (true, _) => format!("https://ecr-fips.{}.amazonaws.com", h.region),
        (false, true) => format!("https://api.ecr.{}.amazonaws.com.cn", h.region),
        (false, false) => format!("https://api.ecr.{}.amazonaws.com", h.region),
    };
    let url = endpoint(&env, &["OSSB_ECR_ENDPOINT"], &default);
    let parsed =
        url::Url::parse(&url).map_err(|e| err(format!("bad ecr endpoint {url:?}: {e}")))?;
    let host_header = match (parsed.host_str(), parsed.port()) {
        (Some(host), Some(p)) => format!("{host}:{p}"),
        (Some(host), None) => host.to_string(),
        _ => return Err(err(format!("ecr endpoint {url:?} has no host"))),
    };
    let amz_date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let payload = b"{}";
    let content_type = "application/x-amz-json-1.1";
    let mut headers = vec![
        ("content-type", content_type),
        ("host", host_header.as_str()),
        ("x-amz-date", amz_date.as_str()),
        ("x-amz-target", TARGET),
    ];
    if let Some(t) = &creds.session_token {
        headers.push(("x-amz-security-token", t.as_str()));
    }
    let auth = authorization(
        &SignRequest {
            method: "POST",
            path: "/",
            query: &[],
            headers: &headers,
            payload,
            region: &h.region,
            service: "ecr",
            amz_date: &amz_date,
        },
        &creds.access_key_id,
        &creds.secret_access_key,
    );
    let http = client(Duration::from_secs(30)).map_err(err)?;
    let mut req = http
        .post(format!("{url}/"))
        .header("content-type", content_type)
        .header("x-amz-date", &amz_date)
        .header("x-amz-target", TARGET)
        .header("authorization", auth)
        .body(payload.to_vec());
    if let Some(t) = &creds.session_token {
        req = req.header("x-amz-security-token", t);
    }
    let reply = send(req).await.map_err(|e| match e {
        CallError::Unreachable(d) | CallError::Other(d) => err(format!("{url} failed: {d}")),
    })?;
    if !reply.status.is_success() {
        let detail = serde_json::from_slice::<AwsError>(&reply.body)
            .map(|e| format!("{} {}", e.kind, e.message))
            .unwrap_or_else(|_| reply.snippet());
        return Err(err(format!(
            "GetAuthorizationToken at {url} answered {}: {detail}",
            reply.status
        )));
    }
    let answer: TokenAnswer = serde_json::from_slice(&reply.body)
        .map_err(|e| err(format!("GetAuthorizationToken sent invalid json: {e}")))?;
    let data = answer
        .data
        .into_iter()
        .next()
        .ok_or_else(|| err("GetAuthorizationToken sent no authorizationData".into()))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(data.token.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| err("the authorization token is not base64 text".into()))?;
    let (username, password) = decoded
        .split_once(':')
        .ok_or_else(|| err("the authorization token is not user:password".into()))?;
    let expires = data
        .expires_at
        .filter(|t| t.is_finite() && *t > 0.0)
        .map(|t| UNIX_EPOCH + Duration::from_secs_f64(t))
        .or_else(|| Some(SystemTime::now() + Duration::from_secs(12 * 3600)));
    Ok(Some(Lookup {
        found: FoundCredentials {
            credentials: Credentials::Basic {
                username: username.to_string(),
                password: password.to_string(),
            },
            source: origin,
        },
        expires,
    }))
}

impl Source for Ecr {
    fn describe(&self) -> String {
        "amazon ecr (*.dkr.ecr.REGION.amazonaws.com)".into()
    }

    fn lookup(&self, registry: &str) -> Result<Option<Lookup>, CredentialError> {
        let Some(h) = parse_host(registry) else {
            return Ok(None);
        };
        let env = self.env.clone();
        run(move || fetch(env, h))
            .map_err(|d| ("amazon ecr".to_string(), d))
            .and_then(|r| r)
            .map_err(|(origin, detail)| CredentialError::new(registry, origin, detail, HINT))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(
            parse_host("123456789012.dkr.ecr.eu-west-1.amazonaws.com"),
            Some(EcrHost {
                account: "123456789012".into(),
                region: "eu-west-1".into(),
                fips: false,
                china: false
            })
        );
        let f = parse_host("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com").expect("fips");
        assert!(f.fips && !f.china);
        let c = parse_host("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn").expect("china");
        assert!(c.china && c.region == "cn-north-1");
        assert_eq!(parse_host("12345.dkr.ecr.eu-west-1.amazonaws.com"), None);
        assert_eq!(
            parse_host("123456789012.dkr.ecr.eu-west-1.example.com"),
            None
        );
        assert_eq!(parse_host("public.ecr.aws"), None);
        assert_eq!(parse_host("docker.io"), None);
    }
}
