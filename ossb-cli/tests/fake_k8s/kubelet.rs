//! The fake cluster's job controller and kubelet, one thread per Job: make the pod, lay out
//! its volumes like the kubelet (emptyDir directories; ConfigMap, projected and Secret volumes
//! in the atomic-writer layout with `..data` symlinks, `items` paths and modes), run the
//! container's command as a local `ossb` process, collect its output as the pod's log, stop it
//! with SIGTERM (then SIGKILL after the grace period) when the pod is deleted or the Job's
//! `activeDeadlineSeconds` pass, and report the end in the pod's and the Job's status as
//! Kubernetes does (`terminated.exitCode`, `FallbackToLogsOnError` message, `Complete` /
//! `Failed` conditions with `DeadlineExceeded`).
//!
//! There is no mount namespace: the volumes live under a per-pod directory, and the paths the
//! image would see (`/var/run/secrets`, `/var/run/configmaps`, `/workspace`, `/tmp`) are pointed
//! there with OSSB's documented variables and by rewriting arguments under a mount path.
//! An image whose name contains `unpullable` never starts (`ErrImagePull`, then
//! `ImagePullBackOff`), like a missing image.

use super::{Shared, now};
use base64::Engine;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::BufRead;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const NODE: &str = "fake-node";

/// Start the controller for a newly created Job.
pub fn start_job(shared: Arc<Shared>, ns: String, job: Value) {
    std::thread::spawn(move || run_job(&shared, &ns, &job));
}

fn b64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .unwrap_or_default()
}

/// Write a volume in the atomic-writer layout: `..<ts>/` with the payload, `..data -> ..<ts>`,
/// and `top -> ..data/top` per top-level name.
fn atomic_volume(root: &Path, files: &[(String, Vec<u8>, u32)]) {
    std::fs::create_dir_all(root).expect("mkdir volume");
    let ts = "..2026_01_02_03_04_05.000000001";
    let payload = root.join(ts);
    std::fs::create_dir_all(&payload).expect("mkdir payload");
    let mut tops = std::collections::BTreeSet::new();
    for (path, data, mode) in files {
        let p = payload.join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, data).expect("write key");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode)).expect("chmod");
        tops.insert(path.split('/').next().unwrap_or_default().to_string());
    }
    symlink(ts, root.join("..data")).expect("..data");
    for top in tops {
        symlink(format!("..data/{top}"), root.join(&top)).expect("key symlink");
    }
}

/// The keys of a ConfigMap or Secret as (key, bytes).
fn keys_of(obj: &Value, secret: bool) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    if let Some(data) = obj["data"].as_object() {
        for (k, v) in data {
            let s = v.as_str().unwrap_or_default();
            out.insert(
                k.clone(),
                if secret {
                    b64(s)
                } else {
                    s.as_bytes().to_vec()
                },
            );
        }
    }
    if let Some(data) = obj["binaryData"].as_object() {
        for (k, v) in data {
            out.insert(k.clone(), b64(v.as_str().unwrap_or_default()));
        }
    }
    out
}

/// The files of one ConfigMap/Secret source with its `items` (all keys without).
fn project(
    keys: &BTreeMap<String, Vec<u8>>,
    items: &Value,
    default_mode: u32,
) -> Result<Vec<(String, Vec<u8>, u32)>, String> {
    match items.as_array() {
        Some(items) => items
            .iter()
            .map(|it| {
                let key = it["key"].as_str().unwrap_or_default();
                let data = keys
                    .get(key)
                    .ok_or_else(|| format!("key {key} not found"))?;
                let mode = it["mode"]
                    .as_u64()
                    .map(|m| m as u32)
                    .unwrap_or(default_mode);
                Ok((
                    it["path"].as_str().unwrap_or(key).to_string(),
                    data.clone(),
                    mode,
                ))
            })
            .collect(),
        None => Ok(keys
            .iter()
            .map(|(k, v)| (k.clone(), v.clone(), default_mode))
            .collect()),
    }
}

