//! Mounting and unmounting layers with mount counts, shutdown, and parent owners.

use std::path::{Path, PathBuf};

use super::images::find_image;
use super::layers::{find_layer, layer_mappings};
use super::locking::{record_write, Need};
use super::{Ctx, MountOptions, Store, StoreError};
use crate::layers::LayerRecord;
use storage_driver::idmap::IdMappings;
use storage_driver::MountOpts;

impl Ctx<'_> {
    /// Mounts a layer (driver `get` only on the first mount).
    pub(super) fn mount_layer(
        &mut self,
        id: &str,
        opts: &MountOpts,
    ) -> Result<PathBuf, StoreError> {
        let i = self.rw_layer_index(id)?;
        let layer = &self.st.layers.records[i];
        if layer.mount_count > 0 && !layer.mount_point.is_empty() {
            self.st.layers.records[i].mount_count += 1;
            let path = PathBuf::from(&self.st.layers.records[i].mount_point);
            self.save_mounts()?;
            return Ok(path);
        }
        let mut opts = opts.clone();
        opts.id_mappings = layer_mappings(layer);
        let id = layer.id.clone();
        let path = self
            .driver()
            .get(&id, &opts)
            .map_err(|e| StoreError::driver(format!("mounting layer {id}"), e))?;
        let layer = &mut self.st.layers.records[i];
        layer.mount_count = 1;
        layer.mount_point = path.to_string_lossy().into_owned();
        self.save_mounts()?;
        Ok(path)
    }

    /// Unmounts once (or completely with `force`); true when no mount is left.
    pub(super) fn unmount_layer(&mut self, id: &str, force: bool) -> Result<bool, StoreError> {
        let i = self.rw_layer_index(id)?;
        let layer = &self.st.layers.records[i];
        if layer.mount_count == 0 {
            return Ok(true);
        }
        if force || layer.mount_count == 1 {
            let id = layer.id.clone();
            self.driver()
                .put(&id)
                .map_err(|e| StoreError::driver(format!("unmounting layer {id}"), e))?;
            let layer = &mut self.st.layers.records[i];
            layer.mount_count = 0;
            layer.mount_point.clear();
        } else {
            self.st.layers.records[i].mount_count -= 1;
        }
        self.save_mounts()?;
        Ok(self.st.layers.records[i].mount_count == 0)
    }

    /// The layer a container-or-layer name stands for (containers first).
    fn layer_or_container_layer(&self, name: &str) -> Result<String, StoreError> {
        // Containers first, as upstream's `Store.Mount`: a container named `c` must not lose
        // to a layer whose ID happens to start with `c`.
        if let Some(c) = self.st.containers.get(name) {
            return Ok(c.layer.clone());
        }
        if let Some(l) = self.st.layers.get(name) {
            return Ok(l.id.clone());
        }
        if let Some(l) = self.find_layer(name) {
            return Ok(l.id);
        }
        Err(StoreError::LayerUnknown)
    }
}

/// What the driver is asked for a mount; read-only is the `ro` option. The layer's ID
/// mappings are filled in by `mount_layer`.
fn driver_mount_opts(opts: &MountOptions, read_only: bool, volatile: bool) -> MountOpts {
    let mut options = opts.options.clone();
    if read_only && !options.iter().any(|o| o == "ro") {
        options.push("ro".to_string());
    }
    MountOpts {
        mount_label: opts.mount_label.clone(),
        id_mappings: IdMappings::default(),
        options,
        volatile,
    }
}

impl Store {
    /// Unmounts (with `force`) and releases the driver; returns the layers unmounted.
    pub fn shutdown(&self, force: bool) -> Result<Vec<String>, StoreError> {
        self.write(|ctx| {
            let mounted: Vec<String> = ctx
                .st
                .layers
                .records
                .iter()
                .filter(|l| l.mount_count > 0)
                .map(|l| l.id.clone())
                .collect();
            if !mounted.is_empty() && !force {
                return Err(StoreError::LayerMounted);
            }
            for id in &mounted {
                ctx.unmount_layer(id, true)?;
            }
            record_write(&self.graph_lock)?;
            ctx.driver()
                .cleanup()
                .map_err(|e| StoreError::driver("shutting down the driver", e))?;
            Ok(mounted)
        })
    }

    /// Mounts a layer or a container's layer; returns the mount point.
    pub fn mount(&self, name: &str, opts: &MountOptions) -> Result<PathBuf, StoreError> {
        self.write_needing(Need::LAYERS_AND_CONTAINERS, |ctx| {
            let id = ctx.layer_or_container_layer(name)?;
            let volatile = ctx
                .st
                .containers
                .records
                .iter()
                .any(|c| c.layer == id && c.volatile);
            ctx.mount_layer(&id, &driver_mount_opts(opts, opts.read_only, volatile))
        })
    }

