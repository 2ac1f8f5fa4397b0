//! Build-graph behaviour: ARG scoping, platform args, expansion, stage references, targets,
//! pruning and the JSON/text views.

// A failed unwrap is a failed test here.
#![allow(clippy::unwrap_used)]

use ossb_core::dockerfile::parse;
use ossb_core::plan::{BuildGraph, Instruction, PlanError, PlanOptions, StageBase, plan};
use std::collections::BTreeMap;

fn opts(args: &[(&str, &str)]) -> PlanOptions {
    PlanOptions {
        build_args: args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        target: None,
        build_platform: "linux/amd64".into(),
        target_platform: "linux/arm64".into(),
        base_images: BTreeMap::new(),
        default_registry: None,
    }
}

fn run(df: &str, o: &PlanOptions) -> Result<BuildGraph, PlanError> {
    plan(&parse(df).expect("parses"), o)
}

fn env_of(g: &BuildGraph, stage: usize) -> BTreeMap<String, String> {
    g.stages[stage].env.iter().cloned().collect()
}

#[test]
fn global_args_feed_from_but_need_redeclaring_in_stages() {
    let df = "ARG TAG=3.20\nARG IMG=alpine:${TAG}\nFROM ${IMG}\nENV A=${TAG} B=x\nARG TAG\nENV C=${TAG}\n";
    let g = run(df, &opts(&[])).unwrap();
    assert_eq!(
        g.stages[0].base,
        StageBase::Image("docker.io/library/alpine:3.20".into())
    );
    assert!(g.stages[0].from_used_args.contains("IMG"));
    let env = env_of(&g, 0);
    assert_eq!(
        env["A"], "",
        "global ARG is not visible before redeclaration"
    );
    assert_eq!(env["C"], "3.20", "redeclared ARG takes the global value");
    let step = &g.stages[0].instructions[2];
    assert!(step.used_args.contains("TAG"));
    assert_eq!(step.build_args.get("TAG").map(String::as_str), Some("3.20"));
}

#[test]
fn build_args_override_defaults_and_env_wins_over_arg() {
    let df = "FROM scratch\nARG V=default\nENV FROM_ARG=$V\nENV V=env\nRUN echo $V\nLABEL l=$V\n";
    let g = run(df, &opts(&[("V", "cli"), ("UNUSED", "1")])).unwrap();
    let env = env_of(&g, 0);
    assert_eq!(env["FROM_ARG"], "cli");
    match &g.stages[0].instructions[4].instruction {
        Instruction::Label(l) => assert_eq!(l.pairs[0].value, "env"),
        other => panic!("{other:?}"),
    }
    // The LABEL used ENV, not the arg; RUN still depends on the arg being in scope.
    assert!(g.stages[0].instructions[4].used_args.is_empty());
    assert_eq!(g.unused_build_args, vec!["UNUSED".to_string()]);
}

#[test]
fn platform_args_are_automatic_globals() {
    let df = "FROM --platform=$BUILDPLATFORM busybox AS b\nARG TARGETARCH\nENV T=$TARGETARCH O=$TARGETOS\n";
    let g = run(df, &opts(&[])).unwrap();
    assert_eq!(g.stages[0].platform.as_deref(), Some("linux/amd64"));
    let env = env_of(&g, 0);
    assert_eq!(env["T"], "arm64");
    assert_eq!(env["O"], "", "TARGETOS was not declared in the stage");
}

