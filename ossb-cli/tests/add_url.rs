//! `ADD http://...` end to end through the `ossb` binary, against a small HTTP server of the
//! test's own on 127.0.0.1: BuildKit's naming and mode, `Last-Modified` as the mtime, redirects,
//! `--checksum` (right and wrong), and a 404. The result is checked with umoci.

mod common;

use common::{Env, tool};
use sha2::Digest as _;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

const BODY: &str = "downloaded by ossb\n";
/// `Last-Modified` of `/file.txt`: 2021-01-01T00:00:00Z.
const LAST_MODIFIED: (&str, i64) = ("Fri, 01 Jan 2021 00:00:00 GMT", 1_609_459_200);

/// Serve `/file.txt`, `/go` (302 to `/file.txt`) and 404 for anything else, until the test ends.
fn serve() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            // Read the headers to the blank line.
            let mut line = String::new();
            while reader.read_line(&mut line).map(|n| n > 2).unwrap_or(false) {
                line.clear();
            }
            let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
            let mut out = stream;
            let response = match path.as_str() {
                "/file.txt" => format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nLast-Modified: {}\r\nConnection: close\r\n\r\n{BODY}",
                    BODY.len(),
                    LAST_MODIFIED.0
                ),
                "/go" => "HTTP/1.1 302 Found\r\nLocation: /file.txt\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string(),
                _ => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string(),
            };
            let _ = out.write_all(response.as_bytes());
        }
    });
    format!("http://{addr}")
}

fn unpack(env: &Env, layout: &Path) -> std::path::PathBuf {
    let bundle = env.path("bundle");
    let mut cmd = Command::new("umoci");
    cmd.arg("unpack");
    if !rustix::process::geteuid().is_root() {
        cmd.arg("--rootless");
    }
    let out = cmd
        .arg("--image")
        .arg(format!("{}:latest", layout.display()))
        .arg(&bundle)
        .output()
        .expect("umoci runs");
    assert!(
        out.status.success(),
        "umoci: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    bundle.join("rootfs")
}

#[test]
fn add_downloads_with_buildkit_naming_mode_mtime_and_checksum() {
    if !tool("umoci") {
        return;
    }
    let env = Env::new();
    let url = serve();
    let sum = format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(BODY.as_bytes()))
    );
    env.write(
        "c/Dockerfile",
        &format!(
            "FROM scratch\nADD --checksum={sum} {url}/file.txt /dl/\nADD {url}/go /named.txt\n"
        ),
    );
    let layout = env.path("oci");
    env.ossb_ok(&[
        "build",
        "--progress",
        "quiet",
        "--output",
        &format!("type=oci,dest={}", layout.display()),
        env.path("c").to_str().expect("utf8"),
    ]);
    let rootfs = unpack(&env, &layout);
    let file = rootfs.join("dl/file.txt");
    assert_eq!(
        fs::read_to_string(&file).expect("downloaded"),
        BODY,
        "named after the URL path"
    );
    let meta = fs::metadata(&file).expect("meta");
    assert_eq!(
        meta.mode() & 0o7777,
        0o600,
        "downloads are 0600, as in BuildKit"
    );
    assert_eq!(meta.mtime(), LAST_MODIFIED.1, "mtime from Last-Modified");
    assert_eq!(
        fs::read_to_string(rootfs.join("named.txt")).expect("redirected"),
        BODY,
        "redirects are followed; a destination without / names the file"
    );
}

#[test]
fn a_wrong_checksum_or_a_missing_url_is_a_build_error_naming_the_cause() {
    let env = Env::new();
    let url = serve();
    let wrong = format!("sha256:{}", "0".repeat(64));
    for (dockerfile, needle) in [
        (
            format!("FROM scratch\nADD --checksum={wrong} {url}/file.txt /\n"),
            "digest mismatch",
        ),
        (format!("FROM scratch\nADD {url}/nothing-here /\n"), "404"),
    ] {
        env.write("c/Dockerfile", &dockerfile);
        let out = env.ossb(&[
            "build",
            "--progress",
            "quiet",
            env.path("c").to_str().expect("utf8"),
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains(needle) && err.contains(&url),
            "{needle}: {err}"
        );
    }
}
