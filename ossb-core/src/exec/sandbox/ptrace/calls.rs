//! What the tracer does at the entry and exit of each trapped call.

use super::arch::{self, RED_ZONE, Regs, STAT_UID_GID};
use super::exec;
use super::owner::{Owners, path};
use super::resolve::{Resolved, Who};
use super::sys;
use super::table::{Call, Follow, IdKind, PathArg, Post};
use super::tracer::Tracer;
use std::io;
use std::os::unix::ffi::OsStrExt;

/// Longest path read from a tracee (`PATH_MAX`).
const PATH_MAX: usize = 4096;
const AT_EMPTY_PATH: u64 = 0x1000;
const O_CREAT: u64 = 0o100;
const O_EXCL: u64 = 0o200;
const O_NOFOLLOW: u64 = 0o400000;
/// `struct statx`: `stx_mask`, `stx_uid`, `stx_gid` offsets and the mask bits.
const STATX_MASK_UID_GID: (usize, usize, usize) = (0, 20, 24);
const STATX_UID: u32 = 0x8;
const STATX_GID: u32 = 0x10;

/// Work left for the exit of a call.
#[derive(Debug, Clone)]
pub enum Pending {
    /// Report the emulated owner in the stat buffer at `buf`.
    Stat {
        /// Buffer address.
        buf: u64,
        /// `struct statx` rather than `struct stat`.
        statx: bool,
        /// Host path (or `/proc/<tid>/fd/N`) whose record applies.
        host: Vec<u8>,
        /// Whether that path's final symlink is followed.
        follow: bool,
    },
    /// Translate a `/proc` magic link's host target back.
    Readlink {
        /// Buffer address.
        buf: u64,
        /// Buffer size.
        size: u64,
        /// Guest path of the link.
        link: Vec<u8>,
    },
    /// Translate the host working directory back.
    Getcwd {
        /// Buffer address.
        buf: u64,
        /// Buffer size.
        size: u64,
    },
}

type Errno = i32;

fn io_errno(e: &io::Error) -> Errno {
    e.raw_os_error().unwrap_or(libc::EFAULT)
}

impl Tracer {
    fn follow(rule: Follow, regs: &Regs) -> bool {
        match rule {
            Follow::Always => true,
            Follow::Never => false,
            Follow::UnlessFlag(i, bit) => regs.arg(i) & bit == 0,
            Follow::IfFlag(i, bit) => regs.arg(i) & bit != 0,
        }
    }

    /// The guest directory relative paths of this argument start at.
    fn base_dir(&self, tid: i32, regs: &Regs, dirfd: Option<usize>) -> Result<Vec<u8>, Errno> {
        let fd = dirfd.map_or(libc::AT_FDCWD, |i| regs.arg(i) as i32);
        let link = if fd == libc::AT_FDCWD {
            format!("/proc/{tid}/cwd")
        } else {
            format!("/proc/{tid}/fd/{fd}")
        };
        let target = std::fs::read_link(&link).map_err(|_| {
            if fd == libc::AT_FDCWD {
                libc::ENOENT
            } else {
                libc::EBADF
            }
        })?;
        Ok(self
            .view
            .guest_of_host(target.as_os_str().as_bytes())
            .unwrap_or_else(|| b"/".to_vec()))
    }

    fn resolve(
        &mut self,
        tid: i32,
        base: &[u8],
        p: &[u8],
        follow: bool,
    ) -> Result<Resolved, Errno> {
        let tgid = self.tgid(tid);
        let who = Who {
            tid,
            tgid,
            tracees: &self.tids,
            exes: &self.exes,
        };
        self.view.resolve(base, p, follow, &who)
    }

    /// Reads and resolves one path argument; `None` for a NULL or empty path (fd forms).
    fn arg_path(
        &mut self,
        tid: i32,
        regs: &Regs,
        a: &PathArg,
        follow: bool,
    ) -> Result<Option<Resolved>, Errno> {
        let ptr = regs.arg(a.path);
        if ptr == 0 {
            return Ok(None);
        }
        let p = sys::read_cstr(tid, ptr, PATH_MAX).map_err(|e| io_errno(&e))?;
        if p.is_empty() {
            return Ok(None);
        }
        let base = if p[0] == b'/' {
            b"/".to_vec()
        } else {
            self.base_dir(tid, regs, a.dirfd)?
        };
        self.resolve(tid, &base, &p, follow).map(Some)
    }

