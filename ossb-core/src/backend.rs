//! The [`BuildBackend`] trait: run a [`BuildRequest`] locally or elsewhere (a cluster).

mod qualify;

use crate::error::{Error, ExitCode};
use crate::progress::ProgressSink;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where the Dockerfile comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum DockerfileSource {
    /// A file on disk (`-f PATH`); relative paths are relative to the current directory.
    Path(PathBuf),
    /// The Dockerfile's text (`-f -`, or embedded by a program).
    Inline(String),
}

/// Where a finished image goes (buildx's `--output`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Output {
    /// Keep it in the local store under the request's tags (the default).
    Store,
    /// An OCI image layout: a directory, or a tar file when `dest` ends in `.tar`.
    Oci {
        /// Directory or tar file.
        dest: PathBuf,
    },
    /// A docker-archive tar for `docker load` / `podman load`.
    Docker {
        /// The tar file.
        dest: PathBuf,
    },
    /// Push to a registry under the request's tags (or `name`).
    Registry {
        /// Overrides the tags when set.
        name: Option<String>,
    },
}

impl Output {
    /// Parse a buildx-style output spec: `type=oci,dest=DIR`, `type=docker,dest=FILE`,
    /// `type=registry[,name=REF]`, `type=image`, or a bare path (an OCI layout).
    pub fn parse(spec: &str) -> Result<Output, Error> {
        let bad = |why: String| {
            Error::new(
                ExitCode::Configuration,
                format!("invalid --output {spec:?}: {why}"),
            )
        };
        if !spec.contains('=') {
            if spec.is_empty() {
                return Err(bad("empty value".into()));
            }
            return Ok(Output::Oci { dest: spec.into() });
        }
        let mut fields = BTreeMap::new();
        for part in spec.split(',') {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| bad(format!("{part:?} is not key=value")))?;
            fields.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
        let dest = |fields: &BTreeMap<String, String>| -> Result<PathBuf, Error> {
            fields
                .get("dest")
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
                .ok_or_else(|| bad("this output type needs dest=PATH".into()))
        };
        match fields.get("type").map(String::as_str) {
            Some("oci") => Ok(Output::Oci {
                dest: dest(&fields)?,
            }),
            Some("docker") => Ok(Output::Docker {
                dest: dest(&fields)?,
            }),
            Some("registry") => Ok(Output::Registry {
                name: fields.get("name").cloned(),
            }),
            Some("image") => {
                let push = fields.get("push").map(|p| p == "true").unwrap_or(false);
                Ok(if push {
                    Output::Registry {
                        name: fields.get("name").cloned(),
                    }
                } else {
                    Output::Store
                })
            }
            Some(other) => Err(bad(format!(
                "unknown type {other:?} (supported: oci, docker, registry, image)"
            ))),
            None => Err(bad("missing type= (for example type=oci,dest=./out)".into())),
        }
    }
}

/// Where an exported build cache lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum CacheLocation {
    /// A registry repository and tag (`type=registry,ref=REPO[:TAG]`).
    Registry(String),
    /// An OCI layout directory (`type=local,dest=DIR` / `type=local,src=DIR`).
    Local(PathBuf),
}

/// Which steps a cache export holds (buildx's `mode=`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub enum CacheMode {
    /// Only the steps of the stages the final image is made of (the default).
    #[default]
    Min,
    /// The steps of every stage the build ran, intermediate stages included.
    Max,
}

/// `--cache-to`: export the build cache after the build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CacheExport {
    /// Where to.
    pub location: CacheLocation,
    /// Which steps.
    pub mode: CacheMode,
}

/// `--cache-from`: a build cache to use besides the local one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CacheImport {
    /// Where from.
    pub location: CacheLocation,
}

/// The `key=value` fields of a buildx-style spec, keys lower-cased.
fn spec_fields(
    spec: &str,
    bad: &dyn Fn(String) -> Error,
) -> Result<BTreeMap<String, String>, Error> {
    let mut fields = BTreeMap::new();
    for part in spec.split(',') {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| bad(format!("{part:?} is not key=value")))?;
        fields.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    Ok(fields)
}

