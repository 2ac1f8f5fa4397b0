//! The ownership supervisor: answers the seccomp notifications of [`super::seccomp`].
//!
//! It is a thread of the sandbox init, which shares the step's user and mount namespaces and
//! root but stays in the parent PID namespace (notification pids are pids of that namespace,
//! looked up in the host `/proc` the init opened before the step's PID 1 hid it).
//!
//! - `chown`/`fchown`/`lchown`/`fchownat`: the target is resolved in the caller's context
//!   (absolute paths beneath the root, relative ones from `/proc/PID/cwd` or
//!   `/proc/PID/fd/N`, the path read with `process_vm_readv`, then
//!   `SECCOMP_IOCTL_NOTIF_ID_VALID` against pid reuse). An owner the namespace can represent
//!   (the single mapped id, 0) clears the record and lets the kernel do the real chown; any
//!   other owner is recorded in the file's `user.rootlesscontainers` xattr (regular files and
//!   directories) and the call succeeds. `-1` keeps the current (emulated) id. As the kernel
//!   does, set-user-id and executable set-group-id bits of non-directories are cleared.
//!   Symlinks and special files cannot carry `user.*` xattrs: their owners go into a side table
//!   keyed by their path in the container, reported to the parent (`FromInit::LinkOwner`) for
//!   the layer, and the node is touched so that the snapshot sees it changed.
//! - The stat family: when the file has no record the kernel runs the call
//!   (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`); otherwise the supervisor stats the resolved file
//!   and writes the result, with the recorded owner, into the caller's buffer
//!   (`process_vm_writev`).
//!
//! Whatever cannot be resolved falls back to the kernel (`CONTINUE`), which then reports the
//! real error. The supervisor is not a security boundary: everything it does on behalf of the
//! step, the step may do itself (both are root of the same user namespace).

use super::ownerattr::{ROOTLESS_XATTR, decode_owner, encode_owner};
use super::protocol::{self, FromInit};
use super::seccomp::nr;
use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

/// How many failed receives in a row end the supervision.
const MAX_FAILURES: u32 = 100;

/// The supervisor's state.
pub(super) struct Supervisor {
    listener: OwnedFd,
    /// The host `/proc` (the init's PID namespace); also the supervisor's working directory,
    /// so `self/fd/N` names its own fds for the path-based xattr calls.
    proc: OwnedFd,
    /// The step's root.
    root: OwnedFd,
    mapped_uids: Vec<(u32, u32)>,
    mapped_gids: Vec<(u32, u32)>,
    /// Owners of symlinks and special files, by absolute path in the container.
    links: HashMap<String, (u32, u32)>,
    /// Notifications received.
    notifications: u64,
    /// Calls answered by the supervisor itself (chowns recorded, stats emulated).
    emulated: u64,
}

/// What to answer.
enum Reply {
    /// Let the kernel run the call.
    Continue,
    /// The call succeeded with this value.
    Value(i64),
    /// The call failed with this errno.
    Errno(i32),
}

/// Which file a call is about.
struct Target {
    dirfd: i32,
    path: Vec<u8>,
    follow: bool,
    empty_ok: bool,
}

/// What a call wants.
enum Op {
    Chown { uid: u32, gid: u32 },
    Stat { buf: u64 },
    Statx { flags: i32, mask: u32, buf: u64 },
}

fn errno(e: rustix::io::Errno) -> i32 {
    e.raw_os_error()
}

