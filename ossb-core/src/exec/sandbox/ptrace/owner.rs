//! uid 0 without privileges: the emulated credentials of each tracee, `chown` recorded in
//! the `user.rootlesscontainers` xattr, and the owners `stat` reports.

use super::super::ownerattr::{ROOTLESS_XATTR, decode_owner, encode_owner};
use super::table::SetKind;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The ids a tracee sees (inherited by forks and threads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creds {
    /// Real, effective, saved and filesystem uid.
    pub uid: [u32; 4],
    /// Real, effective, saved and filesystem gid.
    pub gid: [u32; 4],
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

const KEEP: u32 = u32::MAX;

impl Creds {
    /// A process running as `uid`:`gid`.
    pub fn new(uid: u32, gid: u32, groups: Vec<u32>) -> Creds {
        Creds {
            uid: [uid; 4],
            gid: [gid; 4],
            groups,
        }
    }

    fn privileged(&self) -> bool {
        self.uid[1] == 0
    }

    /// Applies a `set*id` call; the result is the syscall's return value.
    pub fn set(&mut self, kind: SetKind, a: [u32; 3]) -> i64 {
        let privileged = self.privileged();
        let (ids, is_uid) = match kind {
            SetKind::Uid | SetKind::ReUid | SetKind::ResUid | SetKind::FsUid => {
                (&mut self.uid, true)
            }
            _ => (&mut self.gid, false),
        };
        let _ = is_uid;
        let allowed = |ids: &[u32; 4], v: u32| v == KEEP || privileged || ids[..3].contains(&v);
        match kind {
            SetKind::Uid | SetKind::Gid => {
                if privileged {
                    *ids = [a[0]; 4];
                } else if ids[..3].contains(&a[0]) {
                    ids[1] = a[0];
                    ids[3] = a[0];
                } else {
                    return -i64::from(libc::EPERM);
                }
            }
            SetKind::ReUid | SetKind::ReGid => {
                if !allowed(ids, a[0]) || !allowed(ids, a[1]) {
                    return -i64::from(libc::EPERM);
                }
                if a[0] != KEEP {
                    ids[0] = a[0];
                }
                if a[1] != KEEP {
                    ids[1] = a[1];
                    ids[3] = a[1];
                }
                if a[0] != KEEP || a[1] != KEEP {
                    ids[2] = ids[1];
                }
            }
            SetKind::ResUid | SetKind::ResGid => {
                if !a.iter().all(|v| allowed(ids, *v)) {
                    return -i64::from(libc::EPERM);
                }
                for (i, v) in a.iter().enumerate() {
                    if *v != KEEP {
                        ids[i] = *v;
                    }
                }
                ids[3] = ids[1];
            }
            SetKind::FsUid | SetKind::FsGid => {
                let old = ids[3];
                if allowed(ids, a[0]) {
                    ids[3] = a[0];
                }
                return i64::from(old);
            }
        }
        0
    }
}

/// How host owners look from inside: the caller's ids are root, the record overrides.
#[derive(Debug, Clone, Copy)]
pub struct Owners {
    /// Host uid of the build.
    pub caller_uid: u32,
    /// Host gid of the build.
    pub caller_gid: u32,
}

impl Owners {
    /// The owner to report for a file with host owner `host` and record `record`.
    pub fn present(&self, host: (u32, u32), record: Option<&[u8]>) -> (u32, u32) {
        let (ru, rg) = record.map(decode_owner).unwrap_or((None, None));
        let map = |h: u32, caller: u32| if h == caller { 0 } else { h };
        (
            ru.unwrap_or(map(host.0, self.caller_uid)),
            rg.unwrap_or(map(host.1, self.caller_gid)),
        )
    }

    /// The record of `path` (following symlinks when `follow`).
    pub fn record(path: &Path, follow: bool) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 64];
        let n = with_access(path, 0o400, || {
            if follow {
                rustix::fs::getxattr(path, ROOTLESS_XATTR, &mut buf)
            } else {
                rustix::fs::lgetxattr(path, ROOTLESS_XATTR, &mut buf)
            }
        })
        .ok()?;
        buf.truncate(n);
        Some(buf)
    }

    /// Emulates `chown(path, uid, gid)`; returns the syscall result. Symlinks and special
    /// files cannot carry the record: `Err(link owner)` asks the caller to keep it aside.
    pub fn chown(&self, path: &Path, follow: bool, uid: u32, gid: u32) -> Result<i64, (u32, u32)> {
        let st = if follow {
            rustix::fs::stat(path)
        } else {
            rustix::fs::lstat(path)
        };
        let st = match st {
            Ok(st) => st,
            Err(e) => return Ok(-i64::from(e.raw_os_error())),
        };
        let (cu, cg) = self.present(
            (st.st_uid, st.st_gid),
            Self::record(path, follow).as_deref(),
        );
        let nu = if uid == KEEP { cu } else { uid };
        let ng = if gid == KEEP { cg } else { gid };
        let fmt = st.st_mode & libc::S_IFMT;
        if fmt != libc::S_IFREG && fmt != libc::S_IFDIR {
            // Touch it (a no-op chown changes its ctime) so the layer gets an entry.
            let _ = rustix::fs::chownat(
                rustix::fs::CWD,
                path,
                None,
                None,
                if follow {
                    rustix::fs::AtFlags::empty()
                } else {
                    rustix::fs::AtFlags::SYMLINK_NOFOLLOW
                },
            );
            return Err((nu, ng));
        }
        let res = with_access(path, 0o200, || {
            if (nu, ng) == (0, 0) {
                match rustix::fs::removexattr(path, ROOTLESS_XATTR) {
                    Err(rustix::io::Errno::NODATA) => Ok(()),
                    r => r,
                }
            } else {
                rustix::fs::setxattr(
                    path,
                    ROOTLESS_XATTR,
                    &encode_owner(nu, ng),
                    rustix::fs::XattrFlags::empty(),
                )
            }
        });
        if let Err(e) = res {
            return Ok(-i64::from(e.raw_os_error()));
        }
        // As the kernel does: a chown clears set-user-id and group-executable set-group-id.
        let mode = st.st_mode & 0o7777;
        if fmt == libc::S_IFREG
            && (mode & libc::S_ISUID != 0 || (mode & libc::S_ISGID != 0 && mode & 0o010 != 0))
        {
            let clear = mode & !(libc::S_ISUID | libc::S_ISGID);
            let _ = rustix::fs::chmod(path, rustix::fs::Mode::from_raw_mode(clear));
        }
        Ok(0)
    }
}

