//! `ossb build --backend kubernetes` end to end against a FAKE Kubernetes API server.
//!
//! No real cluster can run on this machine, so `fake_k8s` is an in-process fake API server
//! that speaks the real REST/JSON protocol over HTTP (see its module docs). The `ossb` binary
//! under test reaches it with the real `kube` client through a real kubeconfig file; the fake
//! kubelet runs each Job's container command as a local `ossb` process (the same binary) with
//! the ConfigMap and Secret volumes laid out as the kubelet does, and the build pushes to a
//! real registry (`docker-registry`). So the whole path runs: context upload into ConfigMaps ->
//! Job -> in-pod build -> streamed logs turned back into progress -> final status and exit code
//! -> cleanup.

mod common;
mod fake_k8s;

use common::Env;
use fake_k8s::FakeCluster;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const OSSB: &str = env!("CARGO_BIN_EXE_ossb");

fn tools() -> bool {
    ["docker-registry", "curl", "openssl"]
        .iter()
        .all(|t| ossb_testkit::require_tool(t))
}

struct Setup {
    env: Env,
    cluster: FakeCluster,
    kubeconfig: PathBuf,
    registry: ossb_testkit::Registry,
}

/// A registry and a fake cluster served over HTTPS (as real clusters are).
fn setup() -> Option<Setup> {
    setup_with(FakeCluster::start)
}

fn setup_with(start: fn(&Path) -> FakeCluster) -> Option<Setup> {
    if !tools() {
        return None;
    }
    let registry = ossb_testkit::Registry::start_plain().expect("registry starts");
    let cluster = start(Path::new(OSSB));
    let kubeconfig = cluster.kubeconfig("ci");
    Some(Setup {
        env: Env::new(),
        cluster,
        kubeconfig,
        registry,
    })
}

impl Setup {
    /// `ossb build --backend kubernetes` with the fake cluster's kubeconfig.
    fn build_cmd(&self, args: &[&str], context: &Path) -> Command {
        let mut c = Command::new(OSSB);
        c.arg("build")
            .args(["--backend", "kubernetes", "--kubeconfig"])
            .arg(&self.kubeconfig)
            .args(["--progress", "plain"])
            .args(args)
            .arg(context)
            .env("OSSB_ROOT", self.env.path("local-store"))
            .env("HOME", self.env.path("home"))
            .env_remove("KUBECONFIG")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("SOURCE_DATE_EPOCH")
            .env_remove("OSSB_TIMEOUT");
        c
    }

    fn build(&self, args: &[&str], context: &Path) -> Output {
        self.build_cmd(args, context).output().expect("ossb runs")
    }

    /// `ossb k8s ...` against the fake cluster.
    fn k8s(&self, args: &[&str]) -> Output {
        Command::new(OSSB)
            .arg("k8s")
            .args(args)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .env("HOME", self.env.path("home"))
            .output()
            .expect("ossb runs")
    }

    fn image(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.registry.host())
    }

    /// Nothing the build created is left (the pod goes once its process has stopped).
    fn assert_cleaned_up(&self) {
        for res in ["configmaps", "secrets", "jobs"] {
            assert!(
                self.cluster.objects(res).is_empty(),
                "{res} left: {:?}",
                self.cluster.objects(res)
            );
        }
        self.cluster.wait_for("the build pod to go", |st| {
            !st.objects.keys().any(|(r, _, _)| *r == "pods")
        });
    }

    /// Push a busybox base (built by ossb itself) for builds with RUN steps.
    fn push_busybox(&self) -> String {
        let base = self.env.path("bb-ctx");
        ossb_testkit::busybox_rootfs(&base.join("rootfs")).expect("busybox rootfs");
        std::fs::write(base.join("Dockerfile"), "FROM scratch\nCOPY rootfs/ /\n").expect("df");
        let name = self.image("base/busybox:latest");
        let out = Command::new(OSSB)
            .args(["build", "--progress", "quiet", "--push", "-t", &name])
            .arg(&base)
            .env("OSSB_ROOT", self.env.path("local-store"))
            .output()
            .expect("ossb runs");
        assert!(out.status.success(), "{}", text(&out.stderr));
        name
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn show(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// `curl` a registry URL; returns (HTTP code, Docker-Content-Digest, body).
fn registry_get(url: &str) -> (String, String, Vec<u8>) {
    let dir = tempfile::tempdir().expect("tmp");
    let body = dir.path().join("body");
    let out = Command::new("curl")
        .args(["-sS", "-o"])
        .arg(&body)
        .args(["-w", "%{http_code} %header{docker-content-digest}"])
        .args([
            "-H",
            "Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json",
        ])
        .arg(url)
        .output()
        .expect("curl runs");
    let line = text(&out.stdout);
    let (code, digest) = line.trim().split_once(' ').unwrap_or((line.trim(), ""));
    (
        code.to_string(),
        digest.to_string(),
        std::fs::read(&body).unwrap_or_default(),
    )
}

/// The paths in the image's layers.
fn image_files(registry: &str, repo: &str, reference: &str) -> Vec<String> {
    let (code, _, body) = registry_get(&format!(
        "http://{registry}/v2/{repo}/manifests/{reference}"
    ));
    assert_eq!(code, "200");
    let manifest: Value = serde_json::from_slice(&body).expect("manifest JSON");
    let mut files = Vec::new();
    for layer in manifest["layers"].as_array().expect("layers") {
        let digest = layer["digest"].as_str().expect("digest");
        let (code, _, blob) = registry_get(&format!("http://{registry}/v2/{repo}/blobs/{digest}"));
        assert_eq!(code, "200");
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&blob[..]));
        for entry in archive.entries().expect("tar") {
            let entry = entry.expect("entry");
            files.push(entry.path().expect("path").display().to_string());
        }
    }
    files
}

