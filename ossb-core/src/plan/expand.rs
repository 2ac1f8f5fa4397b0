//! Variable expansion of instruction arguments, for exactly the instructions BuildKit expands:
//! `ADD COPY ENV EXPOSE LABEL STOPSIGNAL USER VOLUME WORKDIR ARG` and the `RUN` flags
//! (`--mount`, `--network`, `--security`). `FROM` is expanded with the global args in
//! [`crate::plan::graph`]. `RUN`, `CMD`, `ENTRYPOINT`, `SHELL`, `HEALTHCHECK`, `ONBUILD`
//! and `MAINTAINER` are left as written.
//!
//! The executor can call [`expand_instruction`] again with the base image's `Env` added.

use crate::dockerfile::shell::{EnvLookup, Lexer};
use crate::plan::instructions::{Instruction, SourcesAndDest, parse_mount, validate_signal};
use crate::plan::ports::parse_port_specs;
use std::cell::RefCell;
use std::collections::BTreeSet;

/// Expands words against one environment and remembers the variables it found.
struct Expander<'a> {
    lexer: &'a Lexer,
    env: &'a dyn EnvLookup,
    matched: RefCell<BTreeSet<String>>,
}

impl Expander<'_> {
    fn word(&self, w: &str) -> Result<String, String> {
        let r = self
            .lexer
            .process_word_with_matches(w, self.env)
            .map_err(|e| e.to_string())?;
        self.matched.borrow_mut().extend(r.matched);
        Ok(r.result)
    }

    fn words(&self, w: &str) -> Result<Vec<String>, String> {
        let r = self
            .lexer
            .process_word_with_matches(w, self.env)
            .map_err(|e| e.to_string())?;
        self.matched.borrow_mut().extend(r.matched);
        Ok(r.words)
    }

    fn raw(&self, w: &str) -> Result<String, String> {
        let mut lexer = Lexer::new('\\');
        lexer.skip_process_quotes = true;
        let r = lexer
            .process_word_with_matches(w, self.env)
            .map_err(|e| e.to_string())?;
        self.matched.borrow_mut().extend(r.matched);
        Ok(r.result)
    }

    fn opt(&self, w: &Option<String>) -> Result<Option<String>, String> {
        w.as_deref().map(|v| self.word(v)).transpose()
    }

    fn list(&self, v: &[String]) -> Result<Vec<String>, String> {
        v.iter().map(|w| self.word(w)).collect()
    }

    fn sources(&self, s: &SourcesAndDest) -> Result<SourcesAndDest, String> {
        let mut out = s.clone();
        out.dest = self.word(&s.dest)?;
        out.source_paths = self.list(&s.source_paths)?;
        for c in &mut out.source_contents {
            if c.expand {
                c.data = self.raw(&c.data)?;
            }
        }
        Ok(out)
    }
}

/// True for a source BuildKit treats as a URL (`http://`, `https://`).
pub fn is_url(src: &str) -> bool {
    src.starts_with("http://") || src.starts_with("https://")
}

/// True for a source BuildKit treats as a git reference.
pub fn is_git_ref(src: &str) -> bool {
    if src.starts_with("git://") || src.starts_with("git@") || src.starts_with("ssh://") {
        return true;
    }
    if is_url(src) {
        let path = src.split('#').next().unwrap_or(src);
        return path.ends_with(".git");
    }
    false
}

/// Expand one instruction's arguments with `env` (the stage's ENV plus the args in scope).
/// Returns the expanded instruction and the names of the variables that were found.
pub fn expand_instruction(
    instr: &Instruction,
    lexer: &Lexer,
    env: &dyn EnvLookup,
) -> Result<(Instruction, BTreeSet<String>), String> {
    let x = Expander {
        lexer,
        env,
        matched: RefCell::new(BTreeSet::new()),
    };
    let out = match instr {
        Instruction::Env(e) => {
            let mut e = e.clone();
            for p in &mut e.pairs {
                p.key = x.word(&p.key)?;
                p.value = x.word(&p.value)?;
            }
            Instruction::Env(e)
        }
        Instruction::Label(l) => {
            let mut l = l.clone();
            for p in &mut l.pairs {
                p.key = x.word(&p.key)?;
                p.value = x.word(&p.value)?;
            }
            Instruction::Label(l)
        }
        Instruction::Arg(a) => {
            let mut a = a.clone();
            for p in &mut a.args {
                p.key = x.word(&p.key)?;
                p.default = x.opt(&p.default)?;
            }
            Instruction::Arg(a)
        }
        Instruction::Copy(c) => {
            let mut c = c.clone();
            c.chown = x.opt(&c.chown)?;
            c.chmod = x.opt(&c.chmod)?;
            c.excludes = x.list(&c.excludes)?;
            c.sources = x.sources(&c.sources)?;
            for src in &c.sources.source_paths {
                if is_git_ref(src) {
                    return Err("source can't be a git ref for COPY".to_string());
                }
                if is_url(src) {
                    return Err("source can't be a URL for COPY".to_string());
                }
            }
            Instruction::Copy(c)
        }
        Instruction::Add(a) => {
            let mut a = a.clone();
            a.chown = x.opt(&a.chown)?;
            a.chmod = x.opt(&a.chmod)?;
            a.checksum = x.opt(&a.checksum)?;
            a.excludes = x.list(&a.excludes)?;
            a.sources = x.sources(&a.sources)?;
            Instruction::Add(a)
        }
        Instruction::Workdir(w) => {
            let mut w = w.clone();
            w.path = x.word(&w.path)?;
            Instruction::Workdir(w)
        }
        Instruction::User(u) => {
            let mut u = u.clone();
            u.user = x.word(&u.user)?;
            Instruction::User(u)
        }
        Instruction::Volume(v) => {
            let mut v = v.clone();
            v.paths = x.list(&v.paths)?;
            if v.paths.iter().any(|p| p.is_empty()) {
                return Err("VOLUME specified can not be an empty string".to_string());
            }
            Instruction::Volume(v)
        }
        Instruction::StopSignal(s) => {
            let mut s = s.clone();
            s.signal = x.word(&s.signal)?;
            validate_signal(&s.signal)?;
            Instruction::StopSignal(s)
        }
        Instruction::Expose(e) => {
            let mut e = e.clone();
            let mut words = Vec::new();
            for spec in &e.specs {
                words.extend(x.words(spec)?);
            }
            e.ports = parse_port_specs(&words)?;
            Instruction::Expose(e)
        }
        Instruction::Run(r) => {
            let mut r = r.clone();
            let f = |w: &str| x.word(w);
            r.mounts = r
                .mount_specs
                .iter()
                .map(|s| parse_mount(s, Some(&f)))
                .collect::<Result<_, _>>()?;
            r.network_spec = x.word(&r.network_spec)?;
            r.network = crate::plan::instructions::run_network(&r.network_spec)?;
            r.security_spec = x.word(&r.security_spec)?;
            r.security = crate::plan::instructions::run_security(&r.security_spec)?;
            Instruction::Run(r)
        }
        other => other.clone(),
    };
    Ok((out, x.matched.into_inner()))
}
