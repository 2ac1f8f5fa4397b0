//! [`ossb_core::ports::UrlFetcher`] over reqwest: the downloads behind `ADD https://…`.
//!
//! * TLS verifies servers against the system roots plus the extra CA files the
//!   [`RegistryConfig`] names for the URL's host (`--tls-ca`, `registries.<host>.ca_file`,
//!   `/etc/containers/certs.d/<host>/*.crt`); plain `http://` URLs are fetched as they are (as
//!   BuildKit does);
//! * redirects are followed (up to 10), proxies come from the usual environment variables;
//! * connection errors, 5xx and 429 answers are retried with exponential backoff, bounded by
//!   [`crate::TransferSettings::max_retries`]; a body cut short is resumed with a `Range`
//!   request (guarded by `If-Range`) and fails when the server cannot resume it;
//! * connect and read timeouts come from [`crate::TransferSettings`].
//!
//! Every error is a build error (exit code 2), as BuildKit reports a failed `ADD` download,
//! and names the URL and the cause (`ADD https://x/y: HTTP 404 Not Found`); only a broken
//! local TLS configuration (an unreadable CA file) is a configuration error (exit code 5).

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use ossb_core::ports::{FetchedUrl, UrlFetcher};
use ossb_core::{Error, ExitCode};
use reqwest::StatusCode;
use reqwest::header::{
    CONTENT_DISPOSITION, CONTENT_RANGE, ETAG, HeaderMap, IF_RANGE, LAST_MODIFIED, RANGE,
    RETRY_AFTER,
};
use url::Url;

use crate::config::RegistryConfig;
use crate::tls;

/// Downloads URLs for `ADD`, blocking (it owns a small tokio runtime; do not call it from
/// inside an async runtime).
pub struct HttpFetcher {
    runtime: tokio::runtime::Runtime,
    config: RegistryConfig,
    clients: Mutex<HashMap<String, reqwest::Client>>,
}

impl std::fmt::Debug for HttpFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpFetcher")
            .field("transfer", &self.config.transfer)
            .finish_non_exhaustive()
    }
}

fn build_error(url: &str, detail: impl std::fmt::Display) -> Error {
    Error::new(ExitCode::Build, format!("ADD {url}: {detail}"))
}