/// Lay out one volume at `dir`; an error is what the kubelet would report.
fn lay_out(shared: &Shared, ns: &str, volume: &Value, dir: &Path) -> Result<(), String> {
    let fetch = |res: &'static str, name: &str| {
        shared
            .get(res, ns, name)
            .ok_or_else(|| format!("{res} \"{name}\" not found"))
    };
    if volume.get("emptyDir").is_some() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    } else if let Some(cm) = volume.get("configMap") {
        let obj = fetch("configmaps", cm["name"].as_str().unwrap_or_default())?;
        let mode = cm["defaultMode"].as_u64().unwrap_or(0o644) as u32;
        atomic_volume(dir, &project(&keys_of(&obj, false), &cm["items"], mode)?);
    } else if let Some(s) = volume.get("secret") {
        let obj = fetch("secrets", s["secretName"].as_str().unwrap_or_default())?;
        let mode = s["defaultMode"].as_u64().unwrap_or(0o644) as u32;
        atomic_volume(dir, &project(&keys_of(&obj, true), &s["items"], mode)?);
    } else if let Some(p) = volume.get("projected") {
        let mode = p["defaultMode"].as_u64().unwrap_or(0o644) as u32;
        let mut files = Vec::new();
        for src in p["sources"].as_array().into_iter().flatten() {
            if let Some(cm) = src.get("configMap") {
                let obj = fetch("configmaps", cm["name"].as_str().unwrap_or_default())?;
                files.extend(project(&keys_of(&obj, false), &cm["items"], mode)?);
            } else if let Some(s) = src.get("secret") {
                let obj = fetch("secrets", s["name"].as_str().unwrap_or_default())?;
                files.extend(project(&keys_of(&obj, true), &s["items"], mode)?);
            }
        }
        atomic_volume(dir, &files);
    } else {
        return Err(format!(
            "volume type not supported by the fake kubelet: {volume}"
        ));
    }
    Ok(())
}

fn set_container_state(
    shared: &Shared,
    ns: &str,
    pod: &str,
    phase: &str,
    state: Value,
    extra: Value,
) {
    shared.update("pods", ns, pod, |p| {
        p["status"]["phase"] = json!(phase);
        p["status"]["containerStatuses"] = json!([{
            "name": "ossb", "image": p["spec"]["containers"][0]["image"], "imageID": "",
            "ready": state.get("running").is_some(), "restartCount": 0, "started": state.get("running").is_some(),
            "state": state,
        }]);
        if let Some(obj) = extra.as_object() {
            for (k, v) in obj {
                p["status"][k] = v.clone();
            }
        }
    });
}

fn finish_job(shared: &Shared, ns: &str, job: &str, ok: bool, reason: &str, message: &str) {
    shared.update("jobs", ns, job, |j| {
        let t = now();
        let (interim, last) = if ok {
            ("SuccessCriteriaMet", "Complete")
        } else {
            ("FailureTarget", "Failed")
        };
        j["status"]["active"] = json!(0);
        j["status"][if ok { "succeeded" } else { "failed" }] = json!(1);
        j["status"]["conditions"] = json!([
            {"type": interim, "status": "True", "reason": reason, "message": message,
             "lastProbeTime": t, "lastTransitionTime": t},
            {"type": last, "status": "True", "reason": reason, "message": message,
             "lastProbeTime": t, "lastTransitionTime": t},
        ]);
        if ok {
            j["status"]["completionTime"] = json!(t);
        }
    });
}

