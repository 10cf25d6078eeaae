//! Images: creating, finding and deleting them, with the layers only they use.

use std::path::PathBuf;

use super::files::{mkdir_0700, remove_path};
use super::layers::optional_layer_id;
use super::{Ctx, ImageOptions, State, Store, StoreError};
use crate::gojson::now_rfc3339_nano;
use crate::images::ImageRecord;
use crate::records::{all_in_sets, find_in_sets, new_identity};

/// What `delete_image` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteImageReport {
    /// Layers deleted along with the image, top first.
    pub deleted_layers: Vec<String>,
}

impl Ctx<'_> {
    pub(super) fn remove_image(&mut self, id: &str) -> Result<(), StoreError> {
        let Some(image) = self.st.images.get(id).cloned() else {
            return Err(StoreError::ImageUnknown);
        };
        self.st.images.remove_id(&image.id);
        self.save_images()?;
        remove_path(&self.store.images_dir.join(&image.id))
    }
}

/// An image by ID, name or ID prefix in the writable store, then the read-only ones.
pub(super) fn find_image(st: &State, name: &str) -> Option<ImageRecord> {
    find_in_sets(st.image_sets(), name).cloned()
}

impl Store {
    /// Every image.
    pub fn images(&self) -> Result<Vec<ImageRecord>, StoreError> {
        self.read(|st| Ok(all_in_sets(st.image_sets())))
    }

    /// The image with this ID, name or ID prefix.
    pub fn image(&self, name: &str) -> Result<ImageRecord, StoreError> {
        self.read(|st| find_image(st, name).ok_or(StoreError::ImageUnknown))
    }

    /// Images whose digests contain `digest`.
    pub fn images_by_digest(&self, digest: &str) -> Result<Vec<ImageRecord>, StoreError> {
        validate_digest(digest)?;
        Ok(self
            .images()?
            .into_iter()
            .filter(|i| i.digests.iter().any(|d| d == digest))
            .collect())
    }

    /// Creates an image.
    pub fn create_image(
        &self,
        top_layer: Option<&str>,
        opts: &ImageOptions,
    ) -> Result<ImageRecord, StoreError> {
        self.write(|ctx| {
            let top = optional_layer_id(ctx.st, top_layer)?.unwrap_or_default();
            let (id, names) = new_identity(
                opts.id.as_deref(),
                &opts.names,
                &ctx.st.images,
                &ctx.st.ro_images,
            )?;
            if let Some(d) = opts.digest.as_deref().filter(|d| !d.is_empty()) {
                validate_digest(d)?;
            }
            let mut image = ImageRecord {
                id,
                digest: opts.digest.clone().unwrap_or_default(),
                names,
                top_layer: top,
                metadata: opts.metadata.clone(),
                created: now_rfc3339_nano(),
                ..Default::default()
            };
            image.recompute_digests();
            ctx.st.images.records.push(image.clone());
            ctx.save_images()?;
            Ok(image)
        })
    }

    /// Deletes an image and the layers of its chain nothing else uses (only computes when
    /// `commit` is false).
    pub fn delete_image(&self, name: &str, commit: bool) -> Result<DeleteImageReport, StoreError> {
        self.write(|ctx| {
            let Some(image) = ctx.st.images.get(name).cloned() else {
                return Err(StoreError::ImageUnknown);
            };
            if let Some(c) = ctx
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
            let deleted_layers = layers_freed_by_image(ctx.st, &image);
            if commit {
                ctx.remove_image(&image.id)?;
                for layer in &deleted_layers {
                    ctx.remove_layer(layer)?;
                }
            }
            Ok(DeleteImageReport { deleted_layers })
        })
    }

    /// `<graphroot>/<drv>-images/<arg>/userdata` (arg verbatim, dir created; spec quirk 2).
    pub fn image_dir(&self, arg: &str) -> Result<PathBuf, StoreError> {
        let dir = self.images_dir.join(arg).join("userdata");
        mkdir_0700(&dir)?;
        Ok(dir)
    }

