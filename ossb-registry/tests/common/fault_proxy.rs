//! A fault-injecting HTTP/1.1 proxy on 127.0.0.1 in front of a real registry.
//!
//! Each client connection carries one request: the proxy reads it, decides with a seeded RNG
//! whether to inject a fault, forwards it otherwise to the upstream registry (with
//! `Connection: close`) and relays the answer, then closes the connection. Faults:
//!
//! * [`Fault::DropRequest`]: the connection is closed after the request head and part of the
//!   body, without an answer;
//! * [`Fault::DropResponse`]: the request is forwarded (the registry acts on it), then the
//!   answer is cut off halfway through (mid-body, or mid-head when it has no body);
//! * [`Fault::Status`]: 500, 502 or 503 without forwarding;
//! * [`Fault::TooMany`]: 429, with or without `Retry-After: 1`.
//!
//! Every request is recorded with the fault it got, so tests can count attempts. The `Host`
//! header is forwarded unchanged, so the registry's `Location` headers point back at the
//! proxy.
//!
//! Two more behaviours stand in for a registry that keeps blobs in object storage:
//! [`FaultProxy::set_blob_redirect`] answers blob `GET`s with `307` to another server (as
//! Distribution does with an S3 or GCS storage driver), and [`FaultProxy::set_basic_gate`]
//! demands basic authentication for every request, so that clients send `Authorization`.
//! [`FaultProxy::set_header_override`] makes a lying registry: one header of every relayed
//! answer is replaced (a wrong `Docker-Content-Digest`).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// Socket timeouts, so that no test can hang on the proxy.
const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// A fault injected into one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Close the connection mid-request, without an answer.
    DropRequest,
    /// Forward the request, then cut the answer off halfway.
    DropResponse,
    /// Answer this server error (500, 502 or 503) without forwarding.
    Status(u16),
    /// Answer 429, with `Retry-After: 1` when the flag is set.
    TooMany {
        /// Whether a `Retry-After` header is sent.
        retry_after: bool,
    },
}

/// Fault rates (probabilities per request, each in 0..=1; their sum should stay below 1).
#[derive(Debug, Clone, Copy)]
pub struct Rates {
    /// [`Fault::DropRequest`].
    pub drop_request: f64,
    /// [`Fault::DropResponse`].
    pub drop_response: f64,
    /// [`Fault::Status`] with 500, 502 or 503.
    pub server_error: f64,
    /// [`Fault::TooMany`] (half of them with `Retry-After`).
    pub too_many: f64,
}

impl Rates {
    /// No faults.
    pub const NONE: Rates = Rates {
        drop_request: 0.0,
        drop_response: 0.0,
        server_error: 0.0,
        too_many: 0.0,
    };
}

/// How the proxy treats requests.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// Faults at random at these rates.
    Random(Rates),
    /// Every request gets this fault.
    AlwaysFail(Fault),
    /// Every request with this method gets this fault; the others go through.
    FailMethod(&'static str, Fault),
}

/// One request seen by the proxy.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The method (`GET`, `PATCH`, …).
    pub method: String,
    /// The request target (path and query).
    pub target: String,
    /// The `Range` header, if any.
    pub range: Option<String>,
    /// The size of the request body.
    pub body_len: usize,
    /// The fault injected, if any.
    pub fault: Option<Fault>,
    /// The upstream status relayed (forwarded requests only).
    pub status: Option<u16>,
    /// Whether the request carried an `Authorization` header.
    pub authorized: bool,
}

struct State {
    upstream: SocketAddr,
    mode: Mutex<Mode>,
    rng: Mutex<u64>,
    /// At most this many faults in a row (then one request goes through), when set.
    max_consecutive: Mutex<Option<u32>>,
    consecutive: Mutex<u32>,
    seen: Mutex<Vec<Seen>>,
    stop: AtomicBool,
    /// Blob `GET`s are redirected to `BASE/DIGEST` when set.
    blob_redirect: Mutex<Option<String>>,
    /// Requests without `Authorization` get a basic challenge when set.
    basic_gate: AtomicBool,
    /// A response header (lowercase name, value) replaced in relayed answers.
    header_override: Mutex<Option<(String, String)>>,
}

