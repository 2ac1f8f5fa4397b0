//! User and group id mappings of the sandbox's user namespace, and writing them.
//!
//! - As root in the initial user namespace: the identity mapping of every id (`0 0 4294967295`),
//!   so files keep their owners byte for byte.
//! - As an unprivileged user with a range in `/etc/subuid` and `/etc/subgid`: the caller is root
//!   inside and the range follows at 1 (`newuidmap`/`newgidmap`, which are setuid).
//! - Otherwise: only the caller, mapped to root (`0 <uid> 1`); other owners cannot be set.

use super::error::SandboxError;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::process::Command;

/// One contiguous range of a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRange {
    /// First id inside the namespace.
    pub inside: u32,
    /// First id outside (on the host).
    pub outside: u32,
    /// Number of ids.
    pub count: u32,
}

/// How the maps are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MapMethod {
    /// Written directly to `/proc/<pid>/{uid,gid}_map` (root, or a single id).
    Direct,
    /// Through the setuid `newuidmap`/`newgidmap` helpers.
    NewIdMap,
}

/// The uid and gid mappings of the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMap {
    /// Uid ranges.
    pub uids: Vec<IdRange>,
    /// Gid ranges.
    pub gids: Vec<IdRange>,
    /// How they are written.
    pub method: MapMethod,
}

/// A subordinate id range from `/etc/subuid` or `/etc/subgid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubRange {
    /// First host id.
    pub start: u32,
    /// Number of ids.
    pub count: u32,
}

impl IdMap {
    /// The mapping for the current process (see the module docs).
    pub fn detect() -> IdMap {
        let uid = rustix::process::geteuid().as_raw();
        let gid = rustix::process::getegid().as_raw();
        if uid == 0 {
            // Root maps what its own namespace has: every id in the initial namespace, only
            // the mapped ones inside a user namespace (a rootless container, `unshare -Ur`),
            // where writing more than that is refused.
            let own = |path: &str| own_ranges(&std::fs::read_to_string(path).unwrap_or_default());
            let all = vec![IdRange {
                inside: 0,
                outside: 0,
                count: u32::MAX,
            }];
            let uids = own("/proc/self/uid_map");
            let gids = own("/proc/self/gid_map");
            let (uids, gids) = if uids.is_empty() || gids.is_empty() {
                (all.clone(), all)
            } else {
                (uids, gids)
            };
            return IdMap {
                uids,
                gids,
                method: MapMethod::Direct,
            };
        }
        let name = user_name(uid);
        let subuid = sub_ranges(Path::new("/etc/subuid"), uid, name.as_deref());
        let subgid = sub_ranges(Path::new("/etc/subgid"), uid, name.as_deref());
        let helpers = find_in_path("newuidmap").is_some() && find_in_path("newgidmap").is_some();
        match (subuid.first(), subgid.first()) {
            (Some(u), Some(g)) if helpers && u.count > 0 && g.count > 0 => IdMap {
                uids: vec![
                    IdRange {
                        inside: 0,
                        outside: uid,
                        count: 1,
                    },
                    IdRange {
                        inside: 1,
                        outside: u.start,
                        count: u.count,
                    },
                ],
                gids: vec![
                    IdRange {
                        inside: 0,
                        outside: gid,
                        count: 1,
                    },
                    IdRange {
                        inside: 1,
                        outside: g.start,
                        count: g.count,
                    },
                ],
                method: MapMethod::NewIdMap,
            },
            _ => Self::single(uid, gid),
        }
    }

    /// Only `uid`/`gid` mapped to root.
    pub fn single(uid: u32, gid: u32) -> IdMap {
        IdMap {
            uids: vec![IdRange {
                inside: 0,
                outside: uid,
                count: 1,
            }],
            gids: vec![IdRange {
                inside: 0,
                outside: gid,
                count: 1,
            }],
            method: MapMethod::Direct,
        }
    }

    /// Whether only one uid exists inside (ownership other than root cannot be stored).
    pub fn is_single(&self) -> bool {
        self.uids.iter().map(|r| u64::from(r.count)).sum::<u64>() <= 1
    }

    /// Host uid of a container uid.
    pub fn uid_to_host(&self, inside: u32) -> Option<u32> {
        map_forward(&self.uids, inside)
    }

    /// Container uid of a host uid.
    pub fn uid_from_host(&self, outside: u32) -> Option<u32> {
        map_back(&self.uids, outside)
    }

    /// Host gid of a container gid.
    pub fn gid_to_host(&self, inside: u32) -> Option<u32> {
        map_forward(&self.gids, inside)
    }

    /// Container gid of a host gid.
    pub fn gid_from_host(&self, outside: u32) -> Option<u32> {
        map_back(&self.gids, outside)
    }

