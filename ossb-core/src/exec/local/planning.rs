//! Planning with base images: BuildKit expands a stage's steps with its base image's `Env`
//! and runs the image's `ONBUILD` triggers, so the planner needs those configs. Plan without
//! them to learn which images the target starts from, fetch them, and plan again.

use super::base::{Fetcher, classify};
use crate::dockerfile::Ast;
use crate::error::Error;
use crate::exec::transfer::StoredImage;
use crate::plan::{self, BaseImageInfo, BuildGraph, PlanOptions};
use std::collections::BTreeMap;

/// The graph planned with the configs of its base images, and those images (by normalised
/// reference, as in [`crate::plan::StageBase::Image`]) so the build does not fetch them again.
/// Planning errors name `file`.
pub(crate) fn plan_with_base_images(
    ast: &Ast,
    file: &str,
    text: &str,
    mut opts: PlanOptions,
    fetcher: &Fetcher<'_>,
    contexts: &BTreeMap<String, String>,
) -> Result<(BuildGraph, BTreeMap<String, StoredImage>), Error> {
    let mut images = BTreeMap::new();
    // Each round fetches at least one new image (triggers can make more stages needed), so
    // this ends after at most as many rounds as the Dockerfile has stages.
    loop {
        let missing: Vec<String> = plan::base_images_needed(ast, &opts)
            .map_err(|e| e.with_file(file).with_column_from(text))?
            .into_iter()
            .filter(|name| !opts.base_images.contains_key(name))
            .collect();
        if missing.is_empty() {
            break;
        }
        for name in missing {
            let image = fetcher.image(&classify(&name, contexts)?)?;
            let cfg = &image.config.config;
            opts.base_images.insert(
                name.clone(),
                BaseImageInfo {
                    env: cfg.env.clone(),
                    onbuild: cfg.on_build.clone(),
                },
            );
            images.insert(name, image);
        }
    }
    let graph = plan::plan(ast, &opts).map_err(|e| e.with_file(file).with_column_from(text))?;
    Ok((graph, images))
}
