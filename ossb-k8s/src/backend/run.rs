//! One build from start to end: prepare (context, secrets, content tag), preflight, create,
//! watch, clean up.

use super::content_tag::{content_hash, image_name};
use super::error::K8sError;
use super::spec::{BuildObjects, build_objects, new_build_id};
use super::upload::{ContextBundle, PackedConfigMap, pack, read_context};
use super::{KubernetesBackend, client, preflight, watch};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, PostParams};
use ossb_core::backend::{BuildOutcome, BuildRequest, Output, SecretFrom};
use ossb_core::progress::{ProgressEvent, ProgressSink};
use ossb_core::{Error, ExitCode};

/// A build ready to send.
pub(crate) struct PreparedBuild {
    pub request: BuildRequest,
    pub packed: Vec<PackedConfigMap>,
    pub secrets: Vec<(String, Vec<u8>)>,
}

/// What [`prepare`] found.
pub(crate) enum Prepared {
    /// The content-addressed image exists already.
    Exists(BuildOutcome),
    /// Send this build.
    Build(Box<PreparedBuild>),
}

fn read_secrets(request: &BuildRequest) -> Result<Vec<(String, Vec<u8>)>, Error> {
    request
        .secrets
        .iter()
        .map(|s| {
            let value = match &s.from {
                SecretFrom::File(p) => std::fs::read(p).map_err(|e| {
                    Error::new(
                        ExitCode::Configuration,
                        format!(
                            "cannot read secret {:?} from {}: {e}; check --secret id={},src=PATH",
                            s.id,
                            p.display(),
                            s.id
                        ),
                    )
                })?,
                SecretFrom::Env(var) => std::env::var_os(var)
                    .map(|v| v.into_encoded_bytes())
                    .ok_or_else(|| {
                        Error::new(
                            ExitCode::Configuration,
                            format!(
                                "secret {:?}: environment variable {var} is not set; set it or \
                                 use --secret id={},src=PATH",
                                s.id, s.id
                            ),
                        )
                    })?,
            };
            Ok((s.id.clone(), value))
        })
        .collect()
}

/// The blocking part: read and size the context, read the secrets, and handle
/// `--tag-by-content` (returning the existing image when the registry has it).
pub(crate) fn prepare(
    backend: &KubernetesBackend,
    request: &BuildRequest,
    progress: &dyn ProgressSink,
) -> Result<Prepared, Error> {
    let opts = &backend.options;
    let mut request = request.clone();
    if let Some(flag) = opts.remote_context() {
        return prepare_remote(opts, flag, request);
    }
    let bundle: ContextBundle = read_context(&request)?;
    for path in &bundle.skipped {
        progress.event(&ProgressEvent::Warning {
            message: format!(
                "{path} is not sent to the cluster: a ConfigMap holds only regular files \
                 (exclude it in .dockerignore to silence this)"
            ),
        });
    }
    let packed = pack(&bundle, opts.max_context_bytes)?;
    if let Some(tag) = &opts.content_tag {
        let name = image_name(tag, &content_hash(&bundle, &request));
        if let Some(registry) = &backend.registry {
            let reference = ossb_core::reference::Reference::parse(&name)?;
            if let Some(digest) = registry.manifest_digest(&reference)? {
                tracing::info!(component = "k8s", image = %name, "the image exists; build skipped");
                progress.event(&ProgressEvent::Warning {
                    message: format!("{name} exists already ({digest}); build skipped"),
                });
                return Ok(Prepared::Exists(BuildOutcome {
                    image_digest: digest.to_string(),
                    config_digest: None,
                    tags: vec![name],
                    operations: 0,
                    cache_hits: 0,
                    bytes_read: 0,
                    bytes_written: 0,
                    steps: Vec::new(),
                }));
            }
        }
        request.tags.insert(0, name);
        if !request
            .outputs
            .iter()
            .any(|o| matches!(o, Output::Registry { name: None }))
        {
            request.outputs.push(Output::Registry { name: None });
        }
    }
    let secrets = read_secrets(&request)?;
    // Refuse what cannot run in the cluster before contacting it.
    super::spec::pod_args(&request, opts)?;
    Ok(Prepared::Build(Box::new(PreparedBuild {
        request,
        packed,
        secrets,
    })))
}

