//! `ossb build`: turn flags into a `BuildRequest` and run it on the local backend.

use super::{parse_build_args, parse_key_values};
use crate::args::{BuildArgs, ProgressArg};
use ossb_core::backend::{
    BuildBackend, BuildRequest, CacheExport, CacheImport, DockerfileSource, Output, SecretFrom,
    SecretSource,
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
    // Before `-f -` reads standard input.
    check_stdin_conflict(args)?;
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
    req.no_cache_filter = args.no_cache_filter.clone();
    req.cache_from = args
        .cache_from
        .iter()
        .map(|s| CacheImport::parse(s))
        .collect::<Result<_, _>>()?;
    req.cache_to = args
        .cache_to
        .iter()
        .map(|s| CacheExport::parse(s))
        .collect::<Result<_, _>>()?;
    req.cache_ttl = match &args.cache_ttl {
        Some(t) => {
            let ns = ossb_core::plan::duration::parse_go_duration(t)
                .ok()
                .filter(|ns| *ns > 0)
                .ok_or_else(|| {
                    Error::new(
                        ExitCode::Configuration,
                        format!(
                            "invalid --cache-ttl {t:?}: use a positive Go duration like 24h or 168h"
                        ),
                    )
                })?;
            Some(std::time::Duration::from_nanos(ns as u64))
        }
        None => None,
    };
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
    buildx_flags(args, &mut req)?;
    Ok(req)
}

// --- multi-platform and buildx flags (issue #10) ---

/// Whether the context is standard input (`ossb build -`).
fn context_is_stdin(args: &BuildArgs) -> bool {
    args.context.as_os_str() == "-"
}

/// `--annotation`, `--pull`, `--network`, and the checks of a standard-input context.
fn buildx_flags(args: &BuildArgs, req: &mut BuildRequest) -> Result<(), Error> {
    use crate::args::NetworkArg;
    use ossb_core::backend::RunNetwork;
    req.annotations = ossb_core::image::annotations::Annotations::parse(&args.annotations)
        .map_err(|e| Error::new(ExitCode::Configuration, e))?;
    req.pull = args.pull;
    req.network = match args.network {
        NetworkArg::Default => RunNetwork::Default,
        NetworkArg::Host => RunNetwork::Host,
        NetworkArg::None => RunNetwork::None,
    };
    Ok(())
}

/// `ossb build -f - -`: both from standard input cannot work.
fn check_stdin_conflict(args: &BuildArgs) -> Result<(), Error> {
    if context_is_stdin(args) && args.file.as_ref().is_some_and(|f| f.as_os_str() == "-") {
        return Err(Error::new(
            ExitCode::Configuration,
            "`ossb build -` reads the context from standard input, so the Dockerfile cannot \
             come from there too (-f -): put the Dockerfile in the context tar, or pass a \
             context directory",
        ));
    }
    Ok(())
}

/// For `ossb build -`: read the context (a tar, or a lone Dockerfile) from standard input and
/// point the request at it. A relative `-f` names a file inside the context, as with docker.
fn use_stdin_context(
    args: &BuildArgs,
    req: &mut BuildRequest,
) -> Result<Option<super::stdin_context::StdinContext>, Error> {
    if !context_is_stdin(args) {
        return Ok(None);
    }
    let ctx = super::stdin_context::read(std::io::stdin().lock())?;
    req.context = ctx.dir.path().to_path_buf();
    req.dockerfile = match (&ctx.dockerfile, &args.file) {
        (Some(text), _) => DockerfileSource::Inline(text.clone()),
        (None, Some(f)) if f.is_relative() => DockerfileSource::Path(ctx.dir.path().join(f)),
        (None, Some(f)) => DockerfileSource::Path(f.clone()),
        (None, None) => DockerfileSource::Path(ctx.dir.path().join("Dockerfile")),
    };
    Ok(Some(ctx))
}

// --- end multi-platform and buildx flags ---

