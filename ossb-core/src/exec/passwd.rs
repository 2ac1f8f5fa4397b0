//! `user[:group]` resolution from a rootfs's `/etc/passwd` and `/etc/group` (BuildKit's rules).
//!
//! Numeric ids need no files. A user name without a group gives that user's primary gid; a
//! numeric uid without a group gives the same number as gid. Files are read beneath the root.

use std::io::{BufRead, BufReader, Read};

use rustix::fs::OFlags;

use super::error::{FsError, Result};
use super::fsroot::Root;

/// Resolves `spec` (`user`, `user:group`, `1000:1000`) to `(uid, gid)`; `root` is the image
/// rootfs (may be `None` when the image has no files, then only numbers resolve).
pub fn resolve_user(root: Option<&Root>, spec: &str) -> Result<(u32, u32)> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user.is_empty() || group.is_some_and(str::is_empty) {
        return Err(FsError::Invalid {
            message: format!("invalid user `{spec}`: use user, user:group, uid or uid:gid"),
        });
    }
    let (uid, primary) = match user.parse::<u32>() {
        Ok(n) => (n, n),
        Err(_) => {
            let line = find(root, "etc/passwd", user, "user", "passwd")?;
            let f: Vec<&str> = line.split(':').collect();
            let bad = || FsError::Invalid {
                message: format!(
                    "malformed /etc/passwd line for user `{user}`; fix the image's /etc/passwd"
                ),
            };
            let uid = f.get(2).and_then(|v| v.parse().ok()).ok_or_else(bad)?;
            let gid = f.get(3).and_then(|v| v.parse().ok()).ok_or_else(bad)?;
            (uid, gid)
        }
    };
    let gid = match group {
        None => primary,
        Some(g) => {
            match g.parse::<u32>() {
                Ok(n) => n,
                Err(_) => {
                    let line = find(root, "etc/group", g, "group", "group")?;
                    line.split(':').nth(2).and_then(|v| v.parse().ok()).ok_or_else(|| FsError::Invalid {
                    message: format!("malformed /etc/group line for group `{g}`; fix the image's /etc/group"),
                })?
                }
            }
        }
    };
    Ok((uid, gid))
}

/// The line of `file` whose first field is `name`.
fn find(
    root: Option<&Root>,
    file: &str,
    name: &str,
    what: &'static str,
    short: &'static str,
) -> Result<String> {
    let unknown = || FsError::UnknownId {
        what,
        name: name.to_string(),
        file: short,
    };
    let Some(root) = root else {
        return Err(unknown());
    };
    let fd = match root.open(file, OFlags::RDONLY, 0) {
        Ok(fd) => fd,
        Err(e) if e.is_not_found() => return Err(unknown()),
        Err(e) => return Err(e),
    };
    // Bounded: a hostile image cannot make us read more than 64 MiB.
    let reader = BufReader::new(std::fs::File::from(fd).take(64 << 20));
    for line in reader.split(b'\n') {
        let line = line.map_err(|e| FsError::io("read", file, e))?;
        let line = String::from_utf8_lossy(&line);
        if line.split(':').next() == Some(name) {
            return Ok(line.into_owned());
        }
    }
    Err(unknown())
}
