//! Cloud registry credentials, each behind a cargo feature: [`ecr`] (Amazon), [`gcr`]
//! (Google) and [`acr`] (Azure). No cloud SDK is used: the token requests are plain HTTPS
//! calls (SigV4 signing for AWS is in [`sigv4`]).
//!
//! Every endpoint can be redirected by an environment variable (for tests and private
//! endpoints): `OSSB_ECR_ENDPOINT`, `OSSB_STS_ENDPOINT`, `OSSB_AWS_IMDS_ENDPOINT`,
//! `OSSB_GCE_METADATA_HOST`, `OSSB_AZURE_AUTHORITY_HOST`, `OSSB_AZURE_IMDS_ENDPOINT`,
//! `OSSB_ACR_EXCHANGE_ENDPOINT`.
//!
//! The credential lookup interface is synchronous, while the registry client is async; each
//! cloud lookup therefore runs on a short-lived thread with its own single-threaded runtime,
//! which works both inside and outside a tokio runtime. Results are cached by the chain until
//! shortly before the token expires.

#[cfg(feature = "acr")]
pub mod acr;
#[cfg(feature = "ecr")]
pub mod aws;
#[cfg(feature = "ecr")]
pub mod ecr;
#[cfg(feature = "gcr")]
pub mod gcr;
#[cfg(feature = "ecr")]
pub mod sigv4;

use std::future::Future;
use std::time::Duration;

use super::chain::Source;
use super::environment::Environment;

/// The cloud sources compiled in, in order: ECR, GCR, ACR.
pub(crate) fn sources(env: &Environment) -> Vec<Box<dyn Source>> {
    let all: [Option<Box<dyn Source>>; 3] = [
        #[cfg(feature = "ecr")]
        Some(Box::new(ecr::Ecr::new(env.clone()))),
        #[cfg(not(feature = "ecr"))]
        None,
        #[cfg(feature = "gcr")]
        Some(Box::new(gcr::Gcr::new(env.clone()))),
        #[cfg(not(feature = "gcr"))]
        None,
        #[cfg(feature = "acr")]
        Some(Box::new(acr::Acr::new(env.clone()))),
        #[cfg(not(feature = "acr"))]
        None,
    ];
    all.into_iter().flatten().collect()
}

/// Runs a future to completion on a fresh thread with its own runtime.
pub(crate) fn run<T, F, M>(make: M) -> Result<T, String>
where
    M: FnOnce() -> F + Send + 'static,
    F: Future<Output = T>,
    T: Send + 'static,
{
    std::thread::Builder::new()
        .name("ossb-cloud-auth".into())
        .spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map(|rt| rt.block_on(make()))
                .map_err(|e| format!("cannot start a runtime: {e}"))
        })
        .map_err(|e| format!("cannot start a thread: {e}"))?
        .join()
        .map_err(|_| "the credential thread panicked".to_string())?
}

/// An HTTP client for token endpoints: system CA roots, the given overall timeout.
pub(crate) fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    let tls = crate::tls::verified("cloud token endpoint", &[]).map_err(|e| e.to_string())?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .timeout(timeout)
        .user_agent(concat!("ossb/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot set up an http client: {e}"))
}

/// A finished HTTP exchange.
pub(crate) struct Reply {
    pub(crate) status: reqwest::StatusCode,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl Reply {
    /// The start of the body as text, for error messages about failed calls (token
    /// endpoints put no secrets in error answers).
    pub(crate) fn snippet(&self) -> String {
        String::from_utf8_lossy(&self.body)
            .trim()
            .chars()
            .take(300)
            .collect()
    }
}

/// Why a call failed: the service could not be reached (not on that cloud), or another error.
pub(crate) enum CallError {
    /// Connection refused, timed out, name not resolved.
    Unreachable(String),
    /// Anything else.
    Other(String),
}

/// Sends a request and reads the whole answer.
pub(crate) async fn send(req: reqwest::RequestBuilder) -> Result<Reply, CallError> {
    let describe = |e: &reqwest::Error| {
        let mut s = e.to_string();
        let mut cur = std::error::Error::source(e);
        while let Some(c) = cur {
            s.push_str(": ");
            s.push_str(&c.to_string());
            cur = c.source();
        }
        s
    };
    let resp = req.send().await.map_err(|e| {
        if e.is_connect() || e.is_timeout() {
            CallError::Unreachable(describe(&e))
        } else {
            CallError::Other(describe(&e))
        }
    })?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .bytes()
        .await
        .map_err(|e| CallError::Other(describe(&e)))?
        .to_vec();
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// The first set variable among `keys`, else `default`; trailing slashes removed.
pub(crate) fn endpoint(env: &Environment, keys: &[&str], default: &str) -> String {
    keys.iter()
        .find_map(|k| env.get(k))
        .unwrap_or(default)
        .trim_end_matches('/')
        .to_string()
}

/// The host part of a registry name (without `:port`), lower case.
pub(crate) fn bare_host(registry: &str) -> String {
    ossb_core::reference::host_without_port(registry).to_ascii_lowercase()
}