/// A build whose context is in the cluster (a PersistentVolumeClaim) or fetched there (git):
/// only the Dockerfile may be sent.
fn prepare_remote(
    opts: &super::KubernetesOptions,
    flag: &str,
    request: BuildRequest,
) -> Result<Prepared, Error> {
    if opts.content_tag.is_some() {
        return Err(Error::new(
            ExitCode::Configuration,
            format!(
                "--tag-by-content hashes the context here, so it cannot be used with {flag} \
                 (the context is not here); tag the image yourself"
            ),
        ));
    }
    let packed = if opts.dockerfile_in_remote_context() {
        Vec::new()
    } else {
        let text = match &request.dockerfile {
            ossb_core::backend::DockerfileSource::Inline(t) => t.clone(),
            ossb_core::backend::DockerfileSource::Path(p) => {
                std::fs::read_to_string(p).map_err(|e| {
                    Error::new(
                        ExitCode::Build,
                        format!("cannot read {}: {e} (check the -f path)", p.display()),
                    )
                })?
            }
        };
        let bundle = ContextBundle {
            dockerfile: text,
            dockerfile_ignore: None,
            files: Vec::new(),
            skipped: Vec::new(),
        };
        pack(&bundle, opts.max_context_bytes)?
    };
    let secrets = read_secrets(&request)?;
    super::spec::pod_args(&request, opts)?;
    Ok(Prepared::Build(Box::new(PreparedBuild {
        request,
        packed,
        secrets,
    })))
}

/// Objects created so far, for the cleanup.
#[derive(Debug, Default)]
struct Created {
    namespace: Option<String>,
    configmaps: Vec<String>,
    secret: Option<String>,
    jobs: Vec<String>,
}

/// The async part: connect, check permissions, create, watch, clean up.
pub(crate) async fn run(
    backend: &KubernetesBackend,
    prepared: &PreparedBuild,
    progress: &dyn ProgressSink,
) -> Result<Vec<(Option<String>, BuildOutcome)>, Error> {
    let opts = &backend.options;
    let cluster = client::connect(&opts.client).await?;
    let build_id = new_build_id();
    let namespace = if opts.namespace_per_build {
        build_id.clone()
    } else {
        opts.namespace
            .clone()
            .unwrap_or_else(|| cluster.default_namespace.clone())
    };
    let objects = build_objects(
        &build_id,
        &namespace,
        &prepared.request,
        &prepared.packed,
        &prepared.secrets,
        opts,
    )?;
    let jobs = platform_jobs(&build_id, &namespace, prepared, &objects, opts)?;
    // In a per-build namespace, namespaced permissions are checked where the build is made:
    // the namespace that will hold it does not exist yet, so ask about the one given.
    let check_ns = if opts.namespace_per_build {
        opts.namespace
            .clone()
            .unwrap_or_else(|| cluster.default_namespace.clone())
    } else {
        namespace.clone()
    };
    // A per-build namespace gets a copy of the registry Secret from the namespace given.
    let copy_registry_secret = opts
        .registry_secret
        .as_ref()
        .filter(|_| opts.namespace_per_build)
        .map(|name| (check_ns.clone(), name.clone()));
    let mut permissions = preflight::build_permissions(
        &check_ns,
        opts.namespace_per_build,
        objects.secret.is_some() || copy_registry_secret.is_some(),
    );
    if let Some((home, _)) = &copy_registry_secret {
        permissions.push(preflight::Permission {
            verb: "get",
            group: "",
            resource: "secrets",
            subresource: None,
            namespace: Some(home.clone()),
        });
    }
    preflight::check(&cluster.client, &cluster.server, &permissions).await?;

    let mut cancel = backend.cancel.subscribe();
    let mut created = Created::default();
    let result = tokio::select! {
        r = create_and_watch(
            &cluster,
            &objects,
            &jobs,
            copy_registry_secret.as_ref(),
            &mut created,
            opts,
            progress,
        ) => r,
        reason = watch::cancelled(&mut cancel, opts.handle_signals) => {
            Err(Error::new(ExitCode::Cancelled, format!("build cancelled ({reason})")))
        }
    };
    let result = result.map(|outcomes| {
        outcomes
            .into_iter()
            .zip(&jobs)
            .map(|(mut o, job)| {
                if o.tags.is_empty() {
                    o.tags = vec![job.tag.clone()];
                }
                (job.platform.clone(), o)
            })
            .collect::<Vec<_>>()
    });
    let cancelled = matches!(&result, Err(e) if e.exit_code() == ExitCode::Cancelled);
    if opts.keep && !cancelled {
        let job = created
            .jobs
            .first()
            .map(String::as_str)
            .unwrap_or(&build_id);
        progress.event(&ProgressEvent::Warning {
            message: format!(
                "kept the build's objects in namespace {namespace} (--keep): job/{job}; delete \
                 them with: ossb k8s delete {job} --namespace {namespace}"
            ),
        });
    } else {
        // A cancelled build's Job always goes (it would go on building); --keep keeps the rest.
        cleanup(&cluster, &namespace, &created, cancelled && opts.keep).await;
    }
    result
}