    /// Writes the maps of process `pid` (which has just unshared its user namespace).
    pub fn write_for(&self, pid: u32) -> Result<(), SandboxError> {
        match self.method {
            MapMethod::Direct => {
                let proc = format!("/proc/{pid}");
                if rustix::process::geteuid().as_raw() != 0 {
                    write_proc(&format!("{proc}/setgroups"), "deny")?;
                }
                write_proc(&format!("{proc}/uid_map"), &map_text(&self.uids))?;
                write_proc(&format!("{proc}/gid_map"), &map_text(&self.gids))
            }
            MapMethod::NewIdMap => {
                run_helper("newuidmap", pid, &self.uids)?;
                run_helper("newgidmap", pid, &self.gids)
            }
        }
    }
}

/// The ids this process's namespace has, from its `/proc/self/{uid,gid}_map` text, as an
/// identity mapping (a child namespace's map names ids of its parent, that is ours).
fn own_ranges(text: &str) -> Vec<IdRange> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace().map(|v| v.parse::<u32>().ok());
            let (inside, _outside, count) = (f.next()??, f.next()??, f.next()??);
            Some(IdRange {
                inside,
                outside: inside,
                count,
            })
        })
        .collect()
}

fn map_forward(ranges: &[IdRange], id: u32) -> Option<u32> {
    ranges.iter().find_map(|r| {
        let off = id.checked_sub(r.inside)?;
        (off < r.count).then(|| r.outside.wrapping_add(off))
    })
}

fn map_back(ranges: &[IdRange], id: u32) -> Option<u32> {
    ranges.iter().find_map(|r| {
        let off = id.checked_sub(r.outside)?;
        (off < r.count).then(|| r.inside.wrapping_add(off))
    })
}

fn map_text(ranges: &[IdRange]) -> String {
    ranges
        .iter()
        .map(|r| format!("{} {} {}\n", r.inside, r.outside, r.count))
        .collect()
}

fn write_proc(path: &str, text: &str) -> Result<(), SandboxError> {
    std::fs::write(path, text)
        .map_err(|e| SandboxError::IdMap(format!("writing {path:?} ({}): {e}", text.trim())))
}

fn run_helper(name: &str, pid: u32, ranges: &[IdRange]) -> Result<(), SandboxError> {
    let mut cmd = Command::new(find_in_path(name).unwrap_or_else(|| name.into()));
    cmd.arg(pid.to_string());
    for r in ranges {
        cmd.arg(r.inside.to_string())
            .arg(r.outside.to_string())
            .arg(r.count.to_string());
    }
    let out = cmd
        .output()
        .map_err(|e| SandboxError::IdMap(format!("running {name}: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(SandboxError::IdMap(format!(
            "{name} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Looks up a program in `PATH` (plus the usual sbin/bin dirs).
pub(crate) fn find_in_path(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/bin", "/bin", "/usr/sbin", "/sbin"])
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// The login name of `uid` from `/etc/passwd`.
pub(crate) fn user_name(uid: u32) -> Option<String> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let id = f.nth(1)?.parse::<u32>().ok()?;
        (id == uid).then(|| name.to_string())
    })
}

/// The ranges granted to the user (by name or number) in a subid file.
pub fn sub_ranges(file: &Path, uid: u32, name: Option<&str>) -> Vec<SubRange> {
    let Ok(text) = std::fs::read_to_string(file) else {
        return Vec::new();
    };
    let uid_s = uid.to_string();
    text.lines()
        .filter_map(|l| {
            let mut f = l.trim().split(':');
            let who = f.next()?;
            let start = f.next()?.parse().ok()?;
            let count = f.next()?.parse().ok()?;
            (who == uid_s || Some(who) == name).then_some(SubRange { start, count })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_in_a_user_namespace_maps_only_its_own_ids() {
        assert_eq!(
            own_ranges("         0          0 4294967295\n"),
            vec![IdRange {
                inside: 0,
                outside: 0,
                count: u32::MAX
            }]
        );
        assert_eq!(
            own_ranges("0 1000 1\n1 100000 65536\n"),
            vec![
                IdRange {
                    inside: 0,
                    outside: 0,
                    count: 1
                },
                IdRange {
                    inside: 1,
                    outside: 1,
                    count: 65536
                }
            ]
        );
        assert!(own_ranges("").is_empty());
    }

    #[test]
    fn maps_both_ways() {
        let m = IdMap {
            uids: vec![
                IdRange {
                    inside: 0,
                    outside: 1000,
                    count: 1,
                },
                IdRange {
                    inside: 1,
                    outside: 100000,
                    count: 65536,
                },
            ],
            gids: vec![],
            method: MapMethod::NewIdMap,
        };
        assert_eq!(m.uid_to_host(0), Some(1000));
        assert_eq!(m.uid_to_host(1000), Some(100999));
        assert_eq!(m.uid_from_host(100999), Some(1000));
        assert_eq!(m.uid_from_host(5), None);
        assert!(!m.is_single());
        assert!(IdMap::single(1000, 1000).is_single());
    }
}
