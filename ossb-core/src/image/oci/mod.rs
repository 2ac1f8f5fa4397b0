//! OCI and Docker schema2 document types, serialised exactly as Docker and BuildKit write them
//! (Go struct field order, empty values omitted, maps sorted so the JSON is byte-stable).

pub mod config;
pub mod descriptor;
pub mod manifest;
pub mod media_types;
pub mod platform;
mod serde_helpers;

pub use config::{ContainerConfig, Empty, Healthcheck, History, ImageConfig, RootFs};
pub use descriptor::Descriptor;
pub use manifest::{Index, Manifest};
pub use platform::Platform;

use super::error::{ImageError, Result};

/// Serialises a document to compact JSON (the form that is hashed and stored).
pub fn to_json<T: serde::Serialize>(what: &str, value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| ImageError::json(what, e))
}

/// Parses a document from JSON.
pub fn from_json<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| ImageError::json(what, e))
}
