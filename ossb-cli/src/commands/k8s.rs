//! `ossb build --backend kubernetes` and `ossb k8s ...`: flags into
//! `ossb_k8s::backend` calls.

use crate::args::{BuildArgs, ClusterArgs, K8sCommand};
use ossb_core::backend::BuildBackend;
use ossb_core::progress::ProgressSink;
use ossb_core::{Error, ExitCode};
use ossb_k8s::backend::options::{GitContext, PvcContext};
use ossb_k8s::backend::{ClientOptions, ContentTag, KubernetesBackend, KubernetesOptions, ops};
use std::collections::BTreeMap;

fn client_options(c: &ClusterArgs) -> ClientOptions {
    ClientOptions {
        kubeconfig: c.kubeconfig.clone(),
        context: c.kube_context.clone(),
    }
}

/// Apply `K=V` overrides to a resource map.
fn resources(
    flag: &str,
    mut base: BTreeMap<String, String>,
    items: &[String],
) -> Result<BTreeMap<String, String>, Error> {
    for (k, v) in super::parse_key_values(flag, items)? {
        if v.is_empty() {
            base.remove(&k);
        } else {
            base.insert(k, v);
        }
    }
    Ok(base)
}

/// The backend options from the build flags.
fn options(args: &BuildArgs) -> Result<KubernetesOptions, Error> {
    let k = &args.k8s;
    let mut o = KubernetesOptions {
        client: client_options(&k.cluster),
        namespace: k.cluster.namespace.clone(),
        namespace_per_build: k.namespace_per_build,
        image: k.image.clone(),
        service_account: k.service_account.clone(),
        registry_secret: k.registry_secret.clone(),
        keep: k.keep,
        ttl_after_finished: Some(k.ttl_after_finished),
        insecure_registries: args.insecure_registries.clone(),
        handle_signals: true,
        ..KubernetesOptions::default()
    };
    o.requests = resources("--requests", o.requests, &k.requests)?;
    o.limits = resources("--limits", o.limits, &k.limits)?;
    o.node_selector = super::parse_key_values("--node-selector", &k.node_selector)?;
    o.max_context_bytes = ossb_k8s::pod::parse_size(&k.max_context_size).ok_or_else(|| {
        Error::new(
            ExitCode::Configuration,
            format!(
                "invalid --max-context-size {:?}: use bytes or a size like 16Mi",
                k.max_context_size
            ),
        )
    })?;
    if let Some(t) = &args.timeout {
        let ns = ossb_core::plan::duration::parse_go_duration(t).map_err(|e| {
            Error::new(
                ExitCode::Configuration,
                format!("invalid --timeout {t:?}: {e}"),
            )
        })?;
        o.timeout = std::time::Duration::from_nanos(ns.max(0) as u64)
            .max(std::time::Duration::from_secs(2));
    }
    if let Some(spec) = &k.context_pvc {
        o.context_pvc = Some(PvcContext::parse(spec, args.file.is_none()).ok_or_else(|| {
            Error::new(
                ExitCode::Configuration,
                format!("invalid --context-pvc {spec:?}: use CLAIM or CLAIM:SUBPATH (no `..`)"),
            )
        })?);
    }
    if let Some(spec) = &k.context_git {
        o.context_git = Some(GitContext::parse(spec, args.file.is_none()).ok_or_else(|| {
            Error::new(
                ExitCode::Configuration,
                format!(
                    "invalid --context-git {spec:?}: use URL, URL#REF or URL#REF:SUBDIR (no `..`)"
                ),
            )
        })?);
    }
    o.git_image = k.git_image.clone();
    if let Some(repo) = &k.tag_by_content {
        o.content_tag = Some(ContentTag {
            repository: repo.clone(),
            prefix: k.content_prefix.clone(),
            tag: k.content_tag.clone(),
        });
    }
    if let Some(level) = args.compression_level {
        o.extra_args
            .extend(["--compression-level".into(), level.to_string()]);
    }
    o.extra_args.extend([
        "--compression".into(),
        format!("{:?}", args.compression).to_ascii_lowercase(),
    ]);
    if let Some(jobs) = args.jobs {
        o.extra_args.extend(["--jobs".into(), jobs.to_string()]);
    }
    Ok(o)
}

