//! Multi-platform builds, the checks made before anything is fetched or built: which
//! platforms to build, whether the outputs can hold them, and whether RUN steps of a foreign
//! architecture have an emulator here (see `docs/multi-platform.md`).

use crate::backend::{BuildRequest, Output};
use crate::dockerfile::Ast;
use crate::error::{Error, ExitCode};
use crate::exec::binfmt::{self, BINFMT_DIR};
use crate::image::oci::Platform;
use crate::plan::{self, BuildGraph, Instruction, PlanOptions, StageBase};
use std::path::Path;

/// The platforms to build, normalised and without duplicates, in the order given; the host's
/// when the request names none.
pub(crate) fn targets(request: &BuildRequest, host: &Platform) -> Result<Vec<Platform>, Error> {
    let mut out: Vec<Platform> = Vec::new();
    for p in &request.platforms {
        let p = Platform::parse(p.trim())?.normalize();
        if !out.contains(&p) {
            out.push(p);
        }
    }
    if out.is_empty() {
        out.push(host.clone());
    }
    Ok(out)
}

/// Refuse, before building, what the outputs and annotations cannot express for `count`
/// platforms.
pub(crate) fn check_request(request: &BuildRequest, platforms: &[Platform]) -> Result<(), Error> {
    let list = || {
        platforms
            .iter()
            .map(Platform::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    if platforms.len() > 1
        && request
            .outputs
            .iter()
            .any(|o| matches!(o, Output::Docker { .. }))
    {
        return Err(Error::new(
            ExitCode::Configuration,
            format!(
                "--output type=docker holds one image, but {} platforms were asked for ({}): \
                 `docker load` cannot take an image index. Use --output type=oci,dest=DIR or \
                 --push for a multi-platform image, or one build per --platform for docker",
                platforms.len(),
                list()
            ),
        ));
    }
    if platforms.len() == 1 && request.annotations.needs_index() {
        return Err(Error::new(
            ExitCode::Configuration,
            "index and manifest-descriptor annotations need an image index, which only a \
             multi-platform build (--platform a,b) makes; use manifest annotations for one platform",
        ));
    }
    Ok(())
}

/// The platform a stage's binaries are for: its `FROM --platform`, else that of the stage it
/// is based on (BuildKit carries the base stage's platform over), else the target.
pub(crate) fn stage_platform(
    graph: &BuildGraph,
    mut index: usize,
    target: &Platform,
) -> Result<Platform, Error> {
    // A base stage always comes earlier, so this walk ends.
    loop {
        let stage = &graph.stages[index];
        if let Some(p) = &stage.platform {
            return Ok(Platform::parse(p)?);
        }
        match stage.base {
            StageBase::Stage(j) if j < index => index = j,
            _ => return Ok(target.clone()),
        }
    }
}

/// Fail before the build starts when a needed stage has RUN steps for a platform this machine
/// cannot execute (no native support and no enabled `binfmt_misc` handler); the error names
/// the platform and how to get an emulator (exit code 5).
pub(crate) fn check_emulation(
    ast: &Ast,
    options: &[(Platform, PlanOptions)],
    host: &Platform,
) -> Result<(), Error> {
    check_emulation_in(ast, options, host, Path::new(BINFMT_DIR))
}

fn check_emulation_in(
    ast: &Ast,
    options: &[(Platform, PlanOptions)],
    host: &Platform,
    binfmt_dir: &Path,
) -> Result<(), Error> {
    for (target, opts) in options {
        let graph = plan::plan_shallow(ast, opts)?;
        for (i, stage) in graph.stages.iter().enumerate() {
            let has_run = stage
                .instructions
                .iter()
                .any(|s| matches!(s.instruction, Instruction::Run(_)));
            if !stage.needed || !has_run {
                continue;
            }
            let platform = stage_platform(&graph, i, target)?;
            binfmt::emulation_for(host, &platform, binfmt_dir)?;
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn opts(target: &str) -> (Platform, PlanOptions) {
        (
            Platform::parse(target).unwrap(),
            PlanOptions {
                build_platform: "linux/amd64".into(),
                target_platform: target.into(),
                ..PlanOptions::default()
            },
        )
    }

    #[test]
    fn run_steps_on_the_build_platform_need_no_emulator() {
        let empty = tempfile::tempdir().unwrap();
        let host = Platform::parse("linux/amd64").unwrap();
        let df = "FROM --platform=$BUILDPLATFORM scratch AS build\nRUN true\n\
                  FROM scratch\nCOPY --from=build /x /x\n";
        let ast = crate::dockerfile::parse(df).unwrap();
        check_emulation_in(&ast, &[opts("linux/s390x")], &host, empty.path()).unwrap();
        // A stage based on the build stage inherits its platform.
        let df2 = "FROM --platform=$BUILDPLATFORM scratch AS build\nFROM build\nRUN true\n";
        let ast2 = crate::dockerfile::parse(df2).unwrap();
        check_emulation_in(&ast2, &[opts("linux/s390x")], &host, empty.path()).unwrap();
        // A RUN in a target-platform stage does.
        let df3 = "FROM scratch\nRUN true\n";
        let ast3 = crate::dockerfile::parse(df3).unwrap();
        let err = check_emulation_in(
            &ast3,
            &[opts("linux/amd64"), opts("linux/s390x")],
            &host,
            empty.path(),
        )
        .unwrap_err();
        assert_eq!(err.exit_code(), ExitCode::Configuration);
        assert!(err.to_string().contains("linux/s390x"), "{err}");
    }

    #[test]
    fn docker_output_and_index_annotations_are_checked_against_the_platform_count() {
        let two = [
            Platform::parse("linux/amd64").unwrap(),
            Platform::parse("linux/arm64").unwrap(),
        ];
        let mut req = BuildRequest::new(".");
        req.outputs.push(Output::Docker {
            dest: "x.tar".into(),
        });
        let err = check_request(&req, &two).unwrap_err();
        assert!(err.to_string().contains("docker load"), "{err}");
        assert!(check_request(&req, &two[..1]).is_ok());
        let mut req = BuildRequest::new(".");
        req.annotations =
            crate::image::annotations::Annotations::parse(&["index:k=v".to_string()]).unwrap();
        assert!(check_request(&req, &two[..1]).is_err());
        assert!(check_request(&req, &two).is_ok());
    }

    #[test]
    fn targets_are_normalised_and_deduplicated() {
        let mut req = BuildRequest::new(".");
        req.platforms = vec![
            "linux/aarch64".into(),
            "linux/arm64/v8".into(),
            "linux/amd64".into(),
        ];
        let host = Platform::host();
        let t = targets(&req, &host).unwrap();
        assert_eq!(
            t.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
            ["linux/arm64", "linux/amd64"]
        );
        assert_eq!(targets(&BuildRequest::new("."), &host).unwrap(), vec![host]);
    }
}