/// A context with nested, binary and executable files, and a .dockerignore.
fn app_context(env: &Env) -> PathBuf {
    let ctx = env.path("app");
    env.write(
        "app/Dockerfile",
        "FROM scratch\nCOPY app/ /app/\nCOPY bin.dat run.sh /data/\n",
    );
    env.write("app/app/config/app.conf", "key=value\n");
    env.write("app/run.sh", "#!/bin/sh\necho hi\n");
    std::fs::set_permissions(
        ctx.join("run.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    std::fs::write(ctx.join("bin.dat"), [0u8, 0xff, 0xfe, 1, 2, 3]).expect("binary");
    env.write("app/notes/secret.txt", "do not send\n");
    env.write("app/.dockerignore", "notes\n");
    ctx
}

#[test]
fn k8s_build_uploads_runs_streams_reports_and_cleans_up() {
    let Some(s) = setup() else { return };
    let ctx = app_context(&s.env);
    let secret_value = format!("s3cr3t-{}-value", std::process::id());
    let secret_file = s.env.write("tok", &secret_value);
    let image = s.image("team/app:1");
    let out = s.build(
        &[
            "--push",
            "-t",
            &image,
            "--secret",
            &format!("id=npm_token,src={}", secret_file.display()),
            "--build-arg",
            "VERSION=1.2",
            "--log-level",
            "info",
            "--iidfile",
            s.env.path("iid").to_str().expect("utf8"),
            "--metadata-file",
            s.env.path("meta.json").to_str().expect("utf8"),
        ],
        &ctx,
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let digest = text(&out.stdout).trim().to_string();
    // The result files are written here, from what the pod reported.
    assert_eq!(
        std::fs::read_to_string(s.env.path("iid")).expect("iidfile"),
        digest
    );
    let meta: Value =
        serde_json::from_slice(&std::fs::read(s.env.path("meta.json")).expect("metadata"))
            .expect("json");
    assert_eq!(meta["containerimage.digest"], digest.as_str());
    assert_eq!(meta["image.name"], image.as_str());
    assert!(digest.starts_with("sha256:"), "{}", show(&out));
    let stderr = text(&out.stderr);
    assert!(
        s.cluster.url.starts_with("https://"),
        "the cluster speaks TLS"
    );
    // The client named where its configuration came from.
    assert!(
        stderr.contains("Kubernetes client configured from kubeconfig"),
        "{stderr}"
    );
    // The pod's JSON log events came back as the same progress lines a local build prints.
    assert!(stderr.contains("COPY app/ /app/"), "{stderr}");
    assert!(stderr.contains("build started"), "{stderr}");

    // The registry has the image under that digest, with the context's files and not the
    // ignored one.
    let (code, served, _) = registry_get(&format!(
        "http://{}/v2/team/app/manifests/1",
        s.registry.host()
    ));
    assert_eq!((code.as_str(), served.as_str()), ("200", digest.as_str()));
    let files = image_files(s.registry.host(), "team/app", "1");
    for f in ["app/config/app.conf", "data/bin.dat", "data/run.sh"] {
        assert!(files.iter().any(|p| p.ends_with(f)), "{f} in {files:?}");
    }
    assert!(!files.iter().any(|p| p.contains("secret.txt")), "{files:?}");

    // What was sent: ConfigMaps with text in data, bytes in binaryData, nested paths in the
    // Job's volume items; the Job restricted and never retried.
    let cms = s.cluster.created("configmaps");
    assert_eq!(cms.len(), 1, "{cms:?}");
    let cm = &cms[0];
    // Owned by the Job (created suspended, started once its inputs existed), so Kubernetes
    // deletes them with it even if the runner dies.
    assert_eq!(cm["metadata"]["ownerReferences"][0]["kind"], "Job");
    assert_eq!(
        cm["metadata"]["ownerReferences"][0]["name"],
        s.cluster.created("jobs")[0]["metadata"]["name"]
    );
    assert_eq!(s.cluster.created("jobs")[0]["spec"]["suspend"], true);
    assert!(
        s.cluster
            .requests()
            .iter()
            .any(|r| r.starts_with("PATCH /apis/batch/v1/namespaces/ci/jobs/")),
        "resumed"
    );
    assert!(
        cm["data"]
            .as_object()
            .expect("data")
            .values()
            .any(|v| v == "key=value\n")
    );
    assert_eq!(cm["binaryData"].as_object().expect("binaryData").len(), 1);
    assert!(!cm.to_string().contains("do not send"));
    let jobs = s.cluster.created("jobs");
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    assert_eq!(job["spec"]["backoffLimit"], 0);
    assert_eq!(job["spec"]["activeDeadlineSeconds"], 600);
    assert_eq!(job["spec"]["ttlSecondsAfterFinished"], 3600);
    let build_id = job["metadata"]["name"].as_str().expect("name");
    assert_eq!(job["metadata"]["labels"]["ossb.dev/build-id"], build_id);
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["automountServiceAccountToken"], false);
    let c = &pod["containers"][0];
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
    assert_eq!(c["resources"]["requests"]["memory"], "1Gi");
    let items: Vec<&Value> = pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .flat_map(|v| v["projected"]["sources"].as_array().into_iter().flatten())
        .flat_map(|src| src["configMap"]["items"].as_array().into_iter().flatten())
        .collect();
    let item = |path: &str| {
        items
            .iter()
            .find(|i| i["path"] == path)
            .unwrap_or_else(|| panic!("no item for {path}: {items:?}"))
    };
    assert!(item("app/config/app.conf")["mode"].is_null());
    assert_eq!(item("run.sh")["mode"], 0o755, "executable mode kept");
    let args = c["args"].to_string();
    assert!(args.contains("\"VERSION=1.2\""), "{args}");
    // The build secret went into a Secret, mounted at the in-pod path, never into a log.
    let secrets = s.cluster.created("secrets");
    assert_eq!(secrets.len(), 1);
    assert!(
        c["volumeMounts"]
            .to_string()
            .contains("/var/run/secrets/build-secrets")
    );
    let pod_logs: String = s
        .cluster
        .shared
        .lock()
        .logs
        .values()
        .map(|l| text(&l.data))
        .collect();
    assert!(
        pod_logs.contains("\"component\":\"job_status\""),
        "{pod_logs}"
    );
    for shown in [&stderr, &text(&out.stdout), &pod_logs] {
        assert!(!shown.contains(&secret_value), "the secret leaked");
    }

    // Permissions were checked first, and the Job was followed with the watch API from a
    // resourceVersion (resumed when the server ended a watch), not by polling.
    let requests = s.cluster.requests();
    let first_create = requests
        .iter()
        .position(|r| r.starts_with("POST /api/v1/namespaces/ci/configmaps"))
        .expect("configmap created");
    let reviews = requests[..first_create]
        .iter()
        .filter(|r| r.contains("selfsubjectaccessreviews"))
        .count();
    assert!(reviews >= 10, "{requests:#?}");
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with("GET /apis/batch/v1/namespaces/ci/jobs")
                && r.contains("watch=true")
                && r.contains("resourceVersion=")),
        "{requests:#?}"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.contains("/log") && r.contains("follow=true")),
        "{requests:#?}"
    );
    s.assert_cleaned_up();
}

