//! `check` and `gc`: finding (and repairing) damage and leftovers in a store, with
//! upstream's error messages (`check.go`, `types/errors.go`).
//!
//! Check looks at every record: a layer whose parent or driver data is gone, whose big
//! data is missing, or (unless quick) whose files no longer re-create the archive it was
//! imported from; an image whose layers or big data are gone; a container whose image,
//! layer or big data is gone; driver layers no record accounts for; and layers nothing
//! uses that are older than the allowed age. Repair removes what is damaged, with what
//! depends on it, never touching read-only stores.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::Duration;

use super::diff::reassemble_layer;
use super::files::remove_path;
use super::images::find_image;
use super::layers::find_layer;
use super::{Ctx, Kind, State, Store, StoreError};
use crate::records::{all_in_sets, big_data_file_name};

/// Upstream's `ErrLayerMissing`.
pub const LAYER_MISSING: &str = "layer is missing";
/// Upstream's `ErrLayerUnaccounted`.
pub const LAYER_UNACCOUNTED: &str = "layer in lower level storage driver not accounted for";
/// Upstream's `ErrLayerUnreferenced`.
pub const LAYER_UNREFERENCED: &str = "layer not referenced by any images or containers";
/// Upstream's `ErrLayerIncorrectContentDigest`.
pub const LAYER_INCORRECT_DIGEST: &str = "layer content incorrect digest";
/// Upstream's `ErrLayerIncorrectContentSize`.
pub const LAYER_INCORRECT_SIZE: &str = "layer content incorrect size";
/// Upstream's `ErrLayerDataMissing`.
pub const LAYER_DATA_MISSING: &str = "layer data item is missing";
/// Upstream's `ErrImageLayerMissing`.
pub const IMAGE_LAYER_MISSING: &str = "image layer is missing";
/// Upstream's `ErrImageDataMissing`.
pub const IMAGE_DATA_MISSING: &str = "image data item is missing";
/// Upstream's `ErrImageDataIncorrectSize`.
pub const IMAGE_DATA_INCORRECT_SIZE: &str = "image data item has incorrect size";
/// Upstream's `ErrContainerImageMissing`.
pub const CONTAINER_IMAGE_MISSING: &str = "image missing";
/// Upstream's `ErrContainerDataMissing`.
pub const CONTAINER_DATA_MISSING: &str = "container data item is missing";
/// Upstream's `ErrContainerDataIncorrectSize`.
pub const CONTAINER_DATA_INCORRECT_SIZE: &str = "container data item has incorrect size";

/// What `check` looks at.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// Skip re-creating layer archives (`--quick`).
    pub quick: bool,
    /// Report layers nothing uses once they are older than this (`--max`, default 24h).
    pub max_unreferenced_age: Option<Duration>,
}

/// Problems found, by object ID (upstream's `CheckReport`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Problems of layers of the writable store (and unaccounted driver layers).
    pub layers: BTreeMap<String, Vec<String>>,
    /// Problems of layers of read-only stores.
    pub ro_layers: BTreeMap<String, Vec<String>>,
    /// Problems of images of the writable store.
    pub images: BTreeMap<String, Vec<String>>,
    /// Problems of images of read-only stores.
    pub ro_images: BTreeMap<String, Vec<String>>,
    /// Problems of containers.
    pub containers: BTreeMap<String, Vec<String>>,
}

impl CheckReport {
    /// Whether nothing was found.
    pub fn is_clean(&self) -> bool {
        self.layers.is_empty()
            && self.ro_layers.is_empty()
            && self.images.is_empty()
            && self.ro_images.is_empty()
            && self.containers.is_empty()
    }
}

fn note(map: &mut BTreeMap<String, Vec<String>>, id: &str, problem: String) {
    map.entry(id.to_string()).or_default().push(problem);
}

/// Counts bytes and digests them, for comparing a re-created archive with the record.
struct DigestSink(crate::digest::Digester);

impl Write for DigestSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Layer IDs used by an image or container, with all their ancestors.
fn referenced_layers(st: &State) -> BTreeSet<String> {
    let mut roots: Vec<String> = Vec::new();
    for image in st.image_sets().flat_map(|s| &s.records) {
        roots.push(image.top_layer.clone());
        roots.extend(image.mapped_top_layers.iter().cloned());
    }
    roots.extend(st.containers.records.iter().map(|c| c.layer.clone()));
    let mut used = BTreeSet::new();
    for root in roots {
        let mut next = root;
        while !next.is_empty() && used.insert(next.clone()) {
            next = find_layer(st, &next).map(|l| l.parent).unwrap_or_default();
        }
    }
    used
}

