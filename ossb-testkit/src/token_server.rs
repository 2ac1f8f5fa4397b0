//! A Docker token server for tests: the `realm` a Distribution registry configured with
//! `auth: token:` sends clients to (the Docker token authentication specification).
//!
//! It speaks the real protocol: `GET /token?service=S&scope=repository:NAME:ACTIONS` with
//! HTTP basic credentials (or none, for anonymous access), and the OAuth2 form
//! `POST /token` with `grant_type=password` or `grant_type=refresh_token`. Like the Docker
//! Hub and Harbor token servers it answers 401 for a wrong password and otherwise issues a
//! token that grants the *intersection* of what was asked and what the account may do; the
//! registry then refuses requests the token does not cover. The tokens are JWTs signed as
//! Distribution verifies them (see [`Signing`]). Every request is recorded for assertions.

use std::collections::BTreeSet;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;

use crate::jwt::{Signer, Signing};
use crate::registry::RegistryStartError;

/// The `service` the registry names in its challenges and the token's audience.
pub const TOKEN_SERVICE: &str = "ossb-test-registry";
/// The token issuer the registry trusts.
pub const TOKEN_ISSUER: &str = "ossb-test-token-server";

/// Requests and headers larger than this are refused (a test server, not a fortress).
const MAX_HEAD: u64 = 64 * 1024;

/// Who may log in and what each account may do: the token server's policy.
#[derive(Debug, Clone, Default)]
pub struct TokenAuth {
    users: Vec<(String, String)>,
    refresh_tokens: Vec<(String, String)>,
    grants: Vec<(Option<String>, String, Vec<String>)>,
    signing: Signing,
    expires_in: u64,
    expired_first: usize,
    unavailable_first: usize,
}

impl TokenAuth {
    /// No users, no grants, RS256 with a certificate chain, tokens valid for 300 s.
    pub fn new() -> Self {
        Self {
            expires_in: 300,
            ..Self::default()
        }
    }

    /// Adds an account with a password.
    pub fn user(mut self, name: &str, password: &str) -> Self {
        self.users.push((name.to_string(), password.to_string()));
        self
    }

    /// Accepts `token` as an OAuth2 refresh token (a Docker `identitytoken`) for `user`.
    pub fn refresh_token(mut self, user: &str, token: &str) -> Self {
        self.refresh_tokens
            .push((user.to_string(), token.to_string()));
        self
    }

    /// Lets `user` do `actions` (`pull`, `push`, `delete`, `*`) on `repository` (`*` for
    /// every repository).
    pub fn grant(mut self, user: &str, repository: &str, actions: &[&str]) -> Self {
        self.grants.push((
            Some(user.to_string()),
            repository.to_string(),
            actions.iter().map(|a| a.to_string()).collect(),
        ));
        self
    }

    /// Lets anonymous clients do `actions` on `repository`.
    pub fn grant_anonymous(mut self, repository: &str, actions: &[&str]) -> Self {
        self.grants.push((
            None,
            repository.to_string(),
            actions.iter().map(|a| a.to_string()).collect(),
        ));
        self
    }

    /// How tokens are signed and identified.
    pub fn signing(mut self, signing: Signing) -> Self {
        self.signing = signing;
        self
    }

    /// The `expires_in` of issued tokens, in seconds (also their `exp`).
    pub fn expires_in(mut self, seconds: u64) -> Self {
        self.expires_in = seconds;
        self
    }

    /// Issues the first `n` tokens already expired (`exp` ten minutes ago, beyond the
    /// registry's 60 s leeway) while `expires_in` still claims they are fresh: the registry
    /// refuses them with `error="invalid_token"`, as it refuses any token whose time ran out.
    pub fn expired_tokens(mut self, n: usize) -> Self {
        self.expired_first = n;
        self
    }

    /// Answers the first `n` requests with `503 Service Unavailable`, as an overloaded token
    /// server does (clients retry with backoff).
    pub fn unavailable_first(mut self, n: usize) -> Self {
        self.unavailable_first = n;
        self
    }

    fn password_ok(&self, user: &str, password: &str) -> bool {
        self.users.iter().any(|(u, p)| u == user && p == password)
    }

    fn allowed(&self, user: Option<&str>, repository: &str) -> BTreeSet<String> {
        self.grants
            .iter()
            .filter(|(u, r, _)| u.as_deref() == user && (r == repository || r == "*"))
            .flat_map(|(_, _, a)| a.iter().cloned())
            .collect()
    }

    /// The scopes granted to `user` out of `requested` (`repository:NAME:ACTIONS` each);
    /// actions the account lacks are dropped, as real token servers do.
    fn grant_scopes(&self, user: Option<&str>, requested: &[String]) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for scope in requested {
            let mut parts = scope.splitn(3, ':');
            let (Some("repository"), Some(name), Some(actions)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let allowed = self.allowed(user, name);
            let granted: Vec<String> = actions
                .split(',')
                .filter(|a| allowed.contains(*a) || allowed.contains("*"))
                .map(str::to_string)
                .collect();
            if granted.is_empty() {
                continue;
            }
            match out.iter_mut().find(|(n, _)| n == name) {
                Some((_, acts)) => {
                    for a in granted {
                        if !acts.contains(&a) {
                            acts.push(a);
                        }
                    }
                }
                None => out.push((name.to_string(), granted)),
            }
        }
        out
    }
}

