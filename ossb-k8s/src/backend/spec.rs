//! The objects a build creates: ConfigMaps with the context, a Secret with the build secrets,
//! optionally a namespace, and the Job that runs `ossb build` in a restricted pod with every
//! volume at its documented in-pod path.

use super::options::KubernetesOptions;
use super::upload::{DOCKERFILE_KEY, DOCKERIGNORE_KEY, PackedConfigMap};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapProjection, ConfigMapVolumeSource, Container,
    EmptyDirVolumeSource, EnvVar, EnvVarSource, KeyToPath, Namespace, ObjectFieldSelector,
    PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec,
    ProjectedVolumeSource, ResourceRequirements, SeccompProfile, Secret, SecretVolumeSource,
    SecurityContext, Volume, VolumeMount, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use ossb_core::backend::{BuildRequest, Output};
use ossb_core::{Error, ExitCode};
use std::collections::BTreeMap;

/// Label with the build id on everything a build creates.
pub const BUILD_ID_LABEL: &str = "ossb.dev/build-id";
/// Label with the (sanitised) first image name.
pub const IMAGE_LABEL: &str = "ossb.dev/image";
/// Annotation with the full image names.
pub const IMAGE_ANNOTATION: &str = "ossb.dev/images";
/// `app.kubernetes.io/managed-by` value, used by `ossb k8s list`.
pub const MANAGED_BY: &str = "ossb";
/// The container's name.
pub const CONTAINER: &str = "ossb";
/// Where the context is materialised in the pod.
pub const POD_CONTEXT_DIR: &str = "/workspace/context";
/// Where the init container clones a git context.
pub const POD_GIT_DIR: &str = "/workspace/git";
/// Where the Dockerfile volume is mounted.
pub const POD_DOCKERFILE_DIR: &str = "/var/run/configmaps/build-dockerfile";

/// Everything one build creates, in creation order.
#[derive(Debug, Clone)]
pub struct BuildObjects {
    /// The build id (also the Job's name).
    pub build_id: String,
    /// The namespace the build runs in.
    pub namespace: String,
    /// The namespace to create, for a per-build namespace.
    pub namespace_object: Option<Namespace>,
    /// The context.
    pub configmaps: Vec<ConfigMap>,
    /// The build secrets.
    pub secret: Option<Secret>,
    /// The Job.
    pub job: Job,
}

/// A label value from free text: at most 63 of `[A-Za-z0-9._-]`, alphanumeric at both ends.
pub fn label_value(text: &str) -> String {
    let mapped: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(63)
        .collect();
    mapped
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

/// The labels every object of a build carries.
pub fn labels(build_id: &str, image: Option<&str>) -> BTreeMap<String, String> {
    let mut l = BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "ossb".to_string()),
        (
            "app.kubernetes.io/managed-by".to_string(),
            MANAGED_BY.to_string(),
        ),
        (BUILD_ID_LABEL.to_string(), build_id.to_string()),
    ]);
    if let Some(image) = image.map(label_value).filter(|v| !v.is_empty()) {
        l.insert(IMAGE_LABEL.to_string(), image);
    }
    l
}

fn meta(name: &str, namespace: &str, labels: &BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(namespace.to_string()),
        labels: Some(labels.clone()),
        ..Default::default()
    }
}

