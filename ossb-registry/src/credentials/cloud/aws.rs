//! AWS credentials, in the AWS SDKs' order: environment (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), the shared profile files
//! (`$AWS_SHARED_CREDENTIALS_FILE` or `~/.aws/credentials`, then `$AWS_CONFIG_FILE` or
//! `~/.aws/config`; profile `$AWS_PROFILE` or `default`; static keys only), web identity
//! (IRSA: `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN` through STS
//! `AssumeRoleWithWebIdentity`), and the EC2 instance metadata service (IMDSv2).
//!
//! Endpoints: `OSSB_STS_ENDPOINT` (default `https://sts.REGION.amazonaws.com`),
//! `OSSB_AWS_IMDS_ENDPOINT` or `AWS_EC2_METADATA_SERVICE_ENDPOINT` (default
//! `http://169.254.169.254`); `AWS_EC2_METADATA_DISABLED=true` skips IMDS.

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::{CallError, client, endpoint, send};
use crate::credentials::environment::Environment;

/// An AWS key pair, possibly temporary. `Debug` shows only the source.
#[derive(Clone)]
pub struct AwsCredentials {
    /// `AKIA…` / `ASIA…`.
    pub access_key_id: String,
    /// The secret key.
    pub secret_access_key: String,
    /// The session token of temporary credentials.
    pub session_token: Option<String>,
    /// Where the credentials came from (`environment`, `profile default in ~/.aws/credentials`).
    pub source: String,
    /// When temporary credentials expire.
    pub expires: Option<SystemTime>,
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// Finds AWS credentials. `Ok(None)` when no source has any; `Err` (a description naming the
/// source) when a source exists but fails.
pub async fn resolve(
    env: &Environment,
    region: &str,
    china: bool,
) -> Result<Option<AwsCredentials>, String> {
    if let (Some(id), Some(secret)) = (
        env.get("AWS_ACCESS_KEY_ID"),
        env.get("AWS_SECRET_ACCESS_KEY"),
    ) {
        return Ok(Some(AwsCredentials {
            access_key_id: id.to_string(),
            secret_access_key: secret.to_string(),
            session_token: env.get("AWS_SESSION_TOKEN").map(str::to_string),
            source: "environment AWS_ACCESS_KEY_ID".into(),
            expires: None,
        }));
    }
    if let Some(c) = from_profiles(env)? {
        return Ok(Some(c));
    }
    if let (Some(token_file), Some(role)) = (
        env.path("AWS_WEB_IDENTITY_TOKEN_FILE"),
        env.get("AWS_ROLE_ARN"),
    ) {
        return web_identity(env, &token_file, role, region, china)
            .await
            .map(Some);
    }
    if env
        .get("AWS_EC2_METADATA_DISABLED")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        return Ok(None);
    }
    imds(env).await
}

fn profile_files(env: &Environment) -> Vec<(PathBuf, bool)> {
    let home = env.home();
    let mut v = Vec::new();
    if let Some(p) = env
        .path("AWS_SHARED_CREDENTIALS_FILE")
        .or_else(|| home.as_ref().map(|h| h.join(".aws/credentials")))
    {
        v.push((p, false));
    }
    if let Some(p) = env
        .path("AWS_CONFIG_FILE")
        .or_else(|| home.as_ref().map(|h| h.join(".aws/config")))
    {
        v.push((p, true));
    }
    v
}

