//! The seccomp filter of ownership emulation (single-id mappings only).
//!
//! The step's PID 1 installs, right before `execve`, a filter that sends the ownership calls
//! (`chown`, `fchown`, `lchown`, `fchownat`) and the stat family (`stat`, `lstat`, `fstat`,
//! `newfstatat`, `statx`) to a user-space supervisor (`SECCOMP_RET_USER_NOTIF`) and allows
//! everything else. The filter is inherited by every process of the step.
//!
//! The listener fd goes to the supervisor, a thread of the sandbox init (see
//! [`super::supervisor`]): PID 1 writes the fd *number* on a socket shared with the init, the
//! init copies the fd out of PID 1 with `pidfd_getfd` and acknowledges, then PID 1 closes its
//! copy and executes the command. The init runs in the same user and mount namespaces as the
//! step (and, after `pivot_root`, has the same root), so the supervisor resolves paths exactly
//! as the step does.

use std::io::{Read, Write};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

/// `AUDIT_ARCH_*` of the build target (`<linux/audit.h>`).
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;

/// Syscall numbers the supervisor handles on this architecture.
pub(super) mod nr {
    /// `chown(path, uid, gid)` (x86_64 only).
    #[cfg(target_arch = "x86_64")]
    pub const CHOWN: i64 = 92;
    /// `fchown(fd, uid, gid)`.
    #[cfg(target_arch = "x86_64")]
    pub const FCHOWN: i64 = 93;
    /// `lchown(path, uid, gid)` (x86_64 only).
    #[cfg(target_arch = "x86_64")]
    pub const LCHOWN: i64 = 94;
    /// `fchownat(dirfd, path, uid, gid, flags)`.
    #[cfg(target_arch = "x86_64")]
    pub const FCHOWNAT: i64 = 260;
    /// `stat(path, buf)` (x86_64 only).
    #[cfg(target_arch = "x86_64")]
    pub const STAT: i64 = 4;
    /// `fstat(fd, buf)`.
    #[cfg(target_arch = "x86_64")]
    pub const FSTAT: i64 = 5;
    /// `lstat(path, buf)` (x86_64 only).
    #[cfg(target_arch = "x86_64")]
    pub const LSTAT: i64 = 6;
    /// `newfstatat(dirfd, path, buf, flags)`.
    #[cfg(target_arch = "x86_64")]
    pub const NEWFSTATAT: i64 = 262;
    /// `statx(dirfd, path, flags, mask, buf)`.
    #[cfg(target_arch = "x86_64")]
    pub const STATX: i64 = 332;

    /// aarch64 has no `chown`, `lchown`, `stat` or `lstat`; the sentinels never match.
    #[cfg(target_arch = "aarch64")]
    pub const CHOWN: i64 = -1;
    #[cfg(target_arch = "aarch64")]
    pub const FCHOWN: i64 = 55;
    #[cfg(target_arch = "aarch64")]
    pub const LCHOWN: i64 = -1;
    #[cfg(target_arch = "aarch64")]
    pub const FCHOWNAT: i64 = 54;
    #[cfg(target_arch = "aarch64")]
    pub const STAT: i64 = -1;
    #[cfg(target_arch = "aarch64")]
    pub const FSTAT: i64 = 80;
    #[cfg(target_arch = "aarch64")]
    pub const LSTAT: i64 = -1;
    #[cfg(target_arch = "aarch64")]
    pub const NEWFSTATAT: i64 = 79;
    #[cfg(target_arch = "aarch64")]
    pub const STATX: i64 = 291;

    /// Every intercepted call that exists here.
    pub fn all() -> Vec<i64> {
        [
            CHOWN, FCHOWN, LCHOWN, FCHOWNAT, STAT, FSTAT, LSTAT, NEWFSTATAT, STATX,
        ]
        .into_iter()
        .filter(|n| *n >= 0)
        .collect()
    }
}

/// Why the filter could not be installed or handed over.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The kernel refused the filter (too old for user notification, or seccomp is forbidden).
    #[error(
        "the kernel refused a seccomp user-notification filter ({0}); ownership emulation needs \
         Linux 5.6 or later and a seccomp profile that allows seccomp(2); chown to ids other \
         than 0 fails in this step"
    )]
    Install(std::io::Error),
    /// The listener could not be passed to the supervisor.
    #[error(
        "cannot hand the seccomp listener to the supervisor ({0}); pidfd_getfd needs Linux 5.6 \
         or later"
    )]
    Handover(std::io::Error),
}

/// The classic BPF program: arch check, then one `JEQ` per syscall.
fn program(calls: &[i64]) -> Vec<libc::sock_filter> {
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    // offsetof(struct seccomp_data, nr / arch)
    const OFF_NR: u32 = 0;
    const OFF_ARCH: u32 = 4;
    let n = calls.len();
    let stmt = |code, k| libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let mut p = vec![
        stmt(LD_W_ABS, OFF_ARCH),
        libc::sock_filter {
            code: JEQ_K,
            jt: 0,
            jf: (n + 1) as u8,
            k: AUDIT_ARCH,
        },
        stmt(LD_W_ABS, OFF_NR),
    ];
    for (i, c) in calls.iter().enumerate() {
        p.push(libc::sock_filter {
            code: JEQ_K,
            jt: (n - i) as u8,
            jf: 0,
            k: *c as u32,
        });
    }
    p.push(stmt(RET_K, libc::SECCOMP_RET_ALLOW));
    p.push(stmt(RET_K, libc::SECCOMP_RET_USER_NOTIF));
    p
}