impl Supervisor {
    /// Prepares the supervisor of the step whose PID 1 is `child`: opens the step's root,
    /// moves the init into it (`chroot`, so relative lookups and absolute symlinks resolve as
    /// in the step) and makes the host `/proc` the working directory.
    pub(super) fn new(
        listener: OwnedFd,
        proc: OwnedFd,
        child: rustix::process::Pid,
        mapped_uids: Vec<(u32, u32)>,
        mapped_gids: Vec<(u32, u32)>,
    ) -> Result<Supervisor, String> {
        let child = child.as_raw_nonzero().get();
        let root = rustix::fs::openat(
            &proc,
            format!("{child}/root"),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| format!("opening the step's root: {e}"))?;
        rustix::process::fchdir(&root).map_err(|e| format!("entering the step's root: {e}"))?;
        rustix::process::chroot(".").map_err(|e| format!("chroot into the step's root: {e}"))?;
        rustix::process::fchdir(&proc).map_err(|e| format!("entering /proc: {e}"))?;
        // Wake the supervisor on the target's CPU (Linux 6.6+); an optimisation only.
        set_sync_wakeup(&listener);
        Ok(Supervisor {
            listener,
            proc,
            root,
            mapped_uids,
            mapped_gids,
            links: HashMap::new(),
            notifications: 0,
            emulated: 0,
        })
    }

    /// Intercepted calls and how many of them the supervisor answered itself.
    pub(super) fn counts(&self) -> (u64, u64) {
        (self.notifications, self.emulated)
    }