/// Default path of the progress file in a pod.
pub const DEFAULT_PROGRESS_FILE: &str = "/tmp/ossb-progress.json";
/// Overrides [`DEFAULT_PROGRESS_FILE`]; setting it also writes the file outside a pod.
pub const PROGRESS_FILE_ENV: &str = "OSSB_PROGRESS_FILE";

/// The progress file to keep up to date: `OSSB_PROGRESS_FILE` (given as `env`) when set,
/// else `/tmp/ossb-progress.json` in a pod, else none.
fn progress_file_path(in_pod: bool, env: Option<std::ffi::OsString>) -> Option<std::path::PathBuf> {
    match env.filter(|v| !v.is_empty()) {
        Some(p) => Some(p.into()),
        None if in_pod => Some(DEFAULT_PROGRESS_FILE.into()),
        None => None,
    }
}

pub fn progress_sink(mode: ProgressArg, in_pod: bool, platform: &str) -> FanOut {
    use std::io::IsTerminal;
    let mut fan = FanOut::new();
    if let Some(path) = progress_file_path(in_pod, std::env::var_os(PROGRESS_FILE_ENV)) {
        fan.push(Box::new(ossb_log::sinks::ProgressFile::new(path, platform)));
    }
    match mode {
        ProgressArg::Quiet => {}
        ProgressArg::Json => fan.push(Box::new(ossb_log::sinks::JsonLines::stdout())),
        // In a pod, progress goes into the structured JSON log that operators filter.
        ProgressArg::Auto if in_pod && !std::io::stderr().is_terminal() => {
            fan.push(Box::new(ossb_log::sinks::LogEvents))
        }
        // A live view with one line per running step on a terminal; plain lines otherwise.
        ProgressArg::Tty | ProgressArg::Auto => {
            match ossb_log::sinks::TerminalView::stderr_if_tty() {
                Some(view) => fan.push(Box::new(view)),
                None => fan.push(Box::new(ossb_log::sinks::PlainLines::stderr())),
            }
        }
        ProgressArg::Plain => fan.push(Box::new(ossb_log::sinks::PlainLines::stderr())),
    }
    fan
}

fn compression(args: &BuildArgs) -> Result<ossb_core::image::compress::Compression, Error> {
    use crate::args::CompressionArg;
    use ossb_core::image::compress::Compression;
    let level = args.compression_level;
    let check = |lo: i32, hi: i32, default: i32| -> Result<i32, Error> {
        match level {
            None => Ok(default),
            Some(l) if (lo..=hi).contains(&l) => Ok(l),
            Some(l) => Err(Error::new(
                ExitCode::Configuration,
                format!(
                    "--compression-level {l} is out of range {lo}..{hi} for {:?}",
                    args.compression
                ),
            )),
        }
    };
    Ok(match args.compression {
        CompressionArg::Gzip => Compression::Gzip {
            level: check(1, 9, 6)? as u32,
        },
        CompressionArg::Zstd => Compression::Zstd {
            level: check(1, 19, 3)?,
        },
        CompressionArg::Uncompressed => Compression::None,
    })
}

/// The registry configuration: `--registry-config`, else the pod's ConfigMap, plus
/// `--insecure-registry` hosts and registry credentials found in the pod.
fn registry_config(
    args: &BuildArgs,
    found: Option<&ossb_k8s::pod::Discovery>,
) -> Result<ossb_registry::RegistryConfig, Error> {
    let text = match (
        &args.registry_config,
        found.and_then(|f| f.registry_config.as_ref()),
    ) {
        (Some(path), _) => Some((path.display().to_string(), super::read_config(path)?)),
        (None, Some(file)) => Some((file.path.display().to_string(), file.text.clone())),
        (None, None) => None,
    };
    let mut config = match text {
        Some((name, text)) => super::parse_registry_config(&name, &text)?,
        None => ossb_registry::RegistryConfig::default(),
    };
    config
        .insecure
        .extend(args.insecure_registries.iter().cloned());
    if let Some(ca) = &args.tls_ca {
        config.tls_ca = Some(ca.clone());
    }
    for cred in found
        .map(|f| f.registry_credentials.as_slice())
        .unwrap_or_default()
    {
        if let ossb_k8s::pod::RegistryCredential::Basic {
            registry,
            username,
            password,
            ..
        } = cred
        {
            let host = config.registries.entry(registry.clone()).or_default();
            host.username.get_or_insert_with(|| username.clone());
            host.password
                .get_or_insert_with(|| password.expose().to_string());
        }
    }
    Ok(config)
}

