//! The sandbox init: the re-exec'd helper process of one step.
//!
//! It reads the [`InitConfig`], unshares the namespaces, waits for the parent to write its id
//! maps, forks the step's PID 1 ([`super::child`]) and reports how it ended. It is single
//! threaded (it runs before anything else in the helper's `main`), which makes `unshare` of a
//! user namespace and `fork` sound.

use super::child;
use super::protocol::{self, FromInit, InitConfig, ToInit};
use super::seccomp::{self, Received};
use super::supervisor::Supervisor;
use rustix::process::{Pid, WaitOptions};
use rustix::thread::UnshareFlags;
use std::io::{BufReader, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;

/// Runs the init and exits the process.
pub(super) fn main() -> ! {
    let mut out = std::io::stdout();
    let code = match run(&mut out) {
        Ok(()) => 0,
        Err((stage, error)) => {
            let _ = protocol::send(&mut out, &FromInit::SetupFailed { stage, error });
            1
        }
    };
    std::process::exit(code)
}

type Failure = (String, String);

fn fail(stage: &str) -> impl FnOnce(std::io::Error) -> Failure + '_ {
    move |e| (stage.to_string(), e.to_string())
}

fn run(out: &mut std::io::Stdout) -> Result<(), Failure> {
    let mut input = BufReader::new(std::io::stdin());
    let cfg =
        match protocol::recv::<ToInit, _>(&mut input).map_err(fail("reading the step config"))? {
            Some(ToInit::Config(cfg)) => cfg,
            other => {
                return Err((
                    "reading the step config".into(),
                    format!("unexpected message {other:?}"),
                ));
            }
        };
    let mut flags = UnshareFlags::NEWUSER
        | UnshareFlags::NEWNS
        | UnshareFlags::NEWPID
        | UnshareFlags::NEWIPC
        | UnshareFlags::NEWUTS;
    if cfg.network_none {
        flags |= UnshareFlags::NEWNET;
    }
    if cfg.rung.namespaces() {
        unshare(flags).map_err(fail(super::STAGE_UNSHARE))?;
    } else {
        // Chroot rung: the step is root in the same namespaces as this process, which stays
        // outside the chroot; non-dumpable, the step cannot ptrace it or open its /proc files.
        super::protect::protect_process().map_err(fail("making the init non-dumpable"))?;
        // Orphans of the step become our children, so none outlives it.
        rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
            .map_err(|e| fail("becoming a child subreaper")(e.into()))?;
    }
    // "Unshared" also means "ready" in the chroot rung, where the parent writes no maps.
    protocol::send(out, &FromInit::Unshared).map_err(fail("reporting the namespaces"))?;
    match protocol::recv::<ToInit, _>(&mut input).map_err(fail("waiting for the id maps"))? {
        Some(ToInit::MapsWritten) => {}
        other => {
            return Err((
                "waiting for the id maps".into(),
                format!("the parent sent {other:?}"),
            ));
        }
    }
    out.flush().map_err(fail("flushing"))?;
    let msg = rustix::io::fcntl_dupfd_cloexec(std::io::stdout().as_fd(), 3)
        .map_err(|e| fail("duplicating the message pipe")(e.into()))?;
    // Ownership emulation: a socket for the seccomp listener hand-over, and the host /proc
    // (the step's PID 1 replaces the root; the supervisor needs this PID namespace's /proc).
    let emulation = if cfg.emulate_owners {
        let (ours, theirs) = UnixStream::pair().map_err(fail("creating the listener socket"))?;
        let proc = rustix::fs::open(
            "/proc",
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| fail("opening /proc")(e.into()))?;
        Some((ours, theirs, proc))
    } else {
        None
    };
    match fork().map_err(fail("forking the step's pid 1"))? {
        None => {
            let sock = emulation.map(|(ours, theirs, proc)| {
                drop((ours, proc));
                theirs
            });
            child::run(&cfg, msg, sock)
        }
        Some(pid) => {
            drop(msg);
            let emulation = emulation.map(|(ours, theirs, proc)| {
                drop(theirs);
                (ours, proc)
            });
            wait_child(out, pid, &cfg, emulation)
        }
    }
}