impl Ctx<'_> {
    fn check(&mut self, opts: &CheckOptions) -> CheckReport {
        let mut report = CheckReport::default();
        let referenced = referenced_layers(self.st);
        let now = chrono::Utc::now();
        let rw_layers = self.st.layers.records.clone();
        let ro_layers = all_in_sets(&self.st.ro_layers);
        for (layer, read_only) in rw_layers
            .iter()
            .map(|l| (l, false))
            .chain(ro_layers.iter().map(|l| (l, true)))
        {
            let mut problems = Vec::new();
            if !layer.parent.is_empty() && find_layer(self.st, &layer.parent).is_none() {
                problems.push(format!("parent layer {}: {LAYER_MISSING}", layer.parent));
            }
            if !self.driver().exists(&layer.id) {
                problems.push(format!("layer {}: {LAYER_MISSING}", layer.id));
            }
            if !read_only {
                let dir = self.layer_data_dir(&layer.id).join(&layer.id);
                for key in &layer.big_data_names {
                    if !dir.join(big_data_file_name(key)).exists() {
                        problems.push(format!(
                            "layer {}: data item {key:?}: {LAYER_DATA_MISSING}",
                            layer.id
                        ));
                    }
                }
            }
            if let Some(max) = opts.max_unreferenced_age {
                let old = chrono::DateTime::parse_from_rfc3339(&layer.created)
                    .map(|t| now.signed_duration_since(t).to_std().unwrap_or_default() > max)
                    .unwrap_or(false);
                if old && !referenced.contains(&layer.id) {
                    problems.push(LAYER_UNREFERENCED.to_string());
                }
            }
            if !opts.quick && !read_only && problems.is_empty() {
                if let Some(problem) = self.check_layer_content(layer) {
                    problems.push(problem);
                }
            }
            let map = if read_only {
                &mut report.ro_layers
            } else {
                &mut report.layers
            };
            for p in problems {
                note(map, &layer.id, p);
            }
        }
        if let Ok(on_disk) = self.driver().list_layers() {
            for id in on_disk {
                if find_layer(self.st, &id).is_none() {
                    note(&mut report.layers, &id, LAYER_UNACCOUNTED.to_string());
                }
            }
        }
        let ro_images = all_in_sets(&self.st.ro_images);
        for (image, read_only) in self
            .st
            .images
            .records
            .iter()
            .map(|i| (i, false))
            .chain(ro_images.iter().map(|i| (i, true)))
        {
            let mut problems = Vec::new();
            for layer in std::iter::once(&image.top_layer).chain(&image.mapped_top_layers) {
                if !layer.is_empty() && find_layer(self.st, layer).is_none() {
                    problems.push(format!("layer {layer}: {IMAGE_LAYER_MISSING}"));
                }
            }
            if let Ok((dir, _)) = self.store.big_data_dir(self.st, Kind::Image, &image.id) {
                for key in &image.big_data_names {
                    match std::fs::metadata(dir.join(big_data_file_name(key))) {
                        Err(_) => problems.push(format!("data item {key:?}: {IMAGE_DATA_MISSING}")),
                        Ok(m) => {
                            if image
                                .big_data_sizes
                                .get(key)
                                .is_some_and(|s| *s != m.len() as i64)
                            {
                                problems.push(format!(
                                    "data item {key:?}: {IMAGE_DATA_INCORRECT_SIZE}"
                                ));
                            }
                        }
                    }
                }
            }
            let map = if read_only {
                &mut report.ro_images
            } else {
                &mut report.images
            };
            for p in problems {
                note(map, &image.id, p);
            }
        }
        for c in &self.st.containers.records {
            let mut problems = Vec::new();
            if !c.image.is_empty() && find_image(self.st, &c.image).is_none() {
                problems.push(format!("image {}: {CONTAINER_IMAGE_MISSING}", c.image));
            }
            if !c.layer.is_empty() && find_layer(self.st, &c.layer).is_none() {
                problems.push(format!("layer {}: {LAYER_MISSING}", c.layer));
            }
            let dir = self.store.containers_dir.join(&c.id);
            for key in &c.big_data_names {
                match std::fs::metadata(dir.join(big_data_file_name(key))) {
                    Err(_) => problems.push(format!("data item {key:?}: {CONTAINER_DATA_MISSING}")),
                    Ok(m) => {
                        if c.big_data_sizes
                            .get(key)
                            .is_some_and(|s| *s != m.len() as i64)
                        {
                            problems.push(format!(
                                "data item {key:?}: {CONTAINER_DATA_INCORRECT_SIZE}"
                            ));
                        }
                    }
                }
            }
            for p in problems {
                note(&mut report.containers, &c.id, p);
            }
        }
        report
    }

    /// Re-creates an imported layer's archive and compares it with the record.
    fn check_layer_content(&mut self, layer: &crate::layers::LayerRecord) -> Option<String> {
        let tar_split = self.tar_split_path(&layer.id);
        if layer.uncompressed_digest.is_empty() || !tar_split.exists() {
            return None;
        }
        let mut sink = DigestSink(crate::digest::Digester::new());
        if let Err(e) = reassemble_layer(self, layer, &tar_split, &mut sink) {
            return Some(e.to_string());
        }
        if sink.0.digest() != layer.uncompressed_digest {
            return Some(LAYER_INCORRECT_DIGEST.to_string());
        }
        if layer.uncompressed_size > 0 && sink.0.count() != layer.uncompressed_size as u64 {
            return Some(LAYER_INCORRECT_SIZE.to_string());
        }
        None
    }

    /// Removes what `report` found damaged in the writable stores: damaged layers with
    /// their descendants, images using them, and (only with `force`) containers using them.
    fn repair(&mut self, report: &CheckReport, force: bool) -> Result<(), StoreError> {
        let mut doomed_layers: BTreeSet<String> = BTreeSet::new();
        for id in report.layers.keys() {
            if self.st.layers.has_id(id) {
                doomed_layers.insert(id.clone());
            } else if find_layer(self.st, id).is_none() {
                // Driver data no record accounts for.
                let _ = self.driver().remove(id);
            }
        }
        // Descendants of damaged layers go too.
        loop {
            let more: Vec<String> = self
                .st
                .layers
                .records
                .iter()
                .filter(|l| doomed_layers.contains(&l.parent) && !doomed_layers.contains(&l.id))
                .map(|l| l.id.clone())
                .collect();
            if more.is_empty() {
                break;
            }
            doomed_layers.extend(more);
        }
        let doomed_images: Vec<String> = self
            .st
            .images
            .records
            .iter()
            .filter(|i| {
                report.images.contains_key(&i.id)
                    || doomed_layers.contains(&i.top_layer)
                    || i.mapped_top_layers
                        .iter()
                        .any(|m| doomed_layers.contains(m))
            })
            .map(|i| i.id.clone())
            .collect();
        let doomed_containers: Vec<String> = self
            .st
            .containers
            .records
            .iter()
            .filter(|c| {
                report.containers.contains_key(&c.id)
                    || doomed_layers.contains(&c.layer)
                    || doomed_images.contains(&c.image)
            })
            .map(|c| c.id.clone())
            .collect();
        if force {
            for id in &doomed_containers {
                self.remove_container(id)?;
            }
        } else {
            // A container's layer is kept (and so are its ancestors) without force.
            for id in &doomed_containers {
                if let Some(c) = self.st.containers.get(id) {
                    let mut next = c.layer.clone();
                    while doomed_layers.remove(&next) {
                        next = find_layer(self.st, &next)
                            .map(|l| l.parent)
                            .unwrap_or_default();
                    }
                }
            }
        }
        for id in &doomed_images {
            self.remove_image(id)?;
        }
        // Children before parents: newest first.
        let order: Vec<String> = self
            .st
            .layers
            .records
            .iter()
            .rev()
            .filter(|l| doomed_layers.contains(&l.id))
            .map(|l| l.id.clone())
            .collect();
        for id in order {
            self.remove_layer(&id)?;
        }
        Ok(())
    }

    /// Removes driver layers, tar-split files and big-data directories that no record
    /// accounts for (upstream's `GarbageCollect`).
    fn garbage_collect(&mut self) -> Result<Vec<String>, StoreError> {
        let mut removed = Vec::new();
        if let Ok(on_disk) = self.driver().list_layers() {
            for id in on_disk {
                if find_layer(self.st, &id).is_none() {
                    self.driver()
                        .remove(&id)
                        .map_err(|e| StoreError::driver(format!("removing layer {id}"), e))?;
                    removed.push(id);
                }
            }
        }
        let mut layer_dirs = vec![self.store.layers_dir.clone()];
        layer_dirs.extend(self.store.image_store_layers_dir.clone());
        for dir in layer_dirs {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let id = name.strip_suffix(".tar-split.gz").unwrap_or(&name);
                let is_layer_file = name.ends_with(".tar-split.gz") || entry.path().is_dir();
                if !is_layer_file || name.starts_with('.') || name == "tmp" {
                    continue;
                }
                if !self.st.layers.has_id(id) {
                    remove_path(&entry.path())?;
                }
            }
        }
        for (dir, known) in [
            (
                self.store.images_dir.clone(),
                self.st
                    .images
                    .records
                    .iter()
                    .map(|i| i.id.clone())
                    .collect::<BTreeSet<_>>(),
            ),
            (
                self.store.containers_dir.clone(),
                self.st
                    .containers
                    .records
                    .iter()
                    .map(|c| c.id.clone())
                    .collect(),
            ),
        ] {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if entry.path().is_dir() && !name.starts_with('.') && !known.contains(&name) {
                    remove_path(&entry.path())?;
                }
            }
        }
        Ok(removed)
    }
}

