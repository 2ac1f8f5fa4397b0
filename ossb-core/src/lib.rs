//! OSSB core: everything between a Dockerfile and an OCI image, with no I/O adapters.
//!
//! The data flows one way through the modules of this crate:
//!
//! ```text
//! dockerfile (syntax) -> plan (typed build graph) -> exec (stages, RUN, layers) -> image (OCI)
//! ```
//!
//! Adapters (registries, Kubernetes, logging, the CLI) live in other crates and plug in through
//! the traits of [`backend`], [`progress`] and [`ports`].

pub mod backend;
pub mod dockerfile;
pub mod dockerignore;
pub mod error;
pub mod exec;
pub mod image;
pub mod plan;
pub mod ports;
pub mod progress;
pub mod reference;

pub use error::{Error, ExitCode};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
