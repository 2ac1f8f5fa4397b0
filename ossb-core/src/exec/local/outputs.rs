//! Handing the finished image to the user: local store tags, OCI layout, docker-archive,
//! registry push, `--iidfile` and `--metadata-file`.

use super::BuildCtx;
use crate::backend::{BuildOutcome, Output};
use crate::error::{Error, ExitCode};
use crate::exec::transfer;
use crate::image::archive::write_docker_archive;
use crate::image::layout::{read_manifest, write_layout_dir, write_layout_tar};
use crate::image::oci::Descriptor;
use crate::reference::Reference;
use std::path::Path;

fn io_err(what: &str, path: &Path, e: impl std::fmt::Display) -> Error {
    let class = if e.to_string().contains("No space left") {
        ExitCode::Resource
    } else {
        ExitCode::General
    };
    Error::new(
        class,
        format!("cannot write {what} {}: {e}", path.display()),
    )
}

/// Write `bytes` to `path` atomically (temp file in the same dir, then rename).
pub fn write_atomic(path: &Path, bytes: &[u8], what: &str) -> Result<(), Error> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| io_err(what, path, e))?;
    tmp.write_all(bytes).map_err(|e| io_err(what, path, e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| io_err(what, path, e))?;
    tmp.persist(path).map_err(|e| io_err(what, path, e.error))?;
    Ok(())
}

/// Deliver the image `root` (a manifest, or the index of a multi-platform build whose images
/// are `images`) to every requested output, then write `--iidfile` and `--metadata-file` (with
/// the counters of every platform's build, `ctxs`). `config` is the config of a
/// single-platform image (the image id that `--iidfile` gets; a multi-platform build writes the
/// index digest there).
pub fn deliver(
    ctxs: &[BuildCtx<'_>],
    root: &Descriptor,
    config: Option<&Descriptor>,
    images: &[Descriptor],
    tags: &[Reference],
    outcome: &mut BuildOutcome,
) -> Result<(), Error> {
    let Some(ctx) = ctxs.first() else {
        return Ok(());
    };
    let outputs = if ctx.request.outputs.is_empty() {
        vec![Output::Store]
    } else {
        ctx.request.outputs.clone()
    };
    let mut layers: Vec<(crate::image::digest::Digest, u64)> = Vec::new();
    for image in images {
        for l in read_manifest(ctx.store, image)?.layers {
            if !layers.iter().any(|(d, _)| *d == l.digest) {
                layers.push((l.digest, l.size));
            }
        }
    }
    // Layers reused from a --cache-from cache are fetched only for outputs that hold them.
    if outputs
        .iter()
        .any(|o| !matches!(o, Output::Registry { .. }))
    {
        ctx.ensure_blobs(&layers)?;
    }
    let first_tag = tags.first().map(|t| t.to_string());
    for output in &outputs {
        match output {
            Output::Store => {
                for tag in tags {
                    ctx.store.set_ref(&tag.to_string(), root)?;
                }
                ctx.store.set_ref(&root.digest.to_string(), root)?;
            }
            Output::Oci { dest } => {
                let ref_name = tags
                    .first()
                    .and_then(|t| t.tag.clone())
                    .or(Some("latest".to_string()));
                if dest.extension().is_some_and(|e| e == "tar") {
                    let file = tempfile::NamedTempFile::new_in(
                        dest.parent()
                            .filter(|p| !p.as_os_str().is_empty())
                            .unwrap_or(Path::new(".")),
                    )
                    .map_err(|e| io_err("OCI layout tar", dest, e))?;
                    let mut w = std::io::BufWriter::new(file);
                    write_layout_tar(ctx.store, root, ref_name.as_deref(), &mut w)?;
                    let file = w
                        .into_inner()
                        .map_err(|e| io_err("OCI layout tar", dest, e.error()))?;
                    file.persist(dest)
                        .map_err(|e| io_err("OCI layout tar", dest, e.error))?;
                } else {
                    write_layout_dir(ctx.store, root, dest, ref_name.as_deref())?;
                }
            }
            Output::Docker { dest } => {
                let names: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
                let file = tempfile::NamedTempFile::new_in(
                    dest.parent()
                        .filter(|p| !p.as_os_str().is_empty())
                        .unwrap_or(Path::new(".")),
                )
                .map_err(|e| io_err("docker archive", dest, e))?;
                let mut w = std::io::BufWriter::new(file);
                write_docker_archive(ctx.store, root, &names, &mut w)?;
                let file = w
                    .into_inner()
                    .map_err(|e| io_err("docker archive", dest, e.error()))?;
                file.persist(dest)
                    .map_err(|e| io_err("docker archive", dest, e.error))?;
            }
            Output::Registry { name } => {
                let port = ctx.fetcher.registry.ok_or_else(|| {
                    Error::new(
                        ExitCode::Configuration,
                        "--push needs a registry client; none is configured",
                    )
                })?;
                let targets: Vec<Reference> = match name {
                    Some(n) => n
                        .split(',')
                        .map(Reference::parse)
                        .collect::<Result<_, _>>()?,
                    None => tags.to_vec(),
                };
                if targets.is_empty() {
                    return Err(Error::new(
                        ExitCode::Configuration,
                        "--push needs an image name: add -t REGISTRY/REPOSITORY:TAG",
                    ));
                }
                for target in &targets {
                    for (digest, size) in &layers {
                        super::cache_io::prepare_remote_blob(ctx, port, target, digest, *size)?;
                    }
                    transfer::push(ctx.store, port, target, root, ctx.jobs, ctx.progress)?;
                }
            }
        }
    }
    let image_id = config.unwrap_or(root).digest.to_string();
    if let Some(path) = &ctx.request.iidfile {
        write_atomic(path, image_id.as_bytes(), "--iidfile")?;
    }
    super::Counters::fill_all(ctxs, outcome);
    if let Some(path) = &ctx.request.metadata_file {
        let mut meta = serde_json::json!({
            "containerimage.digest": root.digest.to_string(),
            "containerimage.descriptor": root,
            "image.name": tags.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(","),
            "ossb.build": {
                "operations": outcome.operations,
                "cache_hits": outcome.cache_hits,
                "bytes_read": outcome.bytes_read,
                "bytes_written": outcome.bytes_written,
                "steps": outcome.steps,
            },
        });
        if let Some(config) = config {
            meta["containerimage.config.digest"] = config.digest.to_string().into();
        }
        let bytes = serde_json::to_vec_pretty(&meta).map_err(|e| {
            Error::new(ExitCode::General, format!("cannot serialise metadata: {e}"))
        })?;
        write_atomic(path, &bytes, "--metadata-file")?;
    }
    let _ = first_tag;
    Ok(())
}
