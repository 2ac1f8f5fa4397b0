//! Command-line arguments (clap derive), named like `docker buildx build` where a flag exists there.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Build OCI container images from Dockerfiles, without a daemon and without privileges.
#[derive(Debug, Parser)]
#[command(name = "ossb", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Log format: auto (JSON in a Kubernetes pod, text elsewhere), json or text.
    #[arg(long, global = true, value_enum, default_value_t = LogFormatArg::Auto, env = "OSSB_LOG_FORMAT")]
    pub log_format: LogFormatArg,
    /// Log level: debug, info, warn or error (default: info in a Kubernetes pod, where logs are
    /// collected; warn elsewhere, where progress lines tell the story).
    #[arg(long, global = true, env = "LOG_LEVEL")]
    pub log_level: Option<String>,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// `--log-format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormatArg {
    /// JSON in a Kubernetes pod, text elsewhere.
    Auto,
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Text,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build an image (one per platform, with an index, for several) from a Dockerfile and a
    /// context directory or standard input.
    Build(Box<BuildArgs>),
    /// Inspect a Dockerfile without building it.
    #[command(subcommand)]
    Dockerfile(DockerfileCommand),
    /// Report what this machine or pod allows for RUN steps (user namespaces, overlayfs, uid
    /// ranges, binfmt handlers), in plain words or JSON.
    Doctor {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Push an image from the local store to a registry.
    Push(PushArgs),
    /// List the images in the local store.
    Images {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print an image's manifest and config from the local store (JSON).
    Inspect {
        /// Image name or digest.
        image: String,
    },
    /// Remove image names from the local store (the blobs go at the next prune).
    Rm {
        /// Image names or digests.
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Delete blobs no image or cache record needs, and leftovers of interrupted builds.
    Prune {
        /// Also drop the build cache.
        #[arg(long)]
        cache: bool,
    },
    /// Builds sent to a Kubernetes cluster (`ossb build --backend kubernetes`): status, logs,
    /// deletion, listing, and a health check of the cluster connection.
    #[command(subcommand)]
    K8s(K8sCommand),
    /// Print version information.
    Version,
    /// Print a shell completion script (`ossb completions bash > /etc/bash_completion.d/ossb`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// How to reach the cluster (shared by `ossb build --backend kubernetes` and `ossb k8s`).
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// The namespace (default: the kubeconfig context's, else `default`).
    #[arg(long, short = 'n', value_name = "NS", env = "OSSB_K8S_NAMESPACE")]
    pub namespace: Option<String>,
    /// The kubeconfig file; wins over the in-cluster service account, KUBECONFIG and
    /// ~/.kube/config.
    #[arg(long, value_name = "PATH", env = "K8S_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long = "context", id = "kube_context", value_name = "CTX")]
    pub kube_context: Option<String>,
}

/// `ossb k8s ...`
#[derive(Debug, Subcommand)]
pub enum K8sCommand {
    /// The state of one build job.
    Status {
        /// The job (the build id printed when the build started).
        job: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// The build pod's log.
    Logs {
        /// The job.
        job: String,
        /// Keep following the log while the pod runs.
        #[arg(long, short = 'f')]
        follow: bool,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Delete a build: its job and pod, ConfigMaps, Secret, and its own namespace if it had one.
    Delete {
        /// The job.
        job: String,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// The builds OSSB made in the namespace.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Check the cluster is reachable and the identity may run builds.
    Health {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
}

/// `--backend` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    /// Build on this machine.
    Local,
    /// Send the build to a Kubernetes cluster as a Job.
    Kubernetes,
}

/// `ossb build` flags of the Kubernetes backend.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Kubernetes backend (--backend kubernetes)")]
pub struct K8sBuildArgs {
    /// Where the build runs.
    #[arg(long, value_enum, default_value_t = BackendArg::Local, env = "OSSB_BACKEND")]
    pub backend: BackendArg,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Run the build in its own namespace, created for it and deleted afterwards.
    #[arg(long)]
    pub namespace_per_build: bool,
    /// The OSSB image the Job runs.
    #[arg(long, value_name = "IMAGE", env = "OSSB_K8S_IMAGE", default_value = ossb_k8s::backend::options::DEFAULT_IMAGE)]
    pub image: String,
    /// The build pod's service account.
    #[arg(long, value_name = "NAME")]
    pub service_account: Option<String>,
    /// A `kubernetes.io/dockerconfigjson` Secret in the namespace with the registry credentials.
    #[arg(long, value_name = "NAME")]
    pub registry_secret: Option<String>,
    /// Resource requests (`cpu=500m,memory=1Gi,ephemeral-storage=2Gi` by default).
    #[arg(long, value_name = "K=V,...", value_delimiter = ',')]
    pub requests: Vec<String>,
    /// Resource limits (`memory=4Gi,ephemeral-storage=20Gi` by default).
    #[arg(long, value_name = "K=V,...", value_delimiter = ',')]
    pub limits: Vec<String>,
    /// Node selector labels for the build pod (`K=V`, repeatable).
    #[arg(long = "node-selector", value_name = "K=V")]
    pub node_selector: Vec<String>,
    /// Seconds a finished Job stays before Kubernetes deletes it.
    #[arg(long, value_name = "SECONDS", default_value_t = ossb_k8s::backend::options::DEFAULT_TTL_AFTER_FINISHED)]
    pub ttl_after_finished: i32,
    /// Leave the Job, its pod and the ConfigMaps in the cluster for debugging.
    #[arg(long)]
    pub keep: bool,
    /// Build from an existing PersistentVolumeClaim in the namespace (`CLAIM[:SUBPATH]`)
    /// instead of uploading CONTEXT; the Dockerfile is the one on the volume unless -f is given.
    #[arg(long, value_name = "CLAIM[:SUBPATH]")]
    pub context_pvc: Option<String>,
    /// Build from a git repository cloned in the pod (`URL#REF:SUBDIR`, REF a branch or tag)
    /// instead of uploading CONTEXT; the Dockerfile is the repository's unless -f is given.
    #[arg(long, value_name = "URL#REF:SUBDIR", conflicts_with = "context_pvc")]
    pub context_git: Option<String>,
    /// The image with `git` that clones --context-git.
    #[arg(long, value_name = "IMAGE", default_value = ossb_k8s::backend::options::DEFAULT_GIT_IMAGE)]
    pub git_image: String,
    /// Largest build context sent as ConfigMaps (bytes or `16Mi`).
    #[arg(long, value_name = "SIZE", default_value = "8Mi")]
    pub max_context_size: String,
    /// Name the image `REPO/PREFIX-<16 hex of the inputs' sha256>:TAG` and skip the build when
    /// the registry has it.
    #[arg(long, value_name = "REPO")]
    pub tag_by_content: Option<String>,
    /// The name prefix for --tag-by-content.
    #[arg(long, value_name = "PREFIX", default_value = "ossb")]
    pub content_prefix: String,
    /// The tag for --tag-by-content: a TTL such as `4h` or `24h` for registries that expire
    /// images by tag, or any tag.
    #[arg(long, value_name = "TAG", default_value = "latest")]
    pub content_tag: String,
}

/// `ossb dockerfile ...`
#[derive(Debug, Subcommand)]
pub enum DockerfileCommand {
    /// Print the Dockerfile's syntax tree in BuildKit's dump format.
    Dump {
        /// The Dockerfile (`-` for standard input).
        #[arg(short = 'f', long = "file", default_value = "Dockerfile")]
        file: PathBuf,
    },
    /// Print the resolved build graph: stages, dependencies and expanded arguments.
    Plan(PlanArgs),
}

/// `ossb dockerfile plan` arguments.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The Dockerfile (`-` for standard input).
    #[arg(short = 'f', long = "file", default_value = "Dockerfile")]
    pub file: PathBuf,
    /// Build-time variables (`KEY=VALUE`, or `KEY` to take the value from the environment).
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_args: Vec<String>,
    /// The stage to build.
    #[arg(long)]
    pub target: Option<String>,
    /// The target platform (`linux/amd64`).
    #[arg(long)]
    pub platform: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,
    /// Registry configuration file; only its `default_registry` matters here.
    #[arg(long, value_name = "PATH", env = "OSSB_REGISTRY_CONFIG")]
    pub registry_config: Option<PathBuf>,
    /// The registry for image names without a registry part (`FROM app`, `-t app`) instead
    /// of docker.io; overrides `default_registry` in the registry configuration.
    #[arg(
        long = "default-registry",
        value_name = "HOST[:PORT]",
        env = "OSSB_DEFAULT_REGISTRY"
    )]
    pub default_registry: Option<String>,
}

/// `--format` of `ossb dockerfile plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    /// For people.
    Text,
    /// For programs.
    Json,
}

/// `--compression` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompressionArg {
    /// gzip, parallel, readable by every tool.
    Gzip,
    /// zstd (OCI media type `tar+zstd`).
    Zstd,
    /// No compression.
    Uncompressed,
}

