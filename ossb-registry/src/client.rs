//! The registry client: per-host HTTP clients, endpoint discovery, authentication and retries.
//!
//! The distribution operations themselves live in [`crate::manifest`], [`crate::blob`] and
//! [`crate::upload`], as further `impl RegistryClient` blocks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use base64::Engine as _;
use ossb_core::reference::{DEFAULT_REGISTRY, Reference};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use url::Url;

use crate::auth::{Challenge, Scope, Token, TokenResponse, canonical_scope, parse_challenge};
use crate::config::{RegistryConfig, Transport};
use crate::credentials::{CredentialProvider, Credentials, FoundCredentials};
use crate::error::{RegistryError, Result};
use crate::tls;

/// Docker Hub's API host, used for references on `docker.io`.
pub const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";

/// The host that serves the API of a registry name (`docker.io` -> `registry-1.docker.io`).
pub fn api_host(registry: &str) -> &str {
    if registry == DEFAULT_REGISTRY {
        DOCKER_HUB_API_HOST
    } else {
        registry
    }
}

/// An asynchronous client for OCI distribution registries. Cheap to clone; clones share
/// connections and cached tokens.
#[derive(Clone)]
pub struct RegistryClient {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) config: RegistryConfig,
    credentials: Arc<dyn CredentialProvider>,
    hosts: Mutex<HashMap<String, Arc<HostState>>>,
    tokens: Mutex<HashMap<(String, Vec<String>), Token>>,
}

