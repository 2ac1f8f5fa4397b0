//! Thin wrappers over `ptrace(2)`, `waitpid(2)` and `process_vm_{read,write}v(2)`: the only
//! unsafe code of the ptrace sandbox.
#![allow(unsafe_code)]

use super::arch::Regs;
use std::io;

fn check(rc: libc::c_long) -> io::Result<libc::c_long> {
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// `PTRACE_GETREGS`.
pub fn get_regs(tid: i32) -> io::Result<Regs> {
    // SAFETY: user_regs_struct is plain data; all-zero is a valid value.
    let mut r: libc::user_regs_struct = unsafe { std::mem::zeroed() };
    // SAFETY: the kernel writes one user_regs_struct to `r`.
    check(unsafe {
        libc::ptrace(
            libc::PTRACE_GETREGS,
            tid,
            std::ptr::null_mut::<libc::c_void>(),
            &mut r as *mut _ as *mut libc::c_void,
        )
    })?;
    Ok(Regs(r))
}

/// `PTRACE_SETREGS`.
pub fn set_regs(tid: i32, regs: &Regs) -> io::Result<()> {
    // SAFETY: the kernel reads one user_regs_struct from `regs.0`.
    check(unsafe {
        libc::ptrace(
            libc::PTRACE_SETREGS,
            tid,
            std::ptr::null_mut::<libc::c_void>(),
            &regs.0 as *const _ as *mut libc::c_void,
        )
    })?;
    Ok(())
}

fn request(req: libc::c_uint, tid: i32, addr: usize, data: usize) -> io::Result<libc::c_long> {
    // SAFETY: requests used here take integers, not pointers, in addr/data.
    check(unsafe {
        libc::ptrace(
            req,
            tid,
            addr as *mut libc::c_void,
            data as *mut libc::c_void,
        )
    })
}

/// `PTRACE_CONT` with a signal to deliver (0: none).
pub fn cont(tid: i32, sig: i32) -> io::Result<()> {
    request(libc::PTRACE_CONT, tid, 0, sig as usize).map(drop)
}

/// `PTRACE_SYSCALL`: resume to the next syscall stop (here: the exit of the current call).
pub fn syscall(tid: i32) -> io::Result<()> {
    request(libc::PTRACE_SYSCALL, tid, 0, 0).map(drop)
}

/// `PTRACE_SETOPTIONS`.
pub fn set_options(tid: i32, options: i32) -> io::Result<()> {
    request(libc::PTRACE_SETOPTIONS, tid, 0, options as usize).map(drop)
}

/// `PTRACE_GETEVENTMSG`.
pub fn event_msg(tid: i32) -> io::Result<u64> {
    let mut msg: libc::c_ulong = 0;
    // SAFETY: the kernel writes one unsigned long to `msg`.
    check(unsafe {
        libc::ptrace(
            libc::PTRACE_GETEVENTMSG,
            tid,
            std::ptr::null_mut::<libc::c_void>(),
            &mut msg as *mut libc::c_ulong as *mut libc::c_void,
        )
    })?;
    Ok(msg as u64)
}

/// Whether a signal-delivery stop is really a group stop (`PTRACE_GETSIGINFO` fails with
/// `EINVAL` for those).
pub fn is_group_stop(tid: i32) -> bool {
    // SAFETY: siginfo_t is plain data.
    let mut si: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: the kernel writes one siginfo_t to `si`.
    let rc = unsafe {
        libc::ptrace(
            libc::PTRACE_GETSIGINFO,
            tid,
            std::ptr::null_mut::<libc::c_void>(),
            &mut si as *mut libc::siginfo_t as *mut libc::c_void,
        )
    };
    rc == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL)
}

/// `waitpid(-1, __WALL)`: `(tid, status)`; `None` when no tracee or child is left.
pub fn wait_any() -> io::Result<Option<(i32, i32)>> {
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid out pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::__WALL) };
        if pid >= 0 {
            return Ok(Some((pid, status)));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::ECHILD) => return Ok(None),
            _ => return Err(e),
        }
    }
}

