//! A tiny HTTP/1.1 server on std threads, over plain TCP or TLS (rustls): keep-alive
//! connections, `Content-Length` and chunked request bodies, and chunked streaming responses
//! (how the API server sends watch events and followed logs).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;

/// One request.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The path, percent-decoded, without the query.
    pub path: String,
    /// Query parameters, percent-decoded.
    pub query: BTreeMap<String, String>,
    /// Headers, names in lower case.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

/// Writes the chunks of a streaming response.
pub struct ChunkWriter<'a> {
    out: &'a mut dyn Write,
}

impl ChunkWriter<'_> {
    /// Send one chunk now; an error means the client went away.
    pub fn send(&mut self, data: &[u8]) -> std::io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        write!(self.out, "{:x}\r\n", data.len())?;
        self.out.write_all(data)?;
        self.out.write_all(b"\r\n")?;
        self.out.flush()
    }
}

/// A streaming body: called with the writer once the headers are out.
pub type StreamFn = Box<dyn FnOnce(&mut ChunkWriter) -> std::io::Result<()> + Send>;

/// A response.
pub enum Response {
    Full {
        status: u16,
        content_type: &'static str,
        body: Vec<u8>,
    },
    Stream {
        status: u16,
        content_type: &'static str,
        body: StreamFn,
    },
}

impl Response {
    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        Response::Full {
            status,
            content_type: "application/json",
            body: value.to_string().into_bytes(),
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        410 => "Gone",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        _ => "Internal Server Error",
    }
}

pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn read_request(reader: &mut impl BufRead) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Err(std::io::Error::other(format!("bad request line {line:?}")));
    };
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let mut body = Vec::new();
    if let Some(len) = headers.get("content-length") {
        let len: usize = len.parse().unwrap_or(0);
        body.resize(len, 0);
        reader.read_exact(&mut body)?;
    } else if headers
        .get("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    Ok(Some(Request {
        method: method.to_string(),
        path: percent_decode(path),
        query,
        headers,
        body,
    }))
}

fn write_response(out: &mut dyn Write, response: Response) -> std::io::Result<()> {
    match response {
        Response::Full {
            status,
            content_type,
            body,
        } => {
            write!(
                out,
                "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
                reason(status),
                body.len()
            )?;
            out.write_all(&body)?;
            out.flush()
        }
        Response::Stream {
            status,
            content_type,
            body,
        } => {
            write!(
                out,
                "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n",
                reason(status)
            )?;
            out.flush()?;
            body(&mut ChunkWriter { out })?;
            out.write_all(b"0\r\n\r\n")?;
            out.flush()
        }
    }
}

/// The request handler.
pub type Handler = Arc<dyn Fn(Request) -> Response + Send + Sync>;

/// A connection: plain TCP or TLS.
pub trait Conn: Read + Write + Send {}
impl<T: Read + Write + Send> Conn for T {}

fn serve_conn(conn: Box<dyn Conn>, handler: &Handler) {
    let mut reader = BufReader::new(conn);
    while let Ok(Some(req)) = read_request(&mut reader) {
        let close = req
            .headers
            .get("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"));
        if write_response(reader.get_mut(), handler(req)).is_err() || close {
            break;
        }
    }
}

/// Serve `listener` on background threads, one per connection, until the process ends; with
/// `tls`, every connection is TLS.
pub fn serve(listener: TcpListener, handler: Handler, tls: Option<Arc<rustls::ServerConfig>>) {
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let handler = handler.clone();
            let tls = tls.clone();
            std::thread::spawn(move || {
                let conn: Box<dyn Conn> = match tls {
                    Some(config) => match rustls::ServerConnection::new(config) {
                        Ok(server) => Box::new(rustls::StreamOwned::new(server, conn)),
                        Err(_) => return,
                    },
                    None => Box::new(conn),
                };
                serve_conn(conn, &handler);
            });
        }
    });
}

/// A TLS server configuration from PEM files.
pub fn tls_config(cert: &std::path::Path, key: &std::path::Path) -> Arc<rustls::ServerConfig> {
    let certs = rustls_pemfile::certs(&mut BufReader::new(
        std::fs::File::open(cert).expect("server certificate"),
    ))
    .collect::<Result<Vec<_>, _>>()
    .expect("PEM certificates");
    let key = rustls_pemfile::private_key(&mut BufReader::new(
        std::fs::File::open(key).expect("server key"),
    ))
    .expect("PEM key")
    .expect("a private key");
    Arc::new(
        rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("TLS configuration"),
    )
}