impl HttpFetcher {
    /// A fetcher trusting the CA files `config` names, with its retry and timeout settings.
    pub fn new(config: RegistryConfig) -> Result<Self, Error> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .thread_name("ossb-http-fetch")
            .enable_all()
            .build()
            .map_err(|e| {
                Error::new(
                    ExitCode::Resource,
                    format!("cannot start the url download runtime: {e}"),
                )
            })?;
        Ok(Self {
            runtime,
            config,
            clients: Mutex::new(HashMap::new()),
        })
    }

    /// The HTTP client for `host` (`name[:port]`), built on first use.
    fn client(&self, host: &str) -> Result<reqwest::Client, Error> {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = clients.get(host) {
            return Ok(c.clone());
        }
        let tls = tls::verified(host, &self.config.ca_files(host))
            .map_err(|e| Error::new(ExitCode::Configuration, e.to_string()))?;
        let transfer = &self.config.transfer;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(transfer.connect_timeout)
            .read_timeout(transfer.read_timeout)
            .redirect(reqwest::redirect::Policy::limited(10))
            .user_agent(concat!("ossb/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                Error::new(
                    ExitCode::Configuration,
                    format!("cannot set up the http client for {host}: {e}"),
                )
            })?;
        clients.insert(host.to_string(), client.clone());
        Ok(client)
    }

    async fn backoff(&self, url: &str, attempt: u32, after: Option<Duration>, why: &str) {
        let base = self.config.transfer.backoff_base;
        let delay = after
            .unwrap_or_else(|| base.saturating_mul(1 << attempt.min(16)))
            .min(Duration::from_secs(10));
        tracing::warn!(
            url,
            attempt = attempt + 1,
            ?delay,
            reason = why,
            "retrying download"
        );
        tokio::time::sleep(delay).await;
    }

    async fn fetch_async(&self, url: &str, dest: &mut dyn Write) -> Result<FetchedUrl, Error> {
        let parsed = Url::parse(url)
            .map_err(|e| build_error(url, format!("not a valid url ({e}); fix the source")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(build_error(
                url,
                "only http and https urls can be downloaded; fix the source",
            ));
        }
        let host = match (parsed.host_str(), parsed.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => return Err(build_error(url, "the url has no host; fix the source")),
        };
        let client = self.client(&host)?;
        let max = self.config.transfer.max_retries;
        let mut attempt = 0u32;
        let mut written = 0u64;
        // Set by the first successful answer.
        let mut meta: Option<FetchedUrl> = None;
        let mut validator: Option<String> = None;
        loop {
            let mut req = client.get(parsed.clone());
            if written > 0 {
                req = req.header(RANGE, format!("bytes={written}-"));
                if let Some(v) = &validator {
                    req = req.header(IF_RANGE, v.as_str());
                }
            }
            let mut resp = match req.send().await {
                Ok(resp) => resp,
                Err(e) => {
                    let detail = transport_detail(&e);
                    if is_retryable(&e) && attempt < max {
                        self.backoff(url, attempt, None, &detail).await;
                        attempt += 1;
                        continue;
                    }
                    return Err(build_error(url, network_hint(&detail)));
                }
            };
            let status = resp.status();
            if (status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS)
                && attempt < max
            {
                let after = resp
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                self.backoff(url, attempt, after, &format!("HTTP {status}"))
                    .await;
                attempt += 1;
                continue;
            }
            if written > 0 {
                let resumes_here = status == StatusCode::PARTIAL_CONTENT
                    && content_range_start(resp.headers()) == Some(written);
                if !resumes_here {
                    return Err(build_error(
                        url,
                        format!(
                            "the download broke off after {written} bytes and the server cannot resume it (it answered HTTP {status}); retry the build"
                        ),
                    ));
                }
            } else if !status.is_success() {
                return Err(build_error(url, status_text(status)));
            }
            if meta.is_none() {
                let headers = resp.headers();
                meta = Some(FetchedUrl {
                    size: 0,
                    last_modified: header_str(headers, LAST_MODIFIED).and_then(parse_http_date),
                    content_disposition_filename: header_str(headers, CONTENT_DISPOSITION)
                        .and_then(content_disposition_filename),
                    final_url: resp.url().to_string(),
                });
                // Only a strong ETag or a date may guard a resumed range (RFC 9110 13.1.5).
                validator = header_str(headers, ETAG)
                    .filter(|t| !t.starts_with("W/"))
                    .or_else(|| header_str(headers, LAST_MODIFIED))
                    .map(str::to_string);
            }
            let mut broke: Option<String> = None;
            loop {
                match resp.chunk().await {
                    Ok(Some(bytes)) => {
                        dest.write_all(&bytes).map_err(|e| {
                            Error::new(
                                ExitCode::Resource,
                                format!("ADD {url}: cannot write the download: {e}"),
                            )
                        })?;
                        written += bytes.len() as u64;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        broke = Some(transport_detail(&e));
                        break;
                    }
                }
            }
            match broke {
                None => {
                    dest.flush().map_err(|e| {
                        Error::new(
                            ExitCode::Resource,
                            format!("ADD {url}: cannot write the download: {e}"),
                        )
                    })?;
                    let mut out = meta.unwrap_or_default();
                    out.size = written;
                    return Ok(out);
                }
                Some(detail) if attempt < max => {
                    self.backoff(url, attempt, None, &detail).await;
                    attempt += 1;
                }
                Some(detail) => {
                    return Err(build_error(
                        url,
                        format!(
                            "the download broke off after {written} bytes: {detail}; check the network and retry the build"
                        ),
                    ));
                }
            }
        }
    }
}

impl UrlFetcher for HttpFetcher {
    fn fetch(&self, url: &str, dest: &mut dyn Write) -> Result<FetchedUrl, Error> {
        self.runtime.block_on(self.fetch_async(url, dest))
    }
}

