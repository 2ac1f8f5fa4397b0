//! Applying [`BuildRequest::default_registry`] to the image names a request carries.
//!
//! The names given on the command line (`-t`, `--output type=registry,name=…`, cache refs,
//! `docker-image://` build contexts) are rewritten once, before the build, to fully qualified
//! references; everything after that parses them as usual and cannot put a short name on
//! Docker Hub by mistake. Names in the Dockerfile (`FROM`, `COPY --from`) are qualified by
//! the planner through [`crate::plan::PlanOptions::default_registry`].

use super::{BuildRequest, CacheLocation, Output};
use crate::error::{Error, ExitCode};
use crate::reference::{DEFAULT_REGISTRY, Reference, validate_default_registry};
use std::borrow::Cow;

/// The `docker-image://` scheme of `--build-context` values.
const DOCKER_IMAGE: &str = "docker-image://";

impl BuildRequest {
    /// The default registry, checked and normalised (`index.docker.io` -> `docker.io`);
    /// `None` when names without a registry part mean Docker Hub.
    pub fn checked_default_registry(&self) -> Result<Option<String>, Error> {
        let Some(raw) = &self.default_registry else {
            return Ok(None);
        };
        let registry = validate_default_registry(raw).map_err(|e| {
            Error::new(
                ExitCode::Configuration,
                format!(
                    "invalid default registry {raw:?} (default_registry in the registry configuration, --default-registry or OSSB_DEFAULT_REGISTRY): {e}"
                ),
            )
        })?;
        Ok((registry != DEFAULT_REGISTRY).then_some(registry))
    }

    /// This request with every image name it carries qualified with the default registry
    /// (`-t app` -> `registry.internal:5000/app:latest`); the request itself when there is no
    /// default registry other than Docker Hub.
    ///
    /// A `--build-context` whose name is a short image name (`app=./dir`) is also made
    /// available under the qualified name, because the planner qualifies `FROM app` too.
    pub fn qualified(&self) -> Result<Cow<'_, BuildRequest>, Error> {
        let Some(registry) = self.checked_default_registry()? else {
            return Ok(Cow::Borrowed(self));
        };
        let default = Some(registry.as_str());
        let qualify = |flag: &str, name: &str| -> Result<String, Error> {
            Reference::parse_with_default(name, default)
                .map(|r| r.to_string())
                .map_err(|e| {
                    // The class an invalid name has without a default registry, too.
                    let class = Error::from(e.clone()).exit_code();
                    Error::new(
                        class,
                        format!("{flag} {name:?} with the default registry {registry}: {e}"),
                    )
                })
        };
        let mut out = self.clone();
        for tag in &mut out.tags {
            *tag = qualify("-t", tag)?;
        }
        for output in &mut out.outputs {
            if let Output::Registry { name: Some(names) } = output {
                *names = names
                    .split(',')
                    .map(|n| qualify("--output name=", n))
                    .collect::<Result<Vec<_>, _>>()?
                    .join(",");
            }
        }
        for import in &mut out.cache_from {
            if let CacheLocation::Registry(r) = &mut import.location {
                *r = qualify("--cache-from ref=", r)?;
            }
        }
        for export in &mut out.cache_to {
            if let CacheLocation::Registry(r) = &mut export.location {
                *r = qualify("--cache-to ref=", r)?;
            }
        }
        for (name, value) in out.build_contexts.iter_mut() {
            if let Some(image) = value.strip_prefix(DOCKER_IMAGE) {
                let flag = format!("--build-context {name}={DOCKER_IMAGE}");
                *value = format!("{DOCKER_IMAGE}{}", qualify(&flag, image)?);
            }
        }
        // Names that are short image names get their qualified alias (not replacing a
        // context given under that name explicitly).
        let aliases: Vec<(String, String)> = out
            .build_contexts
            .iter()
            .filter(|(name, _)| {
                Reference::parse(name).is_ok_and(|r| r.registry == DEFAULT_REGISTRY)
            })
            .filter_map(|(name, value)| {
                let r = Reference::parse_with_default(name, default).ok()?;
                (r.registry == registry).then(|| (r.to_string(), value.clone()))
            })
            .collect();
        for (alias, value) in aliases {
            out.build_contexts.entry(alias).or_insert(value);
        }
        Ok(Cow::Owned(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{CacheExport, CacheImport, CacheMode};

    fn request() -> BuildRequest {
        let mut r = BuildRequest::new("/ctx");
        r.tags = vec!["app".into(), "ghcr.io/o/app:1".into()];
        r.outputs = vec![Output::Registry {
            name: Some("team/x:2,docker.io/y".into()),
        }];
        r.cache_from = vec![CacheImport {
            location: CacheLocation::Registry("cache".into()),
        }];
        r.cache_to = vec![CacheExport {
            location: CacheLocation::Registry("cache:v2".into()),
            mode: CacheMode::Max,
        }];
        r.build_contexts
            .insert("base".into(), "docker-image://team/base:3".into());
        r.build_contexts.insert("src".into(), "./src".into());
        r
    }

    #[test]
    fn without_a_default_registry_nothing_changes() {
        let r = request();
        assert!(matches!(r.qualified(), Ok(Cow::Borrowed(_))));
        let mut hub = request();
        hub.default_registry = Some("index.docker.io".into());
        assert!(matches!(hub.qualified(), Ok(Cow::Borrowed(_))));
    }

    #[test]
    fn short_names_go_to_the_default_registry() {
        let mut r = request();
        r.default_registry = Some("registry.internal:5000".into());
        let q = r.qualified().expect("qualifies").into_owned();
        assert_eq!(
            q.tags,
            ["registry.internal:5000/app:latest", "ghcr.io/o/app:1"]
        );
        assert_eq!(
            q.outputs,
            [Output::Registry {
                name: Some("registry.internal:5000/team/x:2,docker.io/library/y:latest".into())
            }]
        );
        assert_eq!(
            q.cache_from[0].location,
            CacheLocation::Registry("registry.internal:5000/cache:latest".into())
        );
        assert_eq!(
            q.cache_to[0].location,
            CacheLocation::Registry("registry.internal:5000/cache:v2".into())
        );
        assert_eq!(
            q.build_contexts["base"],
            "docker-image://registry.internal:5000/team/base:3"
        );
        // `FROM src` is planned as registry.internal:5000/src:latest and must still find it.
        assert_eq!(
            q.build_contexts["registry.internal:5000/src:latest"],
            "./src"
        );
        assert_eq!(q.build_contexts["src"], "./src");
    }

    #[test]
    fn a_bad_default_registry_is_a_configuration_error() {
        let mut r = request();
        r.default_registry = Some("https://registry.internal".into());
        let e = r.qualified().expect_err("invalid");
        assert_eq!(e.exit_code(), ExitCode::Configuration);
        let msg = e.to_string();
        assert!(
            msg.contains("default_registry") && msg.contains("scheme"),
            "{msg}"
        );
    }

    #[test]
    fn a_name_too_long_with_the_default_registry_names_the_flag() {
        let mut r = BuildRequest::new("/ctx");
        r.tags = vec!["a".repeat(250)];
        r.default_registry = Some("registry.internal:5000".into());
        let msg = r.qualified().expect_err("too long").to_string();
        assert!(msg.starts_with("-t ") && msg.contains("255"), "{msg}");
    }
}
