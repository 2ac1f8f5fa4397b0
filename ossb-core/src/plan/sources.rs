//! What a step reads besides the build context: the stage or image named by `COPY --from`
//! and by `RUN --mount from=`, resolved like BuildKit's `toCommand`.

use crate::plan::graph::StageBase;
use crate::plan::instructions::{Instruction, run_csv_fields};

/// The sources of one step.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct StepSources {
    /// `COPY --from` resolved.
    pub copy_from: Option<StageBase>,
    /// `RUN --mount from=` resolved, one entry per mount spec.
    pub mount_from: Vec<Option<StageBase>>,
    /// Stages the step reads.
    pub stages: Vec<usize>,
    /// Images the step reads, as written.
    pub images: Vec<String>,
}

/// Go's `strconv.Atoi`: optional sign, then ASCII digits only.
fn go_atoi(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The `from=` of a `--mount` spec, as written.
fn mount_from(spec: &str) -> Option<String> {
    run_csv_fields(spec).ok()?.into_iter().find_map(|f| {
        let (k, v) = f.split_once('=')?;
        (k.eq_ignore_ascii_case("from") && !v.is_empty()).then(|| v.to_string())
    })
}

/// Resolve the sources of `instr`. `names` are the stage names (lower-cased, `None` for an
/// unnamed stage) in Dockerfile order; a name matches the last stage so called.
pub(crate) fn step_sources(
    instr: &Instruction,
    names: &[Option<String>],
) -> Result<StepSources, String> {
    let find = |name: &str| {
        let lower = name.to_lowercase();
        names
            .iter()
            .rposition(|s| s.as_deref() == Some(lower.as_str()))
    };
    let mut out = StepSources::default();
    let by_name = |name: String, out: &mut StepSources| match find(&name) {
        Some(j) => {
            out.stages.push(j);
            StageBase::Stage(j)
        }
        None => {
            out.images.push(name.clone());
            StageBase::Image(name)
        }
    };
    match instr {
        Instruction::Copy(c) => {
            if let Some(f) = &c.from {
                let src = match go_atoi(f) {
                    Some(idx) if idx < 0 || idx as usize >= names.len() => {
                        return Err(format!("invalid stage index {idx}"));
                    }
                    Some(idx) => {
                        out.stages.push(idx as usize);
                        StageBase::Stage(idx as usize)
                    }
                    None => by_name(f.clone(), &mut out),
                };
                out.copy_from = Some(src);
            }
        }
        Instruction::Run(r) => {
            for spec in &r.mount_specs {
                let src = mount_from(spec).map(|f| by_name(f, &mut out));
                out.mount_from.push(src);
            }
        }
        _ => {}
    }
    Ok(out)
}