/// One request the token server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// `GET` or `POST`.
    pub method: String,
    /// The account the client named (also when its password was wrong); `None` when
    /// anonymous.
    pub user: Option<String>,
    /// The `service` parameter.
    pub service: Option<String>,
    /// The scopes asked for, one entry per scope, in request order.
    pub scopes: Vec<String>,
    /// The scopes granted, as `repository:NAME:ACTIONS` (empty when refused).
    pub granted: Vec<String>,
    /// The HTTP status answered (200, 401, 400, 404, 503).
    pub status: u16,
}

struct Shared {
    policy: TokenAuth,
    signer: Signer,
    log: Mutex<Vec<TokenRequest>>,
    tokens: Mutex<Vec<String>>,
    issued: AtomicUsize,
    received: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running token server on `127.0.0.1:<free port>` (plain HTTP), stopped on drop.
pub struct TokenServer {
    url: String,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    addr: std::net::SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for TokenServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenServer")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl TokenServer {
    /// Generates the signing key in `dir` and starts serving `policy`.
    pub(crate) fn start(policy: TokenAuth, dir: &Path) -> Result<Self, RegistryStartError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| RegistryStartError(format!("creating {}: {e}", dir.display())))?;
        let signer = Signer::generate(dir, policy.signing)?;
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(|e| RegistryStartError(format!("binding the token server: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| RegistryStartError(format!("token server address: {e}")))?;
        let shared = Arc::new(Shared {
            policy,
            signer,
            log: Mutex::new(Vec::new()),
            tokens: Mutex::new(Vec::new()),
            issued: AtomicUsize::new(0),
            received: AtomicUsize::new(0),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (shared, stop) = (shared.clone(), stop.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = conn else { continue };
                    let shared = shared.clone();
                    std::thread::spawn(move || {
                        let _ = serve(stream, &shared);
                    });
                }
            })
        };
        Ok(Self {
            url: format!("http://{addr}/token"),
            shared,
            stop,
            addr,
            thread: Some(thread),
        })
    }

    /// The token endpoint, `http://127.0.0.1:PORT/token` (the registry's `realm`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The PEM bundle the registry trusts for token signatures (`rootcertbundle`).
    pub fn root_cert_bundle(&self) -> &Path {
        self.shared.signer.bundle()
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<TokenRequest> {
        lock(&self.shared.log).clone()
    }

    /// Every token issued so far (for checks that they never show up in logs).
    pub fn issued_tokens(&self) -> Vec<String> {
        lock(&self.shared.tokens).clone()
    }

    /// Forgets the recorded requests (not the issued tokens).
    pub fn clear_requests(&self) {
        lock(&self.shared.log).clear();
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(500));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One parsed request.
struct Request {
    method: String,
    path: String,
    query: String,
    authorization: Option<String>,
    body: String,
}

fn read_request(stream: &TcpStream) -> io::Result<Request> {
    let mut reader = BufReader::new(stream.take(MAX_HEAD));
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut words = line.split_whitespace();
    let method = words.next().unwrap_or_default().to_string();
    let target = words.next().unwrap_or_default().to_string();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target, String::new()),
    };
    let mut authorization = None;
    let mut length = 0usize;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "authorization" => authorization = Some(v.trim().to_string()),
                "content-length" => length = v.trim().parse().unwrap_or(0),
                _ => {}
            }
        }
    }
    let mut body = vec![0; length.min(MAX_HEAD as usize)];
    reader.read_exact(&mut body)?;
    Ok(Request {
        method,
        path,
        query,
        authorization,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn respond(mut stream: &TcpStream, status: u16, extra: &str, body: &str) -> io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        503 => "Service Unavailable",
        _ => "Error",
    };
    write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n{extra}\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

fn serve(stream: TcpStream, shared: &Shared) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let req = read_request(&stream)?;
    if req.path != "/token" {
        return respond(&stream, 404, "", r#"{"details":"not found"}"#);
    }
    let params = match req.method.as_str() {
        "GET" => parse_form(&req.query),
        "POST" => parse_form(&req.body),
        _ => return respond(&stream, 404, "", r#"{"details":"not found"}"#),
    };
    let get = |k: &str| {
        params
            .iter()
            .find(|(pk, _)| pk == k)
            .map(|(_, v)| v.clone())
    };
    let scopes: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .collect();
    let mut record = TokenRequest {
        method: req.method.clone(),
        user: None,
        service: get("service"),
        scopes: scopes.clone(),
        granted: Vec::new(),
        status: 200,
    };
    let policy = &shared.policy;
    if shared.received.fetch_add(1, Ordering::SeqCst) < policy.unavailable_first {
        record.status = 503;
        lock(&shared.log).push(record);
        return respond(
            &stream,
            503,
            "",
            r#"{"details":"token service unavailable"}"#,
        );
    }
    // Who is asking: Ok(None) anonymous, Ok(Some(user)) authenticated, Err(()) refused.
    let who: Result<Option<String>, ()> = if req.method == "POST" {
        match get("grant_type").as_deref() {
            Some("refresh_token") => {
                let t = get("refresh_token").unwrap_or_default();
                match policy.refresh_tokens.iter().find(|(_, rt)| *rt == t) {
                    Some((u, _)) => Ok(Some(u.clone())),
                    None => Err(()),
                }
            }
            Some("password") => {
                let u = get("username").unwrap_or_default();
                record.user = Some(u.clone());
                if policy.password_ok(&u, &get("password").unwrap_or_default()) {
                    Ok(Some(u))
                } else {
                    Err(())
                }
            }
            _ => {
                record.status = 400;
                lock(&shared.log).push(record);
                return respond(&stream, 400, "", r#"{"error":"unsupported_grant_type"}"#);
            }
        }
    } else {
        match basic_credentials(req.authorization.as_deref()) {
            None => Ok(None),
            Some((u, p)) => {
                record.user = Some(u.clone());
                if policy.password_ok(&u, &p) {
                    Ok(Some(u))
                } else {
                    Err(())
                }
            }
        }
    };
    let user = match who {
        Ok(u) => u,
        Err(()) => {
            record.status = 401;
            lock(&shared.log).push(record);
            // Docker Hub's answer to a wrong password.
            return respond(
                &stream,
                401,
                "WWW-Authenticate: Basic realm=\"ossb-test-token-server\"\r\n",
                r#"{"details":"incorrect username or password"}"#,
            );
        }
    };
    record.user = user.clone();
    let granted = policy.grant_scopes(user.as_deref(), &scopes);
    record.granted = granted
        .iter()
        .map(|(n, a)| format!("repository:{n}:{}", a.join(",")))
        .collect();
    let n = shared.issued.fetch_add(1, Ordering::SeqCst);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // An expired token: everything ten minutes in the past, beyond the 60 s leeway.
    let (iat, exp) = if n < policy.expired_first {
        (now - 900, now - 600)
    } else {
        (now, now + policy.expires_in)
    };
    let access: Vec<serde_json::Value> = granted
        .iter()
        .map(|(name, actions)| {
            serde_json::json!({"type": "repository", "name": name, "actions": actions})
        })
        .collect();
    let claims = serde_json::json!({
        "iss": TOKEN_ISSUER,
        "sub": user.clone().unwrap_or_default(),
        "aud": record.service.clone().unwrap_or_default(),
        "exp": exp,
        "nbf": iat,
        "iat": iat,
        "jti": format!("ossb-test-{now}-{n}"),
        "access": access,
    });
    let token = match shared.signer.sign(&claims) {
        Ok(t) => t,
        Err(e) => {
            record.status = 500;
            lock(&shared.log).push(record);
            return respond(
                &stream,
                500,
                "",
                &serde_json::json!({"details": e}).to_string(),
            );
        }
    };
    lock(&shared.tokens).push(token.clone());
    lock(&shared.log).push(record);
    let body = serde_json::json!({
        "token": token,
        "access_token": token,
        "expires_in": policy.expires_in,
    });
    respond(&stream, 200, "", &body.to_string())
}

fn basic_credentials(header: Option<&str>) -> Option<(String, String)> {
    let rest = header?.strip_prefix("Basic ")?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// `application/x-www-form-urlencoded` pairs (also a query string).
fn parse_form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding() {
        assert_eq!(
            parse_form("scope=repository%3Aa%2Fb%3Apull%2Cpush&service=x+y&scope=z"),
            vec![
                ("scope".to_string(), "repository:a/b:pull,push".to_string()),
                ("service".to_string(), "x y".to_string()),
                ("scope".to_string(), "z".to_string()),
            ]
        );
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn grants_are_intersections() {
        let p = TokenAuth::new()
            .grant("u", "a", &["pull"])
            .grant("u", "b", &["*"])
            .grant_anonymous("pub", &["pull"]);
        let req = |user, scopes: &[&str]| {
            p.grant_scopes(
                user,
                &scopes.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            )
        };
        assert_eq!(
            req(
                Some("u"),
                &[
                    "repository:a:pull,push",
                    "repository:b:pull,push",
                    "repository:c:pull"
                ]
            ),
            vec![
                ("a".to_string(), vec!["pull".to_string()]),
                (
                    "b".to_string(),
                    vec!["pull".to_string(), "push".to_string()]
                ),
            ]
        );
        assert!(req(None, &["repository:a:pull"]).is_empty());
        assert_eq!(req(None, &["repository:pub:pull"]).len(), 1);
    }
}