#[test]
fn k8s_build_failure_ends_with_the_pods_exit_code_and_message() {
    let Some(s) = setup() else { return };
    s.env
        .write("bad/Dockerfile", "FROM scratch\nCOPY missing.txt /\n");
    let out = s.build(
        &["--push", "-t", &s.image("team/bad:1")],
        &s.env.path("bad"),
    );
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("the build failed in the cluster (exit code 2)"),
        "{stderr}"
    );
    assert!(stderr.contains("missing.txt"), "{stderr}");
    s.assert_cleaned_up();
}

#[test]
fn k8s_build_timeout_ends_with_exit_7_and_cleans_up() {
    let Some(s) = setup() else { return };
    let base = s.push_busybox();
    s.env
        .write("slow/Dockerfile", &format!("FROM {base}\nRUN sleep 300\n"));
    let out = s.build(
        &["--push", "-t", &s.image("team/slow:1"), "--timeout", "8s"],
        &s.env.path("slow"),
    );
    assert_eq!(out.status.code(), Some(7), "{}", show(&out));
    let job = &s.cluster.created("jobs")[0];
    assert_eq!(job["spec"]["activeDeadlineSeconds"], 8);
    // The build outlived the server's watch window: the watch was resumed, each time from
    // the last resourceVersion seen (kept current by bookmarks), never from scratch.
    let versions: Vec<u64> = s
        .cluster
        .requests()
        .iter()
        .filter(|r| {
            r.starts_with("GET /apis/batch/v1/namespaces/ci/jobs") && r.contains("watch=true")
        })
        .map(|r| {
            let v = r
                .split("resourceVersion=")
                .nth(1)
                .expect("resumed with a resourceVersion");
            v.split(' ')
                .next()
                .unwrap_or_default()
                .parse()
                .expect("numeric resourceVersion")
        })
        .collect();
    assert!(versions.len() >= 2, "resumed: {versions:?}");
    assert!(
        versions.windows(2).all(|w| w[0] <= w[1]) && versions[0] > 0,
        "{versions:?}"
    );
    assert!(
        s.cluster
            .requests()
            .iter()
            .filter(|r| r.contains("watch=true"))
            .all(|r| r.contains("allowWatchBookmarks=true")),
        "bookmarks requested: {:#?}",
        s.cluster.requests()
    );
    assert!(s.cluster.shared.lock().bookmarks > 0, "bookmarks sent");
    s.assert_cleaned_up();
}

