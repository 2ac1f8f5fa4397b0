//! Finding the cluster: which credentials to use, in a fixed and logged order.
//!
//! 1. an explicit kubeconfig (`--kubeconfig PATH` or `K8S_KUBECONFIG`);
//! 2. the in-cluster service account (when running in a pod with a token mounted);
//! 3. `KUBECONFIG` (one path or a `:`-separated list, merged like kubectl);
//! 4. `~/.kube/config`.
//!
//! `--context` picks a kubeconfig context (and skips the in-cluster step, which has none).

use super::error::K8sError;
use std::path::PathBuf;

/// The environment variable naming an explicit kubeconfig (same as `--kubeconfig`).
pub const KUBECONFIG_OVERRIDE_ENV: &str = "K8S_KUBECONFIG";

/// How to reach the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientOptions {
    /// An explicit kubeconfig (`--kubeconfig`); `K8S_KUBECONFIG` when unset.
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (`--context`).
    pub context: Option<String>,
}

/// Where the client configuration came from (named in the log and in `ossb k8s health`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// `--kubeconfig` or `K8S_KUBECONFIG`.
    Explicit(PathBuf),
    /// The pod's service account.
    InCluster,
    /// `KUBECONFIG`.
    KubeconfigEnv(String),
    /// `~/.kube/config`.
    Home(PathBuf),
}

impl std::fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigSource::Explicit(p) => write!(f, "kubeconfig {} (explicit)", p.display()),
            ConfigSource::InCluster => write!(f, "in-cluster service account"),
            ConfigSource::KubeconfigEnv(v) => write!(f, "KUBECONFIG={v}"),
            ConfigSource::Home(p) => write!(f, "kubeconfig {}", p.display()),
        }
    }
}

/// A connected client and what it was made from.
#[derive(Clone)]
pub struct Cluster {
    /// The client.
    pub client: kube::Client,
    /// The API server URL (for messages).
    pub server: String,
    /// The default namespace of the context (or `default`).
    pub default_namespace: String,
    /// Where the configuration came from.
    pub source: ConfigSource,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("server", &self.server)
            .field("default_namespace", &self.default_namespace)
            .field("source", &self.source)
            .finish()
    }
}

fn in_cluster_available(env: &dyn Fn(&str) -> Option<String>) -> bool {
    env("KUBERNETES_SERVICE_HOST").is_some_and(|v| !v.is_empty())
        && std::path::Path::new("/var/run/secrets/kubernetes.io/serviceaccount/token").is_file()
}

async fn from_kubeconfig_file(
    path: &std::path::Path,
    opts: &ClientOptions,
) -> Result<kube::Config, K8sError> {
    let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| {
        K8sError::Config(format!(
            "cannot read the kubeconfig {}: {e}; pass a valid file with --kubeconfig",
            path.display()
        ))
    })?;
    from_kubeconfig(kc, opts, &path.display().to_string()).await
}

async fn from_kubeconfig(
    kc: kube::config::Kubeconfig,
    opts: &ClientOptions,
    shown: &str,
) -> Result<kube::Config, K8sError> {
    let options = kube::config::KubeConfigOptions {
        context: opts.context.clone(),
        cluster: None,
        user: None,
    };
    kube::Config::from_custom_kubeconfig(kc, &options)
        .await
        .map_err(|e| {
            let ctx = opts
                .context
                .as_deref()
                .map(|c| format!(" (context {c:?})"))
                .unwrap_or_default();
            K8sError::Config(format!(
                "cannot use the kubeconfig {shown}{ctx}: {e}; check the file and --context"
            ))
        })
}

