//! Mapped top layers (upstream's `store.go`, `CreateContainer`): a container whose ID mapping
//! differs from its image's top layer's, on a driver that cannot shift owners at mount time, is
//! created on a copy of the top layer owned for that mapping. The copy is recorded in the image's
//! `mapped-layers` and reused by the next container with the same mapping (upstream's
//! `imageTopLayerForMapping`).

use super::layers::{find_layer, layer_mappings};
use super::{Ctx, LayerOptions, StoreError};
use crate::images::ImageRecord;
use crate::layers::LayerRecord;
use storage_driver::idmap::IdMappings;

impl Ctx<'_> {
    /// The layer a container with `wanted` mappings should start from: the image's top
    /// layer or one of its mapped copies when one has those mappings; otherwise a new
    /// mapped copy, unless the image or its top layer is read-only, in which case the top
    /// layer (and the container's own layer is re-owned instead).
    pub(super) fn top_layer_for_mapping(
        &mut self,
        image: &ImageRecord,
        wanted: &IdMappings,
    ) -> Result<String, StoreError> {
        let shifting = self.driver().supports_shifting(wanted);
        let matches = |layer: &LayerRecord| {
            let mappings = layer_mappings(layer);
            (shifting && mappings.is_identity()) || &mappings == wanted
        };
        let mut first: Option<LayerRecord> = None;
        for candidate in std::iter::once(&image.top_layer).chain(&image.mapped_top_layers) {
            let Some(layer) = find_layer(self.st, candidate) else {
                continue;
            };
            if matches(&layer) {
                return Ok(layer.id);
            }
            if first.is_none() {
                first = Some(layer);
            }
        }
        let top = first.ok_or(StoreError::LayerUnknown)?;
        let editable = self.st.images.has_id(&image.id) && self.st.layers.has_id(&top.id);
        if !editable || shifting {
            return Ok(top.id);
        }
        let opts = LayerOptions {
            mount_label: top.mount_label.clone(),
            read_only: true,
            id_mappings: wanted.clone(),
            ..Default::default()
        };
        let parent = (!top.parent.is_empty()).then_some(top.parent.as_str());
        let copy = self.create_layer_from(parent, &opts, false, Some(&top))?;
        crate::crash_point::crash_point("mapped-layer:copy-created");
        let Some(i) = self.st.images.find(&image.id) else {
            return Err(StoreError::ImageUnknown);
        };
        self.st.images.records[i]
            .mapped_top_layers
            .push(copy.id.clone());
        if let Err(e) = self.save_images() {
            if let Some(i) = self.st.images.find(&image.id) {
                self.st.images.records[i]
                    .mapped_top_layers
                    .retain(|m| m != &copy.id);
            }
            // Rolling back: the save's error is the one to report; a copy left behind is
            // marked incomplete and removed by the next writer.
            super::files::log_best_effort(
                format_args!("removing mapped copy {}", copy.id),
                self.remove_layer(&copy.id),
            );
            return Err(e);
        }
        crate::crash_point::crash_point("mapped-layer:image-saved");
        Ok(copy.id)
    }
}

#[cfg(test)]
mod tests {
    use crate::store::test_support::{named, TestRoot};
    use crate::store::{ContainerOptions, ImageOptions};
    use storage_driver::idmap::{IdMap, IdMappings};

    fn shifted(host: u32) -> ContainerOptions {
        let r = vec![IdMap {
            container_id: 0,
            host_id: host,
            size: 65536,
        }];
        ContainerOptions {
            id_mappings: IdMappings {
                uids: r.clone(),
                gids: r,
            },
            ..Default::default()
        }
    }

    #[test]
    fn mapped_copies_are_made_once_per_mapping_and_go_with_the_image() {
        let root = TestRoot::new();
        let store = root.open();
        let base = store.create_layer(None, &named(&["base"])).expect("base");
        let top = store
            .create_layer(Some("base"), &named(&["top"]))
            .expect("top");
        let img = store
            .create_image(Some("top"), &ImageOptions::default())
            .expect("image");
        let c1 = store
            .create_container(&img.id, &shifted(100_000))
            .expect("c1");
        let mapped = store.image(&img.id).expect("image").mapped_top_layers;
        assert_eq!(mapped.len(), 1);
        let copy = store.layer(&mapped[0]).expect("copy");
        // The copy sits where the top layer does, with the container's mapping.
        assert_eq!(copy.parent, base.id);
        assert_eq!(copy.uid_map[0].host_id, 100_000);
        assert_eq!(store.layer(&c1.layer).expect("layer").parent, copy.id);
        let c2 = store
            .create_container(&img.id, &shifted(100_000))
            .expect("c2");
        assert_eq!(store.layer(&c2.layer).expect("layer").parent, copy.id);
        let c3 = store
            .create_container(&img.id, &shifted(300_000))
            .expect("c3");
        assert_eq!(
            store.image(&img.id).expect("image").mapped_top_layers.len(),
            2
        );
        let c4 = store
            .create_container(&img.id, &ContainerOptions::default())
            .expect("c4");
        assert_eq!(store.layer(&c4.layer).expect("layer").parent, top.id);
        for c in [c1, c2, c3, c4] {
            store.delete_container(&c.id).expect("delete");
        }
        // The copies, children of `base`, do not keep it alive once the image goes.
        let report = store.delete_image(&img.id, true).expect("delete image");
        assert_eq!(report.deleted_layers.len(), 4, "{report:?}");
        assert!(report.deleted_layers.contains(&base.id));
        assert!(store.layers().expect("layers").is_empty());
    }
}
