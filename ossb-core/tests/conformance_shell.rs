//! BuildKit shell-lexer conformance: `envVarTest`, `wordsTest` and `shell_lex_cases.json`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use ossb_core::dockerfile::shell::{EnvList, EnvLookup, Lexer};
use serde_json::Value;

/// The conformance directory, or `None` (after printing why) when the data is missing.
fn conformance_dir() -> Option<PathBuf> {
    ossb_testkit::conformance_path("buildkit").and_then(|p| p.parent().map(PathBuf::from))
}

fn read(rel: &str) -> Option<String> {
    let path = conformance_dir()?.join(rel);
    Some(std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

fn env_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn str_set(v: &Value) -> Option<BTreeSet<String>> {
    v.as_array().map(|a| {
        a.iter()
            .filter_map(|s| s.as_str().map(String::from))
            .collect()
    })
}

fn report(name: &str, passed: usize, failures: &[String]) {
    println!("{name}: {passed} passed, {} failed", failures.len());
    for f in failures {
        println!("  FAIL {f}");
    }
}

#[test]
fn env_var_test() {
    let Some(text) = read("buildkit/frontend/dockerfile/shell/envVarTest") else {
        return;
    };
    let env: BTreeMap<String, String> = [
        ("PWD", "/home"),
        ("SHELL", "bash"),
        ("KOREAN", "한국어"),
        ("NULL", ""),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let lexer = Lexer::new('\\');
    let (mut passed, mut skipped, mut failures) = (0, 0, Vec::new());
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('|').map(str::trim).collect();
        assert_eq!(fields.len(), 3, "bad line {line:?}");
        let (platform, input, expected) = (fields[0], fields[1], fields[2]);
        if platform == "W" {
            skipped += 1;
            continue;
        }
        let got = lexer.process_word(input, &env);
        let ok = match (&got, expected) {
            (Err(_), "error") => true,
            (Ok(s), e) => e != "error" && s == e,
            _ => false,
        };
        if ok {
            passed += 1;
        } else {
            failures.push(format!("{input:?}: expected {expected:?}, got {got:?}"));
        }
    }
    report("envVarTest", passed, &failures);
    println!("envVarTest: {skipped} skipped (Windows-only)");
    assert!(failures.is_empty());
    assert_eq!(passed + skipped, 230);
}

#[test]
fn words_test() {
    let Some(text) = read("buildkit/frontend/dockerfile/shell/wordsTest") else {
        return;
    };
    let lexer = Lexer::new('\\');
    let mut env = EnvList::default();
    let (mut passed, mut failures) = (0, Vec::new());
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        if let Some(entry) = line.strip_prefix("ENV ") {
            env.0.push(entry.trim_start().to_string());
            continue;
        }
        let (input, expected) = line.split_once('|').expect("a case line has one |");
        let input = input.trim();
        let expected: Vec<&str> = expected.trim_start().split(',').collect();
        let got = lexer.process_words(input, &env);
        let ok = match &got {
            Err(_) => expected == ["error"],
            Ok(words) => *words == expected,
        };
        if ok {
            passed += 1;
        } else {
            failures.push(format!("{input:?}: expected {expected:?}, got {got:?}"));
        }
    }
    report("wordsTest", passed, &failures);
    assert!(failures.is_empty());
    assert_eq!(passed, 24);
}

#[test]
fn shell_lex_cases() {
    let Some(text) = read("buildkit/extracted/shell_lex_cases.json") else {
        return;
    };
    let data: Value = serde_json::from_str(&text).expect("valid JSON");
    let lexer = Lexer::new('\\');
    let sections = data.as_object().expect("top-level object");
    let mut checked = 0;
    for (name, section) in sections {
        let Some(cases) = section.get("cases").and_then(Value::as_array) else {
            continue;
        };
        let (mut passed, mut failures) = (0, Vec::new());
        for case in cases {
            let outcome = match name.as_str() {
                "env_list_lookup" => check_env_list(case),
                _ => check_expansion(&lexer, case),
            };
            match outcome {
                Ok(()) => passed += 1,
                Err(f) => failures.push(f),
            }
        }
        report(name, passed, &failures);
        assert!(failures.is_empty(), "section {name} failed");
        checked += 1;
    }
    assert_eq!(checked, 4, "expected four case sections");
}

/// `process_word_with_matches`, `mandatory_env_vars` and `release_filename` cases.
fn check_expansion(lexer: &Lexer, case: &Value) -> Result<(), String> {
    let input = case["input"].as_str().ok_or("case without input")?;
    let env = env_map(&case["env"]);
    let got = lexer.process_word_with_matches(input, &env);
    let want_err = case["expect_error"].as_bool().unwrap_or(false);
    let err_contains = case["expect_error_contains"].as_str();
    match (&got, want_err || err_contains.is_some()) {
        (Err(e), true) => match err_contains {
            Some(text) if !e.to_string().contains(text) => {
                Err(format!("{input:?}: error {e} lacks {text:?}"))
            }
            _ => Ok(()),
        },
        (Ok(r), false) => {
            let expected = case["expected"].as_str().ok_or("case without expected")?;
            if r.result != expected {
                return Err(format!(
                    "{input:?}: expected {expected:?}, got {:?}",
                    r.result
                ));
            }
            if let Some(m) = str_set(&case["matched"])
                && m != r.matched
            {
                return Err(format!("{input:?}: matched {:?} != {m:?}", r.matched));
            }
            if let Some(u) = str_set(&case["unmatched"])
                && u != r.unmatched
            {
                return Err(format!("{input:?}: unmatched {:?} != {u:?}", r.unmatched));
            }
            Ok(())
        }
        _ => Err(format!("{input:?}: unexpected outcome {got:?}")),
    }
}

fn check_env_list(case: &Value) -> Result<(), String> {
    let list: Vec<String> = case["env_list"]
        .as_array()
        .ok_or("case without env_list")?
        .iter()
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    let name = case["name"].as_str().ok_or("case without name")?;
    let expected = case["expected"].as_str().ok_or("case without expected")?;
    let got = EnvList(list.clone()).lookup(name).unwrap_or_default();
    if got != expected {
        return Err(format!(
            "{list:?}[{name}]: expected {expected:?}, got {got:?}"
        ));
    }
    // The same list as (key, value) pairs must agree.
    let pairs: Vec<(String, String)> = list
        .iter()
        .map(|e| {
            let (k, v) = e.split_once('=').unwrap_or((e, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    let via_pairs = pairs.lookup(name).unwrap_or_default();
    if via_pairs != expected {
        return Err(format!("{list:?}[{name}] as pairs: got {via_pairs:?}"));
    }
    Ok(())
}