fn header_str(headers: &HeaderMap, name: reqwest::header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `HTTP 404 Not Found`, with a hint.
fn status_text(status: StatusCode) -> String {
    let hint = match status.as_u16() {
        401 | 403 => "; the server refused access (ADD sends no credentials)",
        404 | 410 => "; check the url",
        _ => "",
    };
    format!("HTTP {status}{hint}")
}

/// Connection-level failures (refused, reset, timeouts) and broken bodies may cure themselves;
/// bad URLs, redirect loops and TLS failures do not.
fn is_retryable(e: &reqwest::Error) -> bool {
    let detail = transport_detail(e);
    !(e.is_builder() || e.is_redirect() || looks_like_tls(&detail))
}

fn network_hint(detail: &str) -> String {
    if looks_like_tls(detail) {
        format!("tls error: {detail}; check the server certificate or trust its CA with --tls-ca")
    } else {
        format!("cannot download: {detail}; check the url and network access to the server")
    }
}

fn looks_like_tls(detail: &str) -> bool {
    [
        "invalid peer certificate",
        "peer is incompatible",
        "peer misbehaved",
        "received corrupt message",
        "handshake",
        "InvalidContentType",
        "alert received",
        "certificate",
    ]
    .iter()
    .any(|needle| detail.contains(needle))
}

fn transport_detail(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = s.source();
    }
    parts.join(": ")
}

/// The first byte position of a `Content-Range: bytes N-M/T` header.
fn content_range_start(headers: &HeaderMap) -> Option<u64> {
    let v = header_str(headers, CONTENT_RANGE)?.trim();
    let range = v.strip_prefix("bytes")?.trim_start();
    let (start, _) = range.split_once('-')?;
    start.trim().parse().ok()
}

