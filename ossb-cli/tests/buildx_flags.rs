//! The `docker buildx build` flags beyond the basics, through the real `ossb` binary:
//! `--annotation`, `--pull`, `--network`, `--quiet`, a context from standard input, `-f -`,
//! shell completions, and exit code 5 for unknown flags and bad values.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

mod common;

use common::{Env, busybox_layout, tool};

/// Run ossb with `input` on standard input.
fn with_stdin(mut cmd: Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ossb starts");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    // A writer thread: ossb may start printing before it has read everything.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("ossb ends");
    writer.join().expect("writer");
    out
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "ossb failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The manifest (or index) a layout's tag points at, read with skopeo.
fn raw_manifest(layout: &Path, tag: &str) -> serde_json::Value {
    let out = Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            &format!("oci:{}:{tag}", layout.display()),
        ])
        .output()
        .expect("skopeo runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

/// A file's content in a layout's image, read straight from the layer tars.
fn file_in_layout(layout: &Path, tag: &str, path: &str) -> Option<String> {
    let manifest = raw_manifest(layout, tag);
    let mut found = None;
    for layer in manifest["layers"].as_array().expect("layers") {
        let digest = layer["digest"].as_str().expect("digest");
        let blob = layout.join("blobs/sha256").join(&digest[7..]);
        let file = fs::File::open(blob).expect("layer");
        let mut archive = tar::Archive::new(flate2_or_plain(file));
        for entry in archive.entries().expect("tar") {
            let mut entry = entry.expect("entry");
            if entry.path().expect("path").to_string_lossy() == path {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut entry, &mut s).expect("read");
                found = Some(s);
            }
        }
    }
    found
}

/// Layers are gzip by default; decompress with `gzip -dc` to keep dev-dependencies small.
fn flate2_or_plain(file: fs::File) -> std::io::Cursor<Vec<u8>> {
    let out = Command::new("gzip")
        .arg("-dc")
        .stdin(file)
        .output()
        .expect("gzip runs");
    std::io::Cursor::new(out.stdout)
}

#[test]
fn annotations_reach_the_manifest_and_index_annotations_need_an_index() {
    if !tool("skopeo") {
        return;
    }
    let env = Env::new();
    env.write("a/Dockerfile", "FROM scratch\nCOPY Dockerfile /\n");
    let out = env.path("a-oci");
    ok(&env.ossb(&[
        "build",
        "--progress",
        "quiet",
        "--annotation",
        "org.opencontainers.image.title=hello",
        "--annotation",
        "manifest:org.example.empty=",
        "--annotation",
        "index-descriptor:org.example.entry=layout",
        "--output",
        &format!("type=oci,dest={}", out.display()),
        env.path("a").to_str().expect("utf8"),
    ]));
    let manifest = raw_manifest(&out, "latest");
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.title"],
        "hello"
    );
    assert_eq!(manifest["annotations"]["org.example.empty"], "");
    assert!(manifest["annotations"].get("org.example.entry").is_none());
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("index.json")).expect("index.json"))
            .expect("json");
    let entry = &index["manifests"][0]["annotations"];
    assert_eq!(entry["org.example.entry"], "layout");
    assert_eq!(entry["org.opencontainers.image.ref.name"], "latest");

    for (value, needle) in [
        ("index:k=v", "need an image index"),
        ("bogus[linux/amd64]:k=v", "unknown type"),
        ("no-value", "KEY=VALUE"),
    ] {
        let bad = env.ossb(&[
            "build",
            "--annotation",
            value,
            env.path("a").to_str().expect("utf8"),
        ]);
        let stderr = String::from_utf8_lossy(&bad.stderr);
        assert_eq!(bad.status.code(), Some(5), "{value}: {stderr}");
        assert!(stderr.contains(needle), "{value}: {stderr}");
    }
}