impl Store {
    /// Looks for damage and leftovers (upstream's `Check`).
    pub fn check(&self, opts: &CheckOptions) -> Result<CheckReport, StoreError> {
        self.write(|ctx| Ok(ctx.check(opts)))
    }

    /// Removes what a check found damaged in the writable stores (upstream's `Repair`);
    /// containers are removed only with `force`. Read-only stores are never touched.
    pub fn repair(&self, report: &CheckReport, force: bool) -> Result<(), StoreError> {
        self.write(|ctx| ctx.repair(report, force))
    }

    /// Removes driver layers and data directories no record accounts for; returns the
    /// driver layers removed.
    pub fn gc(&self) -> Result<Vec<String>, StoreError> {
        self.write(|ctx| ctx.garbage_collect())
    }
}

#[cfg(test)]
mod tests {
    use crate::store::test_support::{named, tar_with, TestRoot};
    use crate::store::{CheckOptions, ImageOptions, Kind, LayerOptions};

    #[test]
    fn check_finds_tampering_and_repair_removes_it() {
        let root = TestRoot::new();
        let store = root.open();
        let tar = tar_with(&[("a.txt", b"hello")]);
        let layer = store
            .import_layer(None, &named(&["imp"]), &mut tar.as_slice())
            .expect("import");
        let img = store
            .create_image(Some("imp"), &ImageOptions::default())
            .expect("img");
        store.create_layer(None, &named(&["fine"])).expect("fine");
        let opts = CheckOptions::default();
        assert!(store.check(&opts).expect("check").is_clean());
        std::fs::write(
            root.graph(&format!("testfs/dir/{}/a.txt", layer.id)),
            b"HELLO",
        )
        .expect("tamper");
        let report = store.check(&opts).expect("check");
        let problems = &report.layers[&layer.id];
        assert!(
            problems[0].contains("file integrity checksum failed"),
            "{problems:?}"
        );
        assert_eq!(report.layers.len(), 1);
        assert!(store
            .check(&CheckOptions {
                quick: true,
                ..Default::default()
            })
            .expect("quick")
            .is_clean());
        store.repair(&report, false).expect("repair");
        assert!(store.layer("imp").is_err());
        assert!(store.image(&img.id).is_err());
        assert!(store.layer("fine").is_ok());
        assert!(store.check(&opts).expect("check").is_clean());
    }

