//! Build arguments: platforms and their automatic args, proxy args, frontend (`BUILDKIT_*`)
//! args, and the global (`ARG` before the first `FROM`) scope.

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// An OCI platform (`linux/arm64`, `linux/arm/v7`), normalised like containerd's `platforms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Platform {
    /// Operating system (`linux`).
    pub os: String,
    /// Architecture (`amd64`, `arm64`, `arm`, ...).
    pub architecture: String,
    /// Variant (`v7`), empty when none.
    pub variant: String,
}

impl Platform {
    /// Parse and normalise `os/arch[/variant]`.
    pub fn parse(s: &str) -> Result<Platform, String> {
        let parts: Vec<&str> = s.split('/').collect();
        if parts.len() < 2 || parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
            return Err(format!(
                "invalid platform {s:?}: expected os/arch[/variant], such as linux/amd64"
            ));
        }
        let os = parts[0].to_ascii_lowercase();
        let (arch, mut variant) = normalize_arch(
            &parts[1].to_ascii_lowercase(),
            &parts
                .get(2)
                .map(|v| v.to_ascii_lowercase())
                .unwrap_or_default(),
        );
        if arch == "arm64" && variant == "v8" {
            variant.clear();
        }
        Ok(Platform {
            os,
            architecture: arch,
            variant,
        })
    }

    /// The platform of the running host (Linux, with the Rust target's architecture).
    pub fn host() -> Platform {
        let (architecture, variant) = normalize_arch(std::env::consts::ARCH, "");
        Platform {
            os: "linux".to_string(),
            architecture,
            variant,
        }
    }
}

fn normalize_arch(arch: &str, variant: &str) -> (String, String) {
    let (a, v) = match (arch, variant) {
        ("i386", _) | ("x86", _) => ("386", ""),
        ("x86_64" | "x86-64" | "amd64", "") => ("amd64", ""),
        ("x86_64" | "x86-64", v) => ("amd64", v),
        ("aarch64" | "arm64", "8" | "v8") => ("arm64", ""),
        ("aarch64", v) => ("arm64", v),
        ("armhf", _) => ("arm", "v7"),
        ("armel", _) => ("arm", "v6"),
        ("arm", "") => ("arm", "v7"),
        ("arm", "5" | "6" | "7" | "8") => return ("arm".into(), format!("v{variant}")),
        (a, v) => (a, v),
    };
    (a.to_string(), v.to_string())
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

/// The automatic platform args (`BUILDPLATFORM` ... `TARGETVARIANT`), in BuildKit's order.
pub fn platform_args(build: &Platform, target: &Platform) -> Vec<(String, String)> {
    [
        ("BUILDPLATFORM", build.to_string()),
        ("BUILDOS", build.os.clone()),
        ("BUILDARCH", build.architecture.clone()),
        ("BUILDVARIANT", build.variant.clone()),
        ("TARGETPLATFORM", target.to_string()),
        ("TARGETOS", target.os.clone()),
        ("TARGETARCH", target.architecture.clone()),
        ("TARGETVARIANT", target.variant.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Proxy settings taken from the predefined proxy build args; given to every `RUN` but never
/// written to the image or its history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProxyEnv {
    /// `http_proxy` / `HTTP_PROXY`.
    pub http_proxy: Option<String>,
    /// `https_proxy` / `HTTPS_PROXY`.
    pub https_proxy: Option<String>,
    /// `ftp_proxy` / `FTP_PROXY`.
    pub ftp_proxy: Option<String>,
    /// `no_proxy` / `NO_PROXY`.
    pub no_proxy: Option<String>,
    /// `all_proxy` / `ALL_PROXY`.
    pub all_proxy: Option<String>,
}

const PROXY_ARGS: [&str; 5] = [
    "http_proxy",
    "https_proxy",
    "ftp_proxy",
    "no_proxy",
    "all_proxy",
];

/// True for the predefined proxy args (any case).
pub fn is_proxy_arg(name: &str) -> bool {
    PROXY_ARGS.iter().any(|p| p.eq_ignore_ascii_case(name))
}

/// True for frontend options passed as build args (`BUILDKIT_INLINE_CACHE`, ...): they
/// configure the build and are never reported as unused.
pub fn is_frontend_arg(name: &str) -> bool {
    name.starts_with("BUILDKIT_")
}

/// The proxy env from the build args; the lower-case spelling wins. `None` when none is set.
pub fn proxy_env(build_args: &BTreeMap<String, String>) -> Option<ProxyEnv> {
    let pick = |lower: &str| {
        build_args
            .get(lower)
            .or_else(|| build_args.get(&lower.to_ascii_uppercase()))
            .cloned()
    };
    let pe = ProxyEnv {
        http_proxy: pick("http_proxy"),
        https_proxy: pick("https_proxy"),
        ftp_proxy: pick("ftp_proxy"),
        no_proxy: pick("no_proxy"),
        all_proxy: pick("all_proxy"),
    };
    (pe != ProxyEnv::default()).then_some(pe)
}

/// A global `ARG` (declared before the first `FROM`) with its resolved value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MetaArg {
    /// The name.
    pub name: String,
    /// The value: the build arg, else the expanded default; `None` when neither exists.
    pub value: Option<String>,
    /// The doc comment.
    pub doc: String,
    /// The line of the `ARG`.
    pub line: usize,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn platforms() {
        let p = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!(p.to_string(), "linux/arm64");
        let p = Platform::parse("linux/arm").unwrap();
        assert_eq!(p.to_string(), "linux/arm/v7");
        assert_eq!(
            Platform::parse("Linux/x86_64").unwrap().to_string(),
            "linux/amd64"
        );
        assert!(Platform::parse("linux").is_err());
        let args = platform_args(
            &Platform::parse("linux/amd64").unwrap(),
            &Platform::parse("linux/arm/v6").unwrap(),
        );
        let m: BTreeMap<_, _> = args.into_iter().collect();
        assert_eq!(m["TARGETVARIANT"], "v6");
        assert_eq!(m["BUILDARCH"], "amd64");
        assert_eq!(m["BUILDVARIANT"], "");
    }

    #[test]
    fn proxies() {
        let mut a = BTreeMap::new();
        assert_eq!(proxy_env(&a), None);
        a.insert("HTTP_PROXY".to_string(), "up".to_string());
        a.insert("http_proxy".to_string(), "low".to_string());
        a.insert("NO_PROXY".to_string(), "np".to_string());
        let pe = proxy_env(&a).unwrap();
        assert_eq!(pe.http_proxy.as_deref(), Some("low"));
        assert_eq!(pe.no_proxy.as_deref(), Some("np"));
        assert!(is_proxy_arg("Https_Proxy"));
        assert!(is_frontend_arg("BUILDKIT_INLINE_CACHE"));
    }
}
