//! Fuzz the Dockerfile parser, the dump printer and the planner: no panic, no hang on any
//! input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(ast) = ossb_core::dockerfile::parse(text) {
            let _ = ossb_core::dockerfile::dump::dump(&ast);
            let _ = ossb_core::plan::plan(&ast, &ossb_core::plan::PlanOptions::default());
        }
    }
});
