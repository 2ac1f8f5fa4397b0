//! `ADD http(s)://…`: download through the [`UrlFetcher`](crate::ports::UrlFetcher) port into
//! the build's scratch directory, verify `--checksum`, and lay the file out as BuildKit does:
//!
//! * the file is named after the last segment of the URL path (`__unnamed__` when there is
//!   none); `Content-Disposition` is ignored, as BuildKit's Dockerfile frontend names the file
//!   itself;
//! * a destination ending in `/` (or an existing directory) receives `dest/NAME`, any other
//!   destination is the file itself; missing parent directories are created (0755, root);
//! * mode 0600 (BuildKit's mode for downloads), then `--chmod`; owner 0:0 or `--chown`;
//! * the modification time is the server's `Last-Modified` when it sent one, else the build
//!   time;
//! * remote archives are not extracted, unless `--unpack=true` is given explicitly.

use super::BuildCtx;
use crate::error::{Error, ExitCode};
use crate::exec::Chmod;
use crate::exec::archive_src::{ArchiveTarget, archive_entries};
use crate::image::entry::{Entry, EntryKind, Source};
use sha2::Digest as _;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

/// The name BuildKit gives a file downloaded without a destination file name.
pub(super) const UNNAMED: &str = "__unnamed__";

/// Whether an `ADD` source is an HTTP(S) URL.
pub(super) fn is_url(src: &str) -> bool {
    let lower = src.get(..8).unwrap_or(src).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = s
            .get(i + 1..i + 3)
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The file name of a downloaded URL: Go's `path.Base` of the decoded URL path (trailing
/// slashes dropped), or [`UNNAMED`] when the path names nothing (`https://host/`).
pub(super) fn url_file_name(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    // The authority ends at the first `/`, `?` or `#`; only a `/` starts a path.
    let path = match after_scheme.find(['/', '?', '#']) {
        Some(i) if after_scheme[i..].starts_with('/') => &after_scheme[i..],
        _ => "",
    };
    let path = path.split(['?', '#']).next().unwrap_or("");
    let decoded = percent_decode(path);
    let base = decoded
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("");
    if base.is_empty() || base == "." || base == ".." {
        UNNAMED.to_string()
    } else {
        base.to_string()
    }
}

/// The path (relative, no leading `/`) the download lands on: `dest/name` when the
/// destination is a directory, else `dest` itself.
pub(super) fn url_target(dest_rel: &str, dest_is_dir: bool, name: &str) -> String {
    if dest_is_dir {
        if dest_rel.is_empty() {
            name.to_string()
        } else {
            format!("{dest_rel}/{name}")
        }
    } else {
        dest_rel.to_string()
    }
}

/// An expected `--checksum` digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Checksum {
    /// `sha256`, `sha384` or `sha512`.
    pub algorithm: &'static str,
    /// Lowercase hex.
    pub hex: String,
}

impl std::fmt::Display for Checksum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.hex)
    }
}

/// Parses `--checksum=ALGO:HEX` (the digests BuildKit accepts: sha256, sha384, sha512).
pub(super) fn parse_checksum(spec: &str) -> Result<Checksum, Error> {
    let bad = |why: &str| {
        Error::new(
            ExitCode::Build,
            format!("ADD --checksum={spec}: {why}; write it as sha256:<64 hex digits>"),
        )
    };
    let (algo, hex) = spec
        .split_once(':')
        .ok_or_else(|| bad("invalid checksum digest format"))?;
    let (algorithm, len) = match algo {
        "sha256" => ("sha256", 64),
        "sha384" => ("sha384", 96),
        "sha512" => ("sha512", 128),
        _ => return Err(bad(&format!("unsupported digest algorithm {algo:?}"))),
    };
    if hex.len() != len
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(bad(&format!(
            "a {algorithm} digest is {len} lowercase hex digits"
        )));
    }
    Ok(Checksum {
        algorithm,
        hex: hex.to_string(),
    })
}

/// A writer that hashes what passes through with the algorithm of a [`Checksum`].
enum Hashing<W> {
    Sha256(W, sha2::Sha256),
    Sha384(W, sha2::Sha384),
    Sha512(W, sha2::Sha512),
}

impl<W: Write> Hashing<W> {
    fn new(inner: W, algorithm: &str) -> Self {
        match algorithm {
            "sha384" => Hashing::Sha384(inner, sha2::Sha384::new()),
            "sha512" => Hashing::Sha512(inner, sha2::Sha512::new()),
            _ => Hashing::Sha256(inner, sha2::Sha256::new()),
        }
    }