    /// Mounts an image read-only, as upstream's `MountImage`: the image's content owned for
    /// the host's IDs, that is the top layer or a copy of it with no ID mapping (made and
    /// recorded in the image's mapped top layers when the top layer has a mapping).
    pub fn mount_image(&self, name: &str, opts: &MountOptions) -> Result<PathBuf, StoreError> {
        self.write(|ctx| {
            let image = find_image(ctx.st, name).ok_or_else(|| StoreError::ImageNotLocated {
                image: name.to_string(),
            })?;
            if image.top_layer.is_empty() {
                return Err(StoreError::LayerUnknown);
            }
            let top = ctx.top_layer_for_mapping(&image, &IdMappings::default())?;
            let layer = find_layer(ctx.st, &top).ok_or(StoreError::LayerUnknown)?;
            if !layer_mappings(&layer).is_identity() {
                return Err(StoreError::MappedLayerInReadOnlyStore);
            }
            ctx.mount_layer(&top, &driver_mount_opts(opts, true, false))
        })
    }

    /// Unmounts a layer or a container's layer; true when the mount count reached zero.
    pub fn unmount(&self, name: &str, force: bool) -> Result<bool, StoreError> {
        self.write_needing(Need::LAYERS_AND_CONTAINERS, |ctx| {
            let id = ctx.layer_or_container_layer(name)?;
            ctx.unmount_layer(&id, force)
        })
    }

    /// Unmounts what [`Store::mount_image`] mounted (upstream's `UnmountImage`): the image's
    /// mapped top layer with no ID mapping if it has one, else its top layer; true when the
    /// mount count reached zero.
    pub fn unmount_image(&self, name: &str, force: bool) -> Result<bool, StoreError> {
        self.write(|ctx| {
            let image = find_image(ctx.st, name).ok_or(StoreError::ImageUnknown)?;
            let canonical = image.mapped_top_layers.iter().find(|id| {
                ctx.st
                    .layers
                    .get(id)
                    .is_some_and(|l| layer_mappings(l).is_identity())
            });
            let id = canonical.unwrap_or(&image.top_layer).clone();
            ctx.unmount_layer(&id, force)
        })
    }

    /// How many times a layer (or a container's layer) is mounted.
    pub fn mount_count(&self, name: &str) -> Result<u32, StoreError> {
        self.read_needing(Need::LAYERS_AND_CONTAINERS, |st| {
            if let Some(l) = find_layer(st, name) {
                return Ok(l.mount_count);
            }
            if let Some(c) = st.containers.get(name) {
                return Ok(st.layers.get(&c.layer).map(|l| l.mount_count).unwrap_or(0));
            }
            Err(StoreError::LayerUnknown)
        })
    }

    /// UIDs/GIDs owning files of the mounted layer's parent that its ID mapping cannot
    /// represent (upstream's `LayerParentOwners`).
    pub fn layer_parent_owners(&self, name: &str) -> Result<(Vec<u32>, Vec<u32>), StoreError> {
        let layer = self.layer(name)?;
        self.parent_owners(&layer)
    }

    /// The same for a container's layer.
    pub fn container_parent_owners(&self, name: &str) -> Result<(Vec<u32>, Vec<u32>), StoreError> {
        let c = self.container(name)?;
        let layer = self.layer(&c.layer)?;
        self.parent_owners(&layer)
    }

    /// Owners of the directories above the layer's mount point that the layer's ID
    /// mapping cannot represent (upstream's `layerStore.ParentOwners`): a container
    /// process needs them mapped to traverse to its root.
    fn parent_owners(&self, layer: &LayerRecord) -> Result<(Vec<u32>, Vec<u32>), StoreError> {
        use std::os::unix::fs::MetadataExt;
        // Without a mapping nothing can be unmapped, mounted or not (as upstream).
        let maps = layer_mappings(layer);
        if maps.is_identity() {
            return Ok((Vec::new(), Vec::new()));
        }
        if layer.mount_count == 0 || layer.mount_point.is_empty() {
            return Err(StoreError::LayerNotMounted);
        }
        let uid_map = IdMappings {
            uids: maps.uids.clone(),
            gids: Vec::new(),
        };
        let gid_map = IdMappings {
            uids: Vec::new(),
            gids: maps.gids.clone(),
        };
        let mut uids = std::collections::BTreeSet::new();
        let mut gids = std::collections::BTreeSet::new();
        let mount_point = PathBuf::from(&layer.mount_point);
        for dir in mount_point.ancestors().skip(1) {
            if dir.as_os_str().is_empty() || dir == Path::new("/") {
                break;
            }
            let meta = std::fs::metadata(dir).map_err(|e| StoreError::io("examining", dir, e))?;
            if uid_map.to_container(meta.uid(), 0).is_none() {
                uids.insert(meta.uid());
            }
            if gid_map.to_container(0, meta.gid()).is_none() {
                gids.insert(meta.gid());
            }
        }
        Ok((uids.into_iter().collect(), gids.into_iter().collect()))
    }
}

