//! Blob download (streamed, digest-verified) and existence checks.

use futures_util::StreamExt as _;
use ossb_core::reference::Reference;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_RANGE, RANGE};
use tokio::io::{AsyncWrite, AsyncWriteExt as _};

use crate::auth::Scope;
use crate::client::{HostState, RegistryClient, classify, join, protocol, status_error};
use crate::digest::Digest;
use crate::error::{RegistryError, Result};

impl RegistryClient {
    /// Streams a blob of the reference's repository into `out`, verifying its digest. Returns
    /// the number of bytes written. A download that breaks mid-body is resumed (see
    /// [`RegistryClient::get_blob_with`]). On [`RegistryError::DigestMismatch`] the bytes
    /// already written must be discarded by the caller.
    pub async fn get_blob_to<W>(&self, r: &Reference, digest: &Digest, out: &mut W) -> Result<u64>
    where
        W: AsyncWrite + Unpin,
    {
        let n = self
            .stream_blob(r, digest, async |chunk: &[u8]| out.write_all(chunk).await)
            .await?;
        out.flush().await.map_err(|e| {
            let st = self.origin(r);
            let host = st
                .map(|s| s.host.clone())
                .unwrap_or_else(|_| r.registry.clone());
            RegistryError::Io {
                registry: host,
                operation: format!("writing the output of get blob {digest}"),
                source: e,
            }
        })?;
        Ok(n)
    }

    /// Streams a blob into a synchronous sink called with each chunk, verifying its digest.
    /// Returns the number of bytes passed to the sink. When the connection breaks mid-body,
    /// the download is resumed from the last byte received with a `Range` request (or, when
    /// the registry ignores `Range`, restarted with the bytes already delivered skipped), at
    /// most `max_retries` times; every byte goes through the digest check.
    pub async fn get_blob_with<F>(&self, r: &Reference, digest: &Digest, mut sink: F) -> Result<u64>
    where
        F: FnMut(&[u8]) -> std::io::Result<()>,
    {
        self.stream_blob(r, digest, async |chunk: &[u8]| sink(chunk))
            .await
    }

    async fn stream_blob<F>(&self, r: &Reference, digest: &Digest, mut sink: F) -> Result<u64>
    where
        F: AsyncFnMut(&[u8]) -> std::io::Result<()>,
    {
        let (st, mut resp) = self.open_blob(r, digest).await?;
        let op = format!("get blob {digest} of {}", r.name());
        let max = self.config().transfer.max_retries;
        let started = std::time::Instant::now();
        let mut attempt = 0;
        let mut hasher = digest.hasher();
        let mut n = 0u64;
        loop {
            // Bytes of this response that were already delivered (a restart without Range).
            let mut skip = 0u64;
            if n > 0 {
                match resp.status() {
                    StatusCode::PARTIAL_CONTENT => {
                        let range = resp
                            .headers()
                            .get(CONTENT_RANGE)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default();
                        if !range.starts_with(&format!("bytes {n}-")) {
                            return Err(protocol(
                                &st,
                                &op,
                                &format!("asked for bytes {n}- but got Content-Range {range:?}"),
                            ));
                        }
                    }
                    _ => skip = n,
                }
            }
            let mut stream = resp.bytes_stream();
            let mut broke = None;
            while let Some(chunk) = stream.next().await {
                let mut chunk = match chunk {
                    Ok(c) => c,
                    Err(e) => {
                        broke = Some(classify(&st.host, &op, &e));
                        break;
                    }
                };
                if skip > 0 {
                    let k = skip.min(chunk.len() as u64);
                    skip -= k;
                    chunk = chunk.slice(k as usize..);
                    if chunk.is_empty() {
                        continue;
                    }
                }
                hasher.update(&chunk);
                n += chunk.len() as u64;
                sink(&chunk).await.map_err(|e| io(&st, &op, e))?;
            }
            let Some(err) = broke else { break };
            if !err.is_transient() {
                return Err(err);
            }
            if attempt >= max {
                return Err(err.gave_up(&st.host, &op, attempt + 1, started));
            }
            tracing::warn!(registry = %st.host, %digest, received = n, error = %err, "blob download broke; resuming it");
            self.backoff(&st, &op, attempt, None, &err.to_string())
                .await;
            attempt += 1;
            resp = self.request_blob(&st, r, digest, n).await?;
        }
        verify(&st, digest, hasher.finish())?;
        Ok(n)
    }

    /// Opens the blob on the first source (mirrors, then origin) that has it.
    async fn open_blob(
        &self,
        r: &Reference,
        digest: &Digest,
    ) -> Result<(std::sync::Arc<HostState>, reqwest::Response)> {
        let hosts = self.pull_hosts(r)?;
        let last = hosts.len() - 1;
        for (i, st) in hosts.into_iter().enumerate() {
            let result = self.request_blob(&st, r, digest, 0).await;
            match result {
                Ok(resp) => return Ok((st, resp)),
                Err(e) if i < last => {
                    tracing::warn!(mirror = %st.host, error = %e, "mirror failed; trying the next source");
                }
                Err(e) => return Err(e),
            }
        }
        Err(RegistryError::Config(format!(
            "no source to pull {} from",
            r.name()
        )))
    }

    /// GETs a blob from one host, from byte `offset` on (a `Range` request when not 0).
    async fn request_blob(
        &self,
        st: &HostState,
        r: &Reference,
        digest: &Digest,
        offset: u64,
    ) -> Result<reqwest::Response> {
        let op = format!("get blob {digest} of {}", r.name());
        let path = format!("v2/{}/blobs/{digest}", r.repository);
        let resp = self
            .send(st, &Scope::pull(&r.repository), &op, true, |c, base| {
                let req = c.get(join(st, base, &path)?);
                Ok(if offset > 0 {
                    req.header(RANGE, format!("bytes={offset}-"))
                } else {
                    req
                })
            })
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(resp),
            StatusCode::NOT_FOUND => Err(blob_not_found(st, r, digest)),
            _ => Err(status_error(st, &op, resp).await),
        }
    }

    /// True when the reference's repository (on the origin registry) has the blob.
    pub async fn blob_exists(&self, r: &Reference, digest: &Digest) -> Result<bool> {
        let st = self.origin(r)?;
        self.blob_exists_at(&st, r, digest).await
    }

    pub(crate) async fn blob_exists_at(
        &self,
        st: &HostState,
        r: &Reference,
        digest: &Digest,
    ) -> Result<bool> {
        let op = format!("check blob {digest} in {}", r.name());
        let path = format!("v2/{}/blobs/{digest}", r.repository);
        let resp = self
            .send(st, &Scope::pull(&r.repository), &op, true, |c, base| {
                Ok(c.head(join(st, base, &path)?))
            })
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            s => Err(protocol(st, &op, &format!("status {s}"))),
        }
    }
}

fn verify(st: &HostState, expected: &Digest, actual: Digest) -> Result<()> {
    if &actual == expected {
        Ok(())
    } else {
        Err(RegistryError::DigestMismatch {
            registry: st.host.clone(),
            what: format!("blob {expected}"),
            expected: expected.to_string(),
            actual: actual.to_string(),
        })
    }
}

fn io(st: &HostState, op: &str, source: std::io::Error) -> RegistryError {
    RegistryError::Io {
        registry: st.host.clone(),
        operation: format!("writing the output of {op}"),
        source,
    }
}

fn blob_not_found(st: &HostState, r: &Reference, digest: &Digest) -> RegistryError {
    RegistryError::NotFound {
        registry: st.host.clone(),
        what: format!("blob {digest} in {}", r.name()),
    }
}
