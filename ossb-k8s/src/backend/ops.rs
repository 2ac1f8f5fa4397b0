//! `ossb k8s status|logs|delete|list|health`: looking after builds sent to the cluster.

use super::client::{ClientOptions, Cluster, connect};
use super::error::K8sError;
use super::spec::{BUILD_ID_LABEL, CONTAINER, IMAGE_ANNOTATION, MANAGED_BY};
use futures_util::AsyncBufReadExt;
use futures_util::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use kube::api::{DeleteParams, ListParams, LogParams};
use ossb_core::{Error, ExitCode};
use serde::Serialize;

/// One build as `ossb k8s status` and `list` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuildStatus {
    /// The Job's name (the build id).
    pub job: String,
    /// Its namespace.
    pub namespace: String,
    /// `Running`, `Succeeded`, `Failed` (with the reason) or `Pending`.
    pub state: String,
    /// The image names.
    pub images: String,
    /// When the Job was created (RFC 3339).
    pub created: String,
    /// The pod's exit code, when it ended.
    pub exit_code: Option<i32>,
}

fn namespace_of(cluster: &Cluster, ns: Option<&str>) -> String {
    ns.map(str::to_string)
        .unwrap_or_else(|| cluster.default_namespace.clone())
}

fn status_of(job: &Job, pod: Option<&Pod>) -> BuildStatus {
    let st = job.status.clone().unwrap_or_default();
    let finished = st
        .conditions
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.status == "True" && (c.type_ == "Complete" || c.type_ == "Failed"));
    let state = match finished {
        Some(c) if c.type_ == "Complete" => "Succeeded".to_string(),
        Some(c) => format!("Failed ({})", c.reason.unwrap_or_default()),
        None if st.active.unwrap_or(0) > 0 => "Running".to_string(),
        None => "Pending".to_string(),
    };
    let exit_code = pod
        .and_then(|p| p.status.as_ref())
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == CONTAINER))
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.terminated.as_ref())
        .map(|t| t.exit_code);
    BuildStatus {
        job: job.metadata.name.clone().unwrap_or_default(),
        namespace: job.metadata.namespace.clone().unwrap_or_default(),
        state,
        images: job
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(IMAGE_ANNOTATION).cloned())
            .unwrap_or_default(),
        created: job
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string())
            .unwrap_or_default(),
        exit_code,
    }
}

fn api_err(cluster: &Cluster, action: String) -> impl Fn(kube::Error) -> Error + '_ {
    move |e| K8sError::from_kube(e, &action, &cluster.server).into()
}

async fn pod_of(cluster: &Cluster, ns: &str, job: &str) -> Result<Option<Pod>, Error> {
    let pods: kube::Api<Pod> = kube::Api::namespaced(cluster.client.clone(), ns);
    let list = pods
        .list(&ListParams::default().labels(&format!("{BUILD_ID_LABEL}={job}")))
        .await
        .map_err(api_err(cluster, format!("list the pods of job {job}")))?;
    Ok(list.items.into_iter().last())
}

/// The state of one build.
pub async fn status(
    opts: &ClientOptions,
    ns: Option<&str>,
    job: &str,
) -> Result<BuildStatus, Error> {
    let cluster = connect(opts).await?;
    let ns = namespace_of(&cluster, ns);
    let jobs: kube::Api<Job> = kube::Api::namespaced(cluster.client.clone(), &ns);
    let j = jobs.get(job).await.map_err(|e| {
        let err = K8sError::from_kube(e, &format!("get job {job}"), &cluster.server);
        if err.is_not_found() {
            Error::new(
                ExitCode::Configuration,
                format!("no build job {job} in namespace {ns}; list them with ossb k8s list"),
            )
        } else {
            err.into()
        }
    })?;
    let pod = pod_of(&cluster, &ns, job).await?;
    Ok(status_of(&j, pod.as_ref()))
}

/// The builds OSSB made in a namespace.
pub async fn list(opts: &ClientOptions, ns: Option<&str>) -> Result<Vec<BuildStatus>, Error> {
    let cluster = connect(opts).await?;
    let ns = namespace_of(&cluster, ns);
    let jobs: kube::Api<Job> = kube::Api::namespaced(cluster.client.clone(), &ns);
    let list = jobs
        .list(&ListParams::default().labels(&format!("app.kubernetes.io/managed-by={MANAGED_BY}")))
        .await
        .map_err(api_err(&cluster, format!("list jobs in namespace {ns}")))?;
    Ok(list.items.iter().map(|j| status_of(j, None)).collect())
}

/// Write the build pod's log to `out`, following it while the pod runs when `follow`.
pub async fn logs(
    opts: &ClientOptions,
    ns: Option<&str>,
    job: &str,
    follow: bool,
    out: &mut (dyn std::io::Write + Send),
) -> Result<(), Error> {
    let cluster = connect(opts).await?;
    let ns = namespace_of(&cluster, ns);
    let pod = pod_of(&cluster, &ns, job).await?.ok_or_else(|| {
        Error::new(
            ExitCode::Configuration,
            format!("job {job} in namespace {ns} has no pod (yet, or any more)"),
        )
    })?;
    let name = pod.metadata.name.clone().unwrap_or_default();
    let pods: kube::Api<Pod> = kube::Api::namespaced(cluster.client.clone(), &ns);
    let lp = LogParams {
        follow,
        container: Some(CONTAINER.into()),
        ..Default::default()
    };
    let mut lines = pods
        .log_stream(&name, &lp)
        .await
        .map_err(api_err(&cluster, format!("read the log of pod {name}")))?
        .lines();
    while let Some(line) = lines.next().await {
        let line = line.map_err(|e| {
            Error::new(
                ExitCode::General,
                format!("reading the log of pod {name}: {e}"),
            )
        })?;
        writeln!(out, "{line}")
            .map_err(|e| Error::new(ExitCode::General, format!("cannot write the log: {e}")))?;
    }
    Ok(())
}