/// Installs the filter on the calling thread; returns the listener fd.
///
/// Without `no_new_privs` first (the step's PID 1 is root of its user namespace, so it may
/// install filters and setuid binaries keep working); only when the kernel asks for it
/// (`EACCES`) is `PR_SET_NO_NEW_PRIVS` set.
#[allow(unsafe_code)]
pub(super) fn install() -> Result<OwnedFd, SeccompError> {
    let calls = nr::all();
    let filter = program(&calls);
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    let seccomp = || {
        // SAFETY: `prog` points at `filter`, which lives until the call returns; the kernel
        // copies the program.
        unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
                &prog as *const libc::sock_fprog,
            )
        }
    };
    let mut rc = seccomp();
    if rc < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EACCES) {
        // SAFETY: prctl(PR_SET_NO_NEW_PRIVS, 1) only sets a flag of this process.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(SeccompError::Install(std::io::Error::last_os_error()));
        }
        rc = seccomp();
    }
    if rc < 0 {
        return Err(SeccompError::Install(std::io::Error::last_os_error()));
    }
    // SAFETY: a successful seccomp(NEW_LISTENER) returns a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(rc as i32) })
}

/// PID 1 side of the hand-over: send the listener's fd number (or the install error as a
/// negative errno), wait for the init's acknowledgement.
pub(super) fn send_listener(
    sock: &mut UnixStream,
    listener: Result<&OwnedFd, &SeccompError>,
) -> Result<(), SeccompError> {
    use std::os::fd::AsRawFd;
    let word: i32 = match listener {
        Ok(fd) => fd.as_fd().as_raw_fd(),
        Err(SeccompError::Install(e) | SeccompError::Handover(e)) => {
            -e.raw_os_error().unwrap_or(libc::ENOSYS)
        }
    };
    sock.write_all(&word.to_le_bytes())
        .map_err(SeccompError::Handover)?;
    if word < 0 {
        return Ok(());
    }
    let mut ack = [0u8; 3];
    sock.read_exact(&mut ack).map_err(SeccompError::Handover)?;
    if ack[0] == 1 {
        return Ok(());
    }
    let mut why = vec![0u8; usize::from(u16::from_le_bytes([ack[1], ack[2]]))];
    sock.read_exact(&mut why).map_err(SeccompError::Handover)?;
    Err(SeccompError::Handover(std::io::Error::other(
        String::from_utf8_lossy(&why).into_owned(),
    )))
}

/// What the init learned from PID 1.
pub(super) enum Received {
    /// The listener, copied into the init.
    Listener(OwnedFd),
    /// PID 1 could not install the filter (errno).
    NotInstalled,
    /// PID 1 ended before the hand-over (its setup failed).
    Gone,
}

/// Init side of the hand-over: read the fd number and copy the fd out of PID 1. The caller
/// then starts the supervisor and [`acknowledge`]s; PID 1 waits for that before `execve`.
pub(super) fn receive_listener(
    sock: &mut UnixStream,
    child: rustix::process::Pid,
) -> Result<Received, SeccompError> {
    let mut word = [0u8; 4];
    match sock.read_exact(&mut word) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(Received::Gone),
        Err(e) => return Err(SeccompError::Handover(e)),
    }
    let n = i32::from_le_bytes(word);
    if n < 0 {
        return Ok(Received::NotInstalled);
    }
    let pidfd = rustix::process::pidfd_open(child, rustix::process::PidfdFlags::empty())
        .map_err(|e| SeccompError::Handover(e.into()))?;
    let fd = rustix::process::pidfd_getfd(&pidfd, n, rustix::process::PidfdGetfdFlags::empty())
        .map_err(|e| SeccompError::Handover(e.into()))?;
    Ok(Received::Listener(fd))
}

/// Tells PID 1 whether the supervisor runs (an error makes PID 1 fail the step's setup with
/// it, since its filter would make every stat fail with `ENOSYS`).
pub(super) fn acknowledge(
    sock: &mut UnixStream,
    res: Result<(), &str>,
) -> Result<(), SeccompError> {
    let mut buf = Vec::new();
    match res {
        Ok(()) => buf.extend_from_slice(&[1, 0, 0]),
        Err(why) => {
            let why = &why.as_bytes()[..why.len().min(1024)];
            buf.push(0);
            buf.extend_from_slice(&(why.len() as u16).to_le_bytes());
            buf.extend_from_slice(why);
        }
    }
    sock.write_all(&buf).map_err(SeccompError::Handover)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_jumps_land_on_the_returns() {
        let calls = nr::all();
        let p = program(&calls);
        let n = calls.len();
        assert_eq!(p.len(), n + 5);
        // The arch mismatch jumps to ALLOW.
        assert_eq!(2 + p[1].jf as usize, n + 3);
        for i in 0..n {
            let at = 3 + i;
            assert_eq!(at + 1 + p[at].jt as usize, n + 4);
        }
        assert_eq!(p[n + 3].k, libc::SECCOMP_RET_ALLOW);
        assert_eq!(p[n + 4].k, libc::SECCOMP_RET_USER_NOTIF);
    }
}