/// The value of an env var with `valueFrom.fieldRef`.
fn field_ref(path: &str, pod: &Value) -> String {
    match path {
        "metadata.name" => pod["metadata"]["name"].as_str().unwrap_or_default().into(),
        "metadata.namespace" => pod["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .into(),
        "spec.nodeName" => pod["spec"]["nodeName"].as_str().unwrap_or(NODE).into(),
        p if p.starts_with("metadata.labels['") => {
            let key = p
                .trim_start_matches("metadata.labels['")
                .trim_end_matches("']");
            pod["metadata"]["labels"][key]
                .as_str()
                .unwrap_or_default()
                .into()
        }
        _ => String::new(),
    }
}

fn run_job(shared: &Arc<Shared>, ns: &str, job: &Value) {
    let job_name = job["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let started = Instant::now();
    let deadline = job["spec"]["activeDeadlineSeconds"]
        .as_u64()
        .map(|s| started + Duration::from_secs(s));
    let template = &job["spec"]["template"];
    let pod_name = format!("{job_name}-x7k2p");
    let mut labels = template["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    let uid = job["metadata"]["uid"].clone();
    labels["job-name"] = json!(job_name);
    labels["batch.kubernetes.io/job-name"] = json!(job_name);
    labels["controller-uid"] = uid.clone();
    let mut spec = template["spec"].clone();
    spec["nodeName"] = json!(NODE);
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": pod_name, "namespace": ns, "labels": labels, "uid": format!("uid-pod-{pod_name}"),
                     "creationTimestamp": now(),
                     "ownerReferences": [{"apiVersion":"batch/v1","kind":"Job","name":job_name,"uid":uid,
                                          "controller":true,"blockOwnerDeletion":true}]},
        "spec": spec,
        "status": {"phase": "Pending", "conditions": [{"type":"PodScheduled","status":"True","lastTransitionTime":now()}],
                   "qosClass": "Burstable"},
    });
    {
        let mut st = shared.lock();
        shared.put(&mut st, "pods", ns, pod.clone());
    }
    shared.update("jobs", ns, &job_name, |j| {
        j["status"]["active"] = json!(1);
        j["status"]["startTime"] = json!(now());
    });
    let key = format!("{ns}/{pod_name}");
    let container = spec["containers"][0].clone();
    let stop_requested = || shared.lock().terminating.contains(&key);
    let remove_pod = || {
        let mut st = shared.lock();
        shared.remove(&mut st, "pods", ns, &pod_name);
        st.terminating.remove(&key);
        if let Some(l) = st.logs.get_mut(&key) {
            l.done = true;
        }
        shared.changed.notify_all();
    };
    let wait_out = |why: &str| {
        // Nothing runs: wait for the deletion or the deadline.
        loop {
            if stop_requested() {
                remove_pod();
                return;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                remove_pod();
                finish_job(
                    shared,
                    ns,
                    &job_name,
                    false,
                    "DeadlineExceeded",
                    "Job was active longer than specified deadline",
                );
                return;
            }
            let _ = why;
            std::thread::sleep(Duration::from_millis(100));
        }
    };

    // The scheduler: two nodes, amd64 and arm64, with the usual well-known labels (both run
    // the container here; a build for the other architecture needs no emulation as long as
    // it has no RUN step).
    let nodes: Vec<Value> = ["amd64", "arm64"]
        .iter()
        .map(|arch| {
            json!({"kubernetes.io/arch": arch, "kubernetes.io/os": "linux",
                   "kubernetes.io/hostname": format!("{NODE}-{arch}")})
        })
        .collect();
    let fits = |labels: &Value| {
        spec["nodeSelector"]
            .as_object()
            .is_none_or(|sel| sel.iter().all(|(k, v)| labels[k] == *v))
    };
    if let Some(node) = nodes.iter().find(|n| fits(n)) {
        let host = node["kubernetes.io/hostname"].clone();
        shared.update("pods", ns, &pod_name, |p| p["spec"]["nodeName"] = host);
    } else {
        shared.update("pods", ns, &pod_name, |p| {
            p["spec"]["nodeName"] = Value::Null;
            p["status"]["conditions"] = json!([{"type": "PodScheduled", "status": "False",
                "reason": "Unschedulable", "lastTransitionTime": now(),
                "message": "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."}]);
        });
        return wait_out("unschedulable");
    }

    let image = container["image"].as_str().unwrap_or_default().to_string();
    if image.contains("unpullable") {
        let msg = format!(
            "rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": not found"
        );
        set_container_state(
            shared,
            ns,
            &pod_name,
            "Pending",
            json!({"waiting": {"reason": "ErrImagePull", "message": msg}}),
            json!({}),
        );
        std::thread::sleep(Duration::from_millis(300));
        set_container_state(
            shared,
            ns,
            &pod_name,
            "Pending",
            json!({"waiting": {"reason": "ImagePullBackOff", "message": format!("Back-off pulling image \"{image}\"")}}),
            json!({}),
        );
        return wait_out("image");
    }

    // Volumes.
    let pod_root = shared.root.join(&job_name);
    let mut mounts: Vec<(String, PathBuf)> = Vec::new();
    for m in container["volumeMounts"].as_array().into_iter().flatten() {
        let name = m["name"].as_str().unwrap_or_default();
        let mount_path = m["mountPath"].as_str().unwrap_or_default().to_string();
        let host = pod_root.join(mount_path.trim_start_matches('/'));
        let vol = spec["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["name"] == name)
            .cloned()
            .unwrap_or_default();
        if let Some(claim) = vol["persistentVolumeClaim"]["claimName"].as_str() {
            // The claim's volume is a directory named by the test (annotation
            // `fake.ossb.dev/host-path` on the PVC); `subPath` selects a directory in it.
            let Some(dir) = shared
                .get("persistentvolumeclaims", ns, claim)
                .and_then(|c| {
                    c["metadata"]["annotations"]["fake.ossb.dev/host-path"]
                        .as_str()
                        .map(PathBuf::from)
                })
            else {
                let pvc = format!("persistentvolumeclaim \"{claim}\" not found");
                set_container_state(
                    shared,
                    ns,
                    &pod_name,
                    "Pending",
                    json!({"waiting": {"reason": "ContainerCreating", "message": pvc}}),
                    json!({}),
                );
                return wait_out("pvc");
            };
            let dir = match m["subPath"].as_str() {
                Some(sub) => dir.join(sub),
                None => dir,
            };
            mounts.push((mount_path, dir));
            continue;
        }
        if let Err(e) = lay_out(shared, ns, &vol, &host) {
            set_container_state(
                shared,
                ns,
                &pod_name,
                "Pending",
                json!({"waiting": {"reason": "CreateContainerConfigError", "message": e}}),
                json!({}),
            );
            return wait_out("volume");
        }
        mounts.push((mount_path, host));
    }
    // Longest mount paths first, so `/workspace/context` would win over `/workspace`.
    mounts.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    let host_of = |path: &str| -> Option<PathBuf> {
        mounts.iter().find_map(|(m, h)| {
            path.strip_prefix(m.as_str())
                .filter(|rest| rest.is_empty() || rest.starts_with('/'))
                .map(|rest| h.join(rest.trim_start_matches('/')))
        })
    };
    let home = pod_root.join("home/ossb");
    std::fs::create_dir_all(&home).expect("home");
    let tmp = host_of("/tmp").unwrap_or_else(|| pod_root.join("tmp"));
    std::fs::create_dir_all(&tmp).expect("tmp");

    // Init containers run first, in order; one that fails fails the pod.
    let rewrite = |a: &str| -> std::ffi::OsString {
        match host_of(a) {
            Some(h) if a.starts_with('/') => h.into_os_string(),
            _ => a.into(),
        }
    };
    for init in spec["initContainers"].as_array().into_iter().flatten() {
        let name = init["name"].as_str().unwrap_or_default();
        let program = init["command"][0].as_str().unwrap_or_default();
        let mut c = Command::new(program);
        for arg in init["args"].as_array().into_iter().flatten() {
            c.arg(rewrite(arg.as_str().unwrap_or_default()));
        }
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default());
        for e in init["env"].as_array().into_iter().flatten() {
            c.env(
                e["name"].as_str().unwrap_or_default(),
                rewrite(e["value"].as_str().unwrap_or_default()),
            );
        }
        let (code, output) = match c.output() {
            Ok(o) => (
                o.status.code().unwrap_or(1),
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                ),
            ),
            Err(e) => (128, e.to_string()),
        };
        let mut terminated =
            json!({"exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" }});
        if code != 0 {
            terminated["message"] = json!(output.trim());
        }
        let image = init["image"].clone();
        shared.update("pods", ns, &pod_name, |p| {
            p["status"]["initContainerStatuses"] = json!([{"name": name, "image": image, "imageID": "",
                "ready": code == 0, "restartCount": 0, "state": {"terminated": terminated}}]);
            if code != 0 {
                p["status"]["phase"] = json!("Failed");
            }
        });
        if code != 0 {
            finish_job(
                shared,
                ns,
                &job_name,
                false,
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            );
            linger(
                &stop_requested,
                &remove_pod,
                shared,
                ns,
                &pod_name,
                &pod_root,
            );
            return;
        }
    }

    let pod_now = shared.get("pods", ns, &pod_name).unwrap_or(pod);
    let mut cmd = Command::new(&shared.ossb);
    for arg in container["args"].as_array().into_iter().flatten() {
        let a = arg.as_str().unwrap_or_default();
        match host_of(a) {
            Some(h) if a.starts_with('/') => cmd.arg(h),
            _ => cmd.arg(a),
        };
    }
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("TMPDIR", &tmp)
        .env("KUBERNETES_SERVICE_HOST", "10.96.0.1")
        .env("KUBERNETES_SERVICE_PORT", "443")
        .env("OSSB_SECRETS_ROOT", pod_root.join("var/run/secrets"))
        .env("OSSB_CONFIGMAPS_ROOT", pod_root.join("var/run/configmaps"))
        .env(
            "OSSB_WORKSPACE",
            host_of("/workspace/.ossb").unwrap_or_else(|| pod_root.join("workspace/.ossb")),
        )
        .env("OSSB_STATUS_FILE", tmp.join("ossb-status.json"))
        .env("OSSB_PROGRESS_FILE", tmp.join("ossb-progress.json"));
    for e in container["env"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().unwrap_or_default();
        let value = match e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            Some(path) => field_ref(path, &pod_now),
            None => e["value"].as_str().unwrap_or_default().to_string(),
        };
        cmd.env(name, value);
    }
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            set_container_state(
                shared,
                ns,
                &pod_name,
                "Failed",
                json!({"terminated": {"exitCode": 128, "reason": "StartError", "message": e.to_string()}}),
                json!({}),
            );
            finish_job(
                shared,
                ns,
                &job_name,
                false,
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            );
            return;
        }
    };
    shared
        .lock()
        .logs
        .insert(key.clone(), super::LogBuf::default());
    let readers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|stream| {
        let shared = shared.clone();
        let key = key.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stream)
                .split(b'\n')
                .map_while(Result::ok)
            {
                let mut st = shared.lock();
                if let Some(l) = st.logs.get_mut(&key) {
                    l.data.extend_from_slice(&line);
                    l.data.push(b'\n');
                }
                shared.changed.notify_all();
            }
        })
    })
    .collect();
    let started_at = now();
    set_container_state(
        shared,
        ns,
        &pod_name,
        "Running",
        json!({"running": {"startedAt": started_at}}),
        json!({"startTime": started_at, "podIP": "10.244.0.7"}),
    );

    let grace = Duration::from_secs(spec["terminationGracePeriodSeconds"].as_u64().unwrap_or(30));
    let pid = rustix::process::Pid::from_child(&child);
    let mut term_sent: Option<Instant> = None;
    let mut deadline_hit = false;
    // No cgroups here: a memory limit below 64Mi stands for a build that outgrows its limit,
    // and the "kernel" kills it once it has started working (its first log line).
    let oom = container["resources"]["limits"]["memory"]
        .as_str()
        .is_some_and(|m| {
            m.ends_with("Ki")
                || (m.ends_with("Mi")
                    && m.trim_end_matches("Mi")
                        .parse::<u64>()
                        .is_ok_and(|n| n < 64))
        });
    let mut oom_killed = false;
    let exit = loop {
        if oom
            && !oom_killed
            && shared
                .lock()
                .logs
                .get(&key)
                .is_some_and(|l| !l.data.is_empty())
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            oom_killed = true;
        }
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(_) => break std::os::unix::process::ExitStatusExt::from_raw(1 << 8),
        }
        let deleted = stop_requested();
        let past_deadline = deadline.is_some_and(|d| Instant::now() >= d);
        if (deleted || past_deadline) && term_sent.is_none() {
            deadline_hit = past_deadline && !deleted;
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            shared.lock().sigtermed.insert(key.clone());
            term_sent = Some(Instant::now());
        }
        if term_sent.is_some_and(|t| t.elapsed() > grace) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    for r in readers {
        let _ = r.join();
    }
    use std::os::unix::process::ExitStatusExt;
    let code = exit
        .code()
        .unwrap_or_else(|| 128 + exit.signal().unwrap_or(9));
    let log_tail = {
        let mut st = shared.lock();
        let l = st.logs.entry(key.clone()).or_default();
        l.done = true;
        let text = String::from_utf8_lossy(&l.data).into_owned();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(80)..].join("\n");
        // FallbackToLogsOnError: the last 80 lines, at most 2048 bytes.
        let start = tail.len().saturating_sub(2048);
        let start = (start..=tail.len())
            .find(|i| tail.is_char_boundary(*i))
            .unwrap_or(tail.len());
        tail[start..].to_string()
    };
    shared.changed.notify_all();
    let (phase, reason) = if oom_killed {
        ("Failed", "OOMKilled")
    } else if code == 0 {
        ("Succeeded", "Completed")
    } else {
        ("Failed", "Error")
    };
    let mut terminated =
        json!({"exitCode": code, "reason": reason, "startedAt": started_at, "finishedAt": now()});
    if code != 0 {
        terminated["message"] = json!(log_tail);
    }
    set_container_state(
        shared,
        ns,
        &pod_name,
        phase,
        json!({"terminated": terminated}),
        json!({}),
    );
    if stop_requested() {
        remove_pod();
    } else if code == 0 {
        finish_job(
            shared,
            ns,
            &job_name,
            true,
            "CompletionsReached",
            "Reached expected number of succeeded pods",
        );
    } else if deadline_hit {
        finish_job(
            shared,
            ns,
            &job_name,
            false,
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
        );
    } else {
        finish_job(
            shared,
            ns,
            &job_name,
            false,
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        );
    }
    linger(
        &stop_requested,
        &remove_pod,
        shared,
        ns,
        &pod_name,
        &pod_root,
    );
}

/// A finished pod stays until it is deleted (the Job's deletion, the client's cleanup).
fn linger(
    stop_requested: &dyn Fn() -> bool,
    remove_pod: &dyn Fn(),
    shared: &Shared,
    ns: &str,
    pod_name: &str,
    pod_root: &Path,
) {
    loop {
        if stop_requested() {
            remove_pod();
            let _ = std::fs::remove_dir_all(pod_root);
            return;
        }
        if shared.get("pods", ns, pod_name).is_none() {
            return;
        }
        let st = shared.lock();
        let _ = shared.changed.wait_timeout(st, Duration::from_millis(500));
    }
}