    fn finish(self) -> (W, String) {
        match self {
            Hashing::Sha256(w, h) => (w, format!("sha256:{}", hex::encode(h.finalize()))),
            Hashing::Sha384(w, h) => (w, format!("sha384:{}", hex::encode(h.finalize()))),
            Hashing::Sha512(w, h) => (w, format!("sha512:{}", hex::encode(h.finalize()))),
        }
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = match self {
            Hashing::Sha256(w, h) => {
                let n = w.write(buf)?;
                h.update(&buf[..n]);
                n
            }
            Hashing::Sha384(w, h) => {
                let n = w.write(buf)?;
                h.update(&buf[..n]);
                n
            }
            Hashing::Sha512(w, h) => {
                let n = w.write(buf)?;
                h.update(&buf[..n]);
                n
            }
        };
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Hashing::Sha256(w, _) => w.flush(),
            Hashing::Sha384(w, _) => w.flush(),
            Hashing::Sha512(w, _) => w.flush(),
        }
    }
}

/// How one URL source is added.
pub(super) struct UrlAdd<'a> {
    /// The resolved destination (absolute; a trailing `/` marks a directory).
    pub dest: &'a str,
    /// Whether the destination is a directory (trailing `/`, or a directory in the image).
    pub dest_is_dir: bool,
    /// `--chown`, resolved.
    pub owner: Option<(u32, u32)>,
    /// `--chmod`, parsed.
    pub chmod: Option<&'a Chmod>,
    /// `--checksum`, parsed.
    pub checksum: Option<&'a Checksum>,
    /// `--unpack=true` given explicitly: extract a downloaded archive.
    pub unpack: bool,
    /// Whether the image already has a directory at a path (those are not re-created).
    pub base_has_dir: &'a dyn Fn(&str) -> bool,
}

/// What a downloaded URL became: layer entries, and the temp file they read from (deleted
/// when dropped, so it must outlive the layer writer).
pub(super) struct Downloaded {
    pub entries: Vec<Entry>,
    pub _file: tempfile::TempPath,
    /// A directory holding extracted archive contents, when `--unpack=true` extracted one.
    pub _extracted: Option<tempfile::TempDir>,
}

fn io_error(url: &str, what: &str, e: std::io::Error) -> Error {
    Error::new(
        ExitCode::Resource,
        format!("ADD {url}: cannot {what}: {e}; check free space in the store"),
    )
}

