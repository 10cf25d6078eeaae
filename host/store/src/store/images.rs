//! Images: creating, finding and deleting them, with the layers only they use.

use std::path::PathBuf;
use std::sync::Arc;

use super::files::{log_best_effort, mkdir_0700, remove_all_in};
use super::layers::optional_layer_id;
use super::locking::Need;
use super::{Ctx, ImageOptions, State, Store, StoreError};
use crate::gojson::now_rfc3339_nano;
use crate::images::ImageRecord;
use crate::records::{all_in_sets, new_identity, sha256_digest};

/// What an image is created with besides its record's options: big-data items (stored in
/// this order) and the creation time to record (RFC 3339; now when `None`).
#[derive(Debug, Clone, Default)]
pub struct ImageContent {
    /// Creation time to record instead of now.
    pub created: Option<String>,
    /// Big-data items, key and bytes.
    pub big_data: Vec<(String, Vec<u8>)>,
}

/// What `delete_image` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteImageReport {
    /// Layers deleted along with the image, top first.
    pub deleted_layers: Vec<String>,
}

impl Ctx<'_> {
    pub(super) fn remove_image(&mut self, id: &str) -> Result<(), StoreError> {
        if let Some(image) = self.st.images.get(id).cloned() {
            self.st.images.remove_id(&image.id);
            self.save_images()?;
            crate::crash_point::crash_point("image-remove:record-removed");
            return remove_all_in(&self.store.images_dir, &image.id);
        }
        // The graph root's image of a split store.
        let (Some(set), Some(dir)) = (&mut self.st.graph_images, &self.store.graph_images_dir)
        else {
            return Err(StoreError::ImageUnknown);
        };
        let Some(image) = set.get(id).cloned() else {
            return Err(StoreError::ImageUnknown);
        };
        let dir = Arc::clone(dir);
        set.remove_id(&image.id);
        self.save_graph_images()?;
        remove_all_in(&dir, &image.id)
    }
}

/// An image by ID, name or ID prefix in the writable store, then the read-only ones.
pub(super) fn find_image(st: &State, name: &str) -> Option<ImageRecord> {
    if let Some(image) = st.images.get(name) {
        return Some(image.clone());
    }
    if let Some(image) = st.graph_images.as_ref().and_then(|set| set.get(name)) {
        return Some(image.clone());
    }
    // An image of a read-only store that the writable store has a copy of (made when its
    // names were changed) is that copy: a name the copy no longer has does not find it
    // through the read-only store (upstream's `Store.Image`).
    st.ro_images
        .iter()
        .filter_map(|set| set.get(name))
        .find(|image| !st.images.has_id(&image.id))
        .cloned()
}

impl Store {
    /// Every image.
    pub fn images(&self) -> Result<Vec<ImageRecord>, StoreError> {
        self.read_needing(Need::LAYERS_AND_IMAGES, |st| {
            Ok(all_in_sets(st.image_sets()))
        })
    }

    /// The image with this ID, name or ID prefix.
    pub fn image(&self, name: &str) -> Result<ImageRecord, StoreError> {
        self.read_needing(Need::LAYERS_AND_IMAGES, |st| {
            find_image(st, name).ok_or(StoreError::ImageUnknown)
        })
    }

    /// Images whose digests contain `digest`.
    pub fn images_by_digest(&self, digest: &str) -> Result<Vec<ImageRecord>, StoreError> {
        crate::digest::validate(digest).map_err(StoreError::InvalidDigest)?;
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
        self.create_image_with(top_layer, opts, &ImageContent::default())
    }

