//! Google Container Registry and Artifact Registry: `gcr.io`, `*.gcr.io`, `*-docker.pkg.dev`.
//!
//! With `GOOGLE_APPLICATION_CREDENTIALS` pointing to a service-account key file, the
//! credentials are `Basic { _json_key, <the key file's contents> }`. Otherwise the GCE
//! metadata server's access token for the default service account is used as
//! `Basic { oauth2accesstoken, <token> }`, until it expires.
//!
//! Metadata host: `OSSB_GCE_METADATA_HOST`, else `GCE_METADATA_HOST`, else
//! `metadata.google.internal` (a `host[:port]`, reached over plain HTTP as on GCE).

use std::time::{Duration, SystemTime};

use super::{CallError, bare_host, client, endpoint, run, send};
use crate::credentials::chain::{Lookup, Source};
use crate::credentials::environment::Environment;
use crate::credentials::{CredentialError, Credentials, FoundCredentials};

/// True for Google registry hosts.
pub fn is_google_host(registry: &str) -> bool {
    let h = bare_host(registry);
    h == "gcr.io" || h.ends_with(".gcr.io") || h.ends_with("-docker.pkg.dev")
}

/// The Google credential source.
pub struct Gcr {
    env: Environment,
}

impl Gcr {
    /// Google over `env`.
    pub fn new(env: Environment) -> Self {
        Self { env }
    }
}

const HINT: &str = "check GOOGLE_APPLICATION_CREDENTIALS (a service-account key file) or the node's service account and its artifactregistry.reader/writer role";

#[derive(serde::Deserialize)]
struct KeyType {
    #[serde(rename = "type", default)]
    kind: String,
}

#[derive(serde::Deserialize)]
struct MetadataToken {
    access_token: String,
    expires_in: Option<u64>,
}

fn key_file(env: &Environment, registry: &str) -> Result<Option<Lookup>, CredentialError> {
    let Some(path) = env.path("GOOGLE_APPLICATION_CREDENTIALS") else {
        return Ok(None);
    };
    let origin = format!("google service-account key {}", path.display());
    let text = std::fs::read_to_string(&path).map_err(|e| {
        CredentialError::new(
            registry,
            &origin,
            format!("cannot read the key file: {e}"),
            HINT,
        )
    })?;
    let kind = serde_json::from_str::<KeyType>(&text)
        .map_err(|e| {
            CredentialError::new(
                registry,
                &origin,
                format!("the key file is not valid json: {e}"),
                HINT,
            )
        })?
        .kind;
    if kind != "service_account" {
        tracing::debug!(registry, source = %origin, kind = %kind, "not a service-account key; trying the metadata server");
        return Ok(None);
    }
    Ok(Some(Lookup::from(FoundCredentials {
        credentials: Credentials::Basic {
            username: "_json_key".into(),
            password: text,
        },
        source: origin,
    })))
}

async fn metadata(env: Environment) -> Result<Option<Lookup>, (String, String)> {
    let host = endpoint(
        &env,
        &["OSSB_GCE_METADATA_HOST", "GCE_METADATA_HOST"],
        "metadata.google.internal",
    );
    let origin = format!("gce metadata server {host}");
    let url = format!("http://{host}/computeMetadata/v1/instance/service-accounts/default/token");
    let http = client(Duration::from_secs(5)).map_err(|e| (origin.clone(), e))?;
    let reply = match send(http.get(&url).header("Metadata-Flavor", "Google")).await {
        Ok(r) => r,
        Err(CallError::Unreachable(d)) => {
            tracing::debug!(source = %origin, reason = %d, "gce metadata server not reachable; not on google cloud");
            return Ok(None);
        }
        Err(CallError::Other(d)) => return Err((origin, d)),
    };
    if reply.status == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !reply.status.is_success() {
        return Err((
            origin,
            format!(
                "the token request answered {}: {}",
                reply.status,
                reply.snippet()
            ),
        ));
    }
    if reply
        .headers
        .get("metadata-flavor")
        .is_none_or(|v| v.as_bytes() != b"Google")
    {
        return Err((
            origin,
            "the answer lacks Metadata-Flavor: Google; this is not a gce metadata server".into(),
        ));
    }
    let t: MetadataToken = serde_json::from_slice(&reply.body)
        .map_err(|e| (origin.clone(), format!("invalid token json: {e}")))?;
    Ok(Some(Lookup {
        found: FoundCredentials {
            credentials: Credentials::Basic {
                username: "oauth2accesstoken".into(),
                password: t.access_token,
            },
            source: origin,
        },
        expires: Some(SystemTime::now() + Duration::from_secs(t.expires_in.unwrap_or(300))),
    }))
}

impl Source for Gcr {
    fn describe(&self) -> String {
        "google (gcr.io, *.gcr.io, *-docker.pkg.dev)".into()
    }

    fn lookup(&self, registry: &str) -> Result<Option<Lookup>, CredentialError> {
        if !is_google_host(registry) {
            return Ok(None);
        }
        if let Some(found) = key_file(&self.env, registry)? {
            return Ok(Some(found));
        }
        {
            let env = self.env.clone();
            run(move || metadata(env))
        }
        .map_err(|d| ("google".to_string(), d))
        .and_then(|r| r)
        .map_err(|(origin, detail)| CredentialError::new(registry, origin, detail, HINT))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_key_file() {
        assert!(is_google_host("gcr.io") && is_google_host("eu.gcr.io"));
        assert!(is_google_host("europe-west1-docker.pkg.dev"));
        assert!(!is_google_host("docker.pkg.dev.example.com") && !is_google_host("evilgcr.io"));
        let d = tempfile::tempdir().expect("tempdir");
        let key = d.path().join("key.json");
        std::fs::write(
            &key,
            r#"{"type":"service_account","private_key":"-----BEGIN"}"#,
        )
        .expect("w");
        let env =
            Environment::from_vars([("GOOGLE_APPLICATION_CREDENTIALS", key.display().to_string())]);
        let found = key_file(&env, "gcr.io").expect("ok").expect("found");
        assert!(
            matches!(&found.found.credentials, Credentials::Basic { username, password }
            if username == "_json_key" && password.contains("service_account"))
        );
        std::fs::write(&key, r#"{"type":"authorized_user"}"#).expect("w");
        assert!(key_file(&env, "gcr.io").expect("ok").is_none());
    }
}
