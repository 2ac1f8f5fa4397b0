//! A FAKE Kubernetes API server, in process, for the backend's tests: no real cluster can run
//! on this machine. It speaks the real REST/JSON protocol over HTTP (what `kube` sends and
//! expects, byte for byte): namespaces, configmaps, secrets, jobs and pods with create, get,
//! list and delete; label and field selectors; watch streams (chunked, one JSON event per line)
//! from a resourceVersion with BOOKMARK events, closed early by the server so clients must
//! resume; `pods/log` with `follow`; `selfsubjectaccessreviews`; `/version`; bearer-token
//! authentication. Its job controller and kubelet ([`kubelet`]) run each Job's pod by starting
//! the container's command as a local `ossb` process with the volumes laid out as the kubelet
//! does (ConfigMap and Secret volumes in the atomic-writer `..data` layout).

#![allow(dead_code)]

pub mod http;
pub mod kubelet;

use http::{Request, Response};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The token the kubeconfig carries; anything else is refused with 401.
pub const TOKEN: &str = "fake-cluster-token";
/// How long the server keeps a watch open before ending it (the real one ends watches after
/// `timeoutSeconds`, or at any time); short, so clients have to resume from a resourceVersion.
pub const WATCH_WINDOW: Duration = Duration::from_secs(3);

/// One change, as watchers see it.
#[derive(Debug, Clone)]
pub struct Event {
    pub rv: u64,
    pub resource: &'static str,
    pub namespace: String,
    pub kind: &'static str,
    pub object: Value,
}

/// A pod's log.
#[derive(Debug, Default)]
pub struct LogBuf {
    pub data: Vec<u8>,
    pub done: bool,
}

