//! The images phase of `check`: each image's big data, and the layers of its chains, whose
//! problems are the image's too (and which the image makes referenced).

use super::{
    desc, note, Findings, IMAGE_DATA_INCORRECT_SIZE, IMAGE_DATA_MISSING, IMAGE_LAYER_MISSING,
};
use crate::images::ImageRecord;
use crate::store::big_data::read_item;
use crate::store::Ctx;

impl Ctx<'_> {
    /// The images of one image store (the writable one when `ro_index` is `None`); an image
    /// that a store looked at before has is skipped.
    pub(super) fn check_images(
        &mut self,
        found: &mut Findings,
        ro_index: Option<usize>,
        images: &[ImageRecord],
    ) {
        let read_only = ro_index.is_some();
        for image in images {
            let id = image.id.clone();
            if !found.examined_images.insert(id.clone()) {
                continue;
            }
            let mut problems = self.check_image_data(image, ro_index);
            problems.extend(check_image_layers(found, image, desc(read_only)));
            let map = if read_only {
                &mut found.report.ro_images
            } else {
                &mut found.report.images
            };
            for p in problems {
                note(map, &id, p);
            }
        }
    }

    /// Big data of an image: present, with its recorded size.
    fn check_image_data(&self, image: &ImageRecord, ro_index: Option<usize>) -> Vec<String> {
        let (id, desc) = (&image.id, desc(ro_index.is_some()));
        let parent = match ro_index {
            Some(i) => self.store.ro_images_dir(i).map(|dir| &**dir),
            None => Some(&*self.store.images_dir),
        };
        let mut problems = Vec::new();
        for key in &image.big_data_names {
            let item = match parent {
                Some(parent) => read_item(parent, id, key),
                None => Ok(None),
            };
            match item {
                Ok(None) => problems.push(format!(
                    "{desc}image {id}: data item {key:?}: {IMAGE_DATA_MISSING}"
                )),
                Err(e) => problems.push(format!(
                    "{desc}image {id}: data item {key:?}: {}",
                    storage_archive::error::os_error_text(&e)
                )),
                Ok(Some(data)) => {
                    if data.len() as i64 != image.big_data_sizes.get(key).copied().unwrap_or(0) {
                        problems.push(format!(
                            "{desc}image {id}: data item {key:?}: {IMAGE_DATA_INCORRECT_SIZE}"
                        ));
                    }
                }
            }
        }
        problems
    }
}

/// The layers of an image's chains (its top layer's and its mapped top layers'): each known,
/// now referenced, its problems the image's.
fn check_image_layers(found: &mut Findings, image: &ImageRecord, desc: &str) -> Vec<String> {
    let id = &image.id;
    let mut problems = Vec::new();
    let mut tops: Vec<&String> = Vec::new();
    for top in std::iter::once(&image.top_layer).chain(&image.mapped_top_layers) {
        if !top.is_empty() && !tops.contains(&top) {
            tops.push(top);
        }
    }
    for top in tops {
        let mut layer = top.clone();
        while !layer.is_empty() {
            let known_rw = found.referenced.contains_key(&layer);
            let known_ro = found.referenced_ro.contains_key(&layer);
            if !known_rw && !known_ro {
                problems.push(format!(
                    "{desc}image {id}: layer {layer}: {IMAGE_LAYER_MISSING}"
                ));
            }
            if known_rw {
                found.referenced.insert(layer.clone(), true);
            }
            if known_ro {
                found.referenced_ro.insert(layer.clone(), true);
            }
            for source in [&found.report.layers, &found.report.ro_layers] {
                if let Some(errs) = source.get(&layer) {
                    problems.extend(errs.iter().cloned());
                }
            }
            layer = found
                .report
                .layer_parents
                .get(&layer)
                .cloned()
                .unwrap_or_default();
        }
    }
    problems
}
