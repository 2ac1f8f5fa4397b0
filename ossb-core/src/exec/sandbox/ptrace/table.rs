//! The arch-independent description of a trapped syscall (the per-arch file maps numbers to
//! it).

/// Whether the last component of a path argument is followed when it is a symlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// Always (open without `O_NOFOLLOW`, stat, chdir, ...).
    Always,
    /// Never (lstat, unlink, rename, mkdir, readlink, ...).
    Never,
    /// Unless argument `.0` has bit `.1` (`AT_SYMLINK_NOFOLLOW`, `IN_DONT_FOLLOW`).
    UnlessFlag(usize, u64),
    /// Only when argument `.0` has bit `.1` (`linkat`'s `AT_SYMLINK_FOLLOW`).
    IfFlag(usize, u64),
}

/// One path argument: `path` is the argument index of the pointer, `dirfd` that of the
/// directory fd of the `*at` forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathArg {
    /// Index of the dirfd argument.
    pub dirfd: Option<usize>,
    /// Index of the path pointer argument.
    pub path: usize,
    /// Whether a final symlink is followed.
    pub follow: Follow,
}

/// What to fix after the kernel ran the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Post {
    /// Nothing.
    Plain,
    /// A `struct stat` (or `struct statx` when `.1`) at argument `.0`: report the emulated owner.
    Stat(usize, bool),
    /// `readlink` buffer and size arguments: translate `/proc` magic links back.
    Readlink(usize, usize),
}

/// Which id a `get*id` call returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    /// Real uid.
    Uid,
    /// Effective uid.
    Euid,
    /// Real gid.
    Gid,
    /// Effective gid.
    Egid,
}

/// Which `set*id` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetKind {
    /// setuid
    Uid,
    /// setgid
    Gid,
    /// setreuid
    ReUid,
    /// setregid
    ReGid,
    /// setresuid
    ResUid,
    /// setresgid
    ResGid,
    /// setfsuid
    FsUid,
    /// setfsgid
    FsGid,
}

/// How the tracer handles a trapped call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// Up to two path arguments, translated in place; then `Post`.
    Paths([Option<PathArg>; 2], Post),
    /// `open`/`openat`: the path and the index of the flags argument.
    Open(PathArg, usize),
    /// `fstat(fd, buf)`: argument indexes.
    Fstat(usize, usize),
    /// `execve`/`execveat`.
    Exec {
        /// dirfd argument (`execveat`).
        dirfd: Option<usize>,
        /// path argument.
        path: usize,
        /// argv argument.
        argv: usize,
        /// flags argument (`execveat`).
        flags: Option<usize>,
    },
    /// `getcwd(buf, size)`.
    Getcwd(usize, usize),
    /// `chown`-like: the path and the index of the uid argument (gid follows).
    Chown(PathArg, usize),
    /// `fchown(fd, uid, gid)`: fd and uid argument indexes.
    Fchown(usize, usize),
    /// `connect`/`bind`: sockaddr and length argument indexes, and whether a final symlink
    /// is followed (`connect` yes, `bind` creates the socket).
    UnixAddr(usize, usize, bool),
    /// `get*id`.
    GetId(IdKind),
    /// `getresuid` (`false`) / `getresgid` (`true`).
    GetRes(bool),
    /// `getgroups`.
    GetGroups,
    /// `setgroups`.
    SetGroups,
    /// `set*id`.
    SetId(SetKind),
    /// A call whose argument `.0` is a pid: allowed for the step's own processes (and 0),
    /// `ESRCH` for any other; with `.1` (`kill`), `-pgid` names a group and `-1` means every
    /// process of the step.
    Pid(usize, bool),
    /// Refused with this errno.
    Deny(i32),
}