/// What is known about one API host.
pub(crate) struct HostState {
    /// `host[:port]` the requests go to.
    pub(crate) host: String,
    /// The name credentials are looked up under (`docker.io` for Docker Hub).
    pub(crate) creds_host: String,
    pub(crate) client: reqwest::Client,
    base: tokio::sync::OnceCell<Url>,
    challenge: Mutex<Option<Challenge>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl RegistryClient {
    /// A client using `config` and the credentials written inline in it.
    pub fn new(config: RegistryConfig) -> Result<Self> {
        let creds = Arc::new(config.inline_credentials());
        Ok(Self::with_credentials(config, creds))
    }

    /// A client using `config` and a credential provider.
    pub fn with_credentials(
        config: RegistryConfig,
        credentials: Arc<dyn CredentialProvider>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                credentials,
                hosts: Mutex::new(HashMap::new()),
                tokens: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &RegistryConfig {
        &self.inner.config
    }

    /// Checks that a registry answers the `/v2/` API (and picks HTTPS or, for insecure
    /// registries, HTTP).
    pub async fn ping(&self, registry: &str) -> Result<()> {
        let st = self.host_state(api_host(registry), registry)?;
        self.base_url(&st, "ping").await.map(|_| ())
    }

    /// The state of the origin host of a reference.
    pub(crate) fn origin(&self, r: &Reference) -> Result<Arc<HostState>> {
        self.host_state(api_host(&r.registry), &r.registry)
    }

    /// The hosts to pull from: the configured mirrors, then the origin.
    pub(crate) fn pull_hosts(&self, r: &Reference) -> Result<Vec<Arc<HostState>>> {
        let mut hosts = Vec::new();
        for m in self.inner.config.mirrors_for(&r.registry) {
            hosts.push(self.host_state(m, m)?);
        }
        hosts.push(self.origin(r)?);
        Ok(hosts)
    }

    pub(crate) fn host_state(&self, host: &str, creds_host: &str) -> Result<Arc<HostState>> {
        let mut hosts = lock(&self.inner.hosts);
        if let Some(st) = hosts.get(host) {
            return Ok(st.clone());
        }
        let cfg = &self.inner.config;
        let tls = if cfg.is_insecure(host) {
            tls::unverified(host)?
        } else {
            tls::verified(host, &cfg.ca_files(host))?
        };
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(cfg.transfer.connect_timeout)
            .read_timeout(cfg.transfer.read_timeout)
            .user_agent(concat!("ossb/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                RegistryError::Config(format!("cannot set up the http client for {host}: {e}"))
            })?;
        let st = Arc::new(HostState {
            host: host.to_string(),
            creds_host: creds_host.to_string(),
            client,
            base: tokio::sync::OnceCell::new(),
            challenge: Mutex::new(None),
        });
        hosts.insert(host.to_string(), st.clone());
        Ok(st)
    }

    /// `https://host/` or, for insecure hosts that do not speak TLS, `http://host/`.
    pub(crate) async fn base_url(&self, st: &HostState, operation: &str) -> Result<Url> {
        st.base
            .get_or_try_init(|| self.discover(st, operation))
            .await
            .cloned()
    }

    async fn discover(&self, st: &HostState, operation: &str) -> Result<Url> {
        let parse = |scheme: &str| {
            Url::parse(&format!("{scheme}://{}/", st.host)).map_err(|e| {
                RegistryError::Config(format!("registry host {:?} is not valid: {e}", st.host))
            })
        };
        let https = parse("https")?;
        let transport = self.inner.config.transport(&st.host);
        if transport == Transport::Verified {
            self.ping_at(st, &https, operation, true).await?;
            return Ok(https);
        }
        match self.ping_at(st, &https, operation, false).await {
            Ok(()) => Ok(https),
            Err(e @ (RegistryError::Tls { .. } | RegistryError::Unreachable { .. })) => {
                tracing::debug!(registry = %st.host, error = %e, "https failed; trying http");
                let http = parse("http")?;
                match self.ping_at(st, &http, operation, true).await {
                    Ok(()) => Ok(http),
                    // A TLS server with a certificate the CA does not vouch for does not
                    // answer plain HTTP either: its certificate error is the one to report.
                    Err(_) if transport == Transport::VerifiedOrHttp => Err(e),
                    Err(http_err) => Err(http_err),
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn ping_at(
        &self,
        st: &HostState,
        base: &Url,
        operation: &str,
        retry: bool,
    ) -> Result<()> {
        let url = join(st, base, "v2/")?;
        let resp = self
            .execute(st, operation, retry, || Ok(st.client.get(url.clone())))
            .await?;
        let challenge = match resp.status() {
            StatusCode::UNAUTHORIZED => resp
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_challenge)
                .ok_or_else(|| {
                    protocol(
                        st,
                        operation,
                        "401 without a usable WWW-Authenticate challenge",
                    )
                })?,
            s if s.is_success() => Challenge::None,
            StatusCode::NOT_FOUND => {
                return Err(protocol(
                    st,
                    operation,
                    "/v2/ answered 404: this is not an OCI distribution (v2) registry",
                ));
            }
            s => return Err(protocol(st, operation, &format!("/v2/ answered {s}"))),
        };
        *lock(&st.challenge) = Some(challenge);
        Ok(())
    }

    /// Sends a request built by `build`, retrying transient failures when `retry` is set.
    /// No authentication; 401/403 are returned to the caller.
    async fn execute<F>(
        &self,
        st: &HostState,
        operation: &str,
        retry: bool,
        build: F,
    ) -> Result<reqwest::Response>
    where
        F: Fn() -> Result<reqwest::RequestBuilder>,
    {
        let max = if retry {
            self.inner.config.transfer.max_retries
        } else {
            0
        };
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            match build()?.send().await {
                Err(e) => {
                    let err = classify(&st.host, operation, &e);
                    if err.is_transient() && attempt < max {
                        self.backoff(st, operation, attempt, None, &err.to_string())
                            .await;
                        attempt += 1;
                        continue;
                    }
                    return Err(err.gave_up(&st.host, operation, attempt + 1, started));
                }
                Ok(resp) => {
                    let s = resp.status();
                    if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS {
                        if attempt < max {
                            let after = retry_after(&resp);
                            self.backoff(st, operation, attempt, after, &format!("status {s}"))
                                .await;
                            attempt += 1;
                            continue;
                        }
                        if attempt > 0 {
                            let last = status_error(st, operation, resp).await;
                            return Err(last.gave_up(&st.host, operation, attempt + 1, started));
                        }
                    }
                    return Ok(resp);
                }
            }
        }
    }

    pub(crate) async fn backoff(
        &self,
        st: &HostState,
        operation: &str,
        attempt: u32,
        after: Option<Duration>,
        why: &str,
    ) {
        let base = self.inner.config.transfer.backoff_base;
        let delay = after
            .unwrap_or_else(|| base.saturating_mul(1 << attempt.min(16)))
            .min(Duration::from_secs(10));
        tracing::warn!(registry = %st.host, operation, attempt = attempt + 1, ?delay, reason = why, "retrying registry request");
        tokio::time::sleep(delay).await;
    }

    /// Sends an authenticated request: discovers the endpoint, adds credentials or a bearer
    /// token for `scope`, re-authenticates once on 401, and retries transient failures when
    /// `retry` is set. 401 (after re-auth) and 403 become [`RegistryError::Auth`].
    pub(crate) async fn send<F>(
        &self,
        st: &HostState,
        scope: &Scope,
        operation: &str,
        retry: bool,
        build: F,
    ) -> Result<reqwest::Response>
    where
        F: Fn(&reqwest::Client, &Url) -> Result<reqwest::RequestBuilder>,
    {
        let base = self.base_url(st, operation).await?;
        let mut reauthed = false;
        loop {
            let auth = self.authorization(st, scope, operation).await?;
            let resp = self
                .execute(st, operation, retry, || {
                    let req = build(&st.client, &base)?;
                    Ok(match &auth {
                        Some(h) => req.header(AUTHORIZATION, h),
                        None => req,
                    })
                })
                .await?;
            match resp.status() {
                StatusCode::UNAUTHORIZED if !reauthed => {
                    reauthed = true;
                    if let Some(ch) = resp
                        .headers()
                        .get(WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok())
                        .and_then(parse_challenge)
                    {
                        *lock(&st.challenge) = Some(ch);
                    }
                    lock(&self.inner.tokens).remove(&(st.host.clone(), scope.items().to_vec()));
                }
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    let status = resp.status();
                    let challenge = resp
                        .headers()
                        .get(WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok())
                        .and_then(parse_challenge);
                    let body = error_body(resp).await;
                    let source = self.credentials(st, operation)?.map(|f| f.source);
                    return Err(RegistryError::Auth {
                        registry: st.host.clone(),
                        operation: operation.to_string(),
                        detail: refusal_detail(
                            st,
                            status,
                            challenge.as_ref(),
                            source.as_deref(),
                            scope,
                            &body,
                        ),
                    });
                }
                _ => return Ok(resp),
            }
        }
    }

    /// The credentials for a host and their source; a failing source is an
    /// authentication error naming it.
    fn credentials(&self, st: &HostState, operation: &str) -> Result<Option<FoundCredentials>> {
        self.inner
            .credentials
            .lookup(&st.creds_host)
            .map_err(|e| RegistryError::Auth {
                registry: st.host.clone(),
                operation: operation.to_string(),
                detail: e.to_string(),
            })
    }

    /// The `Authorization` header value for a request needing `scope`, if any.
    async fn authorization(
        &self,
        st: &HostState,
        scope: &Scope,
        operation: &str,
    ) -> Result<Option<String>> {
        let challenge = lock(&st.challenge).clone();
        match challenge {
            None | Some(Challenge::None) => Ok(None),
            Some(Challenge::Basic { .. }) => Ok(match self.credentials(st, operation)? {
                Some(FoundCredentials {
                    credentials: Credentials::Basic { username, password },
                    ..
                }) => Some(basic_header(&username, &password)),
                _ => None,
            }),
            Some(Challenge::Bearer { realm, service, .. }) => {
                let key = (st.host.clone(), scope.items().to_vec());
                if let Some(t) = lock(&self.inner.tokens).get(&key)
                    && t.expires > Instant::now()
                {
                    return Ok(Some(format!("Bearer {}", t.value)));
                }
                let token = self
                    .fetch_token(st, &realm, service.as_deref(), scope, operation)
                    .await?;
                let header = format!("Bearer {}", token.value);
                lock(&self.inner.tokens).insert(key, token);
                Ok(Some(header))
            }
        }
    }

    async fn fetch_token(
        &self,
        st: &HostState,
        realm: &str,
        service: Option<&str>,
        scope: &Scope,
        operation: &str,
    ) -> Result<Token> {
        let mut url = Url::parse(realm).map_err(|e| {
            protocol(
                st,
                operation,
                &format!("token realm {realm:?} is not a url: {e}"),
            )
        })?;
        let realm_host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => {
                return Err(protocol(
                    st,
                    operation,
                    &format!("token realm {realm:?} has no host"),
                ));
            }
        };
        let realm_st = if realm_host == st.host {
            None
        } else {
            Some(self.host_state(&realm_host, &st.creds_host)?)
        };
        let client = realm_st.as_ref().map_or(&st.client, |r| &r.client);
        let found = self.credentials(st, operation)?;
        let source = found.as_ref().map(|f| f.source.clone());
        let creds = found.map(|f| f.credentials);
        let resp = match &creds {
            Some(Credentials::IdentityToken(refresh)) => {
                let mut form = vec![
                    ("grant_type", "refresh_token".to_string()),
                    ("client_id", "ossb".to_string()),
                    ("refresh_token", refresh.clone()),
                    ("scope", scope.items().join(" ")),
                ];
                if let Some(s) = service {
                    form.push(("service", s.to_string()));
                }
                let body = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())))
                    .finish();
                self.execute(st, operation, true, || {
                    Ok(client
                        .post(url.clone())
                        .header(
                            reqwest::header::CONTENT_TYPE,
                            "application/x-www-form-urlencoded",
                        )
                        .body(body.clone()))
                })
                .await?
            }
            other => {
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(s) = service {
                        q.append_pair("service", s);
                    }
                    for item in scope.items() {
                        q.append_pair("scope", item);
                    }
                }
                self.execute(st, operation, true, || {
                    let req = client.get(url.clone());
                    Ok(match other {
                        Some(Credentials::Basic { username, password }) => {
                            req.header(AUTHORIZATION, basic_header(username, password))
                        }
                        _ => req,
                    })
                })
                .await?
            }
        };
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let body = error_body(resp).await;
            return Err(RegistryError::Auth {
                registry: st.host.clone(),
                operation: operation.to_string(),
                detail: match source {
                    Some(source) => format!(
                        "the token server {realm_host} refused the credentials from {source} ({status}: {body})"
                    ),
                    None => format!(
                        "the token server {realm_host} refused anonymous access ({status}: {body})"
                    ),
                },
            });
        }
        if !status.is_success() {
            let body = error_body(resp).await;
            return Err(protocol(
                st,
                operation,
                &format!("token server {realm_host} answered {status}: {body}"),
            ));
        }
        let parsed: TokenResponse = resp.json().await.map_err(|e| {
            protocol(
                st,
                operation,
                &format!("token server {realm_host} sent invalid json: {e}"),
            )
        })?;
        parsed.into_token().ok_or_else(|| {
            protocol(
                st,
                operation,
                &format!("token server {realm_host} sent no token"),
            )
        })
    }
}

