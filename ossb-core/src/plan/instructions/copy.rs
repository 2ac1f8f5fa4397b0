//! `COPY` and `ADD`: sources (paths and inline heredoc files) and a destination.

use super::Req;
use crate::plan::flags::FlagKind;
use serde::Serialize;

/// An inline file from a heredoc source (`COPY <<EOF /dest`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceContent {
    /// The file name: the heredoc delimiter.
    pub path: String,
    /// The body, with `<<-` tab stripping applied.
    pub data: String,
    /// True when the delimiter was unquoted (variables in the body are expanded).
    pub expand: bool,
}

/// Sources and destination of `COPY`/`ADD`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourcesAndDest {
    /// The destination (last argument).
    pub dest: String,
    /// Source paths, URLs or git references, in order.
    pub source_paths: Vec<String>,
    /// Inline heredoc sources, in order.
    pub source_contents: Vec<SourceContent>,
}

/// `COPY [--from] [--chown] [--chmod] [--link] [--parents] [--exclude]... src... dest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Copy {
    /// Sources and destination.
    pub sources: SourcesAndDest,
    /// `--from`: a stage name, a stage index or an image reference, as written.
    pub from: Option<String>,
    /// `--chown`.
    pub chown: Option<String>,
    /// `--chmod`.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--parents`.
    pub parents: bool,
    /// `--exclude` patterns.
    pub excludes: Vec<String>,
}

/// `ADD [--chown] [--chmod] [--link] [--keep-git-dir] [--checksum] [--unpack] [--exclude]... src... dest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Add {
    /// Sources and destination.
    pub sources: SourcesAndDest,
    /// `--chown`.
    pub chown: Option<String>,
    /// `--chmod`.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--keep-git-dir`.
    pub keep_git_dir: bool,
    /// `--checksum` of a remote source.
    pub checksum: Option<String>,
    /// `--unpack`, `None` when not given (archives from the context unpack, URLs do not).
    pub unpack: Option<bool>,
    /// `--exclude` patterns.
    pub excludes: Vec<String>,
}

/// A heredoc marker word (`<<EOF`, `<<-'EOF'`, `3<<EOF`): `(name, chomp, expand)`.
pub fn parse_heredoc_word(word: &str) -> Option<(String, bool, bool)> {
    let digits = word
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(word.len());
    let rest = word[digits..].strip_prefix("<<")?;
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if rest.contains('<') {
        return None;
    }
    let rest = rest.trim();
    let expand = !rest.contains('\'') && !rest.contains('"');
    let mut name = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {}
            '\\' => {
                if let Some(n) = chars.next() {
                    name.push(n);
                }
            }
            c => name.push(c),
        }
    }
    if name.is_empty() {
        return None;
    }
    Some((name, chomp, expand))
}

/// Remove leading tabs from every line (`<<-`).
pub(crate) fn chomp_heredoc(content: &str) -> String {
    content
        .split_inclusive('\n')
        .map(|l| l.trim_start_matches('\t'))
        .collect()
}

fn sources_and_dest(req: &Req<'_>, command: &str) -> Result<SourcesAndDest, String> {
    let (dest, srcs) = match req.args.split_last() {
        Some((d, s)) => (d.clone(), s),
        None => return Err(err_no_dest(command)),
    };
    if parse_heredoc_word(&dest).is_some() {
        return Err(format!(
            "{command} cannot accept a heredoc as a destination"
        ));
    }
    let mut source_paths = Vec::new();
    let mut source_contents = Vec::new();
    for src in srcs {
        match parse_heredoc_word(src) {
            Some((name, chomp, expand)) if !req.json => {
                let body = req
                    .heredocs
                    .iter()
                    .find(|h| h.name == name)
                    .map(|h| h.content.clone())
                    .unwrap_or_default();
                let data = if chomp { chomp_heredoc(&body) } else { body };
                source_contents.push(SourceContent {
                    path: name,
                    data,
                    expand,
                });
            }
            _ => source_paths.push(src.clone()),
        }
    }
    Ok(SourcesAndDest {
        dest,
        source_paths,
        source_contents,
    })
}

fn err_no_dest(command: &str) -> String {
    format!(
        "{command} requires at least two arguments, but only one was provided. Destination could not be determined"
    )
}

pub(super) fn parse_copy(req: &Req<'_>) -> Result<Copy, String> {
    if req.args.len() < 2 {
        return Err(err_no_dest("COPY"));
    }
    let flags = req.flags(&[
        ("exclude", FlagKind::Strings),
        ("parents", FlagKind::Bool),
        ("chown", FlagKind::String),
        ("from", FlagKind::String),
        ("chmod", FlagKind::String),
        ("link", FlagKind::Bool),
    ])?;
    Ok(Copy {
        sources: sources_and_dest(req, "COPY")?,
        from: flags.string("from").filter(|s| !s.is_empty()),
        chown: flags.string("chown").filter(|s| !s.is_empty()),
        chmod: flags.string("chmod").filter(|s| !s.is_empty()),
        link: flags.bool("link"),
        parents: flags.bool("parents"),
        excludes: flags.strings("exclude"),
    })
}

pub(super) fn parse_add(req: &Req<'_>) -> Result<Add, String> {
    if req.args.len() < 2 {
        return Err(err_no_dest("ADD"));
    }
    let flags = req.flags(&[
        ("exclude", FlagKind::Strings),
        ("chown", FlagKind::String),
        ("chmod", FlagKind::String),
        ("link", FlagKind::Bool),
        ("keep-git-dir", FlagKind::Bool),
        ("checksum", FlagKind::String),
        ("unpack", FlagKind::Bool),
    ])?;
    Ok(Add {
        sources: sources_and_dest(req, "ADD")?,
        chown: flags.string("chown").filter(|s| !s.is_empty()),
        chmod: flags.string("chmod").filter(|s| !s.is_empty()),
        link: flags.bool("link"),
        keep_git_dir: flags.bool("keep-git-dir"),
        checksum: flags.string("checksum").filter(|s| !s.is_empty()),
        unpack: flags.opt_bool("unpack"),
        excludes: flags.strings("exclude"),
    })
}
