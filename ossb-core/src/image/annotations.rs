//! `--annotation` values as buildx takes them: `[TYPE[PLATFORMS]:]KEY=VALUE`, where TYPE is
//! `manifest` (the default), `manifest-descriptor`, `index` or `index-descriptor` (several
//! may be given, comma-separated) and PLATFORMS (`[linux/amd64,linux/arm64]`) limits
//! manifest annotations to those platforms' images.

use super::oci::Platform;
use std::collections::BTreeMap;

/// Where an annotation goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AnnotationTarget {
    /// The image manifest (each platform's).
    Manifest,
    /// The descriptor of each image manifest in the index.
    ManifestDescriptor,
    /// The image index (multi-platform builds).
    Index,
    /// The image's entry in an OCI layout's `index.json` (the index, or the manifest of a
    /// single-platform build); other outputs have no such entry.
    IndexDescriptor,
}

/// One parsed annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotation {
    /// Where it goes.
    pub target: AnnotationTarget,
    /// Only for images of these platforms (manifest types); empty means all.
    pub platforms: Vec<Platform>,
    /// The key.
    pub key: String,
    /// The value (may be empty).
    pub value: String,
}

/// All annotations of a build.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Annotations {
    /// In the order given; a later one with the same target and key wins.
    pub items: Vec<Annotation>,
}

impl Annotations {
    /// Parse `--annotation` values; the error says which value is wrong and why.
    pub fn parse(values: &[String]) -> Result<Annotations, String> {
        let mut items = Vec::new();
        for value in values {
            items.extend(parse_one(value)?);
        }
        Ok(Annotations { items })
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Whether any needs an image index (only multi-platform builds make one).
    pub fn needs_index(&self) -> bool {
        self.items.iter().any(|a| {
            matches!(
                a.target,
                AnnotationTarget::Index | AnnotationTarget::ManifestDescriptor
            )
        })
    }

    /// The annotations of `target` that apply to an image of `platform` (or to the index,
    /// with `None`).
    pub fn for_target(
        &self,
        target: AnnotationTarget,
        platform: Option<&Platform>,
    ) -> BTreeMap<String, String> {
        self.items
            .iter()
            .filter(|a| a.target == target)
            .filter(|a| {
                a.platforms.is_empty()
                    || platform.is_some_and(|p| a.platforms.iter().any(|w| w.matches(p)))
            })
            .map(|a| (a.key.clone(), a.value.clone()))
            .collect()
    }
}

fn parse_one(input: &str) -> Result<Vec<Annotation>, String> {
    let bad = |why: &str| format!("invalid --annotation {input:?}: {why}");
    let (left, value) = input
        .split_once('=')
        .ok_or_else(|| bad("expected [TYPE:]KEY=VALUE"))?;
    // `TYPE[PLATFORMS]:KEY`: a prefix only when it is made of known type names.
    let (types, platforms, key) = match split_prefix(left) {
        Some((types, platforms, key)) => (types, platforms, key),
        None => (String::new(), String::new(), left.to_string()),
    };
    if key.is_empty() || key.chars().any(char::is_whitespace) {
        return Err(bad("the key is empty or has spaces"));
    }
    let mut targets = Vec::new();
    if types.is_empty() {
        targets.push(AnnotationTarget::Manifest);
    }
    for t in types.split(',').filter(|t| !t.is_empty()) {
        targets.push(match t {
            "manifest" => AnnotationTarget::Manifest,
            "manifest-descriptor" => AnnotationTarget::ManifestDescriptor,
            "index" => AnnotationTarget::Index,
            "index-descriptor" => AnnotationTarget::IndexDescriptor,
            other => {
                return Err(bad(&format!(
                    "unknown type {other:?} (use manifest, manifest-descriptor, index or index-descriptor)"
                )));
            }
        });
    }
    let platforms: Vec<Platform> = platforms
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| Platform::parse(p).map_err(|e| bad(&e.to_string())))
        .collect::<Result<_, _>>()?;
    if !platforms.is_empty()
        && targets.iter().any(|t| {
            matches!(
                t,
                AnnotationTarget::Index | AnnotationTarget::IndexDescriptor
            )
        })
    {
        return Err(bad("a platform can only be given for manifest annotations"));
    }
    Ok(targets
        .into_iter()
        .map(|target| Annotation {
            target,
            platforms: platforms.clone(),
            key: key.clone(),
            value: value.to_string(),
        })
        .collect())
}

/// Split `types[platforms]:key` when the part before `:` is a list of type names (an
/// unprefixed key may contain `:` itself).
fn split_prefix(left: &str) -> Option<(String, String, String)> {
    let (prefix, key) = left.split_once(':')?;
    let (types, platforms) = match prefix.split_once('[') {
        Some((t, rest)) => (t, rest.strip_suffix(']')?),
        None => (prefix, ""),
    };
    let known = [
        "manifest",
        "manifest-descriptor",
        "index",
        "index-descriptor",
    ];
    let all_types = !types.is_empty()
        && types
            .split(',')
            .all(|t| t.chars().all(|c| c.is_ascii_lowercase() || c == '-'));
    if !all_types {
        return None;
    }
    // A lowercase prefix that is not a type name is a mistake worth naming, unless it is
    // clearly part of a key (no known type and no brackets): keep it as a key then.
    if !types.split(',').any(|t| known.contains(&t)) && platforms.is_empty() {
        return None;
    }
    Some((types.to_string(), platforms.to_string(), key.to_string()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(v: &[&str]) -> Result<Annotations, String> {
        Annotations::parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn types_platforms_and_defaults_parse_like_buildx() {
        let a = parse(&[
            "org.opencontainers.image.title=hello",
            "index:org.opencontainers.image.vendor=ossb",
            "manifest[linux/arm64]:arch.note=arm",
            "index,manifest-descriptor:both=1",
        ])
        .unwrap();
        let amd = Platform::parse("linux/amd64").unwrap();
        let arm = Platform::parse("linux/arm64").unwrap();
        let m_amd = a.for_target(AnnotationTarget::Manifest, Some(&amd));
        assert_eq!(
            m_amd.get("org.opencontainers.image.title").unwrap(),
            "hello"
        );
        assert!(!m_amd.contains_key("arch.note"));
        let m_arm = a.for_target(AnnotationTarget::Manifest, Some(&arm));
        assert_eq!(m_arm.get("arch.note").unwrap(), "arm");
        let idx = a.for_target(AnnotationTarget::Index, None);
        assert_eq!(idx.len(), 2);
        assert_eq!(idx.get("both").unwrap(), "1");
        let desc = a.for_target(AnnotationTarget::ManifestDescriptor, Some(&amd));
        assert_eq!(desc.get("both").unwrap(), "1");
        assert!(a.needs_index());
        assert!(!parse(&["k=v"]).unwrap().needs_index());
    }

    #[test]
    fn bad_annotations_say_why() {
        for (v, needle) in [
            ("novalue", "KEY=VALUE"),
            ("manifest:=v", "key is empty"),
            ("mainfest[linux/amd64]:k=v", "unknown type"),
            ("index[linux/amd64]:k=v", "only be given for manifest"),
            ("manifest[linux]:k=v", "linux"),
        ] {
            let err = parse(&[v]).unwrap_err();
            assert!(err.contains(needle), "{v}: {err}");
        }
    }
}
