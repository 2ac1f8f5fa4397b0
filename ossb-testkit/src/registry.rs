//! A real Distribution registry (`docker-registry`) for tests.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::openssl::openssl;
use crate::token_server::{TOKEN_ISSUER, TOKEN_SERVICE, TokenAuth, TokenServer};

/// The registry binary that is run.
const REGISTRY_BIN: &str = "docker-registry";

/// Why a test registry could not be started.
#[derive(Debug)]
pub struct RegistryStartError(pub String);

impl std::fmt::Display for RegistryStartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot start the test registry: {}", self.0)
    }
}

impl std::error::Error for RegistryStartError {}

fn io_err(what: &str) -> impl Fn(io::Error) -> RegistryStartError + '_ {
    move |e| RegistryStartError(format!("{what}: {e}"))
}

/// A running `docker-registry` on `127.0.0.1:<free port>`; the process is stopped and its
/// storage deleted on drop.
pub struct Registry {
    child: Child,
    host: String,
    ca_cert: Option<PathBuf>,
    credentials: Option<(String, String)>,
    token: Option<TokenServer>,
    dir: tempfile::TempDir,
}

/// How the registry authenticates clients.
enum Auth<'a> {
    None,
    Htpasswd(&'a str, &'a str),
    Token(TokenAuth),
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("host", &self.host)
            .field("tls", &self.ca_cert.is_some())
            .field("auth", &self.credentials.is_some())
            .field("token_server", &self.token)
            .finish()
    }
}

impl Registry {
    /// Starts a registry with plain HTTP and no authentication.
    pub fn start_plain() -> Result<Self, RegistryStartError> {
        Self::start(Auth::None)
    }

    /// Starts a registry with TLS (a fresh self-signed CA and a server certificate for
    /// `127.0.0.1` and `localhost`) and htpasswd basic authentication for one user.
    pub fn start_tls_htpasswd(user: &str, pass: &str) -> Result<Self, RegistryStartError> {
        Self::start(Auth::Htpasswd(user, pass))
    }

    /// Starts a registry with TLS (as [`Registry::start_tls_htpasswd`]) and Docker token
    /// authentication (`auth: token:` with realm, service, issuer and rootcertbundle), in
    /// front of a [`TokenServer`] of the tests' own that serves `policy`.
    pub fn start_token_auth(policy: TokenAuth) -> Result<Self, RegistryStartError> {
        Self::start(Auth::Token(policy))
    }

    /// The token server of a token-auth registry.
    pub fn token_server(&self) -> Option<&TokenServer> {
        self.token.as_ref()
    }

    /// The registry address, `127.0.0.1:PORT`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The CA certificate that signed the server certificate (TLS registries only).
    pub fn ca_cert_path(&self) -> Option<&Path> {
        self.ca_cert.as_deref()
    }

