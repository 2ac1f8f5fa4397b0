//! `ossb build -`: the build context from standard input, as `docker build -` takes it: a tar
//! archive (plain or compressed) that is unpacked into a temporary directory, or, when the
//! input is not an archive, a lone Dockerfile with an empty context.

use ossb_core::exec::compress::{Compression, detect};
use ossb_core::{Error, ExitCode};
use std::io::{Cursor, Read};

/// A context read from standard input; the directory is removed on drop.
pub struct StdinContext {
    /// The unpacked context (empty for a lone Dockerfile).
    pub dir: tempfile::TempDir,
    /// The Dockerfile's text, when the input was a Dockerfile rather than an archive.
    pub dockerfile: Option<String>,
}

/// Whether `head` (the first bytes of the input, up to 512) starts a tar archive: a
/// compressed stream, or a ustar/GNU header (magic at offset 257) or a v7 header whose
/// checksum is right.
fn is_archive(head: &[u8]) -> bool {
    if detect(head) != Compression::None {
        return true;
    }
    if head.len() < 512 {
        return false;
    }
    if &head[257..262] == b"ustar" {
        return true;
    }
    let stored = std::str::from_utf8(&head[148..156])
        .ok()
        .map(|s| s.trim_matches(|c: char| c == '\0' || c == ' '))
        .and_then(|s| u32::from_str_radix(s, 8).ok());
    let computed: u32 = head
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                *b as u32
            }
        })
        .sum();
    stored == Some(computed)
}

/// Read the context from `input`.
pub fn read(mut input: impl Read) -> Result<StdinContext, Error> {
    let read_err = |e: std::io::Error| {
        Error::new(
            ExitCode::Build,
            format!("cannot read the build context from standard input: {e}"),
        )
    };
    let mut head = Vec::with_capacity(512);
    (&mut input)
        .take(512)
        .read_to_end(&mut head)
        .map_err(read_err)?;
    let dir = tempfile::Builder::new()
        .prefix("ossb-stdin-context-")
        .tempdir()
        .map_err(|e| {
            Error::new(
                ExitCode::Resource,
                format!("cannot create a temp dir for the standard-input context: {e}"),
            )
        })?;
    if !is_archive(&head) {
        let mut bytes = head;
        input.read_to_end(&mut bytes).map_err(read_err)?;
        let text = String::from_utf8(bytes).map_err(|_| {
            Error::new(
                ExitCode::Build,
                "standard input is neither a tar archive nor a UTF-8 Dockerfile (`ossb build -` \
                 reads a context tar or a Dockerfile from stdin)",
            )
        })?;
        return Ok(StdinContext {
            dir,
            dockerfile: Some(text),
        });
    }
    let root = ossb_core::exec::Root::open_host(dir.path())
        .map_err(|e| Error::new(ExitCode::Resource, e.to_string()))?;
    // The layer unpacker confines every entry beneath the directory and decompresses.
    ossb_core::exec::unpack_layer(&root, Cursor::new(head).chain(input)).map_err(|e| {
        Error::new(
            ExitCode::Build,
            format!("cannot unpack the build context from standard input: {e}"),
        )
    })?;
    Ok(StdinContext {
        dir,
        dockerfile: None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_dockerfile_is_told_apart_from_a_tar() {
        let ctx = read(Cursor::new(b"FROM scratch\nCOPY a /a\n".to_vec())).unwrap();
        assert_eq!(ctx.dockerfile.as_deref(), Some("FROM scratch\nCOPY a /a\n"));
        assert!(std::fs::read_dir(ctx.dir.path()).unwrap().next().is_none());

        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(3);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1);
        h.set_cksum();
        tar.append_data(&mut h, "sub/a.txt", &b"hi\n"[..]).unwrap();
        let bytes = tar.into_inner().unwrap();
        let ctx = read(Cursor::new(bytes)).unwrap();
        assert!(ctx.dockerfile.is_none());
        assert_eq!(
            std::fs::read_to_string(ctx.dir.path().join("sub/a.txt")).unwrap(),
            "hi\n"
        );
    }
}
