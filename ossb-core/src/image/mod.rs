//! OCI image types, the content store, layers and outputs (to be filled in).
