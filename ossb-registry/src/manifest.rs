//! Manifest pull, HEAD and push.

use ossb_core::reference::Reference;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE};

use crate::auth::Scope;
use crate::client::{HostState, RegistryClient, join, protocol, status_error};
use crate::digest::Digest;
use crate::error::{RegistryError, Result};

/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest (schema 2) media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list media type.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// The media types asked for when pulling manifests.
pub const MANIFEST_ACCEPT: &[&str] = &[
    OCI_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
];
/// The largest manifest accepted (4 MiB, as Distribution and containerd limit).
pub const MANIFEST_MAX_BYTES: usize = 4 << 20;

/// What a HEAD on a manifest tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestInfo {
    /// The manifest digest.
    pub digest: Digest,
    /// The manifest media type.
    pub media_type: String,
    /// The manifest size in bytes.
    pub size: u64,
}

fn manifest_path(r: &Reference) -> String {
    format!("v2/{}/manifests/{}", r.repository, r.tag_or_digest())
}

fn header_digest(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
}

fn media_type(resp: &reqwest::Response) -> String {
    resp.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.split(';').next().unwrap_or(s).trim().to_string())
        .unwrap_or_default()
}

impl RegistryClient {
    /// Pulls a manifest (mirrors first, then the registry): its bytes, media type and digest.
    /// The digest is checked against the bytes, against `Docker-Content-Digest`, and against
    /// the reference's digest if it has one.
    pub async fn get_manifest(&self, r: &Reference) -> Result<(Vec<u8>, String, Digest)> {
        let hosts = self.pull_hosts(r)?;
        let last = hosts.len() - 1;
        for (i, st) in hosts.iter().enumerate() {
            match self.get_manifest_at(st, r).await {
                Ok(v) => return Ok(v),
                Err(e) if i < last => {
                    tracing::warn!(mirror = %st.host, error = %e, "mirror failed; trying the next source");
                }
                Err(e) => return Err(e),
            }
        }
        unreachable_sources(r)
    }

    async fn get_manifest_at(
        &self,
        st: &HostState,
        r: &Reference,
    ) -> Result<(Vec<u8>, String, Digest)> {
        let op = format!("get manifest {r}");
        let max = self.config().transfer.max_retries;
        let started = std::time::Instant::now();
        let mut attempt = 0;
        loop {
            match self.get_manifest_once(st, r, &op).await {
                Err(e) if e.is_transient() && attempt < max => {
                    tracing::warn!(registry = %st.host, error = %e, "manifest download broke; retrying it");
                    self.backoff(st, &op, attempt, None, &e.to_string()).await;
                    attempt += 1;
                }
                Err(e) if e.is_transient() => {
                    return Err(e.gave_up(&st.host, &op, attempt + 1, started));
                }
                other => return other,
            }
        }
    }

    /// One GET of a manifest (its request retries on its own; a body that breaks does not).
    async fn get_manifest_once(
        &self,
        st: &HostState,
        r: &Reference,
        op: &str,
    ) -> Result<(Vec<u8>, String, Digest)> {
        let op = op.to_string();
        let path = manifest_path(r);
        let resp = self
            .send(st, &Scope::pull(&r.repository), &op, true, |c, base| {
                Ok(c.get(join(st, base, &path)?)
                    .header(ACCEPT, MANIFEST_ACCEPT.join(", ")))
            })
            .await?;
        match resp.status() {
            s if s.is_success() => {}
            StatusCode::NOT_FOUND => return Err(not_found(st, r)),
            _ => return Err(status_error(st, &op, resp).await),
        }
        if resp
            .content_length()
            .is_some_and(|n| n > MANIFEST_MAX_BYTES as u64)
        {
            return Err(protocol(st, &op, "manifest larger than 4 MiB"));
        }
        let mt = media_type(&resp);
        let announced = header_digest(&resp);
        let bytes = read_limited(st, &op, resp).await?;
        let expected = match (&r.digest, &announced) {
            (Some(d), _) => Some(d.clone()),
            (None, Some(h)) => Some(h.clone()),
            (None, None) => None,
        };
        let digest = match expected {
            Some(exp) => {
                let exp = Digest::parse(&exp)
                    .map_err(|e| protocol(st, &op, &format!("bad Docker-Content-Digest: {e}")))?;
                let actual = exp.same_algorithm_of(&bytes);
                if actual != exp {
                    return Err(RegistryError::DigestMismatch {
                        registry: st.host.clone(),
                        what: format!("manifest {r}"),
                        expected: exp.to_string(),
                        actual: actual.to_string(),
                    });
                }
                if let (Some(_), Some(h)) = (&r.digest, &announced)
                    && h != exp.as_str()
                    && Digest::parse(h).is_ok_and(|hd| hd.same_algorithm_of(&bytes) != hd)
                {
                    return Err(RegistryError::DigestMismatch {
                        registry: st.host.clone(),
                        what: format!("manifest {r} (Docker-Content-Digest)"),
                        expected: h.clone(),
                        actual: Digest::sha256_of(&bytes).to_string(),
                    });
                }
                if exp.algorithm() == crate::digest::Algorithm::Sha256 {
                    exp
                } else {
                    Digest::sha256_of(&bytes)
                }
            }
            None => Digest::sha256_of(&bytes),
        };
        let mt = if mt.is_empty() {
            sniff_media_type(&bytes)
        } else {
            mt
        };
        Ok((bytes, mt, digest))
    }

