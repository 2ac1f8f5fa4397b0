//! BuildKit's instruction-level tables (`extracted/instructions_cases.json`) against
//! `ossb_core::plan`: argument errors, instruction errors, heredoc sources, RUN heredocs and
//! flags, `--device`, EXPOSE specs, HEALTHCHECK, doc comments, conversion errors, proxy args
//! and the HEALTHCHECK history text.

// A failed unwrap is a failed test here.
#![allow(clippy::unwrap_used)]

use ossb_core::dockerfile::{Node, parse};
use ossb_core::plan::duration::parse_go_duration;
use ossb_core::plan::instructions::{Healthcheck, parse_device};
use ossb_core::plan::ports::{parse_port_spec, parse_port_specs};
use ossb_core::plan::{Instruction, PlanOptions, parse_instruction, plan};
use serde_json::Value;
use std::collections::BTreeMap;

fn load() -> Option<Value> {
    let path = ossb_testkit::conformance_path("buildkit/extracted/instructions_cases.json")?;
    let text = std::fs::read_to_string(&path).expect("readable instructions_cases.json");
    Some(serde_json::from_str(&text).expect("instructions_cases.json is valid JSON"))
}

fn s(v: &Value) -> &str {
    v.as_str().expect("string")
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| s(x).to_string())
        .collect()
}

fn first_node(df: &str) -> Node {
    let ast = parse(df).unwrap_or_else(|e| panic!("{df:?} must parse: {e}"));
    ast.children[0].clone()
}

fn node(keyword: &str, args: Vec<String>) -> Node {
    Node {
        keyword: keyword.to_lowercase(),
        flags: vec![],
        args,
        child: None,
        heredocs: vec![],
        json: false,
        original: keyword.to_string(),
        start_line: 1,
        end_line: 1,
        prev_comment: vec![],
    }
}

fn opts() -> PlanOptions {
    PlanOptions {
        build_platform: "linux/amd64".into(),
        target_platform: "linux/amd64".into(),
        ..PlanOptions::default()
    }
}

struct Counts(Vec<(String, usize)>);

impl Counts {
    fn add(&mut self, section: &str, n: usize) {
        assert!(n > 0, "section {section} ran no cases");
        println!("{section}: {n} cases passed");
        self.0.push((section.to_string(), n));
    }
}

