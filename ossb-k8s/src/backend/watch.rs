//! Waiting for the Job with the watch API (resumed from the last resourceVersion, bookmarks
//! included, never a polling loop), streaming the pod's log while it runs, and turning the
//! end into a [`BuildOutcome`] or an error in plain words with the pod's exit code.

use super::client::Cluster;
use super::error::K8sError;
use super::events::PodReport;
use super::options::KubernetesOptions;
use super::spec::CONTAINER;
use futures_util::{AsyncBufReadExt, Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, LogParams, WatchEvent, WatchParams};
use ossb_core::backend::BuildOutcome;
use ossb_core::progress::{ProgressEvent, ProgressSink};
use ossb_core::{Error, ExitCode};
use std::pin::Pin;

/// An update from one of the two watches.
enum Update {
    Job(Box<Job>),
    Pod(Box<Pod>, bool),
}

type Updates = Pin<Box<dyn Stream<Item = Result<Update, K8sError>> + Send>>;
type Lines = Pin<Box<dyn Stream<Item = std::io::Result<String>> + Send>>;

/// Watch `api` (filtered by `wp`) from `rv` forever: a watch the server ends is resumed from
/// the last resourceVersion seen (bookmarks move it on without an object); a `410 Gone` starts
/// over from a fresh list.
fn resumable<K>(
    api: kube::Api<K>,
    lp: ListParams,
    wp: WatchParams,
    server: String,
) -> impl Stream<Item = Result<(K, bool), K8sError>> + Send
where
    K: kube::Resource
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    futures_util::stream::unfold(
        (
            api,
            lp,
            wp,
            server,
            None::<String>,
            Vec::<(K, bool)>::new(),
            None,
        ),
        |(api, lp, wp, server, mut rv, mut pending, mut stream)| async move {
            loop {
                if let Some(item) = pending.pop() {
                    return Some((Ok(item), (api, lp, wp, server, rv, pending, stream)));
                }
                let Some(version) = rv.clone() else {
                    // Start (or start over) from a list: its objects, then changes after it.
                    match api.list(&lp).await {
                        Ok(list) => {
                            rv = Some(list.metadata.resource_version.clone().unwrap_or_default());
                            pending = list.items.into_iter().rev().map(|o| (o, false)).collect();
                            continue;
                        }
                        Err(e) => {
                            let err = K8sError::from_kube(e, "list", &server);
                            return Some((Err(err), (api, lp, wp, server, rv, pending, None)));
                        }
                    }
                };
                let s = match stream.take() {
                    Some(s) => s,
                    None => match api.watch(&wp, &version).await {
                        Ok(s) => s.boxed(),
                        Err(e) => {
                            let err = K8sError::from_kube(e, "watch", &server);
                            return Some((Err(err), (api, lp, wp, server, rv, pending, None)));
                        }
                    },
                };
                let mut s = s;
                match s.next().await {
                    None => {
                        // The server ended the watch (its timeout): resume from `rv`.
                        stream = None;
                    }
                    Some(Ok(ev)) => {
                        stream = Some(s);
                        match ev {
                            WatchEvent::Added(o) | WatchEvent::Modified(o) => {
                                rv = o.meta().resource_version.clone().or(rv);
                                pending.push((o, false));
                            }
                            WatchEvent::Deleted(o) => {
                                rv = o.meta().resource_version.clone().or(rv);
                                pending.push((o, true));
                            }
                            WatchEvent::Bookmark(b) => {
                                rv = Some(b.metadata.resource_version);
                            }
                            WatchEvent::Error(e) if e.code == 410 => {
                                // Too old: list again.
                                rv = None;
                                stream = None;
                            }
                            WatchEvent::Error(e) => {
                                let err = K8sError::Api {
                                    action: "watch".into(),
                                    message: e.message.clone(),
                                    code: e.code,
                                    reason: format!(": {}", e.reason),
                                };
                                return Some((Err(err), (api, lp, wp, server, rv, pending, None)));
                            }
                        }
                    }
                    Some(Err(e)) => {
                        let err = K8sError::from_kube(e, "watch", &server);
                        return Some((Err(err), (api, lp, wp, server, rv, pending, None)));
                    }
                }
            }
        },
    )
}