/// A running proxy; stopped on drop.
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<State>,
    accept: Option<JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl FaultProxy {
    /// Starts a proxy in front of `upstream` (`127.0.0.1:PORT`), with a seeded RNG.
    pub fn start(upstream: &str, mode: Mode, seed: u64) -> FaultProxy {
        let upstream: SocketAddr = upstream.parse().expect("upstream is ip:port");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let state = Arc::new(State {
            upstream,
            mode: Mutex::new(mode),
            rng: Mutex::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1),
            max_consecutive: Mutex::new(None),
            consecutive: Mutex::new(0),
            seen: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            blob_redirect: Mutex::new(None),
            basic_gate: AtomicBool::new(false),
            header_override: Mutex::new(None),
        });
        let st = state.clone();
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                std::thread::spawn(move || {
                    let _ = handle(&st, conn);
                });
            }
        });
        FaultProxy {
            addr,
            state,
            accept: Some(accept),
        }
    }

    /// The proxy address, `127.0.0.1:PORT` (use it as the registry host).
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Switches the mode (for example to "always fail").
    pub fn set_mode(&self, mode: Mode) {
        *lock(&self.state.mode) = mode;
    }

    /// Lets at most `n` faults happen in a row: after `n`, one request goes through. Keeps
    /// random faults within a client's retry budget. Not applied to [`Mode::AlwaysFail`].
    pub fn set_max_consecutive_faults(&self, n: Option<u32>) {
        *lock(&self.state.max_consecutive) = n;
    }

    /// Answers blob `GET`s with `307 Temporary Redirect` to `BASE/DIGEST?signature=…`
    /// instead of forwarding them (`None` forwards again).
    pub fn set_blob_redirect(&self, base: Option<String>) {
        *lock(&self.state.blob_redirect) = base;
    }

    /// Answers every request without an `Authorization` header with `401` and a basic
    /// challenge; requests with one are forwarded (the registry behind ignores it).
    pub fn set_basic_gate(&self, on: bool) {
        self.state.basic_gate.store(on, Ordering::SeqCst);
    }

    /// Replaces header `name` (when present) in every relayed answer with `value`.
    pub fn set_header_override(&self, name: &str, value: &str) {
        *lock(&self.state.header_override) = Some((name.to_ascii_lowercase(), value.to_string()));
    }

    /// Every request seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.state.seen).clone()
    }

    /// Forgets the requests seen so far.
    pub fn reset_seen(&self) {
        lock(&self.state.seen).clear();
    }

    /// How many requests got a fault.
    pub fn faults(&self) -> usize {
        self.seen().iter().filter(|s| s.fault.is_some()).count()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// xorshift64*: a float in [0, 1).
fn next(state: &State) -> f64 {
    let mut x = lock(&state.rng);
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    let v = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
    (v >> 11) as f64 / (1u64 << 53) as f64
}

fn choose(state: &State, method: &str) -> Option<Fault> {
    let mode = *lock(&state.mode);
    let fault = match mode {
        Mode::AlwaysFail(f) => return Some(f),
        // Other methods neither fail nor break a run of faults.
        Mode::FailMethod(m, _) if m != method => return None,
        Mode::FailMethod(_, f) => Some(f),
        Mode::Random(r) => {
            let x = next(state);
            let y = next(state);
            let mut edge = r.drop_request;
            if x < edge {
                Some(Fault::DropRequest)
            } else if x < {
                edge += r.drop_response;
                edge
            } {
                Some(Fault::DropResponse)
            } else if x < {
                edge += r.server_error;
                edge
            } {
                Some(Fault::Status([500, 502, 503][(y * 3.0) as usize % 3]))
            } else if x < edge + r.too_many {
                Some(Fault::TooMany {
                    retry_after: y < 0.5,
                })
            } else {
                None
            }
        }
    };
    let mut run = lock(&state.consecutive);
    match (fault, *lock(&state.max_consecutive)) {
        (Some(_), Some(max)) if *run >= max => {
            *run = 0;
            None
        }
        (Some(f), _) => {
            *run += 1;
            Some(f)
        }
        (None, _) => {
            *run = 0;
            None
        }
    }
}

struct Request {
    head: Vec<u8>,
    method: String,
    target: String,
    /// Header lines (name lowercased, value) in order.
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn read_head(r: &mut BufReader<TcpStream>) -> io::Result<Option<Request>> {
    // A TLS ClientHello (an https probe) is not HTTP: close at once.
    let first = r.fill_buf()?;
    if first.is_empty() || !first[0].is_ascii_alphabetic() {
        return Ok(None);
    }
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line)? == 0 {
            return Ok(None);
        }
        head.extend_from_slice(&line);
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        if head.len() > 64 << 10 {
            return Ok(None);
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.lines();
    let start = lines.next().unwrap_or_default();
    let mut parts = start.split(' ');
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(Some(Request {
        head,
        method,
        target,
        headers,
    }))
}

/// Reads the raw body (Content-Length or chunked, kept as sent). With `limit`, stops after
/// that many bytes (for a mid-request drop).
fn read_body(
    r: &mut BufReader<TcpStream>,
    req: &Request,
    limit: Option<usize>,
) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    if req
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size_line = Vec::new();
            r.read_until(b'\n', &mut size_line)?;
            body.extend_from_slice(&size_line);
            let size_text = String::from_utf8_lossy(&size_line);
            let size = usize::from_str_radix(size_text.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
            if limit.is_some_and(|l| body.len() >= l) {
                return Ok(body);
            }
            let mut chunk = vec![0u8; size + 2];
            r.read_exact(&mut chunk)?;
            body.extend_from_slice(&chunk);
            if size == 0 {
                // The last chunk: "0\r\n" then (no trailers) "\r\n" was read as its data.
                return Ok(body);
            }
        }
    }
    let len: usize = req
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let want = limit.map_or(len, |l| l.min(len));
    body.resize(want, 0);
    r.read_exact(&mut body)?;
    Ok(body)
}

