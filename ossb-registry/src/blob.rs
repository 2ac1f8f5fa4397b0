//! Blob download (streamed, digest-verified) and existence checks.

use futures_util::StreamExt as _;
use ossb_core::reference::Reference;
use reqwest::StatusCode;
use tokio::io::{AsyncWrite, AsyncWriteExt as _};

use crate::auth::Scope;
use crate::client::{HostState, RegistryClient, classify, join, protocol, status_error};
use crate::digest::Digest;
use crate::error::{RegistryError, Result};

impl RegistryClient {
    /// Streams a blob of the reference's repository into `out`, verifying its digest. Returns
    /// the number of bytes written. On [`RegistryError::DigestMismatch`] the bytes already
    /// written must be discarded by the caller.
    pub async fn get_blob_to<W>(&self, r: &Reference, digest: &Digest, out: &mut W) -> Result<u64>
    where
        W: AsyncWrite + Unpin,
    {
        let (st, resp) = self.open_blob(r, digest).await?;
        let op = format!("get blob {digest}");
        let mut hasher = digest.hasher();
        let mut n = 0u64;
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| classify(&st.host, &op, &e))?;
            hasher.update(&chunk);
            n += chunk.len() as u64;
            out.write_all(&chunk).await.map_err(|e| io(&st, &op, e))?;
        }
        out.flush().await.map_err(|e| io(&st, &op, e))?;
        verify(&st, digest, hasher.finish())?;
        Ok(n)
    }

    /// Streams a blob into a synchronous sink called with each chunk, verifying its digest.
    /// Returns the number of bytes passed to the sink.
    pub async fn get_blob_with<F>(&self, r: &Reference, digest: &Digest, mut sink: F) -> Result<u64>
    where
        F: FnMut(&[u8]) -> std::io::Result<()>,
    {
        let (st, resp) = self.open_blob(r, digest).await?;
        let op = format!("get blob {digest}");
        let mut hasher = digest.hasher();
        let mut n = 0u64;
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| classify(&st.host, &op, &e))?;
            hasher.update(&chunk);
            n += chunk.len() as u64;
            sink(&chunk).map_err(|e| io(&st, &op, e))?;
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
            let op = format!("get blob {digest} of {}", r.name());
            let path = format!("v2/{}/blobs/{digest}", r.repository);
            let result = async {
                let resp = self
                    .send(&st, &Scope::pull(&r.repository), &op, true, |c, base| {
                        Ok(c.get(join(&st, base, &path)?))
                    })
                    .await?;
                match resp.status() {
                    s if s.is_success() => Ok(resp),
                    StatusCode::NOT_FOUND => Err(blob_not_found(&st, r, digest)),
                    _ => Err(status_error(&st, &op, resp).await),
                }
            }
            .await;
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
