//! A tiny CI runner: reads build requests (one JSON object per line on stdin:
//! `{"context": "...", "tag": "...", "dockerfile": "..."}`), builds each into the local
//! store, and reports every event as a JSON line through its own `ProgressSink`.
//!
//! `echo '{"context":"examples/hello"}' | cargo run -p ossb-examples --example custom-ci-runner`

use ossb_core::backend::{BuildBackend, BuildRequest, DockerfileSource};
use ossb_core::exec::local::LocalBackend;
use ossb_core::progress::{ProgressEvent, ProgressSink};
use std::io::BufRead;

/// Prefixes every event with the job it belongs to.
struct JobSink {
    job: usize,
}

impl ProgressSink for JobSink {
    fn event(&self, event: &ProgressEvent) {
        if let Ok(json) = serde_json::to_string(event) {
            println!("{{\"job\":{},\"event\":{json}}}", self.job);
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    ossb_core::exec::sandbox::run_init_if_requested();
    let backend = LocalBackend::new();
    let mut failures = 0;
    for (job, line) in std::io::stdin().lock().lines().enumerate() {
        let spec: serde_json::Value = serde_json::from_str(&line?)?;
        let Some(context) = spec["context"].as_str() else {
            eprintln!("job {job}: missing \"context\"");
            failures += 1;
            continue;
        };
        let mut request = BuildRequest::new(context);
        if let Some(tag) = spec["tag"].as_str() {
            request.tags.push(tag.to_string());
        }
        if let Some(df) = spec["dockerfile"].as_str() {
            request.dockerfile = DockerfileSource::Path(df.into());
        }
        if let Err(e) = backend.build(&request, &JobSink { job }) {
            eprintln!("job {job}: {e} (exit code {})", e.exit_code());
            failures += 1;
        }
    }
    std::process::exit(if failures == 0 { 0 } else { 1 });
}
