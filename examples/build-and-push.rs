//! Build a context directory and push the image, through the `BuildBackend` trait.
//!
//! `cargo run -p ossb-examples --example build-and-push -- CONTEXT REGISTRY/REPO:TAG`

use ossb_core::backend::{BuildBackend, BuildRequest, Output};
use ossb_core::exec::local::LocalBackend;
use ossb_registry::RegistryConfig;
use ossb_registry::port::RegistryAdapter;
use std::sync::Arc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // RUN steps re-execute this program as their sandbox; this returns at once otherwise.
    ossb_core::exec::sandbox::run_init_if_requested();
    let mut args = std::env::args().skip(1);
    let (Some(context), Some(tag)) = (args.next(), args.next()) else {
        return Err("usage: build-and-push CONTEXT REGISTRY/REPO:TAG".into());
    };
    let registry = RegistryAdapter::from_config(RegistryConfig::default())?;
    let backend = LocalBackend::new().with_registry(Arc::new(registry));
    let mut request = BuildRequest::new(context);
    request.tags.push(tag);
    request.outputs.push(Output::Registry { name: None });
    let sink = ossb_log::sinks::PlainLines::stderr();
    let outcome = backend.build(&request, &sink)?;
    println!(
        "pushed {} ({} steps, {} cached)",
        outcome.image_digest, outcome.operations, outcome.cache_hits
    );
    Ok(())
}
