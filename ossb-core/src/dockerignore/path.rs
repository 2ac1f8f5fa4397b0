//! Go `path.Clean` and `path.Dir` for slash-separated paths.

/// Lexically cleans `path` like Go's `path.Clean`: no `.` elements, `..` resolved where
/// possible, no repeated or trailing slashes; an empty result is `.`.
pub fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let p = path.as_bytes();
    let n = p.len();
    let rooted = p[0] == b'/';
    let mut out: Vec<u8> = Vec::with_capacity(n);
    let (mut r, mut dotdot) = (0, 0);
    if rooted {
        out.push(b'/');
        r = 1;
        dotdot = 1;
    }
    while r < n {
        let at_end = |i: usize| i == n || p[i] == b'/';
        if p[r] == b'/' || (p[r] == b'.' && at_end(r + 1)) {
            r += 1;
        } else if p[r] == b'.' && r + 1 < n && p[r + 1] == b'.' && at_end(r + 2) {
            r += 2;
            if out.len() > dotdot {
                let mut w = out.len() - 1;
                while w > dotdot && out[w] != b'/' {
                    w -= 1;
                }
                out.truncate(w);
            } else if !rooted {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(b"..");
                dotdot = out.len();
            }
        } else {
            if (rooted && out.len() != 1) || (!rooted && !out.is_empty()) {
                out.push(b'/');
            }
            while r < n && p[r] != b'/' {
                out.push(p[r]);
                r += 1;
            }
        }
    }
    if out.is_empty() {
        return ".".to_string();
    }
    // Only whole ASCII bytes were removed, so the text is still UTF-8.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Go's `path.Dir`: everything before the last `/`, cleaned.
pub fn dir(path: &str) -> String {
    match path.rfind('/') {
        Some(i) => clean(&path[..=i]),
        None => ".".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_matches_go() {
        for (input, want) in [
            ("", "."),
            ("a/./b", "a/b"),
            ("a//b/", "a/b"),
            ("a/../..", ".."),
            ("/../a", "/a"),
            ("../../a/..", "../.."),
            ("/", "/"),
            ("a/b/../c", "a/c"),
        ] {
            assert_eq!(clean(input), want, "{input}");
        }
        assert_eq!(dir("a/b"), "a");
        assert_eq!(dir("file/"), "file");
        assert_eq!(dir("a"), ".");
        assert_eq!(dir("/"), "/");
    }
}