/// `ossb build --backend kubernetes`: the build runs in the cluster; progress comes back from
/// the pod's log; stdout gets the digest (with --tag-by-content, the image name).
pub fn build(args: &BuildArgs) -> Result<(), Error> {
    let req = super::build::request(args)?;
    let opts = options(args)?;
    let content = opts.content_tag.is_some();
    let mut backend = KubernetesBackend::new(opts);
    // The registry client looks up content-addressed names and pushes multi-platform indexes.
    if content || req.platforms.len() > 1 {
        let config = super::push_registry_config(
            args.registry_config.as_deref(),
            &args.insecure_registries,
            args.tls_ca.as_deref(),
        )?;
        backend = backend.with_registry(std::sync::Arc::new(
            ossb_registry::port::RegistryAdapter::from_config(config)?,
        ));
    }
    let platform = req
        .platforms
        .first()
        .cloned()
        .unwrap_or_else(|| ossb_core::image::oci::Platform::host().to_string());
    let sink = super::build::progress_sink(args.progress, false, &platform);
    let outcome = backend.build(&req, &sink as &dyn ProgressSink)?;
    if content {
        println!("{}", outcome.tags.first().cloned().unwrap_or_default());
    } else {
        println!("{}", outcome.image_digest);
    }
    Ok(())
}

fn json_out<T: serde::Serialize>(v: &T) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(v)
        .map_err(|e| Error::new(ExitCode::General, format!("cannot print JSON: {e}")))?;
    println!("{text}");
    Ok(())
}

/// `ossb k8s ...`
pub fn run(cmd: K8sCommand) -> Result<(), Error> {
    match cmd {
        K8sCommand::Status { job, json, cluster } => {
            let s = ops::blocking(ops::status(
                &client_options(&cluster),
                cluster.namespace.as_deref(),
                &job,
            ))?;
            if json {
                return json_out(&s);
            }
            println!("job:       {}", s.job);
            println!("namespace: {}", s.namespace);
            println!("state:     {}", s.state);
            println!("images:    {}", s.images);
            println!("created:   {}", s.created);
            if let Some(c) = s.exit_code {
                println!("exit code: {c}");
            }
            Ok(())
        }
        K8sCommand::Logs {
            job,
            follow,
            cluster,
        } => {
            let mut out = std::io::stdout();
            ops::blocking(ops::logs(
                &client_options(&cluster),
                cluster.namespace.as_deref(),
                &job,
                follow,
                &mut out,
            ))
        }
        K8sCommand::Delete { job, cluster } => {
            let deleted = ops::blocking(ops::delete(
                &client_options(&cluster),
                cluster.namespace.as_deref(),
                &job,
            ))?;
            for d in deleted {
                println!("deleted {d}");
            }
            Ok(())
        }
        K8sCommand::List { json, cluster } => {
            let list = ops::blocking(ops::list(
                &client_options(&cluster),
                cluster.namespace.as_deref(),
            ))?;
            if json {
                return json_out(&list);
            }
            println!("{:<18} {:<24} {:<22} IMAGES", "JOB", "STATE", "CREATED");
            for s in list {
                println!(
                    "{:<18} {:<24} {:<22} {}",
                    s.job, s.state, s.created, s.images
                );
            }
            Ok(())
        }
        K8sCommand::Health { json, cluster } => {
            let h = ops::blocking(ops::health(
                &client_options(&cluster),
                cluster.namespace.as_deref(),
            ))?;
            if json {
                json_out(&h)?;
            } else {
                println!("server:    {}", h.server);
                println!("config:    {}", h.config);
                println!("version:   {}", h.version);
                println!("namespace: {}", h.namespace);
                if h.missing_permissions.is_empty() {
                    println!("permissions: every permission a build needs is granted");
                } else {
                    println!("missing permissions:");
                    for p in &h.missing_permissions {
                        println!("  {p}");
                    }
                }
            }
            if h.missing_permissions.is_empty() {
                Ok(())
            } else {
                Err(Error::new(
                    ExitCode::Authentication,
                    "the identity in use cannot run builds in this namespace (see the missing \
                     permissions above and examples/k8s/rbac/)",
                ))
            }
        }
    }
}
