//! A whole `ossb build` with RUN steps in the ptrace sandbox (`OSSB_SANDBOX=ptrace`): no
//! namespaces, paths translated by the tracer, `chown` recorded and written to the layer.
//! Needs no privileges: CI runs it as root and as uid 1000.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

mod common;

use common::{Env, busybox_layout};

/// Every entry of every layer of the layout's `latest` image: path -> (uid, gid, mode,
/// contents of regular files), later layers win.
fn entries(layout: &Path) -> BTreeMap<String, (u64, u64, u32, Vec<u8>)> {
    let blob = |digest: &str| {
        let (algo, hex) = digest.split_once(':').expect("digest");
        layout.join("blobs").join(algo).join(hex)
    };
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).expect("index")).expect("json");
    let manifest = index["manifests"][0]["digest"]
        .as_str()
        .expect("manifest digest");
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(blob(manifest)).expect("manifest")).expect("json");
    let mut out = BTreeMap::new();
    for layer in manifest["layers"].as_array().expect("layers") {
        let file = fs::File::open(blob(layer["digest"].as_str().expect("digest"))).expect("blob");
        let reader: Box<dyn std::io::Read> = match layer["mediaType"].as_str() {
            Some("application/vnd.oci.image.layer.v1.tar") => Box::new(file),
            Some("application/vnd.oci.image.layer.v1.tar+gzip") => {
                Box::new(flate2::read::GzDecoder::new(file))
            }
            other => panic!("unexpected layer type {other:?}"),
        };
        let mut ar = tar::Archive::new(reader);
        for e in ar.entries().expect("entries") {
            let mut e = e.expect("entry");
            let path = e
                .path()
                .expect("path")
                .to_string_lossy()
                .trim_end_matches('/')
                .to_string();
            let h = e.header().clone();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).expect("read");
            out.insert(
                path,
                (
                    h.uid().expect("uid"),
                    h.gid().expect("gid"),
                    h.mode().expect("mode"),
                    data,
                ),
            );
        }
    }
    out
}

#[test]
fn a_busybox_build_runs_its_steps_in_the_ptrace_sandbox() {
    let env = Env::new();
    let base = busybox_layout(&env);
    env.write(
        "p/Dockerfile",
        &format!(
            "FROM {base}\n\
             RUN echo one | tr a-z A-Z > /one && mkdir -p /app/data /app/bin && echo v > /app/data/v\n\
             RUN cp /one /app/bin/copy && ln -s /app/data/v /app/link && rm /bin/vi\n\
             RUN chown -R 1000:1000 /app && chgrp 5 /app/data/v && chmod 0750 /app/bin\n\
             RUN stat -c %u:%g /app/data/v > /owners && id -u > /uid && cat ../../../etc/passwd | head -n 1 > /pw\n\
             RUN if [ -e /proc/1/environ ]; then echo namespaces; else echo ptrace; fi > /sandbox\n\
             RUN --mount=type=cache,target=/var/cache/x echo cached > /var/cache/x/f\n\
             RUN --mount=type=cache,target=/var/cache/x cat /var/cache/x/f > /from-cache\n\
             RUN --mount=type=tmpfs,target=/scratch echo t > /scratch/t && cat /scratch/t > /from-tmpfs\n\
             USER 1000\n\
             RUN id -u > /tmp/uid-as-user\n"
        ),
    );
    let out = env.path("p-oci");
    let build = env
        .cmd()
        .env("OSSB_SANDBOX", "ptrace")
        .args([
            "build",
            "--progress",
            "plain",
            "--compression",
            "uncompressed",
            "--output",
            &format!("type=oci,dest={}", out.display()),
            env.path("p").to_str().expect("utf8"),
        ])
        .output()
        .expect("ossb runs");
    let stderr = String::from_utf8_lossy(&build.stderr);
    assert!(build.status.success(), "{stderr}");
    let files = entries(&out);
    let get = |p: &str| {
        files.get(p).unwrap_or_else(|| {
            panic!(
                "{p} not in the layers: {:?}",
                files.keys().collect::<Vec<_>>()
            )
        })
    };
    // The host's PID 1 does not exist for a traced step (in a namespace the step is PID 1).
    assert_eq!(
        get("sandbox").3,
        b"ptrace\n",
        "the steps ran in the ptrace sandbox"
    );
    assert_eq!(get("one").3, b"ONE\n");
    assert_eq!(
        get("from-cache").3,
        b"cached\n",
        "a cache mount persists across steps"
    );
    assert_eq!(get("from-tmpfs").3, b"t\n");
    for gone in ["var/cache/x/f", "var/cache/x", "scratch/t", "scratch"] {
        assert!(
            !files.contains_key(gone),
            "{gone} is a mount: not in the layers"
        );
    }
    assert_eq!(get("app/bin/copy").3, b"ONE\n");
    assert_eq!(
        get("owners").3,
        b"1000:5\n",
        "stat in a later step sees the recorded owner"
    );
    assert_eq!(get("uid").3, b"0\n");
    assert_eq!(get("tmp/uid-as-user").3, b"1000\n");
    assert!(
        get("pw").3.starts_with(b"root:x:0:0:root:/root:/bin/sh"),
        "the rootfs's passwd"
    );
    assert_eq!(
        (get("app").0, get("app").1),
        (1000, 1000),
        "chown -R of a dir is in the layer"
    );
    assert_eq!((get("app/data/v").0, get("app/data/v").1), (1000, 5));
    assert_eq!(
        (
            get("app/bin").0,
            get("app/bin").1,
            get("app/bin").2 & 0o7777
        ),
        (1000, 1000, 0o750)
    );
    assert_eq!(get("one").0, 0, "files the step creates belong to root");
    assert!(
        files.contains_key("bin/.wh.vi"),
        "the removal is a whiteout"
    );
    assert!(files.contains_key("app/link"));
    // The store and the host are untouched by the step's writes.
    assert!(!Path::new("/one").exists() && !Path::new("/owners").exists());
}

#[test]
fn what_the_ptrace_sandbox_cannot_do_fails_with_a_clear_message() {
    let env = Env::new();
    let base = busybox_layout(&env);
    let secret = env.write("s.txt", "value");
    let build = |dir: &str, sandbox: &str| {
        env.cmd()
            .env("OSSB_SANDBOX", sandbox)
            .args([
                "build",
                "--progress",
                "quiet",
                "--secret",
                &format!("id=s,src={}", secret.display()),
                env.path(dir).to_str().expect("utf8"),
            ])
            .output()
            .expect("ossb runs")
    };
    env.write(
        "net/Dockerfile",
        &format!("FROM {base}\nRUN --network=none true\n"),
    );
    let out = build("net", "ptrace");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--network=none needs a network namespace"),
        "{err}"
    );
    env.write(
        "secret/Dockerfile",
        &format!("FROM {base}\nRUN --mount=type=secret,id=s true\n"),
    );
    let out = build("secret", "ptrace");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("type=secret at /run/secrets/s is not supported by the ptrace sandbox"),
        "{err}"
    );
    env.write("plain/Dockerfile", &format!("FROM {base}\nRUN true\n"));
    let out = build("plain", "sideways");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    // OSSB_SANDBOX is the environment form of --sandbox.
    assert!(err.contains("unknown sandbox \"sideways\""), "{err}");
}
