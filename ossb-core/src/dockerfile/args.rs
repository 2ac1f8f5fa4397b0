//! Instruction argument parsers: how each instruction's argument text becomes value nodes
//! (BuildKit's line parsers).

use super::ParseError;
use super::words::{parse_words, split_token_space};

/// The error for a JSON array that holds something other than strings.
pub const NOT_STRING_ARRAY: &str =
    "when using JSON array syntax, arrays must be comprised of strings only";

/// The value nodes of one instruction and whether they came from the JSON form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Args {
    /// The value nodes.
    pub values: Vec<String>,
    /// True for the JSON (exec) form.
    pub json: bool,
}

impl Args {
    fn plain(values: Vec<String>) -> Self {
        Args {
            values,
            json: false,
        }
    }
}

/// Parse `text` as an exec-form JSON array.
///
/// Returns `Ok(None)` when the text is not a JSON array (the caller falls back to the shell
/// form), `Ok(Some(strings))` for an array of strings, and an error for a valid array that
/// holds anything else.
pub fn parse_json_array(text: &str) -> Result<Option<Vec<String>>, ParseError> {
    let text = text.trim_start();
    if !text.starts_with('[') {
        return Ok(None);
    }
    let Ok(values) = serde_json::from_str::<Vec<serde_json::Value>>(text) else {
        return Ok(None);
    };
    values
        .into_iter()
        .map(|v| match v {
            serde_json::Value::String(s) => Ok(s),
            _ => Err(ParseError::new(NOT_STRING_ARRAY)),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Parse the arguments of `ENV` or `LABEL` (`key` is the instruction name used in errors)
/// into key, value, separator triples: `""` separates the legacy `KEY value` form and `"="`
/// the `KEY=value ...` form.
pub fn parse_name_value(rest: &str, key: &str, escape: char) -> Result<Vec<String>, ParseError> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(Vec::new());
    };
    if !first.contains('=') {
        let parts = split_token_space(rest, 2);
        if parts.len() < 2 {
            let name = parts.first().copied().unwrap_or("name");
            return Err(ParseError::new(format!(
                "{key} must have two arguments, write it as {key} {name}=value"
            )));
        }
        return Ok(vec![
            parts[0].to_string(),
            parts[1].to_string(),
            String::new(),
        ]);
    }
    let mut nodes = Vec::with_capacity(words.len() * 3);
    for word in words {
        let Some((name, value)) = word.split_once('=') else {
            return Err(ParseError::new(format!(
                "syntax error - can't find = in {}, write it in the form name=value",
                super::dump::go_quote(&word)
            )));
        };
        nodes.push(name.to_string());
        nodes.push(value.to_string());
        nodes.push("=".to_string());
    }
    Ok(nodes)
}

/// Split on runs of `[\t\v\f\r ]` (`FROM`, `EXPOSE`, shell-form `ADD`/`COPY`/`VOLUME`).
pub fn parse_whitespace_delimited(rest: &str) -> Vec<String> {
    if rest.is_empty() {
        return Vec::new();
    }
    split_token_space(rest, 0)
        .into_iter()
        .map(str::to_string)
        .collect()
}

/// JSON array of strings, else the whole text as one node (`RUN`, `CMD`, `ENTRYPOINT`, `SHELL`).
pub fn parse_maybe_json(rest: &str) -> Result<Args, ParseError> {
    if rest.is_empty() {
        return Ok(Args::default());
    }
    Ok(match parse_json_array(rest)? {
        Some(values) => Args { values, json: true },
        None => Args::plain(vec![rest.to_string()]),
    })
}

/// JSON array of strings, else whitespace-split words (`ADD`, `COPY`, `VOLUME`).
pub fn parse_maybe_json_to_list(rest: &str) -> Result<Args, ParseError> {
    Ok(match parse_json_array(rest)? {
        Some(values) => Args { values, json: true },
        None => Args::plain(parse_whitespace_delimited(rest)),
    })
}

/// `HEALTHCHECK`: a type word, then the rest like `CMD`.
pub fn parse_health_config(rest: &str) -> Result<Args, ParseError> {
    let sep = rest.find(char::is_whitespace).unwrap_or(rest.len());
    if sep == 0 {
        return Ok(Args::default());
    }
    let cmd_text = rest[sep..].trim_start();
    let cmd = parse_maybe_json(cmd_text)?;
    let mut values = Vec::with_capacity(cmd.values.len() + 1);
    values.push(rest[..sep].to_string());
    values.extend(cmd.values);
    Ok(Args {
        values,
        json: cmd.json,
    })
}

/// The value nodes of a non-`ONBUILD` instruction; `keyword` is lower case.
pub fn parse_instruction_args(keyword: &str, rest: &str, escape: char) -> Result<Args, ParseError> {
    let one = |rest: &str| {
        Args::plain(if rest.is_empty() {
            Vec::new()
        } else {
            vec![rest.to_string()]
        })
    };
    match keyword {
        "add" | "copy" | "volume" => parse_maybe_json_to_list(rest),
        "run" | "cmd" | "entrypoint" | "shell" => parse_maybe_json(rest),
        "from" | "expose" => Ok(Args::plain(parse_whitespace_delimited(rest))),
        "maintainer" | "user" | "workdir" | "stopsignal" => Ok(one(rest)),
        "arg" => Ok(Args::plain(parse_words(rest, escape))),
        "env" => parse_name_value(rest, "ENV", escape).map(Args::plain),
        "label" => parse_name_value(rest, "LABEL", escape).map(Args::plain),
        "healthcheck" => parse_health_config(rest),
        // Unknown instructions keep one empty node; a later layer rejects them.
        _ => Ok(Args::plain(vec![String::new()])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_fallbacks() {
        assert_eq!(parse_json_array("['a']").ok(), Some(None));
        assert_eq!(parse_json_array("[\"a\"").ok(), Some(None));
        assert!(parse_json_array("[\"a\", 1]").is_err());
        assert_eq!(
            parse_maybe_json("echo [\"a\"]").map(|a| a.values).ok(),
            Some(vec!["echo [\"a\"]".to_string()])
        );
    }

    #[test]
    fn healthcheck_type_and_command() {
        let a = parse_health_config("CMD [\"a\", \"b\"]").ok();
        assert_eq!(
            a,
            Some(Args {
                values: vec!["CMD".into(), "a".into(), "b".into()],
                json: true
            })
        );
        assert_eq!(
            parse_health_config("NONE").map(|a| a.values).ok(),
            Some(vec!["NONE".into()])
        );
    }
}