#[test]
fn k8s_build_cancelled_by_sigterm_deletes_the_job_and_stops_the_pod() {
    let Some(s) = setup() else { return };
    let base = s.push_busybox();
    s.env
        .write("long/Dockerfile", &format!("FROM {base}\nRUN sleep 300\n"));
    let child = s
        .build_cmd(
            &["--push", "-t", &s.image("team/long:1")],
            &s.env.path("long"),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ossb starts");
    // Wait until the pod runs the RUN step.
    s.cluster.wait_for("the RUN step to start", |st| {
        st.logs
            .values()
            .any(|l| text(&l.data).contains("RUN sleep 300"))
    });
    let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
    let out = child.wait_with_output().expect("ossb ends");
    assert_eq!(out.status.code(), Some(8), "{}", show(&out));
    assert!(
        text(&out.stderr).contains("cancelled (SIGTERM)"),
        "{}",
        show(&out)
    );
    // The Job's deletion stopped the in-pod build with SIGTERM.
    s.cluster
        .wait_for("the pod's process to get SIGTERM", |st| {
            !st.sigtermed.is_empty()
        });
    s.assert_cleaned_up();
}

#[test]
fn k8s_preflight_names_the_missing_permission_and_creates_nothing() {
    let Some(s) = setup() else { return };
    let ctx = app_context(&s.env);
    s.cluster.deny("create jobs");
    let out = s.build(&["--push", "-t", &s.image("team/app:1")], &ctx);
    assert_eq!(out.status.code(), Some(4), "{}", show(&out));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("cannot create jobs.batch in namespace \"ci\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("{apiGroups: [\"batch\"], resources: [\"jobs\"], verbs: [\"create\"]}"),
        "{stderr}"
    );
    assert!(
        !s.cluster
            .requests()
            .iter()
            .any(|r| r.starts_with("POST /api/v1/namespaces") || r.starts_with("POST /apis/batch")),
        "nothing created: {:#?}",
        s.cluster.requests()
    );
    // `ossb k8s health` reports the same.
    let health = s.k8s(&["health"]);
    assert_eq!(health.status.code(), Some(4), "{}", show(&health));
    assert!(
        text(&health.stdout).contains("create jobs.batch"),
        "{}",
        show(&health)
    );
}

#[test]
fn k8s_context_too_large_fails_before_contacting_the_cluster() {
    let Some(s) = setup() else { return };
    let ctx = s.env.path("big");
    s.env.write("big/Dockerfile", "FROM scratch\nCOPY . /\n");
    for i in 0..10 {
        std::fs::write(ctx.join(format!("blob{i}.bin")), vec![i as u8; 1000 * 1024]).expect("blob");
    }
    let out = s.build(&["--push", "-t", &s.image("team/big:1")], &ctx);
    assert_eq!(out.status.code(), Some(5), "{}", show(&out));
    let stderr = text(&out.stderr);
    assert!(stderr.contains(".dockerignore"), "{stderr}");
    assert!(stderr.contains("--max-context-size"), "{stderr}");
    assert!(
        s.cluster.requests().is_empty(),
        "{:?}",
        s.cluster.requests()
    );
    // Excluding the blobs makes it fit.
    s.env.write("big/.dockerignore", "*.bin\n");
    let out = s.build(&["--push", "-t", &s.image("team/big:1")], &ctx);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
}

#[test]
fn k8s_unreachable_cluster_is_a_clear_error() {
    let Some(s) = setup() else { return };
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let text_cfg = std::fs::read_to_string(&s.kubeconfig)
        .expect("kubeconfig")
        .replace(&s.cluster.url, &format!("http://127.0.0.1:{port}"));
    let dead = s.env.write("dead-kubeconfig", &text_cfg);
    let ctx = app_context(&s.env);
    let out = Command::new(OSSB)
        .args([
            "build",
            "--backend",
            "kubernetes",
            "--push",
            "-t",
            "r.example/x:1",
        ])
        .arg(&ctx)
        .env("K8S_KUBECONFIG", &dead)
        .output()
        .expect("ossb runs");
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "cannot reach the Kubernetes API server at http://127.0.0.1:{port}"
        )),
        "{stderr}"
    );
}