fn wait_child(
    out: &mut std::io::Stdout,
    pid: Pid,
    cfg: &InitConfig,
    emulation: Option<(UnixStream, OwnedFd)>,
) -> Result<(), Failure> {
    protocol::send(
        out,
        &FromInit::Started {
            pid: pid.as_raw_nonzero().get(),
        },
    )
    .map_err(fail("reporting the pid"))?;
    // The init cannot start threads (it unshared its PID namespace), so it serves the
    // notifications itself, between a poll on the listener and on PID 1's pidfd.
    let mut sup = match emulation {
        Some((sock, proc)) => start_supervisor(sock, proc, pid, cfg),
        None => None,
    };
    if let Some(s) = &mut sup {
        s.serve_until_exit(pid);
        let (notifications, emulated) = s.counts();
        let _ = protocol::send(
            out,
            &FromInit::OwnerStats {
                notifications,
                emulated,
            },
        );
    }
    loop {
        match rustix::process::waitpid(Some(pid), WaitOptions::empty()) {
            Ok(Some((_, status))) => {
                if status.exited() || status.signaled() {
                    let code = status.exit_status();
                    let signal = status.terminating_signal();
                    if !cfg.rung.namespaces() {
                        kill_leftovers(pid);
                    }
                    protocol::send(out, &FromInit::Exited { code, signal })
                        .map_err(fail("reporting the exit"))?;
                    return Ok(());
                }
            }
            Ok(None) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(("waiting for the step".into(), e.to_string())),
        }
    }
}

/// Takes the seccomp listener from the step's PID 1 and prepares the supervisor; `None` when
/// PID 1 installed no filter (it reported why) or ended early.
fn start_supervisor(
    mut sock: UnixStream,
    proc: OwnedFd,
    pid: Pid,
    cfg: &InitConfig,
) -> Option<Supervisor> {
    let listener = match seccomp::receive_listener(&mut sock, pid) {
        Ok(Received::Listener(fd)) => fd,
        Ok(Received::NotInstalled) | Ok(Received::Gone) => return None,
        Err(e) => {
            let _ = seccomp::acknowledge(&mut sock, Err(&e.to_string()));
            return None;
        }
    };
    let sup = Supervisor::new(
        listener,
        proc,
        pid,
        cfg.mapped_uids.clone(),
        cfg.mapped_gids.clone(),
    )
    .map_err(|e| format!("cannot start the ownership supervisor: {e}"));
    match sup {
        Ok(sup) => {
            // PID 1 executes the command only after this.
            if let Err(e) = seccomp::acknowledge(&mut sock, Ok(())) {
                warn(e.to_string());
            }
            Some(sup)
        }
        Err(e) => {
            let _ = seccomp::acknowledge(&mut sock, Err(&e));
            None
        }
    }
}

/// Without a PID namespace nothing kills the step's other processes when its first one ends:
/// kill its process group, then every process reparented to this subreaper, until none is
/// left.
fn kill_leftovers(pgid: Pid) {
    let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
    let me = rustix::process::getpid().as_raw_nonzero().get();
    for _ in 0..1000 {
        let children =
            std::fs::read_to_string(format!("/proc/{me}/task/{me}/children")).unwrap_or_default();
        let pids: Vec<Pid> = children
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .filter_map(Pid::from_raw)
            .collect();
        for p in &pids {
            let _ = rustix::process::kill_process(*p, rustix::process::Signal::KILL);
        }
        // Reap what died; done when no child is left.
        loop {
            match rustix::process::waitpid(None, WaitOptions::NOHANG) {
                Ok(Some(_)) => continue,
                Ok(None) => break,
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => return,
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

fn warn(text: String) {
    let _ = protocol::send(&mut std::io::stdout().lock(), &FromInit::Warning { text });
}

#[allow(unsafe_code)]
fn unshare(flags: UnshareFlags) -> std::io::Result<()> {
    // SAFETY: the flags contain no CLONE_FILES/CLONE_FS/CLONE_SYSVSEM tricks that would
    // invalidate Rust's view of the process; the init is single threaded (it runs first thing
    // in `main`), which CLONE_NEWUSER requires.
    unsafe { rustix::thread::unshare_unsafe(flags) }.map_err(Into::into)
}

/// `fork`: `None` in the child, the child's pid in the parent.
#[allow(unsafe_code)]
fn fork() -> std::io::Result<Option<Pid>> {
    // SAFETY: the init process is single threaded (no other thread can hold a lock the child
    // would need), so the child may allocate and run ordinary Rust code.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(std::io::Error::last_os_error()),
        0 => Ok(None),
        p => Ok(Pid::from_raw(p)),
    }
}
