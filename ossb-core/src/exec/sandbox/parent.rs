//! The parent side of one step: spawn the helper, write its id maps, stream its output, wait.

use super::cancel::CancelToken;
use super::error::SandboxError;
use super::idmap::IdMap;
use super::protocol::{self, FromInit, MARKER_ENV, ToInit};
use rustix::event::{PollFd, PollFlags};
use std::collections::VecDeque;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// How many output lines a failure keeps.
pub(super) const TAIL_LINES: usize = 20;
/// Longest line passed to the callback; longer output is split.
const MAX_LINE: usize = 64 * 1024;
/// How long the helper may take to unshare before it is considered broken.
const UNSHARE_TIMEOUT: Duration = Duration::from_secs(20);

/// What the parent learned about a step that ran to its end.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub warnings: Vec<String>,
    pub stubs: Vec<String>,
    pub tail: Vec<String>,
    pub link_owners: std::collections::BTreeMap<String, (u32, u32)>,
    pub owner_calls: Option<(u64, u64)>,
}

/// Runs one step through the helper binary started in `mode`; `first` is the first message
/// on its stdin (`ToInit::Config` for the namespace init). `idmap` is written when the helper
/// unshared a user namespace; with `own_group` the step's first process leads its own process
/// group (no PID namespace), which is killed with it.
pub(super) fn run_step<T: serde::Serialize>(
    helper: &Path,
    mode: &str,
    idmap: Option<&IdMap>,
    own_group: bool,
    first: &T,
    cancel: &CancelToken,
    on_line: &mut dyn FnMut(&str),
) -> Result<Outcome, SandboxError> {
    if cancel.is_cancelled() {
        return Err(SandboxError::Cancelled);
    }
    let helper_err = |e: String| SandboxError::Helper {
        helper: helper.display().to_string(),
        error: e,
    };
    let mut child = Command::new(helper)
        .env_clear()
        .env(MARKER_ENV, mode)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| helper_err(format!("cannot start it: {e}")))?;
    let mut guard = Guard {
        child: &mut child,
        step_pidfd: None,
        step_group: None,
        done: false,
    };
    let mut stdin = guard.child.stdin.take();
    let msgs: OwnedFd = guard
        .child
        .stdout
        .take()
        .map(Into::into)
        .ok_or_else(|| helper_err("no stdout pipe".into()))?;
    let output: OwnedFd = guard
        .child
        .stderr
        .take()
        .map(Into::into)
        .ok_or_else(|| helper_err("no stderr pipe".into()))?;
    send(&mut stdin, first).map_err(|e| helper_err(format!("sending the step: {e}")))?;

    let mut out = Outcome::default();
    let mut setup_failed: Option<(String, String)> = None;
    let mut msg_buf = Vec::new();
    let mut out_buf = Vec::new();
    let mut tail: VecDeque<String> = VecDeque::new();
    let (mut msgs_open, mut output_open) = (true, true);
    let started = Instant::now();
    let mut unshared = false;
    let mut emit = |line: &[u8], tail: &mut VecDeque<String>| {
        let text = String::from_utf8_lossy(line);
        on_line(&text);
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(text.into_owned());
    };
    let wake = cancel.wake_fd();
    while msgs_open || output_open {
        let mut fds = vec![PollFd::new(&wake, PollFlags::IN)];
        let msg_idx = msgs_open.then(|| {
            fds.push(PollFd::new(&msgs, PollFlags::IN));
            fds.len() - 1
        });
        let out_idx = output_open.then(|| {
            fds.push(PollFd::new(&output, PollFlags::IN));
            fds.len() - 1
        });
        let timeout = rustix::event::Timespec {
            tv_sec: 1,
            tv_nsec: 0,
        };
        match rustix::event::poll(&mut fds, Some(&timeout)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(SandboxError::io("polling the step's pipes", e)),
        }
        let ready = |i: Option<usize>| i.is_some_and(|i| !fds[i].revents().is_empty());
        let (cancel_ready, msg_ready, out_ready) =
            (!fds[0].revents().is_empty(), ready(msg_idx), ready(out_idx));
        drop(fds);
        if cancel_ready || cancel.is_cancelled() {
            guard.kill();
            return Err(SandboxError::Cancelled);
        }
        if !unshared && started.elapsed() > UNSHARE_TIMEOUT {
            guard.kill();
            return Err(helper_err(
                "it did not answer (does its main call run_init_if_requested?)".into(),
            ));
        }
        if out_ready && !read_lines(&output, &mut out_buf, &mut |l| emit(l, &mut tail))? {
            output_open = false;
            if !out_buf.is_empty() {
                emit(&std::mem::take(&mut out_buf), &mut tail);
            }
        }
        if msg_ready {
            let mut lines = Vec::new();
            if !read_lines(&msgs, &mut msg_buf, &mut |l| lines.push(l.to_vec()))? {
                msgs_open = false;
            }
            for line in lines {
                let msg: FromInit =
                    protocol::parse(&line).map_err(|e| helper_err(format!("bad message: {e}")))?;
                match msg {
                    FromInit::Unshared => {
                        unshared = true;
                        // No maps to write in a rung without namespaces.
                        let res = idmap.map_or(Ok(()), |m| m.write_for(guard.child.id()));
                        let reply = if res.is_ok() {
                            ToInit::MapsWritten
                        } else {
                            ToInit::Abort
                        };
                        let _ = send(&mut stdin, &reply);
                        if let Err(e) = res {
                            guard.kill();
                            return Err(e);
                        }
                    }
                    FromInit::Started { pid } => {
                        // Without a PID namespace the step's first process leads its own
                        // process group: killing the group kills what it started.
                        if own_group {
                            guard.step_group = rustix::process::Pid::from_raw(pid);
                        }
                        // A helper without namespaces never reports `Unshared`.
                        unshared = true;
                        guard.step_pidfd = rustix::process::Pid::from_raw(pid).and_then(|p| {
                            rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty())
                                .ok()
                        });
                    }
                    FromInit::Stubs { paths } => out.stubs.extend(paths),
                    FromInit::Warning { text } => out.warnings.push(text),
                    FromInit::LinkOwner { path, uid, gid } => {
                        out.link_owners.insert(path, (uid, gid));
                    }
                    FromInit::OwnerStats {
                        notifications,
                        emulated,
                    } => out.owner_calls = Some((notifications, emulated)),
                    FromInit::SetupFailed { stage, error } => setup_failed = Some((stage, error)),
                    FromInit::Exited { code, signal } => {
                        out.code = code;
                        out.signal = signal;
                    }
                }
            }
        }
    }
    drop(stdin);
    let status = guard
        .child
        .wait()
        .map_err(|e| SandboxError::io("waiting for the sandbox init", e))?;
    guard.done = true;
    out.tail = tail.into();
    if let Some((stage, error)) = setup_failed {
        if stage == super::STAGE_UNSHARE {
            return Err(SandboxError::UserNamespaceRefused { cause: error });
        }
        return Err(SandboxError::Setup { stage, error });
    }
    if out.code.is_none() && out.signal.is_none() {
        return Err(helper_err(format!(
            "it ended ({status}) without reporting the step's exit"
        )));
    }
    Ok(out)
}