#[test]
fn quotes_are_removed_and_words_split_for_expose() {
    let df = "FROM scratch\nENV P=\"80 443\" Q='a b'\nEXPOSE $P 53/udp\n";
    let g = run(df, &opts(&[])).unwrap();
    assert_eq!(env_of(&g, 0)["Q"], "a b");
    match &g.stages[0].instructions[1].instruction {
        Instruction::Expose(e) => assert_eq!(e.ports, vec!["80/tcp", "443/tcp", "53/udp"]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn stage_refs_by_name_and_index_and_images() {
    let df = "FROM alpine AS Build\nRUN true\nFROM scratch\nCOPY --from=0 /a /a\nCOPY --from=BUILD /b /b\nCOPY --from=nginx:1 /c /c\nRUN --mount=type=cache,target=/c,from=build true\n";
    let g = run(df, &opts(&[])).unwrap();
    let s1 = &g.stages[1];
    assert_eq!(s1.deps.iter().copied().collect::<Vec<_>>(), vec![0]);
    assert!(s1.image_deps.contains("docker.io/library/nginx:1"));
    assert_eq!(s1.instructions[0].copy_from, Some(StageBase::Stage(0)));
    assert_eq!(s1.instructions[1].copy_from, Some(StageBase::Stage(0)));
    assert_eq!(
        s1.instructions[2].copy_from,
        Some(StageBase::Image("docker.io/library/nginx:1".into()))
    );
    assert_eq!(
        s1.instructions[3].mount_from,
        vec![Some(StageBase::Stage(0))]
    );
    let err = run("FROM scratch\nCOPY --from=5 a b\n", &opts(&[])).unwrap_err();
    assert_eq!(err.message, "invalid stage index 5");
    assert_eq!(err.line, 2);
}

#[test]
fn from_names_only_earlier_stages() {
    let g = run("FROM alpine AS alpine\nFROM alpine\n", &opts(&[])).unwrap();
    assert_eq!(
        g.stages[0].base,
        StageBase::Image("docker.io/library/alpine:latest".into())
    );
    assert_eq!(g.stages[1].base, StageBase::Stage(0));
    assert_eq!(g.build_order(), vec![0, 1]);
}

#[test]
fn target_prunes_unneeded_stages() {
    let df = "FROM scratch AS a\nENV X=1\nFROM scratch AS b\nCOPY --from=a / /\nFROM scratch AS c\nENV Y=$NOPE\n";
    let mut o = opts(&[]);
    o.target = Some("B".into());
    let g = run(df, &o).unwrap();
    assert_eq!(g.target, 1);
    let needed: Vec<bool> = g.stages.iter().map(|s| s.needed).collect();
    assert_eq!(needed, vec![true, true, false]);
    assert!(!g.stages[2].instructions[0].expanded);
    assert_eq!(g.build_order(), vec![0, 1]);
    o.target = Some("nosuch".into());
    let err = run(df, &o).unwrap_err();
    assert!(
        err.message
            .starts_with("target stage \"nosuch\" could not be found")
    );
    assert!(err.message.contains("a, b, c"));
}

#[test]
fn onbuild_triggers_of_a_stage_base_run_in_the_child() {
    let df = "FROM scratch AS base\nONBUILD ENV FROM_TRIGGER=yes\nFROM base\nENV Z=$FROM_TRIGGER\n";
    let g = run(df, &opts(&[])).unwrap();
    let child = &g.stages[1];
    assert!(child.instructions[0].from_onbuild);
    assert_eq!(env_of(&g, 1)["Z"], "yes");
}

#[test]
fn errors_carry_lines_and_messages() {
    let err = run("FROM scratch\nRUN --network=bogus true\n", &opts(&[])).unwrap_err();
    assert_eq!(err.message, "unsupported network mode \"bogus\"");
    assert_eq!(err.line, 2);
    assert_eq!(err.exit_code().code(), 2);
    let err = run("RUN true\n", &opts(&[])).unwrap_err();
    assert_eq!(err.message, "no build stage in current context");
    let err = run("ARG X\n", &opts(&[])).unwrap_err();
    assert_eq!(err.message, "dockerfile contains no stages to build");
    let err = run("FROM scratch\nSTOPSIGNAL SIGNOPE\n", &opts(&[])).unwrap_err();
    assert_eq!(err.message, "Invalid signal: SIGNOPE");
    let err = run("FROM scratch\nRUN --mount=type=cache true\n", &opts(&[])).unwrap_err();
    assert!(err.message.contains("requires a target"), "{}", err.message);
}

#[test]
fn run_mounts_are_expanded_and_typed() {
    let df = "FROM scratch\nARG D=/cache\nRUN --mount=type=cache,target=$D,sharing=locked --mount=type=secret,id=tok,required true\n";
    let g = run(df, &opts(&[])).unwrap();
    match &g.stages[0].instructions[1].instruction {
        Instruction::Run(r) => {
            assert_eq!(r.mounts[0].target.as_deref(), Some("/cache"));
            assert!(!r.mounts[0].read_only);
            assert!(r.mounts[1].required);
            assert!(r.mounts[1].read_only);
        }
        other => panic!("{other:?}"),
    }
    assert!(g.stages[0].instructions[1].used_args.contains("D"));
}

#[test]
fn views_render() {
    let g = run("FROM alpine AS a\nARG X=1\nRUN echo $X\n", &opts(&[])).unwrap();
    let v: serde_json::Value = serde_json::from_str(&g.to_json()).unwrap();
    assert_eq!(v["stages"][0]["name"], "a");
    assert_eq!(
        v["stages"][0]["instructions"][1]["instruction"]["instruction"],
        "run"
    );
    let t = g.to_text();
    assert!(t.contains("stage 0 a [target]"), "{t}");
    assert!(
        t.contains("from: image docker.io/library/alpine:latest"),
        "{t}"
    );
    assert!(t.contains("RUN echo $X"), "{t}");
}