/// The `ossb build` arguments for the pod.
pub fn pod_args(request: &BuildRequest, opts: &KubernetesOptions) -> Result<Vec<String>, Error> {
    let mut args = vec!["build".to_string(), "--log-format".into(), "json".into()];
    // A Dockerfile in a remote context is found there by default.
    if !opts.dockerfile_in_remote_context() {
        args.extend(["-f".into(), format!("{POD_DOCKERFILE_DIR}/Dockerfile")]);
    }
    let mut push = false;
    for output in &request.outputs {
        match output {
            Output::Registry { name: None } => push = true,
            Output::Registry { name: Some(n) } => {
                args.push("--output".into());
                args.push(format!("type=registry,name={n}"));
            }
            other => {
                return Err(Error::new(
                    ExitCode::Configuration,
                    format!(
                        "--backend kubernetes builds in the cluster and can only push to a \
                         registry, not {other:?}: use --push (or --output type=registry), or \
                         build locally for local outputs"
                    ),
                ));
            }
        }
    }
    if request.outputs.is_empty() {
        return Err(Error::new(
            ExitCode::Configuration,
            "--backend kubernetes needs the image to go to a registry the cluster can reach: \
             add --push and --tag REGISTRY/NAME:TAG",
        ));
    }
    if push {
        if request.tags.is_empty() {
            return Err(Error::new(
                ExitCode::Configuration,
                "--push needs an image name: add --tag REGISTRY/NAME:TAG",
            ));
        }
        args.push("--push".into());
    }
    for tag in &request.tags {
        args.extend(["--tag".into(), tag.clone()]);
    }
    for (k, v) in &request.build_args {
        args.extend(["--build-arg".into(), format!("{k}={v}")]);
    }
    if let Some(t) = &request.target {
        args.extend(["--target".into(), t.clone()]);
    }
    if !request.platforms.is_empty() {
        args.extend(["--platform".into(), request.platforms.join(",")]);
    }
    for (k, v) in &request.labels {
        args.extend(["--label".into(), format!("{k}={v}")]);
    }
    if request.no_cache {
        args.push("--no-cache".into());
    }
    if let Some(e) = request.source_date_epoch {
        args.extend(["--source-date-epoch".into(), e.to_string()]);
    }
    for (name, value) in &request.build_contexts {
        if !value.starts_with("docker-image://") {
            return Err(Error::new(
                ExitCode::Configuration,
                format!(
                    "--build-context {name}={value}: only docker-image:// contexts can be used \
                     with --backend kubernetes (a local directory is not in the cluster)"
                ),
            ));
        }
        args.extend(["--build-context".into(), format!("{name}={value}")]);
    }
    for host in &opts.insecure_registries {
        args.extend(["--insecure-registry".into(), host.clone()]);
    }
    args.extend([
        "--timeout".into(),
        format!("{}s", pod_timeout(opts).as_secs()),
    ]);
    args.extend(opts.extra_args.iter().cloned());
    args.push(match &opts.context_git {
        Some(g) => match &g.subdir {
            Some(d) => format!("{POD_GIT_DIR}/{d}"),
            None => POD_GIT_DIR.into(),
        },
        None => POD_CONTEXT_DIR.into(),
    });
    Ok(args)
}

/// The in-pod time limit: the Job's deadline less a margin (a tenth, at most 30 s, at least
/// 1 s), so OSSB reports its own timeout before Kubernetes kills the pod.
pub fn pod_timeout(opts: &KubernetesOptions) -> std::time::Duration {
    let total = opts.timeout.as_secs().max(2);
    let margin = (total / 10).clamp(1, 30);
    std::time::Duration::from_secs(total - margin)
}

fn quantities(map: &BTreeMap<String, String>) -> Option<BTreeMap<String, Quantity>> {
    (!map.is_empty()).then(|| {
        map.iter()
            .map(|(k, v)| (k.clone(), Quantity(v.clone())))
            .collect()
    })
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..Default::default()
    }
}

fn items(list: &[(String, String, u32)]) -> Vec<KeyToPath> {
    list.iter()
        .map(|(key, path, mode)| KeyToPath {
            key: key.clone(),
            path: path.clone(),
            mode: (mode & 0o111 != 0).then_some(0o755),
        })
        .collect()
}

/// The `GOARCH` name Kubernetes nodes are labelled with for a platform (`linux/arm64/v8`).
fn node_arch(platform: &str) -> Option<String> {
    platform.split('/').nth(1).map(str::to_string)
}