/// The location of a cache spec: `type=registry,ref=…` or `type=local,<dir_key>=DIR`.
fn cache_location(
    fields: &BTreeMap<String, String>,
    dir_key: &str,
    bad: &dyn Fn(String) -> Error,
) -> Result<CacheLocation, Error> {
    let non_empty = |k: &str| fields.get(k).filter(|v| !v.is_empty()).cloned();
    match fields.get("type").map(String::as_str) {
        Some("registry") => non_empty("ref")
            .map(CacheLocation::Registry)
            .ok_or_else(|| bad("type=registry needs ref=REGISTRY/REPOSITORY[:TAG]".into())),
        Some("local") => non_empty(dir_key)
            .map(|d| CacheLocation::Local(d.into()))
            .ok_or_else(|| bad(format!("type=local needs {dir_key}=DIR"))),
        Some(other) => Err(bad(format!(
            "unknown type {other:?} (supported: registry, local)"
        ))),
        None => Err(bad(
            "missing type= (for example type=registry,ref=registry.example/app/cache)".into(),
        )),
    }
}

impl CacheExport {
    /// Parse `type=registry,ref=REPO[:TAG][,mode=min|max]` or `type=local,dest=DIR[,mode=…]`.
    pub fn parse(spec: &str) -> Result<CacheExport, Error> {
        let bad = |why: String| {
            Error::new(
                ExitCode::Configuration,
                format!("invalid --cache-to {spec:?}: {why}"),
            )
        };
        let fields = spec_fields(spec, &bad)?;
        let location = cache_location(&fields, "dest", &bad)?;
        let mode = match fields.get("mode").map(String::as_str) {
            None | Some("min") => CacheMode::Min,
            Some("max") => CacheMode::Max,
            Some(other) => return Err(bad(format!("mode={other}: use mode=min or mode=max"))),
        };
        Ok(CacheExport { location, mode })
    }
}

impl CacheImport {
    /// Parse `type=registry,ref=REPO[:TAG]` or `type=local,src=DIR`.
    pub fn parse(spec: &str) -> Result<CacheImport, Error> {
        let bad = |why: String| {
            Error::new(
                ExitCode::Configuration,
                format!("invalid --cache-from {spec:?}: {why}"),
            )
        };
        let fields = spec_fields(spec, &bad)?;
        Ok(CacheImport {
            location: cache_location(&fields, "src", &bad)?,
        })
    }
}

/// A build secret for `RUN --mount=type=secret` (`--secret id=ID,src=PATH|env=VAR`).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretSource {
    /// The secret id the Dockerfile refers to.
    pub id: String,
    /// Where the value comes from.
    pub from: SecretFrom,
}

/// Where a secret's value comes from. Values are never printed.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretFrom {
    /// A file.
    File(PathBuf),
    /// An environment variable of the OSSB process.
    Env(String),
}

impl std::fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let from = match &self.from {
            SecretFrom::File(p) => format!("file {}", p.display()),
            SecretFrom::Env(v) => format!("env {v}"),
        };
        f.debug_struct("SecretSource")
            .field("id", &self.id)
            .field("from", &from)
            .finish()
    }
}

