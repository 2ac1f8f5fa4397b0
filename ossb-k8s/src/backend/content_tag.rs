//! Content-addressed image names: `REPO/PREFIX-<16 hex>:TAG`, where the hex is the start of a
//! SHA-256 over everything that decides the image: the Dockerfile, the build arguments, the
//! target and platforms, and every context file's path, mode and content (after
//! `.dockerignore`). The same inputs give the same name, so an existing image can be reused.

use super::options::ContentTag;
use super::upload::ContextBundle;
use ossb_core::backend::BuildRequest;
use sha2::{Digest, Sha256};

/// The 16 hex digits naming this build's inputs.
pub fn content_hash(bundle: &ContextBundle, request: &BuildRequest) -> String {
    let mut h = Sha256::new();
    // Every field is length-prefixed, so no two different inputs hash alike by concatenation.
    let mut field = |tag: &str, data: &[u8]| {
        h.update(tag.as_bytes());
        h.update((data.len() as u64).to_le_bytes());
        h.update(data);
    };
    field("dockerfile", bundle.dockerfile.as_bytes());
    for (k, v) in &request.build_args {
        field("arg", format!("{k}={v}").as_bytes());
    }
    if let Some(t) = &request.target {
        field("target", t.as_bytes());
    }
    for p in &request.platforms {
        field("platform", p.as_bytes());
    }
    for f in &bundle.files {
        field("path", f.path.as_bytes());
        field("mode", &f.mode.to_le_bytes());
        field("content", &f.data);
    }
    hex::encode(h.finalize())[..16].to_string()
}

/// The image name for `tag` and `hash`.
pub fn image_name(tag: &ContentTag, hash: &str) -> String {
    format!(
        "{}/{}-{hash}:{}",
        tag.repository.trim_end_matches('/'),
        tag.prefix,
        tag.tag
    )
}

/// Check a TTL tag such as `4h`, `30m`, `2d` (what ttl.sh-style registries accept).
pub fn is_ttl(tag: &str) -> bool {
    let (num, unit) = tag.split_at(tag.len().saturating_sub(1));
    !num.is_empty()
        && num.bytes().all(|b| b.is_ascii_digit())
        && matches!(unit, "s" | "m" | "h" | "d")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::upload::ContextFile;

    fn bundle(content: &[u8]) -> ContextBundle {
        ContextBundle {
            dockerfile: "FROM scratch\nCOPY a /\n".into(),
            dockerfile_ignore: None,
            files: vec![ContextFile {
                path: "a".into(),
                data: content.to_vec(),
                mode: 0o644,
            }],
            skipped: vec![],
        }
    }

    #[test]
    fn the_hash_follows_every_input() {
        let req = BuildRequest::new("/c");
        let base = content_hash(&bundle(b"1"), &req);
        assert_eq!(base.len(), 16);
        assert_eq!(base, content_hash(&bundle(b"1"), &req), "stable");
        assert_ne!(base, content_hash(&bundle(b"2"), &req), "content");
        let mut with_arg = req.clone();
        with_arg.build_args.insert("V".into(), "1".into());
        assert_ne!(base, content_hash(&bundle(b"1"), &with_arg), "build args");
        let tag = ContentTag {
            repository: "ttl.sh/".into(),
            prefix: "ossb".into(),
            tag: "4h".into(),
        };
        assert_eq!(image_name(&tag, &base), format!("ttl.sh/ossb-{base}:4h"));
        assert!(is_ttl("4h") && is_ttl("24h") && !is_ttl("latest") && !is_ttl("h"));
    }
}