    /// `<runroot>/<drv>-images/<arg>/userdata` (arg verbatim, dir created).
    pub fn image_run_dir(&self, arg: &str) -> Result<PathBuf, StoreError> {
        let dir = self
            .opts
            .run_root
            .join(format!("{}-images", self.driver_name))
            .join(arg)
            .join("userdata");
        mkdir_0700(&dir)?;
        Ok(dir)
    }
}

/// Layers of `image`'s chain that nothing else uses, top first (upstream's
/// `DeleteImage` walk): stops at a layer another image uses, a layer with other children,
/// or a read-only layer.
fn layers_freed_by_image(st: &State, image: &ImageRecord) -> Vec<String> {
    let used_by_other_image = |id: &str| {
        st.images.records.iter().any(|i| {
            i.id != image.id && (i.top_layer == id || i.mapped_top_layers.iter().any(|m| m == id))
        })
    };
    let used_by_container = |id: &str| st.containers.records.iter().any(|c| c.layer == id);
    let mut freed: Vec<String> = Vec::new();
    let mut layer = image.top_layer.clone();
    let mut last_removed = String::new();
    while !layer.is_empty() {
        let Some(rec) = st.layers.records.iter().find(|l| l.id == layer) else {
            break;
        };
        if used_by_other_image(&layer) || used_by_container(&layer) {
            break;
        }
        let other_children = st
            .layers
            .records
            .iter()
            .any(|l| l.parent == layer && l.id != last_removed);
        if other_children {
            break;
        }
        freed.push(layer.clone());
        last_removed = layer.clone();
        layer = rec.parent.clone();
    }
    for mapped in &image.mapped_top_layers {
        if !used_by_other_image(mapped)
            && !used_by_container(mapped)
            && !st.layers.records.iter().any(|l| &l.parent == mapped)
            && !freed.contains(mapped)
        {
            freed.push(mapped.clone());
        }
    }
    freed
}

/// Checks `algorithm:hex` (the form `images-by-digest` accepts).
fn validate_digest(digest: &str) -> Result<(), StoreError> {
    let valid = match digest.split_once(':') {
        Some(("sha256", hex)) => {
            hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        }
        Some(("sha512", hex)) => {
            hex.len() == 128
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        }
        Some((alg, hex)) => {
            !alg.is_empty()
                && !hex.is_empty()
                && alg
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b))
        }
        None => false,
    };
    if valid {
        Ok(())
    } else {
        Err(StoreError::InvalidDigest(digest.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use crate::store::test_support::{named, TestRoot};
    use crate::store::ImageOptions;

    #[test]
    fn delete_image_reclaims_unshared_layers() {
        let root = TestRoot::new();
        let store = root.open();
        let base = store.create_layer(None, &named(&["base"])).expect("base");
        let mid = store
            .create_layer(Some("base"), &named(&["mid"]))
            .expect("mid");
        let top = store
            .create_layer(Some("mid"), &named(&["top"]))
            .expect("top");
        let other = store
            .create_layer(Some("base"), &named(&[]))
            .expect("other");
        let img = store
            .create_image(Some("top"), &ImageOptions::default())
            .expect("img");
        let dry = store.delete_image(&img.id, false).expect("dry run");
        assert_eq!(dry.deleted_layers, vec![top.id.clone(), mid.id.clone()]);
        assert_eq!(
            store.layers().expect("layers").len(),
            4,
            "dry run deletes nothing"
        );
        let report = store.delete_image(&img.id, true).expect("delete");
        assert_eq!(report.deleted_layers, vec![top.id, mid.id]);
        let left: Vec<String> = store
            .layers()
            .expect("layers")
            .into_iter()
            .map(|l| l.id)
            .collect();
        assert_eq!(left, vec![base.id, other.id]);
        assert!(store.image(&img.id).is_err());
    }
}
