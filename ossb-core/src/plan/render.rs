//! Dockerfile-like text for a typed instruction (the text plan view).

use crate::plan::duration::format_go_duration;
use crate::plan::instructions::{CommandLine, Instruction, KeyValue, SourcesAndDest};

fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn cmdline(c: &CommandLine) -> String {
    if c.prepend_shell {
        c.args.join(" ")
    } else {
        json_list(&c.args)
    }
}

fn kvs(pairs: &[KeyValue]) -> String {
    pairs
        .iter()
        .map(|p| format!("{}={:?}", p.key, p.value))
        .collect::<Vec<_>>()
        .join(" ")
}

fn flag(out: &mut String, name: &str, v: &Option<String>) {
    if let Some(v) = v {
        out.push_str(&format!(" --{name}={v}"));
    }
}

fn sources(out: &mut String, s: &SourcesAndDest) {
    for p in &s.source_paths {
        out.push(' ');
        out.push_str(p);
    }
    for c in &s.source_contents {
        out.push_str(&format!(" <<{}({} bytes)", c.path, c.data.len()));
    }
    out.push(' ');
    out.push_str(&s.dest);
}

/// Render one instruction on one line.
pub fn render_instruction(i: &Instruction) -> String {
    let mut out = i.keyword().to_string();
    match i {
        Instruction::From(f) => {
            flag(&mut out, "platform", &f.platform);
            out.push(' ');
            out.push_str(&f.base);
            if let Some(n) = &f.name {
                out.push_str(&format!(" AS {n}"));
            }
        }
        Instruction::Run(r) => {
            for m in &r.mount_specs {
                out.push_str(&format!(" --mount={m}"));
            }
            if r.network_spec != "default" {
                out.push_str(&format!(" --network={}", r.network_spec));
            }
            if r.security_spec != "sandbox" {
                out.push_str(&format!(" --security={}", r.security_spec));
            }
            for d in &r.devices {
                out.push_str(&format!(" --device={}", d.name));
            }
            out.push(' ');
            out.push_str(&cmdline(&r.cmd));
        }
        Instruction::Cmd(c) | Instruction::Entrypoint(c) => {
            out.push(' ');
            out.push_str(&cmdline(c));
        }
        Instruction::Shell(s) => {
            out.push(' ');
            out.push_str(&json_list(&s.shell));
        }
        Instruction::Copy(c) => {
            flag(&mut out, "from", &c.from);
            flag(&mut out, "chown", &c.chown);
            flag(&mut out, "chmod", &c.chmod);
            if c.link {
                out.push_str(" --link");
            }
            if c.parents {
                out.push_str(" --parents");
            }
            for e in &c.excludes {
                out.push_str(&format!(" --exclude={e}"));
            }
            sources(&mut out, &c.sources);
        }
        Instruction::Add(a) => {
            flag(&mut out, "chown", &a.chown);
            flag(&mut out, "chmod", &a.chmod);
            flag(&mut out, "checksum", &a.checksum);
            if a.link {
                out.push_str(" --link");
            }
            if a.keep_git_dir {
                out.push_str(" --keep-git-dir");
            }
            if let Some(u) = a.unpack {
                out.push_str(&format!(" --unpack={u}"));
            }
            for e in &a.excludes {
                out.push_str(&format!(" --exclude={e}"));
            }
            sources(&mut out, &a.sources);
        }
        Instruction::Env(e) => {
            out.push(' ');
            out.push_str(&kvs(&e.pairs));
        }
        Instruction::Label(l) => {
            out.push(' ');
            out.push_str(&kvs(&l.pairs));
        }
        Instruction::Arg(a) => {
            for p in &a.args {
                out.push(' ');
                out.push_str(&p.key);
                if let Some(d) = &p.default {
                    out.push_str(&format!("={d:?}"));
                }
            }
        }
        Instruction::Expose(e) => {
            let list = if e.ports.is_empty() {
                &e.specs
            } else {
                &e.ports
            };
            out.push(' ');
            out.push_str(&list.join(" "));
        }
        Instruction::Healthcheck(h) => {
            if h.test.first().map(String::as_str) == Some("NONE") {
                out.push_str(" NONE");
            } else {
                out.push_str(&format!(
                    " --interval={} --timeout={} --start-period={} --start-interval={} --retries={} {}",
                    format_go_duration(h.interval_ns),
                    format_go_duration(h.timeout_ns),
                    format_go_duration(h.start_period_ns),
                    format_go_duration(h.start_interval_ns),
                    h.retries,
                    json_list(&h.test)
                ));
            }
        }
        Instruction::User(u) => out.push_str(&format!(" {}", u.user)),
        Instruction::Workdir(w) => out.push_str(&format!(" {}", w.path)),
        Instruction::Volume(v) => out.push_str(&format!(" {}", json_list(&v.paths))),
        Instruction::StopSignal(s) => out.push_str(&format!(" {}", s.signal)),
        Instruction::Onbuild(o) => out.push_str(&format!(" {}", o.expression)),
        Instruction::Maintainer(m) => out.push_str(&format!(" {}", m.name)),
    }
    out
}
