//! Running inside a Kubernetes pod: detection, discovery, context materialisation and the
//! workspace.

mod context;
mod discovery;
mod error;
mod materialize;
mod paths;
pub mod volume;
mod workspace;

pub use context::{LogLevel, PodContext, SERVICE_ACCOUNT_TOKEN};
pub use discovery::{Discovery, Password, RegistryConfigFile, RegistryCredential, discover};
pub use error::PodError;
pub use materialize::{MaterializedContext, materialize_context};
pub use paths::{
    CONFIGMAPS_ROOT_ENV, DEFAULT_CONFIGMAPS_ROOT, DEFAULT_SECRETS_ROOT, PodPaths, SECRETS_ROOT_ENV,
};
pub use workspace::{DEFAULT_WORKSPACE, WORKSPACE_ENV, Workspace, free_bytes, parse_size};
