//! `examples/k8s/rbac/` parses into the typed Kubernetes objects, and its minimum Role grants
//! exactly what the backend's permission preflight checks (so the example and the code cannot
//! drift apart).

use k8s_openapi::api::core::v1::{Namespace, ResourceQuota, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role, RoleBinding};
use ossb_k8s::backend::preflight::{Permission, build_permissions};
use serde::Deserialize;
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/k8s/rbac")
}

fn docs<T: serde::de::DeserializeOwned>(file: &str) -> Vec<T> {
    let text = std::fs::read_to_string(dir().join(file)).expect("readable");
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| {
            let v = serde_json::Value::deserialize(d).expect("YAML");
            serde_json::from_value(v).unwrap_or_else(|e| panic!("{file}: {e}"))
        })
        .collect()
}

fn grants(rules: &[PolicyRule], p: &Permission) -> bool {
    let res = match p.subresource {
        Some(s) => format!("{}/{s}", p.resource),
        None => p.resource.to_string(),
    };
    rules.iter().any(|r| {
        r.api_groups
            .as_ref()
            .is_some_and(|g| g.iter().any(|g| g == p.group))
            && r.resources.as_ref().is_some_and(|rs| rs.contains(&res))
            && r.verbs.iter().any(|v| v == p.verb)
    })
}

#[test]
fn the_minimum_role_grants_every_permission_the_preflight_checks() {
    let role: Role = docs("role-minimum.yaml").remove(0);
    let rules = role.rules.expect("rules");
    for p in build_permissions("ossb-builds", false, true) {
        assert!(
            grants(&rules, &p),
            "role-minimum.yaml lacks {p}: add {}",
            p.rule()
        );
    }
    let full: Vec<serde_json::Value> = docs("role-full.yaml");
    let role: Role = serde_json::from_value(full[0].clone()).expect("Role");
    let cluster: ClusterRole = serde_json::from_value(full[1].clone()).expect("ClusterRole");
    let mut all = role.rules.expect("rules");
    all.extend(cluster.rules.expect("rules"));
    for p in build_permissions("ossb-builds", true, true) {
        assert!(grants(&all, &p), "role-full.yaml lacks {p}");
    }
}

#[test]
fn every_rbac_example_is_a_valid_object_and_the_kustomization_lists_existing_files() {
    let ns: Namespace = docs("namespace.yaml").remove(0);
    let sa: ServiceAccount = docs("serviceaccount.yaml").remove(0);
    let binding: RoleBinding = docs("rolebinding.yaml").remove(0);
    let _quota: ResourceQuota = docs("resourcequota.yaml").remove(0);
    let name = ns.metadata.name.expect("namespace name");
    assert_eq!(sa.metadata.namespace.as_deref(), Some(name.as_str()));
    let subject = &binding.subjects.expect("subjects")[0];
    assert_eq!(Some(subject.name.clone()), sa.metadata.name);
    assert_eq!(binding.role_ref.name, "ossb-submitter");
    let k: serde_json::Value = docs("kustomization.yaml").remove(0);
    for r in k["resources"].as_array().expect("resources") {
        let file = r.as_str().expect("path");
        assert!(
            dir().join(file).is_file(),
            "kustomization lists missing {file}"
        );
    }
}