/// Whether the file at `path` is a (possibly compressed) tar archive.
fn looks_like_tar(path: &Path) -> bool {
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    let Ok((_, mut reader)) = crate::exec::compress::decompress(file) else {
        return false;
    };
    let mut block = [0u8; 512];
    let mut n = 0;
    while n < block.len() {
        match reader.read(&mut block[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    n == 512 && &block[257..262] == b"ustar"
}

/// Downloads `url` and returns the entries that add it at `opts.dest`.
pub(super) fn url_entries(
    ctx: &BuildCtx<'_>,
    url: &str,
    opts: &UrlAdd<'_>,
) -> Result<Downloaded, Error> {
    let fetcher = ctx.url_fetcher.ok_or_else(|| {
        Error::new(
            ExitCode::Configuration,
            format!(
                "ADD {url}: this build has no url downloader; give the backend one with LocalBackend::with_url_fetcher"
            ),
        )
    })?;
    let temp = tempfile::Builder::new()
        .prefix("add-url-")
        .tempfile_in(ctx.scratch)
        .map_err(|e| io_error(url, "create a temp file", e))?;
    let (file, path) = temp.into_parts();
    let algorithm = opts.checksum.map_or("sha256", |c| c.algorithm);
    let mut writer = Hashing::new(std::io::BufWriter::new(file), algorithm);
    let fetched = fetcher.fetch(url, &mut writer)?;
    writer
        .flush()
        .map_err(|e| io_error(url, "write the download", e))?;
    let (_, actual) = writer.finish();
    if let Some(expected) = opts.checksum
        && expected.to_string() != actual
    {
        return Err(Error::new(
            ExitCode::Build,
            format!(
                "ADD {url}: digest mismatch: expected {expected}, got {actual}; the file on the server changed or --checksum is wrong"
            ),
        ));
    }
    tracing::debug!(url, final_url = %fetched.final_url, size = fetched.size, digest = %actual, "downloaded");
    let dest_rel = opts.dest.trim_matches('/');
    let (uid, gid) = opts.owner.unwrap_or((0, 0));

    if opts.unpack && looks_like_tar(&path) {
        let dir = tempfile::Builder::new()
            .prefix("add-url-x-")
            .tempdir_in(ctx.scratch)
            .map_err(|e| io_error(url, "create a temp dir", e))?;
        let file = std::fs::File::open(&path).map_err(|e| io_error(url, "read the download", e))?;
        let target = ArchiveTarget {
            dest: dest_rel,
            owner: opts.owner,
            build_time: ctx.build_time,
            scratch: dir.path(),
        };
        let entries = archive_entries(file, &target)?;
        return Ok(Downloaded {
            entries,
            _file: path,
            _extracted: Some(dir),
        });
    }

    let name = url_file_name(url);
    let target = url_target(dest_rel, opts.dest_is_dir, &name);
    let mut entries = parent_dirs(
        &target,
        opts.dest_is_dir.then_some(dest_rel),
        ctx.build_time,
    );
    entries.retain(|e| !(opts.base_has_dir)(&e.path));
    let mode = opts.chmod.map_or(0o600, |c| c.apply(0o600, false));
    entries.push(Entry {
        path: target,
        kind: EntryKind::File {
            size: fetched.size,
            source: Source::Path(path.to_path_buf()),
        },
        mode,
        uid,
        gid,
        mtime: fetched.last_modified.unwrap_or(ctx.build_time),
        mtime_nsec: 0,
        xattrs: BTreeMap::new(),
    });
    Ok(Downloaded {
        entries,
        _file: path,
        _extracted: None,
    })
}

/// Directory entries for every parent of `target` (and `dest_dir` itself), 0755 root-owned.
fn parent_dirs(target: &str, dest_dir: Option<&str>, mtime: i64) -> Vec<Entry> {
    let mut wanted: Vec<&str> = Vec::new();
    if let Some((parent, _)) = target.rsplit_once('/') {
        wanted.push(parent);
    }
    wanted.extend(dest_dir.filter(|d| !d.is_empty()));
    let mut out: Vec<Entry> = Vec::new();
    for p in wanted {
        let mut acc = String::new();
        for part in p.split('/').filter(|c| !c.is_empty()) {
            acc = if acc.is_empty() {
                part.to_string()
            } else {
                format!("{acc}/{part}")
            };
            if !out.iter().any(|e| e.path == acc) {
                out.push(Entry {
                    path: acc.clone(),
                    kind: EntryKind::Dir,
                    mode: 0o755,
                    uid: 0,
                    gid: 0,
                    mtime,
                    mtime_nsec: 0,
                    xattrs: BTreeMap::new(),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_url_path() {
        assert_eq!(
            url_file_name("https://example.com/a/b/file.tar.gz"),
            "file.tar.gz"
        );
        assert_eq!(
            url_file_name("https://example.com/dl/file.txt?x=1#frag"),
            "file.txt"
        );
        assert_eq!(url_file_name("https://example.com/dir/"), "dir");
        assert_eq!(url_file_name("https://example.com/a%20b.txt"), "a b.txt");
        assert_eq!(url_file_name("https://example.com/"), UNNAMED);
        assert_eq!(url_file_name("https://example.com"), UNNAMED);
        assert_eq!(url_file_name("http://127.0.0.1:8080?q=/x"), UNNAMED);
    }

    #[test]
    fn destinations_follow_docker_rules() {
        assert_eq!(url_target("dl", true, "file.txt"), "dl/file.txt");
        assert_eq!(url_target("", true, "file.txt"), "file.txt");
        assert_eq!(url_target("opt/tool", false, "tool.bin"), "opt/tool");
    }

    #[test]
    fn parents_are_created_for_the_target() {
        let dirs: Vec<String> = parent_dirs("a/b/f", None, 7)
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert_eq!(dirs, vec!["a", "a/b"]);
        let dirs: Vec<String> = parent_dirs("d/f", Some("d"), 7)
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert_eq!(dirs, vec!["d"]);
        assert!(parent_dirs("f", None, 7).is_empty());
    }

    #[test]
    fn url_detection() {
        assert!(is_url("http://x/y"));
        assert!(is_url("HTTPS://x/y"));
        assert!(!is_url("httpfile"));
        assert!(!is_url("git@github.com:a/b.git"));
    }

    #[test]
    fn checksums_parse_and_reject_bad_input() {
        let hex = "a".repeat(64);
        let c = parse_checksum(&format!("sha256:{hex}")).expect("valid");
        assert_eq!(c.to_string(), format!("sha256:{hex}"));
        assert!(parse_checksum(&format!("sha512:{}", "0".repeat(128))).is_ok());
        for bad in [
            "abc",
            "sha256:abc",
            "md5:00",
            &format!("sha256:{}", "A".repeat(64)),
        ] {
            let e = parse_checksum(bad).expect_err(bad);
            assert_eq!(e.exit_code(), ExitCode::Build, "{bad}");
        }
    }

    #[test]
    fn hashing_writer_matches_sha2() {
        let mut w = Hashing::new(Vec::new(), "sha256");
        w.write_all(b"hello\n").expect("write");
        let (bytes, digest) = w.finish();
        assert_eq!(bytes, b"hello\n");
        assert_eq!(
            digest,
            "sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
        );
    }
}
