//! The executor: filesystem operations that never let a path escape ([`fsroot`]), layer
//! unpacking ([`unpack`]), build-context scanning ([`context`]), the COPY/ADD semantics that
//! turn sources into layer entries ([`copy`]), the image filesystem index ([`fsindex`]), the
//! RUN sandbox ([`sandbox`]) and snapshotters ([`snapshot`]), fast tree removal ([`remove`]),
//! environment probes ([`doctor`]), registry transfers ([`transfer`]) and the local build
//! driver ([`local`]).

pub mod archive_src;
pub mod binfmt;
pub mod blob_sources;
pub mod chmod;
pub mod compress;
pub mod context;
pub mod copy;
pub mod doctor;
pub mod error;
pub mod fsindex;
pub mod fsroot;
pub mod glob;
pub mod local;
pub mod passwd;
pub mod remove;
pub mod sandbox;
pub mod snapshot;
pub mod tarpath;
pub mod transfer;
pub mod unpack;

pub use chmod::Chmod;
pub use context::{ContextFile, ContextKind, ContextScan, scan_context};
pub use copy::{CopyRequest, copy_entries};
pub use error::FsError;
pub use fsroot::{OwnerOutcome, ResolveMode, Root};
pub use passwd::resolve_user;
pub use unpack::{UnpackReport, unpack_layer};
