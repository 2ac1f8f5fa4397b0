use super::*;
use crate::dockerfile::parse;

fn first(df: &str) -> Result<Instruction, String> {
    let ast = parse(df).expect("parses");
    parse_instruction(&ast.children[0])
}

#[test]
fn from_forms() {
    match first("FROM --platform=linux/arm64 Alpine AS Build").unwrap() {
        Instruction::From(f) => {
            assert_eq!(f.base, "Alpine");
            assert_eq!(f.name.as_deref(), Some("build"));
            assert_eq!(f.platform.as_deref(), Some("linux/arm64"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        first("FROM a b").unwrap_err(),
        "FROM requires either one or three arguments"
    );
    assert!(
        first("FROM a AS 1x")
            .unwrap_err()
            .contains("invalid name for build stage")
    );
}

#[test]
fn copy_add_flags() {
    match first(
        "COPY --from=b --chown=1:1 --chmod=755 --link --parents --exclude=*.md --exclude=x a b /d/",
    )
    .unwrap()
    {
        Instruction::Copy(c) => {
            assert_eq!(c.from.as_deref(), Some("b"));
            assert_eq!(c.chmod.as_deref(), Some("755"));
            assert!(c.link && c.parents);
            assert_eq!(c.excludes, vec!["*.md", "x"]);
            assert_eq!(c.sources.source_paths, vec!["a", "b"]);
        }
        other => panic!("{other:?}"),
    }
    match first("ADD --checksum=sha256:abc --keep-git-dir --unpack=false u /d").unwrap() {
        Instruction::Add(a) => {
            assert_eq!(a.checksum.as_deref(), Some("sha256:abc"));
            assert!(a.keep_git_dir);
            assert_eq!(a.unpack, Some(false));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        first("ADD --from=x a b").unwrap_err(),
        "unknown flag: --from"
    );
    match first(r#"COPY ["a b", "/c"]"#).unwrap() {
        Instruction::Copy(c) => assert_eq!(c.sources.source_paths, vec!["a b"]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn shell_and_cmd_forms() {
    assert_eq!(
        first("SHELL /bin/sh -c").unwrap_err(),
        "SHELL requires the arguments to be in JSON form"
    );
    match first(r#"CMD ["a", "b"]"#).unwrap() {
        Instruction::Cmd(c) => {
            assert!(!c.prepend_shell);
            assert_eq!(c.args, vec!["a", "b"]);
        }
        other => panic!("{other:?}"),
    }
    match first("ENTRYPOINT exec me").unwrap() {
        Instruction::Entrypoint(c) => assert!(c.prepend_shell),
        other => panic!("{other:?}"),
    }
}

#[test]
fn healthcheck_flags() {
    match first("HEALTHCHECK --interval=5s --retries=3 CMD curl -f x").unwrap() {
        Instruction::Healthcheck(h) => {
            assert_eq!(h.test, vec!["CMD-SHELL", "curl -f x"]);
            assert_eq!(h.interval_ns, 5_000_000_000);
            assert_eq!(h.retries, 3);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        first("HEALTHCHECK NONE x").unwrap_err(),
        "HEALTHCHECK NONE takes no arguments"
    );
    assert!(
        first("HEALTHCHECK --retries=-1 CMD x")
            .unwrap_err()
            .contains("cannot be negative")
    );
    assert!(
        first("HEALTHCHECK FOO x")
            .unwrap_err()
            .contains("Unknown type")
    );
}

#[test]
fn args_env_onbuild() {
    match first("ARG a b=\"1 2\" c=").unwrap() {
        Instruction::Arg(a) => {
            let keys: Vec<&str> = a.args.iter().map(|p| p.key.as_str()).collect();
            assert_eq!(keys, vec!["a", "b", "c"]);
            assert_eq!(a.args[0].default, None);
            assert_eq!(a.args[2].default.as_deref(), Some(""));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(first("ARG =x").unwrap_err(), "ARG names can not be blank");
    match first("ONBUILD RUN echo hi").unwrap() {
        Instruction::Onbuild(o) => {
            assert_eq!(o.expression, "RUN echo hi");
            assert!(o.trigger.is_some());
        }
        other => panic!("{other:?}"),
    }
    assert!(
        first("ONBUILD MAINTAINER me")
            .unwrap_err()
            .contains("isn't allowed")
    );
}

#[test]
fn mounts_and_signals() {
    let id = |s: &str| -> Result<String, String> { Ok(s.to_string()) };
    let m = parse_mount("type=tmpfs,target=/t,size=64m", Some(&id)).unwrap();
    assert_eq!(m.size_limit, Some(64 * 1024 * 1024));
    assert!(parse_mount("type=bind,target=/t,mode=0644", Some(&id)).is_err());
    assert!(parse_mount("type=bogus,target=/t", Some(&id)).is_err());
    assert!(parse_mount("type=bind,target=/t,sharing=locked", Some(&id)).is_err());
    assert!(parse_mount("type=secret", Some(&id)).is_err());
    assert!(parse_mount("from=$X,target=/t", None).is_err());
    assert!(validate_signal("SIGTERM").is_ok());
    assert!(validate_signal("kill").is_ok());
    assert!(validate_signal("9").is_ok());
    assert!(validate_signal("SIGRTMIN+3").is_ok());
    assert!(validate_signal("0").is_err());
}

#[test]
fn heredoc_words_and_unknown() {
    assert_eq!(
        parse_heredoc_word("<<EOF"),
        Some(("EOF".into(), false, true))
    );
    assert_eq!(
        parse_heredoc_word("<<-'E'"),
        Some(("E".into(), true, false))
    );
    assert_eq!(
        parse_heredoc_word("3<<\"X\""),
        Some(("X".into(), false, false))
    );
    assert_eq!(parse_heredoc_word("<<"), None);
    assert_eq!(parse_heredoc_word("a<<b"), None);
    assert_eq!(first("Bogus x").unwrap_err(), "unknown instruction: Bogus");
    assert_eq!(
        first("COPYY a b").unwrap_err(),
        "unknown instruction: COPYY (did you mean COPY?)"
    );
    assert_eq!(
        first("workdi /x").unwrap_err(),
        "unknown instruction: workdi (did you mean workdir?)"
    );
}
