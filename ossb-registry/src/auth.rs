//! `WWW-Authenticate` challenges and bearer tokens.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How a registry wants requests authenticated (from its `/v2/` or a 401 answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// No authentication needed.
    None,
    /// HTTP basic authentication.
    Basic {
        /// The realm, for messages.
        realm: String,
    },
    /// Docker token authentication.
    Bearer {
        /// The token endpoint.
        realm: String,
        /// The `service` parameter for the token endpoint.
        service: Option<String>,
        /// The scope the registry asked for, if any.
        scope: Option<String>,
        /// Why a presented token was refused: `invalid_token` (expired, badly signed,
        /// unknown issuer) or `insufficient_scope` (it does not grant the access needed).
        error: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` header value. Unknown schemes give `None`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = match header.find(char::is_whitespace) {
        Some(i) => (&header[..i], &header[i..]),
        None => (header, ""),
    };
    let params = parse_params(rest);
    let get = |k: &str| params.get(k).cloned();
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic {
            realm: get("realm").unwrap_or_default(),
        }),
        "bearer" => Some(Challenge::Bearer {
            realm: get("realm")?,
            service: get("service"),
            scope: get("scope"),
            error: get("error"),
        }),
        _ => None,
    }
}

/// `key="value", key2=value2` with quoted strings and backslash escapes.
fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() || c == ',' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() {
            break;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek() != Some(&'=') {
            continue;
        }
        chars.next();
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' || c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.insert(key.to_ascii_lowercase(), value);
    }
    out
}

/// The access a request needs: `repository:<name>:pull` or `…:pull,push`, possibly several
/// (a cross-repository mount also needs pull on the source).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope(Vec<String>);

impl Scope {
    /// Pull access to one repository.
    pub fn pull(repository: &str) -> Self {
        Self(vec![format!("repository:{repository}:pull")])
    }

    /// Pull and push access to one repository.
    pub fn push(repository: &str) -> Self {
        Self(vec![format!("repository:{repository}:pull,push")])
    }

    /// No repository access (the `/v2/` ping).
    pub fn none() -> Self {
        Self(Vec::new())
    }

    /// Adds pull access to another repository.
    pub fn and_pull(mut self, repository: &str) -> Self {
        self.0.push(format!("repository:{repository}:pull"));
        self
    }

    /// The scope strings, one per `scope` query parameter.
    pub fn items(&self) -> &[String] {
        &self.0
    }
}

/// A scope string (`repository:a:push,pull repository:b:pull`, items separated by spaces)
/// with each item's actions in a fixed order: `pull`, `push`, then the rest alphabetically.
/// Distribution lists actions in no particular order; messages and comparisons should not
/// depend on it.
pub fn canonical_scope(scope: &str) -> String {
    scope
        .split_whitespace()
        .map(|item| match item.rsplit_once(':') {
            Some((resource, actions)) => {
                let mut acts: Vec<&str> = actions.split(',').filter(|a| !a.is_empty()).collect();
                acts.sort_by_key(|a| match *a {
                    "pull" => (0, *a),
                    "push" => (1, *a),
                    _ => (2, *a),
                });
                acts.dedup();
                format!("{resource}:{}", acts.join(","))
            }
            None => item.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A bearer token from a token endpoint.
#[derive(Clone)]
pub(crate) struct Token {
    pub(crate) value: String,
    pub(crate) expires: Instant,
}

/// The JSON a token endpoint answers.
#[derive(serde::Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    pub(crate) token: Option<String>,
    #[serde(default)]
    pub(crate) access_token: Option<String>,
    #[serde(default)]
    pub(crate) expires_in: Option<u64>,
}

impl TokenResponse {
    /// The token and when to stop using it (10 s early; at least 60 s lifetime by the spec).
    pub(crate) fn into_token(self) -> Option<Token> {
        let value = self.token.filter(|t| !t.is_empty()).or(self.access_token)?;
        let lifetime = self.expires_in.unwrap_or(60).max(60);
        Some(Token {
            value,
            expires: Instant::now() + Duration::from_secs(lifetime.saturating_sub(10)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/alpine:pull".into()),
                error: None,
            })
        );
    }

    #[test]
    fn parses_basic_and_odd_spacing() {
        assert_eq!(
            parse_challenge(r#"Basic realm="ossb test""#),
            Some(Challenge::Basic {
                realm: "ossb test".into()
            })
        );
        assert_eq!(
            parse_challenge(r#"bearer  realm = "https://a/t" , service=reg, scope="a \"b\"""#),
            Some(Challenge::Bearer {
                realm: "https://a/t".into(),
                service: Some("reg".into()),
                scope: Some("a \"b\"".into()),
                error: None,
            })
        );
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="http://t/token",service="reg",scope="repository:a:pull,push repository:b:pull",error="insufficient_scope""#
            ),
            Some(Challenge::Bearer {
                realm: "http://t/token".into(),
                service: Some("reg".into()),
                scope: Some("repository:a:pull,push repository:b:pull".into()),
                error: Some("insufficient_scope".into()),
            })
        );
        assert_eq!(parse_challenge("Negotiate abc"), None);
        assert_eq!(parse_challenge("Bearer service=x"), None);
    }

    #[test]
    fn token_lifetime() {
        let t = TokenResponse {
            token: Some(String::new()),
            access_token: Some("a".into()),
            expires_in: Some(5),
        }
        .into_token()
        .expect("token");
        assert_eq!(t.value, "a");
        assert!(t.expires > Instant::now() + Duration::from_secs(40));
        assert!(
            TokenResponse {
                token: None,
                access_token: None,
                expires_in: None
            }
            .into_token()
            .is_none()
        );
    }

    #[test]
    fn canonical_scopes() {
        assert_eq!(
            canonical_scope("repository:a/b:push,pull  repository:c:delete,push,pull,pull"),
            "repository:a/b:pull,push repository:c:pull,push,delete"
        );
        assert_eq!(canonical_scope("registry:catalog:*"), "registry:catalog:*");
    }

    #[test]
    fn scopes() {
        let s = Scope::push("a/b").and_pull("c");
        assert_eq!(s.items(), ["repository:a/b:pull,push", "repository:c:pull"]);
        assert!(Scope::none().items().is_empty());
        assert_eq!(Scope::pull("x").items(), ["repository:x:pull"]);
    }
}
