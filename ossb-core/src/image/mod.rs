//! OCI image types, the content store, layers and outputs.

pub mod digest;
pub mod entry;
pub mod error;
pub mod oci;

pub use digest::Digest;
pub use error::ImageError;
pub mod archive;
pub mod builder;
pub mod compress;
pub mod layer;
pub mod layout;
pub mod store;

pub use store::{BlobWriter, Store};
