//! `ONBUILD` triggers a stage inherits: from its base image's config (`OnBuild`) or from the
//! `ONBUILD` instructions of its base stage. Like BuildKit's `initOnBuildTriggers`, they run
//! right after `FROM`, located at the `FROM` line.

use crate::dockerfile::{self, Node};
use crate::plan::instructions::Instruction;

/// Parse the `OnBuild` entries of an image config into trigger nodes.
///
/// Each entry must be one instruction; `ONBUILD`, `FROM` and `MAINTAINER` are not allowed as
/// triggers.
pub(crate) fn parse_image_triggers(triggers: &[String]) -> Result<Vec<Node>, String> {
    let mut out = Vec::with_capacity(triggers.len());
    for t in triggers {
        let ast = dockerfile::parse(t).map_err(|e| {
            format!(
                "invalid ONBUILD trigger {t:?} in the base image: {}",
                e.message
            )
        })?;
        let [node] = <[Node; 1]>::try_from(ast.children).map_err(|_| {
            format!("onbuild trigger should be a single expression; the base image has {t:?}")
        })?;
        check_trigger_keyword(&node.keyword)?;
        out.push(node);
    }
    Ok(out)
}

/// BuildKit rejects these as triggers.
fn check_trigger_keyword(keyword: &str) -> Result<(), String> {
    match keyword.to_ascii_uppercase().as_str() {
        "ONBUILD" => Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".to_string()),
        k @ ("FROM" | "MAINTAINER") => Err(format!("{k} isn't allowed as an ONBUILD trigger")),
        _ => Ok(()),
    }
}

/// The trigger nodes of a stage's own `ONBUILD` instructions, in order.
pub(crate) fn stage_triggers<'a>(steps: impl IntoIterator<Item = &'a Instruction>) -> Vec<Node> {
    steps
        .into_iter()
        .filter_map(|i| match i {
            Instruction::Onbuild(o) => o.trigger.as_deref().cloned(),
            _ => None,
        })
        .collect()
}

/// A trigger node placed at the child's `FROM` line, as BuildKit reports it.
pub(crate) fn relocate(mut node: Node, from: &Node) -> Node {
    node.start_line = from.start_line;
    node.end_line = from.end_line;
    if let Some(c) = node.child.as_mut() {
        c.start_line = from.start_line;
        c.end_line = from.end_line;
    }
    node
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn image_triggers_parse_one_instruction_each() {
        let nodes =
            parse_image_triggers(&["COPY a /b".to_string(), "RUN echo hi".to_string()]).unwrap();
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[0].keyword, "copy");
        assert_eq!(nodes[1].args, vec!["echo hi".to_string()]);
    }

    #[test]
    fn forbidden_and_multiple_triggers_are_errors() {
        let e = parse_image_triggers(&["ONBUILD RUN x".to_string()]).unwrap_err();
        assert!(e.contains("ONBUILD ONBUILD"), "{e}");
        let e = parse_image_triggers(&["from alpine".to_string()]).unwrap_err();
        assert_eq!(e, "FROM isn't allowed as an ONBUILD trigger");
        let e = parse_image_triggers(&["MAINTAINER me".to_string()]).unwrap_err();
        assert_eq!(e, "MAINTAINER isn't allowed as an ONBUILD trigger");
        let e = parse_image_triggers(&["RUN a\nRUN b".to_string()]).unwrap_err();
        assert!(
            e.starts_with("onbuild trigger should be a single expression"),
            "{e}"
        );
    }
}
