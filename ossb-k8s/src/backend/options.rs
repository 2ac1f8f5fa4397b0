//! What the cluster backend can be told, with the defaults the CLI documents.

use super::client::ClientOptions;
use std::collections::BTreeMap;
use std::time::Duration;

/// The OSSB image the Job runs (`--image`, `OSSB_K8S_IMAGE`).
pub const DEFAULT_IMAGE: &str = "ossb/ossb:latest";
/// The image that clones a git context (`--git-image`).
pub const DEFAULT_GIT_IMAGE: &str = "alpine/git:latest";
/// The build's time limit when `--timeout` is not given.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a finished Job stays before Kubernetes deletes it (`ttlSecondsAfterFinished`).
pub const DEFAULT_TTL_AFTER_FINISHED: i32 = 3600;

/// Where the build runs and how the Job looks.
#[derive(Debug, Clone)]
pub struct KubernetesOptions {
    /// How to reach the cluster.
    pub client: ClientOptions,
    /// The namespace (default: the kubeconfig context's, else `default`). With
    /// [`KubernetesOptions::namespace_per_build`] it only holds nothing; the build gets its own.
    pub namespace: Option<String>,
    /// Create a namespace for this build and delete it afterwards.
    pub namespace_per_build: bool,
    /// The OSSB image the Job runs.
    pub image: String,
    /// The pod's service account (none: the namespace's `default`).
    pub service_account: Option<String>,
    /// A `kubernetes.io/dockerconfigjson` Secret in the namespace, mounted as the registry
    /// credentials (`/var/run/secrets/registry-secret`).
    pub registry_secret: Option<String>,
    /// Resource requests (`cpu`, `memory`, `ephemeral-storage`).
    pub requests: BTreeMap<String, String>,
    /// Resource limits.
    pub limits: BTreeMap<String, String>,
    /// The build's time limit: the Job's `activeDeadlineSeconds`; OSSB in the pod stops a
    /// little earlier so it can report the timeout itself (exit 7).
    pub timeout: Duration,
    /// `ttlSecondsAfterFinished` of the Job (`None`: never deleted by Kubernetes).
    pub ttl_after_finished: Option<i32>,
    /// Leave the Job, its pod and the ConfigMaps for debugging.
    pub keep: bool,
    /// Registries the pod reaches over plain HTTP (`--insecure-registry`).
    pub insecure_registries: Vec<String>,
    /// More `ossb build` flags for the pod (compression, jobs).
    pub extra_args: Vec<String>,
    /// Largest context sent as ConfigMaps, in bytes.
    pub max_context_bytes: u64,
    /// Name the image by its content and skip builds whose image exists.
    pub content_tag: Option<ContentTag>,
    /// Build from an existing PersistentVolumeClaim instead of uploading the context.
    pub context_pvc: Option<PvcContext>,
    /// Build from a git repository, cloned in the pod by an init container.
    pub context_git: Option<GitContext>,
    /// The image with `git` for [`KubernetesOptions::context_git`].
    pub git_image: String,
    /// Extra node selector labels (a single-platform build also gets `kubernetes.io/arch`).
    pub node_selector: BTreeMap<String, String>,
    /// Stop and clean up on SIGINT/SIGTERM of this process (the CLI sets it; a program that
    /// embeds the backend may prefer [`super::CancelHandle`]).
    pub handle_signals: bool,
}

impl Default for KubernetesOptions {
    fn default() -> Self {
        KubernetesOptions {
            client: ClientOptions::default(),
            namespace: None,
            namespace_per_build: false,
            image: DEFAULT_IMAGE.into(),
            service_account: None,
            registry_secret: None,
            requests: default_requests(),
            limits: default_limits(),
            timeout: DEFAULT_TIMEOUT,
            ttl_after_finished: Some(DEFAULT_TTL_AFTER_FINISHED),
            keep: false,
            insecure_registries: Vec::new(),
            extra_args: Vec::new(),
            max_context_bytes: super::upload::DEFAULT_MAX_CONTEXT,
            content_tag: None,
            context_pvc: None,
            context_git: None,
            git_image: DEFAULT_GIT_IMAGE.into(),
            node_selector: BTreeMap::new(),
            handle_signals: false,
        }
    }
}

impl KubernetesOptions {
    /// The flag of the context that is already in (or fetched by) the cluster, if any.
    pub fn remote_context(&self) -> Option<&'static str> {
        if self.context_pvc.is_some() {
            Some("--context-pvc")
        } else if self.context_git.is_some() {
            Some("--context-git")
        } else {
            None
        }
    }

    /// The Dockerfile comes with the remote context (no `-f` given).
    pub fn dockerfile_in_remote_context(&self) -> bool {
        self.context_pvc
            .as_ref()
            .map(|p| p.dockerfile_in_claim)
            .or(self.context_git.as_ref().map(|g| g.dockerfile_in_repo))
            .unwrap_or(false)
    }
}