    /// Writes `blobs` below the tracee's stack (past the red zone); returns their addresses.
    fn scratch(tid: i32, regs: &Regs, blobs: &[&[u8]]) -> Result<Vec<u64>, Errno> {
        let total: u64 = blobs.iter().map(|b| (b.len() as u64 + 7) & !7).sum();
        let base = (regs.sp() - RED_ZONE - total) & !15;
        let mut buf = Vec::with_capacity(total as usize);
        let mut addrs = Vec::new();
        for b in blobs {
            addrs.push(base + buf.len() as u64);
            buf.extend_from_slice(b);
            buf.resize((buf.len() + 7) & !7, 0);
        }
        sys::write_mem(tid, base, &buf).map_err(|e| io_errno(&e))?;
        Ok(addrs)
    }

    /// Rewrites path arguments to their host paths.
    fn rewrite(tid: i32, regs: &mut Regs, paths: &[(usize, &Resolved)]) -> Result<(), Errno> {
        if paths.is_empty() {
            return Ok(());
        }
        let blobs: Vec<Vec<u8>> = paths
            .iter()
            .map(|(_, r)| {
                let mut b = r.host.clone();
                b.push(0);
                b
            })
            .collect();
        let refs: Vec<&[u8]> = blobs.iter().map(Vec::as_slice).collect();
        let addrs = Self::scratch(tid, regs, &refs)?;
        for ((i, _), a) in paths.iter().zip(addrs) {
            regs.set_arg(*i, a);
        }
        Ok(())
    }

    /// Handles a seccomp stop; `true` when the call's exit must be seen too.
    pub fn enter(&mut self, tid: i32, regs: Regs) -> io::Result<bool> {
        let Some(call) = arch::call(regs.nr()) else {
            return Ok(false);
        };
        match self.entry(tid, regs, call) {
            Ok(r) => Ok(r),
            Err(errno) => self.skip(tid, regs, -i64::from(errno)),
        }
    }