async fn create_and_watch(
    cluster: &client::Cluster,
    objects: &BuildObjects,
    jobs: &[PlatformJob],
    copy_registry_secret: Option<&(String, String)>,
    created: &mut Created,
    opts: &super::KubernetesOptions,
    progress: &dyn ProgressSink,
) -> Result<Vec<BuildOutcome>, Error> {
    let ns = &objects.namespace;
    let pp = PostParams::default();
    let k8s = |e, action: String| Error::from(K8sError::from_kube(e, &action, &cluster.server));
    if let Some(n) = &objects.namespace_object {
        let api: kube::Api<Namespace> = kube::Api::all(cluster.client.clone());
        // Recorded before the request: a cancel can land while it is in flight, and deleting
        // what was never made is harmless (404 is ignored).
        created.namespace = Some(ns.clone());
        api.create(&pp, n)
            .await
            .map_err(|e| k8s(e, format!("create namespace {ns}")))?;
    }
    if let Some((home, name)) = copy_registry_secret {
        let from: kube::Api<Secret> = kube::Api::namespaced(cluster.client.clone(), home);
        let original = from.get(name).await.map_err(|e| {
            k8s(
                e,
                format!("get the registry secret {name} in namespace {home} (--registry-secret)"),
            )
        })?;
        let copy = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.clone()),
                labels: objects.job.metadata.labels.clone(),
                ..Default::default()
            },
            data: original.data,
            type_: original.type_,
            ..Default::default()
        };
        let api: kube::Api<Secret> = kube::Api::namespaced(cluster.client.clone(), ns);
        // Deleted with the build's namespace.
        api.create(&pp, &copy).await.map_err(|e| {
            k8s(
                e,
                format!("copy the registry secret {name} into namespace {ns}"),
            )
        })?;
    }
    // The Jobs are created suspended, so the ConfigMaps and the Secret can name them as
    // owners: when Kubernetes deletes a finished Job (ttlSecondsAfterFinished), its inputs go
    // with it, even if this process died before cleaning up.
    let api: kube::Api<Job> = kube::Api::namespaced(cluster.client.clone(), ns);
    let mut owners = Vec::new();
    for job in jobs {
        created.jobs.push(job.name.clone());
        let mut suspended = job.job.clone();
        if let Some(spec) = suspended.spec.as_mut() {
            spec.suspend = Some(true);
        }
        let made = api
            .create(&pp, &suspended)
            .await
            .map_err(|e| k8s(e, format!("create job {} in namespace {ns}", job.name)))?;
        owners.push(OwnerReference {
            api_version: "batch/v1".into(),
            kind: "Job".into(),
            name: job.name.clone(),
            uid: made.metadata.uid.unwrap_or_default(),
            ..Default::default()
        });
    }
    let owned = |meta: &kube::api::ObjectMeta| kube::api::ObjectMeta {
        owner_references: Some(owners.clone()),
        ..meta.clone()
    };
    let cms: kube::Api<ConfigMap> = kube::Api::namespaced(cluster.client.clone(), ns);
    for cm in &objects.configmaps {
        let name = cm.metadata.name.clone().unwrap_or_default();
        created.configmaps.push(name.clone());
        let cm = ConfigMap {
            metadata: owned(&cm.metadata),
            ..cm.clone()
        };
        cms.create(&pp, &cm)
            .await
            .map_err(|e| k8s(e, format!("create configmap {name} in namespace {ns}")))?;
    }
    if let Some(secret) = &objects.secret {
        let api: kube::Api<Secret> = kube::Api::namespaced(cluster.client.clone(), ns);
        let name = secret.metadata.name.clone().unwrap_or_default();
        created.secret = Some(name.clone());
        let secret = Secret {
            metadata: owned(&secret.metadata),
            ..secret.clone()
        };
        api.create(&pp, &secret)
            .await
            .map_err(|e| k8s(e, format!("create secret {name} in namespace {ns}")))?;
    }
    // Inputs in place: let the Jobs run.
    let resume = kube::api::Patch::Merge(serde_json::json!({"spec": {"suspend": false}}));
    for job in jobs {
        api.patch(&job.name, &kube::api::PatchParams::default(), &resume)
            .await
            .map_err(|e| k8s(e, format!("start job {} in namespace {ns}", job.name)))?;
        tracing::info!(component = "k8s", job = %job.name, namespace = %ns, "job started");
        progress.event(&ProgressEvent::Warning {
            message: format!(
                "building in Kubernetes: job/{} in namespace {ns} ({})",
                job.name, cluster.source
            ),
        });
    }
    // The platforms build side by side, each on a node of its architecture.
    futures_util::future::try_join_all(
        jobs.iter()
            .map(|job| watch::follow(cluster, ns, &job.name, opts, progress)),
    )
    .await
}

