//! BuildKit parser conformance: the upstream test files and the transcribed test tables in
//! `buildkit/extracted/parser_cases.json`.

use std::path::{Path, PathBuf};

use ossb_core::dockerfile::directives::{DirectiveParser, detect_syntax, parse_directive};
use ossb_core::dockerfile::dump::dump;
use ossb_core::dockerfile::heredoc::{
    chomp_heredoc_content, heredocs_from_line, parse_heredoc_word,
};
use ossb_core::dockerfile::parser::{parse_json_array, parse_name_value, parse_words};
use ossb_core::dockerfile::{Heredoc, parse};
use serde_json::Value;

/// The BuildKit conformance directory, or `None` (after printing why) when it is missing and
/// not running in CI.
fn buildkit_dir() -> Option<PathBuf> {
    ossb_testkit::conformance_path("buildkit")
}

fn parser_dir(dir: &Path) -> PathBuf {
    dir.join("frontend/dockerfile/parser")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn cases_json(dir: &Path) -> Value {
    let text = read(&dir.join("extracted/parser_cases.json"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parser_cases.json: {e}"))
}

fn sub_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// Tallies one group of cases and fails the test at the end with every failure listed.
struct Tally {
    name: String,
    passed: usize,
    failures: Vec<String>,
}

impl Tally {
    fn new(name: &str) -> Self {
        Tally {
            name: name.to_string(),
            passed: 0,
            failures: Vec::new(),
        }
    }

    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if ok {
            self.passed += 1;
        } else {
            self.failures.push(what());
        }
    }

    fn finish(self) {
        println!(
            "{}: {} passed, {} failed",
            self.name,
            self.passed,
            self.failures.len()
        );
        assert!(self.passed > 0, "{}: no cases found", self.name);
        assert!(
            self.failures.is_empty(),
            "{} failures:\n{}",
            self.name,
            self.failures.join("\n")
        );
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn heredoc_json(doc: &Heredoc) -> Value {
    serde_json::json!({
        "name": doc.name,
        "content": doc.content,
        "expand": doc.expand,
        "chomp": doc.chomp,
        "file_descriptor": doc.file_descriptor,
    })
}

#[test]
fn testfiles_dump_exactly() {
    let Some(dir) = buildkit_dir() else { return };
    let mut tally = Tally::new("parser testfiles");
    for case in sub_dirs(&parser_dir(&dir).join("testfiles")) {
        let input = read(&case.join("Dockerfile"));
        let expected = read(&case.join("result"));
        let name = case.file_name().map(|n| n.to_string_lossy().into_owned());
        match parse(&input) {
            Ok(ast) => {
                let got = dump(&ast) + "\n";
                tally.check(got == expected, || {
                    format!("{name:?}: dump differs\n--- got\n{got}--- want\n{expected}")
                });
            }
            Err(e) => tally.check(false, || format!("{name:?}: unexpected error {e}")),
        }
    }
    tally.finish();
}

#[test]
fn negative_testfiles_fail() {
    let Some(dir) = buildkit_dir() else { return };
    let mut tally = Tally::new("parser testfiles-negative");
    for case in sub_dirs(&parser_dir(&dir).join("testfiles-negative")) {
        let input = read(&case.join("Dockerfile"));
        let result = parse(&input);
        tally.check(result.is_err(), || {
            format!("{case:?}: parsed but must fail")
        });
    }
    tally.finish();
}

#[test]
fn line_numbers() {
    let Some(dir) = buildkit_dir() else { return };
    let cases = cases_json(&dir);
    let spec = &cases["line_numbers"];
    let input = read(&parser_dir(&dir).join("testfile-line/Dockerfile"));
    let mut tally = Tally::new("line_numbers");
    let ast = parse(&input).unwrap_or_else(|e| panic!("testfile-line: {e}"));
    tally.check(
        Some(ast.start_line as u64) == spec["root_start_line"].as_u64()
            && Some(ast.end_line as u64) == spec["root_end_line"].as_u64(),
        || format!("root span {}..{}", ast.start_line, ast.end_line),
    );
    tally.check(
        Some(ast.children.len() as u64) == spec["children"].as_u64(),
        || format!("children {}", ast.children.len()),
    );
    let want = spec["child_lines"].as_array().cloned().unwrap_or_default();
    for (i, span) in want.iter().enumerate() {
        let got = ast
            .children
            .get(i)
            .map(|n| serde_json::json!([n.start_line, n.end_line]));
        tally.check(got.as_ref() == Some(span), || {
            format!("child {i}: got {got:?}, want {span}")
        });
    }
    tally.finish();
}

#[test]
fn heredoc_extraction() {
    let Some(dir) = buildkit_dir() else { return };
    let cases = cases_json(&dir);
    let spec = &cases["heredoc_extraction"];
    let mut tally = Tally::new("heredoc_extraction");
    let text = spec["dockerfile"].as_str().unwrap_or_default();
    let ast = parse(text).unwrap_or_else(|e| panic!("heredoc dockerfile: {e}"));
    let expected = spec["expected"].as_array().cloned().unwrap_or_default();
    tally.check(ast.children.len() == expected.len() + 1, || {
        format!(
            "children {} want {}",
            ast.children.len(),
            expected.len() + 1
        )
    });
    for (k, want) in expected.iter().enumerate() {
        let node = ast.children.get(k + 1);
        let got: Value = match node {
            Some(n) if n.heredocs.is_empty() => Value::Null,
            Some(n) => Value::Array(n.heredocs.iter().map(heredoc_json).collect()),
            None => Value::String("missing".into()),
        };
        tally.check(&got == want, || {
            format!("instruction {}: got {got}, want {want}", k + 1)
        });
    }

    let json_spec = &cases["heredoc_json_form"];
    let text = json_spec["dockerfile"].as_str().unwrap_or_default();
    let ast = parse(text).unwrap_or_else(|e| panic!("heredoc json dockerfile: {e}"));
    for i in json_spec["children_without_heredocs"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let i = i.as_u64().unwrap_or(0) as usize;
        let node = ast.children.get(i);
        tally.check(
            node.is_some_and(|n| n.heredocs.is_empty() && n.json),
            || format!("json form child {i} has heredocs or is missing"),
        );
    }
    tally.finish();
}

#[test]
fn heredoc_word() {
    let Some(dir) = buildkit_dir() else { return };
    let cases = cases_json(&dir);
    let spec = &cases["heredoc_word"];
    let mut tally = Tally::new("heredoc_word");
    for word in strings(&spec["valid_name_EOF"]) {
        let got = parse_heredoc_word(&word);
        let ok = matches!(&got, Ok(Some(doc)) if doc.name == "EOF");
        tally.check(ok, || format!("{word:?}: got {got:?}, want name EOF"));
    }
    for word in strings(&spec["invalid_error"]) {
        let got = parse_heredoc_word(&word);
        tally.check(got.is_err(), || {
            format!("{word:?}: got {got:?}, want error")
        });
    }
    for word in strings(&spec["not_heredoc"]) {
        let got = parse_heredoc_word(&word);
        tally.check(matches!(got, Ok(None)), || {
            format!("{word:?}: got {got:?}, want no heredoc")
        });
    }
    tally.finish();
}

#[test]
fn heredocs_from_line_names() {
    let Some(dir) = buildkit_dir() else { return };
    let cases = cases_json(&dir);
    let mut tally = Tally::new("heredocs_from_line");
    for case in cases["heredocs_from_line"]["cases"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let line = case["line"].as_str().unwrap_or_default();
        let want = strings(&case["names"]);
        let got = heredocs_from_line(line)
            .map(|docs| docs.into_iter().map(|d| d.name).collect::<Vec<String>>());
        // As upstream: the names of the heredocs found must match, in order.
        let ok = match &got {
            Ok(names) => names.len() <= want.len() && names.iter().zip(&want).all(|(a, b)| a == b),
            Err(_) => false,
        };
        tally.check(ok, || format!("{line:?}: got {got:?}, want {want:?}"));
    }
    tally.finish();
}

#[test]
fn heredoc_chomp() {
    let Some(dir) = buildkit_dir() else { return };
    let cases = cases_json(&dir);
    let spec = &cases["heredoc_chomp"];
    let mut tally = Tally::new("heredoc_chomp");
    let got = chomp_heredoc_content(spec["input"].as_str().unwrap_or_default());
    let want = spec["expected"].as_str().unwrap_or_default();
    tally.check(got == want, || format!("got {got:?}, want {want:?}"));
    tally.finish();
}

#[test]
fn parse_words_cases() {
    let Some(dir) = buildkit_dir() else { return };
    let cases = cases_json(&dir);
    let mut tally = Tally::new("parse_words");
    for case in cases["parse_words"]["cases"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let input = case["input"].as_str().unwrap_or_default();
        let got = parse_words(input, '\\');
        let want = strings(&case["expected"]);
        tally.check(got == want, || {
            format!("{input:?}: got {got:?}, want {want:?}")
        });
    }
    tally.finish();
}

#[test]
fn json_arrays() {
    let Some(dir) = buildkit_dir() else { return };
    let cases = cases_json(&dir);
    let spec = &cases["json_arrays"];
    let mut tally = Tally::new("json_arrays");
    for case in spec["valid"].as_array().cloned().unwrap_or_default() {
        let input = case["json"].as_str().unwrap_or_default();
        let got = parse_json_array(input);
        let want = strings(&case["expected"]);
        let ok = matches!(&got, Ok(Some(v)) if *v == want);
        tally.check(ok, || format!("{input:?}: got {got:?}, want {want:?}"));
    }
    for input in strings(&spec["invalid_non_string"]) {
        let got = parse_json_array(&input);
        let ok = matches!(&got, Err(e) if e.message.contains("arrays must be comprised of strings only"));
        tally.check(ok, || {
            format!("{input:?}: got {got:?}, want non-string error")
        });
        // RUN must not fall back to the shell form either.
        let line = format!("RUN {input}");
        tally.check(parse(&line).is_err(), || format!("{line:?} parsed"));
    }
    tally.finish();
}

#[test]
fn name_value() {
    let Some(dir) = buildkit_dir() else { return };
    let cases = cases_json(&dir);
    let mut tally = Tally::new("name_value");
    for case in cases["name_value"]["cases"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let key = case["instruction"].as_str().unwrap_or_default();
        let args = case["args"].as_str().unwrap_or_default();
        let got = parse_name_value(args, key, '\\');
        match case["expect_error"].as_str() {
            Some(msg) => {
                let ok = matches!(&got, Err(e) if e.message.contains(msg));
                tally.check(ok, || format!("{key} {args:?}: got {got:?}, want {msg:?}"));
            }
            None => {
                let want = strings(&case["expected_nodes"]);
                let ok = matches!(&got, Ok(v) if *v == want);
                tally.check(ok, || format!("{key} {args:?}: got {got:?}, want {want:?}"));
            }
        }
    }
    tally.finish();
}

#[test]
fn directives() {
    let Some(dir) = buildkit_dir() else { return };
    let cases = cases_json(&dir);
    let mut tally = Tally::new("directives");
    for case in cases["directives"]["cases"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        if let Some(text) = case["text"]
            .as_str()
            .filter(|_| case["parse_directive"].is_null())
        {
            let got = DirectiveParser::default().parse_all(text).map(|ds| {
                ds.into_iter()
                    .map(|d| serde_json::json!({"name": d.name, "value": d.value}))
                    .collect::<Vec<_>>()
            });
            let want = case["directives"].as_array().cloned().unwrap_or_default();
            let ok = matches!(&got, Ok(v) if *v == want);
            tally.check(ok, || format!("{text:?}: got {got:?}, want {want:?}"));
            continue;
        }
        let (key, text) = match (
            case["parse_directive"].as_str(),
            case["detect_syntax"].as_str(),
        ) {
            (Some(key), _) => (key, case["text"].as_str().unwrap_or_default().to_string()),
            (None, Some(text)) => {
                let bom = if case["detect_syntax_bytes_hex_prefix"].as_str() == Some("efbbbf") {
                    "\u{feff}"
                } else {
                    ""
                };
                ("syntax", format!("{bom}{text}"))
            }
            (None, None) => {
                tally.check(false, || format!("unknown directive case {case}"));
                continue;
            }
        };
        let got = if key == "syntax" {
            detect_syntax(&text)
        } else {
            parse_directive(key, &text)
        };
        let want_ok = case["ok"].as_bool().unwrap_or(false);
        let mut ok = got.is_some() == want_ok;
        if let Some(found) = &got {
            let value_key = if key == "syntax" { "ref" } else { "value" };
            if let Some(v) = case[value_key].as_str() {
                ok &= found.value == v;
            }
            if let Some(v) = case["cmdline"].as_str() {
                ok &= found.cmdline == v;
            }
            if let Some(v) = case["line"].as_u64() {
                ok &= found.line as u64 == v;
            }
        }
        tally.check(ok, || {
            format!("{key} in {text:?}: got {got:?}, want {case}")
        });
    }
    tally.finish();
}

#[test]
fn empty_continuation_warnings() {
    let Some(dir) = buildkit_dir() else { return };
    let cases = cases_json(&dir);
    let spec = &cases["empty_continuation_warnings"];
    let mut tally = Tally::new("empty_continuation_warnings");
    let text = spec["dockerfile"].as_str().unwrap_or_default();
    let ast = parse(text).unwrap_or_else(|e| panic!("warnings dockerfile: {e}"));
    let count = spec["expected_warning_count"].as_u64().unwrap_or(0) as usize;
    tally.check(ast.warnings.len() == count, || {
        format!("got {} warnings, want {count}", ast.warnings.len())
    });
    for (i, key) in ["warning_0_contains", "warning_1_contains"]
        .iter()
        .enumerate()
    {
        for needle in strings(&spec[*key]) {
            let ok = ast
                .warnings
                .get(i)
                .is_some_and(|w| w.short.contains(&needle));
            tally.check(ok, || format!("warning {i} lacks {needle:?}"));
        }
    }
    let detail = spec["warning_detail_contains"].as_str().unwrap_or_default();
    for w in &ast.warnings {
        tally.check(w.detail.contains(detail), || {
            format!("detail {:?}", w.detail)
        });
    }
    tally.finish();
}

#[test]
fn line_too_long() {
    let Some(dir) = buildkit_dir() else { return };
    let cases = cases_json(&dir);
    let want = cases["line_too_long"]["error"].as_str().unwrap_or_default();
    let mut tally = Tally::new("line_too_long");
    let text = format!("\n\t\tFROM image\n\t\tLABEL test={}\n", "a".repeat(65536));
    let got = parse(&text);
    let ok = matches!(&got, Err(e) if e.message == want && e.line == 3);
    tally.check(ok, || format!("got {:?}", got.err()));
    // One byte under the limit still parses.
    let fits = format!("FROM image\nLABEL t={}\n", "a".repeat(65535 - 8));
    tally.check(parse(&fits).is_ok(), || {
        "a 65535-byte line must parse".into()
    });
    tally.finish();
}
