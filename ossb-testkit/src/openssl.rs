//! Running the `openssl` CLI to make test keys and certificates.

use std::path::Path;
use std::process::Command;

use crate::registry::RegistryStartError;

/// Runs `openssl ARGS` in `dir`; a failure carries openssl's own message.
pub(crate) fn openssl(dir: &Path, args: &[&str]) -> Result<(), RegistryStartError> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| RegistryStartError(format!("running openssl: {e}")))?;
    if !out.status.success() {
        return Err(RegistryStartError(format!(
            "openssl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(())
}

/// Reads a file openssl wrote.
pub(crate) fn read(dir: &Path, name: &str) -> Result<Vec<u8>, RegistryStartError> {
    std::fs::read(dir.join(name))
        .map_err(|e| RegistryStartError(format!("reading {name} made by openssl: {e}")))
}

/// Runs `openssl` with the whitespace-separated arguments of `line` (none contain spaces).
pub(crate) fn openssl_line(dir: &Path, line: &str) -> Result<(), RegistryStartError> {
    openssl(dir, &line.split_whitespace().collect::<Vec<_>>())
}
