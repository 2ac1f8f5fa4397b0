//! `ossb build`: turn flags into a `BuildRequest` and run it on the local backend.

use super::{parse_build_args, parse_key_values};
use crate::args::{BuildArgs, ProgressArg};
use ossb_core::backend::{
    BuildBackend, BuildRequest, DockerfileSource, Output, SecretFrom, SecretSource,
};
use ossb_core::exec::local::LocalBackend;
use ossb_core::progress::{FanOut, ProgressSink};
use ossb_core::{Error, ExitCode};
use std::collections::BTreeMap;

fn parse_secret(spec: &str) -> Result<SecretSource, Error> {
    let bad = |why: &str| {
        Error::new(
            ExitCode::Configuration,
            format!("invalid --secret {spec:?}: {why}"),
        )
    };
    let mut id = None;
    let mut from = None;
    for part in spec.split(',') {
        match part.split_once('=') {
            Some(("id", v)) => id = Some(v.to_string()),
            Some(("src" | "source", v)) => from = Some(SecretFrom::File(v.into())),
            Some(("env", v)) => from = Some(SecretFrom::Env(v.to_string())),
            Some(("type", "file" | "env")) => {}
            _ => return Err(bad("expected id=ID,src=PATH or id=ID,env=VAR")),
        }
    }
    let id = id.ok_or_else(|| bad("missing id="))?;
    let from = from.unwrap_or_else(|| SecretFrom::Env(id.clone()));
    Ok(SecretSource { id, from })
}

/// Build the request from the flags (kept separate from running it, so it can be tested).
pub fn request(args: &BuildArgs) -> Result<BuildRequest, Error> {
    let mut req = BuildRequest::new(&args.context);
    req.dockerfile = match &args.file {
        Some(f) if f.as_os_str() == "-" => DockerfileSource::Inline(super::read_text(f)?),
        Some(f) => DockerfileSource::Path(f.clone()),
        None => DockerfileSource::Path(args.context.join("Dockerfile")),
    };
    req.tags = args.tags.clone();
    req.build_args = parse_build_args(&args.build_args)?;
    req.target = args.target.clone();
    req.platforms = args
        .platform
        .iter()
        .filter(|p| !p.is_empty())
        .cloned()
        .collect();
    req.labels = parse_key_values("--label", &args.labels)?;
    req.no_cache = args.no_cache;
    req.outputs = args
        .outputs
        .iter()
        .map(|o| Output::parse(o))
        .collect::<Result<_, _>>()?;
    if args.push
        && !req
            .outputs
            .iter()
            .any(|o| matches!(o, Output::Registry { .. }))
    {
        req.outputs.push(Output::Registry { name: None });
    }
    req.iidfile = args.iidfile.clone();
    req.metadata_file = args.metadata_file.clone();
    req.source_date_epoch = args.source_date_epoch;
    req.build_contexts = parse_key_values("--build-context", &args.build_contexts)?
        .into_iter()
        .collect::<BTreeMap<_, _>>();
    req.secrets = args
        .secrets
        .iter()
        .map(|s| parse_secret(s))
        .collect::<Result<_, _>>()?;
    Ok(req)
}

fn progress_sink(mode: ProgressArg) -> FanOut {
    use std::io::IsTerminal;
    let mut fan = FanOut::new();
    let in_pod = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
    match mode {
        ProgressArg::Quiet => {}
        ProgressArg::Json => fan.push(Box::new(ossb_log::sinks::JsonLines::stdout())),
        // In a pod, progress goes into the structured JSON log that operators filter.
        ProgressArg::Auto if in_pod && !std::io::stderr().is_terminal() => {
            fan.push(Box::new(ossb_log::sinks::LogEvents))
        }
        ProgressArg::Plain | ProgressArg::Tty | ProgressArg::Auto => {
            fan.push(Box::new(ossb_log::sinks::PlainLines::stderr()))
        }
    }
    fan
}

/// Run `ossb build`.
pub fn run(args: BuildArgs) -> Result<(), Error> {
    let req = request(&args)?;
    let mut config = ossb_registry::RegistryConfig::default();
    config
        .insecure
        .extend(args.insecure_registries.iter().cloned());
    let registry = ossb_registry::port::RegistryAdapter::from_config(config.clone())?;
    let fetcher = ossb_registry::HttpFetcher::new(config)?;
    let backend = LocalBackend::new()
        .with_registry(std::sync::Arc::new(registry))
        .with_url_fetcher(std::sync::Arc::new(fetcher));
    let sink = progress_sink(args.progress);
    let outcome = backend.build(&req, &sink as &dyn ProgressSink)?;
    println!("{}", outcome.image_digest);
    Ok(())
}