/// `--progress` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressArg {
    /// A live view on a terminal, plain lines otherwise.
    Auto,
    /// The live view.
    Tty,
    /// Timestamped lines.
    Plain,
    /// One JSON event per line on standard output.
    Json,
    /// Nothing but errors.
    Quiet,
}

/// `--network` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NetworkArg {
    /// The default (the host's network).
    Default,
    /// The host's network.
    Host,
    /// No network (loopback only).
    None,
}

/// `ossb build` arguments.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The build context directory, or `-` to read a tar archive (plain, gzip, bzip2, xz or
    /// zstd) or a lone Dockerfile from standard input.
    pub context: PathBuf,
    /// The Dockerfile (default: CONTEXT/Dockerfile; `-` for standard input).
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Name and optionally a tag (`name:tag`); repeatable.
    #[arg(short = 't', long = "tag")]
    pub tags: Vec<String>,
    /// Build-time variables (`KEY=VALUE`, or `KEY` to take the value from the environment).
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_args: Vec<String>,
    /// The stage to build.
    #[arg(long)]
    pub target: Option<String>,
    /// Target platform(s), comma-separated (`linux/amd64,linux/arm64`).
    #[arg(long, value_delimiter = ',')]
    pub platform: Vec<String>,
    /// Labels to add to the image (`KEY=VALUE`).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Do not use the cache (every step runs; the results are still recorded).
    #[arg(long)]
    pub no_cache: bool,
    /// Ignore the cache for these stages only (`AS` names or indexes); repeatable.
    #[arg(long = "no-cache-filter", value_name = "STAGE[,STAGE]")]
    pub no_cache_filter: Vec<String>,
    /// Also use this exported cache: `type=registry,ref=REGISTRY/REPO[:TAG]` or
    /// `type=local,src=DIR`; repeatable. An unreadable cache is a warning, not an error.
    #[arg(long = "cache-from", value_name = "SPEC")]
    pub cache_from: Vec<String>,
    /// Export the build cache after the build: `type=registry,ref=REGISTRY/REPO[:TAG]` or
    /// `type=local,dest=DIR`, with `mode=min` (the final image's steps, the default) or
    /// `mode=max` (every stage's steps); repeatable. A failed export exits with code 3 (4
    /// when the registry refused the credentials).
    #[arg(long = "cache-to", value_name = "SPEC")]
    pub cache_to: Vec<String>,
    /// Cache records older than this are neither used nor exported (Go duration: `24h`,
    /// `168h`).
    #[arg(long = "cache-ttl", value_name = "DURATION", env = "OSSB_CACHE_TTL")]
    pub cache_ttl: Option<String>,
    /// Output destination (`type=oci,dest=DIR`, `type=docker,dest=FILE`, `type=registry`).
    #[arg(short = 'o', long = "output", value_name = "SPEC")]
    pub outputs: Vec<String>,
    /// Push the image to its registry (same as `--output type=registry`).
    #[arg(long)]
    pub push: bool,
    /// Write the image digest to this file.
    #[arg(long)]
    pub iidfile: Option<PathBuf>,
    /// Write build result metadata (JSON) to this file.
    #[arg(long)]
    pub metadata_file: Option<PathBuf>,
    /// Timestamp for reproducible images (seconds since the epoch).
    #[arg(long, env = "SOURCE_DATE_EPOCH")]
    pub source_date_epoch: Option<i64>,
    /// Additional named contexts (`name=oci-layout://DIR`, `name=docker-image://REF`, `name=DIR`).
    #[arg(long = "build-context", value_name = "NAME=VALUE")]
    pub build_contexts: Vec<String>,
    /// Secrets for `RUN --mount=type=secret` (`id=ID,src=PATH` or `id=ID,env=VAR`).
    #[arg(long = "secret", value_name = "SPEC")]
    pub secrets: Vec<String>,
    /// Progress output.
    #[arg(long, value_enum, default_value_t = ProgressArg::Auto)]
    pub progress: ProgressArg,
    /// Registries to reach over plain HTTP or without TLS verification (loopback ones are by
    /// default).
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure_registries: Vec<String>,
    /// Layer compression: gzip (the default, readable everywhere), zstd, or uncompressed.
    #[arg(long, value_enum, default_value_t = CompressionArg::Gzip)]
    pub compression: CompressionArg,
    /// Compression level (gzip 1-9, default 6; zstd 1-19, default 3).
    #[arg(long, value_name = "N")]
    pub compression_level: Option<i32>,
    /// How RUN steps are isolated: auto (the best rung of the execution ladder that works
    /// here, see `ossb doctor`), full, reduced, chroot or ptrace.
    #[arg(
        long,
        value_name = "auto|full|reduced|chroot|ptrace",
        default_value = "auto",
        env = "OSSB_SANDBOX"
    )]
    pub sandbox: ossb_core::exec::sandbox::SandboxMode,
    /// Threads for compression and uploads (default: the number of cores).
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Cancel the build after this long (Go duration: `90s`, `10m`, `1h30m`); exit code 7.
    #[arg(long, value_name = "DURATION", env = "OSSB_TIMEOUT")]
    pub timeout: Option<String>,
    /// Registry configuration file (YAML: default_registry, registries, insecure, mirrors).
    #[arg(long, value_name = "PATH", env = "OSSB_REGISTRY_CONFIG")]
    pub registry_config: Option<PathBuf>,
    /// An extra CA certificate (PEM) trusted for every registry, besides the system roots;
    /// loopback registries that speak TLS are then verified too.
    #[arg(long = "tls-ca", value_name = "PATH", env = "OSSB_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    // --- multi-platform and buildx flags (issue #10) ---
    /// Add an annotation (`[TYPE[PLATFORMS]:]KEY=VALUE`; TYPE is manifest (the default),
    /// manifest-descriptor, index or index-descriptor); repeatable.
    #[arg(long = "annotation", value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,
    /// Always resolve base images in the registry, even when the local store has an image of
    /// that name.
    #[arg(long)]
    pub pull: bool,
    /// The network of RUN steps that do not set `--network` themselves.
    #[arg(long, value_enum, default_value_t = NetworkArg::Default)]
    pub network: NetworkArg,
    /// Print nothing but the image digest (progress off).
    #[arg(short = 'q', long)]
    pub quiet: bool,
    // --- end multi-platform and buildx flags ---
    /// The registry for image names without a registry part (`FROM app`, `-t app`) instead
    /// of docker.io; overrides `default_registry` in the registry configuration.
    #[arg(
        long = "default-registry",
        value_name = "HOST[:PORT]",
        env = "OSSB_DEFAULT_REGISTRY"
    )]
    pub default_registry: Option<String>,
    #[command(flatten)]
    pub k8s: K8sBuildArgs,
}

/// `ossb push` arguments.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The image in the local store (a tag given to `ossb build -t`).
    pub image: String,
    /// Where to push it (default: the same name).
    pub destination: Option<String>,
    /// Registries to reach over plain HTTP or without TLS verification (loopback ones are by
    /// default).
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure_registries: Vec<String>,
    /// An extra CA certificate (PEM) trusted for every registry, besides the system roots;
    /// loopback registries that speak TLS are then verified too.
    #[arg(long = "tls-ca", value_name = "PATH", env = "OSSB_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// Registry configuration file (YAML: default_registry, registries with credentials, CA
    /// files and insecure flags, insecure; mirrors are for pulls and not used by a push).
    #[arg(long, value_name = "PATH", env = "OSSB_REGISTRY_CONFIG")]
    pub registry_config: Option<PathBuf>,
    /// The registry for image names without a registry part (`FROM app`, `-t app`) instead
    /// of docker.io; overrides `default_registry` in the registry configuration.
    #[arg(
        long = "default-registry",
        value_name = "HOST[:PORT]",
        env = "OSSB_DEFAULT_REGISTRY"
    )]
    pub default_registry: Option<String>,
}