/// What a final 401/403 means, in words: missing or refused credentials, a token that does
/// not grant the access needed (`insufficient_scope`), or a token the registry does not
/// accept at all (`invalid_token`: a token server and registry that disagree).
fn refusal_detail(
    st: &HostState,
    status: StatusCode,
    challenge: Option<&Challenge>,
    source: Option<&str>,
    scope: &Scope,
    body: &str,
) -> String {
    let (wanted, error) = match challenge {
        Some(Challenge::Bearer {
            scope: s, error, ..
        }) => (
            canonical_scope(&s.clone().unwrap_or_else(|| scope.items().join(" "))),
            error.as_deref(),
        ),
        _ => (scope.items().join(" "), None),
    };
    match (status, error, source) {
        (StatusCode::UNAUTHORIZED, Some("insufficient_scope"), Some(source)) => format!(
            "the token obtained with the credentials from {source} does not grant {wanted} \
             (insufficient_scope: the token server gave this account less access than the \
             operation needs; {body})"
        ),
        (StatusCode::UNAUTHORIZED, Some("insufficient_scope"), None) => format!(
            "anonymous access does not grant {wanted} (insufficient_scope) and no credentials \
             are configured for {} ({body})",
            st.creds_host
        ),
        (StatusCode::UNAUTHORIZED, Some("invalid_token"), _) => format!(
            "the registry does not accept the tokens of its token server (invalid_token: \
             expired, or issuer, service or signing certificate not what the registry is \
             configured with; {body})"
        ),
        (StatusCode::UNAUTHORIZED, _, None) => format!(
            "the registry requires authentication and no credentials are configured for {} \
             ({body})",
            st.creds_host
        ),
        (StatusCode::UNAUTHORIZED, _, Some(source)) => {
            format!("the registry rejected the credentials from {source} ({body})")
        }
        (_, _, Some(source)) => {
            format!("access denied with the credentials from {source} ({body})")
        }
        (_, _, None) => format!("access denied ({body})"),
    }
}

