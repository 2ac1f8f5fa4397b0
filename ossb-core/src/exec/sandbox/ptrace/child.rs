//! Starting the first tracee: fork, `PTRACE_TRACEME`, stop, then (once the tracer has set
//! its options) the seccomp filter and `execve` of the guest program, which is the first
//! trapped call.
#![allow(unsafe_code)]

use super::sys;
use std::ffi::CString;
use std::os::fd::AsRawFd;

/// Everything the child needs, prepared before `fork` (the child only makes syscalls).
pub struct Prepared {
    /// Guest path of the program (translated by the tracer at the `execve`).
    pub prog: CString,
    /// argv.
    pub argv: Vec<CString>,
    /// Environment.
    pub env: Vec<CString>,
    /// Host path of the working directory.
    pub cwd: CString,
    /// The seccomp program.
    pub filter: Vec<libc::sock_filter>,
}

/// Why the first tracee could not be started.
#[derive(Debug)]
pub struct StartError {
    /// What was being done.
    pub stage: &'static str,
    /// The error.
    pub error: String,
}

fn fail(fd: i32, what: &[u8]) -> ! {
    let err = std::io::Error::last_os_error();
    let msg = format!(
        "ossb: ptrace sandbox: {} failed: {err}\n",
        String::from_utf8_lossy(what)
    );
    // SAFETY: writing a buffer we own; _exit ends the forked child without unwinding.
    unsafe {
        libc::write(fd, msg.as_ptr().cast(), msg.len());
        libc::_exit(if what == b"ptrace(TRACEME)" { 125 } else { 127 })
    }
}

/// Forks the first tracee; on return it is stopped with the tracer's options set.
pub fn spawn(p: &Prepared) -> Result<i32, StartError> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| StartError {
            stage: "opening /dev/null",
            error: e.to_string(),
        })?;
    let mut argv: Vec<*const libc::c_char> = p.argv.iter().map(|s| s.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut env: Vec<*const libc::c_char> = p.env.iter().map(|s| s.as_ptr()).collect();
    env.push(std::ptr::null());
    let prog = libc::sock_fprog {
        len: p.filter.len() as u16,
        filter: p.filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: the helper process is single threaded, so the child may run any code; it only
    // makes syscalls on memory prepared above and ends in execve or _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(StartError {
            stage: "forking the step",
            error: std::io::Error::last_os_error().to_string(),
        });
    }
    if pid == 0 {
        // SAFETY (whole block): plain syscalls on valid pointers; never returns.
        unsafe {
            if libc::ptrace(
                libc::PTRACE_TRACEME,
                0,
                std::ptr::null_mut::<libc::c_void>(),
                std::ptr::null_mut::<libc::c_void>(),
            ) != 0
            {
                fail(2, b"ptrace(TRACEME)");
            }
            libc::raise(libc::SIGSTOP);
            // Its own session and process group: `kill 0` in the step reaches only the step.
            libc::setsid();
            libc::dup2(null.as_raw_fd(), 0);
            libc::dup2(2, 1);
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
            if libc::chdir(p.cwd.as_ptr()) != 0 {
                fail(2, b"entering the working directory");
            }
            for sig in 1..libc::SIGRTMIN() {
                if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                    libc::signal(sig, libc::SIG_DFL);
                }
            }
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                fail(2, b"prctl(NO_NEW_PRIVS)");
            }
            if libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &prog as *const libc::sock_fprog,
            ) != 0
            {
                fail(2, b"installing the seccomp filter");
            }
            libc::execve(p.prog.as_ptr(), argv.as_ptr(), env.as_ptr());
            let what = [b"executing ".as_slice(), p.prog.as_bytes()].concat();
            fail(2, &what);
        }
    }
    drop(null);
    let status = sys::wait_one(pid).map_err(|e| StartError {
        stage: "waiting for the step to stop",
        error: e.to_string(),
    })?;
    if !libc::WIFSTOPPED(status) {
        let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
        return Err(StartError {
            stage: "starting to trace the step",
            error: if code == Some(125) {
                "ptrace(PTRACE_TRACEME) is refused here (kernel.yama.ptrace_scope = 3, or a \
                 seccomp profile that denies ptrace)"
                    .into()
            } else {
                format!("the step ended before it could be traced ({status:#x})")
            },
        });
    }
    if let Err(e) = sys::set_options(pid, super::tracer::OPTIONS) {
        sys::kill(pid);
        let _ = sys::wait_one(pid);
        return Err(StartError {
            stage: "setting the ptrace options",
            error: e.to_string(),
        });
    }
    Ok(pid)
}