    /// Answers notifications until PID 1 of the step (`child`) has exited.
    pub(super) fn serve_until_exit(&mut self, child: rustix::process::Pid) {
        use rustix::event::{PollFd, PollFlags};
        let pidfd = match rustix::process::pidfd_open(child, rustix::process::PidfdFlags::empty()) {
            Ok(fd) => fd,
            Err(e) => {
                warn(format!(
                    "the ownership supervisor cannot watch the step ({}); stat and chown calls \
                     of this step fail with ENOSYS",
                    std::io::Error::from(e)
                ));
                return;
            }
        };
        let mut failures = 0u32;
        loop {
            let mut fds = [
                PollFd::new(&self.listener, PollFlags::IN),
                PollFd::new(&pidfd, PollFlags::IN),
            ];
            match rustix::event::poll(&mut fds, None) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(1)),
            }
            let (notified, exited) = (
                fds[0].revents().contains(PollFlags::IN),
                !fds[1].revents().is_empty(),
            );
            if exited {
                return;
            }
            if !notified {
                if !fds[0].revents().is_empty() {
                    // No notification but HUP/ERR: no process uses the filter any more.
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                continue;
            }
            match self.recv() {
                Ok(n) => {
                    failures = 0;
                    self.notifications += 1;
                    let reply = self.handle(&n);
                    if !matches!(reply, Reply::Continue) {
                        self.emulated += 1;
                    }
                    self.send(n.id, reply);
                }
                Err(libc::EINTR) | Err(libc::ENOENT) => {}
                Err(e) => {
                    failures += 1;
                    if failures > MAX_FAILURES {
                        warn(format!(
                            "the ownership supervisor stopped: receiving a notification failed: \
                             {}; stat and chown calls of this step fail with ENOSYS",
                            std::io::Error::from_raw_os_error(e)
                        ));
                        return;
                    }
                }
            }
        }
    }

    #[allow(unsafe_code)]
    fn recv(&self) -> Result<libc::seccomp_notif, i32> {
        // SAFETY: seccomp_notif is plain old data; the kernel requires it zeroed.
        let mut n: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: the ioctl writes one seccomp_notif into `n`, which is large enough.
        let rc = unsafe {
            libc::ioctl(
                self.listener.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_RECV,
                &mut n as *mut libc::seccomp_notif,
            )
        };
        if rc == 0 {
            Ok(n)
        } else {
            Err(std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO))
        }
    }

    #[allow(unsafe_code)]
    fn send(&self, id: u64, reply: Reply) {
        let (val, error, flags) = match reply {
            Reply::Continue => (0, 0, libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32),
            Reply::Value(v) => (v, 0, 0),
            Reply::Errno(e) => (0, -e, 0),
        };
        let mut resp = libc::seccomp_notif_resp {
            id,
            val,
            error,
            flags,
        };
        // SAFETY: the ioctl reads one seccomp_notif_resp from `resp`. A failure (ENOENT: the
        // caller was killed meanwhile) needs no handling.
        unsafe {
            libc::ioctl(
                self.listener.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_SEND,
                &mut resp as *mut libc::seccomp_notif_resp,
            )
        };
    }

    /// Whether the notification is still pending (its task was not replaced by another).
    fn id_valid(&self, id: u64) -> bool {
        ioctl_u64(&self.listener, libc::SECCOMP_IOCTL_NOTIF_ID_VALID, id).is_ok()
    }

    fn handle(&mut self, n: &libc::seccomp_notif) -> Reply {
        let a = n.data.args;
        let nr = i64::from(n.data.nr);
        let flags_at = |x: u64| x as i32;
        let path_target = |dirfd: i32, addr: u64, follow: bool, empty_ok: bool| {
            read_path(n.pid, addr).map(|path| Target {
                dirfd,
                path,
                follow,
                empty_ok,
            })
        };
        let fd_target = |fd: u64| {
            Ok::<_, i32>(Target {
                dirfd: fd as i32,
                path: Vec::new(),
                follow: true,
                empty_ok: true,
            })
        };
        let nofollow = |f: i32| f & libc::AT_SYMLINK_NOFOLLOW == 0;
        let empty = |f: i32| f & libc::AT_EMPTY_PATH != 0;
        let (target, op) = match nr {
            x if x == nr::CHOWN || x == nr::LCHOWN => (
                path_target(libc::AT_FDCWD, a[0], x == nr::CHOWN, false),
                Op::Chown {
                    uid: a[1] as u32,
                    gid: a[2] as u32,
                },
            ),
            x if x == nr::FCHOWN => (
                fd_target(a[0]),
                Op::Chown {
                    uid: a[1] as u32,
                    gid: a[2] as u32,
                },
            ),
            x if x == nr::FCHOWNAT => {
                let f = flags_at(a[4]);
                (
                    path_target(a[0] as i32, a[1], nofollow(f), empty(f)),
                    Op::Chown {
                        uid: a[2] as u32,
                        gid: a[3] as u32,
                    },
                )
            }
            x if x == nr::STAT || x == nr::LSTAT => (
                path_target(libc::AT_FDCWD, a[0], x == nr::STAT, false),
                Op::Stat { buf: a[1] },
            ),
            x if x == nr::FSTAT => (fd_target(a[0]), Op::Stat { buf: a[1] }),
            x if x == nr::NEWFSTATAT => {
                let f = flags_at(a[3]);
                (
                    path_target(a[0] as i32, a[1], nofollow(f), empty(f)),
                    Op::Stat { buf: a[2] },
                )
            }
            x if x == nr::STATX => {
                let f = flags_at(a[2]);
                (
                    path_target(a[0] as i32, a[1], nofollow(f), empty(f)),
                    Op::Statx {
                        flags: f,
                        mask: a[3] as u32,
                        buf: a[4],
                    },
                )
            }
            _ => return Reply::Continue,
        };
        let Ok(target) = target else {
            return Reply::Continue;
        };
        let Ok(fd) = self.resolve(n.pid, &target) else {
            return Reply::Continue;
        };
        match op {
            Op::Chown { uid, gid } => self.chown(n, &fd, uid, gid),
            Op::Stat { buf } => self.stat(n, &fd, buf),
            Op::Statx { flags, mask, buf } => self.statx(n, &fd, flags, mask, buf),
        }
    }

    /// Opens (`O_PATH`) the file a call names, as the calling process `pid` would find it.
    fn resolve(&self, pid: u32, t: &Target) -> rustix::io::Result<OwnedFd> {
        let mut flags = OFlags::PATH | OFlags::CLOEXEC;
        if !t.follow {
            flags |= OFlags::NOFOLLOW;
        }
        if t.path.is_empty() {
            if !t.empty_ok {
                return Err(rustix::io::Errno::NOENT);
            }
            return self.base(pid, t.dirfd, OFlags::PATH | OFlags::CLOEXEC);
        }
        if t.path[0] == b'/' {
            return rustix::fs::openat2(
                &self.root,
                t.path.as_slice(),
                flags,
                Mode::empty(),
                ResolveFlags::IN_ROOT,
            );
        }
        let base = self.base(pid, t.dirfd, OFlags::PATH | OFlags::CLOEXEC)?;
        rustix::fs::openat(&base, t.path.as_slice(), flags, Mode::empty())
    }

    /// The directory (or file) `dirfd` of process `pid` names (`AT_FDCWD`: its cwd).
    fn base(&self, pid: u32, dirfd: i32, flags: OFlags) -> rustix::io::Result<OwnedFd> {
        let p = if dirfd == libc::AT_FDCWD {
            format!("{pid}/cwd")
        } else if dirfd >= 0 {
            format!("{pid}/fd/{dirfd}")
        } else {
            return Err(rustix::io::Errno::BADF);
        };
        rustix::fs::openat(&self.proc, p, flags, Mode::empty())
    }

    /// The recorded owner of an open file, `None` when it has none (fields: `None` = real id).
    fn recorded(&self, fd: &OwnedFd) -> Option<(Option<u32>, Option<u32>)> {
        let mut buf = [0u8; 64];
        match rustix::fs::getxattr(self_fd(fd), ROOTLESS_XATTR, &mut buf[..]) {
            Ok(n) => Some(decode_owner(&buf[..n])),
            Err(_) if !self.links.is_empty() => {
                let path = self.container_path(fd)?;
                self.links.get(&path).map(|&(u, g)| (Some(u), Some(g)))
            }
            Err(_) => None,
        }
    }

    /// The absolute path of an open file in the container.
    fn container_path(&self, fd: &OwnedFd) -> Option<String> {
        let p = rustix::fs::readlinkat(&self.proc, self_fd(fd), Vec::new()).ok()?;
        p.into_string().ok().filter(|p| p.starts_with('/'))
    }

    fn mapped(ranges: &[(u32, u32)], id: u32) -> bool {
        ranges
            .iter()
            .any(|&(s, c)| id >= s && u64::from(id - s) < u64::from(c))
    }

    fn chown(&mut self, n: &libc::seccomp_notif, fd: &OwnedFd, uid: u32, gid: u32) -> Reply {
        if !self.id_valid(n.id) {
            return Reply::Continue;
        }
        let st = match rustix::fs::statat(fd, "", AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(e) => return Reply::Errno(errno(e)),
        };
        let rec = self.recorded(fd);
        let cur = match rec {
            Some((u, g)) => (u.unwrap_or(st.st_uid), g.unwrap_or(st.st_gid)),
            None => (st.st_uid, st.st_gid),
        };
        let new = (
            if uid == u32::MAX { cur.0 } else { uid },
            if gid == u32::MAX { cur.1 } else { gid },
        );
        let fmt = st.st_mode & libc::S_IFMT;
        let xattr_ok = fmt == libc::S_IFREG || fmt == libc::S_IFDIR;
        if Self::mapped(&self.mapped_uids, new.0) && Self::mapped(&self.mapped_gids, new.1) {
            // Representable: forget the record and let the kernel apply the real owner.
            if rec.is_some() {
                if xattr_ok {
                    let _ = rustix::fs::removexattr(self_fd(fd), ROOTLESS_XATTR);
                } else if let Some(path) = self.container_path(fd) {
                    self.links.remove(&path);
                    report(FromInit::LinkOwner {
                        path,
                        uid: new.0,
                        gid: new.1,
                    });
                }
            }
            // The kernel resolves the path again; with the ids mapped it succeeds.
            return Reply::Continue;
        }
        if xattr_ok {
            let value = encode_owner(new.0, new.1);
            if let Err(e) = rustix::fs::setxattr(
                self_fd(fd),
                ROOTLESS_XATTR,
                &value,
                rustix::fs::XattrFlags::empty(),
            ) {
                let path = self.container_path(fd).unwrap_or_else(|| "?".into());
                warn(format!(
                    "chown {}:{} {path}: the owner cannot be recorded ({}); the call fails",
                    new.0,
                    new.1,
                    std::io::Error::from(e)
                ));
                return Reply::Errno(errno(e));
            }
            // The kernel clears set-user-id and group-executable set-group-id on chown.
            let kill = if fmt == libc::S_IFDIR {
                0
            } else {
                let sgid = if st.st_mode & libc::S_IXGRP != 0 {
                    libc::S_ISGID
                } else {
                    0
                };
                st.st_mode & (libc::S_ISUID | sgid)
            };
            if kill != 0 {
                let _ = rustix::fs::chmod(
                    self_fd(fd),
                    Mode::from_raw_mode(st.st_mode & 0o7777 & !kill),
                );
            }
            return Reply::Value(0);
        }
        let Some(path) = self.container_path(fd) else {
            return Reply::Errno(libc::EINVAL);
        };
        // Touch the node (a no-op chown) so that the overlay copies it up and the scan
        // snapshotter sees a new ctime: the layer then has an entry to carry the owner.
        let _ = rustix::fs::chownat(fd, "", None, None, AtFlags::EMPTY_PATH);
        self.links.insert(path.clone(), new);
        report(FromInit::LinkOwner {
            path,
            uid: new.0,
            gid: new.1,
        });
        Reply::Value(0)
    }

    #[allow(unsafe_code)]
    fn stat(&self, n: &libc::seccomp_notif, fd: &OwnedFd, buf: u64) -> Reply {
        let Some((u, g)) = self.recorded(fd) else {
            return Reply::Continue;
        };
        // SAFETY: `struct stat` is plain old data.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: newfstatat writes one `struct stat` (the kernel's layout is libc's on the
        // supported 64-bit targets) into `st`; "" with AT_EMPTY_PATH names the fd itself.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_newfstatat,
                fd.as_raw_fd(),
                c"".as_ptr(),
                &mut st as *mut libc::stat,
                libc::AT_EMPTY_PATH,
            )
        };
        if rc != 0 {
            return Reply::Continue;
        }
        if let Some(u) = u {
            st.st_uid = u;
        }
        if let Some(g) = g {
            st.st_gid = g;
        }
        if !self.id_valid(n.id) {
            return Reply::Continue;
        }
        // SAFETY: viewing the initialised struct as bytes.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                (&st as *const libc::stat).cast::<u8>(),
                std::mem::size_of::<libc::stat>(),
            )
        };
        match write_mem(n.pid, buf, bytes) {
            Ok(()) => Reply::Value(0),
            Err(e) => Reply::Errno(e),
        }
    }

    #[allow(unsafe_code)]
    fn statx(
        &self,
        n: &libc::seccomp_notif,
        fd: &OwnedFd,
        flags: i32,
        mask: u32,
        buf: u64,
    ) -> Reply {
        let Some((u, g)) = self.recorded(fd) else {
            return Reply::Continue;
        };
        // SAFETY: `struct statx` is plain old data.
        let mut stx: libc::statx = unsafe { std::mem::zeroed() };
        // SAFETY: statx writes one `struct statx` into `stx`; "" with AT_EMPTY_PATH names
        // the fd itself.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_statx,
                fd.as_raw_fd(),
                c"".as_ptr(),
                libc::AT_EMPTY_PATH | (flags & libc::AT_STATX_SYNC_TYPE),
                mask,
                &mut stx as *mut libc::statx,
            )
        };
        if rc != 0 {
            return Reply::Continue;
        }
        if let Some(u) = u {
            stx.stx_uid = u;
        }
        if let Some(g) = g {
            stx.stx_gid = g;
        }
        if !self.id_valid(n.id) {
            return Reply::Continue;
        }
        // SAFETY: viewing the initialised struct as bytes.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                (&stx as *const libc::statx).cast::<u8>(),
                std::mem::size_of::<libc::statx>(),
            )
        };
        match write_mem(n.pid, buf, bytes) {
            Ok(()) => Reply::Value(0),
            Err(e) => Reply::Errno(e),
        }
    }
}

