//! `RUN --mount` end to end through the real `ossb` binary: secrets (file and env, never
//! leaked anywhere), cache mounts that persist between builds, binds from the context and from
//! a stage, tmpfs, and the errors for a missing required secret and for ssh.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

use common::{Env, busybox_layout};

/// Helpers only these tests use.
impl Env {
    /// Builds context `ctx` into an OCI layout `out` (plain progress); returns the output.
    fn build_oci(&self, ctx: &str, out: &str, extra: &[&str]) -> Output {
        let dest = format!("type=oci,dest={}", self.path(out).display());
        let ctx = self.path(ctx);
        let mut args = vec!["build", "--progress", "plain", "--output", &dest];
        args.extend_from_slice(extra);
        args.push(ctx.to_str().expect("utf8"));
        self.ossb(&args)
    }
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "build failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(path).expect("read json")).expect("json")
}

fn blob(layout: &Path, digest: &str) -> PathBuf {
    let (alg, hex) = digest.split_once(':').expect("digest");
    layout.join("blobs").join(alg).join(hex)
}

/// The layer blobs of the image in `layout`, bottom first.
fn layers(layout: &Path) -> Vec<PathBuf> {
    let index = json(&layout.join("index.json"));
    let manifest = json(&blob(
        layout,
        index["manifests"][0]["digest"].as_str().expect("manifest"),
    ));
    manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| blob(layout, l["digest"].as_str().expect("digest")))
        .collect()
}

/// Paths in the layers above the base (which has one layer), `./` and `/` trimmed.
fn added_paths(layout: &Path) -> Vec<String> {
    let mut all = Vec::new();
    for layer in layers(layout).iter().skip(1) {
        let out = Command::new("tar")
            .arg("-tzf")
            .arg(layer)
            .output()
            .expect("tar runs");
        assert!(out.status.success(), "tar -tzf {}", layer.display());
        all.extend(String::from_utf8_lossy(&out.stdout).lines().map(|l| {
            l.trim_start_matches("./")
                .trim_start_matches('/')
                .trim_end_matches('/')
                .to_string()
        }));
    }
    all
}

/// The content of `path` in the image: the last layer that has it wins.
fn file_in_image(layout: &Path, path: &str) -> Option<String> {
    let mut found = None;
    for layer in layers(layout) {
        for name in [path.to_string(), format!("./{path}")] {
            let out = Command::new("tar")
                .arg("-xzOf")
                .arg(&layer)
                .arg(&name)
                .output()
                .expect("tar runs");
            if out.status.success() {
                found = Some(String::from_utf8_lossy(&out.stdout).into_owned());
            }
        }
    }
    found
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("urandom");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Every file beneath `dir` whose bytes, or gunzipped bytes, contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(meta) = fs::symlink_metadata(&p) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(p);
            } else if meta.is_file() {
                let bytes = fs::read(&p).unwrap_or_default();
                let mut hit = contains(&bytes, needle);
                if !hit && bytes.starts_with(&[0x1f, 0x8b]) {
                    let out = Command::new("gzip")
                        .arg("-dc")
                        .arg(&p)
                        .output()
                        .expect("gzip runs");
                    hit = contains(&out.stdout, needle);
                }
                if hit {
                    hits.push(p);
                }
            }
        }
    }
    hits
}

fn sha256_of(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("sum")
        .to_string()
}

