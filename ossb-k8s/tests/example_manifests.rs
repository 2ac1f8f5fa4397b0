//! Every YAML document in `examples/k8s/` parses, has the fields its kind requires, uses the
//! documented mount paths, and runs the build with the restricted security context.

use ossb_k8s::pod::PodPaths;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;

fn manifests() -> Vec<(String, Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/k8s");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("examples/k8s exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 7,
        "expected the example manifests, found {files:?}"
    );
    let mut docs = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("readable");
        let name = f.file_name().expect("name").to_string_lossy().into_owned();
        for (i, doc) in serde_yaml_ng::Deserializer::from_str(&text).enumerate() {
            let v = Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{name} document {i} is not valid YAML: {e}"));
            if !v.is_null() {
                docs.push((format!("{name}#{i}"), v));
            }
        }
    }
    docs
}

fn str_at<'a>(v: &'a Value, ptr: &str, what: &str) -> &'a str {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{what}: missing string at {ptr}"))
}

fn check_job(name: &str, job: &Value, defined: &BTreeSet<(String, String)>) {
    assert_eq!(str_at(job, "/apiVersion", name), "batch/v1", "{name}");
    assert!(
        job.pointer("/spec/backoffLimit").is_some(),
        "{name}: backoffLimit"
    );
    let pod = job.pointer("/spec/template/spec").expect("pod template");
    let policy = str_at(pod, "/restartPolicy", name);
    assert!(
        ["Never", "OnFailure"].contains(&policy),
        "{name}: restartPolicy {policy}"
    );

    let psc = &pod["securityContext"];
    assert_eq!(psc["runAsNonRoot"], true, "{name}: runAsNonRoot");
    assert_eq!(psc["runAsUser"], 1000, "{name}: runAsUser");
    let seccomp = str_at(psc, "/seccompProfile/type", name);
    assert!(
        ["RuntimeDefault", "Localhost"].contains(&seccomp),
        "{name}: seccomp {seccomp}"
    );

    let volumes: Vec<&Value> = pod["volumes"]
        .as_array()
        .map(|v| v.iter().collect())
        .unwrap_or_default();
    let volume_names: BTreeSet<&str> = volumes.iter().map(|v| str_at(v, "/name", name)).collect();
    for v in &volumes {
        if let Some(s) = v.pointer("/secret/secretName").and_then(Value::as_str) {
            assert!(
                defined.contains(&("Secret".into(), s.into())),
                "{name}: Secret {s} is not defined in examples/k8s"
            );
        }
        if let Some(c) = v.pointer("/configMap/name").and_then(Value::as_str) {
            assert!(
                defined.contains(&("ConfigMap".into(), c.into())),
                "{name}: ConfigMap {c} is not defined in examples/k8s"
            );
        }
        if let Some(mode) = v.pointer("/secret/defaultMode").and_then(Value::as_u64) {
            assert!(
                mode <= 0o777,
                "{name}: defaultMode {mode} is not a file mode"
            );
        }
    }

    let containers = pod["containers"].as_array().expect("containers");
    assert!(!containers.is_empty(), "{name}: no containers");
    let paths = PodPaths::default();
    let documented = [
        ("registry-secret", paths.registry_secret_dir()),
        ("registry-auth", paths.registry_auth()),
        ("build-secrets", paths.build_secrets()),
        ("build-context", paths.build_context()),
        (
            "registry-config",
            paths.configmaps_root.join("registry-config"),
        ),
    ];
    for c in containers {
        str_at(c, "/name", name);
        str_at(c, "/image", name);
        let sc = &c["securityContext"];
        assert_eq!(
            sc["allowPrivilegeEscalation"], false,
            "{name}: allowPrivilegeEscalation"
        );
        let drop = sc
            .pointer("/capabilities/drop")
            .and_then(Value::as_array)
            .expect("capabilities.drop");
        assert!(
            drop.iter().any(|d| d == "ALL"),
            "{name}: capabilities must drop ALL"
        );
        assert!(
            c.pointer("/resources/limits/memory").is_some(),
            "{name}: memory limit"
        );
        let env: BTreeSet<&str> = c["env"]
            .as_array()
            .expect("env")
            .iter()
            .map(|e| str_at(e, "/name", name))
            .collect();
        for var in [
            "JOB_NAME",
            "POD_NAME",
            "POD_NAMESPACE",
            "NODE_NAME",
            "LOG_LEVEL",
        ] {
            assert!(env.contains(var), "{name}: env {var}");
        }
        let mounts = c["volumeMounts"].as_array().expect("volumeMounts");
        let mut mounted = BTreeSet::new();
        for m in mounts {
            let vol = str_at(m, "/name", name);
            let path = str_at(m, "/mountPath", name);
            assert!(
                volume_names.contains(vol),
                "{name}: mount of undefined volume {vol}"
            );
            mounted.insert(path.to_string());
            for (doc_name, doc_path) in &documented {
                if vol == *doc_name {
                    assert_eq!(
                        std::path::Path::new(path),
                        doc_path.as_path(),
                        "{name}: {vol} mounted at {path}"
                    );
                }
            }
        }
        for needed in ["/workspace", "/tmp"] {
            assert!(
                mounted.contains(needed),
                "{name}: needs a writable emptyDir at {needed}"
            );
        }
    }
}

