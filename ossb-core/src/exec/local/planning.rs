//! Planning with base images: BuildKit expands a stage's steps with its base image's `Env`
//! and runs the image's `ONBUILD` triggers, so the planner needs those configs. Plan without
//! them to learn which images the target starts from, fetch them, and plan again.

use super::base::{Fetcher, classify};
use crate::dockerfile::Ast;
use crate::error::Error;
use crate::exec::transfer::StoredImage;
use crate::image::oci::Platform;
use crate::plan::{self, BaseImageInfo, BuildGraph, PlanOptions, StageBase};
use std::collections::{BTreeMap, BTreeSet};

/// A base image as a stage asks for it: the normalised reference (as in
/// [`crate::plan::StageBase::Image`]) and the stage's `FROM --platform`, `None` for the
/// target platform.
pub(crate) type BaseKey = (String, Option<String>);

/// The graph planned with the configs of its base images, and those images (each fetched for
/// the platform its stage asks for) so the build does not fetch them again. Planning errors
/// name `file`.
pub(crate) fn plan_with_base_images(
    ast: &Ast,
    file: &str,
    text: &str,
    mut opts: PlanOptions,
    fetcher: &Fetcher<'_>,
    contexts: &BTreeMap<String, String>,
) -> Result<(BuildGraph, BTreeMap<BaseKey, StoredImage>), Error> {
    let mut images: BTreeMap<BaseKey, StoredImage> = BTreeMap::new();
    // Each round fetches at least one new image (triggers can make more stages needed), so
    // this ends after at most as many rounds as the Dockerfile has stages.
    loop {
        let shallow =
            plan::plan_shallow(ast, &opts).map_err(|e| e.with_file(file).with_column_from(text))?;
        let missing: BTreeSet<BaseKey> = shallow
            .stages
            .iter()
            .filter(|s| s.needed)
            .filter_map(|s| match &s.base {
                StageBase::Image(name) => Some((name.clone(), s.platform.clone())),
                _ => None,
            })
            .filter(|key| !images.contains_key(key))
            .collect();
        if missing.is_empty() {
            break;
        }
        for (name, platform) in missing {
            let image = fetch_for(fetcher, &name, platform.as_deref(), contexts)?;
            let cfg = &image.config.config;
            opts.base_images
                .entry(name.clone())
                .or_insert_with(|| BaseImageInfo {
                    env: cfg.env.clone(),
                    onbuild: cfg.on_build.clone(),
                });
            images.insert((name, platform), image);
        }
    }
    let graph = plan::plan(ast, &opts).map_err(|e| e.with_file(file).with_column_from(text))?;
    Ok((graph, images))
}

/// Fetch `name` for `platform` (a stage's `FROM --platform`), or for the fetcher's (target)
/// platform when there is none.
pub(crate) fn fetch_for(
    fetcher: &Fetcher<'_>,
    name: &str,
    platform: Option<&str>,
    contexts: &BTreeMap<String, String>,
) -> Result<StoredImage, Error> {
    let source = classify(name, contexts)?;
    match platform.map(Platform::parse).transpose()? {
        Some(p) if !p.matches(fetcher.platform) => Fetcher {
            platform: &p,
            ..*fetcher
        }
        .image(&source),
        _ => fetcher.image(&source),
    }
}