#[test]
fn k8s_tag_by_content_skips_a_build_whose_image_exists() {
    let Some(s) = setup() else { return };
    let ctx = app_context(&s.env);
    let repo = format!("{}/ci", s.registry.host());
    let args = ["--tag-by-content", &repo, "--content-tag", "4h"];
    let first = s.build(&args, &ctx);
    assert_eq!(first.status.code(), Some(0), "{}", show(&first));
    let name = text(&first.stdout).trim().to_string();
    let prefix = format!("{repo}/ossb-");
    assert!(name.starts_with(&prefix) && name.ends_with(":4h"), "{name}");
    let hash = &name[prefix.len()..name.len() - 3];
    assert_eq!(hash.len(), 16);
    assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()), "{hash}");
    let (code, _, _) = registry_get(&format!(
        "http://{}/v2/ci/ossb-{hash}/manifests/4h",
        s.registry.host()
    ));
    assert_eq!(code, "200");
    assert_eq!(s.cluster.created("jobs").len(), 1);

    // Same inputs: the same name, and no Job at all.
    let again = s.build(&args, &ctx);
    assert_eq!(again.status.code(), Some(0), "{}", show(&again));
    assert_eq!(text(&again.stdout).trim(), name);
    assert!(
        text(&again.stderr).contains("build skipped"),
        "{}",
        show(&again)
    );
    assert_eq!(s.cluster.created("jobs").len(), 1, "no second Job");

    // A changed file: a new name and a build.
    s.env.write("app/app/config/app.conf", "key=other\n");
    let changed = s.build(&args, &ctx);
    assert_eq!(changed.status.code(), Some(0), "{}", show(&changed));
    assert_ne!(text(&changed.stdout).trim(), name);
    assert_eq!(s.cluster.created("jobs").len(), 2);
}

