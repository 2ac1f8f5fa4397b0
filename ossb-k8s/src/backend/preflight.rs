//! Permission preflight: one SelfSubjectAccessReview per verb the build will use, so a missing
//! RBAC rule fails before anything is created, naming the exact rule.

use super::error::K8sError;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::PostParams;
use ossb_core::{Error, ExitCode};

/// One permission: verb on `group/resource[/subresource]` in a namespace (none: cluster scope).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission {
    /// `create`, `get`, `list`, `watch`, `delete`.
    pub verb: &'static str,
    /// API group (`""` for the core group, `batch`).
    pub group: &'static str,
    /// Resource (`configmaps`, `jobs`).
    pub resource: &'static str,
    /// Subresource (`log`).
    pub subresource: Option<&'static str>,
    /// Namespace, or `None` for a cluster-scoped resource (namespaces).
    pub namespace: Option<String>,
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let res = match self.subresource {
            Some(s) => format!("{}/{s}", self.resource),
            None => self.resource.to_string(),
        };
        let full = if self.group.is_empty() {
            res
        } else {
            format!("{res}.{}", self.group)
        };
        match &self.namespace {
            Some(ns) => write!(f, "{} {full} in namespace {ns:?}", self.verb),
            None => write!(f, "{} {full} (cluster-wide)", self.verb),
        }
    }
}

impl Permission {
    /// The RBAC rule that grants it, as YAML for a Role (or ClusterRole).
    pub fn rule(&self) -> String {
        let res = match self.subresource {
            Some(s) => format!("{}/{s}", self.resource),
            None => self.resource.to_string(),
        };
        format!(
            "{{apiGroups: [\"{}\"], resources: [\"{res}\"], verbs: [\"{}\"]}}",
            self.group, self.verb
        )
    }
}

/// Everything a build does: in `namespace`, plus creating and deleting namespaces when the
/// build gets its own (`per_build_namespace`), and secrets when it has build secrets.
pub fn build_permissions(
    namespace: &str,
    per_build_namespace: bool,
    secrets: bool,
) -> Vec<Permission> {
    let ns = || Some(namespace.to_string());
    let p = |verb, group, resource, subresource, namespace| Permission {
        verb,
        group,
        resource,
        subresource,
        namespace,
    };
    let mut list = Vec::new();
    if per_build_namespace {
        list.push(p("create", "", "namespaces", None, None));
        list.push(p("delete", "", "namespaces", None, None));
    }
    for verb in ["create", "delete"] {
        list.push(p(verb, "", "configmaps", None, ns()));
    }
    if secrets {
        for verb in ["create", "delete"] {
            list.push(p(verb, "", "secrets", None, ns()));
        }
    }
    for verb in ["create", "patch", "get", "watch", "delete"] {
        list.push(p(verb, "batch", "jobs", None, ns()));
    }
    for verb in ["list", "watch"] {
        list.push(p(verb, "", "pods", None, ns()));
    }
    list.push(p("get", "", "pods", Some("log"), ns()));
    list
}

/// Ask the API server about each permission; the first one missing fails with the rule to add.
pub async fn check(
    client: &kube::Client,
    server: &str,
    permissions: &[Permission],
) -> Result<(), Error> {
    let api: kube::Api<SelfSubjectAccessReview> = kube::Api::all(client.clone());
    let mut missing = Vec::new();
    for perm in permissions {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    namespace: perm.namespace.clone(),
                    verb: Some(perm.verb.to_string()),
                    group: Some(perm.group.to_string()),
                    resource: Some(perm.resource.to_string()),
                    subresource: perm.subresource.map(str::to_string),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let answer = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| K8sError::from_kube(e, &format!("check permission to {perm}"), server))?;
        let allowed = answer.status.as_ref().is_some_and(|s| s.allowed);
        if !allowed {
            missing.push(perm.clone());
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let list = missing
        .iter()
        .map(|p| format!("  - {p}: add {}", p.rule()))
        .collect::<Vec<_>>()
        .join("\n");
    Err(Error::new(
        ExitCode::Authentication,
        format!(
            "missing Kubernetes permission: cannot {}; the identity in use needs these rules \
             (see examples/k8s/rbac/role-minimum.yaml):\n{list}",
            missing[0]
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_name_the_exact_rule() {
        let perms = build_permissions("ci", true, true);
        let shown: Vec<String> = perms.iter().map(ToString::to_string).collect();
        assert!(shown.contains(&"create jobs.batch in namespace \"ci\"".to_string()));
        assert!(shown.contains(&"get pods/log in namespace \"ci\"".to_string()));
        assert!(shown.contains(&"create namespaces (cluster-wide)".to_string()));
        let log = perms.iter().find(|p| p.subresource.is_some()).expect("log");
        assert_eq!(
            log.rule(),
            "{apiGroups: [\"\"], resources: [\"pods/log\"], verbs: [\"get\"]}"
        );
        assert!(
            !build_permissions("ci", false, false)
                .iter()
                .any(|p| p.resource == "namespaces" || p.resource == "secrets")
        );
    }
}
