//! Planning with base-image configs: the base image's `Env` is the starting environment of
//! a stage built on it, and its `ONBUILD` triggers run right after `FROM`.

// A failed unwrap is a failed test here.
#![allow(clippy::unwrap_used)]

use ossb_core::dockerfile::parse;
use ossb_core::plan::{
    BaseImageInfo, BuildGraph, Instruction, PlanError, PlanOptions, StageBase, base_images_needed,
    plan,
};
use std::collections::{BTreeMap, BTreeSet};

const ALPINE: &str = "docker.io/library/alpine:3.20";

fn opts_with(images: &[(&str, &[&str], &[&str])]) -> PlanOptions {
    let mut o = PlanOptions::default();
    for (name, env, onbuild) in images {
        o.base_images.insert(
            name.to_string(),
            BaseImageInfo {
                env: env.iter().map(|s| s.to_string()).collect(),
                onbuild: onbuild.iter().map(|s| s.to_string()).collect(),
            },
        );
    }
    o
}

fn run(df: &str, o: &PlanOptions) -> Result<BuildGraph, PlanError> {
    plan(&parse(df).unwrap(), o)
}

fn env_of(g: &BuildGraph, stage: usize) -> BTreeMap<String, String> {
    g.stages[stage].env.iter().cloned().collect()
}

#[test]
fn base_image_env_feeds_env_workdir_and_copy() {
    let o = opts_with(&[(
        ALPINE,
        &[
            "PATH=/usr/sbin:/usr/bin",
            "HOME=/root",
            "APP_DIR=/srv/app",
            "BARE",
        ],
        &[],
    )]);
    let df = "FROM alpine:3.20\nENV PATH=/app/bin:$PATH\nWORKDIR $HOME\nCOPY . $APP_DIR\nENV B=${BARE-unset}\n";
    let g = run(df, &o).unwrap();
    let env = env_of(&g, 0);
    assert_eq!(env["PATH"], "/app/bin:/usr/sbin:/usr/bin");
    assert_eq!(env["HOME"], "/root", "the base env is kept");
    assert_eq!(env["B"], "", "an entry without = is set and empty");
    match &g.stages[0].instructions[1].instruction {
        Instruction::Workdir(w) => assert_eq!(w.path, "/root"),
        other => panic!("{other:?}"),
    }
    match &g.stages[0].instructions[2].instruction {
        Instruction::Copy(c) => assert_eq!(c.sources.dest, "/srv/app"),
        other => panic!("{other:?}"),
    }
    // Without the config the variable is empty, as before.
    let g = run(df, &PlanOptions::default()).unwrap();
    assert_eq!(env_of(&g, 0)["PATH"], "/app/bin:");
}

#[test]
fn base_image_env_passes_through_a_base_stage_and_env_beats_args() {
    let o = opts_with(&[(ALPINE, &["V=image"], &[])]);
    let df = "FROM alpine:3.20 AS a\nFROM a\nARG V=arg\nENV W=$V\n";
    let g = run(df, &o).unwrap();
    assert_eq!(env_of(&g, 1)["W"], "image");
}

#[test]
fn base_image_triggers_run_first_with_their_dependencies() {
    let o = opts_with(&[(
        "docker.io/library/base:latest",
        &["DIR=/from-image"],
        &["COPY --from=helper /tool $DIR/tool", "ENV TRIGGERED=1"],
    )]);
    let df = "FROM scratch AS helper\nCOPY tool /tool\nFROM scratch AS unused\nFROM base\nENV AFTER=$TRIGGERED\n";
    let g = run(df, &o).unwrap();
    let child = &g.stages[2];
    assert_eq!(child.instructions.len(), 3);
    let t = &child.instructions[0];
    assert!(t.from_onbuild);
    assert_eq!(t.line, 4, "a trigger is located at the FROM line");
    assert_eq!(t.copy_from, Some(StageBase::Stage(0)));
    match &t.instruction {
        Instruction::Copy(c) => assert_eq!(c.sources.dest, "/from-image/tool"),
        other => panic!("{other:?}"),
    }
    assert!(child.deps.contains(&0));
    assert!(g.stages[0].needed, "the trigger's source stage is built");
    assert!(!g.stages[1].needed);
    assert_eq!(g.build_order(), vec![0, 2]);
    assert_eq!(env_of(&g, 2)["AFTER"], "1");
}

