//! Platforms (`linux/arm64/v8`): parsing, containerd-style normalisation and matching.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::serde_helpers::null_default;
use crate::image::error::ImageError;

/// A platform, serialised in Go field order (`architecture`, `os`, `os.version`, `os.features`,
/// `variant`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture (`amd64`, `arm64`).
    pub architecture: String,
    /// Operating system (`linux`).
    pub os: String,
    /// OS version (Windows).
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// OS features (Windows).
    #[serde(
        rename = "os.features",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub os_features: Vec<String>,
    /// CPU variant (`v7`, `v8`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// Parses `os/arch[/variant]` and normalises it.
    pub fn parse(value: &str) -> Result<Self, ImageError> {
        let parts: Vec<&str> = value.split('/').collect();
        let bad = || ImageError::InvalidPlatform {
            value: value.to_string(),
        };
        if parts.len() < 2 || parts.len() > 3 || parts.iter().any(|p| p.trim().is_empty()) {
            return Err(bad());
        }
        let p = Platform {
            architecture: parts[1].to_string(),
            os: parts[0].to_string(),
            os_version: None,
            os_features: Vec::new(),
            variant: parts.get(2).map(|v| v.to_string()),
        };
        Ok(p.normalize())
    }

    /// The normalised form, following containerd: `x86_64` -> `amd64`, `aarch64` -> `arm64`
    /// (variant `v8` is the default and is dropped), `arm` defaults to `v7`, `armhf` -> `arm/v7`,
    /// `armel` -> `arm/v6`, `i386` -> `386`, `macos` -> `darwin`.
    pub fn normalize(&self) -> Self {
        let mut os = self.os.to_ascii_lowercase();
        if os == "macos" {
            os = "darwin".into();
        }
        let arch_in = self.architecture.to_ascii_lowercase();
        let variant_in = self.variant.as_deref().unwrap_or("").to_ascii_lowercase();
        let (arch, variant): (&str, String) = match arch_in.as_str() {
            "i386" => ("386", String::new()),
            "x86_64" | "x86-64" | "amd64" => (
                "amd64",
                if variant_in == "v1" {
                    String::new()
                } else {
                    variant_in
                },
            ),
            "aarch64" | "arm64" => (
                "arm64",
                match variant_in.as_str() {
                    "8" | "v8" | "v8.0" => String::new(),
                    "9" | "9.0" | "v9.0" => "v9".into(),
                    _ => variant_in,
                },
            ),
            "armhf" => ("arm", "v7".into()),
            "armel" => ("arm", "v6".into()),
            "arm" => (
                "arm",
                match variant_in.as_str() {
                    "" | "7" => "v7".into(),
                    "5" | "6" | "8" => format!("v{variant_in}"),
                    _ => variant_in,
                },
            ),
            other => (other, variant_in),
        };
        Platform {
            architecture: arch.to_string(),
            os,
            os_version: self.os_version.clone(),
            os_features: self.os_features.clone(),
            variant: (!variant.is_empty()).then_some(variant),
        }
    }

    /// Whether `candidate` (e.g. an index entry) satisfies this wanted platform: the same
    /// normalised OS, architecture and variant. An `arm64` without a variant is `arm64/v8`.
    pub fn matches(&self, candidate: &Platform) -> bool {
        let a = self.normalize();
        let b = candidate.normalize();
        a.os == b.os && a.architecture == b.architecture && a.variant == b.variant
    }

    /// The platform of the running host (`linux/amd64`, `linux/arm64`, ...).
    pub fn host() -> Self {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform {
            architecture: arch.into(),
            os: std::env::consts::OS.into(),
            ..Platform::default()
        }
        .normalize()
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = ImageError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Platform::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        match Platform::parse(s) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn normalizes_like_containerd() {
        assert_eq!(p("linux/x86_64").to_string(), "linux/amd64");
        assert_eq!(p("linux/aarch64").to_string(), "linux/arm64");
        assert_eq!(p("linux/arm64/v8").to_string(), "linux/arm64");
        assert_eq!(p("linux/arm").to_string(), "linux/arm/v7");
        assert_eq!(p("linux/armhf").to_string(), "linux/arm/v7");
        assert!(p("linux/arm64").matches(&p("linux/aarch64/v8")));
        assert!(!p("linux/arm/v7").matches(&p("linux/arm/v6")));
        assert!(!p("linux/amd64").matches(&p("linux/arm64")));
        for bad in ["linux", "linux/", "/amd64", "a/b/c/d"] {
            assert!(Platform::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn serializes_in_go_order() {
        let mut x = p("linux/arm/v7");
        x.os_features = vec!["f".into()];
        let s = serde_json::to_string(&x).unwrap_or_default();
        assert_eq!(
            s,
            r#"{"architecture":"arm","os":"linux","os.features":["f"],"variant":"v7"}"#
        );
    }
}
