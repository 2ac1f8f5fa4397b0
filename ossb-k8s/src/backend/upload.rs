//! The build context as ConfigMaps: read after `.dockerignore`, packed into ConfigMaps under
//! the API's size limit, with `items` that put every key back at its nested path.
//!
//! ConfigMap keys may only hold `[-._a-zA-Z0-9]`, so each file gets a key `f<N>` and a volume
//! item `{key: f<N>, path: <relative path>, mode}`; text goes into `data`, anything that is not
//! UTF-8 into `binaryData`. Everything is sized before a single request is sent.

use ossb_core::backend::{BuildRequest, DockerfileSource};
use ossb_core::exec::ContextKind;
use ossb_core::{Error, ExitCode};
use std::collections::BTreeMap;

/// The API server refuses a ConfigMap whose values add up to more than 1 MiB.
pub const CONFIGMAP_LIMIT: u64 = 1024 * 1024;
/// What OSSB puts into one ConfigMap: the limit less room for keys and metadata.
pub const CONFIGMAP_BUDGET: u64 = CONFIGMAP_LIMIT - 64 * 1024;
/// The default total context size sent as ConfigMaps (`--max-context-size`).
pub const DEFAULT_MAX_CONTEXT: u64 = 8 * 1024 * 1024;

/// One file of the context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextFile {
    /// Path relative to the context, `/`-separated.
    pub path: String,
    /// The content.
    pub data: Vec<u8>,
    /// Permission bits.
    pub mode: u32,
}

/// The context as read for sending: the Dockerfile and the files `.dockerignore` keeps.
#[derive(Debug, Clone)]
pub struct ContextBundle {
    /// The Dockerfile's text.
    pub dockerfile: String,
    /// The `<Dockerfile>.dockerignore` beside a Dockerfile, when that is the ignore file used.
    pub dockerfile_ignore: Option<String>,
    /// Files, sorted by path.
    pub files: Vec<ContextFile>,
    /// Paths left out because a ConfigMap cannot hold them (symlinks, devices).
    pub skipped: Vec<String>,
}

impl ContextBundle {
    /// Total bytes of the files and the Dockerfile.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.data.len() as u64).sum::<u64>() + self.dockerfile.len() as u64
    }
}

/// Read the request's Dockerfile and context, applying `.dockerignore`.
pub fn read_context(request: &BuildRequest) -> Result<ContextBundle, Error> {
    use ossb_core::exec::local::context::{ignore_file, load_matcher, scan};
    let (dockerfile, df_path) = match &request.dockerfile {
        DockerfileSource::Inline(text) => (text.clone(), None),
        DockerfileSource::Path(p) => (
            std::fs::read_to_string(p).map_err(|e| {
                Error::new(
                    ExitCode::Build,
                    format!("cannot read {}: {e} (check the -f path)", p.display()),
                )
            })?,
            Some(p.as_path()),
        ),
    };
    let ignore = ignore_file(&request.context, df_path);
    let specific = ignore
        .as_deref()
        .filter(|p| *p != request.context.join(".dockerignore"));
    let dockerfile_ignore = match specific {
        Some(p) => Some(std::fs::read_to_string(p).map_err(|e| {
            Error::new(ExitCode::Build, format!("cannot read {}: {e}", p.display()))
        })?),
        None => None,
    };
    let matcher = load_matcher(ignore.as_deref())?;
    let scanned = scan(&request.context, matcher.as_ref())?;
    let root = ossb_core::exec::Root::open_host(&scanned.base).map_err(|e| {
        Error::new(
            ExitCode::Build,
            format!(
                "cannot open the build context {}: {e}",
                scanned.base.display()
            ),
        )
    })?;
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    for f in &scanned.files {
        match f.kind {
            ContextKind::Dir => {}
            ContextKind::File => {
                let path = scanned.host_path(&f.rel_path);
                let data = read_beneath(&root, &f.rel_path).map_err(|e| {
                    Error::new(
                        ExitCode::Build,
                        format!("cannot read {} of the build context: {e}", path.display()),
                    )
                })?;
                files.push(ContextFile {
                    path: f.rel_path.clone(),
                    data,
                    mode: f.mode & 0o777,
                });
            }
            _ => skipped.push(f.rel_path.clone()),
        }
    }
    Ok(ContextBundle {
        dockerfile,
        dockerfile_ignore,
        files,
        skipped,
    })
}

/// Read `rel` resolved beneath the context root, the last component never a symlink (the
/// context could change between the scan and the read).
fn read_beneath(root: &ossb_core::exec::Root, rel: &str) -> std::io::Result<Vec<u8>> {
    use rustix::fs::OFlags;
    use std::io::Read;
    let fd = root
        .open(rel, OFlags::RDONLY | OFlags::NOFOLLOW, 0)
        .map_err(std::io::Error::other)?;
    let mut file = std::fs::File::from(fd);
    let mut data = Vec::new();
    file.read_to_end(&mut data)?;
    Ok(data)
}

/// One ConfigMap to create.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackedConfigMap {
    /// UTF-8 values.
    pub data: BTreeMap<String, String>,
    /// Other values.
    pub binary_data: BTreeMap<String, Vec<u8>>,
    /// Volume items: key, path in the volume, mode.
    pub items: Vec<(String, String, u32)>,
    /// Bytes of the values.
    pub bytes: u64,
}

