//! `ossb images`, `ossb inspect`, `ossb rm`, `ossb prune`: the local store.

use ossb_core::exec::local::cache::CacheStore;
use ossb_core::exec::transfer::load_stored;
use ossb_core::image::store::Store;
use ossb_core::reference::Reference;
use ossb_core::{Error, ExitCode};

fn open() -> Result<Store, Error> {
    Ok(Store::open_default()?)
}

/// Store refs are full names; accept what people type (`app:1`, `docker.io/library/app:1`,
/// or a digest). A short name is on the default registry when one is set, as for
/// `ossb build -t`: `OSSB_DEFAULT_REGISTRY`, else `default_registry` in the file named by
/// `OSSB_REGISTRY_CONFIG`.
fn ref_name(name: &str) -> Result<String, Error> {
    if name.starts_with("sha256:") {
        return Ok(name.to_string());
    }
    let config_file = std::env::var_os("OSSB_REGISTRY_CONFIG")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from);
    let config = super::load_registry_config(config_file.as_deref())?;
    let flag = std::env::var("OSSB_DEFAULT_REGISTRY").ok();
    let default = super::default_registry(flag.as_deref(), &config)?;
    Ok(Reference::parse_with_default(name, default.as_deref())
        .map(|r| r.to_string())
        .unwrap_or_else(|_| name.to_string()))
}

/// `ossb images`.
pub fn images(json: bool) -> Result<(), Error> {
    let store = open()?;
    let refs = store.list_refs()?;
    if json {
        let list: Vec<_> = refs
            .iter()
            .map(|(name, d)| serde_json::json!({"name": name, "digest": d.digest.to_string(), "mediaType": d.media_type}))
            .collect();
        println!("{}", serde_json::Value::Array(list));
        return Ok(());
    }
    println!("{:<60} {:<20} {:>10}", "NAME", "DIGEST", "SIZE");
    for (name, desc) in refs.iter().filter(|(n, _)| !n.starts_with("sha256:")) {
        let size: u64 = load_stored(&store, desc)
            .map(|img| {
                img.manifest.layers.iter().map(|l| l.size).sum::<u64>() + img.manifest.config.size
            })
            .unwrap_or(0);
        let digest = desc.digest.to_string();
        let short = digest.get(..19).unwrap_or(&digest);
        println!("{name:<60} {short:<20} {:>10}", human(size));
    }
    Ok(())
}

fn human(bytes: u64) -> String {
    let mut v = bytes as f64;
    for unit in ["B", "KB", "MB", "GB"] {
        if v < 1000.0 {
            return format!("{v:.1}{unit}");
        }
        v /= 1000.0;
    }
    format!("{v:.1}TB")
}

/// `ossb inspect`.
pub fn inspect(image: &str) -> Result<(), Error> {
    let store = open()?;
    let name = ref_name(image)?;
    let desc = store.get_ref(&name).map_err(|_| {
        Error::new(
            ExitCode::Configuration,
            format!("{image} is not in the local store (see ossb images)"),
        )
    })?;
    let out = if ossb_core::image::oci::media_types::is_index(&desc.media_type) {
        // A multi-platform image: the index and each platform's manifest and config.
        let index: ossb_core::image::oci::Index =
            ossb_core::image::oci::from_json("index", &store.read_blob(&desc.digest)?)?;
        let images = index
            .manifests
            .iter()
            .map(|m| {
                let img = load_stored(&store, m)?;
                Ok(serde_json::json!({"platform": m.platform, "manifest": img.manifest, "config": img.config}))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        serde_json::json!({"name": name, "descriptor": desc, "index": index, "images": images})
    } else {
        let img = load_stored(&store, &desc)?;
        serde_json::json!({"name": name, "descriptor": desc, "manifest": img.manifest, "config": img.config})
    };
    println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    Ok(())
}

/// `ossb rm`.
pub fn rm(images: &[String]) -> Result<(), Error> {
    let store = open()?;
    let mut missing = Vec::new();
    for image in images {
        if store.remove_ref(&ref_name(image)?)? {
            println!("removed {image}");
        } else {
            missing.push(image.as_str());
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::new(
            ExitCode::Configuration,
            format!("not in the local store: {}", missing.join(", ")),
        ))
    }
}

/// `ossb prune`.
pub fn prune(drop_cache: bool) -> Result<(), Error> {
    let store = open()?;
    let cache = CacheStore::open(store.root())?;
    if drop_cache {
        cache.clear()?;
    }
    let keep: Vec<_> = cache.records().into_iter().map(|r| r.digest).collect();
    let report = store.gc_keeping(&keep)?;
    println!(
        "removed {} blobs ({}), {} leftover temp files or build dirs",
        report.removed_blobs.len(),
        human(report.removed_bytes),
        report.removed_temp_files
    );
    Ok(())
}
