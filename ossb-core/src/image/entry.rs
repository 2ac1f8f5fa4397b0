//! Layer entries: what the executor hands to the layer writer, one per path in the layer.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// One path in a layer, with the metadata that ends up in the tar header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path inside the image, relative, `/`-separated, no leading `/`, no `.` or `..` parts
    /// (`usr/bin/env`). Directories carry no trailing slash.
    pub path: String,
    /// What the entry is.
    pub kind: EntryKind,
    /// Permission bits including setuid, setgid and sticky (`0o4755`); no file-type bits.
    pub mode: u32,
    /// Owner user id as stored in the layer.
    pub uid: u32,
    /// Owner group id as stored in the layer.
    pub gid: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// Nanoseconds part of the modification time (kept in a PAX header when non-zero).
    pub mtime_nsec: u32,
    /// Extended attributes (`security.capability`, `user.*`), written as PAX `SCHILY.xattr.*`.
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

/// The type of a layer entry, with its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file and where its bytes come from.
    File {
        /// The bytes.
        source: Source,
        /// The size in bytes (must match the source).
        size: u64,
    },
    /// A directory.
    Dir,
    /// A symbolic link to `target` (kept verbatim).
    Symlink {
        /// The link text.
        target: String,
    },
    /// A hard link to another path of the same layer (relative, like `path`).
    Hardlink {
        /// The path linked to.
        target: String,
    },
    /// A character device.
    CharDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A block device.
    BlockDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A named pipe.
    Fifo,
    /// An OCI whiteout: `path` was deleted (written as `dir/.wh.name`).
    Whiteout,
    /// An OCI opaque-directory marker: the lower contents of directory `path` are hidden
    /// (written as `path/.wh..wh..opq`).
    OpaqueDir,
}

/// Where a regular file's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A file on the host, already resolved safely beneath its root by the executor; the writer
    /// opens it with `O_NOFOLLOW | O_CLOEXEC`.
    Path(PathBuf),
    /// Bytes in memory (heredocs, small generated files).
    Bytes(Vec<u8>),
}