/// Parses an HTTP date (IMF-fixdate, RFC 850 or asctime, as Go's `http.ParseTime`) into
/// seconds since the epoch.
pub fn parse_http_date(value: &str) -> Option<i64> {
    let v = value.trim();
    for fmt in [
        "%a, %d %b %Y %H:%M:%S GMT",
        "%A, %d-%b-%y %H:%M:%S GMT",
        "%a %b %e %H:%M:%S %Y",
    ] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(v, fmt) {
            return Some(t.and_utc().timestamp());
        }
    }
    None
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The file name a `Content-Disposition` header suggests (`filename*=UTF-8''…` preferred over
/// `filename=…`), reduced to its last path component; `None` when there is none.
pub fn content_disposition_filename(value: &str) -> Option<String> {
    let mut plain: Option<String> = None;
    let mut extended: Option<String> = None;
    for param in value.split(';').skip(1) {
        let Some((key, val)) = param.split_once('=') else {
            continue;
        };
        let val = val.trim();
        match key.trim().to_ascii_lowercase().as_str() {
            "filename*" => {
                // charset'language'percent-encoded
                let mut parts = val.splitn(3, '\'');
                let (charset, _lang, encoded) = (parts.next(), parts.next(), parts.next());
                if let (Some(cs), Some(enc)) = (charset, encoded)
                    && (cs.eq_ignore_ascii_case("utf-8") || cs.eq_ignore_ascii_case("us-ascii"))
                {
                    extended = percent_decode(enc);
                }
            }
            "filename" => {
                let unquoted = match val.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
                    Some(inner) => inner.replace("\\\"", "\"").replace("\\\\", "\\"),
                    None => val.to_string(),
                };
                plain = Some(unquoted);
            }
            _ => {}
        }
    }
    let name = extended.or(plain)?;
    let base = name.rsplit(['/', '\\']).next().unwrap_or("").trim();
    (!base.is_empty() && base != "." && base != "..").then(|| base.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784111777)
        );
        assert_eq!(
            parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"),
            Some(784111777)
        );
        assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), Some(784111777));
        assert_eq!(parse_http_date("yesterday"), None);
    }

    #[test]
    fn content_disposition() {
        assert_eq!(
            content_disposition_filename("attachment; filename=\"a b.tar.gz\"").as_deref(),
            Some("a b.tar.gz")
        );
        assert_eq!(
            content_disposition_filename(
                "attachment; filename=x.bin; filename*=UTF-8''%E2%82%AC%20rates.txt"
            )
            .as_deref(),
            Some("€ rates.txt")
        );
        assert_eq!(
            content_disposition_filename("attachment; filename=../../etc/passwd").as_deref(),
            Some("passwd")
        );
        assert_eq!(content_disposition_filename("inline"), None);
        assert_eq!(
            content_disposition_filename("attachment; filename=\"\""),
            None
        );
    }

    #[test]
    fn content_range() {
        let mut h = HeaderMap::new();
        h.insert(
            CONTENT_RANGE,
            "bytes 100-199/200".parse().expect("valid header"),
        );
        assert_eq!(content_range_start(&h), Some(100));
        h.insert(CONTENT_RANGE, "bytes */200".parse().expect("valid header"));
        assert_eq!(content_range_start(&h), None);
    }

    /// A one-route server: the first request gets half the body then a hang-up; later ones
    /// get `resume` (a `206` honouring `Range`, or a fresh `200`). Returns the port and the
    /// `Range` headers seen.
    fn cutting_server(resume_with_206: bool) -> (u16, std::sync::Arc<Mutex<Vec<String>>>) {
        use std::io::{BufRead, BufReader};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let ranges = std::sync::Arc::new(Mutex::new(Vec::new()));
        let seen = ranges.clone();
        std::thread::spawn(move || {
            const BODY: &[u8] = b"0123456789";
            for (n, stream) in listener.incoming().flatten().enumerate() {
                let mut stream = stream;
                let Ok(clone) = stream.try_clone() else {
                    continue;
                };
                let mut reader = BufReader::new(clone);
                let mut range = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("range:") {
                        range = v.trim().to_string();
                    }
                }
                seen.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(range.clone());
                let reply = if n == 0 {
                    let mut r = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nETag: \"v1\"\r\nConnection: close\r\n\r\n".to_vec();
                    r.extend_from_slice(&BODY[..4]);
                    r
                } else if resume_with_206 && range == "bytes=4-" {
                    let mut r = b"HTTP/1.1 206 Partial Content\r\nContent-Length: 6\r\nContent-Range: bytes 4-9/10\r\nConnection: close\r\n\r\n".to_vec();
                    r.extend_from_slice(&BODY[4..]);
                    r
                } else {
                    let mut r =
                        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\n"
                            .to_vec();
                    r.extend_from_slice(BODY);
                    r
                };
                let _ = stream.write_all(&reply);
            }
        });
        (port, ranges)
    }

    fn quick_fetcher() -> HttpFetcher {
        let mut config = RegistryConfig::default();
        config.transfer.backoff_base = Duration::from_millis(1);
        HttpFetcher::new(config).expect("fetcher")
    }

    #[test]
    fn broken_bodies_resume_with_a_range_request() {
        let (port, ranges) = cutting_server(true);
        let url = format!("http://127.0.0.1:{port}/f");
        let mut out = Vec::new();
        let got = quick_fetcher()
            .fetch(&url, &mut out)
            .expect("resumed download");
        assert_eq!(out, b"0123456789");
        assert_eq!(got.size, 10);
        assert_eq!(got.final_url, url);
        let ranges = ranges
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        assert_eq!(ranges, vec![String::new(), "bytes=4-".to_string()]);
    }

    #[test]
    fn broken_bodies_fail_when_the_server_cannot_resume() {
        let (port, _) = cutting_server(false);
        let url = format!("http://127.0.0.1:{port}/f");
        let mut out = Vec::new();
        let err = quick_fetcher()
            .fetch(&url, &mut out)
            .expect_err("no resume");
        assert_eq!(err.exit_code(), ExitCode::Build);
        let msg = err.to_string();
        assert!(msg.contains(&format!("ADD {url}")), "{msg}");
        assert!(msg.contains("cannot resume"), "{msg}");
    }

    #[test]
    fn bad_urls_are_build_errors() {
        let f = quick_fetcher();
        for url in ["ftp://example.com/x", "http://", "not a url"] {
            let err = f.fetch(url, &mut Vec::new()).expect_err(url);
            assert_eq!(err.exit_code(), ExitCode::Build, "{url}");
            assert!(err.to_string().starts_with(&format!("ADD {url}:")), "{err}");
        }
    }

    #[test]
    fn status_messages_name_the_status() {
        assert_eq!(
            status_text(StatusCode::NOT_FOUND),
            "HTTP 404 Not Found; check the url"
        );
        assert_eq!(
            status_text(StatusCode::INTERNAL_SERVER_ERROR),
            "HTTP 500 Internal Server Error"
        );
    }
}
