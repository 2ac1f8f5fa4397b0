//! Matching registry hosts against credential-file keys, as Docker does.
//!
//! Keys may carry a scheme, a `/v1/` suffix or a repository path
//! (`https://index.docker.io/v1/`, `http://reg:5000`, `quay.io/org/repo`); Docker Hub is
//! known as `docker.io`, `index.docker.io`, `registry-1.docker.io` and
//! `https://index.docker.io/v1/`.

use ossb_core::reference::DEFAULT_REGISTRY;

/// The key Docker stores Docker Hub credentials under.
pub const DOCKER_HUB_AUTH_KEY: &str = "https://index.docker.io/v1/";

/// The bare host of a credential key or registry name: scheme and path removed, lower
/// case, Docker Hub's aliases mapped to `docker.io`.
pub fn normalize(key: &str) -> String {
    let mut k = key.trim();
    for scheme in ["https://", "http://"] {
        if k.len() >= scheme.len() && k[..scheme.len()].eq_ignore_ascii_case(scheme) {
            k = &k[scheme.len()..];
        }
    }
    let host = k.split('/').next().unwrap_or_default().to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            DEFAULT_REGISTRY.to_string()
        }
        _ => host,
    }
}

/// True when a credential key applies to registry `host`.
pub fn matches(key: &str, host: &str) -> bool {
    normalize(key) == normalize(host)
}

/// Picks the entry for `host` among `keys`: an exact key first, then Docker Hub's legacy
/// key for `docker.io`, then a key without path, then any key that normalises to the host
/// (first in sorted order, so the choice is stable).
pub fn best_key<'a>(keys: impl IntoIterator<Item = &'a String>, host: &str) -> Option<&'a String> {
    let mut keys: Vec<&String> = keys.into_iter().collect();
    keys.sort();
    if let Some(k) = keys.iter().find(|k| k.as_str() == host) {
        return Some(k);
    }
    if normalize(host) == DEFAULT_REGISTRY
        && let Some(k) = keys.iter().find(|k| k.as_str() == DOCKER_HUB_AUTH_KEY)
    {
        return Some(k);
    }
    let candidates: Vec<&String> = keys.into_iter().filter(|k| matches(k, host)).collect();
    candidates
        .iter()
        .find(|k| {
            let rest = k.split_once("://").map_or(k.as_str(), |(_, r)| r);
            !rest.trim_end_matches('/').contains('/')
        })
        .or(candidates.first())
        .copied()
}

/// The server address given to a credential helper for `host` (Docker Hub's legacy key for
/// `docker.io`, as Docker does).
pub fn helper_server_url(host: &str) -> String {
    if normalize(host) == DEFAULT_REGISTRY {
        DOCKER_HUB_AUTH_KEY.to_string()
    } else {
        host.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_docker() {
        assert_eq!(normalize("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(normalize("registry-1.docker.io"), "docker.io");
        assert_eq!(normalize("HTTP://Reg.Example:5000/v2/"), "reg.example:5000");
        assert_eq!(normalize("quay.io/org/repo"), "quay.io");
        assert!(matches("https://index.docker.io/v1/", "docker.io"));
        assert!(!matches("reg.example:5000", "reg.example"));
    }

    #[test]
    fn best_key_prefers_exact_then_hub_then_bare() {
        let keys: Vec<String> = vec![
            "https://index.docker.io/v1/".into(),
            "docker.io/library".into(),
            "quay.io/org/repo".into(),
            "https://quay.io".into(),
            "localhost:5000".into(),
        ];
        assert_eq!(
            best_key(&keys, "docker.io").map(String::as_str),
            Some("https://index.docker.io/v1/")
        );
        assert_eq!(
            best_key(&keys, "quay.io").map(String::as_str),
            Some("https://quay.io")
        );
        assert_eq!(
            best_key(&keys, "localhost:5000").map(String::as_str),
            Some("localhost:5000")
        );
        assert_eq!(best_key(&keys, "ghcr.io"), None);
        assert_eq!(helper_server_url("docker.io"), DOCKER_HUB_AUTH_KEY);
        assert_eq!(helper_server_url("ghcr.io"), "ghcr.io");
    }
}