/// `waitpid(pid, __WALL)` for one process.
pub fn wait_one(pid: i32) -> io::Result<i32> {
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid out pointer.
        let rc = unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
        if rc >= 0 {
            return Ok(status);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// `kill(tid, SIGKILL)` of one thread group.
pub fn kill(pid: i32) {
    // SAFETY: sending a signal has no memory effects.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// `kill(pid, sig)`.
pub fn signal(pid: i32, sig: i32) {
    // SAFETY: sending a signal has no memory effects.
    unsafe { libc::kill(pid, sig) };
}

/// Set once `process_vm_readv`/`process_vm_writev` are refused (container runtimes' default
/// seccomp profiles allow them only with `CAP_SYS_PTRACE`, but allow `ptrace` itself): from
/// then on memory is moved a word at a time with `PTRACE_PEEKDATA`/`PTRACE_POKEDATA`.
static VM_CALLS_REFUSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn vm_calls_refused() -> bool {
    VM_CALLS_REFUSED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Whether `e` means the `process_vm_*` calls are not allowed here (so fall back).
fn refuses_vm_calls(e: &io::Error) -> bool {
    let refused = matches!(e.raw_os_error(), Some(libc::EPERM | libc::ENOSYS));
    if refused {
        VM_CALLS_REFUSED.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    refused
}

const WORD: usize = std::mem::size_of::<libc::c_long>();

/// `PTRACE_PEEKDATA` of the word at `addr` (which need not be aligned).
fn peek(tid: i32, addr: u64) -> io::Result<[u8; WORD]> {
    // SAFETY: PEEKDATA returns the word in the tracee; errno tells an error from a word that
    // happens to be -1, so it is cleared first.
    unsafe {
        *libc::__errno_location() = 0;
        let v = libc::ptrace(
            libc::PTRACE_PEEKDATA,
            tid,
            addr as *mut libc::c_void,
            std::ptr::null_mut::<libc::c_void>(),
        );
        if v == -1 && *libc::__errno_location() != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(v.to_ne_bytes())
    }
}

/// `PTRACE_POKEDATA` of a whole word at `addr`.
fn poke(tid: i32, addr: u64, word: [u8; WORD]) -> io::Result<()> {
    // SAFETY: POKEDATA writes one word in the tracee's address space only.
    let r = unsafe {
        libc::ptrace(
            libc::PTRACE_POKEDATA,
            tid,
            addr as *mut libc::c_void,
            libc::c_long::from_ne_bytes(word) as *mut libc::c_void,
        )
    };
    if r == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// [`read_mem`] a word at a time; stops at the first unreadable word.
fn read_mem_words(tid: i32, addr: u64, buf: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        let at = addr + done as u64;
        let word = match peek(tid, at) {
            Ok(w) => w,
            Err(e) if done > 0 => {
                let _ = e;
                break;
            }
            Err(e) => return Err(e),
        };
        let n = WORD.min(buf.len() - done);
        buf[done..done + n].copy_from_slice(&word[..n]);
        done += n;
    }
    Ok(done)
}

/// [`write_mem`] a word at a time (the last partial word is read, merged and written back).
fn write_mem_words(tid: i32, addr: u64, data: &[u8]) -> io::Result<()> {
    let mut done = 0;
    while done < data.len() {
        let at = addr + done as u64;
        let n = WORD.min(data.len() - done);
        let mut word = if n < WORD { peek(tid, at)? } else { [0; WORD] };
        word[..n].copy_from_slice(&data[done..done + n]);
        poke(tid, at, word)?;
        done += n;
    }
    Ok(())
}

/// Reads `buf.len()` bytes at `addr` of `tid`; returns how many could be read.
pub fn read_mem(tid: i32, addr: u64, buf: &mut [u8]) -> io::Result<usize> {
    if vm_calls_refused() {
        return read_mem_words(tid, addr, buf);
    }
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: `local` describes `buf`, which is writable for its length; `remote` is only
    // interpreted in the tracee's address space.
    let n = unsafe { libc::process_vm_readv(tid, &local, 1, &remote, 1, 0) };
    if n < 0 {
        let e = io::Error::last_os_error();
        if refuses_vm_calls(&e) {
            return read_mem_words(tid, addr, buf);
        }
        return Err(e);
    }
    Ok(n as usize)
}

/// Writes `data` at `addr` of `tid`.
pub fn write_mem(tid: i32, addr: u64, data: &[u8]) -> io::Result<()> {
    if vm_calls_refused() {
        return write_mem_words(tid, addr, data);
    }
    let local = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: `local` describes `data`, readable for its length.
    let n = unsafe { libc::process_vm_writev(tid, &local, 1, &remote, 1, 0) };
    if n < 0 {
        let e = io::Error::last_os_error();
        if refuses_vm_calls(&e) {
            return write_mem_words(tid, addr, data);
        }
        return Err(e);
    }
    if n as usize != data.len() {
        return Err(io::Error::from_raw_os_error(libc::EFAULT));
    }
    Ok(())
}

/// Reads a NUL-terminated string of at most `max` bytes (page by page, so a string that
/// ends right before an unmapped page is read).
pub fn read_cstr(tid: i32, addr: u64, max: usize) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = addr;
    while out.len() < max {
        let page_left = 4096 - (at % 4096) as usize;
        let mut chunk = vec![0u8; page_left.min(max - out.len())];
        let n = read_mem(tid, at, &mut chunk)?;
        if n == 0 {
            return Err(io::Error::from_raw_os_error(libc::EFAULT));
        }
        if let Some(end) = chunk[..n].iter().position(|&b| b == 0) {
            out.extend_from_slice(&chunk[..end]);
            return Ok(out);
        }
        out.extend_from_slice(&chunk[..n]);
        at += n as u64;
    }
    Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG))
}

/// Reads a little-endian u64 at `addr`.
pub fn read_u64(tid: i32, addr: u64) -> io::Result<u64> {
    let mut b = [0u8; 8];
    if read_mem(tid, addr, &mut b)? != 8 {
        return Err(io::Error::from_raw_os_error(libc::EFAULT));
    }
    Ok(u64::from_le_bytes(b))
}

/// Reads a u32 at `addr`.
pub fn read_u32(tid: i32, addr: u64) -> io::Result<u32> {
    let mut b = [0u8; 4];
    if read_mem(tid, addr, &mut b)? != 4 {
        return Err(io::Error::from_raw_os_error(libc::EFAULT));
    }
    Ok(u32::from_ne_bytes(b))
}

/// `fstatat(AT_FDCWD, path)` as the raw `struct stat` bytes the kernel would copy out.
pub fn stat_raw(path: &[u8], follow: bool) -> io::Result<Vec<u8>> {
    let c = std::ffi::CString::new(path).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: struct stat is plain data.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let flags = if follow { 0 } else { libc::AT_SYMLINK_NOFOLLOW };
    // SAFETY: `c` is NUL-terminated and `st` is a valid out pointer.
    if unsafe { libc::fstatat(libc::AT_FDCWD, c.as_ptr(), &mut st, flags) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: reading the initialised struct as bytes.
    let bytes = unsafe {
        std::slice::from_raw_parts(
            (&st as *const libc::stat).cast::<u8>(),
            std::mem::size_of::<libc::stat>(),
        )
    };
    Ok(bytes.to_vec())
}

/// `statx(AT_FDCWD, path, flags, mask)` as the raw `struct statx` bytes.
pub fn statx_raw(path: &[u8], flags: i32, mask: u32) -> io::Result<Vec<u8>> {
    let c = std::ffi::CString::new(path).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: struct statx is plain data.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `st` is a valid out pointer.
    if unsafe { libc::statx(libc::AT_FDCWD, c.as_ptr(), flags, mask, &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: reading the initialised struct as bytes.
    let bytes = unsafe {
        std::slice::from_raw_parts(
            (&st as *const libc::statx).cast::<u8>(),
            std::mem::size_of::<libc::statx>(),
        )
    };
    Ok(bytes.to_vec())
}
