//! Finding external tools and deciding whether a missing one skips or fails a test.

use std::path::{Path, PathBuf};

/// True when missing tools must fail tests instead of skipping them (`OSSB_REQUIRE_REAL=1`, or
/// `CI` set to anything but `false`/`0`/empty).
pub fn require_real() -> bool {
    let set =
        |name: &str| std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    set("OSSB_REQUIRE_REAL") || set("CI")
}

/// Finds an executable by name on `PATH` (or checks an absolute or relative path).
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let is_exec = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.contains('/') {
        let p = PathBuf::from(name);
        return is_exec(&p).then_some(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_exec(p))
}

/// Returns true when `name` is available. When it is not, prints why the test is skipped and
/// returns false; but with `OSSB_REQUIRE_REAL=1` or `CI` set it panics, so a CI run cannot
/// silently skip the real-registry tests.
pub fn require_tool(name: &str) -> bool {
    if find_tool(name).is_some() {
        return true;
    }
    if require_real() {
        panic!(
            "required tool {name:?} is not installed and OSSB_REQUIRE_REAL/CI is set; install it \
             or unset those variables to skip"
        );
    }
    eprintln!("SKIPPED: tool {name:?} is not on PATH; install it to run this test");
    false
}