/// Delete a build (`job` is a Job's name or the build id): its Jobs (with their pods),
/// ConfigMaps and Secret, and its namespace when the build had its own. Returns what was
/// deleted.
pub async fn delete(
    opts: &ClientOptions,
    ns: Option<&str>,
    job: &str,
) -> Result<Vec<String>, Error> {
    let cluster = connect(opts).await?;
    let ns = namespace_of(&cluster, ns);
    let client = cluster.client.clone();
    let dp = DeleteParams::background();
    let lp = ListParams::default().labels(&format!("{BUILD_ID_LABEL}={job}"));
    let mut deleted = Vec::new();
    let jobs: kube::Api<Job> = kube::Api::namespaced(client.clone(), &ns);
    // The job named, and every job of the build (a multi-platform build has one per platform).
    let mut names = vec![job.to_string()];
    for j in jobs
        .list(&lp)
        .await
        .map_err(api_err(&cluster, format!("list jobs in {ns}")))?
    {
        let name = j.metadata.name.unwrap_or_default();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    for name in names {
        match jobs.delete(&name, &dp).await {
            Ok(_) => deleted.push(format!("job/{name}")),
            Err(e) => {
                let err = K8sError::from_kube(e, &format!("delete job {name}"), &cluster.server);
                if !err.is_not_found() {
                    return Err(err.into());
                }
            }
        }
    }
    let cms: kube::Api<ConfigMap> = kube::Api::namespaced(client.clone(), &ns);
    for cm in cms
        .list(&lp)
        .await
        .map_err(api_err(&cluster, format!("list configmaps in {ns}")))?
    {
        let name = cm.metadata.name.unwrap_or_default();
        cms.delete(&name, &dp)
            .await
            .map_err(api_err(&cluster, format!("delete configmap {name}")))?;
        deleted.push(format!("configmap/{name}"));
    }
    let secrets: kube::Api<Secret> = kube::Api::namespaced(client.clone(), &ns);
    for s in secrets
        .list(&lp)
        .await
        .map_err(api_err(&cluster, format!("list secrets in {ns}")))?
    {
        let name = s.metadata.name.unwrap_or_default();
        secrets
            .delete(&name, &dp)
            .await
            .map_err(api_err(&cluster, format!("delete secret {name}")))?;
        deleted.push(format!("secret/{name}"));
    }
    // A per-build namespace is named after the build.
    let namespaces: kube::Api<Namespace> = kube::Api::all(client);
    if let Ok(n) = namespaces.get(job).await
        && n.metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.get(BUILD_ID_LABEL).map(String::as_str) == Some(job))
    {
        namespaces
            .delete(job, &dp)
            .await
            .map_err(api_err(&cluster, format!("delete namespace {job}")))?;
        deleted.push(format!("namespace/{job}"));
    }
    if deleted.is_empty() {
        return Err(Error::new(
            ExitCode::Configuration,
            format!(
                "nothing of build {job} found in namespace {ns}; list builds with ossb k8s list"
            ),
        ));
    }
    Ok(deleted)
}

/// What `ossb k8s health` reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    /// The API server URL.
    pub server: String,
    /// Where the configuration came from.
    pub config: String,
    /// The server's version (`v1.33.1`).
    pub version: String,
    /// The namespace builds go to by default.
    pub namespace: String,
    /// Permissions the default build lacks (empty: all there).
    pub missing_permissions: Vec<String>,
}

/// Check the cluster is reachable and the identity may run builds.
pub async fn health(opts: &ClientOptions, ns: Option<&str>) -> Result<Health, Error> {
    let cluster = connect(opts).await?;
    let ns = namespace_of(&cluster, ns);
    let version = cluster
        .client
        .apiserver_version()
        .await
        .map_err(api_err(&cluster, "get the server version".into()))?;
    let missing = match super::preflight::check(
        &cluster.client,
        &cluster.server,
        &super::preflight::build_permissions(&ns, false, true),
    )
    .await
    {
        Ok(()) => Vec::new(),
        Err(e) if e.exit_code() == ExitCode::Authentication => e
            .to_string()
            .lines()
            .skip(1)
            .map(|l| l.trim().trim_start_matches("- ").to_string())
            .collect(),
        Err(e) => return Err(e),
    };
    Ok(Health {
        server: cluster.server.clone(),
        config: cluster.source.to_string(),
        version: version.git_version,
        namespace: ns,
        missing_permissions: missing,
    })
}

/// Run one of these operations on a fresh runtime.
pub fn blocking<T>(f: impl std::future::Future<Output = Result<T, Error>>) -> Result<T, Error> {
    super::runtime()?.block_on(f)
}