#[test]
fn a_local_image_is_used_unless_pull_asks_for_the_registry() {
    let env = Env::new();
    // An image tagged for a registry nobody listens on: only the local store has it.
    env.write("base/marker", "local\n");
    env.write("base/Dockerfile", "FROM scratch\nCOPY marker /marker\n");
    let name = "127.0.0.1:9/pull/base:1";
    ok(&env.ossb(&[
        "build",
        "--progress",
        "quiet",
        "-t",
        name,
        env.path("base").to_str().expect("utf8"),
    ]));
    env.write(
        "app/Dockerfile",
        &format!("FROM {name}\nCOPY Dockerfile /\n"),
    );
    let out = env.path("app-oci");
    ok(&env.ossb(&[
        "build",
        "--progress",
        "quiet",
        "--output",
        &format!("type=oci,dest={}", out.display()),
        env.path("app").to_str().expect("utf8"),
    ]));
    if tool("skopeo") {
        assert_eq!(
            file_in_layout(&out, "latest", "marker").as_deref(),
            Some("local\n")
        );
    }
    let pulled = env.ossb(&[
        "build",
        "--progress",
        "quiet",
        "--pull",
        env.path("app").to_str().expect("utf8"),
    ]);
    let stderr = String::from_utf8_lossy(&pulled.stderr);
    assert_eq!(
        pulled.status.code(),
        Some(3),
        "--pull goes to the registry: {stderr}"
    );
    assert!(stderr.contains("127.0.0.1:9"), "{stderr}");
}

#[test]
fn network_sets_the_default_for_run_steps_and_run_network_overrides_it() {
    if !tool("skopeo") {
        return;
    }
    let env = Env::new();
    let base = busybox_layout(&env);
    // Interfaces other than loopback, as the step sees them.
    env.write(
        "n/Dockerfile",
        &format!(
            "FROM {base}\n\
             RUN grep -c : /proc/net/dev > /default-ifaces\n\
             RUN --network=host grep -c : /proc/net/dev > /host-ifaces\n"
        ),
    );
    let count = |args: &[&str]| -> (usize, usize) {
        let out = env.path(&format!("n-oci-{}", args.join("-")));
        let mut all = vec!["build", "--progress", "quiet", "--no-cache"];
        let dest = format!("type=oci,dest={}", out.display());
        all.extend_from_slice(args);
        all.extend_from_slice(&["--output", &dest]);
        let ctx = env.path("n");
        all.push(ctx.to_str().expect("utf8"));
        ok(&env.ossb(&all));
        let read = |f: &str| -> usize {
            file_in_layout(&out, "latest", f)
                .expect("file")
                .trim()
                .parse()
                .expect("number")
        };
        (read("default-ifaces"), read("host-ifaces"))
    };
    let (none_default, none_host) = count(&["--network", "none"]);
    assert_eq!(none_default, 1, "--network none leaves only loopback");
    let (host_default, host_host) = count(&["--network", "host"]);
    assert_eq!(
        host_default, host_host,
        "--network host is the host's interfaces"
    );
    assert_eq!(
        none_host, host_host,
        "RUN --network=host overrides --network none"
    );
}