/// Everything the server holds.
#[derive(Default)]
pub struct State {
    pub rv: u64,
    /// (resource, namespace, name) -> object.
    pub objects: BTreeMap<(&'static str, String, String), Value>,
    pub events: Vec<Event>,
    /// "namespace/pod" -> log.
    pub logs: BTreeMap<String, LogBuf>,
    /// Every request: "METHOD path?watch&resourceVersion=..".
    pub requests: Vec<String>,
    /// Every object ever created, as sent by the client.
    pub created: Vec<(&'static str, Value)>,
    /// Permissions the identity lacks: "verb resource" or "verb resource/subresource".
    pub denied: BTreeSet<String>,
    /// Pods whose deletion was asked for: the kubelet stops them.
    pub terminating: BTreeSet<String>,
    /// Pods whose process got SIGTERM.
    pub sigtermed: BTreeSet<String>,
    /// BOOKMARK events sent.
    pub bookmarks: usize,
    /// How many of the next watches to answer with `410 Gone` (an etcd compaction made their
    /// resourceVersion too old).
    pub expire_watches: usize,
}

/// Shared between the HTTP threads and the kubelet threads.
pub struct Shared {
    pub state: Mutex<State>,
    pub changed: Condvar,
    /// The `ossb` binary the kubelet runs for the build container.
    pub ossb: PathBuf,
    /// Where pods' volumes are laid out.
    pub root: PathBuf,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Store `object` (created or modified) and tell the watchers.
    pub fn put(
        &self,
        st: &mut State,
        resource: &'static str,
        ns: &str,
        mut object: Value,
    ) -> Value {
        st.rv += 1;
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        object["metadata"]["resourceVersion"] = json!(st.rv.to_string());
        let key = (resource, ns.to_string(), name);
        let kind = if st.objects.contains_key(&key) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        st.objects.insert(key, object.clone());
        st.events.push(Event {
            rv: st.rv,
            resource,
            namespace: ns.to_string(),
            kind,
            object: object.clone(),
        });
        self.changed.notify_all();
        object
    }

    /// Remove an object and tell the watchers.
    pub fn remove(
        &self,
        st: &mut State,
        resource: &'static str,
        ns: &str,
        name: &str,
    ) -> Option<Value> {
        let mut object = st
            .objects
            .remove(&(resource, ns.to_string(), name.to_string()))?;
        st.rv += 1;
        object["metadata"]["resourceVersion"] = json!(st.rv.to_string());
        st.events.push(Event {
            rv: st.rv,
            resource,
            namespace: ns.to_string(),
            kind: "DELETED",
            object: object.clone(),
        });
        self.changed.notify_all();
        Some(object)
    }

    /// Modify an object in place.
    pub fn update(&self, resource: &'static str, ns: &str, name: &str, f: impl FnOnce(&mut Value)) {
        let mut st = self.lock();
        let Some(mut obj) = st
            .objects
            .get(&(resource, ns.to_string(), name.to_string()))
            .cloned()
        else {
            return;
        };
        f(&mut obj);
        self.put(&mut st, resource, ns, obj);
    }

    pub fn get(&self, resource: &'static str, ns: &str, name: &str) -> Option<Value> {
        self.lock()
            .objects
            .get(&(resource, ns.to_string(), name.to_string()))
            .cloned()
    }
}

/// The fake cluster: the server's address and its state.
pub struct FakeCluster {
    pub shared: Arc<Shared>,
    pub url: String,
    /// The CA of the server's certificate (HTTPS only).
    pub ca: Option<PathBuf>,
    pub dir: tempfile::TempDir,
}

/// (apiVersion, kind, namespaced) of the resources served.
fn type_of(resource: &str) -> Option<(&'static str, &'static str, &'static str, bool)> {
    Some(match resource {
        "namespaces" => ("namespaces", "v1", "Namespace", false),
        "configmaps" => ("configmaps", "v1", "ConfigMap", true),
        "secrets" => ("secrets", "v1", "Secret", true),
        "pods" => ("pods", "v1", "Pod", true),
        "jobs" => ("jobs", "batch/v1", "Job", true),
        _ => return None,
    })
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn status(code: u16, reason: &str, message: String) -> Response {
    Response::json(
        code,
        &json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                "message":message,"reason":reason,"code":code}),
    )
}

/// `a=b,c` label selectors and `metadata.name=x` field selectors.
fn matches(object: &Value, query: &BTreeMap<String, String>) -> bool {
    if let Some(sel) = query.get("labelSelector").filter(|s| !s.is_empty()) {
        for term in sel.split(',') {
            let ok = match term.split_once('=') {
                Some((k, v)) => object["metadata"]["labels"][k.trim_end_matches('!')] == v,
                None => object["metadata"]["labels"].get(term).is_some(),
            };
            if !ok {
                return false;
            }
        }
    }
    if let Some(sel) = query.get("fieldSelector").filter(|s| !s.is_empty()) {
        for term in sel.split(',') {
            let Some((k, v)) = term.split_once('=') else {
                return false;
            };
            let got = match k {
                "metadata.name" => &object["metadata"]["name"],
                "metadata.namespace" => &object["metadata"]["namespace"],
                _ => return false,
            };
            if got != v {
                return false;
            }
        }
    }
    true
}

impl FakeCluster {
    /// Start the server over HTTPS (a fresh CA, put into the kubeconfig like a real cluster's),
    /// with namespaces `default` and `ci`.
    pub fn start(ossb: &Path) -> FakeCluster {
        Self::start_with(ossb, true)
    }

    /// Start the server over plain HTTP (like `kubectl proxy`).
    pub fn start_plain(ossb: &Path) -> FakeCluster {
        Self::start_with(ossb, false)
    }

    fn start_with(ossb: &Path, tls: bool) -> FakeCluster {
        let dir = tempfile::Builder::new()
            // Short paths: the RUN sandbox passes overlay paths through fsconfig(2), whose
            // string values the kernel caps at 256 bytes.
            .prefix("fk8s-")
            .tempdir()
            .expect("tempdir");
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            ossb: ossb.to_path_buf(),
            root: dir.path().join("n"),
        });
        for ns in ["default", "ci"] {
            let mut st = shared.lock();
            shared.put(
                &mut st,
                "namespaces",
                "",
                json!({"apiVersion":"v1","kind":"Namespace",
                       "metadata":{"name":ns,"uid":format!("uid-ns-{ns}"),"creationTimestamp":now()},
                       "status":{"phase":"Active"}}),
            );
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (url, ca, config) = if tls {
            let ca = ossb_testkit::make_certs(dir.path()).expect("openssl makes certificates");
            let certs = ca.parent().expect("certs dir");
            let config = http::tls_config(&certs.join("server.crt"), &certs.join("server.key"));
            (format!("https://{addr}"), Some(ca), Some(config))
        } else {
            (format!("http://{addr}"), None, None)
        };
        let s = shared.clone();
        http::serve(listener, Arc::new(move |req| handle(&s, req)), config);
        FakeCluster {
            shared,
            url,
            ca,
            dir,
        }
    }