/// `self/fd/N` (relative to the host `/proc`, the supervisor's working directory).
fn self_fd(fd: &OwnedFd) -> String {
    format!("self/fd/{}", fd.as_fd().as_raw_fd())
}

/// `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` (Linux 6.6+): the supervisor runs on the caller's CPU
/// while the caller waits, which saves a scheduler round trip per call. Optional.
#[allow(unsafe_code)]
fn set_sync_wakeup(listener: &OwnedFd) {
    const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: libc::c_ulong = 1;
    // SAFETY: this request takes the flags by value and touches no memory.
    unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS,
            SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP,
        )
    };
}

#[allow(unsafe_code)]
fn ioctl_u64(fd: &OwnedFd, req: libc::Ioctl, value: u64) -> Result<(), i32> {
    let mut v = value;
    // SAFETY: the request reads one u64 from `v`.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), req, &mut v as *mut u64) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO))
    }
}

/// Reads the NUL-terminated path at `addr` in process `pid` (at most `PATH_MAX` bytes),
/// one page-bounded chunk at a time so an unmapped next page does not fail the read.
#[allow(unsafe_code)]
fn read_path(pid: u32, addr: u64) -> Result<Vec<u8>, i32> {
    const PAGE: u64 = 4096;
    const MAX: usize = libc::PATH_MAX as usize;
    if addr == 0 {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let mut at = addr;
    let mut chunk = [0u8; PAGE as usize];
    while out.len() < MAX {
        let len = (PAGE - at % PAGE) as usize;
        let local = libc::iovec {
            iov_base: chunk.as_mut_ptr().cast(),
            iov_len: len,
        };
        let remote = libc::iovec {
            iov_base: at as *mut libc::c_void,
            iov_len: len,
        };
        // SAFETY: `local` covers `len` <= 4096 bytes of `chunk`; the remote range is only read
        // by the kernel, which checks it against the target's address space.
        let n = unsafe { libc::process_vm_readv(pid as libc::pid_t, &local, 1, &remote, 1, 0) };
        if n <= 0 {
            return Err(libc::EFAULT);
        }
        let got = &chunk[..n as usize];
        if let Some(end) = got.iter().position(|&b| b == 0) {
            out.extend_from_slice(&got[..end]);
            return Ok(out);
        }
        out.extend_from_slice(got);
        at += n as u64;
    }
    Err(libc::ENAMETOOLONG)
}

/// Writes `bytes` at `addr` in process `pid`; `Err(EFAULT)` when the range is not writable.
#[allow(unsafe_code)]
fn write_mem(pid: u32, addr: u64, bytes: &[u8]) -> Result<(), i32> {
    let local = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    // SAFETY: `local` covers `bytes`, which the kernel only reads; the remote range is checked
    // by the kernel against the target's address space.
    let n = unsafe { libc::process_vm_writev(pid as libc::pid_t, &local, 1, &remote, 1, 0) };
    if n == bytes.len() as isize {
        Ok(())
    } else {
        Err(libc::EFAULT)
    }
}

fn report(m: FromInit) {
    let _ = protocol::send(&mut std::io::stdout().lock(), &m);
}

fn warn(text: String) {
    report(FromInit::Warning { text });
}

#[cfg(test)]
mod tests {
    #[test]
    fn stat_layout_is_the_kernels() {
        #[cfg(target_arch = "x86_64")]
        assert_eq!(std::mem::size_of::<libc::stat>(), 144);
        #[cfg(target_arch = "aarch64")]
        assert_eq!(std::mem::size_of::<libc::stat>(), 128);
        assert_eq!(std::mem::size_of::<libc::statx>(), 256);
    }
}
