//! Blob upload (monolithic PUT or chunked PATCH, streamed from a file) and cross-repository
//! mounts.

use std::io::{Seek as _, SeekFrom};
use std::path::Path;

use ossb_core::reference::Reference;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use tokio::io::AsyncReadExt as _;
use url::Url;

use crate::auth::Scope;
use crate::client::{HostState, RegistryClient, join, protocol, status_error};
use crate::digest::{Algorithm, Digest, DigestHasher};
use crate::error::{RegistryError, Result};

/// Read buffer for streaming files.
const READ_BUF: usize = 256 << 10;

/// What [`RegistryClient::mount_blob`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountOutcome {
    /// The registry linked the blob from the other repository; nothing was uploaded.
    Mounted,
    /// The registry declined the mount (or the token did not cover the source repository),
    /// and the blob was uploaded from the fallback file.
    Uploaded,
    /// The registry declined the mount (or the token did not cover the source repository)
    /// and no fallback file was given.
    NotMounted,
}

impl RegistryClient {
    /// Uploads a file as a blob of the reference's repository and returns its sha256 digest.
    /// Skips the upload when the registry already has the blob. The file is streamed, never
    /// held in memory.
    pub async fn put_blob(&self, r: &Reference, path: &Path) -> Result<Digest> {
        let st = self.origin(r)?;
        let (digest, size) = digest_file(&st, path).await?;
        self.put_blob_with_digest(r, path, &digest, size).await?;
        Ok(digest)
    }

    /// Uploads a file whose digest and size are already known (skipped when the blob exists).
    pub async fn put_blob_with_digest(
        &self,
        r: &Reference,
        path: &Path,
        digest: &Digest,
        size: u64,
    ) -> Result<()> {
        let st = self.origin(r)?;
        if self.blob_exists_at(&st, r, digest).await? {
            tracing::debug!(%digest, repository = %r.repository, "blob already present; upload skipped");
            return Ok(());
        }
        self.upload(&st, r, path, digest, size, None).await
    }

    /// Mounts a blob from another repository of the same registry; with token
    /// authentication the token asked for covers push on the target and pull on the source.
    /// When the registry answers 202 (mount declined) or refuses the mount for lack of
    /// access, and `fallback` is given, uploads that file instead.
    pub async fn mount_blob(
        &self,
        r: &Reference,
        digest: &Digest,
        from_repository: &str,
        fallback: Option<&Path>,
    ) -> Result<MountOutcome> {
        let st = self.origin(r)?;
        let op = format!(
            "mount blob {digest} from {from_repository} into {}",
            r.name()
        );
        let path = format!("v2/{}/blobs/uploads/", r.repository);
        let scope = Scope::push(&r.repository).and_pull(from_repository);
        let sent = self
            .send(&st, &scope, &op, true, |c, base| {
                let mut url = join(&st, base, &path)?;
                url.query_pairs_mut()
                    .append_pair("mount", digest.as_str())
                    .append_pair("from", from_repository);
                Ok(c.post(url).header(CONTENT_LENGTH, 0))
            })
            .await;
        let resp = match sent {
            Ok(resp) => resp,
            // The account may push here but not pull from the source repository, so the
            // token does not cover the mount: upload instead, as Docker does. An account
            // that may not push at all fails at the upload with its own message.
            Err(e @ RegistryError::Auth { .. }) => {
                tracing::debug!(registry = %st.host, %digest, from = from_repository, error = %e, "cross-repository mount refused; uploading instead");
                return match fallback {
                    Some(file) => {
                        let size = std::fs::metadata(file)
                            .map_err(|e| file_err(&st, file, e))?
                            .len();
                        self.upload(&st, r, file, digest, size, None).await?;
                        Ok(MountOutcome::Uploaded)
                    }
                    None => Ok(MountOutcome::NotMounted),
                };
            }
            Err(e) => return Err(e),
        };
        match resp.status() {
            StatusCode::CREATED => Ok(MountOutcome::Mounted),
            StatusCode::ACCEPTED => {
                let location = location(&st, &op, &self.base_url(&st, &op).await?, &resp)?;
                match fallback {
                    Some(file) => {
                        let size = std::fs::metadata(file)
                            .map_err(|e| file_err(&st, file, e))?
                            .len();
                        self.upload(&st, r, file, digest, size, Some(location))
                            .await?;
                        Ok(MountOutcome::Uploaded)
                    }
                    None => {
                        self.cancel_upload(&st, r, location).await;
                        Ok(MountOutcome::NotMounted)
                    }
                }
            }
            _ => Err(status_error(&st, &op, resp).await),
        }
    }

