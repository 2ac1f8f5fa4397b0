//! Where the shared conformance data lives: `$OSSB_CONFORMANCE_DIR`, else `shared/conformance`
//! beside the repository.

use std::path::PathBuf;

/// `rel` below the conformance directory, or `None` (after printing why) when it is missing.
/// With `CI` set a missing path fails the test: the data must be there.
pub fn conformance_path(rel: &str) -> Option<PathBuf> {
    let base = std::env::var_os("OSSB_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../shared/conformance"
            ))
        });
    let path = base.join(rel);
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "conformance data missing at {}",
        path.display()
    );
    println!("skip: conformance data not found at {}", path.display());
    None
}