/// Run `ossb build`: the job lifecycle (status file, SIGTERM/SIGINT, `--timeout`) wraps the
/// build everywhere; in a Kubernetes pod, secrets, registry configuration, the ConfigMap
/// context and the workspace are discovered at their documented paths. Every failure after
/// the status file exists (flags, discovery, workspace, registry setup, the build itself)
/// ends the job as `Failed` (or `Cancelled`) with its exit code.
pub fn run(args: BuildArgs) -> Result<(), Error> {
    use ossb_k8s::job::JobLifecycleManager;
    use ossb_k8s::pod::PodContext;

    if args.k8s.backend == crate::args::BackendArg::Kubernetes {
        // The cluster runs the build (and its lifecycle); this process watches and cleans up.
        return super::k8s::build(&args);
    }

    let pod = PodContext::from_env();
    let status_dir;
    let job = if pod.in_pod {
        JobLifecycleManager::from_env()
    } else {
        // Outside a pod the status file is only written where asked for.
        status_dir = tempfile::tempdir().map_err(|e| {
            Error::new(ExitCode::Resource, format!("cannot create a temp dir: {e}"))
        })?;
        let path = std::env::var_os("OSSB_STATUS_FILE")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| status_dir.path().join("status.json"));
        JobLifecycleManager::with_options(path, std::time::Duration::from_secs(20), true)
    }
    .map_err(|e| Error::new(ExitCode::Configuration, e.to_string()))?;
    let _signals = job
        .install_signal_handler()
        .map_err(|e| Error::new(ExitCode::General, e.to_string()))?;
    let result = build_in_job(&args, pod.in_pod, &job);
    let code = job.finish(&result);
    match result {
        Ok(outcome) => {
            println!("{}", outcome.image_digest);
            Ok(())
        }
        // A cancelled or timed-out build reports that class, whatever error it stopped with.
        Err(e) if e.exit_code() != code => Err(Error::new(code, e.to_string())),
        Err(e) => Err(e),
    }
}

