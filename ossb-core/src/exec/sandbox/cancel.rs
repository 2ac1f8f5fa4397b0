//! Cancellation of a running step.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A handle that cancels the step(s) it is passed to, from any thread.
///
/// Cancelling kills the step's PID namespace (every process of the step) and its init; the
/// step's mount namespace dies with them. Clones share the same state.
#[derive(Debug, Clone)]
pub struct CancelToken {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cancelled: AtomicBool,
    wake_read: OwnedFd,
    wake_write: OwnedFd,
}

impl CancelToken {
    /// A new token, not cancelled.
    pub fn new() -> std::io::Result<Self> {
        let (r, w) = rustix::pipe::pipe_with(
            rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK,
        )?;
        Ok(CancelToken {
            inner: Arc::new(Inner {
                cancelled: AtomicBool::new(false),
                wake_read: r,
                wake_write: w,
            }),
        })
    }

    /// Cancels: running steps are killed, later steps fail at once with `Cancelled`.
    pub fn cancel(&self) {
        if !self.inner.cancelled.swap(true, Ordering::SeqCst) {
            // A full pipe also wakes the poller, so a failed write is harmless.
            let _ = rustix::io::write(&self.inner.wake_write, b"x");
        }
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::SeqCst)
    }

    /// The fd that becomes readable when cancelled (for `poll`).
    pub(crate) fn wake_fd(&self) -> BorrowedFd<'_> {
        self.inner.wake_read.as_fd()
    }
}