/// Runs an xattr operation; when the owner lacks the permission it needs (`user.*` xattrs
/// need read or write access, which root would have anyway: dpkg creates files with mode 0
/// and chowns them before its chmod), grants the owner `bits` for the call and restores the
/// mode. Only regular files and directories get here.
fn with_access<T>(
    path: &Path,
    bits: u32,
    mut op: impl FnMut() -> rustix::io::Result<T>,
) -> rustix::io::Result<T> {
    match op() {
        Err(rustix::io::Errno::ACCESS) => {
            let st = rustix::fs::stat(path)?;
            let mode = st.st_mode & 0o7777;
            rustix::fs::chmod(path, rustix::fs::Mode::from_raw_mode(mode | bits))?;
            let res = op();
            let _ = rustix::fs::chmod(path, rustix::fs::Mode::from_raw_mode(mode));
            res
        }
        r => r,
    }
}

/// A host path from bytes.
pub fn path(b: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_ids_follow_the_kernel_rules() {
        let mut c = Creds::new(0, 0, vec![]);
        assert_eq!(c.set(SetKind::Uid, [1000, 0, 0]), 0);
        assert_eq!(c.uid, [1000; 4]);
        assert_eq!(c.set(SetKind::Uid, [0, 0, 0]), -i64::from(libc::EPERM));
        let mut c = Creds::new(0, 0, vec![]);
        assert_eq!(c.set(SetKind::ResUid, [KEEP, 5, KEEP]), 0);
        assert_eq!(c.uid, [0, 5, 0, 5]);
        assert_eq!(
            c.set(SetKind::ResUid, [KEEP, 0, KEEP]),
            0,
            "saved uid 0 may come back"
        );
        assert_eq!(c.uid[1], 0);
        let o = Owners {
            caller_uid: 1000,
            caller_gid: 1000,
        };
        assert_eq!(o.present((1000, 1000), None), (0, 0));
        assert_eq!(o.present((1000, 1000), Some(&encode_owner(7, 8))), (7, 8));
        assert_eq!(o.present((5, 1000), None), (5, 0));
    }
}
