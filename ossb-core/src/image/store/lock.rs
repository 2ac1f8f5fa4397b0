//! Advisory `flock` locks on a lock file, so several processes can share one store.
//!
//! Builds hold a [`StoreLock`] in shared mode while they add blobs that no reference points to
//! yet; garbage collection takes it in exclusive mode. Locks are per open file description, so a
//! process that holds a shared lock must drop it before it calls `gc` itself.

use std::fs::{File, OpenOptions};
use std::path::Path;

use rustix::fs::{FlockOperation, flock};

use crate::image::error::{ImageError, Result};

/// A held `flock` lock; released on drop (when the file is closed).
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
    exclusive: bool,
}

impl StoreLock {
    /// Blocks until the lock on `path` is held, shared or exclusive.
    pub fn acquire(path: &Path, exclusive: bool) -> Result<Self> {
        let file = open_lock_file(path)?;
        let op = if exclusive {
            FlockOperation::LockExclusive
        } else {
            FlockOperation::LockShared
        };
        flock(&file, op).map_err(|e| ImageError::io("lock", path, e.into()))?;
        Ok(StoreLock {
            _file: file,
            exclusive,
        })
    }

    /// Tries to take the lock without blocking; `Ok(None)` when another holder has it.
    pub fn try_acquire(path: &Path, exclusive: bool) -> Result<Option<Self>> {
        let file = open_lock_file(path)?;
        let op = if exclusive {
            FlockOperation::NonBlockingLockExclusive
        } else {
            FlockOperation::NonBlockingLockShared
        };
        match flock(&file, op) {
            Ok(()) => Ok(Some(StoreLock {
                _file: file,
                exclusive,
            })),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(ImageError::io("lock", path, e.into())),
        }
    }

    /// Whether this is an exclusive lock.
    pub fn is_exclusive(&self) -> bool {
        self.exclusive
    }
}

fn open_lock_file(path: &Path) -> Result<File> {
    // std opens every file with O_CLOEXEC.
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| ImageError::io("open lock file", path, e))
}
