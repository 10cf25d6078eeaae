//! `check` and `gc`: finding (and repairing) damage and leftovers in a store, with
//! upstream's checks and messages (`check.go`, `types/errors.go`).
//!
//! Check looks at every layer (big data readable; an imported layer's archive re-created
//! from tar-split and the layer's files, so a changed file fails its CRC-64 and the whole
//! its digest and size; every writable layer mountable and, unless quick, holding exactly
//! what its chain's archives say; no missing parent), every image (big data present with
//! its recorded size, every layer of its chain known; its layers' problems are its own),
//! every container (big data; its image known; the image's problems are its own), layers
//! nothing uses past the allowed age, and driver layers no record accounts for. Repair
//! removes containers (with force), damaged images with the layers only they use, then
//! damaged layers, never touching read-only stores.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::check_tree::{compare, Header, Ignore, Tree};
use super::diff::reassemble_layer;
use super::files::remove_path;
use super::images::layers_freed_by_image;
use super::layers::{find_layer, layer_mappings};
use super::{Ctx, Kind, Store, StoreError};
use crate::layers::LayerRecord;
use crate::records::big_data_file_name;
use storage_driver::MountOpts;

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
/// Upstream's `ErrLayerContentModified`.
pub const LAYER_CONTENT_MODIFIED: &str = "layer content modified";
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

/// What `check` looks at (upstream's `CheckOptions` as the CLI sets them).
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// Skip comparing mounted layers with their archives (`--quick`, upstream's
    /// `CheckMost`); archives are still re-created and digested.
    pub quick: bool,
    /// Report layers nothing uses once they are older than this (`--max`); upstream's
    /// 24 hours when `None`.
    pub max_unreferenced_age: Option<Duration>,
}

/// Upstream's default for `max_unreferenced_age`.
const DEFAULT_MAX_UNREFERENCED_AGE: Duration = Duration::from_secs(24 * 3600);

/// Problems found, by object ID (upstream's `CheckReport`), each one line of upstream's
/// text (`layer ID: layer content incorrect digest`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Problems of layers of the writable store (and unaccounted driver layers).
    pub layers: BTreeMap<String, Vec<String>>,
    /// Problems of layers of read-only stores.
    pub ro_layers: BTreeMap<String, Vec<String>>,
    /// Problems of images of the writable store (their layers' problems included).
    pub images: BTreeMap<String, Vec<String>>,
    /// Problems of images of read-only stores.
    pub ro_images: BTreeMap<String, Vec<String>>,
    /// Problems of containers (their images' problems included).
    pub containers: BTreeMap<String, Vec<String>>,
    /// Parent of every layer looked at, for removing children first.
    layer_parents: BTreeMap<String, String>,
    /// Position of each layer in the driver's list, for removing unaccounted layers.
    layer_order: BTreeMap<String, usize>,
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

/// Digests and counts the bytes of a re-created archive while passing them to the reader
/// that collects its headers.
struct DigestTee<W: Write> {
    digest: crate::digest::Digester,
    out: W,
}

impl<W: Write> Write for DigestTee<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out.write_all(buf)?;
        self.digest.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Reads every header of an archive, then whatever follows its end; an error is the
/// archive's (upstream reads the diff with Go's tar reader in the same way).
fn read_headers(reader: impl Read) -> Result<Vec<Header>, String> {
    let mut archive = tar::Archive::new(reader);
    let mut headers = Vec::new();
    let mut failure = None;
    match archive.entries() {
        Ok(entries) => {
            for entry in entries {
                match entry {
                    Ok(e) => headers.push(Header::from_entry(&e)),
                    Err(e) => {
                        failure = Some(e.to_string());
                        break;
                    }
                }
            }
        }
        Err(e) => failure = Some(e.to_string()),
    }
    // The writer must never block on a full pipe: drain to the end.
    let _ = std::io::copy(&mut archive.into_inner(), &mut std::io::sink());
    match failure {
        Some(e) => Err(e),
        None => Ok(headers),
    }
}

/// What the options of the store tell `check` to overlook (upstream's `checkIgnore`).
fn ignored(options: &[String]) -> Ignore {
    let mut ignore = Ignore::default();
    for o in options {
        if o.contains("ignore_chown_errors=true") {
            ignore.ownership = true;
        }
        if o.contains("force_mask=") {
            ignore.ownership = true;
            ignore.permissions = true;
        }
    }
    ignore
}