#[test]
fn bad_base_image_triggers_are_errors_at_the_from_line() {
    let df = "FROM scratch\nRUN true\nFROM base\n";
    for (trigger, want) in [
        (
            "ONBUILD RUN x",
            "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
        ),
        ("FROM alpine", "FROM isn't allowed as an ONBUILD trigger"),
        (
            "MAINTAINER me",
            "MAINTAINER isn't allowed as an ONBUILD trigger",
        ),
    ] {
        let o = opts_with(&[("docker.io/library/base:latest", &[], &[trigger])]);
        let err = run(df, &o).unwrap_err();
        assert_eq!(err.message, want);
        assert_eq!(err.line, 3);
    }
    let o = opts_with(&[(
        "docker.io/library/base:latest",
        &[],
        &["COPY --from=nosuch / /"],
    )]);
    let g = run(df, &o).unwrap();
    assert!(
        g.stages[1]
            .image_deps
            .contains("docker.io/library/nosuch:latest")
    );
}

#[test]
fn base_images_needed_lists_needed_bases_without_expanding() {
    let df = "FROM alpine:3.20 AS a\nENV X=${MUST:?needed}\nFROM busybox AS b\nFROM scratch\nCOPY --from=a / /\n";
    let needed = base_images_needed(&parse(df).unwrap(), &PlanOptions::default()).unwrap();
    assert_eq!(needed, BTreeSet::from([ALPINE.to_string()]));
    // Planning without the base env fails; with it, the same Dockerfile plans.
    assert!(run(df, &PlanOptions::default()).is_err());
    let o = opts_with(&[(ALPINE, &["MUST=ok"], &[])]);
    assert_eq!(env_of(&run(df, &o).unwrap(), 0)["X"], "ok");
}

#[test]
fn triggers_can_make_more_base_images_needed() {
    let df = "FROM alpine:3.20 AS tools\nFROM scratch AS other\nFROM base\n";
    let ast = parse(df).unwrap();
    let base = "docker.io/library/base:latest";
    let first = base_images_needed(&ast, &PlanOptions::default()).unwrap();
    assert_eq!(first, BTreeSet::from([base.to_string()]));
    let o = opts_with(&[(base, &[], &["COPY --from=tools /x /x"])]);
    let second = base_images_needed(&ast, &o).unwrap();
    assert_eq!(
        second,
        BTreeSet::from([base.to_string(), ALPINE.to_string()])
    );
}

#[test]
fn base_stage_triggers_resolve_copy_from_and_make_it_needed() {
    let df =
        "FROM scratch AS tool\nFROM scratch AS base\nONBUILD COPY --from=tool /t /t\nFROM base\n";
    let g = run(df, &PlanOptions::default()).unwrap();
    let child = &g.stages[2];
    assert_eq!(child.instructions[0].copy_from, Some(StageBase::Stage(0)));
    assert_eq!(child.instructions[0].line, 4);
    assert!(child.deps.contains(&0) && child.deps.contains(&1));
    assert!(g.stages[0].needed);
    assert_eq!(g.build_order(), vec![0, 1, 2]);
}

#[test]
fn a_trigger_closing_a_cycle_is_an_error() {
    let df = "FROM scratch AS a\nONBUILD COPY --from=b /x /x\nFROM a AS b\n";
    let err = run(df, &PlanOptions::default()).unwrap_err();
    // The trigger runs in b and reads b itself.
    assert_eq!(err.message, "circular dependency detected on stage: b");
    assert_eq!(err.line, 3);
}

#[test]
fn scratch_starts_with_the_default_path_except_on_windows() {
    let df = "FROM scratch\nENV PATH=/x:$PATH\n";
    let g = run(df, &PlanOptions::default()).unwrap();
    assert_eq!(
        env_of(&g, 0)["PATH"],
        "/x:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    );
    let o = PlanOptions {
        target_platform: "windows/amd64".into(),
        ..PlanOptions::default()
    };
    assert_eq!(env_of(&run(df, &o).unwrap(), 0)["PATH"], "/x:");
    let df = "FROM --platform=windows/amd64 scratch\nENV PATH=/x:$PATH\n";
    let g = run(df, &PlanOptions::default()).unwrap();
    assert_eq!(env_of(&g, 0)["PATH"], "/x:");
}

#[test]
fn a_trigger_reading_a_child_stage_is_a_cycle() {
    let o = opts_with(&[(ALPINE, &[], &["COPY --from=child /x /x"])]);
    let df = "FROM alpine:3.20 AS parent\nFROM parent AS child\n";
    let err = run(df, &o).unwrap_err();
    assert!(
        err.message
            .starts_with("circular dependency detected on stage: "),
        "{}",
        err.message
    );
}
