//! Image references (`alpine`, `localhost:5000/app:1.0`, `host/x@sha256:…`).
//!
//! Parsing and normalisation follow Docker's `distribution/reference`
//! `ParseNormalizedNamed`, plus `TagNameOnly` (a reference with neither a tag nor a digest gets
//! the tag `latest`):
//!
//! * a first path component without `.` or `:`, that is not `localhost` and is all lowercase, is
//!   not a registry: the registry is `docker.io`;
//! * `index.docker.io` is normalised to `docker.io`;
//! * a single-component Docker Hub repository gets the `library/` prefix;
//! * the repository must be lowercase; tags may hold uppercase letters;
//! * the name (`registry/repository`) is at most 255 characters, a tag at most 128;
//! * digests are `sha256`, `sha384` or `sha512` with lowercase hex of the right length.
//!
//! A name without a registry part can be put on another registry than Docker Hub with
//! [`Reference::parse_with_default`] (the registry configuration's `default_registry`). As in
//! Podman, Buildah and Skopeo (`unqualified-search-registries`), the `library/` prefix belongs
//! to Docker Hub alone: `alpine` with the default `registry.internal:5000` is
//! `registry.internal:5000/alpine`, not `…/library/alpine`.
//!
//! One deliberate difference: Docker accepts a first component that contains `.` or `:` but is
//! not a valid host name (`foo_bar.com/x`) as a registry-less name; we reject it, because such a
//! reference cannot be pulled from anywhere.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// The registry that names without a registry part refer to.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// The legacy name of Docker Hub, normalised to [`DEFAULT_REGISTRY`].
pub const LEGACY_DEFAULT_REGISTRY: &str = "index.docker.io";
/// The repository prefix of Docker Hub's official images.
pub const OFFICIAL_REPO_PREFIX: &str = "library/";
/// The tag given to references that have neither a tag nor a digest.
pub const DEFAULT_TAG: &str = "latest";
/// The longest allowed name (`registry/repository`).
pub const NAME_TOTAL_LENGTH_MAX: usize = 255;
/// The longest allowed tag.
pub const TAG_LENGTH_MAX: usize = 128;

/// Why an image reference could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The reference was empty.
    #[error("invalid image reference: the reference is empty; give a name such as alpine:3.20")]
    Empty,
    /// The reference does not follow the `[registry/]repository[:tag][@digest]` grammar.
    #[error(
        "invalid image reference {reference:?}: {reason}; expected [registry[:port]/]repository[:tag][@digest]"
    )]
    InvalidFormat {
        /// The reference as given.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The repository name holds uppercase letters.
    #[error(
        "invalid image reference {reference:?}: repository name {repository:?} must be lowercase"
    )]
    Uppercase {
        /// The reference as given.
        reference: String,
        /// The offending repository part.
        repository: String,
    },
    /// The name is longer than [`NAME_TOTAL_LENGTH_MAX`].
    #[error(
        "invalid image reference {reference:?}: repository name must not be longer than {NAME_TOTAL_LENGTH_MAX} characters"
    )]
    NameTooLong {
        /// The reference as given.
        reference: String,
    },
    /// The tag is not valid (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`).
    #[error(
        "invalid tag {tag:?}: a tag is 1 to 128 characters of letters, digits, '_', '.' and '-', not starting with '.' or '-'"
    )]
    InvalidTag {
        /// The tag as given.
        tag: String,
    },
    /// The digest is malformed.
    #[error("invalid digest {digest:?}: {reason}")]
    InvalidDigest {
        /// The digest as given.
        digest: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The digest algorithm is not supported.
    #[error("unsupported digest algorithm in {digest:?}: use sha256, sha384 or sha512")]
    UnsupportedDigest {
        /// The digest as given.
        digest: String,
    },
    /// The reference is a bare 64-character hexadecimal string (an image ID).
    #[error(
        "invalid repository name {reference:?}: cannot specify 64-byte hexadecimal strings (is this an image ID?)"
    )]
    HexIdentifier {
        /// The reference as given.
        reference: String,
    },
}

