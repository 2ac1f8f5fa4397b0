//! `FROM [--platform=<platform>] <image> [AS <name>]`.

use super::{Req, doc_comment};
use crate::plan::flags::FlagKind;
use serde::Serialize;

/// A `FROM` line: the start of a stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct From {
    /// The base as written (an image, `scratch`, or an earlier stage's name); not yet expanded.
    pub base: String,
    /// The stage name of `AS name`, lower-cased.
    pub name: Option<String>,
    /// The `--platform` value as written.
    pub platform: Option<String>,
    /// The doc comment above the line (`# name does this`), without the name.
    pub doc: String,
}

fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-' | '_' | '.'))
}

pub(super) fn parse_from(req: &Req<'_>) -> Result<From, String> {
    let args = &req.args;
    let name = if args.len() == 3 && args[1].eq_ignore_ascii_case("as") {
        let lower = args[2].to_lowercase();
        if !valid_stage_name(&lower) {
            return Err(format!(
                "invalid name for build stage: {:?}, name can't start with a number or contain symbols",
                args[2]
            ));
        }
        Some(lower)
    } else if args.len() != 1 {
        return Err("FROM requires either one or three arguments".to_string());
    } else {
        None
    };
    let flags = req.flags(&[("platform", FlagKind::String)])?;
    let doc = doc_comment(req.comments, name.as_deref().unwrap_or(""));
    Ok(From {
        base: args[0].clone(),
        name,
        platform: flags.string("platform"),
        doc,
    })
}
