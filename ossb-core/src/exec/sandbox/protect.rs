//! Protecting OSSB's own process from the RUN steps it starts.
//!
//! In the reduced rung the step sees the pod's `/proc`, and its processes run with OSSB's
//! kernel uid (root of a user namespace OSSB created is OSSB's uid outside); in the chroot
//! rung the step is in OSSB's own namespaces. Access to another process's
//! `/proc/PID/{environ,mem,fd/N,root,...}`, `ptrace` and `process_vm_readv` goes through
//! `ptrace_may_access`, which passes when the uids match *and* the target is dumpable, and
//! then through the capability check, which passes only when the caller is in the target's
//! user namespace holding every capability the target has (or has `CAP_SYS_PTRACE` there).
//! Two layers therefore keep the step out:
//!
//! - the capability check: in the reduced rung the step is in a child user namespace of
//!   OSSB's; in the chroot rung it lost `CAP_SYS_CHROOT` and others from its bounding set,
//!   which OSSB still has;
//! - non-dumpability ([`protect_process`]): independent of namespaces and capabilities (a
//!   caller with all of OSSB's capabilities in its namespace still needs `CAP_SYS_PTRACE`).
//!
//! Credential variables also leave the environment block itself ([`seal_environment`]).

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

/// The environment as it was when [`seal_environment`] ran (`None` before).
static STARTUP_ENV: std::sync::OnceLock<Vec<(std::ffi::OsString, std::ffi::OsString)>> =
    std::sync::OnceLock::new();

/// Whether a variable name looks like it carries a credential (`*PASSWORD*`, `*SECRET*`,
/// `*TOKEN*`, `*_KEY*`, `*CREDENTIAL*`), except names of files and directories
/// (`*_FILE`, `*_DIR`, `*_ROOT`, `*_PATH`, `GOOGLE_APPLICATION_CREDENTIALS`).
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    let looks = [
        "PASSWORD",
        "PASSWD",
        "SECRET",
        "TOKEN",
        "_KEY",
        "CREDENTIAL",
    ]
    .iter()
    .any(|w| upper.contains(w));
    let names_a_path = ["_FILE", "_DIR", "_ROOT", "_PATH"]
        .iter()
        .any(|s| upper.ends_with(s))
        || upper == "GOOGLE_APPLICATION_CREDENTIALS";
    looks && !names_a_path
}

/// Keeps a copy of the environment in memory, then removes every variable whose name
/// [`is_secret_name`] from the process environment and overwrites its value in the original
/// environment block, which is what `/proc/PID/environ` shows. Later lookups go through
/// [`env_var`] and [`env_vars`], which read the copy. Returns the names removed.
///
/// # Safety
///
/// Call it first thing in `main`, before any thread exists: it changes the process
/// environment (`std::env::remove_var`) and writes into the C `environ` strings.
#[allow(unsafe_code)]
pub unsafe fn seal_environment() -> Vec<String> {
    let all: Vec<_> = std::env::vars_os().collect();
    let mut removed = Vec::new();
    for (k, _) in &all {
        let Some(name) = k.to_str() else { continue };
        if !is_secret_name(name) {
            continue;
        }
        if let Ok(c) = std::ffi::CString::new(name) {
            // SAFETY: single threaded (the caller's contract); getenv returns a pointer to the
            // NUL-terminated value inside `environ`, which stays valid until the variable is
            // removed below, and is overwritten only within its own length.
            unsafe {
                let p = libc::getenv(c.as_ptr());
                if !p.is_null() {
                    let len = libc::strlen(p);
                    std::ptr::write_bytes(p, 0, len);
                }
                std::env::remove_var(name);
            }
        }
        removed.push(name.to_string());
    }
    let _ = STARTUP_ENV.set(all);
    removed
}

/// A variable of the environment: from the copy [`seal_environment`] kept, else from the
/// process environment.
pub fn env_var(name: &str) -> Option<std::ffi::OsString> {
    match STARTUP_ENV.get() {
        Some(all) => all.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()),
        None => std::env::var_os(name),
    }
}

/// Every variable of the environment, like [`env_var`].
pub fn env_vars() -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
    match STARTUP_ENV.get() {
        Some(all) => all.clone(),
        None => std::env::vars_os().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::is_secret_name;

    #[test]
    fn credential_names_but_not_paths() {
        for n in [
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_ACCESS_KEY_ID",
            "AZURE_CLIENT_SECRET",
            "REGISTRY_PASSWORD",
            "npm_token",
        ] {
            assert!(is_secret_name(n), "{n}");
        }
        for n in [
            "PATH",
            "HOME",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "OSSB_REGISTRY_SECRET_DIR",
            "OSSB_SECRETS_ROOT",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "KEYBOARD",
        ] {
            assert!(!is_secret_name(n), "{n}");
        }
    }
}
