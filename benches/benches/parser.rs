//! Parser and lexer throughput on pathological inputs: a 100,000-line Dockerfile and a
//! 60,000-byte line must parse in well under a second (linear algorithms, no blow-up).
//! Timing lives here, never in tests. Run: `cargo bench -p ossb-benches --bench parser`.

use ossb_core::dockerfile::parse;
use ossb_core::dockerfile::shell::Lexer;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Run `f` `runs` times and return the best and median wall time.
fn measure(runs: usize, mut f: impl FnMut()) -> (Duration, Duration) {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    (times[0], times[runs / 2])
}

fn report(name: &str, bytes: usize, (best, median): (Duration, Duration)) {
    let mb_s = bytes as f64 / 1e6 / median.as_secs_f64();
    let verdict = if median < Duration::from_millis(500) {
        "ok (< 0.5 s)"
    } else {
        "SLOW"
    };
    println!(
        "{name:<40} {bytes:>10} bytes  best {:>9.3} ms  median {:>9.3} ms  {mb_s:>8.1} MB/s  {verdict}",
        best.as_secs_f64() * 1e3,
        median.as_secs_f64() * 1e3
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this once as a smoke test.
    let runs = if std::env::args().any(|a| a == "--bench") {
        7
    } else {
        1
    };

    let mut many = String::from("FROM busybox AS base\n");
    let mut i = 0;
    while many.lines().count() < 100_000 {
        many.push_str(&format!(
            "RUN echo {i} && \\\n    touch /f{i}\n# comment {i}\nENV K{i}=\"v {i}\" L{i}=w\nCOPY --chown=1:1 a{i} /b/\n"
        ));
        i += 1;
    }
    let parsed = parse(&many).expect("the generated Dockerfile parses");
    assert!(parsed.children.len() > 50_000);
    report(
        "100,000-line Dockerfile",
        many.len(),
        measure(runs, || {
            black_box(parse(black_box(&many)).expect("parses"));
        }),
    );

    let long_line = format!("FROM busybox\nRUN echo {}\n", "x".repeat(60_000));
    report(
        "60,000-byte line",
        long_line.len(),
        measure(runs, || {
            black_box(parse(black_box(&long_line)).expect("parses"));
        }),
    );

    let continued = format!("FROM busybox\nRUN {}true\n", "a \\\n".repeat(20_000));
    report(
        "20,000 continuation lines",
        continued.len(),
        measure(runs, || {
            black_box(parse(black_box(&continued)).expect("parses"));
        }),
    );

    let heredoc = format!(
        "FROM busybox\nRUN <<EOF\n{}EOF\n",
        "echo line\n".repeat(50_000)
    );
    report(
        "50,000-line heredoc",
        heredoc.len(),
        measure(runs, || {
            black_box(parse(black_box(&heredoc)).expect("parses"));
        }),
    );

    let mut env = BTreeMap::new();
    env.insert("HOME".to_string(), "/root".to_string());
    let lexer = Lexer::new('\\');
    let word = "${HOME:-x}/\"$HOME\"'lit'\\$".repeat(3_000);
    report(
        "lexer: 60 KB word with expansions",
        word.len(),
        measure(runs, || {
            black_box(lexer.process_word(black_box(&word), &env).expect("expands"));
        }),
    );
    let pattern = format!("${{V%%{}}}", "*a".repeat(200));
    env.insert("V".to_string(), "ab".repeat(2_000));
    report(
        "lexer: %% pattern, 200 stars on 4 KB",
        pattern.len(),
        measure(runs, || {
            black_box(
                lexer
                    .process_word(black_box(&pattern), &env)
                    .expect("expands"),
            );
        }),
    );
}