fn basic_header(username: &str, password: &str) -> String {
    let raw = format!("{username}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// `base` joined with a path, as a request URL.
pub(crate) fn join(st: &HostState, base: &Url, path: &str) -> Result<Url> {
    base.join(path).map_err(|e| {
        RegistryError::Config(format!(
            "bad url path {path:?} for registry {}: {e}",
            st.host
        ))
    })
}

pub(crate) fn protocol(st: &HostState, operation: &str, detail: &str) -> RegistryError {
    RegistryError::Protocol {
        registry: st.host.clone(),
        operation: operation.to_string(),
        detail: detail.to_string(),
    }
}

/// A short description of an error answer: the registry's error codes and messages, or the
/// start of the body.
pub(crate) async fn error_body(resp: reqwest::Response) -> String {
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(e) = serde_json::from_str::<Errors>(&text)
        && !e.errors.is_empty()
    {
        return e
            .errors
            .iter()
            .map(|x| format!("{}: {}", x.code, x.message))
            .collect::<Vec<_>>()
            .join("; ");
    }
    let t = text.trim();
    if t.is_empty() {
        status.to_string()
    } else {
        t.chars().take(200).collect()
    }
}

/// An error for an unexpected status.
pub(crate) async fn status_error(
    st: &HostState,
    operation: &str,
    resp: reqwest::Response,
) -> RegistryError {
    let status = resp.status();
    let body = error_body(resp).await;
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        return RegistryError::ServerError {
            registry: st.host.clone(),
            operation: operation.to_string(),
            status: status.as_u16(),
            detail: body,
        };
    }
    protocol(st, operation, &format!("status {status}: {body}"))
}

/// The delay a `Retry-After` header asks for (seconds; HTTP dates are ignored).
pub(crate) fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    resp.headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// Classifies a transport error.
pub(crate) fn classify(registry: &str, operation: &str, e: &reqwest::Error) -> RegistryError {
    let detail = error_chain(e);
    let operation = operation.to_string();
    let registry = registry.to_string();
    if is_tls(e) || looks_like_tls(&detail) {
        RegistryError::Tls {
            registry,
            operation,
            detail,
        }
    } else if e.is_builder() || e.is_redirect() || (e.is_decode() && !broken_body(e)) {
        RegistryError::Protocol {
            registry,
            operation,
            detail,
        }
    } else {
        RegistryError::Unreachable {
            registry,
            operation,
            detail,
        }
    }
}

/// True when a body error comes from the connection (closed, reset, timed out) rather than
/// from the content: reqwest reports a body cut short as a decode error wrapping it.
fn broken_body(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = e.source();
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<reqwest::Error>()
            && (r.is_body() || r.is_timeout() || r.is_connect())
        {
            return true;
        }
        if err.downcast_ref::<std::io::Error>().is_some() {
            return true;
        }
        cur = err.source();
    }
    false
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
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

/// rustls errors do not always survive the connector's error boxing as a typed source, so
/// their messages are recognised too.
fn looks_like_tls(detail: &str) -> bool {
    [
        "invalid peer certificate",
        "peer is incompatible",
        "peer misbehaved",
        "received corrupt message",
        "handshake",
        "InvalidContentType",
        "alert received",
    ]
    .iter()
    .any(|needle| detail.contains(needle))
}

fn is_tls(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
        {
            return true;
        }
        cur = err.source();
    }
    false
}