    /// A kubeconfig for this server (context `fake`, namespace `ns`, the CA inline as
    /// `certificate-authority-data` for HTTPS), written to a file.
    pub fn kubeconfig(&self, ns: &str) -> PathBuf {
        use base64::Engine;
        let path = self.dir.path().join(format!("kubeconfig-{ns}"));
        let ca = match &self.ca {
            Some(ca) => format!(
                "    certificate-authority-data: {}\n",
                base64::engine::general_purpose::STANDARD.encode(std::fs::read(ca).expect("ca"))
            ),
            None => String::new(),
        };
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n{ca}\
                 users:\n- name: builder\n  user:\n    token: {TOKEN}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: builder\n    namespace: {ns}\n\
                 current-context: fake\n",
                self.url
            ),
        )
        .expect("write kubeconfig");
        path
    }

    /// Deny a permission ("create jobs", "get pods/log").
    pub fn deny(&self, permission: &str) {
        self.shared.lock().denied.insert(permission.to_string());
    }

    /// The objects of a resource now.
    pub fn objects(&self, resource: &str) -> Vec<Value> {
        self.shared
            .lock()
            .objects
            .iter()
            .filter(|((r, _, _), _)| *r == resource)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Objects of a resource ever created.
    pub fn created(&self, resource: &str) -> Vec<Value> {
        self.shared
            .lock()
            .created
            .iter()
            .filter(|(r, _)| *r == resource)
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub fn requests(&self) -> Vec<String> {
        self.shared.lock().requests.clone()
    }

    /// Wait (bounded) until `f` holds for the state.
    pub fn wait_for(&self, what: &str, f: impl Fn(&State) -> bool) {
        let end = Instant::now() + Duration::from_secs(120);
        let mut st = self.shared.lock();
        while !f(&st) {
            assert!(Instant::now() < end, "timed out waiting for {what}");
            st = self
                .shared
                .changed
                .wait_timeout(st, Duration::from_millis(200))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

fn handle(shared: &Arc<Shared>, req: Request) -> Response {
    {
        let mut st = shared.lock();
        let mut line = format!("{} {}", req.method, req.path);
        for k in [
            "watch",
            "resourceVersion",
            "allowWatchBookmarks",
            "follow",
            "labelSelector",
            "fieldSelector",
        ] {
            if let Some(v) = req.query.get(k) {
                line.push_str(&format!(" {k}={v}"));
            }
        }
        st.requests.push(line);
    }
    if req.headers.get("authorization").map(String::as_str) != Some(&format!("Bearer {TOKEN}")) {
        return status(401, "Unauthorized", "Unauthorized".into());
    }
    let segs: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    match segs.as_slice() {
        ["version"] => Response::json(
            200,
            &json!({"major":"1","minor":"33","gitVersion":"v1.33.0-fake","gitCommit":"0",
                    "gitTreeState":"clean","buildDate":"2026-01-01T00:00:00Z","goVersion":"go1.24",
                    "compiler":"gc","platform":"linux/amd64"}),
        ),
        [
            "apis",
            "authorization.k8s.io",
            "v1",
            "selfsubjectaccessreviews",
        ] if req.method == "POST" => access_review(shared, &req),
        ["api", "v1", "namespaces"] => collection(shared, &req, "namespaces", ""),
        ["api", "v1", "namespaces", name] => item(shared, &req, "namespaces", "", name),
        ["api", "v1", "namespaces", ns, "pods", name, "log"] => pod_log(shared, &req, ns, name),
        ["api", "v1", "namespaces", ns, res] | ["apis", "batch", "v1", "namespaces", ns, res] => {
            match type_of(res) {
                Some((r, ..)) => collection(shared, &req, r, ns),
                None => status(404, "NotFound", format!("the server could not find {res}")),
            }
        }
        ["api", "v1", "namespaces", ns, res, name]
        | ["apis", "batch", "v1", "namespaces", ns, res, name] => match type_of(res) {
            Some((r, ..)) => item(shared, &req, r, ns, name),
            None => status(404, "NotFound", format!("the server could not find {res}")),
        },
        _ => status(
            404,
            "NotFound",
            format!("the server could not find {}", req.path),
        ),
    }
}

fn access_review(shared: &Arc<Shared>, req: &Request) -> Response {
    let Ok(mut review) = serde_json::from_slice::<Value>(&req.body) else {
        return status(400, "BadRequest", "invalid JSON".into());
    };
    let attrs = &review["spec"]["resourceAttributes"];
    let verb = attrs["verb"].as_str().unwrap_or_default();
    let mut resource = attrs["resource"].as_str().unwrap_or_default().to_string();
    if let Some(sub) = attrs["subresource"].as_str().filter(|s| !s.is_empty()) {
        resource = format!("{resource}/{sub}");
    }
    let denied = shared.lock().denied.contains(&format!("{verb} {resource}"));
    review["status"] = if denied {
        json!({"allowed": false, "reason": "RBAC: no rule grants it"})
    } else {
        json!({"allowed": true, "reason": "RBAC: allowed by RoleBinding \"ossb-builder\""})
    };
    review["metadata"] = json!({"creationTimestamp": null});
    Response::json(201, &review)
}

fn collection(shared: &Arc<Shared>, req: &Request, resource: &'static str, ns: &str) -> Response {
    let Some((_, api_version, kind, namespaced)) = type_of(resource) else {
        return status(404, "NotFound", "no such resource".into());
    };
    if namespaced && shared.get("namespaces", "", ns).is_none() {
        return status(404, "NotFound", format!("namespaces \"{ns}\" not found"));
    }
    match req.method.as_str() {
        "POST" => {
            let Ok(mut obj) = serde_json::from_slice::<Value>(&req.body) else {
                return status(400, "BadRequest", "invalid JSON body".into());
            };
            let Some(name) = obj["metadata"]["name"].as_str().map(str::to_string) else {
                return status(
                    422,
                    "Invalid",
                    format!("{kind} \"\" is invalid: metadata.name: Required value"),
                );
            };
            let mut st = shared.lock();
            st.created.push((resource, obj.clone()));
            if st
                .objects
                .contains_key(&(resource, ns.to_string(), name.clone()))
            {
                return status(
                    409,
                    "AlreadyExists",
                    format!("{resource} \"{name}\" already exists"),
                );
            }
            obj["apiVersion"] = json!(api_version);
            obj["kind"] = json!(kind);
            if namespaced {
                obj["metadata"]["namespace"] = json!(ns);
            }
            obj["metadata"]["uid"] = json!(format!("uid-{resource}-{name}-{}", st.rv));
            obj["metadata"]["creationTimestamp"] = json!(now());
            match resource {
                "namespaces" => obj["status"] = json!({"phase": "Active"}),
                "jobs" => {
                    obj["status"] = json!({});
                    obj["metadata"]["generation"] = json!(1);
                }
                "secrets" if obj["type"].is_null() => obj["type"] = json!("Opaque"),
                _ => {}
            }
            let stored = shared.put(&mut st, resource, ns, obj);
            drop(st);
            if resource == "jobs" && stored["spec"]["suspend"] != true {
                kubelet::start_job(shared.clone(), ns.to_string(), stored.clone());
            }
            Response::json(201, &stored)
        }
        "GET"
            if req
                .query
                .get("watch")
                .is_some_and(|w| w == "true" || w == "1") =>
        {
            watch(shared, req, resource, ns)
        }
        "GET" => {
            let st = shared.lock();
            let items: Vec<Value> = st
                .objects
                .iter()
                .filter(|((r, n, _), o)| {
                    *r == resource && (!namespaced || n == ns) && matches(o, &req.query)
                })
                .map(|(_, o)| o.clone())
                .collect();
            Response::json(
                200,
                &json!({"apiVersion":api_version,"kind":format!("{kind}List"),
                        "metadata":{"resourceVersion":st.rv.to_string()},"items":items}),
            )
        }
        _ => status(
            405,
            "MethodNotAllowed",
            format!("{} is not allowed", req.method),
        ),
    }
}

fn item(
    shared: &Arc<Shared>,
    req: &Request,
    resource: &'static str,
    ns: &str,
    name: &str,
) -> Response {
    match req.method.as_str() {
        "GET" => match shared.get(resource, ns, name) {
            Some(o) => Response::json(200, &o),
            None => status(404, "NotFound", format!("{resource} \"{name}\" not found")),
        },
        "PATCH" => {
            let merge = req
                .headers
                .get("content-type")
                .is_some_and(|t| t.starts_with("application/merge-patch+json"));
            let Ok(patch) = serde_json::from_slice::<Value>(&req.body) else {
                return status(400, "BadRequest", "invalid JSON patch".into());
            };
            if !merge {
                return status(
                    415,
                    "UnsupportedMediaType",
                    "only merge patches are served".into(),
                );
            }
            let Some(mut obj) = shared.get(resource, ns, name) else {
                return status(404, "NotFound", format!("{resource} \"{name}\" not found"));
            };
            let was_suspended = obj["spec"]["suspend"] == true;
            merge_patch(&mut obj, &patch);
            let stored = {
                let mut st = shared.lock();
                shared.put(&mut st, resource, ns, obj)
            };
            // A Job resumed from suspension starts now.
            if resource == "jobs" && was_suspended && stored["spec"]["suspend"] != true {
                kubelet::start_job(shared.clone(), ns.to_string(), stored.clone());
            }
            Response::json(200, &stored)
        }
        "DELETE" => match delete(shared, resource, ns, name) {
            Some(o) => Response::json(200, &o),
            None => status(404, "NotFound", format!("{resource} \"{name}\" not found")),
        },
        _ => status(
            405,
            "MethodNotAllowed",
            format!("{} is not allowed", req.method),
        ),
    }
}

/// RFC 7386 JSON merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    match patch.as_object() {
        Some(fields) => {
            if !target.is_object() {
                *target = json!({});
            }
            for (k, v) in fields {
                if v.is_null() {
                    if let Some(o) = target.as_object_mut() {
                        o.remove(k);
                    }
                } else {
                    merge_patch(&mut target[k.as_str()], v);
                }
            }
        }
        None => *target = patch.clone(),
    }
}

/// Delete an object; a Job's pods and a namespace's contents go with it (the pods' processes
/// get SIGTERM from the kubelet, which then removes them).
pub fn delete(shared: &Arc<Shared>, resource: &'static str, ns: &str, name: &str) -> Option<Value> {
    let mut st = shared.lock();
    let mut obj = shared.remove(&mut st, resource, ns, name)?;
    obj["metadata"]["deletionTimestamp"] = json!(now());
    match resource {
        "jobs" => {
            let pods: Vec<String> = st
                .objects
                .iter()
                .filter(|((r, n, _), o)| {
                    *r == "pods" && n == ns && o["metadata"]["labels"]["job-name"] == name
                })
                .map(|((_, _, p), _)| p.clone())
                .collect();
            for p in pods {
                st.terminating.insert(format!("{ns}/{p}"));
            }
            shared.changed.notify_all();
        }
        "pods" => {
            // Put it back until the kubelet has stopped it.
            st.objects
                .insert((resource, ns.to_string(), name.to_string()), obj.clone());
            st.terminating.insert(format!("{ns}/{name}"));
        }
        "namespaces" => {
            let keys: Vec<(&'static str, String)> = st
                .objects
                .keys()
                .filter(|(r, n, _)| n == name && *r != "pods")
                .map(|(r, _, o)| (*r, o.clone()))
                .collect();
            drop(st);
            for (r, o) in keys {
                delete(shared, r, name, &o);
            }
            return Some(obj);
        }
        _ => {}
    }
    Some(obj)
}

/// A watch: events after `resourceVersion` that match the selectors, one JSON object per line,
/// with BOOKMARKs while nothing happens; ended by the server after [`WATCH_WINDOW`].
fn watch(shared: &Arc<Shared>, req: &Request, resource: &'static str, ns: &str) -> Response {
    let (_, api_version, kind, namespaced) = type_of(resource).expect("known resource");
    let shared = shared.clone();
    let query = req.query.clone();
    let ns = ns.to_string();
    let bookmarks = query
        .get("allowWatchBookmarks")
        .is_some_and(|v| v == "true");
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(WATCH_WINDOW)
        .min(WATCH_WINDOW);
    let start_rv: Option<u64> = query
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .filter(|v| *v > 0);
    Response::Stream {
        status: 200,
        content_type: "application/json",
        body: Box::new(move |out| {
            let end = Instant::now() + timeout;
            let mut st = shared.lock();
            if st.expire_watches > 0 && start_rv.is_some() {
                st.expire_watches -= 1;
                let rv = start_rv.unwrap_or_default();
                let gone = json!({"type":"ERROR","object":{"kind":"Status","apiVersion":"v1",
                    "metadata":{},"status":"Failure","reason":"Expired","code":410,
                    "message":format!("too old resource version: {rv} ({})", st.rv)}});
                drop(st);
                return out.send(format!("{gone}\n").as_bytes());
            }
            let mut cursor = match start_rv {
                Some(rv) => rv,
                None => {
                    // No version: the current objects as ADDED, then changes.
                    let mut lines = Vec::new();
                    for ((r, n, _), o) in &st.objects {
                        if *r == resource && (!namespaced || *n == ns) && matches(o, &query) {
                            lines.extend(
                                format!("{}\n", json!({"type":"ADDED","object":o})).into_bytes(),
                            );
                        }
                    }
                    let rv = st.rv;
                    drop(st);
                    out.send(&lines)?;
                    st = shared.lock();
                    rv
                }
            };
            loop {
                let mut lines = Vec::new();
                for ev in st.events.iter().filter(|e| e.rv > cursor) {
                    if ev.resource == resource
                        && (!namespaced || ev.namespace == ns)
                        && matches(&ev.object, &query)
                    {
                        lines.extend(
                            format!("{}\n", json!({"type":ev.kind,"object":ev.object}))
                                .into_bytes(),
                        );
                    }
                }
                cursor = st.rv;
                if !lines.is_empty() {
                    drop(st);
                    out.send(&lines)?;
                    st = shared.lock();
                    continue;
                }
                if Instant::now() >= end {
                    return Ok(());
                }
                let (guard, timed_out) = shared
                    .changed
                    .wait_timeout(st, Duration::from_millis(500))
                    .unwrap_or_else(|p| p.into_inner());
                st = guard;
                if timed_out.timed_out() && bookmarks {
                    st.bookmarks += 1;
                    let mark = json!({"type":"BOOKMARK","object":{"kind":kind,"apiVersion":api_version,
                        "metadata":{"resourceVersion":cursor.to_string(),
                                    "annotations":{"k8s.io/initial-events-end":"true"}}}});
                    drop(st);
                    out.send(format!("{mark}\n").as_bytes())?;
                    st = shared.lock();
                }
            }
        }),
    }
}

fn pod_log(shared: &Arc<Shared>, req: &Request, ns: &str, name: &str) -> Response {
    if shared.get("pods", ns, name).is_none() {
        return status(404, "NotFound", format!("pods \"{name}\" not found"));
    }
    let key = format!("{ns}/{name}");
    if !shared.lock().logs.contains_key(&key) {
        return status(
            400,
            "BadRequest",
            format!("container \"ossb\" in pod \"{name}\" is waiting to start: ContainerCreating"),
        );
    }
    let follow = req.query.get("follow").is_some_and(|f| f == "true");
    if !follow {
        let data = shared
            .lock()
            .logs
            .get(&key)
            .map(|l| l.data.clone())
            .unwrap_or_default();
        return Response::Full {
            status: 200,
            content_type: "text/plain",
            body: data,
        };
    }
    let shared = shared.clone();
    Response::Stream {
        status: 200,
        content_type: "text/plain",
        body: Box::new(move |out| {
            let mut sent = 0;
            let mut st = shared.lock();
            loop {
                let (chunk, done) = match st.logs.get(&key) {
                    Some(l) => (l.data[sent..].to_vec(), l.done),
                    None => (Vec::new(), true),
                };
                if !chunk.is_empty() {
                    sent += chunk.len();
                    drop(st);
                    out.send(&chunk)?;
                    st = shared.lock();
                    continue;
                }
                if done {
                    return Ok(());
                }
                st = shared
                    .changed
                    .wait_timeout(st, Duration::from_millis(500))
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }),
    }
}