/// Static keys from the shared files.
fn from_profiles(env: &Environment) -> Result<Option<AwsCredentials>, String> {
    let profile = env
        .get("AWS_PROFILE")
        .or_else(|| env.get("AWS_DEFAULT_PROFILE"))
        .unwrap_or("default");
    for (path, is_config) in profile_files(env) {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let section = if is_config && profile != "default" {
            format!("profile {profile}")
        } else {
            profile.to_string()
        };
        let keys = ini_section(&text, &section);
        let get = |k: &str| {
            keys.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        if let (Some(id), Some(secret)) = (get("aws_access_key_id"), get("aws_secret_access_key")) {
            return Ok(Some(AwsCredentials {
                access_key_id: id,
                secret_access_key: secret,
                session_token: get("aws_session_token"),
                source: format!("profile {profile} in {}", path.display()),
                expires: None,
            }));
        }
    }
    Ok(None)
}

/// The `key = value` pairs of `[section]` in an INI text.
fn ini_section(text: &str, section: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.split_whitespace().collect::<Vec<_>>().join(" ") == section;
            continue;
        }
        if inside && let Some((k, v)) = line.split_once('=') {
            out.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    out
}

/// The text of `<tag>…</tag>` in an XML answer, with the five predefined entities decoded.
pub(crate) fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    Some(
        xml[start..end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

fn parse_time(s: &str) -> Option<SystemTime> {
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(SystemTime::from)
}

async fn web_identity(
    env: &Environment,
    token_file: &PathBuf,
    role: &str,
    region: &str,
    china: bool,
) -> Result<AwsCredentials, String> {
    let source = format!("web identity {} for role {role}", token_file.display());
    let token = std::fs::read_to_string(token_file)
        .map_err(|e| format!("{source}: cannot read the token file: {e}"))?;
    let suffix = if china { ".cn" } else { "" };
    let url = endpoint(
        env,
        &["OSSB_STS_ENDPOINT"],
        &format!("https://sts.{region}.amazonaws.com{suffix}"),
    );
    let session = env
        .get("AWS_ROLE_SESSION_NAME")
        .map(str::to_string)
        .unwrap_or_else(|| format!("ossb-{}", chrono::Utc::now().timestamp()));
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("Action", "AssumeRoleWithWebIdentity")
        .append_pair("Version", "2011-06-15")
        .append_pair("RoleArn", role)
        .append_pair("RoleSessionName", &session)
        .append_pair("WebIdentityToken", token.trim())
        .finish();
    let http = client(Duration::from_secs(30)).map_err(|e| format!("{source}: {e}"))?;
    let reply = send(
        http.post(format!("{url}/"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form),
    )
    .await
    .map_err(|e| match e {
        CallError::Unreachable(d) | CallError::Other(d) => {
            format!("{source}: sts at {url} failed: {d}")
        }
    })?;
    let text = String::from_utf8_lossy(&reply.body);
    if !reply.status.is_success() {
        let code = xml_text(&text, "Code").unwrap_or_default();
        let message = xml_text(&text, "Message").unwrap_or_default();
        return Err(format!(
            "{source}: sts at {url} answered {}: {code} {message}",
            reply.status
        ));
    }
    match (
        xml_text(&text, "AccessKeyId"),
        xml_text(&text, "SecretAccessKey"),
        xml_text(&text, "SessionToken"),
    ) {
        (Some(id), Some(secret), Some(session_token)) => Ok(AwsCredentials {
            access_key_id: id,
            secret_access_key: secret,
            session_token: Some(session_token),
            source,
            expires: xml_text(&text, "Expiration")
                .as_deref()
                .and_then(parse_time),
        }),
        _ => Err(format!(
            "{source}: sts at {url} answered without credentials"
        )),
    }
}

#[derive(serde::Deserialize)]
struct ImdsCredentials {
    #[serde(rename = "AccessKeyId")]
    access_key_id: String,
    #[serde(rename = "SecretAccessKey")]
    secret_access_key: String,
    #[serde(rename = "Token")]
    token: Option<String>,
    #[serde(rename = "Expiration")]
    expiration: Option<String>,
}

/// IMDSv2: a session token by PUT, then the instance role's credentials.
async fn imds(env: &Environment) -> Result<Option<AwsCredentials>, String> {
    let base = endpoint(
        env,
        &[
            "OSSB_AWS_IMDS_ENDPOINT",
            "AWS_EC2_METADATA_SERVICE_ENDPOINT",
        ],
        "http://169.254.169.254",
    );
    let source = format!("instance metadata {base}");
    let http = client(Duration::from_secs(3)).map_err(|e| format!("{source}: {e}"))?;
    let token = match send(
        http.put(format!("{base}/latest/api/token"))
            .header("x-aws-ec2-metadata-token-ttl-seconds", "21600"),
    )
    .await
    {
        Ok(r) if r.status.is_success() => String::from_utf8_lossy(&r.body).trim().to_string(),
        Ok(r) => return Err(format!("{source}: token request answered {}", r.status)),
        Err(CallError::Unreachable(d)) => {
            tracing::debug!(source = %source, reason = %d, "instance metadata not reachable; not on ec2");
            return Ok(None);
        }
        Err(CallError::Other(d)) => return Err(format!("{source}: {d}")),
    };
    let get = |path: String| {
        http.get(format!(
            "{base}/latest/meta-data/iam/security-credentials/{path}"
        ))
        .header("x-aws-ec2-metadata-token", token.clone())
    };
    let fail = |e: CallError| match e {
        CallError::Unreachable(d) | CallError::Other(d) => format!("{source}: {d}"),
    };
    let roles = send(get(String::new())).await.map_err(fail)?;
    if roles.status == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !roles.status.is_success() {
        return Err(format!("{source}: role list answered {}", roles.status));
    }
    let Some(role) = String::from_utf8_lossy(&roles.body)
        .lines()
        .next()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
    else {
        return Ok(None);
    };
    let reply = send(get(role.clone())).await.map_err(fail)?;
    if !reply.status.is_success() {
        return Err(format!(
            "{source}: credentials of role {role} answered {}",
            reply.status
        ));
    }
    let c: ImdsCredentials = serde_json::from_slice(&reply.body)
        .map_err(|e| format!("{source}: invalid credentials json for role {role}: {e}"))?;
    Ok(Some(AwsCredentials {
        access_key_id: c.access_key_id,
        secret_access_key: c.secret_access_key,
        session_token: c.token,
        source: format!("{source} (role {role})"),
        expires: c.expiration.as_deref().and_then(parse_time),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_and_env() {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(d.path().join(".aws")).expect("mkdir");
        std::fs::write(
            d.path().join(".aws/credentials"),
            "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = s1\n\n[ci]\naws_access_key_id=AKIDCI\naws_secret_access_key=s2\naws_session_token=t2\n",
        )
        .expect("write");
        std::fs::write(
            d.path().join(".aws/config"),
            "[profile other]\naws_access_key_id = AKIDOTHER\naws_secret_access_key = s3\n",
        )
        .expect("write");
        let home = d.path().display().to_string();
        let env = |profile: &str| {
            Environment::from_vars([
                ("HOME", home.as_str()),
                ("AWS_PROFILE", profile),
                ("AWS_EC2_METADATA_DISABLED", "true"),
            ])
        };
        let id = |e: &Environment| {
            let e = e.clone();
            super::super::run(move || async move { resolve(&e, "us-east-1", false).await })
                .expect("run")
                .expect("resolve")
                .map(|c| (c.access_key_id, c.session_token))
        };
        assert_eq!(id(&env("default")), Some(("AKIDDEFAULT".into(), None)));
        assert_eq!(id(&env("ci")), Some(("AKIDCI".into(), Some("t2".into()))));
        assert_eq!(id(&env("other")).map(|c| c.0), Some("AKIDOTHER".into()));
        assert_eq!(id(&env("none")), None);
        let e = env("ci")
            .with("AWS_ACCESS_KEY_ID", "AKIDENV")
            .with("AWS_SECRET_ACCESS_KEY", "s4");
        assert_eq!(id(&e).map(|c| c.0), Some("AKIDENV".into()));
        let dbg = format!(
            "{:?}",
            AwsCredentials {
                access_key_id: "AKID".into(),
                secret_access_key: "very-secret".into(),
                session_token: Some("tok".into()),
                source: "x".into(),
                expires: None
            }
        );
        assert!(
            !dbg.contains("very-secret") && !dbg.contains("tok"),
            "{dbg}"
        );
    }

    #[test]
    fn xml() {
        let x = "<a><AccessKeyId>AS&amp;IA</AccessKeyId></a>";
        assert_eq!(xml_text(x, "AccessKeyId").as_deref(), Some("AS&IA"));
        assert_eq!(xml_text(x, "Nope"), None);
        assert!(parse_time("2030-01-01T00:00:00Z").is_some());
    }
}
