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
//!
//! The phases read as upstream's `check.go`, one module each: `layers` (big data, the
//! re-created archive (`archive`), mounted contents against the chain's archives (`tree`),
//! missing parents), `images`, `containers`, then `unused` (unreferenced and unaccounted
//! layers); `repair` and `gc` remove what was found.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::{Ctx, Store, StoreError};
use tree::Header;

mod archive;
mod containers;
mod gc;
mod images;
mod layers;
mod repair;
mod tree;
mod unused;

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

/// The prefix of a problem of an object of a read-only store.
fn desc(read_only: bool) -> &'static str {
    if read_only {
        "read-only "
    } else {
        ""
    }
}

/// What one check found so far, and what its later phases need of the earlier ones.
#[derive(Default)]
struct Findings {
    report: CheckReport,
    /// Layers seen, and whether something uses them (upstream's `referencedLayers` and
    /// `referencedROLayers`).
    referenced: BTreeMap<String, bool>,
    referenced_ro: BTreeMap<String, bool>,
    /// The headers of each layer's archive whose digest and size were right.
    headers_by_layer: BTreeMap<String, Vec<Header>>,
    /// Images seen (upstream's `examinedImages`).
    examined_images: BTreeSet<String>,
}

impl Ctx<'_> {
    /// Upstream's `Check`, phase by phase.
    fn check(&mut self, opts: &CheckOptions) -> CheckReport {
        let mut found = Findings::default();
        let mut layer_sets = vec![(None, self.st.layers.records.clone())];
        for (i, set) in self.st.ro_layers.iter().enumerate() {
            layer_sets.push((Some(i), set.records.clone()));
        }
        for (ro_index, layers) in &layer_sets {
            self.check_layer_records(&mut found, *ro_index, layers);
            // Mounting and parents only where they can be trusted to work: the writable store.
            if ro_index.is_none() {
                self.check_layer_contents(&mut found, layers, opts.quick);
                self.check_layer_parents(&mut found, layers);
            }
        }
        let mut image_sets = vec![(None, self.st.images.records.clone())];
        for (i, set) in self.st.ro_images.iter().enumerate() {
            image_sets.push((Some(i), set.records.clone()));
        }
        for (ro_index, images) in &image_sets {
            self.check_images(&mut found, *ro_index, images);
        }
        self.check_containers(&mut found);
        let max_age = opts
            .max_unreferenced_age
            .unwrap_or(DEFAULT_MAX_UNREFERENCED_AGE);
        self.check_unreferenced_layers(&mut found, max_age);
        self.check_unaccounted_layers(&mut found);
        found.report
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
