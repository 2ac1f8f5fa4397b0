//! A custom `ProgressSink`: count steps and cache hits, print one line per finished step.
//!
//! `cargo run -p ossb-examples --example progress-sink -- CONTEXT`

use ossb_core::backend::{BuildBackend, BuildRequest, Output};
use ossb_core::exec::local::LocalBackend;
use ossb_core::progress::{ProgressEvent, ProgressSink};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts what happened and prints finished steps.
#[derive(Default)]
struct Tally {
    steps: AtomicUsize,
    cached: AtomicUsize,
}

impl ProgressSink for Tally {
    fn event(&self, event: &ProgressEvent) {
        if let ProgressEvent::StepFinished {
            id,
            cache_hit,
            duration,
            bytes,
        } = event
        {
            self.steps.fetch_add(1, Ordering::Relaxed);
            if *cache_hit {
                self.cached.fetch_add(1, Ordering::Relaxed);
            }
            println!(
                "stage {} step {}: {bytes} bytes in {duration:?}{}",
                id.stage,
                id.step,
                if *cache_hit { " (cached)" } else { "" }
            );
        }
    }

    fn finish(&self) {
        println!(
            "{} steps, {} from the cache",
            self.steps.load(Ordering::Relaxed),
            self.cached.load(Ordering::Relaxed)
        );
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    ossb_core::exec::sandbox::run_init_if_requested();
    let context = std::env::args()
        .nth(1)
        .ok_or("usage: progress-sink CONTEXT")?;
    let out = std::env::temp_dir().join("ossb-progress-sink-example");
    let mut request = BuildRequest::new(context);
    request.outputs.push(Output::Oci { dest: out.clone() });
    let outcome = LocalBackend::new().build(&request, &Tally::default())?;
    println!("{} -> {}", outcome.image_digest, out.display());
    Ok(())
}
