//! The tracer's event loop: one thread that follows every process of the step.

use super::arch::Regs;
use super::calls::Pending;
use super::exec::LoaderCache;
use super::owner::{Creds, Owners};
use super::resolve::View;
use super::sys;
use std::collections::{BTreeMap, HashMap, HashSet};

const PTRACE_EVENT_FORK: i32 = 1;
const PTRACE_EVENT_VFORK: i32 = 2;
const PTRACE_EVENT_CLONE: i32 = 3;
const PTRACE_EVENT_EXEC: i32 = 4;
const PTRACE_EVENT_SECCOMP: i32 = 7;

/// The options every tracee gets (inherited by auto-attached children).
pub const OPTIONS: i32 = libc::PTRACE_O_TRACESYSGOOD
    | libc::PTRACE_O_TRACEFORK
    | libc::PTRACE_O_TRACEVFORK
    | libc::PTRACE_O_TRACECLONE
    | libc::PTRACE_O_TRACEEXEC
    | libc::PTRACE_O_TRACESECCOMP
    | libc::PTRACE_O_EXITKILL;

/// One traced thread.
#[derive(Debug)]
pub struct Tracee {
    /// Its thread group (read from `/proc` on first use).
    pub tgid: Option<i32>,
    /// Emulated credentials.
    pub creds: Creds,
    /// What to do at the exit of the current call.
    pub pending: Option<Pending>,
    /// Guest path of the program an `execve` in flight runs.
    pub exec_exe: Option<Vec<u8>>,
    /// Waiting for the SIGSTOP auto-attached children start with.
    pub fresh: bool,
}

/// How the first process ended.
#[derive(Debug, Clone, Copy, Default)]
pub struct Exit {
    /// Exit code.
    pub code: Option<i32>,
    /// Killing signal.
    pub signal: Option<i32>,
}

/// The tracer's state.
pub struct Tracer {
    /// The guest's filesystem.
    pub view: View,
    /// Traced threads.
    pub tracees: HashMap<i32, Tracee>,
    /// Their ids (for `/proc/<pid>` visibility).
    pub tids: HashSet<i32>,
    /// Guest program of each process run through its loader.
    pub exes: HashMap<i32, Vec<u8>>,
    /// Which loaders take `--argv0`.
    pub loaders: LoaderCache,
    /// Emulate ownership (the tracer is not root).
    pub emulate: bool,
    /// Host-to-guest owner mapping.
    pub owners: Owners,
    /// Owners given to symlinks and special files (guest path -> ids).
    pub link_owners: BTreeMap<String, (u32, u32)>,
    /// Trapped calls.
    pub trapped: u64,
    /// Stops of new threads seen before their parent's event.
    held: HashSet<i32>,
}

impl Tracer {
    /// A tracer for `view`.
    pub fn new(view: View, emulate: bool, owners: Owners) -> Tracer {
        Tracer {
            view,
            tracees: HashMap::new(),
            tids: HashSet::new(),
            exes: HashMap::new(),
            loaders: LoaderCache::default(),
            emulate,
            owners,
            link_owners: BTreeMap::new(),
            trapped: 0,
            held: HashSet::new(),
        }
    }

    fn add(&mut self, tid: i32, creds: Creds, fresh: bool) {
        self.tids.insert(tid);
        self.tracees.insert(
            tid,
            Tracee {
                tgid: None,
                creds,
                pending: None,
                exec_exe: None,
                fresh,
            },
        );
    }

    /// The thread group of `tid`.
    pub fn tgid(&mut self, tid: i32) -> i32 {
        if let Some(t) = self.tracees.get(&tid).and_then(|t| t.tgid) {
            return t;
        }
        let tgid = std::fs::read_to_string(format!("/proc/{tid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Tgid:"))
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(tid);
        if let Some(t) = self.tracees.get_mut(&tid) {
            t.tgid = Some(tgid);
        }
        tgid
    }

