//! OCI image types, the content store, layers and outputs.

pub mod entry;
