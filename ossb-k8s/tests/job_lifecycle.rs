//! The status file through a build's life: success, failure with the stage, timeout, progress
//! and the `job_status` log events.

use ossb_core::progress::{ProgressEvent, ProgressSink, StepId};
use ossb_core::{Error, ExitCode};
use ossb_k8s::job::{JobLifecycleManager, JobStatus, StatusRecord};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn read(path: &Path) -> (StatusRecord, serde_json::Value) {
    let bytes = std::fs::read(path).expect("status file exists");
    (
        serde_json::from_slice(&bytes).expect("status record"),
        serde_json::from_slice(&bytes).expect("json"),
    )
}

fn step(platform: &str, stage: usize, step: usize) -> StepId {
    StepId {
        platform: platform.into(),
        stage,
        step,
    }
}

fn run_steps(sink: &dyn ProgressSink, platform: &str, stage: usize, n: usize, hits: usize) {
    for i in 0..n {
        sink.event(&ProgressEvent::StepStarted {
            id: step(platform, stage, i),
            operation: "RUN".into(),
            description: format!("RUN step {i}"),
        });
        sink.event(&ProgressEvent::StepFinished {
            id: step(platform, stage, i),
            cache_hit: i < hits,
            duration: Duration::from_millis(5),
            bytes: 10,
        });
    }
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn success_goes_pending_running_succeeded_with_the_build_result() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ossb-status.json");
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let job = JobLifecycleManager::new(&path).expect("status file writable");
    let (rec, _) = read(&path);
    assert_eq!((rec.status, rec.progress), (JobStatus::Pending, 0.0));

    let sink = job.progress_sink();
    sink.event(&ProgressEvent::BuildStarted {
        build_id: "b-42".into(),
        platforms: vec!["linux/amd64".into()],
        tags: vec!["myapp:latest".into()],
        total_steps: 15,
    });
    let (rec, _) = read(&path);
    assert_eq!(rec.status, JobStatus::Running);
    assert_eq!(rec.build_id.as_deref(), Some("b-42"));

    assert_eq!(rec.sandbox, None);
    // The execution ladder's choice is in the file as soon as the first RUN step makes it.
    sink.event(&ProgressEvent::Sandbox {
        rung: "reduced".into(),
        detail: "user+mount+PID namespaces".into(),
    });
    assert_eq!(read(&path).1["sandbox"], "reduced");
    run_steps(&sink, "linux/amd64", 0, 6, 6);
    let (rec, _) = read(&path);
    assert_eq!(rec.progress, 40.0);
    assert_eq!(rec.sandbox.as_deref(), Some("reduced"));
    assert_eq!(rec.platforms["linux/amd64"], 40.0);
    // Progress reported lower than what is already shown never lowers it.
    job.progress(10.0, "late report");
    assert_eq!(read(&path).0.progress, 40.0);
    run_steps(&sink, "linux/amd64", 1, 9, 2);
    sink.event(&ProgressEvent::BuildFinished {
        success: true,
        digest: Some("sha256:abc".into()),
        operations: 15,
        cache_hits: 8,
        bytes_read: 2048,
        bytes_written: 1024,
        duration: Duration::from_secs(45),
        error: None,
    });
    let order = Arc::new(Mutex::new(Vec::new()));
    for name in ["store", "tmp"] {
        let o = order.clone();
        job.register_cleanup(name, move || o.lock().expect("lock").push(name));
    }
    let code = job.finish::<()>(&Ok(()));
    assert_eq!(code, ExitCode::Success);
    assert_eq!(*order.lock().expect("lock"), ["tmp", "store"]);

    let (rec, json) = read(&path);
    assert_eq!(json["status"], "Succeeded");
    assert_eq!(json["message"], "Build completed successfully");
    assert_eq!(json["progress"], 100.0);
    assert_eq!(
        json["build_result"],
        serde_json::json!({"success": true, "operations": 15, "cache_hits": 8, "bytes_read": 2048, "bytes_written": 1024, "duration": "45s", "digest": "sha256:abc"})
    );
    assert!(chrono::DateTime::parse_from_rfc3339(&rec.timestamp).is_ok());
    assert_eq!(rec.exit_code, Some(0));

    // Ended jobs stay ended.
    job.fail(&Error::new(ExitCode::Build, "late"), None);
    assert_eq!(read(&path).0.status, JobStatus::Succeeded);

    let text = String::from_utf8(logs.0.lock().expect("lock").clone()).expect("utf-8");
    let statuses: Vec<String> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["component"] == "job_status")
        .filter_map(|v| v["fields"]["status"].as_str().map(String::from))
        .collect();
    assert_eq!(statuses, ["Running", "Succeeded"]);
}