/// Everything a build needs to know, independent of where it runs.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    /// The build context directory.
    pub context: PathBuf,
    /// The Dockerfile.
    pub dockerfile: DockerfileSource,
    /// Image names (`-t`), normalised later.
    pub tags: Vec<String>,
    /// `--build-arg` values.
    pub build_args: BTreeMap<String, String>,
    /// `--target` stage.
    pub target: Option<String>,
    /// Target platforms (`linux/amd64`); empty means the host platform.
    pub platforms: Vec<String>,
    /// `--label` values added to the image config.
    pub labels: BTreeMap<String, String>,
    /// Where results go; empty means [`Output::Store`].
    pub outputs: Vec<Output>,
    /// Ignore the cache.
    pub no_cache: bool,
    /// `--no-cache-filter`: stages (by name, or index as a number) that ignore the cache.
    pub no_cache_filter: Vec<String>,
    /// `--cache-from`: caches to use besides the store's own.
    pub cache_from: Vec<CacheImport>,
    /// `--cache-to`: where to export the cache after the build.
    pub cache_to: Vec<CacheExport>,
    /// `--cache-ttl`: cache records older than this are neither used nor exported.
    pub cache_ttl: Option<std::time::Duration>,
    /// `SOURCE_DATE_EPOCH`: clamp timestamps for reproducible digests.
    pub source_date_epoch: Option<i64>,
    /// Named build contexts (`--build-context name=value`).
    pub build_contexts: BTreeMap<String, String>,
    /// Build secrets.
    pub secrets: Vec<SecretSource>,
    /// Write the image digest here (`--iidfile`).
    pub iidfile: Option<PathBuf>,
    /// Write build metadata JSON here (`--metadata-file`).
    pub metadata_file: Option<PathBuf>,
    // --- multi-platform and buildx flags (issue #10) ---
    /// `--annotation` values for manifests, their index descriptors and the index.
    pub annotations: crate::image::annotations::Annotations,
    /// `--pull`: resolve base images in the registry even when the local store has a copy
    /// under that name.
    pub pull: bool,
    /// `--network`: the network of RUN steps without `--network` of their own.
    pub network: RunNetwork,
    // --- end multi-platform and buildx flags ---
    /// The registry for image names without a registry part (`FROM app`, `-t app`,
    /// `--cache-to type=registry,ref=app`, `docker-image://app`) instead of `docker.io`: the
    /// registry configuration's `default_registry`. Checked with
    /// [`crate::reference::validate_default_registry`] when the build starts.
    pub default_registry: Option<String>,
}

/// The default network of RUN steps (`--network`); `RUN --network=...` overrides it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub enum RunNetwork {
    /// The default: the host's network (OSSB gives RUN steps no network namespace of their
    /// own unless asked for `none`).
    #[default]
    Default,
    /// The host's network.
    Host,
    /// No network: only a loopback interface.
    None,
}

impl RunNetwork {
    /// Parse a `--network` value (`default`, `host`, `none`).
    pub fn parse(value: &str) -> Result<RunNetwork, Error> {
        match value {
            "default" => Ok(RunNetwork::Default),
            "host" => Ok(RunNetwork::Host),
            "none" => Ok(RunNetwork::None),
            other => Err(Error::new(
                ExitCode::Configuration,
                format!("invalid --network {other:?}: use default, host or none"),
            )),
        }
    }
}

impl BuildRequest {
    /// A request for `context` with the Dockerfile at `context/Dockerfile` and defaults elsewhere.
    pub fn new(context: impl Into<PathBuf>) -> Self {
        let context = context.into();
        BuildRequest {
            dockerfile: DockerfileSource::Path(context.join("Dockerfile")),
            context,
            tags: Vec::new(),
            build_args: BTreeMap::new(),
            target: None,
            platforms: Vec::new(),
            labels: BTreeMap::new(),
            outputs: Vec::new(),
            no_cache: false,
            no_cache_filter: Vec::new(),
            cache_from: Vec::new(),
            cache_to: Vec::new(),
            cache_ttl: None,
            source_date_epoch: None,
            build_contexts: BTreeMap::new(),
            secrets: Vec::new(),
            iidfile: None,
            metadata_file: None,
            // --- multi-platform and buildx flags (issue #10) ---
            annotations: Default::default(),
            pull: false,
            network: RunNetwork::Default,
            // --- end multi-platform and buildx flags ---
            default_registry: None,
        }
    }
}

/// The result of a successful build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuildOutcome {
    /// Digest of the image manifest (or of the index for multi-platform builds).
    pub image_digest: String,
    /// Digest of the image config (single-platform builds).
    pub config_digest: Option<String>,
    /// Normalised tags the image got.
    pub tags: Vec<String>,
    /// Steps executed or served from the cache.
    pub operations: usize,
    /// Steps served from the cache.
    pub cache_hits: usize,
    /// Bytes read: build context files and base or cached layer blobs.
    pub bytes_read: u64,
    /// Bytes of layer blobs written to the store.
    pub bytes_written: u64,
    /// How long each step took, in the order they finished.
    pub steps: Vec<StepTiming>,
}

