//! Repair (upstream's `Repair`): removing what a check found damaged in the writable stores.

use std::collections::BTreeSet;

use super::{CheckReport, LAYER_UNACCOUNTED};
use crate::store::images::layers_freed_by_image;
use crate::store::{Ctx, StoreError};

impl Ctx<'_> {
    /// Removes what `report` found damaged in the writable stores, as upstream's `Repair`:
    /// containers (only with `force`), then images with the layers only they used, then
    /// the remaining damaged layers, children first and unaccounted driver layers last.
    /// Returns the failures, in upstream's words; read-only stores are never touched.
    pub(super) fn repair(&mut self, report: &CheckReport, force: bool) -> Vec<String> {
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
        // A layer that stays mounted makes the removal below fail and be reported.
        crate::store::files::log_best_effort(
            format_args!("unmounting damaged layer {id}"),
            self.unmount_layer(id, true),
        );
        if let Some(e) = self.layer_in_use(id) {
            return Err(format!("deleting layer {id}: {e}"));
        }
        match self.remove_layer(id) {
            Ok(()) | Err(StoreError::LayerUnknown) => Ok(()),
            Err(e) => Err(format!("deleting layer {id}: {e}")),
        }
    }
}