#[test]
fn quiet_prints_only_the_digest() {
    let env = Env::new();
    env.write("q/Dockerfile", "FROM scratch\nCOPY Dockerfile /\n");
    for flag in ["-q", "--quiet"] {
        let out = env.ossb(&["build", flag, env.path("q").to_str().expect("utf8")]);
        let stdout = ok(&out);
        assert!(
            stdout.starts_with("sha256:") && stdout.len() == 71 && !stdout.contains('\n'),
            "{stdout:?}"
        );
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_context_tar_or_a_dockerfile_can_come_from_standard_input() {
    let env = Env::new();
    // The same context as a directory and as a gzip tar on stdin gives the same image.
    env.write("t/Dockerfile", "FROM scratch\nCOPY sub/ /sub/\n");
    env.write("t/sub/file.txt", "from the tar\n");
    let from_dir = ok(&env.ossb(&[
        "build",
        "--progress",
        "quiet",
        "--no-cache",
        "--source-date-epoch",
        "1700000000",
        env.path("t").to_str().expect("utf8"),
    ]));
    let tar = Command::new("tar")
        .args(["-czf", "-", "-C"])
        .arg(env.path("t"))
        .arg(".")
        .output()
        .expect("tar runs");
    assert!(tar.status.success());
    let mut cmd = env.cmd();
    cmd.args([
        "build",
        "--progress",
        "quiet",
        "--no-cache",
        "--source-date-epoch",
        "1700000000",
        "-",
    ]);
    let from_stdin = ok(&with_stdin(cmd, &tar.stdout));
    assert_eq!(
        from_stdin, from_dir,
        "the same context gives the same image"
    );
    let out_dir = env.path("t-oci");
    let mut cmd = env.cmd();
    cmd.args(["build", "--progress", "quiet", "--output"])
        .arg(format!("type=oci,dest={}", out_dir.display()))
        .arg("-");
    ok(&with_stdin(cmd, &tar.stdout));
    if tool("skopeo") {
        assert_eq!(
            file_in_layout(&out_dir, "latest", "sub/file.txt").as_deref(),
            Some("from the tar\n")
        );
    }

    // `-f` names a file inside the tar.
    env.write(
        "t/other.Dockerfile",
        "FROM scratch\nCOPY sub/file.txt /only.txt\n",
    );
    let tar = Command::new("tar")
        .args(["-cf", "-", "-C"])
        .arg(env.path("t"))
        .arg(".")
        .output()
        .expect("tar runs");
    let mut cmd = env.cmd();
    cmd.args([
        "build",
        "--progress",
        "quiet",
        "-f",
        "other.Dockerfile",
        "-",
    ]);
    ok(&with_stdin(cmd, &tar.stdout));

    // A lone Dockerfile on stdin: an empty context.
    let mut cmd = env.cmd();
    cmd.args(["build", "--progress", "quiet", "-"]);
    ok(&with_stdin(
        cmd,
        b"FROM scratch\nLABEL from=stdin\nENV A=b\n",
    ));
    let mut cmd = env.cmd();
    cmd.args(["build", "--progress", "quiet", "-"]);
    let missing = with_stdin(cmd, b"FROM scratch\nCOPY nothing-here /\n");
    assert_eq!(
        missing.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );

    // Both from standard input cannot work.
    let mut cmd = env.cmd();
    cmd.args(["build", "-f", "-", "-"]);
    let both = with_stdin(cmd, b"FROM scratch\n");
    let stderr = String::from_utf8_lossy(&both.stderr);
    assert_eq!(both.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("-f -"), "{stderr}");
}

#[test]
fn dockerfile_from_standard_input_with_a_context_directory() {
    let env = Env::new();
    env.write("c/data.txt", "data\n");
    let mut cmd = env.cmd();
    cmd.args(["build", "--progress", "quiet", "-f", "-"])
        .arg(env.path("c"));
    let digest = ok(&with_stdin(cmd, b"FROM scratch\nCOPY data.txt /data.txt\n"));
    assert!(digest.starts_with("sha256:"), "{digest}");
    let inspect = ok(&env.ossb(&["inspect", &digest]));
    let v: serde_json::Value = serde_json::from_str(&inspect).expect("json");
    assert_eq!(
        v["config"]["history"][0]["created_by"],
        "COPY data.txt /data.txt # buildkit"
    );
}

#[test]
fn completions_are_printed_for_every_shell() {
    let env = Env::new();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = ok(&env.ossb(&["completions", shell]));
        assert!(
            out.contains("ossb") && out.contains("build") && out.contains("platform"),
            "{shell}: {out}"
        );
    }
    if tool("bash") {
        let script = env.write("ossb.bash", &ok(&env.ossb(&["completions", "bash"])));
        let check = Command::new("bash")
            .arg("-n")
            .arg(&script)
            .output()
            .expect("bash");
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stderr)
        );
    }
    let bad = env.ossb(&["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(5));
}

#[test]
fn unknown_flags_and_bad_values_exit_5_with_a_clear_message() {
    let env = Env::new();
    env.write("u/Dockerfile", "FROM scratch\n");
    let ctx = env.path("u");
    let ctx = ctx.to_str().expect("utf8");
    for (args, needle) in [
        (vec!["build", "--no-such-flag", ctx], "--no-such-flag"),
        (vec!["build", "--network", "bridge", ctx], "bridge"),
        (vec!["build", "--progress", "fancy", ctx], "fancy"),
        (vec!["build", "--jobs", "many", ctx], "many"),
        (vec!["frobnicate"], "frobnicate"),
    ] {
        let out = env.ossb(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(5), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}
