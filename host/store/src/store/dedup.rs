//! `dedup`: which layers upstream's `Store.Dedup` hands to the driver.

use std::collections::BTreeSet;

use super::{State, Store, StoreError};
use storage_driver::dedup::{DedupResult, HashMethod};

/// The writable layers of every image (top layers, mapped top layers and their ancestors),
/// in the order first reached. Layers of read-only stores are not the driver's to change,
/// and the walk stops at a layer the writable store does not have, as upstream's does.
fn image_layers(st: &State) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut order = Vec::new();
    for image in st.image_sets().flat_map(|s| &s.records) {
        for top in std::iter::once(&image.top_layer).chain(&image.mapped_top_layers) {
            let mut next = top.clone();
            while !next.is_empty() && !seen.contains(&next) {
                let Some(layer) = st.layers.records.iter().find(|l| l.id == next) else {
                    break;
                };
                seen.insert(next.clone());
                order.push(next);
                next = layer.parent.clone();
            }
        }
    }
    order
}

impl Store {
    /// Shares the extents of identical files among the layers of the store's images
    /// (upstream's `Dedup`), under the store's write locks.
    pub fn dedup(&self, method: HashMethod) -> Result<DedupResult, StoreError> {
        self.write(|ctx| {
            let layers = image_layers(ctx.st);
            ctx.driver()
                .dedup(&layers, method)
                .map_err(|e| StoreError::driver("deduplicating layers", e))
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::store::test_support::{named, TestRoot};
    use crate::store::ImageOptions;

    #[test]
    fn image_chains_are_collected_and_loose_layers_are_not() {
        let root = TestRoot::new();
        let store = root.open();
        let base = store.create_layer(None, &named(&["base"])).expect("base");
        let top = store
            .create_layer(Some("base"), &named(&["top"]))
            .expect("top");
        let loose = store.create_layer(None, &named(&["loose"])).expect("loose");
        store
            .create_image(Some("top"), &ImageOptions::default())
            .expect("img");
        store
            .create_image(Some("base"), &ImageOptions::default())
            .expect("img2");
        let layers = store.read(|st| Ok(super::image_layers(st))).expect("read");
        assert_eq!(layers, vec![top.id, base.id]);
        assert!(!layers.contains(&loose.id));
    }
}
