//! The guest's view of the filesystem: guest paths resolved beneath the rootfs, component by
//! component, as the kernel would resolve them if the rootfs were `/`.
//!
//! `..` stops at the root, absolute symlinks restart at the rootfs, and the few host paths a
//! step needs (`/proc`, some of `/dev`, `/etc/hosts`, ...) are *bindings*: guest prefixes that
//! map to host paths. Symlinks under `/proc` are the kernel's magic links: their targets are
//! host paths, translated back into the guest (`/proc/1/root` is the guest's `/`), and
//! `/proc/self` means the tracee, not the tracer. Only the tracees' own `/proc/<pid>` dirs
//! are visible: other processes (the build itself) do not exist for the step.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Most symlinks one resolution follows (the kernel's limit).
const MAX_LINKS: usize = 40;

type Comps = Vec<Vec<u8>>;

/// A guest path prefix backed by a host path.
#[derive(Debug, Clone)]
struct Bind {
    guest: Comps,
    host: PathBuf,
}

/// The tracee a path is resolved for.
pub struct Who<'a> {
    /// Thread id.
    pub tid: i32,
    /// Thread group id.
    pub tgid: i32,
    /// Every traced thread id (the only `/proc/<pid>` entries the guest sees).
    pub tracees: &'a HashSet<i32>,
    /// Guest path of each process's program, where `/proc/<pid>/exe` would show the loader.
    pub exes: &'a HashMap<i32, Vec<u8>>,
}

/// A resolved path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Host path to give the kernel.
    pub host: Vec<u8>,
    /// Canonical guest path.
    pub guest: Vec<u8>,
}

/// The rootfs and its bindings.
#[derive(Debug, Clone)]
pub struct View {
    root: PathBuf,
    binds: Vec<Bind>,
    links: Vec<(Comps, Vec<u8>)>,
}

fn comps(path: &[u8]) -> Comps {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(<[u8]>::to_vec)
        .collect()
}