/// Load the client configuration in the documented order; `env` is the process environment
/// (a parameter so tests can pass their own).
pub async fn load_config(
    opts: &ClientOptions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(kube::Config, ConfigSource), K8sError> {
    let explicit = opts.kubeconfig.clone().or_else(|| {
        env(KUBECONFIG_OVERRIDE_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    if let Some(path) = explicit {
        let config = from_kubeconfig_file(&path, opts).await?;
        return Ok((config, ConfigSource::Explicit(path)));
    }
    if opts.context.is_none() && in_cluster_available(env) {
        let config = kube::Config::incluster().map_err(|e| {
            K8sError::Config(format!(
                "cannot use the pod's service account: {e}; pass --kubeconfig to use another cluster"
            ))
        })?;
        return Ok((config, ConfigSource::InCluster));
    }
    if let Some(list) = env("KUBECONFIG").filter(|v| !v.is_empty()) {
        // Like kubectl: every file of the list, merged, the first one winning.
        let mut merged: Option<kube::config::Kubeconfig> = None;
        for path in list.split(':').filter(|p| !p.is_empty()) {
            let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| {
                K8sError::Config(format!(
                    "cannot read the kubeconfig {path} named in KUBECONFIG: {e}"
                ))
            })?;
            merged = Some(match merged {
                None => kc,
                Some(m) => m.merge(kc).map_err(|e| {
                    K8sError::Config(format!("cannot merge the files of KUBECONFIG: {e}"))
                })?,
            });
        }
        if let Some(kc) = merged {
            let config = from_kubeconfig(kc, opts, &format!("KUBECONFIG={list}")).await?;
            return Ok((config, ConfigSource::KubeconfigEnv(list)));
        }
    }
    if let Some(home) = env("HOME").filter(|h| !h.is_empty()) {
        let path = PathBuf::from(home).join(".kube/config");
        if path.is_file() {
            let config = from_kubeconfig_file(&path, opts).await?;
            return Ok((config, ConfigSource::Home(path)));
        }
    }
    Err(K8sError::Config(
        "no Kubernetes configuration found: tried --kubeconfig / K8S_KUBECONFIG, the in-cluster \
         service account, KUBECONFIG and ~/.kube/config; pass --kubeconfig PATH"
            .into(),
    ))
}

/// Load the configuration and make a client; the source is logged.
pub async fn connect(opts: &ClientOptions) -> Result<Cluster, K8sError> {
    let env = |k: &str| std::env::var(k).ok();
    let (config, source) = load_config(opts, &env).await?;
    let server = config.cluster_url.to_string();
    let default_namespace = config.default_namespace.clone();
    tracing::info!(
        component = "k8s",
        method = %source,
        server = %server,
        "Kubernetes client configured from {source}"
    );
    let client = kube::Client::try_from(config).map_err(|e| K8sError::Network {
        server: server.clone(),
        message: e.to_string(),
    })?;
    Ok(Cluster {
        client,
        server,
        default_namespace,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECONFIG: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: a\n  cluster:\n    server: http://127.0.0.1:1\n- name: b\n  cluster:\n    server: http://127.0.0.1:2\ncontexts:\n- name: one\n  context: {cluster: a, user: u, namespace: ns-one}\n- name: two\n  context: {cluster: b, user: u}\ncurrent-context: one\nusers:\n- name: u\n  user: {token: t}\n";

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    #[test]
    fn explicit_kubeconfig_wins_over_kubeconfig_env_and_context_selects_the_cluster() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("config");
        std::fs::write(&path, KUBECONFIG).expect("write");
        let env_path = path.display().to_string();
        let env = move |k: &str| match k {
            KUBECONFIG_OVERRIDE_ENV => Some(env_path.clone()),
            "KUBECONFIG" => Some("/nonexistent".into()),
            _ => None,
        };
        let rt = runtime();
        let (config, source) = rt
            .block_on(load_config(&ClientOptions::default(), &env))
            .expect("loads");
        assert_eq!(source, ConfigSource::Explicit(path.clone()));
        assert_eq!(config.default_namespace, "ns-one");
        assert_eq!(config.cluster_url.port_u16(), Some(1));
        let opts = ClientOptions {
            kubeconfig: Some(path),
            context: Some("two".into()),
        };
        let (config, _) = rt.block_on(load_config(&opts, &env)).expect("loads");
        assert_eq!(config.cluster_url.port_u16(), Some(2));
        assert_eq!(config.default_namespace, "default");
    }

    #[test]
    fn kubeconfig_env_then_home_then_a_clear_error() {
        let dir = tempfile::tempdir().expect("tmp");
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join(".kube")).expect("mkdir");
        std::fs::write(home.join(".kube/config"), KUBECONFIG).expect("write");
        let home_s = home.display().to_string();
        let env = move |k: &str| (k == "HOME").then(|| home_s.clone());
        let rt = runtime();
        let (_, source) = rt
            .block_on(load_config(&ClientOptions::default(), &env))
            .expect("loads");
        assert_eq!(source, ConfigSource::Home(home.join(".kube/config")));

        let other = dir.path().join("other");
        std::fs::write(&other, KUBECONFIG).expect("write");
        let (home_s, other_s) = (home.display().to_string(), other.display().to_string());
        let env = move |k: &str| match k {
            "HOME" => Some(home_s.clone()),
            "KUBECONFIG" => Some(other_s.clone()),
            _ => None,
        };
        let (_, source) = rt
            .block_on(load_config(&ClientOptions::default(), &env))
            .expect("loads");
        assert_eq!(
            source,
            ConfigSource::KubeconfigEnv(other.display().to_string())
        );

        let none = |_: &str| None;
        let err = rt
            .block_on(load_config(&ClientOptions::default(), &none))
            .expect_err("nothing configured");
        assert!(err.to_string().contains("--kubeconfig"), "{err}");
    }
}
