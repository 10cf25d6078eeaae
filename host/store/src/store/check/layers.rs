//! The layers phase of `check` (upstream's walk of the layer stores): each layer's big data
//! and the archive it was made from; for the writable store, each layer's mounted contents
//! against its chain's archives, and its parent.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use storage_driver::MountOpts;

use super::tree::{compare, Header, Ignore, Tree};
use super::{
    desc, note, Findings, LAYER_CONTENT_MODIFIED, LAYER_DATA_MISSING, LAYER_INCORRECT_DIGEST,
    LAYER_INCORRECT_SIZE, LAYER_MISSING,
};
use crate::layers::LayerRecord;
use crate::store::big_data::read_item;
use crate::store::layers::layer_mappings;
use crate::store::{Ctx, Kind};

impl Ctx<'_> {
    /// The records of one layer store (the writable one when `ro_index` is `None`): each
    /// layer's big data and archive. A layer that a store looked at before has is skipped.
    pub(super) fn check_layer_records(
        &mut self,
        found: &mut Findings,
        ro_index: Option<usize>,
        layers: &[LayerRecord],
    ) {
        let read_only = ro_index.is_some();
        for layer in layers {
            let id = layer.id.clone();
            if found.referenced.contains_key(&id) || found.referenced_ro.contains_key(&id) {
                continue;
            }
            found
                .report
                .layer_parents
                .insert(id.clone(), layer.parent.clone());
            if read_only {
                found.referenced_ro.insert(id.clone(), false);
            } else {
                found.referenced.insert(id.clone(), false);
            }
            let mut problems = self.check_layer_data(layer, desc(read_only));
            problems.extend(self.check_layer_archive(layer, ro_index, &mut found.headers_by_layer));
            let map = if read_only {
                &mut found.report.ro_layers
            } else {
                &mut found.report.layers
            };
            for p in problems {
                note(map, &id, p);
            }
        }
    }

    /// Big data of a layer: present and readable.
    fn check_layer_data(&self, layer: &LayerRecord, desc: &str) -> Vec<String> {
        let id = &layer.id;
        let Ok((parent, _)) = self.store.big_data_dir(self.st, Kind::Layer, id) else {
            return Vec::new();
        };
        let mut problems = Vec::new();
        for key in &layer.big_data_names {
            match read_item(parent, id, key) {
                Ok(Some(_)) => {}
                Ok(None) => problems.push(format!(
                    "{desc}layer {id}: data item {key:?}: {LAYER_DATA_MISSING}"
                )),
                Err(e) => problems.push(format!(
                    "{desc}layer {id}: data item {key:?}: {}",
                    storage_archive::error::os_error_text(&e)
                )),
            }
        }
        problems
    }

    /// The archive the layer was made from: re-created, digested and measured against its
    /// record. Its headers are kept in `headers_by_layer` for the content check when both
    /// match.
    fn check_layer_archive(
        &mut self,
        layer: &LayerRecord,
        ro_index: Option<usize>,
        headers_by_layer: &mut BTreeMap<String, Vec<Header>>,
    ) -> Vec<String> {
        let (id, desc) = (&layer.id, desc(ro_index.is_some()));
        if layer.uncompressed_digest.is_empty() {
            return Vec::new();
        }
        if !valid_digest(&layer.uncompressed_digest) {
            return vec![format!("{desc}layer {id}: invalid checksum digest format")];
        }
        let (headers, digest, count) = match self.layer_archive(layer, ro_index) {
            Ok(archive) => archive,
            Err(e) => return vec![format!("{desc}layer {id}: {e}")],
        };
        let mut problems = Vec::new();
        if digest != layer.uncompressed_digest {
            problems.push(format!("{desc}layer {id}: {LAYER_INCORRECT_DIGEST}"));
        }
        if layer.uncompressed_size != -1 && count != layer.uncompressed_size as u64 {
            problems.push(format!(
                "{desc}layer {id}: read {count} bytes instead of {} bytes: {LAYER_INCORRECT_SIZE}",
                layer.uncompressed_size
            ));
        }
        if problems.is_empty() {
            headers_by_layer.insert(id.clone(), headers);
        }
        problems
    }

    /// Writable layers only: each mountable and, unless `quick`, holding exactly what its
    /// chain's archives say.
    pub(super) fn check_layer_contents(
        &mut self,
        found: &mut Findings,
        layers: &[LayerRecord],
        quick: bool,
    ) {
        let ignore = ignored(&self.store.opts.driver_options);
        for layer in layers {
            let id = layer.id.clone();
            let chain = if quick || layer.uncompressed_digest.is_empty() {
                None
            } else {
                chain_headers(&id, &found.report.layer_parents, &found.headers_by_layer)
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
                note(&mut found.report.layers, &layer.id, p);
            }
        }
    }

    /// Writable layers only: parents that are nowhere to be found.
    pub(super) fn check_layer_parents(&self, found: &mut Findings, layers: &[LayerRecord]) {
        for layer in layers {
            let parent = &layer.parent;
            if !parent.is_empty()
                && !found.referenced.contains_key(parent)
                && !found.referenced_ro.contains_key(parent)
                && !self.st.ro_layers.iter().any(|s| s.has_id(parent))
            {
                note(
                    &mut found.report.layers,
                    &layer.id,
                    format!("layer {parent}: {LAYER_MISSING}"),
                );
            }
        }
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