/// Build every object for `request`. `secrets` are the build secrets' ids and values.
pub fn build_objects(
    build_id: &str,
    namespace: &str,
    request: &BuildRequest,
    packed: &[PackedConfigMap],
    secrets: &[(String, Vec<u8>)],
    opts: &KubernetesOptions,
) -> Result<BuildObjects, Error> {
    let args = pod_args(request, opts)?;
    let labels = labels(build_id, request.tags.first().map(String::as_str));
    let namespace_object = opts.namespace_per_build.then(|| Namespace {
        metadata: ObjectMeta {
            name: Some(namespace.to_string()),
            labels: Some(labels.clone()),
            ..Default::default()
        },
        ..Default::default()
    });

    let mut configmaps = Vec::new();
    let mut sources = Vec::new();
    for (i, p) in packed.iter().enumerate() {
        let name = format!("{build_id}-ctx-{i}");
        configmaps.push(ConfigMap {
            metadata: meta(&name, namespace, &labels),
            data: (!p.data.is_empty()).then(|| p.data.clone()),
            binary_data: (!p.binary_data.is_empty()).then(|| {
                p.binary_data
                    .iter()
                    .map(|(k, v)| (k.clone(), k8s_openapi::ByteString(v.clone())))
                    .collect()
            }),
            ..Default::default()
        });
        if !p.items.is_empty() {
            sources.push(VolumeProjection {
                config_map: Some(ConfigMapProjection {
                    name: name.clone(),
                    items: Some(items(&p.items)),
                    optional: None,
                }),
                ..Default::default()
            });
        }
    }
    let first_cm = format!("{build_id}-ctx-0");
    let mut dockerfile_items = vec![KeyToPath {
        key: DOCKERFILE_KEY.into(),
        path: "Dockerfile".into(),
        mode: None,
    }];
    if packed
        .first()
        .is_some_and(|p| p.data.contains_key(DOCKERIGNORE_KEY))
    {
        dockerfile_items.push(KeyToPath {
            key: DOCKERIGNORE_KEY.into(),
            path: "Dockerfile.dockerignore".into(),
            mode: None,
        });
    }

    let paths = crate::pod::PodPaths::default();
    let mut volumes = vec![
        Volume {
            name: "workspace".into(),
            empty_dir: Some(EmptyDirVolumeSource {
                size_limit: opts
                    .limits
                    .get("ephemeral-storage")
                    .map(|v| Quantity(v.clone())),
                ..Default::default()
            }),
            ..Default::default()
        },
        Volume {
            name: "tmp".into(),
            empty_dir: Some(EmptyDirVolumeSource {
                size_limit: Some(Quantity("64Mi".into())),
                ..Default::default()
            }),
            ..Default::default()
        },
    ];
    let mut mounts = vec![
        mount("workspace", "/workspace", false),
        mount("tmp", "/tmp", false),
    ];
    if !packed.is_empty() {
        volumes.push(Volume {
            name: "build-dockerfile".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: first_cm,
                items: Some(dockerfile_items),
                ..Default::default()
            }),
            ..Default::default()
        });
        mounts.push(mount("build-dockerfile", POD_DOCKERFILE_DIR, true));
    }
    if opts.context_git.is_some() {
        // Cloned into the workspace by the init container; no context volume.
    } else if let Some(pvc) = &opts.context_pvc {
        // The claim is mounted where the context is expected; nothing is materialised.
        volumes.push(Volume {
            name: "build-context".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: pvc.claim.clone(),
                read_only: Some(true),
            }),
            ..Default::default()
        });
        mounts.push(VolumeMount {
            sub_path: pvc.sub_path.clone(),
            ..mount("build-context", POD_CONTEXT_DIR, true)
        });
    } else {
        // An empty context still needs a (empty) context volume to materialise.
        volumes.push(if sources.is_empty() {
            Volume {
                name: "build-context".into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            }
        } else {
            Volume {
                name: "build-context".into(),
                projected: Some(ProjectedVolumeSource {
                    sources: Some(sources),
                    default_mode: Some(0o644),
                }),
                ..Default::default()
            }
        });
        mounts.push(mount(
            "build-context",
            &paths.build_context().display().to_string(),
            true,
        ));
    }

    let secret = (!secrets.is_empty()).then(|| {
        let name = format!("{build_id}-secrets");
        let mut data = BTreeMap::new();
        let mut secret_items = Vec::new();
        for (i, (id, value)) in secrets.iter().enumerate() {
            let key = format!("s{i}");
            data.insert(key.clone(), k8s_openapi::ByteString(value.clone()));
            secret_items.push(KeyToPath {
                key,
                path: id.clone(),
                mode: None,
            });
        }
        volumes.push(Volume {
            name: "build-secrets".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(name.clone()),
                items: Some(secret_items),
                // Readable by the pod's group (fsGroup 1000), nobody else.
                default_mode: Some(0o440),
                ..Default::default()
            }),
            ..Default::default()
        });
        mounts.push(mount(
            "build-secrets",
            &paths.build_secrets().display().to_string(),
            true,
        ));
        Secret {
            metadata: meta(&name, namespace, &labels),
            data: Some(data),
            type_: Some("Opaque".into()),
            ..Default::default()
        }
    });
    if let Some(reg) = &opts.registry_secret {
        volumes.push(Volume {
            name: "registry-secret".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(reg.clone()),
                default_mode: Some(0o440),
                ..Default::default()
            }),
            ..Default::default()
        });
        mounts.push(mount(
            "registry-secret",
            &paths.registry_secret_dir().display().to_string(),
            true,
        ));
    }

    let mut node_selector = opts.node_selector.clone();
    if let [platform] = request.platforms.as_slice()
        && let Some(arch) = node_arch(platform)
    {
        node_selector
            .entry("kubernetes.io/arch".into())
            .or_insert(arch);
    }

    let container = Container {
        name: CONTAINER.into(),
        image: Some(opts.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        args: Some(args),
        env: Some(vec![
            field_env(
                "JOB_NAME",
                "metadata.labels['batch.kubernetes.io/job-name']",
            ),
            field_env("POD_NAME", "metadata.name"),
            field_env("POD_NAMESPACE", "metadata.namespace"),
            field_env("NODE_NAME", "spec.nodeName"),
            EnvVar {
                name: "LOG_LEVEL".into(),
                value: Some("info".into()),
                ..Default::default()
            },
        ]),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        resources: Some(ResourceRequirements {
            requests: quantities(&opts.requests),
            limits: quantities(&opts.limits),
            ..Default::default()
        }),
        volume_mounts: Some(mounts),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Default::default()
    };
    let init_containers = opts.context_git.as_ref().map(|g| {
        let mut args = vec!["clone".to_string(), "--depth".into(), "1".into()];
        if let Some(r) = &g.reference {
            args.extend(["--branch".into(), r.clone()]);
        }
        args.extend(["--".into(), g.url.clone(), POD_GIT_DIR.into()]);
        vec![Container {
            name: "git-clone".into(),
            image: Some(opts.git_image.clone()),
            command: Some(vec!["git".into()]),
            args: Some(args),
            env: Some(vec![EnvVar {
                name: "HOME".into(),
                value: Some("/tmp".into()),
                ..Default::default()
            }]),
            security_context: container.security_context.clone(),
            resources: Some(ResourceRequirements {
                requests: quantities(&BTreeMap::from([
                    ("cpu".to_string(), "100m".to_string()),
                    ("memory".to_string(), "128Mi".to_string()),
                ])),
                limits: quantities(&BTreeMap::from([("memory".to_string(), "1Gi".to_string())])),
                ..Default::default()
            }),
            volume_mounts: Some(vec![
                mount("workspace", "/workspace", false),
                mount("tmp", "/tmp", false),
            ]),
            termination_message_policy: Some("FallbackToLogsOnError".into()),
            ..Default::default()
        }]
    });
    let mut annotations = BTreeMap::new();
    annotations.insert(IMAGE_ANNOTATION.to_string(), request.tags.join(","));
    let job = Job {
        metadata: ObjectMeta {
            annotations: Some(annotations),
            ..meta(build_id, namespace, &labels)
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            active_deadline_seconds: Some(opts.timeout.as_secs().max(1) as i64),
            ttl_seconds_after_finished: opts.ttl_after_finished,
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels.clone()),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    automount_service_account_token: Some(false),
                    service_account_name: opts.service_account.clone(),
                    termination_grace_period_seconds: Some(30),
                    node_selector: (!node_selector.is_empty()).then_some(node_selector),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(1000),
                        run_as_group: Some(1000),
                        fs_group: Some(1000),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    containers: vec![container],
                    init_containers,
                    volumes: Some(volumes),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    };
    Ok(BuildObjects {
        build_id: build_id.to_string(),
        namespace: namespace.to_string(),
        namespace_object,
        configmaps,
        secret,
        job,
    })
}