    /// Runs an upload, restarting it with a new session when an attempt fails transiently
    /// (dropped connection, 5xx, 429), at most `max_retries` times. Before a restart the
    /// registry is asked whether it already has the blob: a final `PUT` whose answer was lost
    /// may have completed the upload. Session starts retry on their own; when they give up,
    /// so does the upload.
    async fn upload(
        &self,
        st: &HostState,
        r: &Reference,
        path: &Path,
        digest: &Digest,
        size: u64,
        mut session: Option<Url>,
    ) -> Result<()> {
        let max = self.config().transfer.max_retries;
        let op = format!("upload blob {digest} to {}", r.name());
        let started = std::time::Instant::now();
        let mut attempt = 0;
        loop {
            let location = match session.take() {
                Some(l) => l,
                None => self.start_upload(st, r).await?,
            };
            let err = match self.upload_into(st, r, path, digest, size, location).await {
                Ok(()) => return Ok(()),
                Err(e) if e.is_transient() && attempt < max => e,
                Err(e) if e.is_transient() => {
                    return Err(e.gave_up(&st.host, &op, attempt + 1, started));
                }
                Err(e) => return Err(e),
            };
            tracing::warn!(registry = %st.host, %digest, error = %err, attempt = attempt + 1, "blob upload failed; restarting it");
            self.backoff(st, &op, attempt, None, &err.to_string()).await;
            attempt += 1;
            if self.blob_exists_at(st, r, digest).await? {
                tracing::debug!(%digest, "the registry has the blob after all; upload complete");
                return Ok(());
            }
        }
    }

