//! `ossb dockerfile dump` and `ossb dockerfile plan`.

use super::{parse_build_args, read_text};
use crate::args::{DockerfileCommand, PlanArgs, PlanFormat};
use ossb_core::Error;
use ossb_core::dockerfile::{self, Ast};
use std::path::Path;

/// Run a `dockerfile` subcommand.
pub fn run(cmd: DockerfileCommand) -> Result<(), Error> {
    match cmd {
        DockerfileCommand::Dump { file } => {
            let (_, ast) = parse_file(&file)?;
            println!("{}", dockerfile::dump::dump(&ast));
            for w in &ast.warnings {
                eprintln!("warning: {} (line {:?}): {}", w.short, w.lines, w.detail);
            }
            Ok(())
        }
        DockerfileCommand::Plan(args) => plan(args),
    }
}

/// The Dockerfile's name in messages: its path as given, `<stdin>` for `-`.
fn display_name(file: &Path) -> String {
    if file.as_os_str() == "-" {
        "<stdin>".to_string()
    } else {
        file.display().to_string()
    }
}

/// Read and parse a Dockerfile, naming the file in errors; returns the text and the tree.
pub fn parse_file(file: &Path) -> Result<(String, Ast), Error> {
    let text = read_text(file)?;
    let ast = dockerfile::parse(&text).map_err(|e| Error::from(e.with_file(display_name(file))))?;
    Ok((text, ast))
}

fn plan(args: PlanArgs) -> Result<(), Error> {
    let (text, ast) = parse_file(&args.file)?;
    let name = display_name(&args.file);
    let host = ossb_core::image::oci::Platform::host().to_string();
    let opts = ossb_core::plan::PlanOptions {
        build_args: parse_build_args(&args.build_args)?,
        target: args.target,
        build_platform: host.clone(),
        target_platform: args.platform.unwrap_or(host),
        base_images: Default::default(),
        default_registry: super::default_registry(
            args.default_registry.as_deref(),
            &super::load_registry_config(args.registry_config.as_deref())?,
        )?,
    };
    let graph = ossb_core::plan::plan(&ast, &opts)
        .map_err(|e| e.with_file(name).with_column_from(&text))?;
    match args.format {
        PlanFormat::Text => print!("{}", graph.to_text()),
        PlanFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&graph).map_err(|e| Error::new(
                ossb_core::ExitCode::General,
                format!("cannot serialise the plan: {e}")
            ))?
        ),
    }
    Ok(())
}