#[test]
fn secrets_are_readable_as_file_and_env_and_never_leak() {
    let env = Env::new();
    let base = busybox_layout(&env);
    let token = random_token();
    let secret = env.write("secret/tok.txt", &token);
    env.write(
        "s/Dockerfile",
        &format!(
            "FROM {base}\n\
             RUN --mount=type=secret,id=tok sha256sum /run/secrets/tok | cut -d' ' -f1 > /file.sum && stat -c '%a %u %g' /run/secrets/tok > /file.stat\n\
             RUN --mount=type=secret,id=tok,env=TOK printf %s \"$TOK\" | sha256sum | cut -d' ' -f1 > /env.sum && test ! -e /run/secrets/tok && echo env-only > /env.only\n\
             RUN --mount=type=secret,id=tok,target=/etc/app/key,mode=0440 stat -c '%a' /etc/app/key > /custom.stat\n\
             RUN --mount=type=secret,id=absent test ! -e /run/secrets/absent && echo skipped > /optional\n"
        ),
    );
    let status = env.path("status.json");
    let dest = format!("type=oci,dest={}", env.path("s-oci").display());
    let src = format!("id=tok,src={}", secret.display());
    let out = env
        .cmd()
        .args([
            "build",
            "--progress",
            "plain",
            "--log-format",
            "json",
            "--log-level",
            "debug",
            "--secret",
            &src,
            "--output",
            &dest,
        ])
        .arg(env.path("s"))
        .env("OSSB_STATUS_FILE", &status)
        .output()
        .expect("ossb runs");
    ok(&out);
    let layout = env.path("s-oci");
    let want = sha256_of(&secret);
    assert_eq!(
        file_in_image(&layout, "file.sum").expect("file.sum").trim(),
        want
    );
    assert_eq!(
        file_in_image(&layout, "file.stat")
            .expect("file.stat")
            .trim(),
        "400 0 0"
    );
    assert_eq!(
        file_in_image(&layout, "env.sum").expect("env.sum").trim(),
        want,
        "env=TOK holds the secret"
    );
    assert!(file_in_image(&layout, "env.only").is_some());
    assert_eq!(
        file_in_image(&layout, "custom.stat")
            .expect("custom.stat")
            .trim(),
        "440"
    );
    assert!(file_in_image(&layout, "optional").is_some());
    let paths = added_paths(&layout);
    for p in &paths {
        assert!(
            !p.starts_with("run") && !p.starts_with("etc/app"),
            "no mount point in a layer: {paths:?}"
        );
    }

    // The token's bytes appear nowhere: blobs (layers gunzipped), config, history, index,
    // output streams, the status file and the whole store.
    let needle = token.as_bytes();
    assert!(!contains(&out.stdout, needle), "token on stdout");
    assert!(!contains(&out.stderr, needle), "token on stderr");
    assert!(
        !contains(&fs::read(&status).expect("status file"), needle),
        "token in the status file"
    );
    let hits = files_containing(&layout, needle);
    assert!(hits.is_empty(), "token in the image: {hits:?}");
    let hits = files_containing(&env.path("store"), needle);
    assert!(hits.is_empty(), "token in the store: {hits:?}");
    // The secret's value is not part of the cache key: another value hits the cache.
    let other = env.write("secret/other.txt", "something else");
    let again = env.build_oci(
        "s",
        "s2-oci",
        &["--secret", &format!("id=tok,src={}", other.display())],
    );
    ok(&again);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.lines().filter(|l| l.contains(" CACHED ")).count() >= 4,
        "{stderr}"
    );
}

#[test]
fn a_missing_required_secret_fails_naming_it() {
    let env = Env::new();
    let base = busybox_layout(&env);
    env.write(
        "m/Dockerfile",
        &format!(
            "FROM {base}\nRUN --mount=type=secret,id=npmrc,required=true cat /run/secrets/npmrc\n"
        ),
    );
    let out = env.build_oci("m", "m-oci", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("npmrc") && err.contains("--secret id=npmrc"),
        "{err}"
    );
}

#[test]
fn ssh_mounts_fail_with_a_clear_message() {
    let env = Env::new();
    let base = busybox_layout(&env);
    env.write(
        "x/Dockerfile",
        &format!("FROM {base}\nRUN --mount=type=ssh ls\n"),
    );
    let out = env.build_oci("x", "x-oci", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("type=ssh") && err.contains("not supported yet"),
        "{err}"
    );
}

#[test]
fn cache_mounts_persist_between_builds_and_stay_out_of_layers() {
    let env = Env::new();
    let base = busybox_layout(&env);
    env.write(
        "c1/Dockerfile",
        &format!(
            "FROM {base}\nRUN --mount=type=cache,target=/var/cache/app echo one >> /var/cache/app/seen && echo done > /first\n"
        ),
    );
    ok(&env.build_oci("c1", "c1-oci", &[]));
    env.write(
        "c2/Dockerfile",
        &format!(
            "FROM {base}\nWORKDIR /w\n\
             RUN --mount=type=cache,target=/var/cache/app,sharing=locked cat /var/cache/app/seen > /got\n\
             RUN --mount=type=cache,id=other,target=rel,uid=1000,gid=1000,mode=0700 stat -c '%a' /w/rel > /w/rel.stat && touch /w/rel/x\n\
             RUN --mount=type=cache,target=/p,sharing=private touch /p/y\n"
        ),
    );
    ok(&env.build_oci("c2", "c2-oci", &[]));
    let layout = env.path("c2-oci");
    assert_eq!(
        file_in_image(&layout, "got").expect("got").trim(),
        "one",
        "the second build sees what the first wrote"
    );
    assert_eq!(
        file_in_image(&layout, "w/rel.stat")
            .expect("rel.stat")
            .trim(),
        "700"
    );
    for out in ["c1-oci", "c2-oci"] {
        let paths = added_paths(&env.path(out));
        for p in &paths {
            assert!(
                !p.starts_with("var") && p != "w/rel" && !p.starts_with("w/rel/") && p != "p",
                "{out}: no cache mount content or mount point in a layer: {paths:?}"
            );
        }
    }
}