    /// Creates an image with its big data and creation time in one write, so no other
    /// process ever sees the image without them (what an image pull stores).
    pub fn create_image_with(
        &self,
        top_layer: Option<&str>,
        opts: &ImageOptions,
        content: &ImageContent,
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
                crate::digest::validate(d).map_err(|source| StoreError::NewImageDigest {
                    digest: d.to_string(),
                    source,
                })?;
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
            if let Some(created) = content.created.as_ref().filter(|c| !c.is_empty()) {
                image.created = created.clone();
            }
            for (key, data) in &content.big_data {
                if let Err(e) = super::big_data::write_item(&self.images_dir, &image.id, key, data)
                {
                    // Rolling back a directory no record names yet: the write's error is
                    // the one to report.
                    log_best_effort(
                        format_args!("removing the folder of failed image {}", image.id),
                        remove_all_in(&self.images_dir, &image.id),
                    );
                    return Err(e);
                }
                if !image.big_data_names.contains(key) {
                    image.big_data_names.push(key.clone());
                }
                image.big_data_sizes.insert(key.clone(), data.len() as i64);
                image
                    .big_data_digests
                    .insert(key.clone(), sha256_digest(data));
                crate::crash_point::crash_point("image-create:big-data-written");
            }
            image.recompute_digests();
            ctx.st.images.records.push(image.clone());
            if let Err(e) = ctx.save_images() {
                ctx.st.images.remove_id(&image.id);
                // Rolling back: the save's error is the one to report.
                log_best_effort(
                    format_args!("removing the folder of failed image {}", image.id),
                    remove_all_in(&self.images_dir, &image.id),
                );
                return Err(e);
            }
            crate::crash_point::crash_point("image-create:record-saved");
            Ok(image)
        })
    }

    /// Deletes an image and the layers of its chain nothing else uses (only computes when
    /// `commit` is false).
    pub fn delete_image(&self, name: &str, commit: bool) -> Result<DeleteImageReport, StoreError> {
        self.write(|ctx| {
            let writable = ctx.st.images.get(name).or_else(|| {
                // The graph root's images of a split store can be deleted too (upstream
                // deletes from every writable image store).
                ctx.st.graph_images.as_ref().and_then(|set| set.get(name))
            });
            let Some(image) = writable.cloned() else {
                return Err(match find_image(ctx.st, name) {
                    Some(ro) => StoreError::ReadOnly {
                        what: "image",
                        id: ro.id,
                    },
                    // Upstream's `DeleteImage` answers `ErrNotAnImage`.
                    None => StoreError::NotAnImage,
                });
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
                crate::crash_point::crash_point("image-delete:image-removed");
                for layer in &deleted_layers {
                    ctx.remove_layer(layer)?;
                    crate::crash_point::crash_point("image-delete:layer-removed");
                }
            }
            Ok(DeleteImageReport { deleted_layers })
        })
    }

    /// `<graphroot>/<drv>-images/<arg>/userdata` (arg verbatim, dir created, as upstream: no
    /// lookup).
    pub fn image_dir(&self, arg: &str) -> Result<PathBuf, StoreError> {
        let dir = self.images_dir.path().join(arg).join("userdata");
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
pub(super) fn layers_freed_by_image(st: &State, image: &ImageRecord) -> Vec<String> {
    let used_by_other_image = |id: &str| {
        let writable = std::iter::once(&st.images).chain(&st.graph_images);
        writable.flat_map(|set| &set.records).any(|i| {
            i.id != image.id && (i.top_layer == id || i.mapped_top_layers.iter().any(|m| m == id))
        })
    };
    let used_by_container = |id: &str| st.containers.records.iter().any(|c| c.layer == id);
    // The image's mapped copies of its top layer go with it; as children of the top
    // layer's parent they must not keep that parent alive.
    let mapped: Vec<&String> = image
        .mapped_top_layers
        .iter()
        .filter(|m| {
            !used_by_other_image(m)
                && !used_by_container(m)
                && !st.layers.records.iter().any(|l| &l.parent == *m)
        })
        .collect();
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
            .any(|l| l.parent == layer && l.id != last_removed && !mapped.contains(&&l.id));
        if other_children {
            break;
        }
        freed.push(layer.clone());
        last_removed = layer.clone();
        layer = rec.parent.clone();
    }
    for m in mapped {
        if !freed.contains(m) && st.layers.has_id(m) {
            freed.push(m.clone());
        }
    }
    freed
}

#[cfg(test)]
mod tests {
    use crate::store::test_support::{named, TestRoot};
    use crate::store::{ImageContent, ImageOptions, Kind};

    #[test]
    fn an_image_is_created_with_its_big_data_and_time() {
        let root = TestRoot::new();
        let store = root.open();
        let content = ImageContent {
            created: Some("2023-11-14T22:13:20Z".to_string()),
            big_data: vec![
                ("sha256:cfg".to_string(), b"{}".to_vec()),
                ("manifest".to_string(), b"[1]".to_vec()),
            ],
        };
        let opts = ImageOptions {
            digest: Some(crate::records::sha256_digest(b"[1]")),
            ..Default::default()
        };
        let img = store
            .create_image_with(None, &opts, &content)
            .expect("create");
        assert_eq!(img.created, "2023-11-14T22:13:20Z");
        assert_eq!(img.big_data_names, vec!["sha256:cfg", "manifest"]);
        assert_eq!(img.digests, vec![crate::records::sha256_digest(b"[1]")]);
        let stored = store.image(&img.id).expect("image");
        assert_eq!(stored.big_data_sizes.get("manifest"), Some(&3));
        assert_eq!(
            store
                .big_data(Kind::Image, &img.id, "sha256:cfg")
                .expect("cfg"),
            b"{}"
        );
    }

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
