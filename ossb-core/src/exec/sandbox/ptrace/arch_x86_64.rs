//! x86_64: syscall numbers, what each trapped call takes, and the registers.
//!
//! Everything architecture-specific of the ptrace sandbox is in this file; an aarch64 twin
//! (no `open`/`stat`/`chown`, `user_pt_regs` through `PTRACE_GETREGSET`) is left to do.

use super::table::{Call, Follow, PathArg, Post};

/// `AUDIT_ARCH_X86_64` (`<linux/audit.h>`).
pub const AUDIT_ARCH: u32 = 0xC000_003E;
/// Syscall numbers with this bit are the x32 ABI.
pub const X32_BIT: u32 = 0x4000_0000;

/// Syscall numbers the tracer needs by name.
pub mod nr {
    pub const EXECVE: u64 = 59;
}

const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
const AT_SYMLINK_FOLLOW: u64 = 0x400;
const IN_DONT_FOLLOW: u64 = 0x0200_0000;

const fn p(path: usize) -> PathArg {
    PathArg {
        dirfd: None,
        path,
        follow: Follow::Always,
    }
}
const fn pl(path: usize) -> PathArg {
    PathArg {
        dirfd: None,
        path,
        follow: Follow::Never,
    }
}
const fn at(dirfd: usize, path: usize, follow: Follow) -> PathArg {
    PathArg {
        dirfd: Some(dirfd),
        path,
        follow,
    }
}

/// What the tracer does with syscall `n` (`None`: the filter lets it through untrapped).
pub fn call(n: u64) -> Option<Call> {
    use Follow::*;
    use Post::*;
    let c = match n {
        2 => Call::Open(p(0), 1),                              // open(path, flags)
        257 => Call::Open(at(0, 1, Always), 2),                // openat(dirfd, path, flags)
        85 => Call::Paths([Some(p(0)), None], Plain),          // creat
        4 => Call::Paths([Some(p(0)), None], Stat(1, false)),  // stat
        6 => Call::Paths([Some(pl(0)), None], Stat(1, false)), // lstat
        262 => Call::Paths(
            [Some(at(0, 1, UnlessFlag(3, AT_SYMLINK_NOFOLLOW))), None],
            Stat(2, false),
        ), // newfstatat
        332 => Call::Paths(
            [Some(at(0, 1, UnlessFlag(2, AT_SYMLINK_NOFOLLOW))), None],
            Stat(4, true),
        ), // statx
        5 => Call::Fstat(0, 1),                                // fstat(fd, buf)
        21 => Call::Paths([Some(p(0)), None], Plain),          // access
        269 => Call::Paths([Some(at(0, 1, Always)), None], Plain), // faccessat
        439 => Call::Paths(
            [Some(at(0, 1, UnlessFlag(3, AT_SYMLINK_NOFOLLOW))), None],
            Plain,
        ), // faccessat2
        59 => Call::Exec {
            dirfd: None,
            path: 0,
            argv: 1,
            flags: None,
        },
        322 => Call::Exec {
            dirfd: Some(0),
            path: 1,
            argv: 2,
            flags: Some(4),
        },
        80 => Call::Paths([Some(p(0)), None], Plain), // chdir
        79 => Call::Getcwd(0, 1),                     // getcwd(buf, size)
        83 => Call::Paths([Some(pl(0)), None], Plain), // mkdir
        258 => Call::Paths([Some(at(0, 1, Never)), None], Plain), // mkdirat
        84 => Call::Paths([Some(pl(0)), None], Plain), // rmdir
        87 => Call::Paths([Some(pl(0)), None], Plain), // unlink
        263 => Call::Paths([Some(at(0, 1, Never)), None], Plain), // unlinkat
        82 => Call::Paths([Some(pl(0)), Some(pl(1))], Plain), // rename
        264 | 316 => Call::Paths([Some(at(0, 1, Never)), Some(at(2, 3, Never))], Plain), // renameat(2)
        86 => Call::Paths([Some(pl(0)), Some(pl(1))], Plain),                            // link
        265 => Call::Paths(
            [
                Some(at(0, 1, IfFlag(4, AT_SYMLINK_FOLLOW))),
                Some(at(2, 3, Never)),
            ],
            Plain,
        ), // linkat
        88 => Call::Paths([Some(pl(1)), None], Plain), // symlink(target, linkpath)
        266 => Call::Paths([Some(at(1, 2, Never)), None], Plain), // symlinkat(target, dirfd, linkpath)
        89 => Call::Paths([Some(pl(0)), None], Readlink(1, 2)),   // readlink
        267 => Call::Paths([Some(at(0, 1, Never)), None], Readlink(2, 3)), // readlinkat
        90 => Call::Paths([Some(p(0)), None], Plain),             // chmod
        268 => Call::Paths([Some(at(0, 1, Always)), None], Plain), // fchmodat
        452 => Call::Paths(
            [Some(at(0, 1, UnlessFlag(3, AT_SYMLINK_NOFOLLOW))), None],
            Plain,
        ), // fchmodat2
        92 => Call::Chown(p(0), 1),                               // chown(path, uid, gid)
        94 => Call::Chown(pl(0), 1),                              // lchown
        260 => Call::Chown(at(0, 1, UnlessFlag(4, AT_SYMLINK_NOFOLLOW)), 2), // fchownat
        93 => Call::Fchown(0, 1),                                 // fchown(fd, uid, gid)
        132 | 235 => Call::Paths([Some(p(0)), None], Plain),      // utime, utimes
        261 => Call::Paths([Some(at(0, 1, Always)), None], Plain), // futimesat
        280 => Call::Paths(
            [Some(at(0, 1, UnlessFlag(3, AT_SYMLINK_NOFOLLOW))), None],
            Plain,
        ), // utimensat (NULL path: futimens)
        133 => Call::Paths([Some(pl(0)), None], Plain),           // mknod
        259 => Call::Paths([Some(at(0, 1, Never)), None], Plain), // mknodat
        76 | 137 => Call::Paths([Some(p(0)), None], Plain),       // truncate, statfs
        188 | 191 | 194 | 197 => Call::Paths([Some(p(0)), None], Plain), // setxattr getxattr listxattr removexattr
        189 | 192 | 195 | 198 => Call::Paths([Some(pl(0)), None], Plain), // l*xattr
        254 => Call::Paths(
            [
                Some(PathArg {
                    dirfd: None,
                    path: 1,
                    follow: UnlessFlag(2, IN_DONT_FOLLOW),
                }),
                None,
            ],
            Plain,
        ), // inotify_add_watch(fd, path, mask)
        42 => Call::UnixAddr(1, 2, true),                                // connect(fd, addr, len)
        49 => Call::UnixAddr(1, 2, false),                               // bind(fd, addr, len)
        // Identity: answered by the tracer.
        102 => Call::GetId(IdKind::Uid),
        107 => Call::GetId(IdKind::Euid),
        104 => Call::GetId(IdKind::Gid),
        108 => Call::GetId(IdKind::Egid),
        118 => Call::GetRes(false),
        120 => Call::GetRes(true),
        115 => Call::GetGroups,
        116 => Call::SetGroups,
        105 => Call::SetId(SetKind::Uid),
        106 => Call::SetId(SetKind::Gid),
        113 => Call::SetId(SetKind::ReUid),
        114 => Call::SetId(SetKind::ReGid),
        117 => Call::SetId(SetKind::ResUid),
        119 => Call::SetId(SetKind::ResGid),
        122 => Call::SetId(SetKind::FsUid),
        123 => Call::SetId(SetKind::FsGid),
        // Calls naming another process: only the step's own processes exist for it.
        62 => Call::Pid(0, true),         // kill(pid, sig)
        200 | 129 => Call::Pid(0, false), // tkill(tid, sig), rt_sigqueueinfo(tgid, ...)
        234 | 297 => Call::Pid(0, false), // tgkill(tgid, ...), rt_tgsigqueueinfo(tgid, ...)
        310 | 311 => Call::Pid(0, false), // process_vm_readv/writev(pid, ...)
        434 | 302 => Call::Pid(0, false), // pidfd_open(pid, ...), prlimit64(pid, ...)
        101 => Call::Deny(libc::EPERM),   // ptrace: every process of the step is traced already
        // Calls that would reach the host's filesystem namespace: refused.
        // uselib acct swapon swapoff chroot mount umount2 pivot_root quotactl
        // name_to_handle_at open_by_handle_at fanotify_mark open_tree move_mount fsopen
        // fsconfig fsmount fspick mount_setattr quotactl_fd
        134 | 163 | 167 | 168 | 161 | 165 | 166 | 155 | 179 | 304 | 301 | 428 | 429 | 430 | 431
        | 432 | 433 | 442 | 443 => Call::Deny(libc::EPERM),
        // openat2 (callers fall back to openat), name_to_handle_at (callers fall back to
        // stat), and the path-taking calls newer than this table (*xattrat, file_*attr).
        437 | 303 | 463..=470 => Call::Deny(libc::ENOSYS),
        _ => return None,
    };
    Some(c)
}

