//! A small runner for test binaries with `harness = false` (the sandbox tests, whose `main`
//! must call `run_init_if_requested` before anything else): named checks, a name filter from
//! the command line, one `ok`/`FAIL` line each, and a final check that no step left its temp
//! dir behind.

use std::path::Path;

/// A check's outcome: `Err` says what was wrong.
pub type CheckResult = Result<(), String>;

/// A named check on a test's shared state `T`.
pub type Check<'a, T> = (&'a str, fn(&T) -> CheckResult);

/// Runs the `checks` whose names contain `filter` (all without one) against `t`, a panic
/// counting as a failure, then checks that `steps_dir` is empty. Prints one line per check and
/// a summary; returns whether everything passed.
pub fn run_checks<T>(
    checks: &[Check<'_, T>],
    t: &T,
    filter: Option<&str>,
    steps_dir: &Path,
) -> bool {
    let (mut passed, mut failed) = (0, 0);
    let mut record = |name: &str, res: CheckResult| match res {
        Ok(()) => {
            passed += 1;
            println!("ok   {name}");
        }
        Err(e) => {
            failed += 1;
            println!("FAIL {name}: {e}");
        }
    };
    for (name, f) in checks {
        if filter.is_some_and(|p| !name.contains(p)) {
            continue;
        }
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(t)))
            .unwrap_or_else(|_| Err("panicked".into()));
        record(name, res);
    }
    let leftovers: Vec<_> = std::fs::read_dir(steps_dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    record(
        "no step temp dir left",
        if leftovers.is_empty() {
            Ok(())
        } else {
            Err(format!("step temp dirs left: {leftovers:?}"))
        },
    );
    println!("{passed} passed, {failed} failed");
    failed == 0
}