/// Wait until cancelled: by the handle, or by SIGINT/SIGTERM when `signals`.
pub(super) async fn cancelled(
    rx: &mut tokio::sync::watch::Receiver<bool>,
    signals: bool,
) -> String {
    use tokio::signal::unix::{SignalKind, signal};
    let (mut term, mut int) = if signals {
        (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        )
    } else {
        (None, None)
    };
    let by_handle = async {
        loop {
            if *rx.borrow_and_update() {
                return;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    };
    let sig = |s: Option<tokio::signal::unix::Signal>, name: &'static str| async move {
        match s {
            Some(mut s) => {
                s.recv().await;
                name
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = by_handle => "cancelled by the caller".into(),
        n = sig(term.take(), "SIGTERM") => n.into(),
        n = sig(int.take(), "SIGINT") => n.into(),
    }
}

/// The state of the pod and the job, as last seen.
#[derive(Default)]
struct Seen {
    pod: Option<Pod>,
    pod_deleted: bool,
    job: Option<Job>,
    warned_unschedulable: bool,
}

impl Seen {
    /// The pod has ended (or is gone): its final state and log can be read.
    fn pod_settled(&self) -> bool {
        self.pod_deleted
            || self.pod.as_ref().is_some_and(|p| {
                container_state(p).is_some_and(|s| s.terminated.is_some())
                    || p.status
                        .as_ref()
                        .and_then(|s| s.phase.as_deref())
                        .is_some_and(|ph| ph == "Succeeded" || ph == "Failed")
            })
    }
}

fn job_finished(job: &Job) -> Option<(bool, Option<String>, Option<String>)> {
    let conds = job.status.as_ref()?.conditions.as_ref()?;
    conds
        .iter()
        .find(|c| c.status == "True" && (c.type_ == "Complete" || c.type_ == "Failed"))
        .map(|c| (c.type_ == "Complete", c.reason.clone(), c.message.clone()))
}

fn container_started(pod: &Pod) -> bool {
    container_state(pod).is_some_and(|s| s.running.is_some() || s.terminated.is_some())
}

fn container_state(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::ContainerState> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == CONTAINER)?
        .state
        .as_ref()
}

/// A failure the pod cannot recover from while waiting to start.
fn fatal_waiting(pod: &Pod, image: &str) -> Option<Error> {
    let waiting = container_state(pod)?.waiting.as_ref()?;
    let reason = waiting.reason.as_deref().unwrap_or_default();
    let message = waiting.message.as_deref().unwrap_or_default();
    match reason {
        "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName" => Some(Error::new(
            ExitCode::Configuration,
            format!(
                "the cluster cannot pull the OSSB image {image} ({reason}: {message}); check \
                 --image, that the nodes can reach its registry, and the namespace's image pull \
                 secrets"
            ),
        )),
        "CreateContainerConfigError" | "CreateContainerError" => Some(Error::new(
            ExitCode::Configuration,
            format!(
                "Kubernetes cannot start the build container ({reason}: {message}); check \
                 --registry-secret and --service-account name existing objects"
            ),
        )),
        _ => None,
    }
}

fn unschedulable(pod: &Pod) -> Option<String> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| {
            c.type_ == "PodScheduled"
                && c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
        })
        .map(|c| c.message.clone().unwrap_or_default())
}

fn code_class(code: i32) -> ExitCode {
    match code {
        2 => ExitCode::Build,
        3 => ExitCode::Registry,
        4 => ExitCode::Authentication,
        5 => ExitCode::Configuration,
        6 => ExitCode::Resource,
        7 => ExitCode::Timeout,
        8 => ExitCode::Cancelled,
        _ => ExitCode::General,
    }
}

