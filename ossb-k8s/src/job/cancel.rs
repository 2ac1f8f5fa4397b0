//! The cancellation token a build polls.

use ossb_core::{Error, ExitCode};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why a build was cancelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelReason {
    /// A signal arrived (`SIGTERM`, `SIGINT`).
    Signal(&'static str),
    /// The build ran past its time limit.
    Timeout(Duration),
    /// Cancelled by the program.
    Requested(String),
}

impl CancelReason {
    /// 7 for a timeout, 8 otherwise.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CancelReason::Timeout(_) => ExitCode::Timeout,
            _ => ExitCode::Cancelled,
        }
    }
}

impl fmt::Display for CancelReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CancelReason::Signal(s) => write!(f, "received {s}"),
            CancelReason::Timeout(d) => write!(
                f,
                "build exceeded its time limit of {}; raise the timeout or make the build faster",
                super::format_duration(*d)
            ),
            CancelReason::Requested(why) => f.write_str(why),
        }
    }
}

type Callback = Box<dyn Fn(&CancelReason) + Send + Sync>;

#[derive(Default)]
struct Inner {
    flag: AtomicBool,
    reason: Mutex<Option<CancelReason>>,
    callbacks: Mutex<Vec<Callback>>,
}

/// A shared cancellation flag. Cheap to clone and to poll from any thread.
///
/// ```
/// use ossb_k8s::job::{CancelReason, CancelToken};
/// let token = CancelToken::new();
/// assert!(token.check().is_ok());
/// token.cancel(CancelReason::Signal("SIGTERM"));
/// assert_eq!(token.check().unwrap_err().exit_code().code(), 8);
/// ```
#[derive(Clone, Default)]
pub struct CancelToken(Arc<Inner>);

impl fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelToken")
            .field("reason", &self.reason())
            .finish()
    }
}

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        CancelToken::default()
    }

    /// True once cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.0.flag.load(Ordering::Acquire)
    }

    /// The reason, once cancelled.
    pub fn reason(&self) -> Option<CancelReason> {
        self.0.reason.lock().ok().and_then(|r| r.clone())
    }

    /// Cancel with `reason`; only the first call counts (returns false for later ones). Runs
    /// the `on_cancel` callbacks on the calling thread.
    pub fn cancel(&self, reason: CancelReason) -> bool {
        {
            let Ok(mut r) = self.0.reason.lock() else {
                return false;
            };
            if r.is_some() {
                return false;
            }
            *r = Some(reason.clone());
            self.0.flag.store(true, Ordering::Release);
        }
        if let Ok(cbs) = self.0.callbacks.lock() {
            for cb in cbs.iter() {
                cb(&reason);
            }
        }
        true
    }

    /// Call `callback` when cancelled (at once if already cancelled). Use it to kill a child
    /// process or close a connection the build is blocked on.
    pub fn on_cancel(&self, callback: impl Fn(&CancelReason) + Send + Sync + 'static) {
        if let Some(reason) = self.reason() {
            callback(&reason);
            return;
        }
        if let Ok(mut cbs) = self.0.callbacks.lock() {
            cbs.push(Box::new(callback));
        }
    }

    /// `Ok(())`, or the error to return from the build: exit code 8 (cancelled) or 7 (timeout).
    pub fn check(&self) -> Result<(), Error> {
        match self.reason() {
            None => Ok(()),
            Some(r) => Err(Error::new(r.exit_code(), format!("build cancelled: {r}"))),
        }
    }
}
