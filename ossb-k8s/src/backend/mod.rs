//! The Kubernetes build backend: a [`BuildBackend`] that runs the build in the cluster as a
//! Job, from a machine with no container tools.
//!
//! One build: read the context after `.dockerignore` and size it ([`upload`]); optionally name
//! the image by its content and stop if the registry has it ([`content_tag`]); find the cluster
//! ([`client`]); check every permission it needs ([`preflight`]); create the ConfigMaps, the
//! Secret with the build secrets and the Job ([`spec`]); watch the Job and its pod with the
//! watch API while streaming the pod's log back into local progress events (`watch`,
//! [`events`]); and delete what it created (`run`), also when cancelled.
//!
//! ```no_run
//! use ossb_core::backend::{BuildBackend, BuildRequest, Output};
//! use ossb_core::progress::NoopSink;
//! use ossb_k8s::backend::{KubernetesBackend, KubernetesOptions};
//!
//! let mut request = BuildRequest::new("./app");
//! request.tags = vec!["registry.example.com/team/app:1".into()];
//! request.outputs = vec![Output::Registry { name: None }];
//! let mut options = KubernetesOptions::default();
//! options.namespace = Some("ci".into());
//! let outcome = KubernetesBackend::new(options).build(&request, &NoopSink)?;
//! println!("{}", outcome.image_digest);
//! # Ok::<(), ossb_core::Error>(())
//! ```

pub mod client;
pub mod content_tag;
pub mod error;
pub mod events;
pub mod ops;
pub mod options;
pub mod preflight;
mod run;
pub mod spec;
pub mod upload;
mod watch;

pub use client::{ClientOptions, Cluster, ConfigSource};
pub use error::K8sError;
pub use options::{ContentTag, KubernetesOptions};

use ossb_core::backend::{BuildBackend, BuildOutcome, BuildRequest};
use ossb_core::ports::RegistryPort;
use ossb_core::progress::ProgressSink;
use ossb_core::{Error, ExitCode};
use std::sync::Arc;

/// Cancels a running build from another thread: the Job is deleted, the rest cleaned up, and
/// the build ends with exit code 8.
#[derive(Debug, Clone)]
pub struct CancelHandle {
    tx: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Default for CancelHandle {
    fn default() -> Self {
        CancelHandle {
            tx: Arc::new(tokio::sync::watch::channel(false).0),
        }
    }
}

impl CancelHandle {
    /// Ask the build to stop.
    pub fn cancel(&self) {
        self.tx.send_replace(true);
    }

    /// True once [`CancelHandle::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        *self.tx.borrow()
    }

    fn subscribe(&self) -> tokio::sync::watch::Receiver<bool> {
        self.tx.subscribe()
    }
}

/// Runs builds as Kubernetes Jobs.
pub struct KubernetesBackend {
    options: KubernetesOptions,
    registry: Option<Arc<dyn RegistryPort>>,
    cancel: CancelHandle,
}

impl KubernetesBackend {
    /// A backend with these options.
    pub fn new(options: KubernetesOptions) -> Self {
        KubernetesBackend {
            options,
            registry: None,
            cancel: CancelHandle::default(),
        }
    }

    /// The registry client used to look up content-addressed images (`--tag-by-content`).
    pub fn with_registry(mut self, registry: Arc<dyn RegistryPort>) -> Self {
        self.registry = Some(registry);
        self
    }

    /// A handle that cancels the running build.
    pub fn cancel_handle(&self) -> CancelHandle {
        self.cancel.clone()
    }

    /// The options.
    pub fn options(&self) -> &KubernetesOptions {
        &self.options
    }
}

/// A runtime for one blocking call into the async client.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            Error::new(
                ExitCode::Resource,
                format!("cannot start the Kubernetes client's runtime: {e}"),
            )
        })
}

impl BuildBackend for KubernetesBackend {
    fn build(
        &self,
        request: &BuildRequest,
        progress: &dyn ProgressSink,
    ) -> Result<BuildOutcome, Error> {
        let result = self.build_inner(request, progress);
        progress.finish();
        result
    }
}

impl KubernetesBackend {
    fn build_inner(
        &self,
        request: &BuildRequest,
        progress: &dyn ProgressSink,
    ) -> Result<BuildOutcome, Error> {
        // Everything that blocks (reading the context and secrets, the registry lookup) runs
        // before the async part: the registry client has its own runtime.
        let prepared = match run::prepare(self, request, progress)? {
            run::Prepared::Exists(outcome) => {
                run::write_result_files(request, &outcome)?;
                return Ok(outcome);
            }
            run::Prepared::Build(p) => p,
        };
        let built = runtime()?.block_on(run::run(self, &prepared, progress))?;
        let outcome = match built.as_slice() {
            [(_, one)] => one.clone(),
            _ => {
                // Multi-platform: the Jobs pushed one image each; the index ties them up.
                let registry = self.registry.as_deref().ok_or_else(|| {
                    Error::new(
                        ExitCode::Configuration,
                        "a multi-platform build needs a registry client to push the index \
                         (KubernetesBackend::with_registry)",
                    )
                })?;
                run::push_index(registry, &prepared.request, &built)?
            }
        };
        run::write_result_files(request, &outcome)?;
        Ok(outcome)
    }
}