#[test]
fn every_example_manifest_is_valid() {
    let docs = manifests();
    let defined: BTreeSet<(String, String)> = docs
        .iter()
        .map(|(n, d)| {
            (
                str_at(d, "/kind", n).to_string(),
                str_at(d, "/metadata/name", n).to_string(),
            )
        })
        .collect();
    let mut kinds = BTreeSet::new();
    for (name, doc) in &docs {
        let kind = str_at(doc, "/kind", name);
        kinds.insert(kind.to_string());
        match kind {
            "Job" => check_job(name, doc, &defined),
            "Secret" => {
                assert_eq!(str_at(doc, "/apiVersion", name), "v1");
                if doc["type"] == "kubernetes.io/dockerconfigjson" {
                    let cfg: Value =
                        serde_json::from_str(str_at(doc, "/stringData/.dockerconfigjson", name))
                            .expect("dockerconfigjson is JSON");
                    assert!(cfg["auths"].is_object(), "{name}: auths");
                }
            }
            "ConfigMap" => {
                assert_eq!(str_at(doc, "/apiVersion", name), "v1");
                let data = doc["data"].as_object().expect("data");
                assert!(!data.is_empty(), "{name}: empty ConfigMap");
                if let Some(cfg) = data.get("config.yaml").and_then(Value::as_str) {
                    ossb_registry::RegistryConfig::from_yaml(cfg).unwrap_or_else(|e| {
                        panic!("{name}: config.yaml is not a registry config: {e}")
                    });
                }
            }
            other => panic!("{name}: unexpected kind {other}"),
        }
    }
    assert_eq!(
        kinds,
        BTreeSet::from(["ConfigMap".into(), "Job".into(), "Secret".into()])
    );
    let jobs = docs.iter().filter(|(_, d)| d["kind"] == "Job").count();
    assert!(
        jobs >= 5,
        "basic, multi-arch, auth, secrets and restricted Jobs: {jobs}"
    );
}

/// Each document deserialises as the typed Kubernetes object of its kind (k8s-openapi, the API
/// types of Kubernetes 1.33), so field names and value types are the ones the API server takes.
#[test]
fn every_manifest_parses_as_its_typed_kubernetes_object() {
    use k8s_openapi::api::{batch::v1::Job, core::v1::ConfigMap, core::v1::Secret};
    let mut kinds = BTreeSet::new();
    for (name, doc) in manifests() {
        let kind = str_at(&doc, "/kind", &name).to_string();
        match kind.as_str() {
            "Job" => {
                let job: Job = serde_json::from_value(doc.clone())
                    .unwrap_or_else(|e| panic!("{name}: not a valid batch/v1 Job: {e}"));
                let spec = job
                    .spec
                    .unwrap_or_else(|| panic!("{name}: Job without spec"));
                let pod = spec
                    .template
                    .spec
                    .unwrap_or_else(|| panic!("{name}: no pod spec"));
                let ossb = pod
                    .containers
                    .iter()
                    .find(|c| {
                        c.args
                            .as_ref()
                            .is_some_and(|a| a.first().is_some_and(|x| x == "build"))
                    })
                    .unwrap_or_else(|| panic!("{name}: no container runs `ossb build`"));
                let sc = ossb
                    .security_context
                    .as_ref()
                    .unwrap_or_else(|| panic!("{name}: no securityContext"));
                assert_eq!(sc.allow_privilege_escalation, Some(false), "{name}");
                let drop = sc
                    .capabilities
                    .as_ref()
                    .and_then(|c| c.drop.clone())
                    .unwrap_or_default();
                assert!(
                    drop.iter().any(|d| d == "ALL"),
                    "{name}: capabilities drop ALL"
                );
            }
            "ConfigMap" => {
                let cm: ConfigMap = serde_json::from_value(doc.clone())
                    .unwrap_or_else(|e| panic!("{name}: not a valid v1 ConfigMap: {e}"));
                assert!(
                    cm.data.is_some() || cm.binary_data.is_some(),
                    "{name}: empty ConfigMap"
                );
            }
            "Secret" => {
                let secret: Secret = serde_json::from_value(doc.clone())
                    .unwrap_or_else(|e| panic!("{name}: not a valid v1 Secret: {e}"));
                assert!(
                    secret.data.is_some() || secret.string_data.is_some(),
                    "{name}: empty Secret"
                );
            }
            other => panic!("{name}: unexpected kind {other}"),
        }
        kinds.insert(kind);
    }
    assert_eq!(
        kinds,
        BTreeSet::from([
            "ConfigMap".to_string(),
            "Job".to_string(),
            "Secret".to_string()
        ])
    );
}
