//! moby/patternmatcher conformance: every section of `patternmatcher_cases.json`.

use ossb_core::dockerignore::{
    MatchInfo, MatchType, PatternError, PatternMatcher, clean_path, read_ignore_file,
    simple_matches,
};
use serde_json::Value;

/// The parsed case file, or `None` (after printing why) when the data is missing.
fn cases() -> Option<Value> {
    let file = ossb_testkit::conformance_path("patternmatcher/patternmatcher_cases.json")?;
    let text = std::fs::read_to_string(&file).expect("readable case file");
    Some(serde_json::from_str(&text).expect("valid JSON"))
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

fn list<'a>(data: &'a Value, section: &str, key: &str) -> &'a [Value] {
    data[section][key]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn report(name: &str, passed: usize, failures: &[String]) {
    println!("{name}: {passed} passed, {} failed", failures.len());
    for f in failures {
        println!("  FAIL {f}");
    }
    assert!(failures.is_empty(), "{name} failed");
    assert!(passed > 0, "{name} has no cases");
}

#[test]
fn simple_matches_cases() {
    let Some(data) = cases() else { return };
    let (mut passed, mut failures) = (0, Vec::new());
    for case in list(&data, "simple_matches", "cases") {
        let text = case["text"].as_str().unwrap_or_default();
        let patterns = strings(&case["patterns"]);
        let got = simple_matches(text, &patterns);
        let want_err = case["error"].as_bool().unwrap_or(false);
        let ok = match &got {
            Err(_) => want_err,
            Ok(m) => !want_err && Some(*m) == case["match"].as_bool(),
        };
        if ok {
            passed += 1;
        } else {
            failures.push(format!("{text:?} {patterns:?}: got {got:?}"));
        }
    }
    report("simple_matches", passed, &failures);
}

/// The three ways upstream checks a single-pattern case.
fn single_pattern_ways(pattern: &str, text: &str) -> Result<[bool; 3], PatternError> {
    let pm = PatternMatcher::new(&[pattern])?;
    let all_at_once = pm.matches_or_parent_matches(text)?;
    // Walk the parent directories first, passing each result down.
    let parent = text.rfind('/').map(|i| clean_path(&text[..=i]));
    let mut info = MatchInfo::default();
    if let Some(parent) = parent.filter(|p| p != ".") {
        let dirs: Vec<&str> = parent.split('/').collect();
        for n in 1..=dirs.len() {
            info = pm
                .matches_using_parent_results(&dirs[..n].join("/"), info)?
                .1;
        }
    }
    let walked = pm.matches_using_parent_results(text, info)?.0;
    let no_context = pm
        .matches_using_parent_results(text, MatchInfo::default())?
        .0;
    Ok([all_at_once, walked, no_context])
}

#[test]
fn matches_single_pattern_cases() {
    let Some(data) = cases() else { return };
    for key in ["cases", "unix_only_cases"] {
        let (mut passed, mut failures) = (0, Vec::new());
        for case in list(&data, "matches_single_pattern", key) {
            let pattern = case["pattern"].as_str().unwrap_or_default();
            let text = case["text"].as_str().unwrap_or_default();
            let pass = case["pass"].as_bool().unwrap_or_default();
            match single_pattern_ways(pattern, text) {
                Ok(ways) if ways == [pass; 3] => passed += 1,
                other => failures.push(format!("{pattern:?} vs {text:?}: {other:?}")),
            }
        }
        report(&format!("matches_single_pattern.{key}"), passed, &failures);
    }
}

#[test]
fn matches_multi_pattern_cases() {
    let Some(data) = cases() else { return };
    let (mut passed, mut failures) = (0, Vec::new());
    for case in list(&data, "matches_multi_pattern", "cases") {
        let patterns = strings(&case["patterns"]);
        let text = case["text"].as_str().unwrap_or_default();
        let pass = case["pass"].as_bool();
        let got = PatternMatcher::new(&patterns).and_then(|pm| pm.matches_or_parent_matches(text));
        if got.as_ref().ok().copied() == pass {
            passed += 1;
        } else {
            failures.push(format!("{patterns:?} vs {text:?}: {got:?}"));
        }
    }
    report("matches_multi_pattern", passed, &failures);
}