/// A parsed, normalised image reference.
///
/// `Display` prints the full form (`docker.io/library/alpine:latest`); [`Reference::familiar`]
/// prints the short form Docker shows (`alpine:latest`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// The registry host, with the port if any (`docker.io`, `localhost:5000`, `[::1]:5000`).
    pub registry: String,
    /// The repository path inside the registry (`library/alpine`, `user/app`).
    pub repository: String,
    /// The tag, if any.
    pub tag: Option<String>,
    /// The digest (`sha256:…`), if any.
    pub digest: Option<String>,
}

impl Reference {
    /// Parses and normalises a reference like `docker pull` does.
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        parse_normalized(s, DEFAULT_REGISTRY)
    }

    /// Parses like [`Reference::parse`], but a name without a registry part goes to
    /// `default_registry` instead of Docker Hub when one is given (`team/app` ->
    /// `registry.internal:5000/team/app:latest`). Docker Hub's `library/` prefix is added only
    /// when the registry is Docker Hub. `default_registry` must have passed
    /// [`validate_default_registry`]; an invalid one makes every short name fail to parse.
    pub fn parse_with_default(
        s: &str,
        default_registry: Option<&str>,
    ) -> Result<Self, ReferenceError> {
        parse_normalized(s, default_registry.unwrap_or(DEFAULT_REGISTRY))
    }

    /// The full name without tag or digest (`docker.io/library/alpine`).
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The short form Docker prints: no `docker.io/`, no `library/` (`alpine:latest`).
    pub fn familiar(&self) -> String {
        let mut out = self.familiar_name();
        self.push_suffix(&mut out);
        out
    }

    /// The short name without tag or digest (`alpine`, `user/app`, `localhost:5000/x`).
    pub fn familiar_name(&self) -> String {
        if self.registry == DEFAULT_REGISTRY {
            match self.repository.strip_prefix(OFFICIAL_REPO_PREFIX) {
                Some(rest) if !rest.contains('/') => rest.to_string(),
                _ => self.repository.clone(),
            }
        } else {
            self.name()
        }
    }

    /// The same repository with another tag (the digest, if any, is kept).
    pub fn with_tag(&self, tag: &str) -> Result<Self, ReferenceError> {
        validate_tag(tag)?;
        Ok(Self {
            tag: Some(tag.to_string()),
            ..self.clone()
        })
    }

    /// The same repository pinned to a digest (the tag, if any, is kept).
    pub fn with_digest(&self, digest: &str) -> Result<Self, ReferenceError> {
        validate_digest(digest)?;
        Ok(Self {
            digest: Some(digest.to_string()),
            ..self.clone()
        })
    }

    /// The same repository with neither tag nor digest, given another repository path.
    pub fn with_repository(&self, repository: &str) -> Result<Self, ReferenceError> {
        Self::parse(&format!("{}/{}", self.registry, repository)).map(|r| Self {
            tag: self.tag.clone(),
            digest: self.digest.clone(),
            ..r
        })
    }

    /// What to ask the registry for: the digest if there is one, else the tag (`latest` if
    /// neither is set).
    pub fn tag_or_digest(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or(DEFAULT_TAG)
    }

    /// The registry host without the port (`localhost`, `127.0.0.1`, `[::1]`).
    pub fn registry_host(&self) -> &str {
        host_without_port(&self.registry)
    }

    /// True when the registry is on the loopback interface: `localhost`, `127.0.0.0/8` or
    /// `[::1]` (Docker treats these as insecure registries by default).
    pub fn is_loopback(&self) -> bool {
        is_loopback_host(&self.registry)
    }

    fn push_suffix(&self, out: &mut String) {
        if let Some(tag) = &self.tag {
            out.push(':');
            out.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            out.push('@');
            out.push_str(digest);
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = self.name();
        self.push_suffix(&mut out);
        f.write_str(&out)
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Strips the `:port` from a registry host (`localhost:5000` -> `localhost`, `[::1]:5000` ->
/// `[::1]`).
pub fn host_without_port(registry: &str) -> &str {
    if registry.starts_with('[') {
        match registry.find(']') {
            Some(end) => &registry[..=end],
            None => registry,
        }
    } else {
        registry.split(':').next().unwrap_or(registry)
    }
}

/// True when a registry host (with or without port) is `localhost`, in `127.0.0.0/8`, or `::1`.
pub fn is_loopback_host(registry: &str) -> bool {
    let host = host_without_port(registry);
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<Ipv6Addr>().is_ok_and(|ip| ip.is_loopback());
    }
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return ip.is_loopback();
    }
    registry
        .parse::<Ipv6Addr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// Checks a registry configured for names without a registry part (`registry.internal:5000`,
/// `[::1]:5000`, `docker.io`) and returns it normalised (`index.docker.io` -> `docker.io`). A
/// repository path (`host/prefix`), a scheme or an uppercase host name is refused.
pub fn validate_default_registry(registry: &str) -> Result<String, ReferenceError> {
    let bad = |reason: &str| {
        invalid(
            registry,
            format!(
                "{reason}; a default registry is a host with an optional port, such as registry.internal:5000"
            ),
        )
    };
    if registry.is_empty() {
        return Err(bad("the default registry is empty"));
    }
    if registry.contains("://") {
        return Err(bad("leave out the scheme"));
    }
    if registry.contains('/') {
        return Err(bad("a default registry cannot hold a repository path"));
    }
    if registry.to_lowercase() != registry {
        return Err(bad("the host name must be lowercase"));
    }
    validate_domain(registry).map_err(|reason| bad(&reason))?;
    Ok(if registry == LEGACY_DEFAULT_REGISTRY {
        DEFAULT_REGISTRY.to_string()
    } else {
        registry.to_string()
    })
}

fn invalid(reference: &str, reason: impl Into<String>) -> ReferenceError {
    ReferenceError::InvalidFormat {
        reference: reference.to_string(),
        reason: reason.into(),
    }
}

fn parse_normalized(s: &str, default_registry: &str) -> Result<Reference, ReferenceError> {
    if s.is_empty() {
        return Err(ReferenceError::Empty);
    }
    if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(ReferenceError::HexIdentifier {
            reference: s.to_string(),
        });
    }
    let (registry, remainder) = split_docker_domain(s, default_registry);
    let remote = remainder.split(':').next().unwrap_or(&remainder);
    if remote.to_lowercase() != remote {
        return Err(ReferenceError::Uppercase {
            reference: s.to_string(),
            repository: remote.to_string(),
        });
    }

    let (name_tag, digest) = match remainder.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (remainder.as_str(), None),
    };
    let (repository, tag) = match name_tag.rfind(':') {
        Some(i) => (&name_tag[..i], Some(&name_tag[i + 1..])),
        None => (name_tag, None),
    };
    if repository.contains(':') {
        return Err(invalid(
            s,
            "':' may only separate the tag or the registry port",
        ));
    }
    validate_domain(&registry).map_err(|reason| invalid(s, reason))?;
    validate_path(repository).map_err(|reason| invalid(s, reason))?;
    if registry.len() + 1 + repository.len() > NAME_TOTAL_LENGTH_MAX {
        return Err(ReferenceError::NameTooLong {
            reference: s.to_string(),
        });
    }
    if let Some(tag) = tag {
        validate_tag(tag).map_err(|_| invalid(s, format!("invalid tag {tag:?}")))?;
    }
    if let Some(digest) = digest {
        validate_digest(digest)?;
    }
    let tag = match (tag, digest) {
        (None, None) => Some(DEFAULT_TAG.to_string()),
        (t, _) => t.map(str::to_string),
    };
    Ok(Reference {
        registry,
        repository: repository.to_string(),
        tag,
        digest: digest.map(str::to_string),
    })
}