fn respond(conn: &mut TcpStream, status: u16, reason: &str, extra: &str) -> io::Result<()> {
    let body = format!(
        "{{\"errors\":[{{\"code\":\"UNAVAILABLE\",\"message\":\"injected fault: {status} {reason}\"}}]}}"
    );
    write!(
        conn,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
        body.len()
    )?;
    conn.flush()
}

/// The answer with header `name` (lowercase) given `value`, when it has that header.
fn override_header(answer: &[u8], name: &str, value: &str) -> Vec<u8> {
    let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return answer.to_vec();
    };
    let head = String::from_utf8_lossy(&answer[..end]);
    let lines: Vec<String> = head
        .split("\r\n")
        .map(|line| match line.split_once(':') {
            Some((n, _)) if n.trim().eq_ignore_ascii_case(name) => format!("{n}: {value}"),
            _ => line.to_string(),
        })
        .collect();
    let mut out = lines.join("\r\n").into_bytes();
    out.extend_from_slice(&answer[end..]);
    out
}

fn handle(state: &State, conn: TcpStream) -> io::Result<()> {
    conn.set_read_timeout(Some(IO_TIMEOUT))?;
    conn.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut reader = BufReader::with_capacity(256 << 10, conn.try_clone()?);
    let mut conn = conn;
    let Some(req) = read_head(&mut reader)? else {
        return Ok(());
    };
    let fault = choose(state, &req.method);
    let record = |body_len: usize, status: Option<u16>| {
        lock(&state.seen).push(Seen {
            method: req.method.clone(),
            target: req.target.clone(),
            range: req.header("range").map(str::to_string),
            body_len,
            fault,
            status,
            authorized: req.header("authorization").is_some(),
        });
    };
    if state.basic_gate.load(Ordering::SeqCst) && req.header("authorization").is_none() {
        let _ = read_body(&mut reader, &req, None)?;
        record(0, None);
        return respond(
            &mut conn,
            401,
            "Unauthorized",
            "WWW-Authenticate: Basic realm=\"ossb-test-gate\"\r\n",
        );
    }
    let redirect = lock(&state.blob_redirect).clone();
    if let Some(base) = redirect
        && req.method == "GET"
        && req.target.starts_with("/v2/")
        && let Some((_, digest)) = req.target.split_once("/blobs/")
    {
        record(0, None);
        let location = format!("Location: {base}/{digest}?signature=ossb-test\r\n");
        return respond(&mut conn, 307, "Temporary Redirect", &location);
    }
    if fault == Some(Fault::DropRequest) {
        let declared: usize = req
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let part = read_body(&mut reader, &req, Some(declared / 2)).map_or(0, |b| b.len());
        record(part, None);
        // Unread data in the socket makes the close a reset, as a crashed peer would.
        let _ = conn.shutdown(Shutdown::Both);
        return Ok(());
    }
    let body = read_body(&mut reader, &req, None)?;
    match fault {
        Some(Fault::Status(code)) => {
            record(body.len(), None);
            let reason = match code {
                500 => "Internal Server Error",
                502 => "Bad Gateway",
                _ => "Service Unavailable",
            };
            return respond(&mut conn, code, reason, "");
        }
        Some(Fault::TooMany { retry_after }) => {
            record(body.len(), None);
            let extra = if retry_after {
                "Retry-After: 1\r\n"
            } else {
                ""
            };
            return respond(&mut conn, 429, "Too Many Requests", extra);
        }
        _ => {}
    }
    // Forward with Connection: close and read the whole answer.
    let mut up = TcpStream::connect_timeout(&state.upstream, IO_TIMEOUT)?;
    up.set_read_timeout(Some(IO_TIMEOUT))?;
    up.set_write_timeout(Some(IO_TIMEOUT))?;
    let text = String::from_utf8_lossy(&req.head).into_owned();
    let mut head = String::new();
    for (i, line) in text.split("\r\n").enumerate() {
        if line.is_empty() {
            continue;
        }
        let lower = line.to_ascii_lowercase();
        if i > 0 && (lower.starts_with("connection:") || lower.starts_with("keep-alive:")) {
            continue;
        }
        head.push_str(line);
        head.push_str("\r\n");
    }
    head.push_str("Connection: close\r\n\r\n");
    up.write_all(head.as_bytes())?;
    up.write_all(&body)?;
    up.flush()?;
    let mut answer = Vec::new();
    up.read_to_end(&mut answer)?;
    let over = lock(&state.header_override).clone();
    if let Some((name, value)) = over {
        answer = override_header(&answer, &name, &value);
    }
    let status = String::from_utf8_lossy(&answer[..answer.len().min(16)])
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok());
    record(body.len(), status);
    if fault == Some(Fault::DropResponse) {
        let head_end = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(answer.len(), |p| p + 4);
        let cut = if answer.len() > head_end + 1 {
            head_end + (answer.len() - head_end) / 2
        } else {
            head_end / 2
        };
        conn.write_all(&answer[..cut])?;
        conn.flush()?;
        let _ = conn.shutdown(Shutdown::Both);
        return Ok(());
    }
    conn.write_all(&answer)?;
    conn.flush()?;
    let _ = conn.shutdown(Shutdown::Write);
    Ok(())
}