    #[test]
    fn check_reports_missing_data_and_unaccounted_layers_and_gc_removes_them() {
        let root = TestRoot::new();
        let store = root.open();
        let img = store
            .create_image(None, &ImageOptions::default())
            .expect("img");
        store
            .set_big_data(Kind::Image, &img.id, "manifest", b"{}")
            .expect("set");
        std::fs::remove_file(root.graph(&format!("testfs-images/{}/manifest", img.id)))
            .expect("rm");
        let stray = store
            .create_storage_layer(None, &LayerOptions::default())
            .expect("driver-only layer");
        assert!(store.layers().expect("layers").is_empty());
        let report = store.check(&CheckOptions::default()).expect("check");
        assert_eq!(
            report.images[&img.id],
            vec![format!(
                "data item \"manifest\": {}",
                super::IMAGE_DATA_MISSING
            )]
        );
        assert_eq!(
            report.layers[&stray],
            vec![super::LAYER_UNACCOUNTED.to_string()]
        );
        std::fs::create_dir_all(root.graph("testfs-layers/deadbeef")).expect("stray dir");
        assert_eq!(store.gc().expect("gc"), vec![stray.clone()]);
        assert!(!root.graph(&format!("testfs/dir/{stray}")).exists());
        assert!(!root.graph("testfs-layers/deadbeef").exists());
        assert!(
            root.graph(&format!("testfs-images/{}", img.id)).exists(),
            "known image kept"
        );
    }

    #[test]
    fn unreferenced_old_layers_are_reported() {
        let root = TestRoot::new();
        let store = root.open();
        let used = store.create_layer(None, &named(&["used"])).expect("used");
        store
            .create_image(Some("used"), &ImageOptions::default())
            .expect("img");
        let loose = store.create_layer(None, &named(&["loose"])).expect("loose");
        let opts = CheckOptions {
            quick: true,
            max_unreferenced_age: Some(std::time::Duration::ZERO),
        };
        std::thread::sleep(std::time::Duration::from_millis(5));
        let report = store.check(&opts).expect("check");
        assert_eq!(report.layers.keys().collect::<Vec<_>>(), vec![&loose.id]);
        assert!(!report.layers.contains_key(&used.id));
    }
}