fn send<T: serde::Serialize>(stdin: &mut Option<ChildStdin>, msg: &T) -> std::io::Result<()> {
    match stdin {
        Some(s) => protocol::send(s, msg).and_then(|()| s.flush()),
        None => Err(std::io::Error::other("stdin closed")),
    }
}

/// Reads what is available, calling `line` for each complete line; `false` at end of file.
fn read_lines(
    fd: &OwnedFd,
    buf: &mut Vec<u8>,
    line: &mut dyn FnMut(&[u8]),
) -> Result<bool, SandboxError> {
    let mut chunk = [0u8; 16384];
    let n = match rustix::io::read(fd.as_fd(), &mut chunk) {
        Ok(n) => n,
        Err(rustix::io::Errno::INTR) | Err(rustix::io::Errno::AGAIN) => return Ok(true),
        Err(e) => return Err(SandboxError::io("reading the step's output", e)),
    };
    if n == 0 {
        return Ok(false);
    }
    buf.extend_from_slice(&chunk[..n]);
    let mut start = 0;
    while let Some(pos) = buf[start..].iter().position(|&b| b == b'\n') {
        let end = start + pos;
        let l = &buf[start..end];
        line(l.strip_suffix(b"\r").unwrap_or(l));
        start = end + 1;
    }
    buf.drain(..start);
    if buf.len() > MAX_LINE {
        line(buf);
        buf.clear();
    }
    Ok(true)
}

/// Kills the step's PID namespace and the init unless the step ended normally.
struct Guard<'a> {
    child: &'a mut Child,
    step_pidfd: Option<OwnedFd>,
    step_group: Option<rustix::process::Pid>,
    done: bool,
}

impl Guard<'_> {
    fn kill(&mut self) {
        if let Some(fd) = &self.step_pidfd {
            // SIGKILL to PID 1 of the namespace kills every process in it.
            let _ = rustix::process::pidfd_send_signal(fd, rustix::process::Signal::KILL);
        }
        if let Some(group) = self.step_group {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.done = true;
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.kill();
        }
    }
}