    /// HEAD on a manifest: its digest, media type and size, or `None` when it does not exist.
    pub async fn head_manifest(&self, r: &Reference) -> Result<Option<ManifestInfo>> {
        let hosts = self.pull_hosts(r)?;
        let last = hosts.len() - 1;
        for (i, st) in hosts.iter().enumerate() {
            match self.head_manifest_at(st, r).await {
                Ok(v) => return Ok(Some(v)),
                Err(RegistryError::NotFound { .. }) if i == last => return Ok(None),
                Err(e) if i < last => {
                    tracing::debug!(mirror = %st.host, error = %e, "mirror failed; trying the next source");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    async fn head_manifest_at(&self, st: &HostState, r: &Reference) -> Result<ManifestInfo> {
        let op = format!("head manifest {r}");
        let path = manifest_path(r);
        let resp = self
            .send(st, &Scope::pull(&r.repository), &op, true, |c, base| {
                Ok(c.head(join(st, base, &path)?)
                    .header(ACCEPT, MANIFEST_ACCEPT.join(", ")))
            })
            .await?;
        match resp.status() {
            s if s.is_success() => {}
            StatusCode::NOT_FOUND => return Err(not_found(st, r)),
            s => return Err(protocol(st, &op, &format!("status {s}"))),
        }
        let digest = match (header_digest(&resp), &r.digest) {
            (Some(h), _) => Digest::parse(&h)
                .map_err(|e| protocol(st, &op, &format!("bad Docker-Content-Digest: {e}")))?,
            (None, Some(d)) => Digest::parse(d).map_err(|e| protocol(st, &op, &e.to_string()))?,
            (None, None) => {
                return Err(protocol(
                    st,
                    &op,
                    "no Docker-Content-Digest header in the answer",
                ));
            }
        };
        let size = resp
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Ok(ManifestInfo {
            digest,
            media_type: media_type(&resp),
            size,
        })
    }

    /// Pushes a manifest under the reference's tag (or digest, if it has no tag); returns its
    /// sha256 digest, checked against the registry's `Docker-Content-Digest`.
    pub async fn put_manifest(
        &self,
        r: &Reference,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Digest> {
        let st = self.origin(r)?;
        let op = format!("put manifest {r}");
        let digest = Digest::sha256_of(bytes);
        if let Some(d) = &r.digest
            && d != digest.as_str()
        {
            return Err(RegistryError::DigestMismatch {
                registry: st.host.clone(),
                what: format!("manifest for {r}"),
                expected: d.clone(),
                actual: digest.to_string(),
            });
        }
        let target = r.tag.as_deref().unwrap_or(digest.as_str());
        let path = format!("v2/{}/manifests/{}", r.repository, target);
        let body = bytes.to_vec();
        let resp = self
            .send(&st, &Scope::push(&r.repository), &op, true, |c, base| {
                Ok(c.put(join(&st, base, &path)?)
                    .header(CONTENT_TYPE, media_type)
                    .body(body.clone()))
            })
            .await?;
        if !resp.status().is_success() {
            return Err(status_error(&st, &op, resp).await);
        }
        if let Some(h) = header_digest(&resp)
            && h != digest.as_str()
        {
            return Err(RegistryError::DigestMismatch {
                registry: st.host.clone(),
                what: format!("pushed manifest {r}"),
                expected: digest.to_string(),
                actual: h,
            });
        }
        Ok(digest)
    }
}

async fn read_limited(st: &HostState, op: &str, resp: reqwest::Response) -> Result<Vec<u8>> {
    use futures_util::StreamExt as _;
    let mut out = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| crate::client::classify(&st.host, op, &e))?;
        if out.len() + chunk.len() > MANIFEST_MAX_BYTES {
            return Err(protocol(st, op, "manifest larger than 4 MiB"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// The `mediaType` field of a manifest, for registries that send no Content-Type.
fn sniff_media_type(bytes: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct M {
        #[serde(rename = "mediaType", default)]
        media_type: String,
    }
    serde_json::from_slice::<M>(bytes)
        .map(|m| m.media_type)
        .unwrap_or_default()
}

fn not_found(st: &HostState, r: &Reference) -> RegistryError {
    RegistryError::NotFound {
        registry: st.host.clone(),
        what: format!("manifest {r}"),
    }
}

fn unreachable_sources<T>(r: &Reference) -> Result<T> {
    Err(RegistryError::Config(format!("no source to pull {r} from")))
}
