//! [`StatusProgress`]: the progress sink that keeps the status file's progress up to date.

use super::lifecycle::JobLifecycleManager;
use super::status::{FailedStep, JobStatus, now_rfc3339};
use ossb_core::progress::{ProgressEvent, ProgressSink, StepId};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// What the sink has seen of the build's end.
#[derive(Debug, Clone, Default)]
pub(crate) struct Summary {
    pub(crate) operations: usize,
    pub(crate) cache_hits: usize,
    pub(crate) bytes_read: u64,
    pub(crate) bytes_written: u64,
    pub(crate) duration: Option<Duration>,
    pub(crate) digest: Option<String>,
}

/// Step counts per platform, the running steps and the stage names.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    total_per_platform: usize,
    finished: BTreeMap<String, usize>,
    total: usize,
    stage_names: BTreeMap<(String, usize), String>,
    running: HashMap<StepId, (String, String)>,
    last_started: Option<StepId>,
    operations: usize,
    cache_hits: usize,
    summary: Option<Summary>,
}

impl Tracker {
    pub(crate) fn summary(&self) -> Summary {
        self.summary.clone().unwrap_or(Summary {
            operations: self.operations,
            cache_hits: self.cache_hits,
            bytes_read: 0,
            bytes_written: 0,
            duration: None,
            digest: None,
        })
    }

    /// The step that was running most recently (the one a failure happened in).
    pub(crate) fn running_step(&self) -> Option<FailedStep> {
        let id = self
            .last_started
            .as_ref()
            .filter(|id| self.running.contains_key(*id))
            .or_else(|| self.running.keys().next())?;
        let (operation, instruction) = self.running.get(id)?;
        Some(FailedStep {
            platform: id.platform.clone(),
            stage: id.stage,
            stage_name: self
                .stage_names
                .get(&(id.platform.clone(), id.stage))
                .cloned()
                .unwrap_or_else(|| id.stage.to_string()),
            step: id.step,
            operation: operation.clone(),
            instruction: instruction.clone(),
        })
    }
}

/// A [`ProgressSink`] feeding a [`JobLifecycleManager`]: `BuildStarted` moves a pending job to
/// `Running`; finished steps raise the overall and per-platform progress (never lowering
/// it); the running step is remembered so a failure names it; `BuildFinished` provides the
/// operation and cache-hit counts of the final `build_result`.
///
/// ```
/// use ossb_core::progress::{ProgressEvent, ProgressSink};
/// use ossb_k8s::job::{JobLifecycleManager, JobStatus};
/// let dir = tempfile::tempdir().unwrap();
/// let job = JobLifecycleManager::new(dir.path().join("s.json")).unwrap();
/// let sink = job.progress_sink();
/// sink.event(&ProgressEvent::BuildStarted { build_id: "b".into(), platforms: vec!["linux/amd64".into()], tags: vec![], total_steps: 2 });
/// assert_eq!(job.status(), JobStatus::Running);
/// ```
#[derive(Debug, Clone)]
pub struct StatusProgress {
    job: JobLifecycleManager,
}

impl JobLifecycleManager {
    /// The sink that keeps this job's status file progress up to date.
    pub fn progress_sink(&self) -> StatusProgress {
        StatusProgress { job: self.clone() }
    }
}

impl ProgressSink for StatusProgress {
    fn event(&self, event: &ProgressEvent) {
        if let ProgressEvent::BuildStarted { build_id, .. } = event
            && self.job.status() == JobStatus::Pending
        {
            self.job.start(build_id);
        }
        let mut st = self.job.lock();
        let t = &mut st.tracker;
        let message = match event {
            ProgressEvent::BuildStarted {
                platforms,
                total_steps,
                ..
            } => {
                t.total = *total_steps;
                t.total_per_platform = total_steps.div_ceil(platforms.len().max(1));
                for p in platforms {
                    t.finished.entry(p.clone()).or_insert(0);
                }
                None
            }
            ProgressEvent::StageStarted {
                platform,
                stage,
                name,
            } => {
                t.stage_names
                    .insert((platform.clone(), *stage), name.clone());
                None
            }
            ProgressEvent::StepStarted {
                id,
                operation,
                description,
            } => {
                t.running
                    .insert(id.clone(), (operation.clone(), description.clone()));
                t.last_started = Some(id.clone());
                Some(format!("[{}] {}", id.platform, description))
            }
            ProgressEvent::StepFinished { id, cache_hit, .. } => {
                t.running.remove(id);
                t.operations += 1;
                t.cache_hits += usize::from(*cache_hit);
                *t.finished.entry(id.platform.clone()).or_insert(0) += 1;
                Some(format!(
                    "Finished step {} of {}",
                    t.operations,
                    t.total.max(t.operations)
                ))
            }
            ProgressEvent::BuildFinished {
                success,
                operations,
                cache_hits,
                bytes_read,
                bytes_written,
                duration,
                digest,
                ..
            } => {
                // A failed build reports no counts: keep the steps seen so far.
                let (operations, cache_hits) = if *success {
                    (*operations, *cache_hits)
                } else {
                    (t.operations, t.cache_hits)
                };
                t.summary = Some(Summary {
                    operations,
                    cache_hits,
                    bytes_read: *bytes_read,
                    bytes_written: *bytes_written,
                    duration: Some(*duration),
                    digest: digest.clone(),
                });
                None
            }
            ProgressEvent::Sandbox { rung, .. } => {
                // Written right away: a build that fails in its first RUN still says which
                // rung it tried.
                st.record.sandbox = Some(rung.clone());
                let rec = st.record.clone();
                drop(st);
                self.job.write(&rec);
                return;
            }
            _ => None,
        };
        let Some(message) = message else {
            return;
        };
        if st.record.status != JobStatus::Running {
            return;
        }
        let overall = if st.tracker.total > 0 {
            (st.tracker.operations as f64 * 100.0 / st.tracker.total as f64).min(100.0)
        } else {
            0.0
        };
        let per: Vec<(String, f64)> = st
            .tracker
            .finished
            .iter()
            .map(|(p, n)| {
                let total = st.tracker.total_per_platform.max(*n).max(1);
                (p.clone(), (*n as f64 * 100.0 / total as f64).min(100.0))
            })
            .collect();
        let rec = &mut st.record;
        rec.progress = rec.progress.max(overall);
        for (p, v) in per {
            let e = rec.platforms.entry(p).or_insert(0.0);
            *e = e.max(v);
        }
        rec.message = message;
        rec.timestamp = now_rfc3339();
        let rec = rec.clone();
        drop(st);
        self.job.write(&rec);
    }
}