    fn entry(&mut self, tid: i32, mut regs: Regs, call: Call) -> Result<bool, Errno> {
        let set = |regs: &Regs| sys::set_regs(tid, regs).map_err(|e| io_errno(&e));
        match call {
            Call::Deny(e) => Err(e),
            Call::Open(a, flags) => {
                let f = regs.arg(flags);
                let follow = f & O_NOFOLLOW == 0 && f & (O_CREAT | O_EXCL) != (O_CREAT | O_EXCL);
                if let Some(r) = self.arg_path(tid, &regs, &a, follow)? {
                    Self::rewrite(tid, &mut regs, &[(a.path, &r)])?;
                    set(&regs)?;
                }
                Ok(false)
            }
            Call::Paths(args, post) => {
                let mut resolved = Vec::new();
                for a in args.iter().flatten() {
                    let follow = Self::follow(a.follow, &regs);
                    resolved.push((a, follow, self.arg_path(tid, &regs, a, follow)?));
                }
                let list: Vec<(usize, &Resolved)> = resolved
                    .iter()
                    .filter_map(|(a, _, r)| r.as_ref().map(|r| (a.path, r)))
                    .collect();
                Self::rewrite(tid, &mut regs, &list)?;
                if !list.is_empty() {
                    set(&regs)?;
                }
                let (a, follow, first) = &resolved[0];
                if let (Post::Stat(buf, statx), true, Some(r)) = (post, self.emulate, first) {
                    // Answered here: one stop instead of a second one at the call's exit.
                    return self.stat_here(tid, regs, &r.host, *follow, buf, statx);
                }
                let pending = match post {
                    Post::Plain => None,
                    Post::Stat(buf, statx) if self.emulate => {
                        let host = match first {
                            Some(r) => r.host.clone(),
                            None => fd_path(tid, &regs, a.dirfd),
                        };
                        Some(super::calls::Pending::Stat {
                            buf: regs.arg(buf),
                            statx,
                            host,
                            follow: *follow || first.is_none(),
                        })
                    }
                    Post::Stat(..) => None,
                    Post::Readlink(buf, size) => first
                        .as_ref()
                        .filter(|r| r.guest.starts_with(b"/proc/"))
                        .map(|r| Pending::Readlink {
                            buf: regs.arg(buf),
                            size: regs.arg(size),
                            link: r.guest.clone(),
                        }),
                };
                Ok(self.set_pending(tid, pending))
            }
            Call::Fstat(fd, buf) => {
                let pending = self.emulate.then(|| Pending::Stat {
                    buf: regs.arg(buf),
                    statx: false,
                    host: format!("/proc/{tid}/fd/{}", regs.arg(fd) as i32).into_bytes(),
                    follow: true,
                });
                Ok(self.set_pending(tid, pending))
            }
            Call::Getcwd(buf, size) => Ok(self.set_pending(
                tid,
                Some(Pending::Getcwd {
                    buf: regs.arg(buf),
                    size: regs.arg(size),
                }),
            )),
            Call::Exec {
                dirfd,
                path,
                argv,
                flags,
            } => self
                .exec(tid, regs, dirfd, path, argv, flags)
                .map(|()| false),
            Call::Chown(a, uid) => {
                let follow = Self::follow(a.follow, &regs);
                let r = self.arg_path(tid, &regs, &a, follow)?;
                if !self.emulate {
                    if let Some(r) = r {
                        Self::rewrite(tid, &mut regs, &[(a.path, &r)])?;
                        set(&regs)?;
                    }
                    return Ok(false);
                }
                let (host, guest, follow) = match r {
                    Some(r) => (r.host, Some(r.guest), follow),
                    // Only fchownat has a dirfd; its flags are argument 4 on every arch.
                    None if a.dirfd.is_some() && regs.arg(4) & AT_EMPTY_PATH != 0 => {
                        (fd_path(tid, &regs, a.dirfd), None, true)
                    }
                    None => return Err(libc::ENOENT),
                };
                let (u, g) = (regs.arg(uid) as u32, regs.arg(uid + 1) as u32);
                self.chown(tid, regs, &host, guest, follow, u, g)
            }
            Call::Fchown(fd, uid) => {
                if !self.emulate {
                    return Ok(false);
                }
                let host = format!("/proc/{tid}/fd/{}", regs.arg(fd) as i32).into_bytes();
                let (u, g) = (regs.arg(uid) as u32, regs.arg(uid + 1) as u32);
                self.chown(tid, regs, &host, None, true, u, g)
            }
            Call::Pid(i, kill) => {
                let pid = regs.arg(i) as i32;
                if pid == 0 {
                    return Ok(false);
                }
                if kill && pid == -1 {
                    // "Every process I may signal": the step's, never the build's.
                    let me = self.tgid(tid);
                    let sig = regs.arg(1) as i32;
                    let targets: Vec<i32> = self.tids.iter().copied().collect();
                    for t in targets {
                        if self.tgid(t) != me {
                            sys::signal(t, sig);
                        }
                    }
                    return self.skip(tid, regs, 0).map_err(|e| io_errno(&e));
                }
                if self.tids.contains(&pid.wrapping_abs()) {
                    Ok(false)
                } else {
                    Err(libc::ESRCH)
                }
            }
            Call::UnixAddr(addr, len, follow) => {
                self.unix_addr(tid, regs, addr, len, follow).map(|()| false)
            }
            Call::GetId(kind) => {
                let c = &self.tracees[&tid].creds;
                let v = match kind {
                    IdKind::Uid => c.uid[0],
                    IdKind::Euid => c.uid[1],
                    IdKind::Gid => c.gid[0],
                    IdKind::Egid => c.gid[1],
                };
                self.skip(tid, regs, i64::from(v)).map_err(|e| io_errno(&e))
            }
            Call::GetRes(gid) => {
                let c = &self.tracees[&tid].creds;
                let ids = if gid { c.gid } else { c.uid };
                for (i, v) in ids.iter().take(3).enumerate() {
                    let p = regs.arg(i);
                    if p == 0 {
                        return Err(libc::EFAULT);
                    }
                    sys::write_mem(tid, p, &v.to_ne_bytes()).map_err(|e| io_errno(&e))?;
                }
                self.skip(tid, regs, 0).map_err(|e| io_errno(&e))
            }
            Call::GetGroups => {
                let groups = self.tracees[&tid].creds.groups.clone();
                let size = regs.arg(0) as i32;
                if size != 0 {
                    if (size as usize) < groups.len() || size < 0 {
                        return Err(libc::EINVAL);
                    }
                    let bytes: Vec<u8> = groups.iter().flat_map(|g| g.to_ne_bytes()).collect();
                    if !bytes.is_empty() {
                        sys::write_mem(tid, regs.arg(1), &bytes).map_err(|e| io_errno(&e))?;
                    }
                }
                self.skip(tid, regs, groups.len() as i64)
                    .map_err(|e| io_errno(&e))
            }
            Call::SetGroups => {
                if self.tracees[&tid].creds.uid[1] != 0 {
                    return Err(libc::EPERM);
                }
                let n = regs.arg(0) as usize;
                if n > 65536 {
                    return Err(libc::EINVAL);
                }
                let mut buf = vec![0u8; n * 4];
                if n > 0
                    && sys::read_mem(tid, regs.arg(1), &mut buf).map_err(|e| io_errno(&e))?
                        != buf.len()
                {
                    return Err(libc::EFAULT);
                }
                let groups = buf
                    .chunks(4)
                    .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                if let Some(t) = self.tracees.get_mut(&tid) {
                    t.creds.groups = groups;
                }
                self.skip(tid, regs, 0).map_err(|e| io_errno(&e))
            }
            Call::SetId(kind) => {
                let a = [regs.arg(0) as u32, regs.arg(1) as u32, regs.arg(2) as u32];
                let ret = self
                    .tracees
                    .get_mut(&tid)
                    .map_or(0, |t| t.creds.set(kind, a));
                self.skip(tid, regs, ret).map_err(|e| io_errno(&e))
            }
        }
    }

