//! Containers: creating them (with their read-write layer), finding and deleting them.

use std::path::PathBuf;

use super::files::{log_best_effort, remove_all_in};
use super::images::find_image;
use super::locking::Need;
use super::{ContainerOptions, Ctx, LayerOptions, Store, StoreError};
use crate::containers::ContainerRecord;
use crate::gojson::now_rfc3339_nano;
use crate::records::new_identity;
use crate::store_dir::StoreDir;

impl Ctx<'_> {
    /// Removes a container record, its layer and its directories. No safety checks.
    ///
    /// In an order that no crash can leave a container without its layer (upstream removes
    /// the layer first, so a kill before the container's record is saved leaves one pointing
    /// at nothing): the layer is marked for removal, then the container's record goes, then
    /// the layer. A crash after the mark leaves an incomplete layer, which the next command
    /// removes with the container if its record is still there
    /// ([`Ctx::clean_up_crash_leftovers`]).
    pub(super) fn remove_container(&mut self, id: &str) -> Result<(), StoreError> {
        let Some(c) = self.st.containers.get(id).cloned() else {
            return Err(StoreError::ContainerUnknown);
        };
        let layer = if !c.layer.is_empty() && self.st.layers.has_id(&c.layer) {
            Some(self.mark_layer_for_removal(&c.layer)?)
        } else {
            None
        };
        self.st.containers.remove_id(&c.id);
        self.save_containers()?;
        crate::crash_point::crash_point("container-remove:record-removed");
        for dir in self.store.container_dirs() {
            remove_all_in(dir, &c.id)?;
        }
        crate::crash_point::crash_point("container-remove:dirs-removed");
        match layer {
            Some(layer) => self.finish_layer_removal(&layer),
            None => Ok(()),
        }
    }
}

impl Store {
    /// Where containers have their folders (`<drv>-containers/<id>`): the graph root's
    /// `<drv>-containers` and the run root's.
    pub(super) fn container_dirs(&self) -> [&StoreDir; 2] {
        [&self.containers_dir, &self.run_containers_dir]
    }

    /// Every container.
    pub fn containers(&self) -> Result<Vec<ContainerRecord>, StoreError> {
        self.read_needing(Need::LAYERS_AND_CONTAINERS, |st| {
            Ok(st.containers.records.to_vec())
        })
    }

    /// The container with this ID, name or ID prefix.
    pub fn container(&self, name: &str) -> Result<ContainerRecord, StoreError> {
        self.read_needing(Need::LAYERS_AND_CONTAINERS, |st| {
            st.containers
                .get(name)
                .cloned()
                .ok_or(StoreError::ContainerUnknown)
        })
    }

    /// Creates a container with a new read-write layer on the image's top layer.
    pub fn create_container(
        &self,
        image: &str,
        opts: &ContainerOptions,
    ) -> Result<ContainerRecord, StoreError> {
        self.write(|ctx| {
            let (image_id, top) = if image.is_empty() {
                (String::new(), None)
            } else {
                let img = find_image(ctx.st, image).ok_or_else(|| StoreError::ImageNotLocated {
                    image: image.to_string(),
                })?;
                let top = if img.top_layer.is_empty() {
                    None
                } else {
                    Some(ctx.top_layer_for_mapping(&img, &opts.id_mappings)?)
                };
                (img.id, top)
            };
            let (id, names) =
                new_identity(opts.id.as_deref(), &opts.names, &ctx.st.containers, &[])?;
            let volatile = opts.volatile || self.opts.transient_store;
            let layer_opts = LayerOptions {
                id: None,
                names: Vec::new(),
                mount_label: opts.mount_label.clone(),
                read_only: false,
                id_mappings: opts.id_mappings.clone(),
                volatile,
            };
            let layer = ctx.create_layer(top.as_deref(), &layer_opts, true)?;
            crate::crash_point::crash_point("container-create:layer-created");
            let mut record = ContainerRecord {
                id: id.clone(),
                names,
                image: image_id,
                layer: layer.id.clone(),
                metadata: opts.metadata.clone(),
                created: now_rfc3339_nano(),
                uid_map: opts.id_mappings.uids.clone(),
                gid_map: opts.id_mappings.gids.clone(),
                volatile,
                ..Default::default()
            };
            record.flags.insert(
                "MountLabel".to_string(),
                serde_json::Value::String(opts.mount_label.clone()),
            );
            record.flags.insert(
                "ProcessLabel".to_string(),
                serde_json::Value::String(String::new()),
            );
            if opts.volatile {
                record
                    .flags
                    .insert("Volatile".to_string(), serde_json::Value::Bool(true));
            }
            // The container's directories are made when first asked for (`get-container-dir`,
            // big data), as upstream's: creating a container makes none.
            ctx.st.containers.records.push(record.clone());
            if let Err(e) = ctx.save_containers() {
                // Rolling back: the error to report is the one that got us here. A layer
                // left behind is marked incomplete (the next writer removes it).
                ctx.st.containers.remove_id(&id);
                log_best_effort(
                    format_args!("removing the layer of failed container {id}"),
                    ctx.remove_layer(&layer.id),
                );
                return Err(e);
            }
            crate::crash_point::crash_point("container-create:record-saved");
            Ok(record)
        })
    }

