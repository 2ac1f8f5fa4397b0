//! Shared helpers for the registry integration tests: a small hand-made OCI image.

#![allow(dead_code)]

#[cfg(all(feature = "ecr", feature = "gcr", feature = "acr"))]
pub mod cloud_fakes;
pub mod fake_http;
pub mod fault_proxy;

use std::io::Write as _;
use std::path::{Path, PathBuf};

use ossb_registry::Digest;
use ossb_registry::manifest::OCI_MANIFEST;

/// A small OCI image written to files: one gzip tar layer and a config.
pub struct TestImage {
    pub layer_path: PathBuf,
    pub layer_digest: Digest,
    pub layer_size: u64,
    pub config_path: PathBuf,
    pub config_digest: Digest,
    pub config_size: u64,
    pub manifest: Vec<u8>,
}

/// Builds the image in `dir`; `marker` goes into a file of the layer so images differ.
pub fn build_image(dir: &Path, marker: &str) -> TestImage {
    let mut tar_bytes = Vec::new();
    {
        let mut builder = tar::Builder::new(&mut tar_bytes);
        let content = format!("hello from ossb test {marker}\n");
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        builder
            .append_data(&mut header, "hello.txt", content.as_bytes())
            .expect("tar append");
        builder.finish().expect("tar finish");
    }
    let diff_id = Digest::sha256_of(&tar_bytes);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar_bytes).expect("gzip");
    let layer = gz.finish().expect("gzip finish");
    let layer_path = dir.join(format!("layer-{marker}.tar.gz"));
    std::fs::write(&layer_path, &layer).expect("write layer");

    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
        "history": [{"created_by": format!("ossb test {marker}")}],
    });
    let config_bytes = serde_json::to_vec(&config).expect("config json");
    let config_path = dir.join(format!("config-{marker}.json"));
    std::fs::write(&config_path, &config_bytes).expect("write config");

    let layer_digest = Digest::sha256_of(&layer);
    let config_digest = Digest::sha256_of(&config_bytes);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest.to_string(),
            "size": config_bytes.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": layer_digest.to_string(),
            "size": layer.len(),
        }],
    });
    TestImage {
        layer_path,
        layer_digest,
        layer_size: layer.len() as u64,
        config_path,
        config_digest,
        config_size: config_bytes.len() as u64,
        manifest: serde_json::to_vec(&manifest).expect("manifest json"),
    }
}

/// Writes `size` bytes of deterministic, poorly compressible data.
pub fn write_pseudo_random(path: &Path, size: usize, seed: u64) {
    let mut x = seed | 1;
    let mut data = Vec::with_capacity(size);
    while data.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate(size);
    std::fs::write(path, data).expect("write data");
}

/// Runs `skopeo inspect` on an image and returns its JSON output.
pub fn skopeo_inspect(image: &str, creds: Option<(&str, &str)>) -> serde_json::Value {
    let mut cmd = std::process::Command::new("skopeo");
    cmd.args(["inspect", "--tls-verify=false"]);
    if let Some((u, p)) = creds {
        cmd.arg("--creds").arg(format!("{u}:{p}"));
    }
    let out = cmd
        .arg(format!("docker://{image}"))
        .env_remove("REGISTRY_AUTH_FILE")
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo inspect {image} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("skopeo json")
}