#[test]
fn bind_mounts_from_the_context_and_a_stage_are_read_only_and_not_in_layers() {
    let env = Env::new();
    let base = busybox_layout(&env);
    env.write("b/data/hello.txt", "hello from the context\n");
    env.write("b/data/private.key", "ignored\n");
    env.write("b/.dockerignore", "data/private.key\n");
    env.write(
        "b/Dockerfile",
        &format!(
            "FROM {base} AS maker\nRUN echo made-in-stage > /made\n\
             FROM {base}\nWORKDIR /w\n\
             RUN --mount=type=bind,source=data,target=/mnt cat /mnt/hello.txt > /got && (touch /mnt/new 2>/dev/null && echo writable || echo read-only) > /ro && (test -e /mnt/private.key && echo visible || echo hidden) > /ignored\n\
             RUN --mount=type=bind,source=data,target=rel,rw echo changed > rel/hello.txt && touch rel/new && cat rel/hello.txt > /rw\n\
             RUN --mount=type=bind,from=maker,source=/made,target=/from-stage cat /from-stage > /staged\n\
             RUN --mount=type=tmpfs,target=/t,size=1m echo in-tmpfs > /t/f && cat /t/f > /tmpfs.ok\n"
        ),
    );
    ok(&env.build_oci("b", "b-oci", &[]));
    let layout = env.path("b-oci");
    let get = |p: &str| file_in_image(&layout, p).unwrap_or_default();
    assert_eq!(get("got"), "hello from the context\n");
    assert_eq!(get("ro").trim(), "read-only");
    assert_eq!(get("ignored").trim(), "hidden", ".dockerignore applies");
    assert_eq!(get("rw").trim(), "changed");
    assert_eq!(get("staged").trim(), "made-in-stage");
    assert_eq!(get("tmpfs.ok").trim(), "in-tmpfs");
    assert_eq!(
        fs::read_to_string(env.path("b/data/hello.txt")).expect("context file"),
        "hello from the context\n",
        "rw writes never reach the context"
    );
    assert!(!env.path("b/data/new").exists());
    let paths = added_paths(&layout);
    for p in &paths {
        assert!(
            !p.starts_with("mnt")
                && p != "w/rel"
                && !p.starts_with("w/rel/")
                && p != "from-stage"
                && p != "t"
                && !p.starts_with("t/"),
            "no bind/tmpfs content or mount point in a layer: {paths:?}"
        );
    }
    // The bind source's content is part of the key: a change reruns the step.
    env.write("b/data/hello.txt", "changed context\n");
    ok(&env.build_oci("b", "b2-oci", &[]));
    assert_eq!(
        file_in_image(&env.path("b2-oci"), "got").unwrap_or_default(),
        "changed context\n"
    );
}

/// A store deep enough that the overlay's directory names pass the kernel's 256-byte cap on
/// one mount option (as a deep `OSSB_WORKSPACE` in a pod makes them): RUN steps still run.
#[test]
fn run_steps_work_with_a_store_path_longer_than_a_mount_option() {
    let env = Env::new();
    let base = busybox_layout(&env);
    let deep = env.path(&format!(
        "{}/{}/{}",
        "d".repeat(90),
        "e".repeat(90),
        "f".repeat(90)
    ));
    std::fs::create_dir_all(&deep).expect("deep dir");
    env.write(
        "deep-ctx/Dockerfile",
        &format!("FROM {base}\nRUN echo made-in-a-deep-store > /f && cat /f\n"),
    );
    let out = env
        .cmd()
        .env("OSSB_ROOT", &deep)
        .args([
            "build",
            "--progress",
            "plain",
            env.path("deep-ctx").to_str().expect("utf8"),
        ])
        .output()
        .expect("ossb runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("made-in-a-deep-store"), "{text}");
}