/// Default requests: half a core, 1 GiB of memory, 2 GiB of disk.
pub fn default_requests() -> BTreeMap<String, String> {
    [
        ("cpu", "500m"),
        ("memory", "1Gi"),
        ("ephemeral-storage", "2Gi"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Default limits: 4 GiB of memory, 20 GiB of disk, no CPU limit (throttling only slows builds).
pub fn default_limits() -> BTreeMap<String, String> {
    [("memory", "4Gi"), ("ephemeral-storage", "20Gi")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `--tag-by-content REPO`: the image is `REPO/PREFIX-<16 hex>:TAG`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentTag {
    /// Registry and path (`registry.example.com/ci`, `ttl.sh`).
    pub repository: String,
    /// Name prefix (default `ossb`).
    pub prefix: String,
    /// The tag: a TTL such as `4h` for registries that expire images by tag, else `latest`.
    pub tag: String,
}

/// `--context-pvc CLAIM[:SUBPATH]`: the context is already in the cluster, on a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PvcContext {
    /// The PersistentVolumeClaim in the build's namespace.
    pub claim: String,
    /// The directory on the volume (none: its root).
    pub sub_path: Option<String>,
    /// The Dockerfile is on the volume (`Dockerfile` in the context); otherwise the request's
    /// Dockerfile is read here and sent in a ConfigMap.
    pub dockerfile_in_claim: bool,
}

impl PvcContext {
    /// Parse `CLAIM[:SUBPATH]`.
    pub fn parse(spec: &str, dockerfile_in_claim: bool) -> Option<PvcContext> {
        let (claim, sub) = match spec.split_once(':') {
            Some((c, s)) => (
                c,
                Some(s.trim_matches('/').to_string()).filter(|s| !s.is_empty()),
            ),
            None => (spec, None),
        };
        if claim.is_empty()
            || sub
                .as_deref()
                .is_some_and(|s| s.split('/').any(|c| c == ".."))
        {
            return None;
        }
        Some(PvcContext {
            claim: claim.to_string(),
            sub_path: sub,
            dockerfile_in_claim,
        })
    }
}

/// `--context-git URL#REF:SUBDIR`: a repository cloned in the pod (Docker's git context syntax).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitContext {
    /// The repository URL.
    pub url: String,
    /// A branch or tag (none: the default branch).
    pub reference: Option<String>,
    /// The directory in the repository (none: its root).
    pub subdir: Option<String>,
    /// The Dockerfile is in the repository; otherwise the request's is sent in a ConfigMap.
    pub dockerfile_in_repo: bool,
}

impl GitContext {
    /// Parse `URL[#REF][:SUBDIR]`.
    pub fn parse(spec: &str, dockerfile_in_repo: bool) -> Option<GitContext> {
        let (url, fragment) = match spec.split_once('#') {
            Some((u, f)) => (u, Some(f)),
            None => (spec, None),
        };
        let (reference, subdir) = match fragment {
            Some(f) => match f.split_once(':') {
                Some((r, d)) => (r, Some(d)),
                None => (f, None),
            },
            None => ("", None),
        };
        let subdir = subdir
            .map(|d| d.trim_matches('/').to_string())
            .filter(|d| !d.is_empty());
        let bad = url.is_empty()
            || url.starts_with('-')
            || reference.starts_with('-')
            || subdir
                .as_deref()
                .is_some_and(|d| d.split('/').any(|c| c == ".."));
        (!bad).then(|| GitContext {
            url: url.to_string(),
            reference: Some(reference.to_string()).filter(|r| !r.is_empty()),
            subdir,
            dockerfile_in_repo,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_contexts_parse_like_docker() {
        let g = GitContext::parse("https://git.example/app.git#v1.2:services/api", true)
            .expect("valid");
        assert_eq!(g.url, "https://git.example/app.git");
        assert_eq!(g.reference.as_deref(), Some("v1.2"));
        assert_eq!(g.subdir.as_deref(), Some("services/api"));
        let g = GitContext::parse("https://git.example/app.git", true).expect("valid");
        assert_eq!((g.reference, g.subdir), (None, None));
        assert!(GitContext::parse("https://x/y.git#main:../up", true).is_none());
        assert!(GitContext::parse("--upload-pack=x", true).is_none());
    }
}