    /// The user and password of a TLS+htpasswd registry.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.credentials
            .as_ref()
            .map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// The registry's storage directory (for tests that inspect what was stored).
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The registry's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    fn start(auth: Auth<'_>) -> Result<Self, RegistryStartError> {
        let mut dir = tempfile::Builder::new()
            .prefix("ossb-test-registry-")
            .tempdir()
            .map_err(io_err("creating a temp dir"))?;
        let ca_cert = match auth {
            Auth::None => None,
            _ => Some(make_certs(dir.path())?),
        };
        let (credentials, mut token) = match auth {
            Auth::None => (None, None),
            Auth::Htpasswd(u, p) => (Some((u.to_string(), p.to_string())), None),
            Auth::Token(policy) => (
                None,
                Some(TokenServer::start(policy, &dir.path().join("token"))?),
            ),
        };
        if let Some((user, pass)) = &credentials {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, pass])
                .output()
                .map_err(io_err("running htpasswd (apache2-utils)"))?;
            if !out.status.success() {
                return Err(RegistryStartError(format!(
                    "htpasswd failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                )));
            }
            std::fs::write(dir.path().join("htpasswd"), &out.stdout)
                .map_err(io_err("writing htpasswd"))?;
        }
        // A free port can be taken by someone else between probing and binding: retry.
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port()?;
            let host = format!("127.0.0.1:{port}");
            let mode = match (&credentials, &token) {
                (Some(_), _) => ConfigAuth::Htpasswd,
                (None, Some(t)) => ConfigAuth::Token(t),
                (None, None) => ConfigAuth::None,
            };
            write_config(dir.path(), &host, mode)?;
            let log = std::fs::File::create(dir.path().join("registry.log"))
                .map_err(io_err("creating the registry log"))?;
            let log2 = log.try_clone().map_err(io_err("cloning the log handle"))?;
            // Distribution reads REGISTRY_* variables as config overrides: clean environment.
            let child = Command::new(REGISTRY_BIN)
                .arg("serve")
                .arg(dir.path().join("config.yml"))
                .env_clear()
                .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log2)
                .spawn()
                .map_err(io_err("running docker-registry"))?;
            let mut reg = Registry {
                child,
                host,
                ca_cert: ca_cert.clone(),
                credentials: credentials.clone(),
                token: token.take(),
                dir,
            };
            match reg.wait_ready(port) {
                Ok(()) => return Ok(reg),
                Err(e) => {
                    last = format!("{e}; log:\n{}", reg.log());
                    let _ = reg.child.kill();
                    let _ = reg.child.wait();
                    token = reg.token.take();
                    // Take the directory back to retry with another port.
                    dir = std::mem::replace(
                        &mut reg.dir,
                        tempfile::tempdir().map_err(io_err("creating a temp dir"))?,
                    );
                }
            }
        }
        Err(RegistryStartError(format!(
            "registry did not start: {last}"
        )))
    }

    /// Waits until `/v2/` answers (200 plain, 401 with auth), at most 15 s.
    fn wait_ready(&mut self, port: u16) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("docker-registry exited with {status}"));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
                && self.v2_answers()
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err("/v2/ did not answer within 15 s".to_string())
    }

    fn v2_answers(&self) -> bool {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-o", "/dev/null", "-w", "%{http_code}"]);
        let url = match &self.ca_cert {
            Some(ca) => {
                cmd.arg("--cacert").arg(ca);
                format!("https://{}/v2/", self.host)
            }
            None => format!("http://{}/v2/", self.host),
        };
        match cmd.arg(url).output() {
            Ok(out) => matches!(&out.stdout[..], b"200" | b"401"),
            // Without curl, an accepted TCP connection is the best sign of life.
            Err(_) => true,
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16, RegistryStartError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(io_err("finding a free port"))?;
    Ok(l.local_addr()
        .map_err(io_err("finding a free port"))?
        .port())
}

/// The `auth:` section of the registry configuration (TLS goes with any authentication).
enum ConfigAuth<'a> {
    None,
    Htpasswd,
    Token(&'a TokenServer),
}

fn write_config(dir: &Path, addr: &str, auth: ConfigAuth<'_>) -> Result<(), RegistryStartError> {
    let d = dir.display();
    let mut cfg = format!(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  cache:\n    blobdescriptor: inmemory\n  \
         filesystem:\n    rootdirectory: {d}/data\n  delete:\n    enabled: true\nhttp:\n  \
         addr: {addr}\n  secret: ossb-test-secret\n  headers:\n    X-Content-Type-Options: [nosniff]\n"
    );
    if !matches!(auth, ConfigAuth::None) {
        cfg.push_str(&format!(
            "  tls:\n    certificate: {d}/certs/server.crt\n    key: {d}/certs/server.key\n"
        ));
    }
    match auth {
        ConfigAuth::None => {}
        ConfigAuth::Htpasswd => cfg.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: ossb-test\n    path: {d}/htpasswd\n"
        )),
        ConfigAuth::Token(t) => cfg.push_str(&format!(
            "auth:\n  token:\n    realm: {}\n    service: {TOKEN_SERVICE}\n    \
             issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
            t.url(),
            t.root_cert_bundle().display()
        )),
    }
    std::fs::write(dir.join("config.yml"), cfg).map_err(io_err("writing the registry config"))
}

/// Makes a CA and a server certificate for 127.0.0.1/localhost signed by it; returns the CA path.
/// Make a fresh CA and a server certificate for `127.0.0.1` and `localhost` with `openssl` in
/// `dir/certs`: `ca.crt`, `server.crt`, `server.key`. Returns the CA's path.
pub fn make_certs(dir: &Path) -> Result<PathBuf, RegistryStartError> {
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs).map_err(io_err("creating the certs dir"))?;
    std::fs::write(
        certs.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .map_err(io_err("writing the openssl extension file"))?;
    let steps: [&[&str]; 3] = [
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-sha256",
            "-days",
            "2",
            "-subj",
            "/CN=ossb-test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-sha256",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-sha256",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.crt",
        ],
    ];
    for args in steps {
        openssl(&certs, args)?;
    }
    Ok(certs.join("ca.crt"))
}