    /// Runs a path stat call in the tracer (same uid, same host path) and writes the result
    /// with the emulated owner into the tracee's buffer; the call itself is skipped.
    fn stat_here(
        &mut self,
        tid: i32,
        regs: Regs,
        host: &[u8],
        follow: bool,
        buf: usize,
        statx: bool,
    ) -> Result<bool, Errno> {
        let out = regs.arg(buf);
        let (raw, offsets) = if statx {
            // statx(dirfd, path, flags, mask, buf): keep the sync flags, drop AT_EMPTY_PATH.
            let flags = (regs.arg(2) as i32 & !(AT_EMPTY_PATH as i32 | libc::AT_SYMLINK_NOFOLLOW))
                | if follow { 0 } else { libc::AT_SYMLINK_NOFOLLOW };
            let raw = sys::statx_raw(host, flags, regs.arg(3) as u32).map_err(|e| io_errno(&e))?;
            let mask = u32::from_ne_bytes(raw[0..4].try_into().unwrap_or([0; 4]));
            let has = mask & (STATX_UID | STATX_GID) == STATX_UID | STATX_GID;
            (
                raw,
                has.then_some((STATX_MASK_UID_GID.1, STATX_MASK_UID_GID.2)),
            )
        } else {
            let raw = sys::stat_raw(host, follow).map_err(|e| io_errno(&e))?;
            (raw, Some(STAT_UID_GID))
        };
        let mut raw = raw;
        if let Some((ou, og)) = offsets {
            let word = |o: usize| u32::from_ne_bytes(raw[o..o + 4].try_into().unwrap_or([0; 4]));
            let (hu, hg) = (word(ou), word(og));
            let record = Owners::record(path(host), follow);
            let (u, g) = self.owners.present((hu, hg), record.as_deref());
            raw[ou..ou + 4].copy_from_slice(&u.to_ne_bytes());
            raw[og..og + 4].copy_from_slice(&g.to_ne_bytes());
        }
        sys::write_mem(tid, out, &raw).map_err(|e| io_errno(&e))?;
        self.skip(tid, regs, 0).map_err(|e| io_errno(&e))
    }

    fn set_pending(&mut self, tid: i32, p: Option<Pending>) -> bool {
        let some = p.is_some();
        if let Some(t) = self.tracees.get_mut(&tid) {
            t.pending = p;
        }
        some
    }

    #[allow(clippy::too_many_arguments)]
    fn chown(
        &mut self,
        tid: i32,
        regs: Regs,
        host: &[u8],
        guest: Option<Vec<u8>>,
        follow: bool,
        uid: u32,
        gid: u32,
    ) -> Result<bool, Errno> {
        let ret = match self.owners.chown(path(host), follow, uid, gid) {
            Ok(ret) => ret,
            Err(owner) => {
                if let Some(g) = guest {
                    self.link_owners
                        .insert(String::from_utf8_lossy(&g).into_owned(), owner);
                }
                0
            }
        };
        self.skip(tid, regs, ret).map_err(|e| io_errno(&e))
    }