#[cfg(test)]
mod tests {
    use crate::store::test_support::{named, TestRoot};
    use crate::store::{LayerOptions, MountOptions};
    use storage_driver::idmap::IdMappings;

    #[test]
    fn mount_counting_and_shutdown() {
        let root = TestRoot::new();
        let store = root.open();
        let l = store.create_layer(None, &named(&["m"])).expect("l");
        let p1 = store.mount("m", &MountOptions::default()).expect("mount");
        let p2 = store.mount("m", &MountOptions::default()).expect("mount");
        assert_eq!(p1, p2);
        assert_eq!(store.mount_count("m").expect("count"), 2);
        let json =
            std::fs::read_to_string(root.run("testfs-layers/mountpoints.json")).expect("read");
        assert_eq!(
            json,
            format!(
                r#"[{{"id":"{}","path":"{}","count":2}}]"#,
                l.id,
                p1.display()
            )
        );
        assert!(!store.unmount("m", false).expect("unmount"));
        let err = store.shutdown(false).expect_err("mounted");
        assert_eq!(
            err.to_string(),
            "shutdown: a layer is mounted: layer is in use by a container"
        );
        assert_eq!(store.shutdown(true).expect("force"), vec![l.id.clone()]);
        assert_eq!(store.mount_count("m").expect("count"), 0);
        assert_eq!(
            std::fs::read_to_string(root.run("testfs-layers/mountpoints.json")).expect("read"),
            "[]"
        );
    }

    #[test]
    fn image_mounts_use_a_copy_owned_for_the_host() {
        let root = TestRoot::new();
        let store = root.open();
        let map = vec![storage_driver::idmap::IdMap {
            container_id: 0,
            host_id: 100_000,
            size: 65_536,
        }];
        let opts = LayerOptions {
            id_mappings: IdMappings {
                uids: map.clone(),
                gids: map,
            },
            ..named(&["mappedtop"])
        };
        let top = store.create_layer(None, &opts).expect("layer");
        let img = store
            .create_image(Some("mappedtop"), &crate::store::ImageOptions::default())
            .expect("image");
        // As upstream's MountImage: a mapped top layer is not mounted itself, a copy
        // without a mapping is made (once) and mounted.
        store
            .mount_image(&img.id, &MountOptions::default())
            .expect("mount image");
        let mapped = store.image(&img.id).expect("image").mapped_top_layers;
        assert_eq!(mapped.len(), 1);
        let copy = store.layer(&mapped[0]).expect("copy");
        assert!(copy.uid_map.is_empty() && copy.gid_map.is_empty());
        assert_eq!(store.mount_count(&copy.id).expect("count"), 1);
        assert_eq!(store.mount_count(&top.id).expect("count"), 0);
        store
            .mount_image(&img.id, &MountOptions::default())
            .expect("mount image again");
        assert_eq!(
            store.image(&img.id).expect("image").mapped_top_layers.len(),
            1
        );
        assert_eq!(store.mount_count(&copy.id).expect("count"), 2);
        // An image is not a layer or a container for `unmount`; `unmount_image` finds
        // the copy.
        assert!(matches!(
            store.unmount(&img.id, false),
            Err(crate::store::StoreError::LayerUnknown)
        ));
        assert!(!store.unmount_image(&img.id, false).expect("unmount"));
        assert!(store.unmount_image(&img.id, false).expect("unmount"));
        assert_eq!(store.mount_count(&copy.id).expect("count"), 0);
    }

    #[test]
    fn parent_owners_need_a_mount_and_report_unmapped_owners() {
        let root = TestRoot::new();
        let store = root.open();
        let map = vec![storage_driver::idmap::IdMap {
            container_id: 0,
            host_id: 100_000,
            size: 65_536,
        }];
        let opts = LayerOptions {
            id_mappings: IdMappings {
                uids: map.clone(),
                gids: map,
            },
            ..named(&["mapped"])
        };
        store.create_layer(None, &opts).expect("layer");
        let err = store
            .layer_parent_owners("mapped")
            .expect_err("not mounted");
        assert_eq!(err.to_string(), "LayerParentOwner: layer is not mounted");
        store
            .mount("mapped", &MountOptions::default())
            .expect("mount");
        let (uids, gids) = store.layer_parent_owners("mapped").expect("owners");
        // The temp dirs above the layer belong to root (we run as root in CI) or to the
        // user running the tests: either way an ID outside 100000..165536.
        assert_eq!(uids.len(), 1, "{uids:?}");
        assert_eq!(gids.len(), 1, "{gids:?}");
        store.create_layer(None, &named(&["plain"])).expect("plain");
        // Without a mapping there is nothing to find, and no mount is needed.
        assert_eq!(
            store.layer_parent_owners("plain").expect("owners"),
            (vec![], vec![])
        );
        store
            .mount("plain", &MountOptions::default())
            .expect("mount");
        assert_eq!(
            store.layer_parent_owners("plain").expect("owners"),
            (vec![], vec![])
        );
    }
}
