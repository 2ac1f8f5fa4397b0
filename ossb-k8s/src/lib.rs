//! Kubernetes integration for OSSB.
//!
//! - [`pod`]: running inside a pod: detection ([`pod::PodContext`]), discovery of registry
//!   credentials, build secrets, registry configuration and a build context at the documented
//!   `/var/run/secrets/...` and `/var/run/configmaps/...` paths (read through Kubernetes'
//!   atomic-writer `..data` layout), materialising a ConfigMap build context, and preparing the
//!   writable workspace with a free-space check.
//! - [`job`]: the job lifecycle: the status file (`/tmp/ossb-status.json`), cancellation on
//!   SIGTERM/SIGINT, a build timeout, cleanups, and the mapping of errors to exit codes.
//!
//! - [`backend`]: the cluster side: [`backend::KubernetesBackend`] sends a build to a cluster
//!   as a Job (context in ConfigMaps, watch, logs, cleanup), and `ossb k8s` operations.
//!
//! See `docs/kubernetes.md` for the operator's view of paths, variables, files and exit codes.
//!
//! ```
//! use ossb_k8s::pod::{PodPaths, discover};
//! let root = tempfile::tempdir().unwrap();
//! let paths = PodPaths::with_roots(root.path().join("secrets"), root.path().join("configmaps"));
//! let found = discover(&paths).unwrap();
//! assert!(found.registry_credentials.is_empty());
//! ```

pub mod backend;
pub mod job;
pub mod pod;