#[test]
fn k8s_kept_builds_can_be_listed_inspected_and_deleted() {
    let Some(s) = setup() else { return };
    let ctx = app_context(&s.env);
    let out = s.build(&["--push", "-t", &s.image("team/app:2"), "--keep"], &ctx);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(text(&out.stderr).contains("--keep"), "{}", show(&out));
    let job = s.cluster.objects("jobs");
    assert_eq!(job.len(), 1, "kept");
    let name = job[0]["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_string();
    assert!(!s.cluster.objects("configmaps").is_empty(), "kept");

    let list = s.k8s(&["list"]);
    assert!(list.status.success(), "{}", show(&list));
    assert!(text(&list.stdout).contains(&name), "{}", show(&list));
    let status = s.k8s(&["status", &name, "--json"]);
    assert!(status.status.success(), "{}", show(&status));
    let v: Value = serde_json::from_slice(&status.stdout).expect("json");
    assert_eq!(v["state"], "Succeeded");
    assert_eq!(v["exit_code"], 0);
    let logs = s.k8s(&["logs", &name]);
    assert!(logs.status.success(), "{}", show(&logs));
    assert!(text(&logs.stdout).contains("\"component\":\"job_status\""));
    let health = s.k8s(&["health"]);
    assert!(health.status.success(), "{}", show(&health));
    assert!(
        text(&health.stdout).contains("v1.33.0-fake"),
        "{}",
        show(&health)
    );

    let del = s.k8s(&["delete", &name]);
    assert!(del.status.success(), "{}", show(&del));
    assert!(text(&del.stdout).contains(&format!("deleted job/{name}")));
    s.assert_cleaned_up();
    let missing = s.k8s(&["status", &name]);
    assert_eq!(missing.status.code(), Some(5), "{}", show(&missing));
}

#[test]
fn k8s_unpullable_image_is_reported_in_plain_words() {
    let Some(s) = setup() else { return };
    let ctx = app_context(&s.env);
    let out = s.build(
        &[
            "--push",
            "-t",
            &s.image("team/app:3"),
            "--image",
            "registry.example/unpullable/ossb:none",
        ],
        &ctx,
    );
    assert_eq!(out.status.code(), Some(5), "{}", show(&out));
    assert!(
        text(&out.stderr).contains("the cluster cannot pull the OSSB image"),
        "{}",
        show(&out)
    );
    s.assert_cleaned_up();
}

#[test]
fn k8s_per_build_namespace_is_created_and_deleted_over_plain_http() {
    // An API server over plain HTTP, as `kubectl proxy` serves it.
    let Some(s) = setup_with(FakeCluster::start_plain) else {
        return;
    };
    assert!(s.cluster.url.starts_with("http://"));
    let ctx = app_context(&s.env);
    let out = s.build(
        &[
            "--push",
            "-t",
            &s.image("team/app:4"),
            "--namespace-per-build",
        ],
        &ctx,
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let created = s.cluster.created("namespaces");
    assert_eq!(created.len(), 1, "{created:?}");
    let ns = created[0]["metadata"]["name"].as_str().expect("name");
    assert!(ns.starts_with("ossb-"));
    assert!(
        !s.cluster
            .objects("namespaces")
            .iter()
            .any(|n| n["metadata"]["name"] == ns),
        "deleted"
    );
    s.assert_cleaned_up();
}

#[test]
fn k8s_unschedulable_pod_is_reported_and_ends_at_the_deadline() {
    let Some(s) = setup() else { return };
    let ctx = app_context(&s.env);
    let out = s.build(
        &[
            "--push",
            "-t",
            &s.image("team/app:5"),
            "--node-selector",
            "disktype=ssd",
            "--timeout",
            "3s",
        ],
        &ctx,
    );
    assert_eq!(out.status.code(), Some(7), "{}", show(&out));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("the build pod cannot be scheduled yet: 0/1 nodes are available"),
        "{stderr}"
    );
    assert!(
        stderr.contains("while the pod was still unschedulable"),
        "{stderr}"
    );
    let job = &s.cluster.created("jobs")[0];
    assert_eq!(
        job["spec"]["template"]["spec"]["nodeSelector"]["disktype"],
        "ssd"
    );
    s.assert_cleaned_up();
}

#[test]
fn k8s_oom_killed_build_says_so_and_names_the_limit_flag() {
    let Some(s) = setup() else { return };
    let ctx = app_context(&s.env);
    let out = s.build(
        &[
            "--push",
            "-t",
            &s.image("team/app:6"),
            "--limits",
            "memory=32Mi",
        ],
        &ctx,
    );
    assert_eq!(out.status.code(), Some(6), "{}", show(&out));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("ran out of memory"), "{stderr}");
    assert!(stderr.contains("memory limit 32Mi"), "{stderr}");
    assert!(stderr.contains("--limits memory="), "{stderr}");
    s.assert_cleaned_up();
}

#[test]
fn k8s_registry_secret_is_mounted_for_an_authenticated_push() {
    if !tools() || !ossb_testkit::require_tool("htpasswd") {
        return;
    }
    let password = format!("Pw-{}-k8s", std::process::id());
    let registry =
        ossb_testkit::Registry::start_tls_htpasswd("builder", &password).expect("registry");
    let cluster = FakeCluster::start(Path::new(OSSB));
    let s = Setup {
        env: Env::new(),
        kubeconfig: cluster.kubeconfig("ci"),
        cluster,
        registry,
    };
    // The Secret an operator made with `kubectl create secret docker-registry regcred`.
    use base64::Engine;
    let b64 = |t: &str| base64::engine::general_purpose::STANDARD.encode(t);
    let config = serde_json::json!({"auths": {s.registry.host(): {
        "username": "builder", "password": password,
        "auth": b64(&format!("builder:{password}"))}}});
    {
        let mut st = s.cluster.shared.lock();
        s.cluster.shared.put(
            &mut st,
            "secrets",
            "ci",
            serde_json::json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
                "metadata": {"name": "regcred", "namespace": "ci", "uid": "uid-regcred"},
                "data": {".dockerconfigjson": b64(&config.to_string())}}),
        );
    }
    let ctx = app_context(&s.env);
    let image = s.image("team/auth:1");
    let denied = s.build(&["--push", "-t", &image], &ctx);
    assert_eq!(denied.status.code(), Some(4), "{}", show(&denied));
    let out = s.build(
        &["--push", "-t", &image, "--registry-secret", "regcred"],
        &ctx,
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let digest = text(&out.stdout).trim().to_string();
    let check = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %header{docker-content-digest}",
        ])
        .arg("--cacert")
        .arg(s.registry.ca_cert_path().expect("ca"))
        .arg("-u")
        .arg(format!("builder:{password}"))
        .args(["-H", "Accept: application/vnd.oci.image.manifest.v1+json"])
        .arg(format!(
            "https://{}/v2/team/auth/manifests/1",
            s.registry.host()
        ))
        .output()
        .expect("curl");
    assert_eq!(text(&check.stdout).trim(), format!("200 {digest}"));
    let job = &s.cluster.created("jobs")[1];
    let pod = &job["spec"]["template"]["spec"];
    assert!(
        pod["volumes"]
            .to_string()
            .contains("\"secretName\":\"regcred\"")
    );
    assert!(
        pod["containers"][0]["volumeMounts"]
            .to_string()
            .contains("/var/run/secrets/registry-secret")
    );
    for o in [&denied, &out] {
        assert!(!text(&o.stderr).contains(&password) && !text(&o.stdout).contains(&password));
    }
    // The operator's Secret is not the build's to delete.
    assert_eq!(s.cluster.objects("secrets").len(), 1);
    for res in ["configmaps", "jobs"] {
        assert!(s.cluster.objects(res).is_empty(), "{res} left");
    }

    // In a per-build namespace the build uses a copy, gone with the namespace.
    let image = s.image("team/auth:2");
    let out = s.build(
        &[
            "--push",
            "-t",
            &image,
            "--registry-secret",
            "regcred",
            "--namespace-per-build",
        ],
        &ctx,
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let copies: Vec<Value> = s
        .cluster
        .created("secrets")
        .into_iter()
        .filter(|c| c["metadata"]["name"] == "regcred")
        .collect();
    assert_eq!(copies.len(), 1, "one copy");
    assert_ne!(copies[0]["metadata"]["namespace"], "ci");
    assert_eq!(copies[0]["type"], "kubernetes.io/dockerconfigjson");
    assert_eq!(s.cluster.objects("secrets").len(), 1, "the copy is gone");
}