/// The time one step took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepTiming {
    /// The stage's index in the Dockerfile.
    pub stage: usize,
    /// The step within the stage (0 is `FROM`).
    pub step: usize,
    /// The instruction as written (after expansion).
    pub instruction: String,
    /// Served from the cache.
    pub cache_hit: bool,
    /// Wall time in milliseconds.
    pub millis: u64,
}

/// Runs builds. `ossb-core` has the local backend; `ossb-k8s` sends builds to a cluster.
pub trait BuildBackend {
    /// Run one build, reporting progress to `progress`.
    fn build(
        &self,
        request: &BuildRequest,
        progress: &dyn ProgressSink,
    ) -> Result<BuildOutcome, Error>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_specs_parse_like_buildx() {
        assert_eq!(
            Output::parse("type=oci,dest=out").expect("valid"),
            Output::Oci { dest: "out".into() }
        );
        assert_eq!(
            Output::parse("type=docker,dest=img.tar").expect("valid"),
            Output::Docker {
                dest: "img.tar".into()
            }
        );
        assert_eq!(
            Output::parse("type=image,name=r/x,push=true").expect("valid"),
            Output::Registry {
                name: Some("r/x".into())
            }
        );
        assert_eq!(Output::parse("type=image").expect("valid"), Output::Store);
        assert_eq!(
            Output::parse("./dir").expect("valid"),
            Output::Oci {
                dest: "./dir".into()
            }
        );
    }

    #[test]
    fn bad_output_specs_are_configuration_errors_that_say_why() {
        for (spec, needle) in [
            ("type=oci", "dest=PATH"),
            ("type=tarball,dest=x", "unknown type"),
            ("dest=x", "missing type"),
            ("type=oci,dest", "not key=value"),
        ] {
            let err = Output::parse(spec).expect_err(spec);
            assert_eq!(err.exit_code(), ExitCode::Configuration);
            assert!(err.to_string().contains(needle), "{spec}: {err}");
        }
    }

    #[test]
    fn cache_specs_parse_like_buildx_and_mistakes_say_why() {
        assert_eq!(
            CacheExport::parse("type=registry,ref=r.example/app/cache:v1,mode=max").expect("valid"),
            CacheExport {
                location: CacheLocation::Registry("r.example/app/cache:v1".into()),
                mode: CacheMode::Max
            }
        );
        assert_eq!(
            CacheExport::parse("type=local,dest=/tmp/c").expect("valid"),
            CacheExport {
                location: CacheLocation::Local("/tmp/c".into()),
                mode: CacheMode::Min
            }
        );
        assert_eq!(
            CacheImport::parse("type=local,src=/tmp/c").expect("valid"),
            CacheImport {
                location: CacheLocation::Local("/tmp/c".into())
            }
        );
        for (spec, needle) in [
            ("type=registry", "ref="),
            ("type=local,src=x", "dest=DIR"),
            ("type=registry,ref=x,mode=all", "mode=min or mode=max"),
            ("type=gha", "unknown type"),
            ("ref=x", "missing type"),
        ] {
            let err = CacheExport::parse(spec).expect_err(spec);
            assert_eq!(err.exit_code(), ExitCode::Configuration);
            assert!(err.to_string().contains(needle), "{spec}: {err}");
        }
        let err = CacheImport::parse("type=local,dest=x").expect_err("needs src");
        assert!(err.to_string().contains("src=DIR"), "{err}");
    }

    #[test]
    fn secret_debug_never_shows_values() {
        let s = SecretSource {
            id: "tok".into(),
            from: SecretFrom::Env("TOKEN".into()),
        };
        let shown = format!("{s:?}");
        assert!(shown.contains("tok") && shown.contains("env TOKEN"));
    }
}