    fn exec(
        &mut self,
        tid: i32,
        mut regs: Regs,
        dirfd: Option<usize>,
        path_arg: usize,
        argv: usize,
        flags: Option<usize>,
    ) -> Result<(), Errno> {
        let ptr = regs.arg(path_arg);
        let p = if ptr == 0 {
            Vec::new()
        } else {
            sys::read_cstr(tid, ptr, PATH_MAX).map_err(|e| io_errno(&e))?
        };
        let empty_ok = flags.is_some_and(|f| regs.arg(f) & AT_EMPTY_PATH != 0);
        let (p, base) = if p.is_empty() {
            if !empty_ok {
                return Err(libc::ENOENT);
            }
            let link =
                std::fs::read_link(String::from_utf8_lossy(&fd_path(tid, &regs, dirfd)).as_ref())
                    .map_err(|_| libc::EBADF)?;
            let g = self
                .view
                .guest_of_host(link.as_os_str().as_bytes())
                .ok_or(libc::EACCES)?;
            (g, b"/".to_vec())
        } else if p[0] == b'/' {
            (p, b"/".to_vec())
        } else {
            let base = self.base_dir(tid, &regs, dirfd)?;
            (p, base)
        };
        // Original argv pointers (their strings stay where they are).
        let argv_ptr = regs.arg(argv);
        let mut ptrs = Vec::new();
        if argv_ptr != 0 {
            loop {
                let v = sys::read_u64(tid, argv_ptr + 8 * ptrs.len() as u64)
                    .map_err(|e| io_errno(&e))?;
                if v == 0 {
                    break;
                }
                ptrs.push(v);
                if ptrs.len() > 1 << 20 {
                    return Err(libc::E2BIG);
                }
            }
        }
        let argv0 = match ptrs.first() {
            Some(&a) => sys::read_cstr(tid, a, 1 << 17).map_err(|e| io_errno(&e))?,
            None => Vec::new(),
        };
        let mut loaders = std::mem::take(&mut self.loaders);
        let plan = exec::plan(
            &p,
            &argv0,
            &mut |q: &[u8]| {
                let b: &[u8] = if q.first() == Some(&b'/') {
                    b"/"
                } else {
                    &base
                };
                self.resolve(tid, b, q, true).map(|r| (r.host, r.guest))
            },
            &mut loaders,
        );
        self.loaders = loaders;
        let plan = plan?;
        // Layout below the stack: the pointer array, then the host path and the new strings.
        let n_ptrs = plan.head.len() + ptrs.len().saturating_sub(1) + 1;
        let array_len = 8 * n_ptrs as u64;
        let mut strings: Vec<u8> = Vec::new();
        let mut offsets = Vec::new();
        for s in std::iter::once(&plan.host).chain(&plan.head) {
            offsets.push(strings.len() as u64);
            strings.extend_from_slice(s);
            strings.push(0);
        }
        let total = array_len + strings.len() as u64;
        let base = (regs.sp() - RED_ZONE - total) & !15;
        let str_at = base + array_len;
        let mut buf: Vec<u8> = Vec::with_capacity(total as usize);
        for off in &offsets[1..] {
            buf.extend_from_slice(&(str_at + off).to_le_bytes());
        }
        for a in ptrs.iter().skip(1) {
            buf.extend_from_slice(&a.to_le_bytes());
        }
        buf.extend_from_slice(&0u64.to_le_bytes());
        buf.extend_from_slice(&strings);
        sys::write_mem(tid, base, &buf).map_err(|e| io_errno(&e))?;
        if flags.is_some() {
            // execveat -> execve(path, argv, envp): envp moves from argument 3 to 2.
            let envp = regs.arg(3);
            regs.set_nr(arch::nr::EXECVE);
            regs.set_arg(2, envp);
        }
        regs.set_arg(0, str_at);
        regs.set_arg(1, base);
        sys::set_regs(tid, &regs).map_err(|e| io_errno(&e))?;
        if let Some(t) = self.tracees.get_mut(&tid) {
            t.exec_exe = Some(plan.exe);
        }
        Ok(())
    }

    fn unix_addr(
        &mut self,
        tid: i32,
        mut regs: Regs,
        addr: usize,
        len: usize,
        follow: bool,
    ) -> Result<(), Errno> {
        let n = (regs.arg(len) as usize).min(110);
        if regs.arg(addr) == 0 || n < 3 {
            return Ok(());
        }
        let mut sa = vec![0u8; n];
        let got = sys::read_mem(tid, regs.arg(addr), &mut sa).map_err(|e| io_errno(&e))?;
        sa.truncate(got);
        if sa.len() < 3 || u16::from_ne_bytes([sa[0], sa[1]]) != libc::AF_UNIX as u16 || sa[2] == 0
        {
            return Ok(());
        }
        let p: Vec<u8> = sa[2..].iter().take_while(|&&b| b != 0).copied().collect();
        let base = if p[0] == b'/' {
            b"/".to_vec()
        } else {
            self.base_dir(tid, &regs, None)?
        };
        let r = self.resolve(tid, &base, &p, follow)?;
        if r.host.len() >= 108 {
            return Err(libc::ENAMETOOLONG);
        }
        let mut new = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
        new.extend_from_slice(&r.host);
        new.push(0);
        let at = Self::scratch(tid, &regs, &[&new])?;
        regs.set_arg(addr, at[0]);
        regs.set_arg(len, new.len() as u64);
        sys::set_regs(tid, &regs).map_err(|e| io_errno(&e))
    }