#[test]
fn k8s_expired_watch_starts_over_from_a_fresh_list() {
    let Some(s) = setup() else { return };
    let ctx = app_context(&s.env);
    // The first two watches (job and pod) find their resourceVersion compacted away.
    s.cluster.shared.lock().expire_watches = 2;
    let out = s.build(&["--push", "-t", &s.image("team/app:7")], &ctx);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(s.cluster.shared.lock().expire_watches, 0, "both expired");
    let lists = s
        .cluster
        .requests()
        .iter()
        .filter(|r| r.starts_with("GET /apis/batch/v1/namespaces/ci/jobs") && !r.contains("watch="))
        .count();
    assert!(
        lists >= 2,
        "listed again after 410 Gone: {:#?}",
        s.cluster.requests()
    );
    s.assert_cleaned_up();
}

#[test]
fn k8s_context_from_a_persistent_volume_claim_is_not_uploaded() {
    let Some(s) = setup() else { return };
    // The claim's volume, with the context in src/app.
    s.env.write(
        "volume/src/app/Dockerfile",
        "FROM scratch\nCOPY . /from-pvc/\n",
    );
    s.env
        .write("volume/src/app/lib/code.txt", "on the volume\n");
    {
        let mut st = s.cluster.shared.lock();
        let dir = s.env.path("volume").display().to_string();
        s.cluster.shared.put(
            &mut st,
            "persistentvolumeclaims",
            "ci",
            serde_json::json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": "sources", "namespace": "ci",
                             "annotations": {"fake.ossb.dev/host-path": dir}},
                "spec": {"accessModes": ["ReadOnlyMany"]}}),
        );
    }
    let empty = s.env.path("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let out = s.build(
        &[
            "--push",
            "-t",
            &s.image("team/pvc:1"),
            "--context-pvc",
            "sources:src/app",
        ],
        &empty,
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        s.cluster.created("configmaps").is_empty(),
        "nothing uploaded"
    );
    let files = image_files(s.registry.host(), "team/pvc", "1");
    assert!(
        files.iter().any(|f| f.ends_with("from-pvc/lib/code.txt")),
        "{files:?}"
    );
    let job = &s.cluster.created("jobs")[0];
    let mounts = job["spec"]["template"]["spec"]["containers"][0]["volumeMounts"].to_string();
    assert!(mounts.contains("\"subPath\":\"src/app\""), "{mounts}");
    s.assert_cleaned_up();

    let bad = s.build(
        &[
            "--push",
            "-t",
            &s.image("team/pvc:2"),
            "--context-pvc",
            "sources:../x",
        ],
        &empty,
    );
    assert_eq!(bad.status.code(), Some(5), "{}", show(&bad));
}