/// Whether a recorded digest is `algorithm:hex` of a known algorithm (upstream's
/// `Digest.Validate`).
fn valid_digest(digest: &str) -> bool {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return false;
    };
    let len = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return false,
    };
    hex.len() == len
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The archives' headers of a layer's whole chain, base first; `None` when one of them
/// is unknown (not imported, or damaged), as upstream then skips the comparison.
fn chain_headers<'a>(
    id: &str,
    parents: &BTreeMap<String, String>,
    headers: &'a BTreeMap<String, Vec<Header>>,
) -> Option<Vec<&'a Vec<Header>>> {
    let mut chain = Vec::new();
    let mut next = id.to_string();
    while !next.is_empty() {
        chain.push(headers.get(&next)?);
        if chain.len() > parents.len() + 1 {
            return None;
        }
        next = parents.get(&next).cloned().unwrap_or_default();
    }
    chain.reverse();
    Some(chain)
}

impl Ctx<'_> {
    /// Where a layer's tar-split is: its own store's `<drv>-layers`.
    fn check_tar_split_path(&self, id: &str, ro_index: Option<usize>) -> PathBuf {
        match ro_index {
            Some(i) => self
                .store
                .ro_root(i)
                .join(format!("{}-layers", self.store.driver_name))
                .join(format!("{id}.tar-split.gz")),
            None => self.tar_split_path(id),
        }
    }

    /// Re-creates a layer's archive (from tar-split, or the driver's diff when there is
    /// none, as upstream's `Diff`), digests it and collects its headers.
    fn layer_archive(
        &mut self,
        layer: &LayerRecord,
        ro_index: Option<usize>,
    ) -> Result<(Vec<Header>, String, u64), String> {
        let tar_split = self.check_tar_split_path(&layer.id, ro_index);
        let (reader, writer) = std::io::pipe().map_err(|e| e.to_string())?;
        std::thread::scope(|scope| {
            let collector = scope.spawn(move || read_headers(reader));
            let mut tee = DigestTee {
                digest: crate::digest::Digester::new(),
                out: writer,
            };
            let produced = if tar_split.exists() {
                reassemble_layer(self, layer, &tar_split, &mut tee).map_err(|e| e.to_string())
            } else {
                let parent = (!layer.parent.is_empty()).then_some(layer.parent.as_str());
                let parent_mappings = parent
                    .and_then(|p| super::layers::find_layer(self.st, p))
                    .map(|p| layer_mappings(&p))
                    .unwrap_or_default();
                self.driver()
                    .diff(
                        &layer.id,
                        &layer_mappings(layer),
                        parent,
                        &parent_mappings,
                        &mut tee,
                    )
                    .map_err(|e| e.to_string())
            };
            let DigestTee { digest, out } = tee;
            drop(out);
            let headers = collector
                .join()
                .unwrap_or_else(|_| Err("reading the archive failed".to_string()));
            produced?;
            let headers = headers?;
            Ok((headers, digest.digest(), digest.count()))
        })
    }

    /// Makes a layer's tree available the way upstream's check does (driver `get`
    /// read-only, or the existing mount), runs `f` on it and releases it.
    fn with_layer_tree(
        &mut self,
        layer: &LayerRecord,
        f: impl FnOnce(&Path) -> Vec<String>,
    ) -> Vec<String> {
        let current = self
            .st
            .layers
            .get(&layer.id)
            .filter(|l| l.mount_count > 0 && !l.mount_point.is_empty())
            .map(|l| PathBuf::from(&l.mount_point));
        if let Some(path) = current {
            return f(&path);
        }
        // No ID mappings: the tree is looked at as it is on disk, and compared through the
        // layer's mappings when the driver could not shift them at mount time.
        let opts = MountOpts {
            mount_label: layer.mount_label.clone(),
            options: vec!["ro".to_string()],
            ..Default::default()
        };
        let path = match self.driver().get(&layer.id, &opts) {
            Ok(p) => p,
            Err(e) => return vec![format!("layer {}: {e}", layer.id)],
        };
        let mut problems = f(&path);
        if let Err(e) = self.driver().put(&layer.id) {
            problems.push(format!("layer {}: {e}", layer.id));
        }
        problems
    }

    fn check(&mut self, opts: &CheckOptions) -> CheckReport {
        let mut report = CheckReport::default();
        let ignore = ignored(&self.store.opts.driver_options);
        // Layers seen, and whether something uses them (upstream's referencedLayers and
        // referencedROLayers).
        let mut referenced: BTreeMap<String, bool> = BTreeMap::new();
        let mut referenced_ro: BTreeMap<String, bool> = BTreeMap::new();
        let mut headers_by_layer: BTreeMap<String, Vec<Header>> = BTreeMap::new();

        let mut sets: Vec<(Option<usize>, Vec<LayerRecord>)> =
            vec![(None, self.st.layers.records.clone())];
        for (i, set) in self.st.ro_layers.iter().enumerate() {
            sets.push((Some(i), set.records.clone()));
        }
        for (ro_index, layers) in &sets {
            let read_only = ro_index.is_some();
            let desc = if read_only { "read-only " } else { "" };
            let map = if read_only {
                &mut report.ro_layers
            } else {
                &mut report.layers
            };
            for layer in layers {
                let id = layer.id.clone();
                if referenced.contains_key(&id) || referenced_ro.contains_key(&id) {
                    continue;
                }
                report
                    .layer_parents
                    .insert(id.clone(), layer.parent.clone());
                if read_only {
                    referenced_ro.insert(id.clone(), false);
                } else {
                    referenced.insert(id.clone(), false);
                }
                // Big data: present and readable.
                if let Ok((dir, _)) = self.store.big_data_dir(self.st, Kind::Layer, &id) {
                    for key in &layer.big_data_names {
                        match std::fs::read(dir.join(big_data_file_name(key))) {
                            Ok(_) => {}
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => note(
                                map,
                                &id,
                                format!(
                                    "{desc}layer {id}: data item {key:?}: {LAYER_DATA_MISSING}"
                                ),
                            ),
                            Err(e) => note(
                                map,
                                &id,
                                format!("{desc}layer {id}: data item {key:?}: {e}"),
                            ),
                        }
                    }
                }
                // The archive the layer was made from: re-created, digested, measured.
                if layer.uncompressed_digest.is_empty() {
                    continue;
                }
                if !valid_digest(&layer.uncompressed_digest) {
                    note(
                        map,
                        &id,
                        format!("{desc}layer {id}: invalid checksum digest format"),
                    );
                    continue;
                }
                match self.layer_archive(layer, *ro_index) {
                    Err(e) => note(map, &id, format!("{desc}layer {id}: {e}")),
                    Ok((headers, digest, count)) => {
                        let mut good = true;
                        if digest != layer.uncompressed_digest {
                            good = false;
                            note(
                                map,
                                &id,
                                format!("{desc}layer {id}: {LAYER_INCORRECT_DIGEST}"),
                            );
                        }
                        if layer.uncompressed_size != -1 && count != layer.uncompressed_size as u64
                        {
                            good = false;
                            note(
                                map,
                                &id,
                                format!(
                                    "{desc}layer {id}: read {count} bytes instead of {} bytes: {LAYER_INCORRECT_SIZE}",
                                    layer.uncompressed_size
                                ),
                            );
                        }
                        if good {
                            headers_by_layer.insert(id.clone(), headers);
                        }
                    }
                }
            }
            if read_only {
                continue;
            }
            // Writable layers only: mountable, and (unless quick) holding exactly what
            // their chain's archives say.
            for layer in layers {
                let id = layer.id.clone();
                let chain = if opts.quick || layer.uncompressed_digest.is_empty() {
                    None
                } else {
                    chain_headers(&id, &report.layer_parents, &headers_by_layer)
                };
                let idmap = {
                    let maps = layer_mappings(layer);
                    (!maps.is_identity() && !self.driver().supports_shifting(&maps)).then_some(maps)
                };
                let problems = self.with_layer_tree(layer, |root| {
                    let Some(chain) = chain else {
                        return Vec::new();
                    };
                    let mut expected = Tree::empty();
                    for headers in chain {
                        expected.headers(headers);
                    }
                    match Tree::scan(root) {
                        Err(e) => vec![format!("scanning contents of layer {id}: {e}")],
                        Ok(found) => compare(&expected, &found, idmap.as_ref(), ignore)
                            .into_iter()
                            .map(|d| format!("layer {id}: {d}, {LAYER_CONTENT_MODIFIED}"))
                            .collect(),
                    }
                });
                for p in problems {
                    note(&mut report.layers, &layer.id, p);
                }
            }
            // Parents that are nowhere to be found.
            for layer in layers {
                let parent = &layer.parent;
                if !parent.is_empty()
                    && !referenced.contains_key(parent)
                    && !referenced_ro.contains_key(parent)
                    && !self.st.ro_layers.iter().any(|s| s.has_id(parent))
                {
                    note(
                        &mut report.layers,
                        &layer.id,
                        format!("layer {parent}: {LAYER_MISSING}"),
                    );
                }
            }
        }

        // Images: big data, and the layers of their chains (whose problems are theirs).
        let mut examined_images: BTreeSet<String> = BTreeSet::new();
        let mut image_sets: Vec<(Option<usize>, Vec<crate::images::ImageRecord>)> =
            vec![(None, self.st.images.records.clone())];
        for (i, set) in self.st.ro_images.iter().enumerate() {
            image_sets.push((Some(i), set.records.clone()));
        }
        for (ro_index, images) in &image_sets {
            let read_only = ro_index.is_some();
            let desc = if read_only { "read-only " } else { "" };
            for image in images {
                let id = image.id.clone();
                if !examined_images.insert(id.clone()) {
                    continue;
                }
                let mut problems = Vec::new();
                let dir = match ro_index {
                    Some(i) => self
                        .store
                        .ro_root(*i)
                        .join(format!("{}-images", self.store.driver_name)),
                    None => self.store.images_dir.clone(),
                }
                .join(&id);
                for key in &image.big_data_names {
                    match std::fs::read(dir.join(big_data_file_name(key))) {
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => problems.push(
                            format!("{desc}image {id}: data item {key:?}: {IMAGE_DATA_MISSING}"),
                        ),
                        Err(e) => {
                            problems.push(format!("{desc}image {id}: data item {key:?}: {e}"))
                        }
                        Ok(data) => {
                            if data.len() as i64
                                != image.big_data_sizes.get(key).copied().unwrap_or(0)
                            {
                                problems.push(format!(
                                    "{desc}image {id}: data item {key:?}: {IMAGE_DATA_INCORRECT_SIZE}"
                                ));
                            }
                        }
                    }
                }
                let mut tops: Vec<&String> = Vec::new();
                for top in std::iter::once(&image.top_layer).chain(&image.mapped_top_layers) {
                    if !top.is_empty() && !tops.contains(&top) {
                        tops.push(top);
                    }
                }
                for top in tops {
                    let mut layer = top.clone();
                    while !layer.is_empty() {
                        let known_rw = referenced.contains_key(&layer);
                        let known_ro = referenced_ro.contains_key(&layer);
                        if !known_rw && !known_ro {
                            problems.push(format!(
                                "{desc}image {id}: layer {layer}: {IMAGE_LAYER_MISSING}"
                            ));
                        }
                        if known_rw {
                            referenced.insert(layer.clone(), true);
                        }
                        if known_ro {
                            referenced_ro.insert(layer.clone(), true);
                        }
                        for source in [&report.layers, &report.ro_layers] {
                            if let Some(errs) = source.get(&layer) {
                                problems.extend(errs.iter().cloned());
                            }
                        }
                        layer = report
                            .layer_parents
                            .get(&layer)
                            .cloned()
                            .unwrap_or_default();
                    }
                }
                let map = if read_only {
                    &mut report.ro_images
                } else {
                    &mut report.images
                };
                for p in problems {
                    note(map, &id, p);
                }
            }
        }

        // Containers: big data, and their images (whose problems are theirs).
        for c in self.st.containers.records.clone() {
            let id = c.id.clone();
            let mut problems = Vec::new();
            let dir = self.store.containers_dir.join(&id);
            for key in &c.big_data_names {
                match std::fs::read(dir.join(big_data_file_name(key))) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => problems.push(format!(
                        "container {id}: data item {key:?}: {CONTAINER_DATA_MISSING}"
                    )),
                    Err(e) => problems.push(format!("container {id}: data item {key:?}: {e}")),
                    Ok(data) => {
                        if data.len() as i64 != c.big_data_sizes.get(key).copied().unwrap_or(0) {
                            problems.push(format!(
                                "container {id}: data item {key:?}: {CONTAINER_DATA_INCORRECT_SIZE}"
                            ));
                        }
                    }
                }
            }
            if !c.image.is_empty() {
                if !examined_images.contains(&c.image) {
                    problems.push(format!("image {}: {CONTAINER_IMAGE_MISSING}", c.image));
                }
                for source in [&report.images, &report.ro_images] {
                    if let Some(errs) = source.get(&c.image) {
                        problems.extend(errs.iter().cloned());
                    }
                }
            }
            if !c.layer.is_empty() {
                referenced.insert(c.layer.clone(), true);
            }
            for p in problems {
                note(&mut report.containers, &id, p);
            }
        }

        // Layers nothing uses, older than the allowed age (or of unknown age).
        let max_age = opts
            .max_unreferenced_age
            .unwrap_or(DEFAULT_MAX_UNREFERENCED_AGE);
        let now = chrono::Utc::now();
        for layer in &self.st.layers.records {
            if referenced.get(&layer.id).copied().unwrap_or(false) {
                continue;
            }
            let old = match chrono::DateTime::parse_from_rfc3339(&layer.created) {
                Ok(t) => chrono::Duration::from_std(max_age)
                    .map(|max| t + max < now)
                    .unwrap_or(false),
                // Never known: upstream's zero time.
                Err(_) => true,
            };
            if old {
                note(
                    &mut report.layers,
                    &layer.id,
                    format!("layer {}: {LAYER_UNREFERENCED}", layer.id),
                );
            }
        }

        // Driver layers no record accounts for.
        if let Ok(on_disk) = self.driver().list_layers() {
            for (i, id) in on_disk.into_iter().enumerate() {
                if !referenced.contains_key(&id) {
                    note(
                        &mut report.layers,
                        &id,
                        format!("layer {id}: {LAYER_UNACCOUNTED}"),
                    );
                }
                report.layer_order.insert(id, i + 1);
            }
        }
        report
    }

    /// Removes what `report` found damaged in the writable stores, as upstream's `Repair`:
    /// containers (only with `force`), then images with the layers only they used, then
    /// the remaining damaged layers, children first and unaccounted driver layers last.
    /// Returns the failures, in upstream's words; read-only stores are never touched.
    fn repair(&mut self, report: &CheckReport, force: bool) -> Vec<String> {
        let mut errors = Vec::new();
        if force {
            for id in report.containers.keys() {
                match self.remove_container(id) {
                    Ok(()) | Err(StoreError::ContainerUnknown) => {}
                    Err(e) => errors.push(format!("deleting container {id}: {e}")),
                }
            }
        }
        let mut deleted_layers: BTreeSet<String> = BTreeSet::new();
        for id in report.images.keys() {
            match self.delete_image_with_layers(id) {
                Ok(layers) => deleted_layers.extend(layers),
                Err(StoreError::ImageUnknown) | Err(StoreError::LayerUnknown) => {}
                Err(e) => errors.push(format!("deleting image {id}: {e}")),
            }
        }
        let unaccounted = |id: &str| {
            report
                .layers
                .get(id)
                .is_some_and(|errs| errs.iter().any(|e| e.ends_with(LAYER_UNACCOUNTED)))
        };
        let depth = |id: &str| {
            let mut d = 0;
            let mut parent = report.layer_parents.get(id).cloned().unwrap_or_default();
            while !parent.is_empty() && d <= report.layer_parents.len() {
                d += 1;
                parent = report
                    .layer_parents
                    .get(&parent)
                    .cloned()
                    .unwrap_or_default();
            }
            d
        };
        let mut order: Vec<&String> = report.layers.keys().collect();
        order.sort_by_key(|id| {
            let lost = unaccounted(id);
            let position = if lost {
                report.layer_order.get(*id).copied().unwrap_or(usize::MAX)
            } else {
                0
            };
            (lost, position, std::cmp::Reverse(depth(id)))
        });
        for id in order {
            if deleted_layers.contains(id) {
                continue;
            }
            for problem in &report.layers[id] {
                let result = if problem.ends_with(LAYER_UNACCOUNTED) {
                    self.driver()
                        .remove(id)
                        .map_err(|e| format!("deleting storage layer {id}: {e}"))
                } else {
                    self.delete_damaged_layer(id)
                };
                if let Err(e) = result {
                    errors.push(e);
                }
            }
        }
        errors
    }

    /// Upstream's `DeleteImage(id, true)`: the image, then the layers of its chain nothing
    /// else uses; returns those layers.
    fn delete_image_with_layers(&mut self, id: &str) -> Result<Vec<String>, StoreError> {
        let Some(image) = self.st.images.get(id).cloned() else {
            return Err(StoreError::ImageUnknown);
        };
        if let Some(c) = self
            .st
            .containers
            .records
            .iter()
            .find(|c| c.image == image.id)
        {
            return Err(StoreError::ImageUsedByContainer {
                container: c.id.clone(),
            });
        }
        let layers = layers_freed_by_image(self.st, &image);
        self.remove_image(&image.id)?;
        for layer in &layers {
            self.remove_layer(layer)?;
        }
        Ok(layers)
    }

    /// Upstream's `Unmount(id, true)` then `DeleteLayer(id)`; a layer already gone is
    /// not a failure.
    fn delete_damaged_layer(&mut self, id: &str) -> Result<(), String> {
        if !self.st.layers.has_id(id) {
            return Ok(());
        }
        let _ = self.unmount_layer(id, true);
        if let Some(e) = self.layer_in_use(id) {
            return Err(format!("deleting layer {id}: {e}"));
        }
        match self.remove_layer(id) {
            Ok(()) | Err(StoreError::LayerUnknown) => Ok(()),
            Err(e) => Err(format!("deleting layer {id}: {e}")),
        }
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
    /// Returns what could not be removed, one line each in upstream's words.
    pub fn repair(&self, report: &CheckReport, force: bool) -> Result<Vec<String>, StoreError> {
        self.write(|ctx| Ok(ctx.repair(report, force)))
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
        let expected = vec![format!(
            "layer {}: file integrity checksum failed for \"a.txt\"",
            layer.id
        )];
        assert_eq!(report.layers[&layer.id], expected);
        assert_eq!(report.layers.len(), 1);
        assert_eq!(
            report.images[&img.id], expected,
            "the image has its layer's problem"
        );
        // Quick still re-creates archives (upstream's CheckMost).
        let quick = CheckOptions {
            quick: true,
            ..Default::default()
        };
        assert_eq!(store.check(&quick).expect("quick"), report);
        assert!(store.repair(&report, false).expect("repair").is_empty());
        assert!(store.layer("imp").is_err());
        assert!(store.image(&img.id).is_err());
        assert!(store.layer("fine").is_ok());
        assert!(store.check(&opts).expect("check").is_clean());
    }

    #[test]
    fn full_check_finds_files_the_archive_did_not_bring() {
        let root = TestRoot::new();
        let store = root.open();
        let tar = tar_with(&[("a.txt", b"hello")]);
        let layer = store
            .import_layer(None, &named(&["imp"]), &mut tar.as_slice())
            .expect("import");
        let opts = CheckOptions::default();
        assert!(store.check(&opts).expect("check").is_clean());
        std::fs::write(root.graph(&format!("testfs/dir/{}/extra", layer.id)), b"").expect("add");
        let report = store.check(&opts).expect("check");
        assert_eq!(
            report.layers[&layer.id],
            vec![format!(
                "layer {}: +/extra, {}",
                layer.id,
                super::LAYER_CONTENT_MODIFIED
            )]
        );
        let quick = CheckOptions {
            quick: true,
            ..Default::default()
        };
        assert!(store.check(&quick).expect("quick").is_clean());
        assert!(store.repair(&report, false).expect("repair").is_empty());
        assert!(store.layer("imp").is_err());
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
                "image {}: data item \"manifest\": {}",
                img.id,
                super::IMAGE_DATA_MISSING
            )]
        );
        assert_eq!(
            report.layers[&stray],
            vec![format!("layer {stray}: {}", super::LAYER_UNACCOUNTED)]
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