#[test]
fn failure_names_the_stage_and_step_and_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("status.json");
    let job = JobLifecycleManager::new(&path).expect("job");
    let sink = job.progress_sink();
    sink.event(&ProgressEvent::BuildStarted {
        build_id: "b-7".into(),
        platforms: vec!["linux/amd64".into(), "linux/arm64".into()],
        tags: vec![],
        total_steps: 8,
    });
    run_steps(&sink, "linux/amd64", 0, 4, 0);
    sink.event(&ProgressEvent::StageStarted {
        platform: "linux/arm64".into(),
        stage: 1,
        name: "build".into(),
    });
    sink.event(&ProgressEvent::StepStarted {
        id: step("linux/arm64", 1, 3),
        operation: "RUN".into(),
        description: "RUN make".into(),
    });
    let err = Error::new(ExitCode::Build, "RUN make exited with status 2");
    let code = job.finish::<()>(&Err(err));
    assert_eq!(code.code(), 2);
    let (rec, json) = read(&path);
    assert_eq!(rec.status, JobStatus::Failed);
    assert_eq!(rec.exit_code, Some(2));
    assert_eq!(rec.progress, 50.0);
    assert_eq!(rec.platforms["linux/amd64"], 100.0);
    assert_eq!(rec.platforms["linux/arm64"], 0.0);
    let failed = rec.failed_step.expect("failed step");
    assert_eq!(
        (failed.stage, failed.stage_name.as_str(), failed.step),
        (1, "build", 3)
    );
    assert_eq!(failed.platform, "linux/arm64");
    assert!(
        rec.message
            .contains("stage 1 (build) step 3 `RUN make` on linux/arm64"),
        "{}",
        rec.message
    );
    assert_eq!(json["build_result"]["success"], false);
}

#[test]
fn a_cooperative_build_past_its_time_limit_exits_7() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("status.json");
    let job = JobLifecycleManager::with_options(&path, Duration::from_secs(5), false).expect("job");
    let token = job.cancel_token();
    job.start("b-t");
    let _watchdog = job.start_timeout(Duration::from_millis(100));
    // The "build" polls the token like the executor does between steps.
    let result: Result<(), Error> = loop {
        if let Err(e) = token.check() {
            break Err(e);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(job.finish(&result), ExitCode::Timeout);
    let (rec, _) = read(&path);
    assert_eq!((rec.status, rec.exit_code), (JobStatus::Failed, Some(7)));
    assert!(rec.message.contains("time limit"), "{}", rec.message);
}

#[test]
fn a_build_that_ignores_the_timeout_is_ended_after_the_grace_period() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("status.json");
    let job =
        JobLifecycleManager::with_options(&path, Duration::from_millis(100), false).expect("job");
    let ran = Arc::new(Mutex::new(false));
    let r = ran.clone();
    job.register_cleanup("flag", move || *r.lock().expect("lock") = true);
    job.start("b-t2");
    let _watchdog = job.start_timeout(Duration::from_millis(50));
    assert!(
        job.wait_ended(Duration::from_secs(10)),
        "watchdog ended the job"
    );
    let (rec, _) = read(&path);
    assert_eq!((rec.status, rec.exit_code), (JobStatus::Failed, Some(7)));
    assert!(*ran.lock().expect("lock"), "cleanups ran");
}

#[test]
fn an_unwritable_status_path_is_a_configuration_error() {
    let err = JobLifecycleManager::new("/nonexistent-dir/ossb-status.json").expect_err("fails");
    assert_eq!(err.exit_code(), ExitCode::Configuration);
    assert!(err.to_string().contains("OSSB_STATUS_FILE"), "{err}");
}