    /// Follows `first` (stopped at its initial SIGSTOP, options set) and everything it starts
    /// until the last of them ends; the step ends with `first`: the others are killed then.
    pub fn run(&mut self, first: i32, creds: Creds) -> std::io::Result<Exit> {
        self.add(first, creds, false);
        sys::cont(first, 0)?;
        let mut exit = Exit::default();
        let mut first_done = false;
        while let Some((tid, status)) = sys::wait_any()? {
            if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
                self.tracees.remove(&tid);
                self.tids.remove(&tid);
                self.exes.remove(&tid);
                if tid == first && !first_done {
                    first_done = true;
                    if libc::WIFEXITED(status) {
                        exit.code = Some(libc::WEXITSTATUS(status));
                    } else {
                        exit.signal = Some(libc::WTERMSIG(status));
                    }
                    // Like PID 1 of a namespace: the step is over, so is everything it left.
                    for t in self.tids.iter().chain(&self.held) {
                        sys::kill(*t);
                    }
                }
                continue;
            }
            if !libc::WIFSTOPPED(status) {
                continue;
            }
            let sig = (status >> 8) & 0xff;
            let event = (status >> 16) & 0xff;
            if first_done {
                let _ = sys::cont(tid, 0);
                continue;
            }
            // A resume that fails means the thread died meanwhile (its exit is reported next).
            let _ = self.stopped(tid, sig, event);
        }
        Ok(exit)
    }

    fn stopped(&mut self, tid: i32, sig: i32, event: i32) -> std::io::Result<()> {
        if !self.tracees.contains_key(&tid) {
            // A new thread whose parent's fork event has not arrived yet: hold it.
            self.held.insert(tid);
            return Ok(());
        }
        if sig == libc::SIGTRAP | 0x80 {
            let pending = self.tracees.get_mut(&tid).and_then(|t| t.pending.take());
            if let Some(p) = pending {
                let regs = sys::get_regs(tid)?;
                self.finish(tid, regs, p)?;
            }
            return sys::cont(tid, 0);
        }
        if sig == libc::SIGTRAP {
            match event {
                PTRACE_EVENT_SECCOMP => {
                    self.trapped += 1;
                    let regs = sys::get_regs(tid)?;
                    return if self.enter(tid, regs)? {
                        sys::syscall(tid)
                    } else {
                        sys::cont(tid, 0)
                    };
                }
                PTRACE_EVENT_FORK | PTRACE_EVENT_VFORK | PTRACE_EVENT_CLONE => {
                    let child = sys::event_msg(tid)? as i32;
                    let creds = self.tracees[&tid].creds.clone();
                    if self.held.remove(&child) {
                        self.add(child, creds, false);
                        let _ = sys::cont(child, 0);
                    } else {
                        self.add(child, creds, true);
                    }
                    return sys::cont(tid, 0);
                }
                PTRACE_EVENT_EXEC => {
                    let former = sys::event_msg(tid)? as i32;
                    if former != tid
                        && let Some(t) = self.tracees.remove(&former)
                    {
                        self.tids.remove(&former);
                        self.tracees.insert(tid, t);
                    }
                    if let Some(t) = self.tracees.get_mut(&tid) {
                        t.tgid = Some(tid);
                        t.pending = None;
                        match t.exec_exe.take() {
                            Some(exe) => self.exes.insert(tid, exe),
                            None => self.exes.remove(&tid),
                        };
                    }
                    return sys::cont(tid, 0);
                }
                0 => return sys::cont(tid, libc::SIGTRAP),
                _ => return sys::cont(tid, 0),
            }
        }
        let t = self
            .tracees
            .get_mut(&tid)
            .map(|t| std::mem::replace(&mut t.fresh, false));
        if sig == libc::SIGSTOP && t == Some(true) {
            return sys::cont(tid, 0);
        }
        if sys::is_group_stop(tid) {
            return sys::cont(tid, 0);
        }
        sys::cont(tid, sig)
    }

    /// Sets `regs` to skip the call with result `ret`.
    pub fn skip(&self, tid: i32, mut regs: Regs, ret: i64) -> std::io::Result<bool> {
        regs.set_nr(u64::MAX);
        regs.set_ret(ret);
        sys::set_regs(tid, &regs)?;
        Ok(false)
    }
}
