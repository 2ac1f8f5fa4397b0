//! OCI image types, the content store, layers and outputs.
//!
//! The flow of a build's output: the executor hands [`entry::Entry`] lists to
//! [`layer::write_layer`], which streams one deterministic tar through compression into a
//! verified [`store::Store`] blob; [`builder::ImageBuilder`] adds config and manifest blobs;
//! [`layout`] and [`archive`] export the result as an OCI layout (dir or tar) or a
//! `docker load`-able archive.

pub mod annotations;
pub mod archive;
pub mod builder;
pub mod compress;
pub mod digest;
pub mod entry;
pub mod error;
pub mod index;
pub mod layer;
pub mod layout;
pub mod oci;
pub mod store;

pub use digest::Digest;
pub use error::ImageError;
pub use store::{BlobWriter, Store};