/// One Job of a build: the whole build, or one platform of a multi-platform build.
pub(crate) struct PlatformJob {
    pub name: String,
    pub platform: Option<String>,
    /// The tag the Job pushes.
    pub tag: String,
    pub job: Job,
}

/// The per-platform tag a multi-platform build's Job pushes (`app:1-linux-arm64`); the index
/// goes under the real tags afterwards.
fn platform_tag(tag: &str, platform: &str) -> Result<String, Error> {
    let r = ossb_core::reference::Reference::parse(tag)?;
    let base = r.tag.clone().unwrap_or_else(|| "latest".into());
    let suffix = platform.replace('/', "-");
    Ok(format!("{}:{base}-{suffix}", r.name()))
}

/// The Jobs to run: one, or one per platform with its node selector.
fn platform_jobs(
    build_id: &str,
    namespace: &str,
    prepared: &PreparedBuild,
    objects: &BuildObjects,
    opts: &super::KubernetesOptions,
) -> Result<Vec<PlatformJob>, Error> {
    let request = &prepared.request;
    if request.platforms.len() < 2 {
        return Ok(vec![PlatformJob {
            name: build_id.to_string(),
            platform: request.platforms.first().cloned(),
            tag: request.tags.first().cloned().unwrap_or_default(),
            job: objects.job.clone(),
        }]);
    }
    let only_push = request
        .outputs
        .iter()
        .all(|o| matches!(o, Output::Registry { name: None }));
    let Some(first) = request.tags.first().filter(|_| only_push) else {
        return Err(Error::new(
            ExitCode::Configuration,
            "a multi-platform build in Kubernetes runs one Job per platform and pushes an index: \
             use --push with --tag REGISTRY/NAME:TAG (no other outputs)",
        ));
    };
    let mut jobs = Vec::new();
    for platform in &request.platforms {
        let mut r = request.clone();
        r.platforms = vec![platform.clone()];
        let tag = platform_tag(first, platform)?;
        r.tags = vec![tag.clone()];
        let mut o = build_objects(
            build_id,
            namespace,
            &r,
            &prepared.packed,
            &prepared.secrets,
            opts,
        )?;
        let name = format!(
            "{build_id}-{}",
            super::spec::label_value(&platform.replace('/', "-"))
        );
        o.job.metadata.name = Some(name.clone());
        jobs.push(PlatformJob {
            name,
            platform: Some(platform.clone()),
            tag,
            job: o.job,
        });
    }
    Ok(jobs)
}

