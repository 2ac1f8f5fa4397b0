//! Typed progress events and the [`ProgressSink`] trait that receives them.
//!
//! The executor pushes events to a sink as the build goes on (a push model, like ripgrep's
//! `Sink`): one required method, [`ProgressSink::event`], and a defaulted [`ProgressSink::finish`].
//! Sinks live in adapters (`ossb-log` has a JSON progress file, log events and a terminal view);
//! [`NoopSink`], [`FnSink`] and [`FanOut`] are provided here.

use serde::Serialize;
use std::time::Duration;

/// Identifies one step of one stage for one platform.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct StepId {
    /// Target platform, e.g. `linux/amd64`.
    pub platform: String,
    /// Stage index in the Dockerfile.
    pub stage: usize,
    /// Step index inside the stage (0 is `FROM`).
    pub step: usize,
}

/// Something that happened during a build.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ProgressEvent {
    /// The build started.
    BuildStarted {
        /// Build identifier.
        build_id: String,
        /// Target platforms.
        platforms: Vec<String>,
        /// Tags the result will get.
        tags: Vec<String>,
        /// Steps that will run (after pruning), over all platforms.
        total_steps: usize,
    },
    /// A stage started.
    StageStarted {
        /// Target platform.
        platform: String,
        /// Stage index.
        stage: usize,
        /// Stage name (`AS name`), or its index as text.
        name: String,
    },
    /// A step started.
    StepStarted {
        /// Which step.
        id: StepId,
        /// The instruction keyword in upper case (`RUN`, `COPY`, ...).
        operation: String,
        /// The instruction with expanded arguments, secrets never included.
        description: String,
    },
    /// A line of output of a running step.
    StepOutput {
        /// Which step.
        id: StepId,
        /// The line, without its newline.
        line: String,
    },
    /// A step finished.
    StepFinished {
        /// Which step.
        id: StepId,
        /// The step was served from the cache.
        cache_hit: bool,
        /// Wall time of the step.
        #[serde(with = "duration_secs")]
        duration: Duration,
        /// Bytes written into the layer (uncompressed), 0 for metadata steps.
        bytes: u64,
    },
    /// A stage finished.
    StageFinished {
        /// Target platform.
        platform: String,
        /// Stage index.
        stage: usize,
    },
    /// A registry operation finished.
    Registry {
        /// `pull`, `push`, `mount` or `exists`.
        operation: String,
        /// Registry host.
        registry: String,
        /// Repository path.
        repository: String,
        /// Bytes transferred.
        bytes: u64,
        /// Wall time.
        #[serde(with = "duration_secs")]
        duration: Duration,
    },
    /// A warning for the user (lint findings, fallbacks taken).
    Warning {
        /// The message.
        message: String,
    },
    /// The rung of the execution ladder RUN steps run on was chosen (once per build, before
    /// the first RUN step).
    Sandbox {
        /// `full`, `reduced`, `chroot` or `ptrace`.
        rung: String,
        /// What the rung isolates, in a few words.
        detail: String,
    },
    /// The build ended.
    BuildFinished {
        /// True on success.
        success: bool,
        /// The image digest on success.
        digest: Option<String>,
        /// Steps executed or served from the cache.
        operations: usize,
        /// Steps served from the cache.
        cache_hits: usize,
        /// Bytes read: build context files and base or cached layer blobs.
        bytes_read: u64,
        /// Bytes of layer blobs written to the store.
        bytes_written: u64,
        /// Total wall time.
        #[serde(with = "duration_secs")]
        duration: Duration,
        /// The error message on failure.
        error: Option<String>,
    },
}

mod duration_secs {
    use serde::Serializer;
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

/// Receives progress events. Implementations must be cheap and must not block for long: the
/// executor calls them from its worker threads.
pub trait ProgressSink: Send + Sync {
    /// Called for every event, in order per step.
    fn event(&self, event: &ProgressEvent);

    /// Called once when the build has ended and no more events follow.
    fn finish(&self) {}
}

/// A sink that drops every event.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopSink;

impl ProgressSink for NoopSink {
    fn event(&self, _event: &ProgressEvent) {}
}

/// A sink made from a closure.
pub struct FnSink<F>(pub F);

impl<F: Fn(&ProgressEvent) + Send + Sync> ProgressSink for FnSink<F> {
    fn event(&self, event: &ProgressEvent) {
        (self.0)(event)
    }
}

/// Sends every event to several sinks, in order.
#[derive(Default)]
pub struct FanOut {
    sinks: Vec<Box<dyn ProgressSink>>,
}

impl FanOut {
    /// An empty fan-out.
    pub fn new() -> Self {
        FanOut::default()
    }

    /// Add a sink.
    pub fn with(mut self, sink: impl ProgressSink + 'static) -> Self {
        self.sinks.push(Box::new(sink));
        self
    }

    /// Add a boxed sink.
    pub fn push(&mut self, sink: Box<dyn ProgressSink>) {
        self.sinks.push(sink);
    }
}

impl ProgressSink for FanOut {
    fn event(&self, event: &ProgressEvent) {
        for sink in &self.sinks {
            sink.event(event);
        }
    }

    fn finish(&self) {
        for sink in &self.sinks {
            sink.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn fan_out_delivers_every_event_to_every_sink_in_order() {
        let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
        let count = std::sync::Arc::new(AtomicUsize::new(0));
        let (s, c) = (seen.clone(), count.clone());
        let fan = FanOut::new()
            .with(FnSink(move |e: &ProgressEvent| {
                if let ProgressEvent::Warning { message } = e {
                    s.lock().expect("not poisoned").push(message.clone());
                }
            }))
            .with(FnSink(move |_e: &ProgressEvent| {
                c.fetch_add(1, Ordering::SeqCst);
            }));
        for m in ["a", "b"] {
            fan.event(&ProgressEvent::Warning { message: m.into() });
        }
        assert_eq!(*seen.lock().expect("not poisoned"), vec!["a", "b"]);
        assert_eq!(count.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn events_serialise_with_a_tag_and_seconds() {
        let e = ProgressEvent::StepFinished {
            id: StepId {
                platform: "linux/amd64".into(),
                stage: 1,
                step: 2,
            },
            cache_hit: true,
            duration: Duration::from_millis(1500),
            bytes: 7,
        };
        let v = serde_json::to_value(&e).expect("serialisable");
        assert_eq!(v["event"], "step_finished");
        assert_eq!(v["duration"], 1.5);
        assert_eq!(v["id"]["step"], 2);
    }
}
