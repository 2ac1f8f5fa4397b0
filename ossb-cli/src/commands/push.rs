//! `ossb push IMAGE [DEST]`: push an image from the local store.

use crate::args::PushArgs;
use ossb_core::exec::transfer;
use ossb_core::image::store::Store;
use ossb_core::reference::Reference;
use ossb_core::{Error, ExitCode};

/// Run `ossb push`.
pub fn run(args: PushArgs) -> Result<(), Error> {
    let config = super::push_registry_config(
        args.registry_config.as_deref(),
        &args.insecure_registries,
        args.tls_ca.as_deref(),
    )?;
    let default = super::default_registry(args.default_registry.as_deref(), &config)?;
    let source = Reference::parse_with_default(&args.image, default.as_deref())?;
    let dest = match &args.destination {
        Some(d) => Reference::parse_with_default(d, default.as_deref())?,
        None => source.clone(),
    };
    let store = Store::open_default()?;
    let _lock = store.lock(false)?;
    let desc = store.get_ref(&source.to_string()).map_err(|_| {
        Error::new(
            ExitCode::Configuration,
            format!(
                "{source} is not in the local store at {} (build it with ossb build -t {source})",
                store.root().display()
            ),
        )
    })?;
    let port = ossb_registry::port::RegistryAdapter::from_config(config)?;
    let jobs = ossb_core::image::compress::default_threads();
    let sink = ossb_log::sinks::PlainLines::stderr();
    let digest = transfer::push(&store, &port, &dest, &desc, jobs, &sink)?;
    println!("{digest}");
    Ok(())
}
