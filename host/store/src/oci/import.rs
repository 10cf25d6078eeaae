//! Importing images of an OCI layout into the store, the way containers/image's
//! `storage` transport (skopeo, podman) writes them, so both see the same store:
//! - a layer's ID is its diff ID's hex for a base layer, else the hex sha256 of
//!   `<parent ID>+<diff ID hex>`; a layer with that ID, or with the same diff digest on
//!   the same parent, is reused instead of applied again;
//! - layers are image-style (read-only) layers whose records carry the blob's digest,
//!   size and compression;
//! - the image ID is the config digest's hex; its big data is the config under its digest,
//!   the manifest under `manifest-<digest>` and `manifest`, and an empty
//!   `signature-<hex>`; its digest is the manifest's, its creation time the config's.
//!
//! Everything is read and checked before the store changes where it can be (documents,
//! blob presence and sizes); layer blobs are checked while they stream into the driver.
//! A failure removes every layer and image this import created.

use std::io::BufReader;
use std::path::Path;

use super::blob::{BlobReader, ProgressReader};
use super::layout::{
    self, choose_entries, choose_platform, manifest_kind, Descriptor, ImageConfig, Manifest,
    ManifestKind, Platform,
};
use super::{OciError, Progress, Result};
use crate::digest::sha256_digest;
use crate::layers::LayerRecord;
use crate::store::{ImageContent, ImageOptions, LayerOptions, Store, StoreError};

/// What to import from a layout.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// The image's reference in the layout (`DIR:REF`).
    pub reference: Option<String>,
    /// Names to give the image instead of its reference.
    pub names: Vec<String>,
    /// Import every image the index lists.
    pub all: bool,
    /// The platform to pick from a multi-platform index (default: this host's).
    pub platform: Option<Platform>,
}

/// One imported image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedImage {
    /// The image ID (the config digest's hex).
    pub id: String,
    /// Its names.
    pub names: Vec<String>,
    /// The manifest digest.
    pub manifest_digest: String,
    /// Its layers, base first.
    pub layers: Vec<String>,
    /// How many of them were already in the store.
    pub reused_layers: usize,
    /// Whether the image itself was already in the store.
    pub existed: bool,
}

/// An image of the layout, read and checked, not yet stored.
struct Planned {
    names: Vec<String>,
    manifest_digest: String,
    manifest: Vec<u8>,
    layers: Vec<Descriptor>,
    config_digest: String,
    config: Vec<u8>,
    parsed_config: ImageConfig,
}

/// The layer ID containers/image gives the layer with `diff_id` on `parent`.
pub fn layer_id(parent: Option<&str>, diff_id: &str) -> String {
    let hex = diff_id.split_once(':').map_or(diff_id, |(_, h)| h);
    match parent {
        None => hex.to_string(),
        Some(p) => {
            let digest = sha256_digest(format!("{p}+{hex}").as_bytes());
            digest.trim_start_matches("sha256:").to_string()
        }
    }
}

/// Reads `oci-layout` and `index.json` of `dir`.
pub(super) fn read_index(dir: &Path) -> Result<layout::Index> {
    let layout_path = dir.join("oci-layout");
    let bytes = match std::fs::read(&layout_path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(OciError::NotALayout(format!(
                "{} is not an OCI image layout (no oci-layout file)",
                dir.display()
            )))
        }
        Err(e) => return Err(OciError::io("reading", layout_path, e)),
    };
    layout::parse_layout_file(&bytes)?;
    let index_path = dir.join("index.json");
    let bytes = std::fs::read(&index_path).map_err(|e| OciError::io("reading", &index_path, e))?;
    layout::parse_index("index.json", &bytes)
}

/// Imports the images of the layout in `dir` that `opts` selects.
pub fn import_layout(
    store: &Store,
    dir: &Path,
    opts: &ImportOptions,
    progress: &mut dyn Progress,
) -> Result<Vec<ImportedImage>> {
    let index = read_index(dir)?;
    let blobs = BlobReader::new(dir);
    let platform = opts.platform.clone().unwrap_or_else(Platform::host);
    let entries = choose_entries(&index, opts.reference.as_deref(), opts.all, &platform)?;
    if !opts.names.is_empty() && entries.len() > 1 {
        return Err(OciError::Selection(
            "--name names one image; with --all each image is named by its ref".to_string(),
        ));
    }
    let mut planned = Vec::new();
    for entry in entries {
        let names = if opts.names.is_empty() {
            entry.ref_name().map(str::to_string).into_iter().collect()
        } else {
            opts.names.clone()
        };
        planned.push(plan(&blobs, entry, &platform, names)?);
    }
    let mut created = Created::default();
    let mut imported = Vec::new();
    for p in &planned {
        match store_image(store, &blobs, p, &mut created, progress) {
            Ok(image) => imported.push(image),
            Err(e) => {
                progress.finish();
                created.roll_back(store);
                return Err(e);
            }
        }
    }
    progress.finish();
    Ok(imported)
}

