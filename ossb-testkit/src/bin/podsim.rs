//! `podsim POD -- COMMAND [ARGS...]`: runs COMMAND as a container runtime would run it in a pod
//! (see `ossb_testkit::podsim`); root only. POD is `restricted`, `unconfined` or
//! `root-default`. Exits with the command's exit code.

use ossb_testkit::podsim::Pod;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: podsim restricted|unconfined|root-default -- COMMAND [ARGS...]";
    let (pod, rest) = match args.split_first() {
        Some((name, rest)) => (name.as_str(), rest),
        None => fail(usage),
    };
    let pod = match pod {
        "restricted" => Pod::restricted(),
        "unconfined" => Pod::unconfined(),
        "root-default" => Pod::root_default(),
        _ => fail(usage),
    };
    let rest = match rest.split_first() {
        Some((dd, rest)) if dd == "--" => rest,
        _ => rest,
    };
    let Some((program, program_args)) = rest.split_first() else {
        fail(usage)
    };
    if let Err(why) = Pod::available() {
        fail(&format!("podsim: {why}"));
    }
    let mut cmd = match pod.command(program) {
        Ok(c) => c,
        Err(e) => fail(&format!("podsim: {e}")),
    };
    match cmd.args(program_args).status() {
        Ok(status) => std::process::exit(status.code().unwrap_or(128)),
        Err(e) => fail(&format!("podsim: cannot run {program}: {e}")),
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("{msg}");
    std::process::exit(2)
}