/// Docker's `splitDockerDomain`, with `default_registry` in place of `docker.io` for names
/// without a registry part.
fn split_docker_domain(name: &str, default_registry: &str) -> (String, String) {
    let (mut domain, mut remainder) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.to_lowercase() != first =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => (default_registry.to_string(), name.to_string()),
    };
    if domain == LEGACY_DEFAULT_REGISTRY {
        domain = DEFAULT_REGISTRY.to_string();
    }
    if domain == DEFAULT_REGISTRY && !remainder.contains('/') {
        remainder = format!("{OFFICIAL_REPO_PREFIX}{remainder}");
    }
    (domain, remainder)
}

fn validate_domain(domain: &str) -> Result<(), String> {
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        let end = rest
            .find(']')
            .ok_or_else(|| format!("registry {domain:?} has an unclosed '['"))?;
        let inner = &rest[..end];
        if inner.is_empty() || !inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return Err(format!("registry {domain:?} is not a valid IPv6 address"));
        }
        let after = &rest[end + 1..];
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| format!("registry {domain:?} has junk after ']'"))?,
            ),
        };
        (None, port)
    } else {
        match domain.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(domain), None),
        }
    };
    if let Some(host) = host {
        let ok = !host.is_empty()
            && host.split('.').all(|c| {
                !c.is_empty()
                    && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !c.starts_with('-')
                    && !c.ends_with('-')
            });
        if !ok {
            return Err(format!("registry {domain:?} is not a valid host name"));
        }
    }
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!("registry {domain:?} has an invalid port"));
    }
    Ok(())
}