    /// Deletes a container, its layer and its directories.
    pub fn delete_container(&self, name: &str) -> Result<(), StoreError> {
        self.write(|ctx| {
            if ctx.st.containers.find(name).is_none() {
                return Err(StoreError::NotAContainer);
            }
            ctx.remove_container(name)
        })
    }

    /// `<graphroot>/<drv>-containers/<id>/userdata`, created.
    pub fn container_dir(&self, name: &str) -> Result<PathBuf, StoreError> {
        let id = self.container(name)?.id;
        userdata_dir(&self.containers_dir, &id)
    }

    /// `<runroot>/<drv>-containers/<id>/userdata`, created.
    pub fn container_run_dir(&self, name: &str) -> Result<PathBuf, StoreError> {
        let id = self.container(name)?.id;
        userdata_dir(&self.run_containers_dir, &id)
    }
}

/// `<parent>/<id>/userdata`, created (0700) under the handle, and its path.
fn userdata_dir(parent: &StoreDir, id: &str) -> Result<PathBuf, StoreError> {
    let dir = parent
        .create_dir(id)
        .and_then(|dir| dir.create_dir("userdata"))
        .map_err(|e| {
            StoreError::io("creating directory", parent.path_of(id).join("userdata"), e)
        })?;
    Ok(dir.path().to_path_buf())
}

#[cfg(test)]
mod tests {
    use crate::store::test_support::{named, TestRoot};
    use crate::store::{ContainerOptions, ImageOptions};

    #[test]
    fn containers_get_layers_dirs_and_placement() {
        let root = TestRoot::new();
        let store = root.open();
        store.create_layer(None, &named(&["l"])).expect("l");
        let img = store
            .create_image(
                Some("l"),
                &ImageOptions {
                    names: vec!["img".into()],
                    ..Default::default()
                },
            )
            .expect("img");
        let c = store
            .create_container(
                "img",
                &ContainerOptions {
                    names: vec!["c1".into()],
                    ..Default::default()
                },
            )
            .expect("ctr");
        assert_eq!(c.image, img.id);
        assert_eq!(store.layer(&c.layer).expect("layer").parent, img.top_layer);
        // As upstream's, creating makes no directories; asking for them does.
        let run_dir = root.run(&format!("testfs-containers/{}/userdata", c.id));
        assert!(!root.graph(&format!("testfs-containers/{}", c.id)).exists());
        assert!(!run_dir.exists());
        assert!(store.container_dir("c1").expect("dir").is_dir());
        assert_eq!(store.container_run_dir("c1").expect("run dir"), run_dir);
        assert!(run_dir.is_dir());
        let json =
            std::fs::read_to_string(root.graph("testfs-containers/containers.json")).expect("read");
        assert!(
            json.contains(r#""flags":{"MountLabel":"","ProcessLabel":""}"#),
            "{json}"
        );
        let v = store
            .create_container(
                "img",
                &ContainerOptions {
                    volatile: true,
                    ..Default::default()
                },
            )
            .expect("volatile");
        let vjson =
            std::fs::read_to_string(root.graph("testfs-containers/volatile-containers.json"))
                .expect("read");
        assert!(vjson.contains(&v.id) && vjson.contains(r#""Volatile":true"#));
        let vlayers = std::fs::read_to_string(root.graph("testfs-layers/volatile-layers.json"))
            .expect("read");
        assert!(vlayers.contains(&v.layer));
    }

    #[test]
    fn transient_store_keeps_containers_in_run_root() {
        let root = TestRoot::with(true);
        let store = root.open();
        store.create_layer(None, &named(&["l"])).expect("l");
        store
            .create_image(Some("l"), &ImageOptions::default())
            .expect("img");
        let img = store.images().expect("images").remove(0);
        let c = store
            .create_container(&img.id, &ContainerOptions::default())
            .expect("ctr");
        assert!(root.run("testfs-containers/containers.lock").exists());
        let json = std::fs::read_to_string(root.run("testfs-containers/volatile-containers.json"))
            .expect("read");
        assert!(json.contains(&c.id));
        let layers =
            std::fs::read_to_string(root.run("testfs-layers/volatile-layers.json")).expect("read");
        assert!(layers.contains(&c.layer));
        assert!(!root.graph("testfs-containers/containers.json").exists());
        assert_eq!(store.containers().expect("list").len(), 1);
    }
}
