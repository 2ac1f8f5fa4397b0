//! The ptrace rung's probe: can this process trace a child that runs under a
//! `SECCOMP_RET_TRACE` filter? It starts a child the way [`super::child::spawn`] does
//! (`PTRACE_TRACEME`, stop, `no_new_privs`, the step filter) and checks that one trapped call
//! reaches the tracer and the child then exits cleanly. Runs in a doctor probe child (single
//! threaded, so forking is safe).
#![allow(unsafe_code)]

use super::{arch, filter, sys};

/// `Ok` with what was checked, `Err` with why the ptrace sandbox cannot run here.
pub fn probe() -> Result<String, String> {
    let program = filter::program(&arch::trapped());
    let prog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: the probe process is single threaded; the child only makes syscalls on memory
    // prepared above and ends in _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY (whole block): plain syscalls on valid pointers; never returns.
        unsafe {
            let none = std::ptr::null_mut::<libc::c_void>();
            if libc::ptrace(libc::PTRACE_TRACEME, 0, none, none) != 0 {
                libc::_exit(10);
            }
            libc::raise(libc::SIGSTOP);
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                libc::_exit(11);
            }
            if libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &prog as *const libc::sock_fprog,
            ) != 0
            {
                libc::_exit(12);
            }
            // A trapped identity call: the tracer must see it (ENOSYS without a tracer).
            let uid = libc::syscall(libc::SYS_getuid);
            libc::_exit(if uid < 0 { 13 } else { 0 });
        }
    }
    let fail = |why: String| {
        sys::kill(pid);
        let _ = sys::wait_one(pid);
        Err(why)
    };
    let status = match sys::wait_one(pid) {
        Ok(s) => s,
        Err(e) => return fail(format!("waiting for the probe child: {e}")),
    };
    if !libc::WIFSTOPPED(status) {
        return Err(
            match libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)) {
                Some(10) => {
                    "ptrace(PTRACE_TRACEME) is refused (kernel.yama.ptrace_scope = 3, or a \
                         seccomp profile that denies ptrace)"
                        .into()
                }
                _ => format!("the probe child ended before it could be traced ({status:#x})"),
            },
        );
    }
    if let Err(e) = sys::set_options(pid, super::tracer::OPTIONS) {
        return fail(format!("PTRACE_SETOPTIONS: {e}"));
    }
    let mut trapped = false;
    if let Err(e) = sys::cont(pid, 0) {
        return fail(format!("PTRACE_CONT: {e}"));
    }
    loop {
        let status = match sys::wait_one(pid) {
            Ok(s) => s,
            Err(e) => return fail(format!("waiting for the probe child: {e}")),
        };
        if libc::WIFEXITED(status) {
            return match libc::WEXITSTATUS(status) {
                0 if trapped => Ok(
                    "ptrace and a SECCOMP_RET_TRACE filter work (a trapped call reached the tracer)"
                        .into(),
                ),
                0 => Err("the seccomp filter did not send the trapped call to the tracer".into()),
                11 => Err("prctl(PR_SET_NO_NEW_PRIVS) is refused".into()),
                12 => Err("installing a seccomp filter is refused".into()),
                13 => Err("a trapped call did not reach the tracer (ENOSYS)".into()),
                code => Err(format!("the probe child exited with {code}")),
            };
        }
        if libc::WIFSIGNALED(status) {
            return Err(format!(
                "the probe child was killed by signal {}",
                libc::WTERMSIG(status)
            ));
        }
        if libc::WIFSTOPPED(status) {
            if status >> 8 == (libc::SIGTRAP | (libc::PTRACE_EVENT_SECCOMP << 8)) {
                trapped = true;
            }
            let sig = libc::WSTOPSIG(status);
            let forward = if sig == libc::SIGTRAP || sig == (libc::SIGTRAP | 0x80) {
                0
            } else {
                sig
            };
            if let Err(e) = sys::cont(pid, forward) {
                return fail(format!("PTRACE_CONT: {e}"));
            }
        }
    }
}