/// `path-component ('/' path-component)*`, where a component is lowercase alphanumerics joined
/// by single separators `.`, `_`, `__` or runs of `-`.
fn validate_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("repository name must have at least one component".to_string());
    }
    for component in path.split('/') {
        if !valid_path_component(component) {
            return Err(format!("invalid repository path component {component:?}"));
        }
    }
    Ok(())
}

fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: '.', '_', '__', or '-'+.
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn validate_tag(tag: &str) -> Result<(), ReferenceError> {
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    let b = tag.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= TAG_LENGTH_MAX
        && word(b[0])
        && b.iter().all(|&x| word(x) || x == b'.' || x == b'-');
    if ok {
        Ok(())
    } else {
        Err(ReferenceError::InvalidTag {
            tag: tag.to_string(),
        })
    }
}

/// Checks a digest string (`sha256:<64 lowercase hex>`, `sha384:<96>`, `sha512:<128>`).
pub fn validate_digest(digest: &str) -> Result<(), ReferenceError> {
    let bad = |reason: &str| ReferenceError::InvalidDigest {
        digest: digest.to_string(),
        reason: reason.to_string(),
    };
    let (algorithm, encoded) = digest
        .split_once(':')
        .ok_or_else(|| bad("expected algorithm:hex"))?;
    let alg_ok = !algorithm.is_empty()
        && algorithm.split(['+', '.', '_', '-']).all(|c| {
            c.starts_with(|ch: char| ch.is_ascii_alphabetic())
                && c.bytes().all(|x| x.is_ascii_alphanumeric())
        });
    if !alg_ok {
        return Err(bad("malformed algorithm"));
    }
    if encoded.len() < 32 || !encoded.bytes().all(|x| x.is_ascii_hexdigit()) {
        return Err(bad(
            "the encoded part must be at least 32 hexadecimal characters",
        ));
    }
    let want = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => {
            return Err(ReferenceError::UnsupportedDigest {
                digest: digest.to_string(),
            });
        }
    };
    if encoded.len() != want {
        return Err(bad(&format!(
            "{algorithm} needs {want} hexadecimal characters"
        )));
    }
    if encoded.bytes().any(|x| x.is_ascii_uppercase()) {
        return Err(bad("hexadecimal characters must be lowercase"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const H64: &str = "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

    fn ok(s: &str) -> Reference {
        match Reference::parse(s) {
            Ok(r) => r,
            Err(e) => panic!("{s:?} should parse: {e}"),
        }
    }

    fn full(s: &str) -> String {
        ok(s).to_string()
    }

    fn err(s: &str) -> ReferenceError {
        match Reference::parse(s) {
            Ok(r) => panic!("{s:?} should fail, got {r}"),
            Err(e) => e,
        }
    }

    #[test]
    fn docker_hub_normalisation() {
        assert_eq!(full("alpine"), "docker.io/library/alpine:latest");
        assert_eq!(full("user/app"), "docker.io/user/app:latest");
        assert_eq!(full("docker.io/alpine"), "docker.io/library/alpine:latest");
        assert_eq!(full("index.docker.io/foo"), "docker.io/library/foo:latest");
        assert_eq!(full("index.docker.io/user/app:1"), "docker.io/user/app:1");
        assert_eq!(
            full("docker.io/library/ubuntu:22.04"),
            "docker.io/library/ubuntu:22.04"
        );
        assert_eq!(full("test_com"), "docker.io/library/test_com:latest");
        assert_eq!(full("test.com:tag"), "docker.io/library/test.com:tag");
        assert_eq!(full("test.com:5000"), "docker.io/library/test.com:5000");
        assert_eq!(
            full("foo_bar.com:8080"),
            "docker.io/library/foo_bar.com:8080"
        );
        assert_eq!(
            full("foo/foo_bar.com:8080"),
            "docker.io/foo/foo_bar.com:8080"
        );
        assert_eq!(full("192.168.1.1"), "docker.io/library/192.168.1.1:latest");
        assert_eq!(full("192.168.1.1:tag"), "docker.io/library/192.168.1.1:tag");
        assert_eq!(
            full("192.168.1.1:5000"),
            "docker.io/library/192.168.1.1:5000"
        );
    }

    #[test]
    fn registries_and_ports() {
        let r = ok("localhost:5000/x");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("localhost:5000", "x")
        );
        let r = ok("127.0.0.1:5000/a/b:tag");
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "a/b");
        assert_eq!(r.tag.as_deref(), Some("tag"));
        assert_eq!(ok("localhost/foo").registry, "localhost");
        assert_eq!(ok("test:5000/repo").registry, "test:5000");
        assert_eq!(full("test:5000/repo:tag"), "test:5000/repo:tag");
        assert_eq!(full("test.com/repo:tag"), "test.com/repo:tag");
        assert_eq!(ok("192.168.1.1/repo").registry, "192.168.1.1");
        assert_eq!(ok("192.168.1.1:5000/repo").registry, "192.168.1.1:5000");
        assert_eq!(
            ok("sub-dom1.foo.com/bar/baz/quux").repository,
            "bar/baz/quux"
        );
        assert_eq!(
            ok("sub-dom1.foo.com/bar/baz/quux:some-long-tag")
                .tag
                .as_deref(),
            Some("some-long-tag")
        );
        let r = ok("b.gcr.io/test.example.com/my-app:test.example.com");
        assert_eq!(r.repository, "test.example.com/my-app");
        assert_eq!(r.tag.as_deref(), Some("test.example.com"));
        assert_eq!(
            ok("xn--n3h.com/myimage:xn--n3h.com").registry,
            "xn--n3h.com"
        );
        // A first component with uppercase letters is a registry, as in Docker.
        assert_eq!(ok("Foo/bar").registry, "Foo");
    }

    #[test]
    fn ipv6_registries() {
        assert_eq!(ok("[2001:db8::1]/repo").registry, "[2001:db8::1]");
        assert_eq!(
            ok("[2001:db8:1:2:3:4:5:6]/repo:tag").tag.as_deref(),
            Some("tag")
        );
        assert_eq!(ok("[2001:db8::1]:5000/repo").registry, "[2001:db8::1]:5000");
        assert_eq!(ok("[2001:db8::]:5000/repo").repository, "repo");
        assert_eq!(ok("[::1]:5000/repo").registry, "[::1]:5000");
        for bad in [
            "[2001:db8::1]",
            "[2001:db8::1]:5000",
            "[2001:db8::1]:tag",
            "[fe80::1%eth0]:5000/repo",
            "[2001:db8:3:4::192.0.2.33]:5000/repo",
        ] {
            assert!(
                matches!(err(bad), ReferenceError::InvalidFormat { .. }),
                "{bad}"
            );
        }
    }

    #[test]
    fn digests() {
        let d = format!("sha256:{H64}");
        let r = ok(&format!("host/x@{d}"));
        assert_eq!(r.digest.as_deref(), Some(d.as_str()));
        assert_eq!(r.tag, None);
        assert_eq!(r.tag_or_digest(), d);
        let r = ok(&format!("test:5000/repo:tag@{d}"));
        assert_eq!(r.tag.as_deref(), Some("tag"));
        assert_eq!(r.digest.as_deref(), Some(d.as_str()));
        assert_eq!(r.to_string(), format!("test:5000/repo:tag@{d}"));
        assert_eq!(
            full(&format!("repo@{d}")),
            format!("docker.io/library/repo@{d}")
        );
        let d512 = format!("sha512:{H64}{H64}");
        assert!(
            ok(&format!("xn--7o8h.com/myimage:xn--7o8h.com@{d512}"))
                .digest
                .is_some()
        );
        assert!(matches!(
            err(&format!("validname@invaliddigest:{H64}")),
            ReferenceError::UnsupportedDigest { .. }
        ));
        assert!(matches!(
            err("repo@sha256:abc"),
            ReferenceError::InvalidDigest { .. }
        ));
        assert!(matches!(
            err(&format!("repo@sha256:{}", H64.to_uppercase())),
            ReferenceError::InvalidDigest { .. }
        ));
        assert!(Reference::parse(&format!("@{d}")).is_err());
    }

    #[test]
    fn rejections() {
        assert_eq!(err(""), ReferenceError::Empty);
        assert!(matches!(
            err(":justtag"),
            ReferenceError::InvalidFormat { .. }
        ));
        assert!(matches!(
            err("Uppercase:tag"),
            ReferenceError::Uppercase { .. }
        ));
        assert!(matches!(
            err("test:5000/Uppercase/lowercase:tag"),
            ReferenceError::Uppercase { .. }
        ));
        assert!(matches!(
            err("aa/asdf$$^/aa"),
            ReferenceError::InvalidFormat { .. }
        ));
        assert!(matches!(
            err("1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a"),
            ReferenceError::HexIdentifier { .. }
        ));
        for bad in [
            "foo/bar:",
            "foo/bar@",
            "foo//bar",
            "foo/__bar",
            "foo/a___b",
            "a..b",
            "a._b",
            "-foo/bar",
            "foo/-bar",
            "foo/bar-",
            "host:/bar",
            "host:x/bar",
            "foo_bar.com/x",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad} should be rejected");
        }
        for good in ["foo/a__b", "foo/a--b", "a-----b", "a.b_c", "foo/a_b.c-d"] {
            ok(good);
        }
        let msg = err("Uppercase:tag").to_string();
        assert!(msg.contains("must be lowercase"), "{msg}");
    }

    #[test]
    fn tags_and_lengths() {
        assert_eq!(ok("lowercase:Uppercase").tag.as_deref(), Some("Uppercase"));
        let long_tag = "a".repeat(129);
        assert!(Reference::parse(&format!("foo:{long_tag}")).is_err());
        assert!(Reference::parse(&format!("foo:{}", "a".repeat(128))).is_ok());
        assert!(Reference::parse("foo:.tag").is_err());
        // With a registry, the name includes it: 10 + 245 = 255 is the limit.
        let path = format!("{}a", "a/".repeat(122));
        assert_eq!(format!("localhost/{path}").len(), 255);
        ok(&format!("localhost/{path}:tag-puts-this-over-max"));
        assert!(matches!(
            err(&format!("{}a:tag", "a/".repeat(128))),
            ReferenceError::NameTooLong { .. }
        ));
    }

    #[test]
    fn familiar_and_with() {
        assert_eq!(ok("alpine").familiar(), "alpine:latest");
        assert_eq!(ok("docker.io/library/alpine:3").familiar_name(), "alpine");
        assert_eq!(ok("user/app:1").familiar(), "user/app:1");
        assert_eq!(ok("docker.io/library/a/b").familiar_name(), "library/a/b");
        assert_eq!(ok("localhost:5000/x").familiar(), "localhost:5000/x:latest");
        let r = ok("localhost:5000/x:1").with_tag("2").expect("valid tag");
        assert_eq!(r.to_string(), "localhost:5000/x:2");
        assert!(ok("x").with_tag("-bad").is_err());
        let d = format!("sha256:{H64}");
        let r = ok("localhost:5000/x:1")
            .with_digest(&d)
            .expect("valid digest");
        assert_eq!(r.to_string(), format!("localhost:5000/x:1@{d}"));
        assert!(ok("x").with_digest("sha256:zz").is_err());
        let r = ok("localhost:5000/x:1")
            .with_repository("y/z")
            .expect("valid repo");
        assert_eq!(r.to_string(), "localhost:5000/y/z:1");
        assert_eq!(
            "alpine:3".parse::<Reference>().ok(),
            Reference::parse("alpine:3").ok()
        );
    }

    #[test]
    fn default_registry_for_short_names() {
        let with = |s: &str, d: &str| {
            Reference::parse_with_default(s, Some(d))
                .map(|r| r.to_string())
                .unwrap_or_else(|e| panic!("{s:?} with {d}: {e}"))
        };
        let d = "registry.internal:5000";
        assert_eq!(with("app", d), "registry.internal:5000/app:latest");
        assert_eq!(with("team/app:1", d), "registry.internal:5000/team/app:1");
        assert_eq!(
            with("library/alpine", d),
            "registry.internal:5000/library/alpine:latest",
            "library/ as written is kept, never added"
        );
        let digest = format!("sha256:{H64}");
        assert_eq!(
            with(&format!("app@{digest}"), d),
            format!("registry.internal:5000/app@{digest}")
        );
        // Names that carry a registry are left alone, Docker Hub included.
        assert_eq!(
            with("docker.io/alpine", d),
            "docker.io/library/alpine:latest"
        );
        assert_eq!(with("localhost/x", d), "localhost/x:latest");
        assert_eq!(with("ghcr.io/o/x:2", d), "ghcr.io/o/x:2");
        // Docker Hub as the default behaves as without one.
        assert_eq!(
            with("alpine", "docker.io"),
            "docker.io/library/alpine:latest"
        );
        assert_eq!(
            Reference::parse_with_default("alpine", None).map(|r| r.to_string()),
            Ok("docker.io/library/alpine:latest".to_string())
        );
        assert_eq!(with("x", "[::1]:5000"), "[::1]:5000/x:latest");
        // The default registry counts towards the name length.
        let long = "a".repeat(235);
        assert!(Reference::parse(&long).is_ok());
        assert!(matches!(
            Reference::parse_with_default(&long, Some("registry.internal:5000")),
            Err(ReferenceError::NameTooLong { .. })
        ));
    }

    #[test]
    fn default_registry_validation() {
        assert_eq!(
            validate_default_registry("registry.internal:5000").as_deref(),
            Ok("registry.internal:5000")
        );
        assert_eq!(
            validate_default_registry("index.docker.io").as_deref(),
            Ok("docker.io")
        );
        assert_eq!(
            validate_default_registry("[::1]:5000").as_deref(),
            Ok("[::1]:5000")
        );
        for bad in [
            "",
            "https://registry.internal",
            "registry.internal/team",
            "Registry.Internal",
            "reg_istry.internal",
            "registry.internal:port",
        ] {
            let e = validate_default_registry(bad).expect_err(bad).to_string();
            assert!(e.contains("default registry"), "{bad}: {e}");
        }
    }

    #[test]
    fn loopback() {
        for l in [
            "localhost:5000/x",
            "localhost/x",
            "127.0.0.1:5000/x",
            "127.1.2.3/x",
            "[::1]:5000/x",
        ] {
            assert!(ok(l).is_loopback(), "{l}");
        }
        for n in [
            "alpine",
            "10.0.0.1:5000/x",
            "[2001:db8::1]:5000/x",
            "example.com/x",
            "localhostx.com/x",
        ] {
            assert!(!ok(n).is_loopback(), "{n}");
        }
        assert!(is_loopback_host("::1"));
        assert_eq!(host_without_port("[::1]:5000"), "[::1]");
        assert_eq!(host_without_port("localhost:5000"), "localhost");
    }
}
