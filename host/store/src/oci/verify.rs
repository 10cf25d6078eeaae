//! Verifying an image: every layer of its chain is there and re-creates the content its
//! record describes (diff digest and size, through tar-split), every big-data item has its
//! recorded digest and size, and a stored manifest's config lists the chain's diff IDs.

use std::io::{self, Write};

use super::layout;
use super::Result;
use crate::digest::Digester;
use crate::images::ImageRecord;
use crate::store::{DiffCompression, Kind, Store};

/// What verifying one image found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// The image ID.
    pub image: String,
    /// How many layers were checked.
    pub layers_checked: usize,
    /// How many big-data items were checked.
    pub items_checked: usize,
    /// Every problem, one sentence each; empty when the image is intact.
    pub problems: Vec<String>,
}

/// Verifies image `name`. Only an unknown image is an error; damage is in the report.
pub fn verify_image(store: &Store, name: &str) -> Result<VerifyReport> {
    let image = store.image(name)?;
    let mut report = VerifyReport {
        image: image.id.clone(),
        ..Default::default()
    };
    let diff_ids = verify_layers(store, &image, &mut report);
    verify_big_data(store, &image, &mut report);
    verify_config(store, &image, &diff_ids, &mut report);
    Ok(report)
}

/// Checks the chain from the top layer down; returns its diff digests, base first.
fn verify_layers(store: &Store, image: &ImageRecord, report: &mut VerifyReport) -> Vec<String> {
    let mut diff_ids = Vec::new();
    let mut next = image.top_layer.clone();
    while !next.is_empty() && report.layers_checked <= 4096 {
        let layer = match store.layer(&next) {
            Ok(l) => l,
            Err(_) => {
                report.problems.push(format!("layer {next} is missing"));
                break;
            }
        };
        report.layers_checked += 1;
        diff_ids.push(layer.uncompressed_digest.clone());
        let mut sink = Counting::default();
        match store.diff(&layer.id, None, DiffCompression::None, &mut sink) {
            Err(e) => report.problems.push(format!(
                "layer {}: its content cannot be re-created: {e}",
                layer.id
            )),
            Ok(()) if layer.uncompressed_digest.is_empty() => {}
            Ok(()) => {
                let digest = sink.digester.digest();
                if digest != layer.uncompressed_digest {
                    report.problems.push(format!(
                        "layer {}: content has digest {digest}, recorded {}",
                        layer.id, layer.uncompressed_digest
                    ));
                } else if sink.digester.count() as i64 != layer.uncompressed_size
                    && layer.uncompressed_size != 0
                {
                    report.problems.push(format!(
                        "layer {}: content has size {}, recorded {}",
                        layer.id,
                        sink.digester.count(),
                        layer.uncompressed_size
                    ));
                }
            }
        }
        next = layer.parent;
    }
    diff_ids.reverse();
    diff_ids
}

fn verify_big_data(store: &Store, image: &ImageRecord, report: &mut VerifyReport) {
    for key in &image.big_data_names {
        report.items_checked += 1;
        let data = match store.big_data(Kind::Image, &image.id, key) {
            Ok(d) => d,
            Err(_) => {
                report.problems.push(format!("big data {key:?} is missing"));
                continue;
            }
        };
        if let Some(size) = image.big_data_sizes.get(key) {
            if *size != data.len() as i64 {
                report.problems.push(format!(
                    "big data {key:?} has size {}, recorded {size}",
                    data.len()
                ));
                continue;
            }
        }
        if let Some(recorded) = image.big_data_digests.get(key) {
            let digest = crate::digest::sha256_digest(&data);
            if digest != *recorded {
                report.problems.push(format!(
                    "big data {key:?} has digest {digest}, recorded {recorded}"
                ));
            }
        }
    }
}

/// A stored manifest's config must be stored and list the chain's diff IDs.
fn verify_config(
    store: &Store,
    image: &ImageRecord,
    diff_ids: &[String],
    report: &mut VerifyReport,
) {
    let Ok(bytes) = store.big_data(Kind::Image, &image.id, "manifest") else {
        return;
    };
    let Ok(manifest) = layout::parse_manifest("manifest", &bytes) else {
        return;
    };
    let key = &manifest.config.digest;
    let Ok(config) = store.big_data(Kind::Image, &image.id, key) else {
        report
            .problems
            .push(format!("the config {key} the manifest names is missing"));
        return;
    };
    match layout::parse_config("config", &config) {
        Ok(c) if c.rootfs.diff_ids == diff_ids => {}
        Ok(c) => report.problems.push(format!(
            "the config lists diff IDs [{}], the layers have [{}]",
            c.rootfs.diff_ids.join(" "),
            diff_ids.join(" ")
        )),
        Err(e) => report
            .problems
            .push(format!("the config does not parse: {e}")),
    }
}

/// A sink that digests and counts.
#[derive(Default)]
struct Counting {
    digester: Digester,
}

impl Write for Counting {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.digester.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
