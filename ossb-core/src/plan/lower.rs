//! Dockerfile AST -> [`BuildGraph`], following BuildKit's `dockerfile2llb.toDispatchState`:
//! parse every instruction, resolve the global args, expand each `FROM`, find the target,
//! collect stage dependencies, reject cycles, then expand the steps of the needed stages.

use crate::dockerfile::shell::Lexer;
use crate::dockerfile::{Ast, Node};
use crate::plan::args::{
    MetaArg, Platform, is_frontend_arg, is_proxy_arg, platform_args, proxy_env,
};
use crate::plan::error::PlanError;
use crate::plan::expand::expand_instruction;
use crate::plan::graph::{BuildGraph, Stage, StageBase, Step};
use crate::plan::instructions::{ArgPair, From, Instruction, parse_instruction};
use crate::plan::onbuild::{parse_image_triggers, relocate, stage_triggers};
use crate::plan::sources::step_sources;
use crate::plan::{BaseImageInfo, PlanOptions};
use crate::reference::Reference;
use std::collections::{BTreeMap, BTreeSet};

/// A step before expansion: instruction, node, from a trigger, COPY --from, mount sources.
type Item<'a> = (
    Instruction,
    &'a Node,
    bool,
    Option<StageBase>,
    Vec<Option<StageBase>>,
);

struct RawStage<'a> {
    from: From,
    node: &'a Node,
    steps: Vec<(Instruction, &'a Node)>,
}

/// An inherited `ONBUILD` trigger of a stage, parsed and with its sources resolved.
#[derive(Debug, Clone)]
struct Trigger {
    instr: Instruction,
    node: Node,
    copy_from: Option<StageBase>,
    mount_from: Vec<Option<StageBase>>,
}

fn at(node: &Node, message: impl Into<String>) -> PlanError {
    PlanError::at(node.start_line, node.end_line, message)
}

fn set_kv(list: &mut Vec<(String, String)>, key: &str, value: String) {
    match list.iter_mut().find(|(k, _)| k == key) {
        Some(e) => e.1 = value,
        None => list.push((key.to_string(), value)),
    }
}

fn normalize_image(name: &str, default_registry: Option<&str>) -> Result<String, String> {
    // Local OCI layouts are named by path; the executor resolves them, not a registry.
    if name.starts_with("oci-layout://") {
        return Ok(name.to_string());
    }
    Reference::parse_with_default(name, default_registry)
        .map(|r| r.to_string())
        .map_err(|e| format!("failed to parse stage name {name:?}: {e}"))
}

/// The `PATH` BuildKit gives an empty (`scratch`) image on Unix-like systems.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// BuildKit's `emptyImage`: a `scratch` stage starts with `PATH` set, except on Windows.
fn scratch_env(stage_platform: Option<&str>, target: &Platform) -> Vec<(String, String)> {
    let os = stage_platform
        .and_then(|p| Platform::parse(p).ok())
        .map_or_else(|| target.os.clone(), |p| p.os);
    if os == "windows" {
        Vec::new()
    } else {
        vec![("PATH".to_string(), DEFAULT_PATH.to_string())]
    }
}

/// Mark the stages `target` needs, following [`Stage::deps`].
fn mark_needed(stages: &mut [Stage], target: usize) {
    for s in stages.iter_mut() {
        s.needed = false;
    }
    let mut stack = vec![target];
    while let Some(i) = stack.pop() {
        if stages[i].needed {
            continue;
        }
        stages[i].needed = true;
        stack.extend(stages[i].deps.iter().copied());
    }
}

/// Reject a cycle of command dependencies, naming the stage and the line that closes it.
fn check_cycles(cmd_deps: &[Vec<(usize, usize)>], stages: &[Stage]) -> Result<(), PlanError> {
    match find_cycle(cmd_deps) {
        None => Ok(()),
        Some(start) => {
            let line = cmd_deps[start].first().map(|d| d.1).unwrap_or(0);
            Err(PlanError::at(
                line,
                line,
                format!(
                    "circular dependency detected on stage: {}",
                    stages[start].display_name
                ),
            ))
        }
    }
}

