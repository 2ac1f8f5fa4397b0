//! One module per subcommand; each turns parsed arguments into library calls.

mod build;
mod dockerfile;
mod k8s;
mod push;
mod stdin_context;
mod store;

use crate::args::Command;
use ossb_core::{Error, ExitCode};

/// Run a subcommand.
pub fn run(command: Command) -> Result<(), Error> {
    match command {
        Command::Build(args) => build::run(*args),
        Command::Dockerfile(cmd) => dockerfile::run(cmd),
        Command::Push(args) => push::run(args),
        Command::Doctor { json } => {
            let report = ossb_core::exec::doctor::diagnose(std::path::Path::new("/proc/self/exe"));
            if json {
                println!("{}", report.to_json());
            } else {
                print!("{report}");
            }
            Ok(())
        }
        Command::Images { json } => store::images(json),
        Command::Inspect { image } => store::inspect(&image),
        Command::Rm { images } => store::rm(&images),
        Command::Prune { cache } => store::prune(cache),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = crate::args::Cli::command();
            clap_complete::generate(shell, &mut cmd, "ossb", &mut std::io::stdout());
            Ok(())
        }
        Command::K8s(cmd) => k8s::run(cmd),
        Command::Version => {
            println!("ossb {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
    }
}

/// Read a file, or standard input for `-`, as UTF-8 text.
pub fn read_text(path: &std::path::Path) -> Result<String, Error> {
    use std::io::Read;
    let mut text = String::new();
    let res = if path.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(path).map(|t| text = t)
    };
    res.map_err(|e| {
        Error::new(
            ExitCode::Build,
            format!("cannot read {}: {e} (check the -f path)", path.display()),
        )
    })?;
    Ok(text)
}

/// Split `KEY=VALUE` build args; a bare `KEY` takes its value from the environment (and is
/// skipped when unset), as docker does.
pub fn parse_build_args(
    items: &[String],
) -> Result<std::collections::BTreeMap<String, String>, Error> {
    let mut out = std::collections::BTreeMap::new();
    for item in items {
        match item.split_once('=') {
            Some(("", _)) => {
                return Err(Error::new(
                    ExitCode::Configuration,
                    format!("invalid --build-arg {item:?}: the name is empty"),
                ));
            }
            Some((k, v)) => {
                out.insert(k.to_string(), v.to_string());
            }
            None => {
                if let Ok(v) = std::env::var(item) {
                    out.insert(item.clone(), v);
                }
            }
        }
    }
    Ok(out)
}

/// Split `KEY=VALUE` pairs (labels); the value may be empty.
pub fn parse_key_values(
    flag: &str,
    items: &[String],
) -> Result<std::collections::BTreeMap<String, String>, Error> {
    items
        .iter()
        .map(|item| match item.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(Error::new(
                ExitCode::Configuration,
                format!("invalid {flag} {item:?}: expected KEY=VALUE"),
            )),
        })
        .collect()
}

/// Parses a registry configuration (YAML) read from `name`. A relative `ca_file` names a
/// file next to the configuration (another key of the same ConfigMap in a pod), not one in
/// the working directory.
pub fn parse_registry_config(
    name: &str,
    text: &str,
) -> Result<ossb_registry::RegistryConfig, Error> {
    let mut config = ossb_registry::RegistryConfig::from_yaml(text).map_err(|e| {
        Error::new(
            ExitCode::Configuration,
            format!("invalid registry configuration {name}: {e}"),
        )
    })?;
    let base = std::path::Path::new(name)
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    for host in config.registries.values_mut() {
        if let Some(ca) = &mut host.ca_file
            && ca.is_relative()
        {
            *ca = base.join(&*ca);
        }
    }
    Ok(config)
}

/// The registry configuration for `ossb push`: the `--registry-config` file (if any) plus
/// `--insecure-registry` hosts and the `--tls-ca` CA.
pub fn push_registry_config(
    config_file: Option<&std::path::Path>,
    insecure: &[String],
    tls_ca: Option<&std::path::Path>,
) -> Result<ossb_registry::RegistryConfig, Error> {
    let mut config = load_registry_config(config_file)?;
    config.insecure.extend(insecure.iter().cloned());
    if let Some(ca) = tls_ca {
        config.tls_ca = Some(ca.to_path_buf());
    }
    Ok(config)
}

/// The registry configuration file at `path`, or the defaults without one.
pub fn load_registry_config(
    path: Option<&std::path::Path>,
) -> Result<ossb_registry::RegistryConfig, Error> {
    match path {
        Some(path) => parse_registry_config(&path.display().to_string(), &read_config(path)?),
        None => Ok(ossb_registry::RegistryConfig::default()),
    }
}

/// The registry for names without a registry part: `--default-registry`
/// (`OSSB_DEFAULT_REGISTRY`) over the configuration's `default_registry`; checked, and `None`
/// for Docker Hub.
pub fn default_registry(
    flag: Option<&str>,
    config: &ossb_registry::RegistryConfig,
) -> Result<Option<String>, Error> {
    let Some(raw) = flag
        .filter(|f| !f.is_empty())
        .or(config.default_registry.as_deref())
    else {
        return Ok(None);
    };
    let registry = ossb_core::reference::validate_default_registry(raw).map_err(|e| {
        Error::new(
            ExitCode::Configuration,
            format!("invalid default registry {raw:?} (--default-registry, OSSB_DEFAULT_REGISTRY or default_registry in the registry configuration): {e}"),
        )
    })?;
    Ok((registry != ossb_core::reference::DEFAULT_REGISTRY).then_some(registry))
}

/// Read a configuration file, naming it in the error.
pub fn read_config(path: &std::path::Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|e| {
        Error::new(
            ExitCode::Configuration,
            format!("cannot read {}: {e}", path.display()),
        )
    })
}
