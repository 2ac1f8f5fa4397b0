//! One module per subcommand; each turns parsed arguments into library calls.

mod build;
mod dockerfile;
mod k8s;
mod push;
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

/// The registry client for `--insecure-registry` hosts and the `--tls-ca` CA, as the core's
/// port.
pub fn registry_port(
    insecure: &[String],
    tls_ca: Option<&std::path::Path>,
) -> Result<std::sync::Arc<ossb_registry::port::RegistryAdapter>, Error> {
    let mut config = ossb_registry::RegistryConfig::default();
    config.insecure.extend(insecure.iter().cloned());
    config.tls_ca = tls_ca.map(std::path::Path::to_path_buf);
    Ok(std::sync::Arc::new(
        ossb_registry::port::RegistryAdapter::from_config(config)?,
    ))
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
