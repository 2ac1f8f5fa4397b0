//! Validation of names found in tar streams (entry names and hard-link targets).

use super::error::{FsError, Result};

/// Normalises a tar entry name to an in-root path (`a/b`), refusing absolute names and `..`.
/// Returns `Ok(None)` for the root entry (`./`, `.`).
pub fn clean_tar_path(raw: &[u8]) -> Result<Option<String>> {
    let name = std::str::from_utf8(raw).map_err(|_| FsError::Entry {
        entry: String::from_utf8_lossy(raw).into_owned(),
        message: "the name is not UTF-8; rename the file in the archive".into(),
    })?;
    if name.starts_with('/') {
        return Err(FsError::Escape {
            path: name.to_string(),
            reason: "absolute name in a tar stream".into(),
        });
    }
    if name.contains('\0') {
        return Err(FsError::Entry {
            entry: name.to_string(),
            message: "the name contains a NUL byte; rebuild the archive".into(),
        });
    }
    let mut parts = Vec::new();
    for comp in name.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                return Err(FsError::Escape {
                    path: name.to_string(),
                    reason: "`..` component".into(),
                });
            }
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        Ok(None)
    } else {
        Ok(Some(parts.join("/")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cleaned_or_refused() {
        assert_eq!(
            clean_tar_path(b"./usr//bin/").expect("ok").as_deref(),
            Some("usr/bin")
        );
        assert_eq!(clean_tar_path(b"./").expect("ok"), None);
        assert!(matches!(
            clean_tar_path(b"a/../../x"),
            Err(FsError::Escape { .. })
        ));
        assert!(matches!(
            clean_tar_path(b"/etc/passwd"),
            Err(FsError::Escape { .. })
        ));
        assert!(matches!(
            clean_tar_path(b"a/.."),
            Err(FsError::Escape { .. })
        ));
        assert!(clean_tar_path(&[0xff, 0xfe]).is_err());
    }
}