    async fn start_upload(&self, st: &HostState, r: &Reference) -> Result<Url> {
        let op = format!("start blob upload to {}", r.name());
        let path = format!("v2/{}/blobs/uploads/", r.repository);
        let resp = self
            .send(st, &Scope::push(&r.repository), &op, true, |c, base| {
                Ok(c.post(join(st, base, &path)?).header(CONTENT_LENGTH, 0))
            })
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(status_error(st, &op, resp).await);
        }
        location(st, &op, &self.base_url(st, &op).await?, &resp)
    }

    /// One upload attempt into a session. Monolithic: one `PUT` with the file. Chunked:
    /// `PATCH` chunks, then a `PUT` without body; a chunk or the final `PUT` that fails
    /// transiently is resumed from the offset the session reports (at most `max_retries`
    /// failures in a row), and a session the registry dropped ends the attempt with that
    /// failure, so the caller starts a new one.
    async fn upload_into(
        &self,
        st: &HostState,
        r: &Reference,
        path: &Path,
        digest: &Digest,
        size: u64,
        mut location: Url,
    ) -> Result<()> {
        let scope = Scope::push(&r.repository);
        let transfer = &self.config().transfer;
        let op = format!("upload blob {digest} to {}", r.name());
        if size <= transfer.monolithic_max {
            return self
                .put_final(st, &scope, &op, path, digest, &location, size)
                .await;
        }
        let chunk = transfer.chunk_size.max(1);
        let max = transfer.max_retries;
        let mut offset = 0;
        // Failures in a row without progress; a step that goes through resets it.
        let mut failures = 0;
        let mut failing_since = std::time::Instant::now();
        loop {
            let step = if offset < size {
                let len = chunk.min(size - offset);
                self.patch_chunk(st, &scope, &op, path, &location, offset, len)
                    .await
                    .map(|next| Some((next, offset + len)))
            } else {
                self.put_final(st, &scope, &op, path, digest, &location, 0)
                    .await
                    .map(|()| None)
            };
            let err = match step {
                Ok(None) => return Ok(()),
                Ok(Some((next, end))) => {
                    location = next;
                    offset = end;
                    failures = 0;
                    continue;
                }
                Err(e) if e.is_transient() && failures < max => e,
                Err(e) if e.is_transient() => {
                    return Err(e.gave_up(&st.host, &op, failures + 1, failing_since));
                }
                Err(e) => return Err(e),
            };
            if failures == 0 {
                failing_since = std::time::Instant::now();
            }
            failures += 1;
            tracing::warn!(registry = %st.host, %digest, offset, error = %err, "blob upload step failed; resuming the upload");
            self.backoff(st, &op, failures - 1, None, &err.to_string())
                .await;
            // A final PUT whose answer was lost may have completed the upload.
            if offset >= size && self.blob_exists_at(st, r, digest).await? {
                return Ok(());
            }
            // Ask the registry how much it has; a lost session ends this attempt.
            let Some((next, received)) = self.upload_status(st, &scope, &op, &location).await?
            else {
                return Err(err);
            };
            if received > size {
                return Err(protocol(
                    st,
                    &op,
                    &format!("the upload session reports {received} bytes of {size}"),
                ));
            }
            location = next;
            offset = received;
        }
    }

    /// The closing `PUT ?digest=` of an upload, with the first `body_len` bytes of the file
    /// (monolithic) or without body (after chunks). Checks the digest the registry reports.
    #[allow(clippy::too_many_arguments)]
    async fn put_final(
        &self,
        st: &HostState,
        scope: &Scope,
        op: &str,
        path: &Path,
        digest: &Digest,
        location: &Url,
        body_len: u64,
    ) -> Result<()> {
        let mut put_url = location.clone();
        put_url
            .query_pairs_mut()
            .append_pair("digest", digest.as_str());
        let resp = self
            .send(st, scope, op, false, |c, _| {
                let req = c
                    .put(put_url.clone())
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, body_len);
                Ok(if body_len == 0 {
                    req
                } else {
                    req.body(file_body(st, path, 0, body_len)?)
                })
            })
            .await?;
        if resp.status() != StatusCode::CREATED {
            let status = resp.status();
            let e = status_error(st, op, resp).await;
            if status == StatusCode::BAD_REQUEST && e.to_string().contains("DIGEST_INVALID") {
                return Err(RegistryError::DigestMismatch {
                    registry: st.host.clone(),
                    what: format!("uploaded blob from {}", path.display()),
                    expected: digest.to_string(),
                    actual: "a different digest computed by the registry".to_string(),
                });
            }
            return Err(e);
        }
        if let Some(h) = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            && h != digest.as_str()
        {
            return Err(RegistryError::DigestMismatch {
                registry: st.host.clone(),
                what: format!("uploaded blob from {}", path.display()),
                expected: digest.to_string(),
                actual: h.to_string(),
            });
        }
        Ok(())
    }

    /// Sends one PATCH chunk; returns the session URL for the next request.
    #[allow(clippy::too_many_arguments)]
    async fn patch_chunk(
        &self,
        st: &HostState,
        scope: &Scope,
        op: &str,
        path: &Path,
        location: &Url,
        offset: u64,
        len: u64,
    ) -> Result<Url> {
        let resp = self
            .send(st, scope, op, false, |c, _| {
                Ok(c.patch(location.clone())
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, len)
                    .header("Content-Range", format!("{offset}-{}", offset + len - 1))
                    .body(file_body(st, path, offset, len)?))
            })
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(status_error(st, op, resp).await);
        }
        crate::upload::location(st, op, location, &resp)
    }

    /// Asks an upload session how many bytes it has (`GET` on the session: `204` with
    /// `Range: 0-<last>`). `None` when the session is gone (restart the upload).
    async fn upload_status(
        &self,
        st: &HostState,
        scope: &Scope,
        op: &str,
        location: &Url,
    ) -> Result<Option<(Url, u64)>> {
        let resp = self
            .send(st, scope, op, true, |c, _| Ok(c.get(location.clone())))
            .await?;
        match resp.status() {
            StatusCode::NO_CONTENT | StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            _ => return Err(status_error(st, op, resp).await),
        }
        let received = match resp.headers().get("range").and_then(|v| v.to_str().ok()) {
            None => 0,
            Some(range) => {
                let end = range
                    .trim()
                    .trim_start_matches("bytes=")
                    .strip_prefix("0-")
                    .and_then(|e| e.parse::<u64>().ok())
                    .ok_or_else(|| {
                        protocol(st, op, &format!("upload status has a bad Range {range:?}"))
                    })?;
                // Distribution answers 0-0 for an empty session too.
                if end == 0 { 0 } else { end + 1 }
            }
        };
        let next = if resp.headers().contains_key(LOCATION) {
            crate::upload::location(st, op, location, &resp)?
        } else {
            location.clone()
        };
        Ok(Some((next, received)))
    }

    async fn cancel_upload(&self, st: &HostState, r: &Reference, location: Url) {
        let op = format!("cancel blob upload to {}", r.name());
        let res = self
            .send(st, &Scope::push(&r.repository), &op, false, |c, _| {
                Ok(c.delete(location.clone()))
            })
            .await;
        if let Err(e) = res {
            tracing::debug!(error = %e, "cancelling an upload session failed");
        }
    }
}