/// Follows an index entry to its image manifest (through nested indexes, by platform)
/// and reads and checks the manifest, the config and the presence of every layer blob.
fn plan(
    blobs: &BlobReader,
    entry: &Descriptor,
    platform: &Platform,
    names: Vec<String>,
) -> Result<Planned> {
    let mut desc = entry.clone();
    // An index may point at an index; a few levels are plenty.
    for _ in 0..4 {
        if manifest_kind(&desc.media_type)? == ManifestKind::Image {
            break;
        }
        let bytes = blobs.read(&desc.digest, desc.size)?;
        let nested = layout::parse_index(&format!("index {}", desc.digest), &bytes)?;
        let candidates: Vec<&Descriptor> = nested.manifests.iter().collect();
        desc = choose_platform(&candidates, platform)?.clone();
    }
    if manifest_kind(&desc.media_type)? != ManifestKind::Image {
        return Err(OciError::Inconsistent(format!(
            "index {} nests too deeply",
            desc.digest
        )));
    }
    let manifest_bytes = blobs.read(&desc.digest, desc.size)?;
    let manifest: Manifest =
        layout::parse_manifest(&format!("manifest {}", desc.digest), &manifest_bytes)?;
    let config_bytes = blobs.read(&manifest.config.digest, manifest.config.size)?;
    let config =
        layout::parse_config(&format!("config {}", manifest.config.digest), &config_bytes)?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(OciError::Inconsistent(format!(
            "manifest {} has {} layers, its config {} diff IDs",
            desc.digest,
            manifest.layers.len(),
            config.rootfs.diff_ids.len()
        )));
    }
    for layer in &manifest.layers {
        let path = blobs.path(&layer.digest)?;
        match std::fs::metadata(&path) {
            Ok(m) if m.len() == layer.size => {}
            Ok(m) => {
                return Err(OciError::SizeMismatch {
                    digest: layer.digest.clone(),
                    expected: layer.size,
                    actual: m.len(),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(OciError::MissingBlob(layer.digest.clone()))
            }
            Err(e) => return Err(OciError::io("reading", path, e)),
        }
    }
    Ok(Planned {
        names,
        manifest_digest: desc.digest.clone(),
        manifest: manifest_bytes,
        layers: manifest.layers,
        config_digest: manifest.config.digest,
        config: config_bytes,
        parsed_config: config,
    })
}

/// What this import created, to remove again if a later step fails.
#[derive(Default)]
struct Created {
    layers: Vec<String>,
    images: Vec<String>,
}

impl Created {
    /// Removes what was created, newest first. Best effort: the error that got us here
    /// is the one to report.
    fn roll_back(&self, store: &Store) {
        for image in self.images.iter().rev() {
            if let Err(e) = store.delete(image) {
                log::debug!("rolling back the import: deleting image {image}: {e}");
            }
        }
        for layer in self.layers.iter().rev() {
            if let Err(e) = store.delete_layer(layer) {
                log::debug!("rolling back the import: deleting layer {layer}: {e}");
            }
        }
    }
}

/// Stores one planned image: its layers (reused or applied), then the image.
fn store_image(
    store: &Store,
    blobs: &BlobReader,
    p: &Planned,
    created: &mut Created,
    progress: &mut dyn Progress,
) -> Result<ImportedImage> {
    let all_layers = store.layers()?;
    let mut parent: Option<String> = None;
    let mut layer_ids = Vec::new();
    let mut reused = 0;
    for (i, desc) in p.layers.iter().enumerate() {
        let diff_id = &p.parsed_config.rootfs.diff_ids[i];
        let id = layer_id(parent.as_deref(), diff_id);
        let existing = all_layers
            .iter()
            .find(|l| reusable(l, &id, parent.as_deref(), diff_id))
            .map(|l| l.id.clone());
        let what = format!("layer {}/{} {}", i + 1, p.layers.len(), short(&desc.digest));
        progress.start(&what, Some(desc.size));
        let layer = match existing {
            Some(existing) => {
                // Reused, but the layout's blob is still checked: a corrupt layout is
                // refused whatever the store already has.
                let mut reader = blobs.open(&desc.digest, desc.size)?;
                let mut counted = ProgressReader::new(&mut reader, &mut *progress);
                std::io::copy(&mut counted, &mut std::io::sink()).map_err(|e| reader.explain(e))?;
                reused += 1;
                existing
            }
            None => {
                let record = apply_layer(store, blobs, desc, &id, parent.as_deref(), progress)?;
                created.layers.push(record.id.clone());
                check_layer(&record, desc, diff_id, i)?;
                crate::crash_point::crash_point("oci-import:layer-stored");
                record.id
            }
        };
        layer_ids.push(layer.clone());
        parent = Some(layer);
    }
    let image_id = p.config_digest.trim_start_matches("sha256:").to_string();
    let manifest_hex = p.manifest_digest.trim_start_matches("sha256:");
    let big_data = vec![
        (p.config_digest.clone(), p.config.clone()),
        (
            format!("manifest-{}", p.manifest_digest),
            p.manifest.clone(),
        ),
        ("manifest".to_string(), p.manifest.clone()),
        (format!("signature-{manifest_hex}"), Vec::new()),
    ];
    let existed = match store.image(&image_id) {
        Ok(image) if image.id == image_id => true,
        Ok(_) | Err(StoreError::ImageUnknown) => false,
        Err(e) => return Err(e.into()),
    };
    if existed {
        let image = store.image(&image_id)?;
        if image.top_layer != parent.clone().unwrap_or_default() {
            return Err(OciError::Inconsistent(format!(
                "image {image_id} is already in the store with other layers"
            )));
        }
        for (key, data) in &big_data {
            if !image.big_data_names.contains(key) {
                store.set_big_data(crate::store::Kind::Image, &image_id, key, data)?;
            }
        }
    } else {
        let opts = ImageOptions {
            id: Some(image_id.clone()),
            names: Vec::new(),
            metadata: format!(r#"{{"signatures-sizes":{{"{}":[]}}}}"#, p.manifest_digest),
            digest: Some(p.manifest_digest.clone()),
        };
        let content = ImageContent {
            created: p.parsed_config.created.clone(),
            big_data,
        };
        store.create_image_with(parent.as_deref(), &opts, &content)?;
        created.images.push(image_id.clone());
        crate::crash_point::crash_point("oci-import:image-created");
    }
    crate::crash_point::crash_point("oci-import:image-stored");
    let names = if p.names.is_empty() {
        store.image(&image_id)?.names
    } else {
        store.add_names(&image_id, &p.names)?
    };
    Ok(ImportedImage {
        id: image_id,
        names,
        manifest_digest: p.manifest_digest.clone(),
        layers: layer_ids,
        reused_layers: reused,
        existed,
    })
}

/// Whether `layer` can stand for the layer with diff ID `diff_id` on `parent`: it has the
/// ID containers/image would give it, or the same diff digest on the same parent.
fn reusable(layer: &LayerRecord, id: &str, parent: Option<&str>, diff_id: &str) -> bool {
    let same_parent = layer.parent == parent.unwrap_or_default();
    same_parent
        && layer.uncompressed_digest == diff_id
        && (layer.id == id || !layer.compressed_digest.is_empty())
}

/// Applies one layer blob, its digest and size checked while it streams.
fn apply_layer(
    store: &Store,
    blobs: &BlobReader,
    desc: &Descriptor,
    id: &str,
    parent: Option<&str>,
    progress: &mut dyn Progress,
) -> Result<LayerRecord> {
    let file = blobs.open(&desc.digest, desc.size)?;
    let mut reader = file;
    let opts = LayerOptions {
        id: Some(id.to_string()),
        read_only: true,
        ..Default::default()
    };
    let result = {
        let mut buffered = BufReader::with_capacity(256 * 1024, &mut reader);
        let mut counted = ProgressReader::new(&mut buffered, progress);
        store.import_layer(parent, &opts, &mut counted)
    };
    match result {
        Ok(record) => Ok(record),
        // The blob's own failure (short, long, other digest) says more than what it
        // caused downstream (a gzip checksum, a tar header): read the rest to find it.
        Err(e) => Err(match reader.take_failure() {
            Some(failure) => failure,
            None => match reader.finish() {
                Err(
                    failure @ (OciError::SizeMismatch { .. } | OciError::DigestMismatch { .. }),
                ) => failure,
                _ => OciError::Store(e),
            },
        }),
    }
}

/// Checks an applied layer against its descriptor and the config's diff ID.
fn check_layer(record: &LayerRecord, desc: &Descriptor, diff_id: &str, i: usize) -> Result<()> {
    if record.uncompressed_digest != diff_id {
        return Err(OciError::Inconsistent(format!(
            "layer {} ({}) has diff ID {}, the config says {diff_id}",
            i + 1,
            desc.digest,
            record.uncompressed_digest
        )));
    }
    let announced = layout::layer_compression(&desc.media_type)?;
    if record.compression != announced.as_number() {
        let found = crate::compress::Compression::from_number(u64::from(record.compression))
            .unwrap_or_default();
        return Err(OciError::Inconsistent(format!(
            "layer {} ({}) is {found}, its media type {} says {announced}",
            i + 1,
            desc.digest,
            desc.media_type
        )));
    }
    Ok(())
}

/// The first 12 hex digits of a digest, for progress lines.
fn short(digest: &str) -> &str {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    &hex[..hex.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_ids_are_those_of_containers_image() {
        // Observed with skopeo 1.9 copying a two-layer layout into containers-storage.
        let base = "sha256:ee6fdeaad73d00412a614aa4f67fa497743eb4acceee16ff54bc96d86ed195b4";
        let top = "sha256:b4882c38a7c2fa5ac232db02f0bc365b52891261dc3ab69455ebb9241eb35146";
        let base_id = layer_id(None, base);
        assert_eq!(
            base_id,
            "ee6fdeaad73d00412a614aa4f67fa497743eb4acceee16ff54bc96d86ed195b4"
        );
        assert_eq!(
            layer_id(Some(&base_id), top),
            "dcae73af9a45528148a38193a88cc74497fb56d341569fa331718d0c25bda8f8"
        );
    }
}
