//! OSSB registry adapter: an OCI distribution client of our own on reqwest.
//!
//! * [`RegistryClient`] (async) and [`BlockingRegistryClient`] (owns a tokio runtime, for the
//!   synchronous core): manifests, blobs (streamed and digest-verified), uploads (monolithic or
//!   chunked, from files), cross-repository mounts;
//! * authentication: anonymous, basic, and bearer tokens from `WWW-Authenticate` challenges,
//!   cached per repository scope until expiry, with one re-authentication on 401;
//! * transport: HTTPS with system roots plus per-host CA files, insecure registries over HTTP
//!   or unverified HTTPS (loopback is insecure by default, as in Docker), bounded retries with
//!   exponential backoff, redirects that drop `Authorization` on a host change;
//! * [`HttpFetcher`]: the downloads behind `ADD https://…` (the core's `UrlFetcher` port);
//! * [`RegistryConfig`]: YAML configuration with per-host settings and pull mirrors.

pub mod auth;
pub mod blob;
pub mod blocking;
pub mod client;
pub mod config;
pub mod credentials;
pub mod digest;
pub mod error;
pub mod http_fetch;
pub mod manifest;
pub mod port;
mod tls;
pub mod upload;

pub use blocking::BlockingRegistryClient;
pub use client::RegistryClient;
pub use config::{HostConfig, RegistryConfig, TransferSettings, Transport};
pub use credentials::{
    CredentialChain, CredentialError, CredentialProvider, Credentials, Environment,
    FoundCredentials, StaticCredentials,
};
pub use digest::Digest;
pub use error::RegistryError;
pub use http_fetch::HttpFetcher;
pub use manifest::ManifestInfo;
pub use ossb_core::reference::Reference;
pub use upload::MountOutcome;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
