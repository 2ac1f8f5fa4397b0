//! End to end through the `ossb` binary: a stage built on an image starts with that image's
//! `Env` (so `ENV PATH=/y:$PATH` extends the base's `PATH`) and runs its `ONBUILD` triggers.
//! Base images are built into OCI layouts and used through `--build-context`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

use common::Env;

/// Helpers only these tests use.
impl Env {
    /// Build `context` into the OCI layout `dest` (tag `latest`), with extra arguments.
    fn build_oci(&self, context: &str, dest: &str, extra: &[&str]) {
        let out_spec = format!("type=oci,dest={}", self.path(dest).display());
        let ctx = self.path(context);
        let mut args = vec!["build", "--progress", "quiet", "--output", &out_spec];
        args.extend_from_slice(extra);
        args.push(ctx.to_str().expect("utf8"));
        let out = self.ossb(&args);
        assert!(
            out.status.success(),
            "ossb {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn skopeo_config(layout: &Path) -> serde_json::Value {
    let out = Command::new("skopeo")
        .args(["inspect", "--config"])
        .arg(format!("oci:{}:latest", layout.display()))
        .output()
        .expect("skopeo runs");
    assert!(
        out.status.success(),
        "skopeo inspect: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("skopeo prints json")
}

/// The path of a blob of the layout.
fn blob(layout: &Path, digest: &serde_json::Value) -> PathBuf {
    let d = digest.as_str().expect("digest");
    layout
        .join("blobs/sha256")
        .join(d.trim_start_matches("sha256:"))
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(path).expect("read")).expect("json")
}

/// The manifest of the layout's only image.
fn manifest(layout: &Path) -> serde_json::Value {
    let index = read_json(&layout.join("index.json"));
    read_json(&blob(layout, &index["manifests"][0]["digest"]))
}

/// The config blob as written; skopeo drops Docker's `OnBuild`, so read it directly.
fn raw_config(layout: &Path) -> serde_json::Value {
    read_json(&blob(layout, &manifest(layout)["config"]["digest"]))
}

/// The files of the image's layers (paths as in the tars), listed with `tar`.
fn layer_files(layout: &Path) -> Vec<String> {
    let manifest = manifest(layout);
    let mut files = Vec::new();
    for layer in manifest["layers"].as_array().expect("layers") {
        let out = Command::new("tar")
            .arg("-tzf")
            .arg(blob(layout, &layer["digest"]))
            .output()
            .expect("tar runs");
        assert!(out.status.success(), "tar -tzf failed");
        files.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(|l| l.trim_start_matches("./").to_string()),
        );
    }
    files
}

fn have(tool: &str) -> bool {
    ossb_testkit::require_tool(tool)
}

#[test]
fn child_env_extends_the_base_image_env() {
    if !have("skopeo") {
        return;
    }
    let env = Env::new();
    env.write("base/x.txt", "x\n");
    env.write(
        "base/Dockerfile",
        "FROM scratch\nCOPY x.txt /x.txt\nENV PATH=/x\n",
    );
    env.build_oci("base", "base-oci", &[]);
    assert_eq!(
        skopeo_config(&env.path("base-oci"))["config"]["Env"],
        serde_json::json!(["PATH=/x"])
    );

    env.write(
        "child/Dockerfile",
        "FROM base\nENV PATH=/y:$PATH\nWORKDIR $PATH\n",
    );
    let layout = format!(
        "base=oci-layout://{}:latest",
        env.path("base-oci").display()
    );
    env.build_oci("child", "child-oci", &["--build-context", &layout]);
    let config = skopeo_config(&env.path("child-oci"));
    assert_eq!(config["config"]["Env"], serde_json::json!(["PATH=/y:/x"]));
    assert_eq!(config["config"]["WorkingDir"], "/y:/x");
}

#[test]
fn onbuild_copy_of_the_base_image_runs_in_the_child() {
    if !have("skopeo") || !have("tar") {
        return;
    }
    let env = Env::new();
    env.write(
        "base/Dockerfile",
        "FROM scratch\nENV DEST=/app\nONBUILD COPY app.txt $DEST/\n",
    );
    env.build_oci("base", "base-oci", &[]);
    assert_eq!(
        raw_config(&env.path("base-oci"))["config"]["OnBuild"],
        serde_json::json!(["COPY app.txt $DEST/"])
    );

    env.write("child/app.txt", "hello\n");
    env.write("child/Dockerfile", "FROM base\nLABEL built=yes\n");
    let layout = format!(
        "base=oci-layout://{}:latest",
        env.path("base-oci").display()
    );
    env.build_oci("child", "child-oci", &["--build-context", &layout]);
    let child = env.path("child-oci");
    assert!(
        layer_files(&child).iter().any(|f| f == "app/app.txt"),
        "the trigger copied app.txt: {:?}",
        layer_files(&child)
    );
    let config = raw_config(&child);
    assert!(
        config["config"]["OnBuild"].is_null(),
        "triggers that ran are not inherited: {}",
        config["config"]
    );
    assert_eq!(config["config"]["Labels"]["built"], "yes");
}