use super::table::{IdKind, SetKind};

/// Every trapped syscall number (the filter's list).
pub fn trapped() -> Vec<u32> {
    (0..512u32)
        .filter(|n| call(u64::from(*n)).is_some())
        .collect()
}

/// Registers of a stopped tracee.
#[derive(Clone, Copy)]
pub struct Regs(pub libc::user_regs_struct);

impl Regs {
    /// The syscall number (at a syscall stop).
    pub fn nr(&self) -> u64 {
        self.0.orig_rax
    }
    /// Sets the syscall number (-1 skips the call).
    pub fn set_nr(&mut self, n: u64) {
        self.0.orig_rax = n;
    }
    /// Syscall argument `i` (0-5).
    pub fn arg(&self, i: usize) -> u64 {
        let r = &self.0;
        match i {
            0 => r.rdi,
            1 => r.rsi,
            2 => r.rdx,
            3 => r.r10,
            4 => r.r8,
            _ => r.r9,
        }
    }
    /// Sets argument `i`.
    pub fn set_arg(&mut self, i: usize, v: u64) {
        let r = &mut self.0;
        match i {
            0 => r.rdi = v,
            1 => r.rsi = v,
            2 => r.rdx = v,
            3 => r.r10 = v,
            4 => r.r8 = v,
            _ => r.r9 = v,
        }
    }
    /// The return value (at syscall exit).
    pub fn ret(&self) -> i64 {
        self.0.rax as i64
    }
    /// Sets the return value.
    pub fn set_ret(&mut self, v: i64) {
        self.0.rax = v as u64;
    }
    /// The stack pointer.
    pub fn sp(&self) -> u64 {
        self.0.rsp
    }
}

/// Bytes below the stack pointer a leaf function may use without moving it (System V ABI).
pub const RED_ZONE: u64 = 128;

/// `struct stat`: offsets of `st_uid` and `st_gid`.
pub const STAT_UID_GID: (usize, usize) = (28, 32);
