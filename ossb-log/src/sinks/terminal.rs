//! A live terminal view: one line per running step with a spinner and its elapsed time,
//! finished steps scrolled above with cache hit, time and bytes, and a final summary.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use ossb_core::progress::{ProgressEvent, ProgressSink, StepId};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Format a byte count for people: `512 B`, `1.5 KiB`, `3.2 MiB`.
///
/// ```
/// assert_eq!(ossb_log::sinks::format_bytes(512), "512 B");
/// assert_eq!(ossb_log::sinks::format_bytes(1536), "1.5 KiB");
/// ```
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[derive(Default)]
struct ViewState {
    stage_names: HashMap<(String, usize), String>,
    running: HashMap<StepId, (ProgressBar, String)>,
    finished: Vec<String>,
    summary: Option<String>,
}

/// The terminal progress view (`--progress=tty`). Use [`TerminalView::stderr_if_tty`] to get
/// one only when stderr is a terminal, and fall back to [`super::PlainLines`] otherwise.
///
/// ```
/// use ossb_core::progress::{ProgressEvent, ProgressSink};
/// use std::time::Duration;
/// let view = ossb_log::sinks::TerminalView::with_target(indicatif::ProgressDrawTarget::hidden());
/// view.event(&ProgressEvent::BuildFinished {
///     success: true, digest: Some("sha256:ab".into()), operations: 3, cache_hits: 1,
///     bytes_read: 0, bytes_written: 0, duration: Duration::from_secs(2), error: None,
/// });
/// assert_eq!(view.summary().unwrap(), "built sha256:ab in 2.0s: 3 steps, 1 cached");
/// ```
pub struct TerminalView {
    multi: MultiProgress,
    running_style: ProgressStyle,
    state: Mutex<ViewState>,
}

impl TerminalView {
    /// A view drawing on stderr when it is a terminal; `None` otherwise.
    pub fn stderr_if_tty() -> Option<Self> {
        use std::io::IsTerminal;
        std::io::stderr()
            .is_terminal()
            .then(|| Self::with_target(ProgressDrawTarget::stderr()))
    }

    /// A view drawing on `target` (`ProgressDrawTarget::hidden()` in tests).
    pub fn with_target(target: ProgressDrawTarget) -> Self {
        let running_style =
            ProgressStyle::with_template("{spinner:.cyan} {prefix:.bold} {wide_msg} {elapsed:>4}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
        TerminalView {
            multi: MultiProgress::with_draw_target(target),
            running_style,
            state: Mutex::new(ViewState::default()),
        }
    }

    /// The summary line, once the build has finished.
    pub fn summary(&self) -> Option<String> {
        self.state.lock().ok().and_then(|s| s.summary.clone())
    }

    /// The lines of the finished steps so far, oldest first.
    pub fn finished_lines(&self) -> Vec<String> {
        self.state
            .lock()
            .map(|s| s.finished.clone())
            .unwrap_or_default()
    }

    fn prefix(state: &ViewState, id: &StepId) -> String {
        let stage = state
            .stage_names
            .get(&(id.platform.clone(), id.stage))
            .cloned()
            .unwrap_or_else(|| id.stage.to_string());
        format!("[{} {} {}]", id.platform, stage, id.step)
    }

    fn println(&self, line: &str) {
        // Drawing is best effort; a closed terminal must not fail the build.
        let _ = self.multi.println(line);
    }
}

fn finished_line(
    prefix: &str,
    description: &str,
    cache_hit: bool,
    duration: Duration,
    bytes: u64,
) -> String {
    let mut line = format!(
        "{prefix} {description}  {} {:.1}s",
        if cache_hit { "CACHED" } else { "done" },
        duration.as_secs_f64()
    );
    if bytes > 0 {
        line.push_str(&format!(" {}", format_bytes(bytes)));
    }
    line
}

fn summary_line(event: &ProgressEvent) -> Option<String> {
    let ProgressEvent::BuildFinished {
        success,
        digest,
        operations,
        cache_hits,
        duration,
        error,
        ..
    } = event
    else {
        return None;
    };
    Some(if *success {
        format!(
            "built {} in {:.1}s: {operations} steps, {cache_hits} cached",
            digest.as_deref().unwrap_or("image"),
            duration.as_secs_f64()
        )
    } else {
        format!(
            "build failed after {:.1}s ({operations} steps, {cache_hits} cached): {}",
            duration.as_secs_f64(),
            error.as_deref().unwrap_or("unknown error")
        )
    })
}

impl ProgressSink for TerminalView {
    fn event(&self, event: &ProgressEvent) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        match event {
            ProgressEvent::StageStarted {
                platform,
                stage,
                name,
            } => {
                st.stage_names
                    .insert((platform.clone(), *stage), name.clone());
            }
            ProgressEvent::StepStarted {
                id, description, ..
            } => {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(self.running_style.clone());
                bar.set_prefix(Self::prefix(&st, id));
                bar.set_message(description.clone());
                bar.enable_steady_tick(Duration::from_millis(120));
                st.running.insert(id.clone(), (bar, description.clone()));
            }
            ProgressEvent::StepOutput { id, line } => {
                if let Some((bar, desc)) = st.running.get(id) {
                    bar.set_message(format!("{desc} | {line}"));
                }
            }
            ProgressEvent::StepFinished {
                id,
                cache_hit,
                duration,
                bytes,
            } => {
                let prefix = Self::prefix(&st, id);
                let desc = match st.running.remove(id) {
                    Some((bar, desc)) => {
                        bar.finish_and_clear();
                        self.multi.remove(&bar);
                        desc
                    }
                    None => String::new(),
                };
                let line = finished_line(&prefix, &desc, *cache_hit, *duration, *bytes);
                self.println(&line);
                st.finished.push(line);
            }
            ProgressEvent::Warning { message } => self.println(&format!("warning: {message}")),
            ProgressEvent::BuildFinished { .. } => {
                for (_, (bar, _)) in st.running.drain() {
                    bar.abandon();
                }
                if let Some(line) = summary_line(event) {
                    self.println(&line);
                    st.summary = Some(line);
                }
            }
            _ => {}
        }
    }

