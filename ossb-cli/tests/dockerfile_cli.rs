//! `ossb dockerfile dump` and `ossb dockerfile plan` through the real binary: the dump matches
//! BuildKit's expected output for every conformance case, the JSON plan is machine-readable,
//! `--target` prunes, and mistakes exit with the documented codes and located messages.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const OSSB: &str = env!("CARGO_BIN_EXE_ossb");

fn ossb(args: &[&str]) -> Output {
    Command::new(OSSB)
        .args(args)
        .env_remove("OSSB_LOG_FORMAT")
        .output()
        .expect("ossb runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The BuildKit parser test files, or `None` (after saying why) when the data is missing
/// outside CI.
fn parser_dir() -> Option<PathBuf> {
    ossb_testkit::conformance_path("buildkit/frontend/dockerfile/parser")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, text).expect("write");
    p
}

#[test]
fn dump_matches_buildkit_results_for_every_case() {
    let Some(dir) = parser_dir() else { return };
    let mut cases = 0;
    for entry in fs::read_dir(dir.join("testfiles")).expect("testfiles") {
        let case = entry.expect("entry").path();
        let df = case.join("Dockerfile");
        let want = fs::read(case.join("result")).expect("result");
        let out = ossb(&["dockerfile", "dump", "-f", df.to_str().expect("utf8")]);
        assert!(out.status.success(), "{}: {}", case.display(), stderr(&out));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&want),
            "dump of {}",
            case.display()
        );
        cases += 1;
    }
    assert!(cases >= 30, "only {cases} cases found");
}

#[test]
fn dump_reads_standard_input() {
    let mut child = Command::new(OSSB)
        .args(["dockerfile", "dump", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("ossb runs");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(b"FROM scratch\nRUN echo hi\n")
            .expect("write");
    }
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "(from \"scratch\")\n(run \"echo hi\")\n"
    );
}

#[test]
fn negative_cases_exit_2_naming_the_file() {
    let Some(dir) = parser_dir() else { return };
    for entry in fs::read_dir(dir.join("testfiles-negative")).expect("negative") {
        let df = entry.expect("entry").path().join("Dockerfile");
        let path = df.to_str().expect("utf8");
        // A file that parses (the AST is empty or fine) must fail when planned.
        let dump = ossb(&["dockerfile", "dump", "-f", path]);
        let out = if dump.status.success() {
            ossb(&["dockerfile", "plan", "-f", path])
        } else {
            dump
        };
        assert_eq!(out.status.code(), Some(2), "{path}: {}", stderr(&out));
        assert!(stderr(&out).contains(path), "{path}: {}", stderr(&out));
    }
}

const MULTI: &str = "ARG VERSION=1.0\n\
FROM scratch AS build\n\
ARG VERSION\n\
ENV V=$VERSION\n\
COPY app /app-$VERSION\n\
FROM scratch AS unused\n\
COPY junk /junk\n\
FROM build AS test\n\
RUN make test\n\
FROM scratch AS final\n\
COPY --from=build /app-1.0 /app\n";