/// Follow job `name` in `ns` until it finishes, streaming the pod's log into `progress`.
pub(super) async fn follow(
    cluster: &Cluster,
    ns: &str,
    name: &str,
    opts: &KubernetesOptions,
    progress: &dyn ProgressSink,
) -> Result<BuildOutcome, Error> {
    let jobs: kube::Api<Job> = kube::Api::namespaced(cluster.client.clone(), ns);
    let pods: kube::Api<Pod> = kube::Api::namespaced(cluster.client.clone(), ns);
    let field = format!("metadata.name={name}");
    // Kubernetes labels a Job's pods with `job-name`.
    let label = format!("job-name={name}");
    let job_updates = resumable(
        jobs.clone(),
        ListParams::default().fields(&field),
        WatchParams::default().fields(&field),
        cluster.server.clone(),
    )
    .map_ok(|(j, _)| Update::Job(Box::new(j)));
    let pod_updates = resumable(
        pods.clone(),
        ListParams::default().labels(&label),
        WatchParams::default().labels(&label),
        cluster.server.clone(),
    )
    .map_ok(|(p, deleted)| Update::Pod(Box::new(p), deleted));
    let mut updates: Updates = Box::pin(futures_util::stream::select(job_updates, pod_updates));

    let mut seen = Seen::default();
    let mut report = PodReport::default();
    let mut lines: Option<Lines> = None;
    let mut log_done = false;
    // A local bound in case the cluster never ends the Job (a broken job controller): the
    // deadline plus time to schedule the pod and pull the image.
    let limit = opts.timeout + std::time::Duration::from_secs(300);
    let deadline = tokio::time::sleep(limit);
    tokio::pin!(deadline);
    // The Job's end and the pod's can arrive in either order on the two watches: once the Job
    // has ended, wait (briefly) for the pod's final state and the rest of its log.
    let settle = tokio::time::sleep(std::time::Duration::from_secs(3600));
    tokio::pin!(settle);
    let mut settling = false;
    let mut settled_out = false;

    loop {
        let finished = seen.job.as_ref().and_then(job_finished);
        if finished.is_some() && !settling {
            settling = true;
            settle
                .as_mut()
                .reset(tokio::time::Instant::now() + std::time::Duration::from_secs(20));
        }
        if let Some((complete, reason, message)) = finished
            && (log_done || lines.is_none())
            && (seen.pod_settled() || settled_out)
        {
            return conclude(complete, reason, message, seen.pod.as_ref(), &report, opts);
        }
        tokio::select! {
            update = updates.next() => match update {
                Some(Ok(Update::Job(job))) => seen.job = Some(*job),
                Some(Ok(Update::Pod(pod, deleted))) => {
                    if deleted {
                        seen.pod_deleted = true;
                        continue;
                    }
                    if let Some(err) = fatal_waiting(&pod, &opts.image) {
                        return Err(err);
                    }
                    if let Some(msg) = unschedulable(&pod)
                        && !seen.warned_unschedulable
                    {
                        seen.warned_unschedulable = true;
                        progress.event(&ProgressEvent::Warning {
                            message: format!(
                                "the build pod cannot be scheduled yet: {msg} (lower --requests, \
                                 or check --node-selector; the Job stops at its deadline)"
                            ),
                        });
                    }
                    if lines.is_none() && container_started(&pod) {
                        let pod_name = pod.metadata.name.clone().unwrap_or_default();
                        let lp = LogParams {
                            follow: true,
                            container: Some(CONTAINER.into()),
                            ..Default::default()
                        };
                        match pods.log_stream(&pod_name, &lp).await {
                            Ok(reader) => lines = Some(Box::pin(reader.lines())),
                            Err(e) => {
                                let err = K8sError::from_kube(
                                    e,
                                    &format!("read the log of pod {pod_name}"),
                                    &cluster.server,
                                );
                                return Err(err.into());
                            }
                        }
                    }
                    seen.pod = Some(*pod);
                }
                Some(Err(e)) => return Err(e.into()),
                None => {
                    return Err(Error::new(
                        ExitCode::General,
                        format!("the watch of job {name} ended unexpectedly"),
                    ))
                }
            },
            line = next_line(&mut lines, log_done) => match line {
                Some(Ok(line)) => {
                    if let Some(event) = report.line(&line) {
                        progress.event(&event);
                    }
                }
                // A broken log stream loses lines, not the result: the Job's status decides.
                Some(Err(e)) => {
                    tracing::warn!(component = "k8s", "the pod's log stream broke: {e}");
                    log_done = true;
                }
                None => log_done = true,
            },
            _ = &mut settle, if settling && !settled_out => settled_out = true,
            _ = &mut deadline => {
                return Err(Error::new(
                    ExitCode::Timeout,
                    format!(
                        "job {name} in namespace {ns} did not finish within {}s; check it with \
                         ossb k8s status {name} --namespace {ns}",
                        limit.as_secs()
                    ),
                ));
            }
        }
    }
}

async fn next_line(lines: &mut Option<Lines>, done: bool) -> Option<std::io::Result<String>> {
    match lines {
        Some(l) if !done => l.next().await,
        _ => std::future::pending().await,
    }
}