/// The key of the Dockerfile in the first ConfigMap (not among the context items).
pub const DOCKERFILE_KEY: &str = "dockerfile";
/// The key of `<Dockerfile>.dockerignore` in the first ConfigMap.
pub const DOCKERIGNORE_KEY: &str = "dockerignore";

fn too_large(what: String) -> Error {
    Error::new(
        ExitCode::Configuration,
        format!(
            "{what}; exclude what the build does not need in .dockerignore (build outputs, \
             .git, node_modules, data files), or build from a registry base image that has them"
        ),
    )
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Pack the bundle into ConfigMaps of at most [`CONFIGMAP_BUDGET`] bytes each; the first one
/// also holds the Dockerfile. Fails before anything is sent when a file does not fit into one
/// ConfigMap or the whole context is over `max_total`.
pub fn pack(bundle: &ContextBundle, max_total: u64) -> Result<Vec<PackedConfigMap>, Error> {
    let total = bundle.total_bytes();
    if total > max_total {
        let largest = bundle.files.iter().max_by_key(|f| f.data.len());
        let hint = largest
            .map(|f| {
                format!(
                    " (largest file: {} at {})",
                    f.path,
                    mib(f.data.len() as u64)
                )
            })
            .unwrap_or_default();
        return Err(too_large(format!(
            "the build context is {} after .dockerignore{hint}, over the {} a build sends to \
             Kubernetes as ConfigMaps (each ConfigMap holds at most 1 MiB; raise the total with \
             --max-context-size)",
            mib(total),
            mib(max_total)
        )));
    }
    let mut maps = vec![PackedConfigMap::default()];
    let mut first = PackedConfigMap::default();
    put(&mut first, DOCKERFILE_KEY, bundle.dockerfile.as_bytes());
    if let Some(ignore) = &bundle.dockerfile_ignore {
        put(&mut first, DOCKERIGNORE_KEY, ignore.as_bytes());
    }
    maps[0] = first;
    for (n, file) in bundle.files.iter().enumerate() {
        let size = file.data.len() as u64;
        if size > CONFIGMAP_BUDGET {
            return Err(too_large(format!(
                "{} in the build context is {}, more than one Kubernetes ConfigMap can hold \
                 (1 MiB)",
                file.path,
                mib(size)
            )));
        }
        let fits = maps
            .last()
            .is_some_and(|m| m.bytes + size <= CONFIGMAP_BUDGET);
        if !fits {
            maps.push(PackedConfigMap::default());
        }
        let key = format!("f{n}");
        let map = maps.last_mut().expect("at least one ConfigMap");
        put(map, &key, &file.data);
        map.items.push((key, file.path.clone(), file.mode));
    }
    Ok(maps)
}

fn put(map: &mut PackedConfigMap, key: &str, data: &[u8]) {
    match std::str::from_utf8(data) {
        Ok(text) => {
            map.data.insert(key.to_string(), text.to_string());
        }
        Err(_) => {
            map.binary_data.insert(key.to_string(), data.to_vec());
        }
    }
    map.bytes += data.len() as u64;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(files: Vec<(&str, Vec<u8>)>) -> ContextBundle {
        ContextBundle {
            dockerfile: "FROM scratch\n".into(),
            dockerfile_ignore: None,
            files: files
                .into_iter()
                .map(|(p, d)| ContextFile {
                    path: p.into(),
                    data: d,
                    mode: 0o644,
                })
                .collect(),
            skipped: vec![],
        }
    }

    #[test]
    fn text_binary_and_nested_files_become_keys_with_items() {
        let b = bundle(vec![
            ("a/b/c.txt", b"hello".to_vec()),
            ("bin.dat", vec![0xff, 0xfe, 0]),
        ]);
        let maps = pack(&b, DEFAULT_MAX_CONTEXT).expect("fits");
        assert_eq!(maps.len(), 1);
        let m = &maps[0];
        assert_eq!(m.data[DOCKERFILE_KEY], "FROM scratch\n");
        assert_eq!(m.data["f0"], "hello");
        assert_eq!(m.binary_data["f1"], vec![0xff, 0xfe, 0]);
        assert_eq!(
            m.items,
            vec![
                ("f0".into(), "a/b/c.txt".into(), 0o644),
                ("f1".into(), "bin.dat".into(), 0o644)
            ]
        );
    }

    #[test]
    fn large_contexts_spread_over_configmaps_and_too_large_ones_fail_before_sending() {
        let half = vec![b'x'; (CONFIGMAP_BUDGET / 2 + 1) as usize];
        let b = bundle(vec![("1", half.clone()), ("2", half.clone()), ("3", half)]);
        let maps = pack(&b, DEFAULT_MAX_CONTEXT).expect("fits");
        assert_eq!(maps.len(), 3);
        assert!(maps.iter().all(|m| m.bytes <= CONFIGMAP_BUDGET));

        let err = pack(&b, CONFIGMAP_BUDGET).expect_err("over the total");
        assert_eq!(err.exit_code(), ExitCode::Configuration);
        assert!(err.to_string().contains(".dockerignore"), "{err}");

        let big = bundle(vec![("big.bin", vec![0; CONFIGMAP_LIMIT as usize])]);
        let err = pack(&big, DEFAULT_MAX_CONTEXT).expect_err("one file too large");
        assert!(err.to_string().contains("big.bin"), "{err}");
    }
}
