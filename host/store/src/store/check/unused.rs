//! The last phases of `check`: layers nothing uses past the allowed age, and driver layers
//! no record accounts for.

use std::time::Duration;

use super::{note, Findings, LAYER_UNACCOUNTED, LAYER_UNREFERENCED};
use crate::store::Ctx;

impl Ctx<'_> {
    /// Layers of the writable store that nothing uses, older than `max_age` (or of unknown
    /// age).
    pub(super) fn check_unreferenced_layers(&self, found: &mut Findings, max_age: Duration) {
        let now = chrono::Utc::now();
        for layer in &self.st.layers.records {
            if found.referenced.get(&layer.id).copied().unwrap_or(false) {
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
                    &mut found.report.layers,
                    &layer.id,
                    format!("layer {}: {LAYER_UNREFERENCED}", layer.id),
                );
            }
        }
    }

    /// Driver layers no record accounts for; the driver's order is kept for repair.
    pub(super) fn check_unaccounted_layers(&self, found: &mut Findings) {
        let Ok(on_disk) = self.driver().list_layers() else {
            return;
        };
        let being_filled = self.layers_being_filled();
        for (i, id) in on_disk.into_iter().enumerate() {
            if !found.referenced.contains_key(&id) && !being_filled.contains(&id) {
                note(
                    &mut found.report.layers,
                    &id,
                    format!("layer {id}: {LAYER_UNACCOUNTED}"),
                );
            }
            found.report.layer_order.insert(id, i + 1);
        }
    }
}
