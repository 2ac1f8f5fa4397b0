//! Parse a Dockerfile and print the build graph OSSB would run.
//!
//! `cargo run -p ossb-examples --example dockerfile-plan -- path/to/Dockerfile [TARGET]`

use ossb_core::dockerfile::parse;
use ossb_core::plan::{PlanOptions, plan};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: dockerfile-plan DOCKERFILE [TARGET]")?;
    let text = std::fs::read_to_string(&path)?;
    let ast = parse(&text)?;
    let options = PlanOptions {
        target: args.next(),
        ..PlanOptions::default()
    };
    let graph = plan(&ast, &options)?;
    print!("{}", graph.to_text());
    Ok(())
}