/// Build the graph. See the module docs for the order of checks. With `expand` false the
/// steps are left as written (enough to know the stages and base images the target needs).
pub(crate) fn lower(ast: &Ast, opts: &PlanOptions, expand: bool) -> Result<BuildGraph, PlanError> {
    // 1. Typed instructions; ARGs before the first FROM are global.
    let mut raw: Vec<RawStage<'_>> = Vec::new();
    let mut meta: Vec<(ArgPair, &Node)> = Vec::new();
    for node in &ast.children {
        let instr = parse_instruction(node).map_err(|m| at(node, m))?;
        match instr {
            Instruction::From(from) => raw.push(RawStage {
                from,
                node,
                steps: Vec::new(),
            }),
            Instruction::Arg(a) if raw.is_empty() => {
                meta.extend(a.args.into_iter().map(|p| (p, node)));
            }
            other => match raw.last_mut() {
                Some(s) => s.steps.push((other, node)),
                None => return Err(at(node, "no build stage in current context")),
            },
        }
    }
    if raw.is_empty() {
        return Err(PlanError::new("dockerfile contains no stages to build"));
    }

    // 2. Platforms and the global scope: platform args, then the global ARGs in order.
    let build_platform = Platform::parse(&opts.build_platform).map_err(PlanError::new)?;
    let target_platform = Platform::parse(&opts.target_platform).map_err(PlanError::new)?;
    let lexer = Lexer::new(ast.escape);
    let mut global: Vec<(String, String)> = platform_args(&build_platform, &target_platform)
        .into_iter()
        .map(|(k, v)| {
            let v = opts.build_args.get(&k).cloned().unwrap_or(v);
            (k, v)
        })
        .collect();
    let mut meta_args = Vec::new();
    for (p, node) in &meta {
        let value = match (opts.build_args.get(&p.key), &p.default) {
            (Some(v), _) => Some(v.clone()),
            (None, Some(d)) => Some(
                lexer
                    .process_word(d, &global)
                    .map_err(|e| at(node, e.to_string()))?,
            ),
            (None, None) => None,
        };
        if let Some(v) = &value {
            set_kv(&mut global, &p.key, v.clone());
        }
        meta_args.push(MetaArg {
            name: p.key.clone(),
            value,
            doc: p.doc.clone(),
            line: node.start_line,
        });
    }

    // 3. FROM lines: expand base and platform with the global scope; a base naming an
    //    earlier stage refers to it.
    let n = raw.len();
    let mut stages: Vec<Stage> = Vec::with_capacity(n);
    for (i, rs) in raw.iter().enumerate() {
        let m = lexer
            .process_word_with_matches(&rs.from.base, &global)
            .map_err(|e| at(rs.node, e.to_string()))?;
        if m.result.is_empty() {
            return Err(at(
                rs.node,
                format!("base name ({}) should not be blank", rs.from.base),
            ));
        }
        let mut used = m.matched;
        let platform = match &rs.from.platform {
            None => None,
            Some(p) => {
                let pm = lexer.process_word_with_matches(p, &global).map_err(|e| {
                    at(
                        rs.node,
                        format!("failed to process arguments for platform {p}: {e}"),
                    )
                })?;
                if pm.result.is_empty() {
                    return Err(at(
                        rs.node,
                        format!("empty platform value from expression {p}"),
                    ));
                }
                let parsed = Platform::parse(&pm.result)
                    .map_err(|e| at(rs.node, format!("failed to parse platform {p}: {e}")))?;
                used.extend(pm.matched);
                Some(parsed.to_string())
            }
        };
        let lower = m.result.to_lowercase();
        let base = match stages
            .iter()
            .rposition(|s| s.name.as_deref() == Some(lower.as_str()))
        {
            Some(j) => StageBase::Stage(j),
            None if m.result == "scratch" => StageBase::Scratch,
            None => StageBase::Image(m.result.clone()),
        };
        let mut deps = BTreeSet::new();
        if let StageBase::Stage(j) = base {
            deps.insert(j);
        }
        stages.push(Stage {
            index: i,
            name: rs.from.name.clone(),
            display_name: rs.from.name.clone().unwrap_or_else(|| format!("stage-{i}")),
            base_name: m.result,
            base,
            platform,
            instructions: Vec::new(),
            deps,
            image_deps: BTreeSet::new(),
            needed: false,
            line: rs.node.start_line,
            doc: rs.from.doc.clone(),
            from_used_args: used,
            env: Vec::new(),
        });
    }

    // 4. The target stage.
    let target = match &opts.target {
        None => n - 1,
        Some(t) => {
            let lower = t.to_lowercase();
            match stages
                .iter()
                .rposition(|s| s.name.as_deref() == Some(lower.as_str()))
            {
                Some(i) => i,
                None => {
                    let names: Vec<&str> =
                        stages.iter().filter_map(|s| s.name.as_deref()).collect();
                    let hint = if names.is_empty() {
                        "this Dockerfile has no named stages; name one with FROM <image> AS <name>"
                            .to_string()
                    } else {
                        format!("use one of: {}", names.join(", "))
                    };
                    return Err(PlanError::new(format!(
                        "target stage {t:?} could not be found; {hint}"
                    )));
                }
            }
        }
    };

    // 5. Dependencies from COPY --from and RUN --mount from=.
    let names: Vec<Option<String>> = stages.iter().map(|s| s.name.clone()).collect();
    let mut copy_from: Vec<Vec<Option<StageBase>>> = Vec::with_capacity(n);
    let mut mounts_from: Vec<Vec<Vec<Option<StageBase>>>> = Vec::with_capacity(n);
    let mut cmd_deps: Vec<Vec<(usize, usize)>> = vec![Vec::new(); n];
    let mut image_deps: Vec<BTreeMap<String, &Node>> = vec![BTreeMap::new(); n];
    for (i, rs) in raw.iter().enumerate() {
        let mut cf = Vec::new();
        let mut mf = Vec::new();
        for (instr, node) in &rs.steps {
            let src = step_sources(instr, &names).map_err(|m| at(node, m))?;
            cmd_deps[i].extend(src.stages.iter().map(|j| (*j, node.start_line)));
            for img in src.images {
                image_deps[i].insert(img, node);
            }
            cf.push(src.copy_from);
            mf.push(src.mount_from);
        }
        copy_from.push(cf);
        mounts_from.push(mf);
    }

    // 6. Cycles (command dependencies only; FROM can only name earlier stages).
    check_cycles(&cmd_deps, &stages)?;
    for (i, deps) in cmd_deps.iter().enumerate() {
        stages[i].deps.extend(deps.iter().map(|d| d.0));
    }

    // 7. What the target needs. ONBUILD triggers of the needed stages (from a base stage or
    //    a base image) can read other stages, so repeat until nothing new is needed.
    let mut triggers: Vec<Option<Vec<Trigger>>> = vec![None; n];
    loop {
        mark_needed(&mut stages, target);
        let mut grew = false;
        for i in 0..n {
            if !stages[i].needed || triggers[i].is_some() {
                continue;
            }
            let from = raw[i].node;
            let nodes = match &stages[i].base {
                StageBase::Stage(j) => stage_triggers(raw[*j].steps.iter().map(|s| &s.0)),
                StageBase::Image(name) => {
                    match normalize_image(name, opts.default_registry.as_deref())
                        .ok()
                        .and_then(|r| opts.base_images.get(&r))
                    {
                        Some(info) => {
                            parse_image_triggers(&info.onbuild).map_err(|m| at(from, m))?
                        }
                        None => Vec::new(),
                    }
                }
                StageBase::Scratch => Vec::new(),
            };
            let mut list = Vec::with_capacity(nodes.len());
            for node in nodes {
                let node = relocate(node, from);
                let instr = parse_instruction(&node).map_err(|m| at(from, m))?;
                let src = step_sources(&instr, &names).map_err(|m| at(from, m))?;
                for j in &src.stages {
                    cmd_deps[i].push((*j, from.start_line));
                    grew |= stages[i].deps.insert(*j);
                }
                for img in &src.images {
                    image_deps[i].insert(img.clone(), from);
                }
                list.push(Trigger {
                    instr,
                    node,
                    copy_from: src.copy_from,
                    mount_from: src.mount_from,
                });
            }
            triggers[i] = Some(list);
        }
        if !grew {
            break;
        }
        // A trigger can read a stage built FROM this one, so FROM edges count here too.
        let mut all = cmd_deps.clone();
        for (i, s) in stages.iter().enumerate() {
            if let StageBase::Stage(j) = s.base {
                all[i].push((j, s.line));
            }
        }
        check_cycles(&all, &stages)?;
    }

    // 8. Normalise image references (errors only where the target needs them).
    for (i, stage) in stages.iter_mut().enumerate() {
        if let StageBase::Image(name) = &stage.base {
            match normalize_image(name, opts.default_registry.as_deref()) {
                Ok(r) => stage.base = StageBase::Image(r),
                Err(e) if stage.needed => return Err(at(raw[i].node, e)),
                Err(_) => {}
            }
        }
        for (name, node) in &image_deps[i] {
            match normalize_image(name, opts.default_registry.as_deref()) {
                Ok(r) => {
                    stage.image_deps.insert(r);
                }
                Err(e) if stage.needed => return Err(at(node, e)),
                Err(_) => {
                    stage.image_deps.insert(name.clone());
                }
            }
        }
        let norm = |b: &mut Option<StageBase>| {
            if let Some(StageBase::Image(name)) = b
                && let Ok(r) = normalize_image(name, opts.default_registry.as_deref())
            {
                *name = r;
            }
        };
        copy_from[i].iter_mut().for_each(norm);
        mounts_from[i].iter_mut().flatten().for_each(norm);
        for t in triggers[i].iter_mut().flatten() {
            norm(&mut t.copy_from);
            t.mount_from.iter_mut().for_each(norm);
        }
    }

    // 9. Steps: expand the needed stages in order (a base stage always comes first). A stage
    //    starts with the environment of its base: the base stage's, or the base image's `Env`.
    let mut declared: BTreeSet<String> = meta_args.iter().map(|a| a.name.clone()).collect();
    for i in 0..n {
        let rs = &raw[i];
        if !stages[i].needed || !expand {
            stages[i].instructions = rs
                .steps
                .iter()
                .enumerate()
                .map(|(k, (instr, node))| Step {
                    line: node.start_line,
                    end_line: node.end_line,
                    original: node.original.clone(),
                    instruction: instr.clone(),
                    expanded: false,
                    used_args: BTreeSet::new(),
                    build_args: BTreeMap::new(),
                    copy_from: copy_from[i][k].clone(),
                    mount_from: mounts_from[i][k].clone(),
                    from_onbuild: false,
                })
                .collect();
            continue;
        }
        let mut env = match &stages[i].base {
            StageBase::Stage(j) => stages[*j].env.clone(),
            StageBase::Image(name) => opts
                .base_images
                .get(name)
                .map(BaseImageInfo::env_pairs)
                .unwrap_or_default(),
            StageBase::Scratch => scratch_env(stages[i].platform.as_deref(), &target_platform),
        };
        let mut scope: Vec<(String, Option<String>)> = Vec::new();
        let mut out = Vec::new();
        let trigger_items = triggers[i].iter().flatten().map(|t| {
            (
                t.instr.clone(),
                &t.node,
                true,
                t.copy_from.clone(),
                t.mount_from.clone(),
            )
        });
        let own_items = rs.steps.iter().enumerate().map(|(k, (instr, node))| {
            (
                instr.clone(),
                *node,
                false,
                copy_from[i][k].clone(),
                mounts_from[i][k].clone(),
            )
        });
        let items: Vec<Item<'_>> = trigger_items.chain(own_items).collect();
        for (instr, node, from_onbuild, cf, mf) in items {
            let mut lookup: Vec<(String, String)> = scope
                .iter()
                .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
                .collect();
            lookup.extend(env.iter().cloned());
            let arg_names: BTreeSet<String> = scope
                .iter()
                .filter(|(k, v)| v.is_some() && !env.iter().any(|(e, _)| e == k))
                .map(|(k, _)| k.clone())
                .collect();
            let (expanded, matched) =
                expand_instruction(&instr, &lexer, &lookup).map_err(|m| at(node, m))?;
            let mut used: BTreeSet<String> = matched.intersection(&arg_names).cloned().collect();
            match &expanded {
                Instruction::Env(e) => {
                    for p in &e.pairs {
                        set_kv(&mut env, &p.key, p.value.clone());
                    }
                }
                Instruction::Arg(a) => {
                    for p in &a.args {
                        declared.insert(p.key.clone());
                        let value = match (opts.build_args.get(&p.key), &p.default) {
                            (Some(v), _) => Some(v.clone()),
                            (None, Some(d)) => Some(d.clone()),
                            (None, None) => global
                                .iter()
                                .rev()
                                .find(|(k, _)| *k == p.key)
                                .map(|(_, v)| v.clone()),
                        };
                        if value.is_some() {
                            used.insert(p.key.clone());
                        }
                        match scope.iter_mut().find(|(k, _)| *k == p.key) {
                            Some(e) => e.1 = value,
                            None => scope.push((p.key.clone(), value)),
                        }
                    }
                }
                Instruction::Run(_) => used.extend(arg_names.iter().cloned()),
                _ => {}
            }
            let build_args = scope
                .iter()
                .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
                .collect();
            out.push(Step {
                line: node.start_line,
                end_line: node.end_line,
                original: node.original.clone(),
                instruction: expanded,
                expanded: true,
                used_args: used,
                build_args,
                copy_from: cf,
                mount_from: mf,
                from_onbuild,
            });
        }
        stages[i].instructions = out;
        stages[i].env = env;
    }

    // 10. Build args nobody declared.
    let platform_names: BTreeSet<String> = platform_args(&build_platform, &target_platform)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let unused_build_args = opts
        .build_args
        .keys()
        .filter(|k| {
            !declared.contains(*k)
                && !is_proxy_arg(k)
                && !is_frontend_arg(k)
                && !platform_names.contains(*k)
        })
        .cloned()
        .collect();
    let frontend_args = opts
        .build_args
        .iter()
        .filter(|(k, _)| is_frontend_arg(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();

    Ok(BuildGraph {
        stages,
        target,
        meta_args,
        build_platform: build_platform.to_string(),
        target_platform: target_platform.to_string(),
        proxy: proxy_env(&opts.build_args),
        frontend_args,
        unused_build_args,
    })
}

/// BuildKit's `validateCircularDependency`: depth-first from each stage in order, following
/// command dependencies; returns the stage the search started from when it finds a cycle.
fn find_cycle(deps: &[Vec<(usize, usize)>]) -> Option<usize> {
    let n = deps.len();
    let mut visited = vec![false; n];
    let mut on_path = vec![false; n];
    let sorted: Vec<Vec<usize>> = deps
        .iter()
        .map(|d| {
            let s: BTreeSet<usize> = d.iter().map(|x| x.0).collect();
            s.into_iter().collect()
        })
        .collect();
    for start in 0..n {
        if visited[start] {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        visited[start] = true;
        on_path[start] = true;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(&dep) = sorted[node].get(*next) {
                *next += 1;
                if on_path[dep] {
                    return Some(start);
                }
                if !visited[dep] {
                    visited[dep] = true;
                    on_path[dep] = true;
                    stack.push((dep, 0));
                }
            } else {
                on_path[node] = false;
                stack.pop();
            }
        }
    }
    None
}
