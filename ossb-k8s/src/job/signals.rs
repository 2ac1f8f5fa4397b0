//! SIGTERM/SIGINT delivered to a thread through a self-pipe.
//!
//! The handler only writes the signal number to a non-blocking pipe (async-signal-safe);
//! a normal thread reads the pipe and does the real work. This is the only `unsafe` in the
//! crate: installing a handler with `sigaction` and calling `write` from it.
#![allow(unsafe_code)]

use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};

/// The write end of the pipe, read by the handler; -1 when not installed.
static WRITE_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    let fd = WRITE_FD.load(Ordering::Relaxed);
    if fd < 0 {
        return;
    }
    let byte = sig as u8;
    // SAFETY: errno is thread-local; we save and restore it so the interrupted code sees its
    // own value. `write` is async-signal-safe; the fd stays open for the process's lifetime.
    unsafe {
        let errno = libc::__errno_location();
        let saved = *errno;
        libc::write(fd, (&byte as *const u8).cast(), 1);
        *errno = saved;
    }
}

/// The name of a signal number this module handles.
pub(crate) fn name(sig: u8) -> &'static str {
    match i32::from(sig) {
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        _ => "signal",
    }
}

/// Install handlers for SIGTERM and SIGINT and return the read end of the pipe; each byte
/// read is a signal number. Fails when already installed in this process.
pub(crate) fn install() -> std::io::Result<OwnedFd> {
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    rustix::fs::fcntl_setfl(&write, rustix::fs::OFlags::NONBLOCK)?;
    let raw = write.into_raw_fd();
    if WRITE_FD
        .compare_exchange(-1, raw, Ordering::SeqCst, Ordering::SeqCst)
        .is_err()
    {
        // SAFETY: `raw` came from `into_raw_fd` above and is owned by nothing else.
        drop(unsafe { OwnedFd::from_raw_fd(raw) });
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "signal handlers are already installed in this process",
        ));
    }
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: a zeroed sigaction is valid; the handler is an `extern "C" fn(c_int)` that
        // only does async-signal-safe work.
        let rc = unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            act.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut act.sa_mask);
            libc::sigaction(sig, &act, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(read)
}