fn join(cs: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in cs {
        out.push(b'/');
        out.extend_from_slice(c);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

fn is_pid(c: &[u8]) -> Option<i32> {
    if c.is_empty() || !c.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(c).ok()?.parse().ok()
}

impl View {
    /// A view of `root` (canonicalised) with `binds` (guest path, host path) and the usual
    /// `/dev/fd`-style links.
    pub fn new(root: &Path, binds: &[(String, PathBuf)]) -> std::io::Result<View> {
        let root = std::fs::canonicalize(root)?;
        let mut binds: Vec<Bind> = binds
            .iter()
            .map(|(g, h)| Bind {
                guest: comps(g.as_bytes()),
                host: h.clone(),
            })
            .collect();
        binds.sort_by_key(|b| std::cmp::Reverse(b.guest.len()));
        let links = [
            ("/dev/fd", "/proc/self/fd"),
            ("/dev/stdin", "/proc/self/fd/0"),
            ("/dev/stdout", "/proc/self/fd/1"),
            ("/dev/stderr", "/proc/self/fd/2"),
        ]
        .iter()
        .map(|(g, t)| (comps(g.as_bytes()), t.as_bytes().to_vec()))
        .collect();
        Ok(View { root, binds, links })
    }

    /// The host rootfs.
    #[cfg(test)]
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn bind_of(&self, cur: &[Vec<u8>]) -> Option<(&Bind, usize)> {
        self.binds
            .iter()
            .find(|b| cur.len() >= b.guest.len() && cur[..b.guest.len()] == b.guest[..])
            .map(|b| (b, b.guest.len()))
    }

    fn host_of(&self, cur: &[Vec<u8>]) -> PathBuf {
        let (mut host, rest) = match self.bind_of(cur) {
            Some((b, n)) => (b.host.clone(), &cur[n..]),
            None => (self.root.clone(), cur),
        };
        for c in rest {
            host.push(OsStr::from_bytes(c));
        }
        host
    }

    fn in_proc(cur: &[Vec<u8>]) -> bool {
        cur.first().is_some_and(|c| c == b"proc")
    }

    /// The guest path of a host path, when it is inside the rootfs or a binding.
    pub fn guest_of_host(&self, host: &[u8]) -> Option<Vec<u8>> {
        let root = self.root.as_os_str().as_bytes();
        let under = |prefix: &[u8]| -> Option<Vec<u8>> {
            let rest = host.strip_prefix(prefix)?;
            if rest.is_empty() || rest[0] == b'/' || prefix == b"/" {
                Some(rest.to_vec())
            } else {
                None
            }
        };
        if let Some(rest) = under(root) {
            return Some(join(&comps(&rest)));
        }
        let mut binds: Vec<&Bind> = self.binds.iter().collect();
        binds.sort_by_key(|b| std::cmp::Reverse(b.host.as_os_str().len()));
        for b in binds {
            if let Some(rest) = under(b.host.as_os_str().as_bytes()) {
                let mut g = b.guest.clone();
                g.extend(comps(&rest));
                return Some(join(&g));
            }
        }
        None
    }

    /// Resolves `path` for `who`: relative paths start at the guest dir `base`; the last
    /// component is followed when `follow`. Errors are errnos for the tracee.
    pub fn resolve(
        &self,
        base: &[u8],
        path: &[u8],
        follow: bool,
        who: &Who<'_>,
    ) -> Result<Resolved, i32> {
        if path.is_empty() {
            return Err(libc::ENOENT);
        }
        let mut todo: VecDeque<Vec<u8>> = VecDeque::new();
        if path[0] != b'/' {
            todo.extend(comps(base));
        }
        // Keep empty components: a trailing `/` makes the last name a directory lookup.
        todo.extend(path.split(|&b| b == b'/').map(<[u8]>::to_vec));
        let mut cur: Comps = Vec::new();
        let mut links = 0;
        while let Some(c) = todo.pop_front() {
            if c.is_empty() || c == b"." {
                continue;
            }
            if c == b".." {
                cur.pop();
                continue;
            }
            let last = todo.is_empty();
            cur.push(c);
            if Self::in_proc(&cur) && cur.len() == 2 && self.bind_of(&cur).is_some() {
                if cur[1] == b"self" {
                    cur[1] = who.tgid.to_string().into_bytes();
                    continue;
                }
                if cur[1] == b"thread-self" {
                    cur[1] = who.tgid.to_string().into_bytes();
                    cur.push(b"task".to_vec());
                    cur.push(who.tid.to_string().into_bytes());
                    continue;
                }
                if let Some(pid) = is_pid(&cur[1])
                    && !who.tracees.contains(&pid)
                {
                    return Err(libc::ENOENT);
                }
            }
            if last && !follow {
                break;
            }
            let proc_link = Self::in_proc(&cur) && self.bind_of(&cur).is_some();
            let target = if let Some((_, t)) = self.links.iter().find(|(g, _)| *g == cur) {
                t.clone()
            } else if proc_link
                && cur.len() == 3
                && cur[2] == b"exe"
                && let Some(exe) = is_pid(&cur[1]).and_then(|p| who.exes.get(&p))
            {
                exe.clone()
            } else {
                let host = self.host_of(&cur);
                match std::fs::symlink_metadata(&host) {
                    Ok(md) if md.file_type().is_symlink() => match std::fs::read_link(&host) {
                        Ok(t) => t.into_os_string().into_vec(),
                        Err(_) => continue,
                    },
                    Ok(_) => continue,
                    Err(e) => {
                        // Missing or unreadable: the kernel fails the same way on the rest,
                        // before any `..` after it (refused here, so nothing relies on it).
                        if todo.iter().any(|c| c == b"..") {
                            return Err(e.raw_os_error().unwrap_or(libc::ENOENT));
                        }
                        for rest in todo.drain(..) {
                            if !rest.is_empty() {
                                cur.push(rest);
                            }
                        }
                        break;
                    }
                }
            };
            links += 1;
            if links > MAX_LINKS {
                return Err(libc::ELOOP);
            }
            if proc_link && target.first() != Some(&b'/') && is_opaque(&target) {
                // pipe:[..], socket:[..], anon_inode:..: only the magic link itself opens it.
                if last {
                    let host = self.host_of(&cur).into_os_string().into_vec();
                    return Ok(Resolved {
                        guest: join(&cur),
                        host,
                    });
                }
                return Err(libc::ENOTDIR);
            }
            if proc_link && last && target.ends_with(b" (deleted)") {
                // An fd of a removed file: only the magic link reaches it.
                let host = self.host_of(&cur).into_os_string().into_vec();
                return Ok(Resolved {
                    guest: join(&cur),
                    host,
                });
            }
            cur.pop();
            let target = if proc_link && target.first() == Some(&b'/') {
                self.guest_of_host(&target).unwrap_or(target)
            } else {
                target
            };
            if target.first() == Some(&b'/') {
                cur.clear();
            }
            for (i, t) in target.split(|&b| b == b'/').enumerate() {
                todo.insert(i, t.to_vec());
            }
        }
        Ok(Resolved {
            host: self.host_of(&cur).into_os_string().into_vec(),
            guest: join(&cur),
        })
    }
}

fn is_opaque(target: &[u8]) -> bool {
    target.windows(2).any(|w| w == b":[") || target.starts_with(b"anon_inode:")
}

trait IntoVec {
    fn into_vec(self) -> Vec<u8>;
}

impl IntoVec for std::ffi::OsString {
    fn into_vec(self) -> Vec<u8> {
        std::os::unix::ffi::OsStringExt::into_vec(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn who<'a>(t: &'a HashSet<i32>, e: &'a HashMap<i32, Vec<u8>>) -> Who<'a> {
        let me = std::process::id() as i32;
        Who {
            tid: me,
            tgid: me,
            tracees: t,
            exes: e,
        }
    }

    #[test]
    fn stays_beneath_the_root() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path().join("r");
        std::fs::create_dir_all(root.join("etc")).expect("mkdir");
        std::fs::create_dir_all(root.join("a/b")).expect("mkdir");
        std::fs::write(root.join("etc/passwd"), "x").expect("write");
        symlink("/etc/passwd", root.join("a/abs")).expect("ln");
        symlink("../../../../etc", root.join("a/b/up")).expect("ln");
        symlink("loop", root.join("loop")).expect("ln");
        let view = View::new(&root, &[("/proc".into(), "/proc".into())]).expect("view");
        let r = view.root().to_path_buf();
        let t = HashSet::from([std::process::id() as i32]);
        let e = HashMap::new();
        let host = |p: &str, base: &str, follow: bool| {
            view.resolve(base.as_bytes(), p.as_bytes(), follow, &who(&t, &e))
                .map(|x| PathBuf::from(OsStr::from_bytes(&x.host)))
        };
        let want = Ok(r.join("etc/passwd"));
        assert_eq!(host("../../../../etc/passwd", "/a", true), want);
        assert_eq!(host("/a/abs", "/", true), want);
        assert_eq!(host("b/up/passwd", "/a", true), want);
        assert_eq!(host("/a/abs", "/", false), Ok(r.join("a/abs")));
        assert_eq!(host("/loop", "/", true), Err(libc::ELOOP));
        assert_eq!(
            host("/proc/1/root/etc/passwd", "/", true),
            Err(libc::ENOENT)
        );
        assert_eq!(host("/proc/self/root/etc/passwd", "/", true), want);
        // The test's cwd is re-rooted into the rootfs, where it does not exist.
        assert_eq!(
            host("/proc/self/cwd/../../../../etc/passwd", "/", true),
            Err(libc::ENOENT)
        );
        assert_eq!(host("/new/dir", "/", true), Ok(r.join("new/dir")));
        assert_eq!(
            view.guest_of_host(r.join("a/b").as_os_str().as_bytes()),
            Some(b"/a/b".to_vec())
        );
        assert_eq!(
            view.guest_of_host(r.as_os_str().as_bytes()),
            Some(b"/".to_vec())
        );
        assert_eq!(
            view.guest_of_host(b"/proc/5/fd"),
            Some(b"/proc/5/fd".to_vec())
        );
        assert_eq!(view.guest_of_host(b"/etc"), None);
    }
}