/// A fresh build id: `ossb-` and 10 hex digits.
pub fn new_build_id() -> String {
    use sha2::{Digest, Sha256};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut h = Sha256::new();
    h.update(now.as_nanos().to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    h.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    format!("ossb-{}", &hex::encode(h.finalize())[..10])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_valid() {
        assert_eq!(
            label_value("127.0.0.1:5000/team/app:1"),
            "127.0.0.1_5000_team_app_1"
        );
        assert_eq!(label_value("-x-"), "x");
        assert!(label_value(&"a".repeat(100)).len() <= 63);
    }

    #[test]
    fn the_job_is_restricted_never_retried_and_mounts_at_the_pod_paths() {
        let mut req = BuildRequest::new("/ctx");
        req.tags = vec!["r.example/app:1".into()];
        req.outputs = vec![Output::Registry { name: None }];
        req.platforms = vec!["linux/arm64".into()];
        let packed = vec![PackedConfigMap {
            data: BTreeMap::from([(DOCKERFILE_KEY.into(), "FROM scratch".into())]),
            items: vec![("f0".into(), "a/run.sh".into(), 0o755)],
            ..Default::default()
        }];
        let opts = KubernetesOptions::default();
        let objs = build_objects(
            "ossb-1",
            "ci",
            &req,
            &packed,
            &[("tok".into(), b"v".to_vec())],
            &opts,
        )
        .expect("objects");
        let v = serde_json::to_value(&objs.job).expect("json");
        let spec = &v["spec"];
        assert_eq!(spec["backoffLimit"], 0);
        assert_eq!(spec["activeDeadlineSeconds"], 600);
        assert_eq!(spec["ttlSecondsAfterFinished"], 3600);
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(pod["nodeSelector"]["kubernetes.io/arch"], "arm64");
        let c = &pod["containers"][0];
        assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
        assert_eq!(c["resources"]["limits"]["memory"], "4Gi");
        let args: Vec<String> = serde_json::from_value(c["args"].clone()).expect("args");
        assert!(
            args.windows(2).any(|w| w == ["--timeout", "570s"]),
            "{args:?}"
        );
        assert_eq!(args.last().map(String::as_str), Some(POD_CONTEXT_DIR));
        let mounts = c["volumeMounts"].to_string();
        for p in [
            "/var/run/configmaps/build-context",
            "/var/run/secrets/build-secrets",
            POD_DOCKERFILE_DIR,
        ] {
            assert!(mounts.contains(p), "{p} in {mounts}");
        }
        let vols = pod["volumes"].to_string();
        assert!(vols.contains("\"path\":\"a/run.sh\""), "{vols}");
        assert!(vols.contains("\"mode\":493"), "{vols}");
        assert_eq!(objs.secret.expect("secret").data.expect("data").len(), 1);
    }

    #[test]
    fn local_outputs_are_refused_with_the_fix() {
        let mut req = BuildRequest::new("/ctx");
        req.outputs = vec![Output::Oci { dest: "x".into() }];
        let err = pod_args(&req, &KubernetesOptions::default()).expect_err("refused");
        assert_eq!(err.exit_code(), ExitCode::Configuration);
        assert!(err.to_string().contains("--push"), "{err}");
    }
}