#[test]
fn plan_json_lists_stages_deps_and_expanded_args() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let df = write(tmp.path(), "Dockerfile", MULTI);
    let out = ossb(&[
        "dockerfile",
        "plan",
        "--format",
        "json",
        "-f",
        df.to_str().expect("utf8"),
        "--build-arg",
        "VERSION=2.0",
        "--platform",
        "linux/arm64",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let g: serde_json::Value = serde_json::from_slice(&out.stdout).expect("plan is JSON");
    let stages = g["stages"].as_array().expect("stages");
    let names: Vec<&str> = stages
        .iter()
        .map(|s| s["display_name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["build", "unused", "test", "final"]);
    assert_eq!(g["target"], 3);
    assert_eq!(g["target_platform"], "linux/arm64");
    assert_eq!(stages[3]["deps"], serde_json::json!([0]));
    assert_eq!(stages[2]["deps"], serde_json::json!([0]));
    assert_eq!(
        stages[2]["base"],
        serde_json::json!({"kind": "stage", "value": 0})
    );
    let build = &stages[0];
    assert_eq!(build["needed"], true);
    // A scratch stage starts with BuildKit's default PATH.
    assert_eq!(
        build["env"],
        serde_json::json!([
            [
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
            ],
            ["V", "2.0"]
        ])
    );
    let copy = &build["instructions"][2];
    assert_eq!(copy["line"], 5);
    assert_eq!(copy["expanded"], true);
    assert!(
        copy.to_string().contains("/app-2.0"),
        "COPY destination expanded: {copy}"
    );
    assert_eq!(copy["used_args"], serde_json::json!(["VERSION"]));
    assert_eq!(g["meta_args"][0]["name"], "VERSION");
    assert_eq!(g["meta_args"][0]["value"], "2.0");
}

#[test]
fn target_prunes_stages_in_json_and_text() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let df = write(tmp.path(), "Dockerfile", MULTI);
    let path = df.to_str().expect("utf8");
    let out = ossb(&[
        "dockerfile",
        "plan",
        "--format",
        "json",
        "-f",
        path,
        "--target",
        "TEST",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let g: serde_json::Value = serde_json::from_slice(&out.stdout).expect("plan is JSON");
    assert_eq!(g["target"], 2);
    let needed: Vec<bool> = g["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .map(|s| s["needed"].as_bool().expect("bool"))
        .collect();
    assert_eq!(needed, [true, false, true, false]);
    assert_eq!(g["stages"][1]["instructions"][0]["expanded"], false);

    let out = ossb(&["dockerfile", "plan", "-f", path, "--target", "test"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("stage 2 test [target] (line 8)"), "{text}");
    assert!(text.contains("stage 1 unused [skipped]"), "{text}");
    assert!(text.contains("stage 3 final [skipped]"), "{text}");

    let out = ossb(&["dockerfile", "plan", "-f", path, "--target", "nosuch"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("target stage \"nosuch\" could not be found"),
        "{err}"
    );
    assert!(err.contains("build, unused, test, final"), "{err}");
}

#[test]
fn bad_dockerfiles_exit_2_with_file_line_column_and_a_hint() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cases = [
        // A planning error: unknown instruction, with a suggestion.
        (
            "FROM scratch\nCOPYY a /\n",
            ":2:1: unknown instruction: COPYY (did you mean COPY?)",
        ),
        // A parse error.
        (
            "FROM scratch\nENV PATH\n",
            ":2:1: ENV must have two arguments, write it as ENV PATH=value",
        ),
        // An expansion error.
        (
            "FROM scratch\nWORKDIR ${NOPE:?must be set}\n",
            ":2:1: failed to process \"${NOPE:?must be set}\": NOPE: must be set",
        ),
        // No stage.
        ("RUN true\n", ":1:1: no build stage in current context"),
        // The column is where the instruction starts.
        (
            "FROM scratch\n    COPYY a /\n",
            ":2:5: unknown instruction: COPYY",
        ),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let df = write(tmp.path(), &format!("Dockerfile.{i}"), text);
        let path = df.to_str().expect("utf8");
        let out = ossb(&["dockerfile", "plan", "-f", path]);
        assert_eq!(out.status.code(), Some(2), "{text:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!("{path}{want}")),
            "{text:?}: want {path}{want} in {err}"
        );
    }
    let out = ossb(&["dockerfile", "plan", "-f", "/nonexistent/Dockerfile"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("/nonexistent/Dockerfile"));
}

#[test]
fn unknown_flags_exit_5() {
    for args in [
        &["dockerfile", "plan", "--bogus"][..],
        &["dockerfile", "dump", "--nope"][..],
        &["dockerfile", "plan", "--format", "yaml"][..],
    ] {
        let out = ossb(args);
        assert_eq!(out.status.code(), Some(5), "{args:?}: {}", stderr(&out));
    }
}