    /// Handles the exit stop of a call with pending work.
    pub fn finish(&mut self, tid: i32, mut regs: Regs, p: Pending) -> io::Result<()> {
        let ret = regs.ret();
        match p {
            Pending::Stat {
                buf,
                statx,
                host,
                follow,
            } => {
                if ret != 0 {
                    return Ok(());
                }
                let (ou, og) = if statx {
                    let mask = sys::read_u32(tid, buf + STATX_MASK_UID_GID.0 as u64)?;
                    if mask & (STATX_UID | STATX_GID) != STATX_UID | STATX_GID {
                        return Ok(());
                    }
                    (STATX_MASK_UID_GID.1, STATX_MASK_UID_GID.2)
                } else {
                    STAT_UID_GID
                };
                let hu = sys::read_u32(tid, buf + ou as u64)?;
                let hg = sys::read_u32(tid, buf + og as u64)?;
                let record = Owners::record(path(&host), follow);
                let (u, g) = self.owners.present((hu, hg), record.as_deref());
                if (u, g) != (hu, hg) {
                    sys::write_mem(tid, buf + ou as u64, &u.to_ne_bytes())?;
                    sys::write_mem(tid, buf + og as u64, &g.to_ne_bytes())?;
                }
            }
            Pending::Readlink { buf, size, link } => {
                if ret <= 0 {
                    return Ok(());
                }
                let mut got = vec![0u8; ret as usize];
                let n = sys::read_mem(tid, buf, &mut got)?;
                got.truncate(n);
                let parts: Vec<&[u8]> = link.split(|&b| b == b'/').collect();
                let pid = parts
                    .get(2)
                    .and_then(|s| std::str::from_utf8(s).ok())
                    .and_then(|s| s.parse::<i32>().ok());
                let guest = match (parts.get(3).copied(), parts.len()) {
                    (Some(b"exe"), 4) => pid.and_then(|p| self.exes.get(&p).cloned()),
                    (Some(b"root"), 4) => Some(b"/".to_vec()),
                    _ => None,
                }
                .or_else(|| {
                    (got.first() == Some(&b'/'))
                        .then(|| self.view.guest_of_host(&got))
                        .flatten()
                });
                if let Some(g) = guest {
                    let n = g.len().min(size as usize);
                    sys::write_mem(tid, buf, &g[..n])?;
                    regs.set_ret(n as i64);
                    sys::set_regs(tid, &regs)?;
                }
            }
            Pending::Getcwd { buf, size } => {
                if ret <= 0 {
                    return Ok(());
                }
                let mut got = vec![0u8; ret as usize];
                let n = sys::read_mem(tid, buf, &mut got)?;
                got.truncate(n);
                let host = got.split(|&b| b == 0).next().unwrap_or(&[]);
                let mut g = self
                    .view
                    .guest_of_host(host)
                    .unwrap_or_else(|| b"/".to_vec());
                g.push(0);
                if g.len() as u64 > size {
                    regs.set_ret(-i64::from(libc::ERANGE));
                } else {
                    sys::write_mem(tid, buf, &g)?;
                    regs.set_ret(g.len() as i64);
                }
                sys::set_regs(tid, &regs)?;
            }
        }
        Ok(())
    }
}

/// `/proc/<tid>/fd/<dirfd>` (or the cwd for `AT_FDCWD`) of an fd-form call.
fn fd_path(tid: i32, regs: &Regs, dirfd: Option<usize>) -> Vec<u8> {
    let fd = dirfd.map_or(libc::AT_FDCWD, |i| regs.arg(i) as i32);
    if fd == libc::AT_FDCWD {
        format!("/proc/{tid}/cwd").into_bytes()
    } else {
        format!("/proc/{tid}/fd/{fd}").into_bytes()
    }
}