#[test]
fn k8s_multi_platform_build_runs_one_job_per_architecture_and_pushes_an_index() {
    let Some(s) = setup() else { return };
    let ctx = app_context(&s.env);
    let image = s.image("team/multi:1");
    let out = s.build(
        &[
            "--push",
            "-t",
            &image,
            "--platform",
            "linux/amd64,linux/arm64",
            "--keep",
        ],
        &ctx,
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let digest = text(&out.stdout).trim().to_string();
    assert!(text(&out.stderr).contains("-linux-arm64"), "{}", show(&out));
    // One Job per platform, each pinned to nodes of its architecture.
    let jobs = s.cluster.created("jobs");
    assert_eq!(jobs.len(), 2);
    let mut arches: Vec<String> = jobs
        .iter()
        .map(|j| {
            let sel = &j["spec"]["template"]["spec"]["nodeSelector"]["kubernetes.io/arch"];
            let args = j["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
            let arch = sel.as_str().expect("arch selector").to_string();
            assert!(args.contains(&format!("\"linux/{arch}\"")), "{args}");
            arch
        })
        .collect();
    arches.sort();
    assert_eq!(arches, ["amd64", "arm64"]);
    // The tag names an index of both images.
    let (code, served, body) = registry_get(&format!(
        "http://{}/v2/team/multi/manifests/1",
        s.registry.host()
    ));
    assert_eq!((code.as_str(), served.as_str()), ("200", digest.as_str()));
    let index: Value = serde_json::from_slice(&body).expect("index JSON");
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let mut platforms: Vec<String> = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap_or(""),
                m["platform"]["architecture"].as_str().unwrap_or("")
            )
        })
        .collect();
    platforms.sort();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    for m in index["manifests"].as_array().expect("manifests") {
        let d = m["digest"].as_str().expect("digest");
        let (code, _, config) = registry_get(&format!(
            "http://{}/v2/team/multi/manifests/{d}",
            s.registry.host()
        ));
        assert_eq!(code, "200");
        let manifest: Value = serde_json::from_slice(&config).expect("manifest");
        let cfg = manifest["config"]["digest"]
            .as_str()
            .expect("config digest");
        let (_, _, cfg) = registry_get(&format!(
            "http://{}/v2/team/multi/blobs/{cfg}",
            s.registry.host()
        ));
        let cfg: Value = serde_json::from_slice(&cfg).expect("config");
        assert_eq!(
            cfg["architecture"], m["platform"]["architecture"],
            "each image is built for its platform"
        );
    }
    // Kept (--keep): `ossb k8s delete BUILD-ID` removes both Jobs and the ConfigMaps.
    let build_id = jobs[0]["metadata"]["labels"]["ossb.dev/build-id"]
        .as_str()
        .expect("build id")
        .to_string();
    assert_eq!(s.cluster.objects("jobs").len(), 2, "kept");
    let del = s.k8s(&["delete", &build_id]);
    assert!(del.status.success(), "{}", show(&del));
    assert_eq!(
        text(&del.stdout).matches("deleted job/").count(),
        2,
        "{}",
        show(&del)
    );
    s.assert_cleaned_up();
}

#[test]
fn k8s_git_context_is_cloned_in_the_pod_by_an_init_container() {
    let Some(s) = setup() else { return };
    if !ossb_testkit::require_tool("git") {
        return;
    }
    // A repository with the context in services/api on a branch `release`.
    let repo = s.env.path("repo");
    s.env.write(
        "repo/services/api/Dockerfile",
        "FROM scratch\nCOPY . /from-git/\n",
    );
    s.env
        .write("repo/services/api/main.txt", "from the repository\n");
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@example.invalid",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .current_dir(&repo)
            .output()
            .expect("git runs");
        assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-qm", "context"]);
    git(&["branch", "release"]);
    let url = format!("file://{}", repo.display());
    let empty = s.env.path("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let out = s.build(
        &[
            "--push",
            "-t",
            &s.image("team/git:1"),
            "--context-git",
            &format!("{url}#release:services/api"),
        ],
        &empty,
    );
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        s.cluster.created("configmaps").is_empty(),
        "nothing uploaded"
    );
    let files = image_files(s.registry.host(), "team/git", "1");
    assert!(
        files.iter().any(|f| f.ends_with("from-git/main.txt")),
        "{files:?}"
    );
    let job = &s.cluster.created("jobs")[0];
    let init = &job["spec"]["template"]["spec"]["initContainers"][0];
    assert_eq!(init["command"][0], "git");
    assert_eq!(init["securityContext"]["runAsNonRoot"], true);
    s.assert_cleaned_up();

    // A branch that does not exist: the clone fails and says why.
    let out = s.build(
        &[
            "--push",
            "-t",
            &s.image("team/git:2"),
            "--context-git",
            &format!("{url}#nope"),
        ],
        &empty,
    );
    assert_eq!(out.status.code(), Some(5), "{}", show(&out));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("could not be fetched in the cluster"),
        "{stderr}"
    );
    assert!(stderr.contains("nope"), "{stderr}");
    s.assert_cleaned_up();
}
