//! The pod's JSON log lines turned back into [`ProgressEvent`]s, so a build in the cluster
//! shows the same progress locally as a local build; and the final `job_status` line kept as
//! the build's result.
//!
//! The in-pod side writes one JSON object per line (`ossb-log`'s `LogEvents` sink and the job
//! lifecycle); this is its inverse.

use ossb_core::progress::{ProgressEvent, StepId};
use serde_json::Value;
use std::time::Duration;

/// What the pod's log said about the end of the build.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodReport {
    /// The last `job_status` line with a terminal status (`Succeeded`, `Failed`, `Cancelled`).
    pub final_status: Option<Value>,
    /// The last error line (`"level":"error"`, component `cli`): the in-pod error message.
    pub error: Option<String>,
    /// Lines that were not JSON (kept for the failure message).
    pub other_lines: Vec<String>,
}

impl PodReport {
    /// Read one log line: returns the progress event it carries, if any.
    pub fn line(&mut self, line: &str) -> Option<ProgressEvent> {
        let line = line.trim_end();
        if line.is_empty() {
            return None;
        }
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            self.other_lines.push(line.to_string());
            if self.other_lines.len() > 20 {
                self.other_lines.remove(0);
            }
            return None;
        };
        let component = v["component"].as_str().unwrap_or_default();
        if component == "job_status"
            && matches!(
                v["status"].as_str(),
                Some("Succeeded" | "Failed" | "Cancelled")
            )
        {
            self.final_status = Some(v.clone());
        }
        if v["level"] == "error" && component == "cli" {
            let msg = v["msg"].as_str().unwrap_or_default();
            self.error = Some(msg.strip_prefix("error: ").unwrap_or(msg).to_string());
        }
        translate(&v)
    }

    /// The exit code the pod reported in its last status line.
    pub fn exit_code(&self) -> Option<i32> {
        self.final_status
            .as_ref()
            .and_then(|s| s["exit_code"].as_i64())
            .map(|c| c as i32)
    }
}

fn text(v: &Value, k: &str) -> String {
    match &v[k] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn num(v: &Value, k: &str) -> u64 {
    v[k].as_u64()
        .or_else(|| v[k].as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0)
}

fn secs(v: &Value, k: &str) -> Duration {
    Duration::from_secs_f64(v[k].as_f64().unwrap_or(0.0).max(0.0))
}

fn list(v: &Value, k: &str) -> Vec<String> {
    text(v, k)
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn step_id(v: &Value) -> StepId {
    StepId {
        platform: text(v, "platform"),
        stage: num(v, "stage") as usize,
        step: num(v, "step") as usize,
    }
}

/// The progress event one JSON log line of the pod stands for.
pub fn translate(v: &Value) -> Option<ProgressEvent> {
    let msg = v["msg"].as_str().unwrap_or_default();
    let component = v["component"].as_str().unwrap_or_default();
    Some(match (component, msg) {
        ("build", "build started") => ProgressEvent::BuildStarted {
            build_id: text(v, "build_id"),
            platforms: list(v, "platforms"),
            tags: list(v, "tags"),
            total_steps: num(v, "total_steps") as usize,
        },
        ("build", "build completed") => ProgressEvent::BuildFinished {
            success: true,
            digest: Some(text(v, "digest")).filter(|d| !d.is_empty()),
            operations: num(v, "operations") as usize,
            cache_hits: num(v, "cache_hits") as usize,
            bytes_read: num(v, "bytes_read"),
            bytes_written: num(v, "bytes_written"),
            duration: secs(v, "duration_s"),
            error: None,
        },
        ("build", "build failed") => ProgressEvent::BuildFinished {
            success: false,
            digest: None,
            operations: 0,
            cache_hits: 0,
            bytes_read: 0,
            bytes_written: 0,
            duration: secs(v, "duration_s"),
            error: Some(text(v, "error")),
        },
        ("build", _) if v["level"] == "warn" => ProgressEvent::Warning {
            message: msg.to_string(),
        },
        ("stage", "stage started") => ProgressEvent::StageStarted {
            platform: text(v, "platform"),
            stage: num(v, "stage") as usize,
            name: text(v, "name"),
        },
        ("stage", "stage finished") => ProgressEvent::StageFinished {
            platform: text(v, "platform"),
            stage: num(v, "stage") as usize,
        },
        ("operation", "step output") if v.get("output").is_some() => ProgressEvent::StepOutput {
            id: step_id(v),
            line: text(v, "output"),
        },
        ("operation", "step finished") if v.get("cache_hit").is_some() => {
            ProgressEvent::StepFinished {
                id: step_id(v),
                cache_hit: v["cache_hit"].as_bool().unwrap_or(false),
                duration: secs(v, "duration_s"),
                bytes: num(v, "bytes"),
            }
        }
        ("operation", _) if v.get("operation").is_some() => ProgressEvent::StepStarted {
            id: step_id(v),
            operation: text(v, "operation"),
            description: msg.to_string(),
        },
        ("registry", "registry operation") => ProgressEvent::Registry {
            operation: text(v, "operation"),
            registry: text(v, "registry"),
            repository: text(v, "repository"),
            bytes: num(v, "bytes"),
            duration: secs(v, "duration_s"),
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn log_event_lines_become_progress_events_again() {
        let mut r = PodReport::default();
        let started = r.line(&json!({"component":"build","msg":"build started","build_id":"b","platforms":"linux/amd64","tags":"a:1,b:2","total_steps":3,"level":"info"}).to_string());
        assert_eq!(
            started,
            Some(ProgressEvent::BuildStarted {
                build_id: "b".into(),
                platforms: vec!["linux/amd64".into()],
                tags: vec!["a:1".into(), "b:2".into()],
                total_steps: 3
            })
        );
        let step = r.line(&json!({"component":"operation","msg":"COPY a /a","operation":"COPY","platform":"linux/amd64","stage":0,"step":1}).to_string());
        assert!(
            matches!(step, Some(ProgressEvent::StepStarted { ref operation, ref description, .. }) if operation == "COPY" && description == "COPY a /a")
        );
        let out = r.line(&json!({"component":"operation","msg":"step output","output":"hi","platform":"p","stage":0,"step":2}).to_string());
        assert!(matches!(out, Some(ProgressEvent::StepOutput { ref line, .. }) if line == "hi"));
        let fin = r.line(&json!({"component":"operation","msg":"step finished","cache_hit":true,"duration_s":0.5,"bytes":7,"platform":"p","stage":0,"step":2}).to_string());
        assert!(matches!(
            fin,
            Some(ProgressEvent::StepFinished {
                cache_hit: true,
                bytes: 7,
                ..
            })
        ));
        assert_eq!(r.line("sha256:abc"), None);
        r.line(&json!({"component":"job_status","status":"Running"}).to_string());
        assert_eq!(r.final_status, None);
        r.line(&json!({"component":"job_status","status":"Failed","exit_code":2}).to_string());
        r.line(
            &json!({"component":"cli","level":"error","exit_code":2,"msg":"error: no such file"})
                .to_string(),
        );
        assert_eq!(r.exit_code(), Some(2));
        assert_eq!(r.error.as_deref(), Some("no such file"));
    }
}