/// Everything between the status file's creation and the build's end.
fn build_in_job(
    args: &BuildArgs,
    in_pod: bool,
    job: &ossb_k8s::job::JobLifecycleManager,
) -> Result<ossb_core::backend::BuildOutcome, Error> {
    use ossb_k8s::pod::{PodPaths, Workspace, discover, materialize_context};

    let mut req = request(args)?;
    // Kept until the build ends: the standard-input context's directory.
    let _stdin_context = use_stdin_context(args, &mut req)?;
    if let Some(t) = &args.timeout {
        let ns = ossb_core::plan::duration::parse_go_duration(t).map_err(|e| {
            Error::new(
                ExitCode::Configuration,
                format!("invalid --timeout {t:?}: {e}"),
            )
        })?;
        // The watchdog thread stops by itself when the job ends.
        let _watchdog = job.start_timeout(std::time::Duration::from_nanos(ns.max(0) as u64));
    }

    let mut backend = LocalBackend::new()
        .with_compression(compression(args)?)
        .with_sandbox_mode(args.sandbox);
    if let Some(jobs) = args.jobs {
        backend = backend.with_jobs(jobs);
    }
    let found = if in_pod {
        let found = discover(&PodPaths::from_env()).map_err(Error::from)?;
        req.secrets.extend(found.build_secrets.iter().cloned());
        if let Some(cm) = &found.build_context
            && !context_is_stdin(args)
            && !args.context.exists()
        {
            materialize_context(cm, &args.context).map_err(Error::from)?;
        }
        let needed = match std::env::var("OSSB_WORKSPACE_SIZE") {
            Ok(v) => ossb_k8s::pod::parse_size(&v).ok_or_else(|| {
                Error::new(
                    ExitCode::Configuration,
                    format!("invalid OSSB_WORKSPACE_SIZE {v:?}: use bytes or a size like 10Gi"),
                )
            })?,
            Err(_) => 0,
        };
        let ws = Workspace::prepare(&Workspace::path_from_env(), needed).map_err(Error::from)?;
        if std::env::var_os("OSSB_ROOT").is_none() {
            backend = backend.with_store_root(ws.store_dir());
        }
        Some(found)
    } else {
        None
    };
    let config = registry_config(args, found.as_ref())?;
    req.default_registry = super::default_registry(args.default_registry.as_deref(), &config)?;
    let registry = if in_pod {
        // Credentials from the Secret volumes where discovery found them (the roots follow
        // OSSB_SECRETS_ROOT), unless OSSB_REGISTRY_SECRET_DIR / OSSB_REGISTRY_AUTH_DIR say
        // otherwise.
        let paths = PodPaths::from_env();
        let mut chain = ossb_registry::CredentialChain::builder(&config);
        if std::env::var_os("OSSB_REGISTRY_SECRET_DIR").is_none() {
            chain = chain.registry_secret_dir(paths.registry_secret_dir());
        }
        if std::env::var_os("OSSB_REGISTRY_AUTH_DIR").is_none() {
            chain = chain.registry_auth_dir(paths.registry_auth());
        }
        let client = ossb_registry::BlockingRegistryClient::with_credentials(
            config.clone(),
            std::sync::Arc::new(chain.build()),
        )
        .map_err(|e| Error::new(e.exit_code(), e.to_string()))?;
        ossb_registry::port::RegistryAdapter::new(client)
    } else {
        ossb_registry::port::RegistryAdapter::from_config(config.clone())?
    };
    let fetcher = ossb_registry::HttpFetcher::new(config)?;
    let cancel = ossb_core::exec::sandbox::CancelToken::new().map_err(|e| {
        Error::new(
            ExitCode::Resource,
            format!("cannot create a cancel pipe: {e}"),
        )
    })?;
    let on_cancel = cancel.clone();
    job.cancel_token().on_cancel(move |_| on_cancel.cancel());
    let backend = backend
        .with_registry(std::sync::Arc::new(registry))
        .with_url_fetcher(std::sync::Arc::new(fetcher))
        .with_cancel(cancel);

    let platform = if req.platforms.is_empty() {
        ossb_core::image::oci::Platform::host().to_string()
    } else {
        req.platforms.join(",")
    };
    let mode = if args.quiet {
        ProgressArg::Quiet
    } else {
        args.progress
    };
    let mut sink = progress_sink(mode, in_pod, &platform);
    sink.push(Box::new(job.progress_sink()));
    job.start(&format!("{:x}", std::process::id()));
    backend.build(&req, &sink as &dyn ProgressSink)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn progress_file_is_written_in_a_pod_or_where_asked() {
        assert_eq!(
            progress_file_path(true, None),
            Some(PathBuf::from("/tmp/ossb-progress.json"))
        );
        assert_eq!(progress_file_path(false, None), None);
        assert_eq!(progress_file_path(false, Some("".into())), None);
        assert_eq!(
            progress_file_path(false, Some("/x/p.json".into())),
            Some(PathBuf::from("/x/p.json"))
        );
        assert_eq!(
            progress_file_path(true, Some("/x/p.json".into())),
            Some(PathBuf::from("/x/p.json"))
        );
    }
}
