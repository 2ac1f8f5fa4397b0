//! The `ossb` command: argument parsing and wiring only; the behaviour lives in the crates.

mod args;
mod commands;

use clap::Parser;
use ossb_core::ExitCode;

fn main() {
    // When this process is a RUN sandbox init (re-exec of ossb), it never returns from here.
    ossb_core::exec::sandbox::run_init_if_requested();
    // Before any RUN step and any credential is read: a step that can see this process (the
    // reduced and chroot rungs) cannot read its memory, environment or open files...
    if let Err(e) = ossb_core::exec::sandbox::protect_process() {
        eprintln!("ossb: warning: cannot make the process non-dumpable: {e}");
    }
    // ...and credential variables leave the environment block itself (kept in memory).
    #[allow(unsafe_code)]
    // SAFETY: no thread has been started yet.
    unsafe {
        ossb_core::exec::sandbox::seal_environment();
    }
    let cli = match args::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            use clap::error::ErrorKind;
            let code = match err.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => 0,
                _ => ExitCode::Configuration.code(),
            };
            // Printing to a closed stdout/stderr is not worth a panic.
            let _ = err.print();
            std::process::exit(code);
        }
    };
    let format = match cli.log_format {
        args::LogFormatArg::Auto => ossb_log::LogFormat::Auto,
        args::LogFormatArg::Json => ossb_log::LogFormat::Json,
        args::LogFormatArg::Text => ossb_log::LogFormat::Text,
    };
    let fields = ossb_log::StaticFields::from_env();
    let level = cli.log_level.clone().unwrap_or_else(|| {
        if fields.in_pod {
            "info".to_string()
        } else {
            "warn".to_string()
        }
    });
    // In JSON mode every stderr line must be a JSON object (operators pipe `kubectl logs`
    // into jq), so the final error is a log line there rather than plain text.
    let json = match format {
        ossb_log::LogFormat::Json => true,
        ossb_log::LogFormat::Text => false,
        ossb_log::LogFormat::Auto => fields.in_pod,
    };
    ossb_log::init(format, &level, fields);
    let code = match commands::run(cli.command) {
        Ok(()) => ExitCode::Success,
        Err(err) => {
            let exit_code = err.exit_code().code();
            if json {
                tracing::error!(component = "cli", exit_code, "error: {err}");
            } else {
                eprintln!("error: {err}");
                tracing::debug!(component = "cli", exit_code, "exiting");
            }
            err.exit_code()
        }
    };
    std::process::exit(code.code());
}
