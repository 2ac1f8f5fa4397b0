//! Docker credential helpers: `docker-credential-NAME get`, server address on stdin, JSON
//! `{"ServerURL","Username","Secret"}` on stdout (`Username` `<token>` means `Secret` is an
//! identity token); "credentials not found" on a failing exit means no credentials.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::environment::Environment;
use super::{CredentialError, Credentials};

/// How long a helper may run by default.
pub const DEFAULT_HELPER_TIMEOUT: Duration = Duration::from_secs(30);

/// The helper's answer. No `Debug`: it holds the secret.
#[derive(Deserialize)]
struct HelperOutput {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// Finds `docker-credential-NAME` on the environment's `PATH`.
fn find_helper(program: &str, env: &Environment) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    let path = env.get("PATH")?;
    std::env::split_paths(path)
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Runs `docker-credential-<name> get` for `server_url`.
///
/// `registry` and `origin` (the file that named the helper) go into error messages.
/// Returns `Ok(None)` when the helper has no credentials for the server.
pub fn get(
    name: &str,
    server_url: &str,
    env: &Environment,
    timeout: Duration,
    registry: &str,
    origin: &str,
) -> Result<Option<Credentials>, CredentialError> {
    let program = format!("docker-credential-{name}");
    let err = |detail: String, hint: &str| {
        CredentialError::new(registry, format!("{origin} ({program})"), detail, hint)
    };
    if name.is_empty() || name.contains(['/', '\0']) {
        return Err(err(
            format!("invalid credential helper name {name:?}"),
            "fix credHelpers/credsStore in the file",
        ));
    }
    let Some(path) = find_helper(&program, env) else {
        return Err(err(
            format!("{program} was not found in PATH"),
            "install the credential helper or remove it from credHelpers/credsStore",
        ));
    };
    let mut cmd = Command::new(&path);
    cmd.arg("get")
        .env_clear()
        .envs(env_pairs(env))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| {
        err(
            format!("cannot run {}: {e}", path.display()),
            "check that the helper is executable",
        )
    })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading stdin is judged by its exit status below.
        let _ = stdin.write_all(format!("{server_url}\n").as_bytes());
    }
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out_reader = std::thread::spawn(move || read_all(stdout.as_mut()));
    let err_reader = std::thread::spawn(move || read_all(stderr.as_mut()));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(err(
                    format!("the helper did not answer within {timeout:?}"),
                    "check that the helper does not wait for a login prompt or an unreachable service",
                ));
            }
            Err(e) => {
                return Err(err(
                    format!("waiting for the helper failed: {e}"),
                    "check the helper",
                ));
            }
        }
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    if !status.success() {
        let message = String::from_utf8_lossy(if stdout.is_empty() { &stderr } else { &stdout })
            .trim()
            .chars()
            .take(200)
            .collect::<String>();
        if message
            .to_ascii_lowercase()
            .contains("credentials not found")
        {
            return Ok(None);
        }
        return Err(err(
            format!("the helper failed ({status}): {message}"),
            "run the helper by hand (`echo SERVER | docker-credential-NAME get`) and log in again",
        ));
    }
    let parsed: HelperOutput = serde_json::from_slice(&stdout).map_err(|e| {
        err(
            format!("the helper printed invalid json: {e}"),
            "check the helper version; it must speak the docker credential helper protocol",
        )
    })?;
    if parsed.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(if parsed.username == "<token>" {
        Credentials::IdentityToken(parsed.secret)
    } else {
        Credentials::Basic {
            username: parsed.username,
            password: parsed.secret,
        }
    }))
}

fn env_pairs(env: &Environment) -> Vec<(String, String)> {
    [
        "PATH",
        "HOME",
        "XDG_RUNTIME_DIR",
        "DBUS_SESSION_BUS_ADDRESS",
        "USER",
        "TMPDIR",
    ]
    .iter()
    .filter_map(|k| env.get(k).map(|v| (k.to_string(), v.to_string())))
    .collect()
}

fn read_all<R: Read>(r: Option<&mut R>) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Some(r) = r {
        let _ = r.take(1 << 20).read_to_end(&mut buf);
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(dir: &Path, name: &str, body: &str) {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join(format!("docker-credential-{name}"));
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    #[test]
    fn speaks_the_protocol() {
        let dir = tempfile::tempdir().expect("tempdir");
        script(
            dir.path(),
            "t",
            r#"read server
[ "$1" = get ] || exit 3
case "$server" in
  reg.example) echo '{"ServerURL":"reg.example","Username":"u","Secret":"pw-123"}' ;;
  tok.example) echo '{"ServerURL":"tok.example","Username":"<token>","Secret":"rt-1"}' ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac"#,
        );
        script(dir.path(), "slow", "sleep 5");
        script(dir.path(), "broken", "echo boom >&2; exit 2");
        let env =
            Environment::from_vars([("PATH", format!("{}:/usr/bin:/bin", dir.path().display()))]);
        let t = Duration::from_secs(10);
        assert_eq!(
            get("t", "reg.example", &env, t, "reg.example", "f").expect("ok"),
            Some(Credentials::Basic {
                username: "u".into(),
                password: "pw-123".into()
            })
        );
        assert_eq!(
            get("t", "tok.example", &env, t, "tok.example", "f").expect("ok"),
            Some(Credentials::IdentityToken("rt-1".into()))
        );
        assert_eq!(get("t", "x", &env, t, "x", "f").expect("ok"), None);
        let e = get("missing", "x", &env, t, "x", "cfg.json").expect_err("missing");
        assert!(
            e.to_string()
                .contains("docker-credential-missing was not found in PATH")
                && e.to_string().contains("cfg.json"),
            "{e}"
        );
        let e = get("broken", "x", &env, t, "x", "f").expect_err("fails");
        assert!(e.to_string().contains("boom"), "{e}");
        let e = get("slow", "x", &env, Duration::from_millis(200), "x", "f").expect_err("slow");
        assert!(e.to_string().contains("did not answer"), "{e}");
    }
}