    fn finish(&self) {
        if let Ok(mut st) = self.state.lock() {
            for (_, (bar, _)) in st.running.drain() {
                bar.finish_and_clear();
            }
        }
        let _ = self.multi.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(step: usize) -> StepId {
        StepId {
            platform: "linux/amd64".into(),
            stage: 1,
            step,
        }
    }

    #[test]
    fn running_steps_get_a_line_each_and_finished_ones_a_summary_line() {
        let view = TerminalView::with_target(ProgressDrawTarget::hidden());
        view.event(&ProgressEvent::StageStarted {
            platform: "linux/amd64".into(),
            stage: 1,
            name: "build".into(),
        });
        for step in [1, 2] {
            view.event(&ProgressEvent::StepStarted {
                id: id(step),
                operation: "RUN".into(),
                description: format!("RUN make {step}"),
            });
        }
        {
            let st = view.state.lock().expect("lock");
            assert_eq!(st.running.len(), 2);
            let (bar, _) = &st.running[&id(1)];
            assert_eq!(bar.prefix(), "[linux/amd64 build 1]");
            assert_eq!(bar.message(), "RUN make 1");
        }
        view.event(&ProgressEvent::StepOutput {
            id: id(2),
            line: "cc -o app".into(),
        });
        assert_eq!(
            view.state.lock().expect("lock").running[&id(2)].0.message(),
            "RUN make 2 | cc -o app"
        );
        view.event(&ProgressEvent::StepFinished {
            id: id(1),
            cache_hit: true,
            duration: Duration::from_millis(50),
            bytes: 0,
        });
        view.event(&ProgressEvent::StepFinished {
            id: id(2),
            cache_hit: false,
            duration: Duration::from_millis(2300),
            bytes: 3 << 20,
        });
        assert_eq!(
            view.finished_lines(),
            [
                "[linux/amd64 build 1] RUN make 1  CACHED 0.1s",
                "[linux/amd64 build 2] RUN make 2  done 2.3s 3.0 MiB"
            ]
        );
        view.event(&ProgressEvent::BuildFinished {
            success: false,
            digest: None,
            operations: 2,
            cache_hits: 1,
            bytes_read: 10,
            bytes_written: 5,
            duration: Duration::from_secs(3),
            error: Some("RUN make failed".into()),
        });
        assert_eq!(
            view.summary().as_deref(),
            Some("build failed after 3.0s (2 steps, 1 cached): RUN make failed")
        );
        view.finish();
        assert!(view.state.lock().expect("lock").running.is_empty());
    }

    #[test]
    fn byte_counts_use_binary_units() {
        assert_eq!(format_bytes(0), "0 B");
        assert_eq!(format_bytes(1 << 30), "1.0 GiB");
    }
}
