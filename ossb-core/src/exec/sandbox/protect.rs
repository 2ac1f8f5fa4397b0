//! Protecting OSSB's own process from the RUN steps it starts.
//!
//! In the reduced rung the step sees the pod's `/proc`, and its processes run with OSSB's
//! kernel uid (root of a user namespace OSSB created is OSSB's uid outside). The kernel lets
//! a process read another's `/proc/PID/{environ,mem,root,fd,...}` when the uids match and the
//! target is *dumpable*, or when the reader has `CAP_SYS_PTRACE` in the target's user
//! namespace. A non-dumpable OSSB fails the first test and the step never has the capability
//! in OSSB's namespace, so those files and `ptrace`/`process_vm_readv` are refused. In the
//! chroot rung the step is root outside too; non-dumpable still stops `ptrace` without
//! `CAP_SYS_PTRACE` (not in a container runtime's default set).

/// Makes this process non-dumpable (`PR_SET_DUMPABLE 0`): no core dumps, and no
/// `/proc/PID/{environ,mem,fd,root,...}` or `ptrace` access for processes of the same uid
/// without `CAP_SYS_PTRACE`. Idempotent; the flag survives threads but is reset by `execve`
/// and by credential changes, so call it again after those.
pub fn protect_process() -> std::io::Result<()> {
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(Into::into)
}

/// Whether this process is non-dumpable.
pub fn is_protected() -> bool {
    matches!(
        rustix::process::dumpable_behavior(),
        Ok(rustix::process::DumpableBehavior::NotDumpable)
    )
}