/// The build's result from the Job's end, the pod's container state and the log.
fn conclude(
    complete: bool,
    reason: Option<String>,
    message: Option<String>,
    pod: Option<&Pod>,
    report: &PodReport,
    opts: &KubernetesOptions,
) -> Result<BuildOutcome, Error> {
    let terminated = pod
        .and_then(container_state)
        .and_then(|s| s.terminated.as_ref());
    if complete {
        let status = report.final_status.clone().unwrap_or_default();
        let digest = status["digest"]
            .as_str()
            .map(str::to_string)
            .or_else(|| {
                report
                    .other_lines
                    .iter()
                    .rev()
                    .find(|l| l.starts_with("sha256:"))
                    .cloned()
            })
            .ok_or_else(|| {
                Error::new(
                    ExitCode::General,
                    "the Job completed but its log did not report the image digest; read it \
                     with ossb k8s logs",
                )
            })?;
        let tags = status["tags"]
            .as_str()
            .map(|t| t.split(',').map(str::to_string).collect())
            .unwrap_or_default();
        return Ok(BuildOutcome {
            image_digest: digest,
            config_digest: None,
            tags,
            operations: status["operations"].as_u64().unwrap_or(0) as usize,
            cache_hits: status["cache_hits"].as_u64().unwrap_or(0) as usize,
            bytes_read: status["bytes_read"].as_u64().unwrap_or(0),
            bytes_written: status["bytes_written"].as_u64().unwrap_or(0),
            steps: Vec::new(),
        });
    }
    // A failed init container: the git context could not be fetched.
    if let Some((name, t)) = pod
        .and_then(|p| p.status.as_ref())
        .and_then(|s| s.init_container_statuses.as_ref())
        .and_then(|cs| {
            cs.iter().find_map(|c| {
                c.state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .filter(|t| t.exit_code != 0)
                    .map(|t| (c.name.clone(), t))
            })
        })
    {
        let msg = t.message.as_deref().unwrap_or_default().trim();
        return Err(Error::new(
            ExitCode::Configuration,
            format!(
                "the build context could not be fetched in the cluster (init container {name} \
                 exit {}): {msg}; check --context-git (URL, branch or tag) and that the cluster \
                 can reach the repository",
                t.exit_code
            ),
        ));
    }
    let pod_reason = pod
        .and_then(|p| p.status.as_ref())
        .and_then(|s| s.reason.clone());
    let pod_message = pod
        .and_then(|p| p.status.as_ref())
        .and_then(|s| s.message.clone())
        .unwrap_or_default();
    if pod_reason.as_deref() == Some("Evicted") {
        return Err(Error::new(
            ExitCode::Resource,
            format!(
                "the node evicted the build pod ({pod_message}); raise --requests \
                 ephemeral-storage/memory so the pod lands on a node with room"
            ),
        ));
    }
    if let Some(t) = terminated
        && t.reason.as_deref() == Some("OOMKilled")
    {
        let limit = opts.limits.get("memory").cloned().unwrap_or("none".into());
        return Err(Error::new(
            ExitCode::Resource,
            format!(
                "the build ran out of memory in the cluster (OOMKilled at the memory limit \
                 {limit}); raise it with --limits memory=8Gi"
            ),
        ));
    }
    let code = report
        .exit_code()
        .or_else(|| terminated.map(|t| t.exit_code));
    let in_pod = report
        .error
        .clone()
        .or_else(|| terminated.and_then(|t| t.message.clone()))
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty());
    if reason.as_deref() == Some("DeadlineExceeded") && code != Some(7) {
        return Err(Error::new(
            ExitCode::Timeout,
            format!(
                "Kubernetes stopped the build at the Job's deadline (activeDeadlineSeconds {}, \
                 from --timeout){}; raise --timeout",
                opts.timeout.as_secs(),
                if terminated.is_none() && pod.is_some_and(|p| unschedulable(p).is_some()) {
                    " while the pod was still unschedulable"
                } else {
                    ""
                }
            ),
        ));
    }
    let class = code.map(code_class).unwrap_or(ExitCode::General);
    let why = in_pod
        .or(message)
        .unwrap_or_else(|| "no message; read the log with ossb k8s logs".into());
    Err(Error::new(
        class,
        format!(
            "the build failed in the cluster (exit code {}): {why}",
            code.map(|c| c.to_string()).unwrap_or("unknown".into())
        ),
    ))
}