/// The upload session URL from a `Location` header, resolved against `base`.
fn location(st: &HostState, op: &str, base: &Url, resp: &reqwest::Response) -> Result<Url> {
    let raw = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| protocol(st, op, "upload answer has no Location header"))?;
    base.join(raw)
        .map_err(|e| protocol(st, op, &format!("bad Location {raw:?}: {e}")))
}

fn file_err(st: &HostState, path: &Path, source: std::io::Error) -> RegistryError {
    RegistryError::Io {
        registry: st.host.clone(),
        operation: format!("reading {}", path.display()),
        source,
    }
}

/// A request body streaming `len` bytes of a file from `offset`.
fn file_body(st: &HostState, path: &Path, offset: u64, len: u64) -> Result<reqwest::Body> {
    let mut f = std::fs::File::open(path).map_err(|e| file_err(st, path, e))?;
    f.seek(SeekFrom::Start(offset))
        .map_err(|e| file_err(st, path, e))?;
    let file = tokio::fs::File::from_std(f);
    let stream = futures_util::stream::unfold((file, len), |(mut file, remaining)| async move {
        if remaining == 0 {
            return None;
        }
        let mut buf = vec![0u8; (READ_BUF as u64).min(remaining) as usize];
        match file.read(&mut buf).await {
            Ok(0) => Some((
                Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the file shrank during the upload",
                )),
                (file, 0),
            )),
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(buf), (file, remaining - n as u64)))
            }
            Err(e) => Some((Err(e), (file, 0))),
        }
    });
    Ok(reqwest::Body::wrap_stream(stream))
}

/// The sha256 digest and size of a file, read in a streaming fashion.
async fn digest_file(st: &HostState, path: &Path) -> Result<(Digest, u64)> {
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| file_err(st, path, e))?;
    let mut hasher = DigestHasher::new(Algorithm::Sha256);
    let mut buf = vec![0u8; READ_BUF];
    let mut size = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .await
            .map_err(|e| file_err(st, path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hasher.finish(), size))
}
