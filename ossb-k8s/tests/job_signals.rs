//! SIGTERM and SIGINT to a real child process (this test binary re-executed) that runs a build
//! under the lifecycle manager.

use ossb_k8s::job::{JobLifecycleManager, JobStatus, StatusRecord};
use rustix::process::{Pid, Signal, kill_process};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const MODE: &str = "OSSB_SIGNAL_CHILD";
const DIR: &str = "OSSB_SIGNAL_DIR";

fn append(path: &Path, line: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open cleanup log");
    writeln!(f, "{line}").expect("append");
}

/// The child's "main": only does something when started by the tests below.
#[test]
fn signal_child() {
    let (Some(mode), Some(dir)) = (std::env::var_os(MODE), std::env::var_os(DIR)) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let job = JobLifecycleManager::with_options(
        dir.join("status.json"),
        Duration::from_millis(300),
        true,
    )
    .expect("job");
    let _handler = job.install_signal_handler().expect("handlers");
    job.start("b-sig");
    for name in ["first", "second", "third"] {
        let log = dir.join("cleanups");
        job.register_cleanup(name, move || append(&log, name));
    }
    std::fs::write(dir.join("ready"), "").expect("ready");
    let token = job.cancel_token();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if mode == "cooperative"
            && let Err(e) = token.check()
        {
            let code = job.finish::<()>(&Err(e));
            std::process::exit(code.code());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    std::process::exit(99);
}

fn spawn(mode: &str, dir: &Path) -> Child {
    Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "signal_child", "--nocapture", "--test-threads=1"])
        .env(MODE, mode)
        .env(DIR, dir)
        .spawn()
        .expect("spawn child")
}

fn wait(child: &mut Child) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("child did not exit");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn signal_when_ready(child: &Child, dir: &Path, sig: Signal) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !dir.join("ready").exists() {
        assert!(Instant::now() < deadline, "child never became ready");
        std::thread::sleep(Duration::from_millis(10));
    }
    let pid = Pid::from_raw(child.id() as i32).expect("pid");
    kill_process(pid, sig).expect("kill");
}

fn check(dir: &Path, signal: &str) {
    let rec: StatusRecord =
        serde_json::from_slice(&std::fs::read(dir.join("status.json")).expect("status"))
            .expect("json");
    assert_eq!((rec.status, rec.exit_code), (JobStatus::Cancelled, Some(8)));
    assert!(rec.message.contains(signal), "{}", rec.message);
    assert_eq!(
        std::fs::read_to_string(dir.join("cleanups")).expect("cleanups ran"),
        "third\nsecond\nfirst\n"
    );
}

#[test]
fn sigterm_cancels_a_cooperative_build_with_exit_8() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = spawn("cooperative", dir.path());
    signal_when_ready(&child, dir.path(), Signal::TERM);
    assert_eq!(wait(&mut child), 8);
    check(dir.path(), "SIGTERM");
}

#[test]
fn sigint_to_a_build_that_never_polls_exits_8_after_the_grace_period() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = spawn("stubborn", dir.path());
    let sent = Instant::now();
    signal_when_ready(&child, dir.path(), Signal::INT);
    assert_eq!(wait(&mut child), 8);
    assert!(
        sent.elapsed() >= Duration::from_millis(300),
        "grace period honoured"
    );
    check(dir.path(), "SIGINT");
}