#[test]
fn instructions_cases() {
    let Some(data) = load() else { return };
    let mut counts = Counts(Vec::new());

    // Argument-count errors: the exact text.
    let sec = &data["argument_count_errors"];
    let mut n = 0;
    for c in sec["cases"].as_array().unwrap() {
        let err = parse_instruction(&first_node(s(&c["dockerfile"]))).unwrap_err();
        assert_eq!(err, s(&c["error"]), "{}", c["dockerfile"]);
        n += 1;
    }
    for c in sec["node_level_cases"].as_array().unwrap() {
        let err = parse_instruction(&node(s(&c["instruction"]), strs(&c["nodes"]))).unwrap_err();
        assert_eq!(err, s(&c["error"]));
        n += 1;
    }
    counts.add("argument_count_errors", n);

    // Instruction errors: the error contains the text.
    let mut n = 0;
    for c in data["error_cases"]["cases"].as_array().unwrap() {
        let err = parse_instruction(&first_node(s(&c["dockerfile"]))).unwrap_err();
        assert!(
            err.contains(s(&c["error_contains"])),
            "{}: got {err:?}",
            c["name"]
        );
        // The same error through plan(), with the line.
        let full = format!("FROM scratch\n{}", s(&c["dockerfile"]));
        let perr = plan(&parse(&full).unwrap(), &opts()).unwrap_err();
        assert!(perr.message.contains(s(&c["error_contains"])));
        assert_eq!(perr.line, 2);
        n += 1;
    }
    counts.add("error_cases", n);

    // HEALTHCHECK CMD -> CMD-SHELL.
    let hc = &data["healthcheck_cmd"];
    match parse_instruction(&node("HEALTHCHECK", strs(&hc["nodes"]))).unwrap() {
        Instruction::Healthcheck(h) => assert_eq!(h.test, strs(&hc["expected_test"])),
        other => panic!("{other:?}"),
    }
    counts.add("healthcheck_cmd", 1);

    let mut n = 0;
    for c in data["healthcheck_interval"]["cases"].as_array().unwrap() {
        let mut nd = node("HEALTHCHECK", vec!["CMD".into(), "true".into()]);
        nd.flags = vec![format!("--interval={}", s(&c["value"]))];
        let r = parse_instruction(&nd);
        match c.get("error_contains") {
            Some(e) => assert!(r.unwrap_err().contains(s(e)), "{c}"),
            None => assert!(r.is_ok(), "{c}"),
        }
        n += 1;
    }
    counts.add("healthcheck_interval", n);

    let rf = &data["run_flags_used"];
    match parse_instruction(&first_node(s(&rf["dockerfile"]))).unwrap() {
        Instruction::Run(r) => {
            let used: Vec<String> = r.flags_used.into_iter().collect();
            assert_eq!(used, strs(&rf["flags_used"]));
        }
        other => panic!("{other:?}"),
    }
    counts.add("run_flags_used", 1);

    // Doc comments.
    let dc = &data["doc_comments"];
    let g = plan(&parse(s(&dc["dockerfile"])).unwrap(), &opts()).unwrap();
    let exp = &dc["expected"];
    assert_eq!(g.stages[0].doc, s(&exp["stage0_doc"]));
    assert_eq!(g.meta_args[0].name, "foo");
    assert_eq!(g.meta_args[0].doc, s(&exp["meta_arg_foo_doc"]));
    let mut stage_docs = BTreeMap::new();
    for st in &g.stages[0].instructions {
        if let Instruction::Arg(a) = &st.instruction {
            for p in &a.args {
                stage_docs.insert(p.key.clone(), p.doc.clone());
            }
        }
    }
    assert_eq!(stage_docs["foo"], s(&exp["stage_arg_foo_doc"]));
    assert_eq!(stage_docs["bar"], s(&exp["stage_arg_bar_doc"]));
    assert_eq!(stage_docs["baz"], s(&exp["stage_arg_baz_doc"]));
    counts.add("doc_comments", 5);

    // COPY heredoc sources.
    let mut n = 0;
    for c in data["copy_heredoc_sources"]["cases"].as_array().unwrap() {
        let e = &c["expected"];
        match parse_instruction(&first_node(s(&c["dockerfile"]))).unwrap() {
            Instruction::Copy(cp) => {
                assert_eq!(cp.sources.dest, s(&e["dest"]));
                assert_eq!(cp.sources.source_paths, strs(&e["source_paths"]));
                let want: Vec<(String, String, bool)> = e["source_contents"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| {
                        (
                            s(&x["path"]).into(),
                            s(&x["data"]).into(),
                            x["expand"].as_bool().unwrap(),
                        )
                    })
                    .collect();
                let got: Vec<(String, String, bool)> = cp
                    .sources
                    .source_contents
                    .iter()
                    .map(|x| (x.path.clone(), x.data.clone(), x.expand))
                    .collect();
                assert_eq!(got, want, "{}", c["dockerfile"]);
            }
            other => panic!("{other:?}"),
        }
        n += 1;
    }
    counts.add("copy_heredoc_sources", n);

    // RUN heredocs.
    let mut n = 0;
    for c in data["run_heredoc"]["cases"].as_array().unwrap() {
        match parse_instruction(&first_node(s(&c["dockerfile"]))).unwrap() {
            Instruction::Run(r) => {
                assert_eq!(r.cmd.prepend_shell, c["prepend_shell"].as_bool().unwrap());
                assert_eq!(r.cmd.args, strs(&c["cmd_line"]), "{}", c["dockerfile"]);
                let want: Vec<(String, String, bool)> = c["files"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| {
                        (
                            s(&x["name"]).into(),
                            s(&x["data"]).into(),
                            x["chomp"].as_bool().unwrap(),
                        )
                    })
                    .collect();
                let got: Vec<(String, String, bool)> = r
                    .cmd
                    .files
                    .iter()
                    .map(|f| (f.name.clone(), f.data.clone(), f.chomp))
                    .collect();
                assert_eq!(got, want);
            }
            other => panic!("{other:?}"),
        }
        n += 1;
    }
    counts.add("run_heredoc", n);

    // --device.
    let mut n = 0;
    for c in data["run_device_flag"]["cases"].as_array().unwrap() {
        let r = parse_device(s(&c["input"]));
        match c.get("error") {
            Some(e) => assert_eq!(r.unwrap_err(), s(e)),
            None => {
                let d = r.unwrap();
                assert_eq!(d.name, s(&c["name"]));
                assert_eq!(d.required, c["required"].as_bool().unwrap(), "{c}");
            }
        }
        n += 1;
    }
    counts.add("run_device_flag", n);

    // EXPOSE specs.
    let ex = &data["expose_port_specs"];
    let mut n = 0;
    for c in ex["error_cases"].as_array().unwrap() {
        assert_eq!(parse_port_spec(s(&c["spec"])).unwrap_err(), s(&c["error"]));
        n += 1;
    }
    for c in ex["single_cases"].as_array().unwrap() {
        assert_eq!(
            parse_port_spec(s(&c["spec"])).unwrap(),
            strs(&c["expected"]),
            "{c}"
        );
        n += 1;
    }
    for c in ex["list_cases"].as_array().unwrap() {
        let r = parse_port_specs(&strs(&c["specs"]));
        if c.get("expect_error").is_some() {
            assert!(r.is_err(), "{c}");
        } else {
            let mut got = r.unwrap();
            got.sort();
            let mut want = strs(&c["expected"]);
            want.sort();
            assert_eq!(got, want);
        }
        // The same specs through EXPOSE in a Dockerfile.
        let df = format!("FROM scratch\nEXPOSE {}\n", strs(&c["specs"]).join(" "));
        let g = plan(&parse(&df).unwrap(), &opts());
        assert_eq!(g.is_err(), c.get("expect_error").is_some());
        n += 1;
    }
    counts.add("expose_port_specs", n);

    // Conversion cases.
    let conv = &data["conversion_cases"];
    let mut n = 0;
    for c in conv["cases"].as_array().unwrap() {
        let ast = parse(s(&c["dockerfile"])).unwrap();
        let mut o = opts();
        o.target = c.get("target").map(|t| s(t).to_string());
        let r = plan(&ast, &o);
        if let Some(e) = c.get("error") {
            assert_eq!(r.unwrap_err().message, s(e), "{}", c["dockerfile"]);
        } else if c["ok"].as_bool().unwrap() {
            let g = r.unwrap_or_else(|e| panic!("{}: {e}", c["dockerfile"]));
            if let Some(labels) = c.get("final_labels") {
                let mut got = BTreeMap::new();
                let mut i = g.target;
                let mut chain = vec![i];
                while let ossb_core::plan::StageBase::Stage(j) = g.stages[i].base {
                    chain.push(j);
                    i = j;
                }
                for idx in chain.into_iter().rev() {
                    for st in &g.stages[idx].instructions {
                        if let Instruction::Label(l) = &st.instruction {
                            for p in &l.pairs {
                                got.insert(p.key.clone(), p.value.clone());
                            }
                        }
                    }
                }
                let want: BTreeMap<String, String> = labels
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), s(v).to_string()))
                    .collect();
                assert_eq!(got, want);
            }
        } else {
            assert!(r.is_err(), "{} must fail", c["dockerfile"]);
        }
        n += 1;
    }
    counts.add("conversion_cases", n);

    // HEALTHCHECK history text.
    let hh = &conv["healthcheck_history"];
    let h = &hh["health"];
    let hc = Healthcheck {
        test: strs(&h["Test"]),
        interval_ns: parse_go_duration(s(&h["Interval"])).unwrap(),
        timeout_ns: parse_go_duration(s(&h["Timeout"])).unwrap(),
        start_period_ns: parse_go_duration(s(&h["StartPeriod"])).unwrap(),
        start_interval_ns: parse_go_duration(s(&h["StartInterval"])).unwrap(),
        retries: h["Retries"].as_i64().unwrap(),
    };
    assert_eq!(hc.history_created_by(), s(&hh["created_by"]));
    counts.add("healthcheck_history", 1);

    // Proxy args: lower case wins; none -> no proxy env.
    let pa = &conv["proxy_args"];
    let mut o = opts();
    o.build_args = pa["build_args"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), s(v).to_string()))
        .collect();
    let g = plan(&parse("FROM scratch\nRUN true\n").unwrap(), &o).unwrap();
    let p = g.proxy.expect("proxy env");
    let exp = &pa["expected_proxy_env"];
    assert_eq!(p.http_proxy.as_deref(), Some(s(&exp["HTTPProxy"])));
    assert_eq!(p.no_proxy.as_deref(), Some(s(&exp["NoProxy"])));
    assert_eq!(p.all_proxy.as_deref(), Some(s(&exp["AllProxy"])));
    assert_eq!(p.https_proxy, None);
    assert!(g.unused_build_args.is_empty());
    let g = plan(&parse("FROM scratch\nRUN true\n").unwrap(), &opts()).unwrap();
    assert!(g.proxy.is_none());
    counts.add("proxy_args", 2);

    let total: usize = counts.0.iter().map(|c| c.1).sum();
    println!(
        "total: {total} cases in {} sections, 0 failures",
        counts.0.len()
    );
}