#[test]
fn filepath_match_compat_cases() {
    let Some(data) = cases() else { return };
    let (mut passed, mut failures) = (0, Vec::new());
    for case in list(&data, "filepath_match_compat", "cases") {
        let pattern = case["pattern"].as_str().unwrap_or_default();
        let text = case["text"].as_str().unwrap_or_default();
        let got = simple_matches(text, &[pattern]);
        let ok = match (&got, case["error"].as_str()) {
            (Err(e), Some(msg)) => e.to_string() == msg,
            (Ok(m), None) => Some(*m) == case["match"].as_bool(),
            _ => false,
        };
        if ok {
            passed += 1;
        } else {
            failures.push(format!("{pattern:?} vs {text:?}: {got:?}"));
        }
    }
    report("filepath_match_compat", passed, &failures);
}

#[test]
fn compile_classification_cases() {
    let Some(data) = cases() else { return };
    let (mut passed, mut failures) = (0, Vec::new());
    for case in list(&data, "compile", "cases") {
        let pattern = case["pattern"].as_str().unwrap_or_default();
        let Ok(pm) = PatternMatcher::new(&[pattern]) else {
            failures.push(format!("{pattern:?}: rejected"));
            continue;
        };
        let Some(p) = pm.patterns().first() else {
            failures.push(format!("{pattern:?}: dropped"));
            continue;
        };
        let kind = match p.match_type() {
            MatchType::Exact => "exactMatch",
            MatchType::Prefix => "prefixMatch",
            MatchType::Suffix => "suffixMatch",
            MatchType::Regexp => "regexpMatch",
        };
        let want_re = case["regexp_slash"].as_str().unwrap_or_default();
        if Some(kind) == case["match_type"].as_str() && p.regexp_source() == want_re {
            passed += 1;
        } else {
            failures.push(format!("{pattern:?}: {kind} {:?}", p.regexp_source()));
        }
    }
    println!("compile (informative upstream; checked here for the / separator):");
    report("compile", passed, &failures);
}

#[test]
fn clean_patterns_cases() {
    let Some(data) = cases() else { return };
    let (mut passed, mut failures) = (0, Vec::new());
    for case in list(&data, "clean_patterns", "cases") {
        let patterns = strings(&case["patterns"]);
        let got = PatternMatcher::new(&patterns);
        let ok = match &got {
            Err(_) => case["error"].as_bool() == Some(true),
            Ok(pm) => {
                case["error"].as_bool() != Some(true)
                    && case["kept"]
                        .as_u64()
                        .is_none_or(|k| pm.patterns().len() as u64 == k)
                    && case["has_exclusions"]
                        .as_bool()
                        .is_none_or(|e| pm.exclusions() == e)
            }
        };
        if ok {
            passed += 1;
        } else {
            failures.push(format!("{patterns:?}: {got:?}"));
        }
    }
    report("clean_patterns", passed, &failures);
}

#[test]
fn malformed_repeat_case() {
    let Some(data) = cases() else { return };
    let section = &data["malformed_repeat"];
    let patterns = strings(&section["patterns"]);
    let text = section["text"].as_str().unwrap_or_default();
    let want = section["error_each_call"].as_str().unwrap_or_default();
    let pm = PatternMatcher::new(&patterns);
    let mut failures = Vec::new();
    match pm {
        Ok(pm) if section["construct_ok"].as_bool() == Some(true) => {
            for call in 0..3 {
                match pm.matches_or_parent_matches(text) {
                    Err(e) if e.to_string() == want => {}
                    other => failures.push(format!("call {call}: {other:?}")),
                }
            }
        }
        other => failures.push(format!("construction: {other:?}")),
    }
    report("malformed_repeat", 1 - failures.len().min(1), &failures);
}

#[test]
fn ignorefile_readall_case() {
    let Some(data) = cases() else { return };
    let section = &data["ignorefile_readall"];
    let got = read_ignore_file(section["input"].as_str().unwrap_or_default());
    let want = strings(&section["expected"]);
    let failures: Vec<String> = if got == want {
        Vec::new()
    } else {
        vec![format!("got {got:?}, want {want:?}")]
    };
    report(
        "ignorefile_readall",
        usize::from(failures.is_empty()),
        &failures,
    );
}