/// Push the index of a multi-platform build under every tag of the request.
pub(crate) fn push_index(
    registry: &dyn ossb_core::ports::RegistryPort,
    request: &BuildRequest,
    built: &[(Option<String>, BuildOutcome)],
) -> Result<BuildOutcome, Error> {
    let mut manifests = Vec::new();
    for (platform, outcome) in built {
        let tag = outcome.tags.first().cloned().unwrap_or_default();
        let r = ossb_core::reference::Reference::parse(&tag)?.with_digest(&outcome.image_digest)?;
        let m = registry.fetch_manifest(&r)?;
        let parts: Vec<&str> = platform.as_deref().unwrap_or_default().split('/').collect();
        let mut p = serde_json::json!({"os": parts.first(), "architecture": parts.get(1)});
        if let Some(v) = parts.get(2) {
            p["variant"] = serde_json::json!(v);
        }
        manifests.push(serde_json::json!({
            "mediaType": m.media_type,
            "digest": m.digest.to_string(),
            "size": m.bytes.len(),
            "platform": p,
        }));
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    });
    let bytes = serde_json::to_vec(&index)
        .map_err(|e| Error::new(ExitCode::General, format!("cannot encode the index: {e}")))?;
    let mut digest = None;
    for tag in &request.tags {
        let r = ossb_core::reference::Reference::parse(tag)?;
        digest =
            Some(registry.push_manifest(&r, &bytes, "application/vnd.oci.image.index.v1+json")?);
    }
    Ok(BuildOutcome {
        image_digest: digest.map(|d| d.to_string()).unwrap_or_default(),
        config_digest: None,
        tags: request.tags.clone(),
        operations: built.iter().map(|(_, o)| o.operations).sum(),
        cache_hits: built.iter().map(|(_, o)| o.cache_hits).sum(),
        bytes_read: built.iter().map(|(_, o)| o.bytes_read).sum(),
        bytes_written: built.iter().map(|(_, o)| o.bytes_written).sum(),
        steps: built.iter().flat_map(|(_, o)| o.steps.clone()).collect(),
    })
}

/// Delete what the build created; with `keep_all_but_job` only the Job. Errors are logged, not
/// returned: the build's own result matters more.
async fn cleanup(cluster: &client::Cluster, ns: &str, created: &Created, keep_all_but_job: bool) {
    let client = &cluster.client;
    let dp = DeleteParams::background();
    let report = |what: String, r: Result<(), kube::Error>| {
        if let Err(e) = r {
            let err = K8sError::from_kube(e, &format!("delete {what}"), &cluster.server);
            if !err.is_not_found() {
                tracing::warn!(component = "k8s", "{err}; delete it by hand");
            }
        }
    };
    for job in &created.jobs {
        let api: kube::Api<Job> = kube::Api::namespaced(client.clone(), ns);
        report(format!("job {job}"), api.delete(job, &dp).await.map(|_| ()));
    }
    if keep_all_but_job {
        return;
    }
    if let Some(secret) = &created.secret {
        let api: kube::Api<Secret> = kube::Api::namespaced(client.clone(), ns);
        report(
            format!("secret {secret}"),
            api.delete(secret, &dp).await.map(|_| ()),
        );
    }
    let cms: kube::Api<ConfigMap> = kube::Api::namespaced(client.clone(), ns);
    for cm in &created.configmaps {
        report(
            format!("configmap {cm}"),
            cms.delete(cm, &dp).await.map(|_| ()),
        );
    }
    if let Some(n) = &created.namespace {
        let api: kube::Api<Namespace> = kube::Api::all(client.clone());
        report(
            format!("namespace {n}"),
            api.delete(n, &dp).await.map(|_| ()),
        );
    }
}

/// `--iidfile` and `--metadata-file`, written locally from what the pod reported.
pub(crate) fn write_result_files(
    request: &BuildRequest,
    outcome: &BuildOutcome,
) -> Result<(), Error> {
    let write = |path: &std::path::Path, data: &[u8]| {
        std::fs::write(path, data).map_err(|e| {
            Error::new(
                ExitCode::Configuration,
                format!("cannot write {}: {e}", path.display()),
            )
        })
    };
    if let Some(p) = &request.iidfile {
        write(p, outcome.image_digest.as_bytes())?;
    }
    if let Some(p) = &request.metadata_file {
        let meta = serde_json::json!({
            "containerimage.digest": outcome.image_digest,
            "image.name": outcome.tags.join(","),
        });
        write(p, meta.to_string().as_bytes())?;
    }
    Ok(())
}
