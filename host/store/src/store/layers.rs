//! Layers: finding them, creating (and importing) them with crash-safe records, and
//! deleting them.

use std::io::Read;
use std::sync::Arc;

use super::files::{log_best_effort, remove_all_in, sync_filesystem};
use super::locking::Need;
use super::{Ctx, LayerOptions, State, Store, StoreError};
use crate::gojson::now_rfc3339_nano;
use crate::layers::LayerRecord;
use crate::records::{all_in_sets, find_in_sets, id_or_random, new_identity};
use crate::store_dir::{DirFile, StoreDir};
use storage_driver::idmap::IdMappings;
use storage_driver::{CreateOpts, DriverError};

pub(super) fn incomplete(layer: &LayerRecord) -> bool {
    layer
        .flags
        .get(INCOMPLETE_FLAG)
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false)
}

const INCOMPLETE_FLAG: &str = "incomplete";

/// The ID mappings a layer record keeps.
pub(super) fn layer_mappings(layer: &LayerRecord) -> IdMappings {
    IdMappings {
        uids: layer.uid_map.clone(),
        gids: layer.gid_map.clone(),
    }
}

impl Ctx<'_> {
    /// Deletes layers left incomplete by a crash and stale temp dirs. Best effort: this
    /// must never make the command fail (upstream's `layers.go`, incomplete layers).
    pub(super) fn clean_up_crash_leftovers(&mut self) {
        // A stale temp dir only takes space, and the next writer tries again.
        log_best_effort(
            "removing the layers' temp dir",
            remove_all_in(&self.store.layers_dir, "tmp"),
        );
        self.clean_up_staged_leftovers();
        let ids: Vec<String> = self
            .st
            .layers
            .records
            .iter()
            .filter(|l| incomplete(l))
            .map(|l| l.id.clone())
            .collect();
        if ids.is_empty() {
            return;
        }
        self.finish_interrupted_container_deletes(&ids);
        crate::crash_point::crash_point("crash-cleanup:containers-finished");
        for id in &ids {
            log::debug!("Found incomplete layer {id:?}, deleting it");
            // A layer that was never mounted has nothing to release; one that stays
            // mounted makes the driver's removal below fail, which is logged there.
            log_best_effort(
                format_args!("releasing incomplete layer {id}"),
                self.driver().put(id),
            );
            self.discard_layer(id);
            crate::crash_point::crash_point("crash-cleanup:layer-discarded");
        }
        // Until these land, the records on disk still call the layers incomplete: a failed
        // save leaves them for the next writer to clean up again, nothing is lost.
        log_best_effort(
            "saving the layers after the crash cleanup",
            self.save_layers(),
        );
        log_best_effort(
            "saving the mounts after the crash cleanup",
            self.save_mounts(),
        );
    }

    /// Removes the records and directories of the containers whose layers `incomplete` are:
    /// a container's record is written only once its layer is complete, so such a container
    /// is one a killed `delete-container` was deleting (it marks the layer incomplete before
    /// the driver removes it, as upstream). Without this the container would outlive its
    /// layer; upstream leaves it so, and its `check` does not see it. Best effort, as the
    /// rest of the cleanup.
    fn finish_interrupted_container_deletes(&mut self, incomplete: &[String]) {
        // Commands that do not use the containers have not loaded them.
        if let Err(e) = self.store.reload(self.st, Need::CONTAINERS) {
            log_best_effort(
                "loading the containers for the crash cleanup",
                Err::<(), _>(e),
            );
            return;
        }
        let orphans: Vec<String> = self
            .st
            .containers
            .records
            .iter()
            .filter(|c| incomplete.contains(&c.layer))
            .map(|c| c.id.clone())
            .collect();
        if orphans.is_empty() {
            return;
        }
        for id in &orphans {
            log::debug!("Container {id:?} was being deleted, finishing that");
            self.st.containers.remove_id(id);
        }
        log_best_effort(
            "saving the containers after the crash cleanup",
            self.save_containers(),
        );
        for id in &orphans {
            for dir in self.store.container_dirs() {
                log_best_effort(
                    format_args!("removing {}", dir.path_of(id).display()),
                    remove_all_in(dir, id),
                );
            }
        }
    }

    /// Removes what an incomplete layer may have left (driver data, tar-split, big data)
    /// and its record. Best effort: it runs on the way out of a failure or in crash
    /// cleanup, where a second error must not hide the first or fail the command.
    /// What is left after a failed removal is data without a record, which `check` reports
    /// ("not accounted for") and `check -r` removes.
    fn discard_layer(&mut self, id: &str) {
        log_best_effort(
            format_args!("removing the driver's data of layer {id}"),
            self.driver().remove(id),
        );
        log_best_effort(
            format_args!("removing the tar-split of layer {id}"),
            self.remove_tar_split(id),
        );
        log_best_effort(
            format_args!("removing the big data of layer {id}"),
            remove_all_in(&self.layer_data_dir(id), id),
        );
        self.st.layers.remove_id(id);
    }

    /// Removes the tar-split of the RW-store layer `id` (a missing one is fine).
    fn remove_tar_split(&self, id: &str) -> Result<(), StoreError> {
        let in_image_store = self
            .st
            .layers
            .get(id)
            .is_some_and(|l| l.id == id && l.in_image_store);
        let dir = self.store.writable_layer_data_dir(in_image_store);
        super::staged::remove_in(dir, &super::staged::tar_split_name(id))
    }

    /// `<drv>-layers/<id>.tar-split.gz`: how to re-create the layer's imported archive.
    pub(super) fn tar_split_file(&self, id: &str) -> DirFile {
        DirFile::new(self.layer_data_dir(id), super::staged::tar_split_name(id))
    }

    /// The `<drv>-layers` directory holding a layer's tar-split and big data.
    pub(super) fn layer_data_dir(&self, id: &str) -> Arc<StoreDir> {
        Arc::clone(self.store.layer_data_dir(self.st, id))
    }

    /// A layer by ID/name/prefix in the RW store, then the read-only ones.
    pub(super) fn find_layer(&self, name: &str) -> Option<LayerRecord> {
        find_layer(self.st, name)
    }

    pub(super) fn rw_layer_index(&self, name: &str) -> Result<usize, StoreError> {
        match self.st.layers.find(name) {
            Some(i) => Ok(i),
            None => match find_layer(self.st, name) {
                Some(l) => Err(StoreError::ReadOnly {
                    what: "layer",
                    id: l.id,
                }),
                None => Err(StoreError::LayerUnknown),
            },
        }
    }

    /// Creates a layer record and its driver data (an empty layer or a copy of its parent).
    pub(super) fn create_layer(
        &mut self,
        parent: Option<&str>,
        opts: &LayerOptions,
        writable: bool,
    ) -> Result<LayerRecord, StoreError> {
        self.create_layer_from(parent, opts, writable, None)
    }

    /// The record of a new layer: its parent found, its ID and names checked against every
    /// store, its fields from `opts` (and from `template`, see [`Ctx::create_layer_from`]).
    pub(super) fn new_layer_record(
        &self,
        parent: Option<&str>,
        opts: &LayerOptions,
        writable: bool,
        template: Option<&LayerRecord>,
    ) -> Result<LayerRecord, StoreError> {
        let parent = optional_layer_id(self.st, parent)?;
        let (id, names) = new_identity(
            opts.id.as_deref(),
            &opts.names,
            &self.st.layers,
            &self.st.ro_layers,
        )?;
        let mut record = LayerRecord {
            id,
            names,
            parent: parent.unwrap_or_default(),
            mount_label: opts.mount_label.clone(),
            created: now_rfc3339_nano(),
            uid_map: opts.id_mappings.uids.clone(),
            gid_map: opts.id_mappings.gids.clone(),
            volatile: opts.volatile,
            in_image_store: !writable
                && !opts.volatile
                && self.store.image_store_layers_dir.is_some(),
            ..Default::default()
        };
        if let Some(t) = template {
            record.metadata.clone_from(&t.metadata);
            record.compressed_digest.clone_from(&t.compressed_digest);
            record.compressed_size = t.compressed_size;
            record
                .uncompressed_digest
                .clone_from(&t.uncompressed_digest);
            record.uncompressed_size = t.uncompressed_size;
            record.compression = t.compression;
            record.uids.clone_from(&t.uids);
            record.gids.clone_from(&t.gids);
        }
        Ok(record)
    }

    /// [`Ctx::create_layer`], optionally starting as a copy of `template` (a layer of the
    /// writable store): the new layer gets the template's content, digests, owner sets and
    /// tar-split, re-owned for its own mapping (upstream's `TemplateLayer`).
    pub(super) fn create_layer_from(
        &mut self,
        parent: Option<&str>,
        opts: &LayerOptions,
        writable: bool,
        template: Option<&LayerRecord>,
    ) -> Result<LayerRecord, StoreError> {
        let mut record = self.new_layer_record(parent, opts, writable, template)?;
        let id = record.id.clone();
        record
            .flags
            .insert(INCOMPLETE_FLAG.to_string(), serde_json::Value::Bool(true));
        // The record goes to disk before the driver creates anything, so a crash leaves
        // something the next writer knows to clean up.
        self.st.layers.records.push(record.clone());
        self.save_layers()?;
        crate::crash_point::crash_point("layer-create:record-incomplete-saved");
        // The layer's data (a copy of its parent or template, or a new empty directory) is
        // flushed before the record calls the layer complete, as an import's is: a power cut
        // must not leave a complete layer without its files (tests/e2e/power_loss.rs).
        let populated = self
            .populate_layer(&record, writable, template)
            .and_then(|()| {
                let home = self.store.driver_home_of(record.in_image_store);
                sync_filesystem(self.store.syscalls.as_ref(), home)
            });
        match populated {
            Ok(()) => {
                crate::crash_point::crash_point("layer-create:driver-populated");
                record.flags.remove(INCOMPLETE_FLAG);
                if let Some(i) = self.st.layers.find(&id) {
                    // In place of the incomplete record: the records before it keep the
                    // JSON of the first save.
                    self.st.layers.records.replace(i, record.clone());
                }
                self.save_layers()?;
                crate::crash_point::crash_point("layer-create:record-completed");
                Ok(record)
            }
            Err(e) => {
                self.discard_layer(&id);
                // The record on disk says incomplete: if this save fails, the next writer
                // removes the layer; the error to report is the one that got us here.
                log_best_effort(
                    format_args!("saving the layers after discarding layer {id}"),
                    self.save_layers(),
                );
                Err(e)
            }
        }
    }

    /// Has the driver create a layer's data: writable (a container's layer, `create-layer`
    /// without `-r`) or image-style.
    fn create_in_driver(
        &self,
        id: &str,
        parent: Option<&str>,
        writable: bool,
        opts: &CreateOpts,
    ) -> Result<(), StoreError> {
        let created = if writable {
            self.driver().create_read_write(id, parent, opts)
        } else {
            self.driver().create(id, parent, opts)
        };
        created.map_err(|e| StoreError::driver(format!("creating layer {id}"), e))
    }

    /// Has the driver make a new layer's data: empty, a copy of its parent or of
    /// `template` (with the template's tar-split), owned for the layer's own mapping.
    pub(super) fn populate_layer(
        &self,
        record: &LayerRecord,
        writable: bool,
        template: Option<&LayerRecord>,
    ) -> Result<(), StoreError> {
        let parent = (!record.parent.is_empty()).then_some(record.parent.as_str());
        let opts = CreateOpts {
            mount_label: record.mount_label.clone(),
            storage_opt: Default::default(),
            id_mappings: layer_mappings(record),
        };
        // A copy of a template is, to the driver, a child of the template (what upstream's
        // vfs and overlay `CreateFromTemplate` do); the record keeps the real parent.
        let driver_parent = template.map(|t| t.id.as_str()).or(parent);
        self.create_in_driver(&record.id, driver_parent, writable, &opts)?;
        crate::crash_point::crash_point("layer-populate:driver-created");
        if let Some(t) = template {
            let (from, to) = (self.tar_split_file(&t.id), self.tar_split_file(&record.id));
            if from.dir().exists(from.name()) {
                from.dir()
                    .copy_file(from.name(), to.dir(), to.name())
                    .map_err(|e| StoreError::io("copying", from.path(), e))?;
                crate::crash_point::crash_point("layer-populate:template-tar-split-copied");
            }
        }
        // A child whose mapping differs from its parent's (or a copy from its template's)
        // starts owned for that other mapping: re-own it, unless the driver maps at mount
        // time (upstream's layerStore.create does the same).
        let parent_mappings = match template
            .cloned()
            .or_else(|| parent.and_then(|p| find_layer(self.st, p)))
        {
            Some(p) => layer_mappings(&p),
            None => IdMappings::default(),
        };
        // A layer without a parent starts empty, its root already owned for its mapping.
        if driver_parent.is_some()
            && parent_mappings != opts.id_mappings
            && !self.driver().supports_shifting(&opts.id_mappings)
        {
            match self.driver().update_layer_id_map(
                &record.id,
                &parent_mappings,
                &opts.id_mappings,
                &record.mount_label,
            ) {
                Ok(()) => {}
                Err(DriverError::Unsupported(what)) => {
                    log::debug!("layer {}: driver does not support {what}", record.id)
                }
                Err(e) => {
                    return Err(StoreError::driver(
                        format!("changing the ID mapping of layer {}", record.id),
                        e,
                    ))
                }
            }
            crate::crash_point::crash_point("layer-populate:reowned");
        }
        Ok(())
    }

    /// Removes a RW layer's data and record (after marking it incomplete, so a crash in the
    /// middle is finished by the next writer). No safety checks.
    pub(super) fn remove_layer(&mut self, id: &str) -> Result<(), StoreError> {
        let id = self.mark_layer_for_removal(id)?;
        self.finish_layer_removal(&id)
    }

    /// The first half of [`Ctx::remove_layer`]: unmounts the layer if it is mounted and
    /// saves it marked incomplete, so that from here on a crash ends in its removal (the next
    /// command's crash cleanup). Its ID.
    pub(super) fn mark_layer_for_removal(&mut self, id: &str) -> Result<String, StoreError> {
        let Some(i) = self.st.layers.find(id) else {
            return Err(StoreError::LayerUnknown);
        };
        let id = self.st.layers.records[i].id.clone();
        if self.st.layers.records[i].mount_count > 0 {
            // As upstream's deleteInternal: a layer that cannot be unmounted is not removed
            // (its files would be deleted through the mount).
            self.driver()
                .put(&id)
                .map_err(|e| StoreError::driver(format!("unmounting layer {id}"), e))?;
            self.st.layers.records[i].mount_count = 0;
            self.st.layers.records[i].mount_point.clear();
            self.save_mounts()?;
            crate::crash_point::crash_point("layer-remove:unmounted");
        }
        self.st.layers.records[i]
            .flags
            .insert(INCOMPLETE_FLAG.to_string(), serde_json::Value::Bool(true));
        self.save_layers()?;
        crate::crash_point::crash_point("layer-remove:marked-incomplete");
        Ok(id)
    }

    /// The second half of [`Ctx::remove_layer`]: the driver's data, the tar-split, the big
    /// data and the record of a layer [`Ctx::mark_layer_for_removal`] marked.
    pub(super) fn finish_layer_removal(&mut self, id: &str) -> Result<(), StoreError> {
        let id = id.to_string();
        self.driver()
            .remove(&id)
            .map_err(|e| StoreError::driver(format!("removing layer {id}"), e))?;
        crate::crash_point::crash_point("layer-remove:driver-removed");
        self.remove_tar_split(&id)?;
        crate::crash_point::crash_point("layer-remove:tar-split-removed");
        remove_all_in(&self.layer_data_dir(&id), &id)?;
        crate::crash_point::crash_point("layer-remove:big-data-removed");
        self.st.layers.remove_id(&id);
        self.save_layers()
    }

    /// Why a layer cannot be deleted, if something uses it.
    pub(super) fn layer_in_use(&self, id: &str) -> Option<StoreError> {
        if let Some(child) = self.st.layers.records.iter().find(|l| l.parent == id) {
            return Some(StoreError::LayerHasChildren {
                child: child.id.clone(),
            });
        }
        if let Some(image) = self
            .st
            .images
            .records
            .iter()
            .find(|i| i.top_layer == id || i.mapped_top_layers.iter().any(|m| m == id))
        {
            return Some(StoreError::LayerUsedByImage {
                layer: id.to_string(),
                image: image.id.clone(),
            });
        }
        if let Some(c) = self.st.containers.records.iter().find(|c| c.layer == id) {
            return Some(StoreError::LayerUsedByContainer {
                layer: id.to_string(),
                container: c.id.clone(),
            });
        }
        None
    }
}

/// A layer by ID, name or ID prefix in the writable store, then the read-only ones.
pub(super) fn find_layer(st: &State, name: &str) -> Option<LayerRecord> {
    find_in_sets(st.layer_sets(), name).cloned()
}

/// The ID of the layer an optional argument names (a parent, a top layer, a layer to
/// compare with); `None` when the argument is absent or empty.
pub(super) fn optional_layer_id(
    st: &State,
    name: Option<&str>,
) -> Result<Option<String>, StoreError> {
    match name.filter(|n| !n.is_empty()) {
        Some(n) => Ok(Some(find_layer(st, n).ok_or(StoreError::LayerUnknown)?.id)),
        None => Ok(None),
    }
}

impl Store {
    /// Every layer, creation order, read-write store first.
    pub fn layers(&self) -> Result<Vec<LayerRecord>, StoreError> {
        self.read_needing(Need::LAYERS, |st| Ok(all_in_sets(st.layer_sets())))
    }

    /// The layer with this ID, name or ID prefix.
    pub fn layer(&self, name: &str) -> Result<LayerRecord, StoreError> {
        self.read_needing(Need::LAYERS, |st| {
            find_layer(st, name).ok_or(StoreError::LayerUnknown)
        })
    }

    /// Creates an empty layer (or a copy of its parent).
    pub fn create_layer(
        &self,
        parent: Option<&str>,
        opts: &LayerOptions,
    ) -> Result<LayerRecord, StoreError> {
        self.write_needing(Need::LAYERS, |ctx| {
            ctx.create_layer(parent, opts, !opts.read_only)
        })
    }

    /// Creates a layer and applies a (possibly compressed) archive to it. The store's
    /// locks are held only to create the layer and to commit it: while the archive is
    /// written, other commands read and write the store (the `staged` module).
    pub fn import_layer(
        &self,
        parent: Option<&str>,
        opts: &LayerOptions,
        diff: &mut (dyn Read + Send),
    ) -> Result<LayerRecord, StoreError> {
        let mut staged = self.write_needing(Need::LAYERS, |ctx| {
            ctx.stage_layer(parent, opts, !opts.read_only)
        })?;
        let filled = self.fill_staged(&mut staged, diff);
        self.write_needing(Need::LAYERS, |ctx| ctx.commit_staged(staged, filled))
    }

    /// Every layer the driver has data for (`storage-layers`).
    pub fn storage_layers(&self) -> Result<Vec<String>, StoreError> {
        self.write(|ctx| {
            ctx.driver().list_layers().map_err(|e| match e {
                DriverError::Unsupported(_) => StoreError::NotSupported,
                other => StoreError::driver("listing the driver's layers", other),
            })
        })
    }

    /// Creates a layer in the driver only, with no record (`create-storage-layer`); returns
    /// its ID. The parent is handed to the driver as given, as upstream does: it may be a
    /// layer the driver has and no record knows (another `create-storage-layer`'s).
    pub fn create_storage_layer(
        &self,
        parent: Option<&str>,
        opts: &LayerOptions,
    ) -> Result<String, StoreError> {
        self.write(|ctx| {
            let parent = parent.filter(|p| !p.is_empty()).map(str::to_string);
            let id = id_or_random(opts.id.as_deref());
            // Upstream only asks the driver, whose create leaves an existing layer as it
            // is: creating the storage of a layer that has it already succeeds.
            if ctx.driver().exists(&id) {
                return Ok(id);
            }
            let create = CreateOpts {
                mount_label: opts.mount_label.clone(),
                storage_opt: Default::default(),
                id_mappings: opts.id_mappings.clone(),
            };
            ctx.create_in_driver(&id, parent.as_deref(), !opts.read_only, &create)?;
            Ok(id)
        })
    }

    /// Deletes a layer nothing uses. Unlike upstream, the checks also apply
    /// when the layer is given by name.
    pub fn delete_layer(&self, name: &str) -> Result<(), StoreError> {
        self.write(|ctx| {
            // Upstream's `DeleteLayer` answers `ErrNotALayer` for what it cannot find.
            let i = ctx.rw_layer_index(name).map_err(|e| match e {
                StoreError::LayerUnknown => StoreError::NotALayer,
                other => other,
            })?;
            let id = ctx.st.layers.records[i].id.clone();
            if let Some(e) = ctx.layer_in_use(&id) {
                return Err(e);
            }
            ctx.remove_layer(&id)
        })
    }

    /// The `<drv>-layers` directory holding a layer's tar-split and big data: the graph
    /// root's, the split image store's, or a read-only store's.
    pub(super) fn layer_data_dir(&self, st: &State, id: &str) -> &Arc<StoreDir> {
        if !st.layers.has_id(id) {
            let ro = st.ro_layers.iter().position(|set| set.has_id(id));
            if let Some(dir) = ro.and_then(|i| self.ro_layers_dir(i)) {
                return dir;
            }
        }
        let in_image_store = st
            .layers
            .records
            .iter()
            .any(|l| l.id == id && l.in_image_store);
        self.writable_layer_data_dir(in_image_store)
    }

    /// The writable `<drv>-layers` directory of a layer kept in the split image store
    /// (`in_image_store`) or in the graph root.
    /// The driver's home a writable layer's files are in: the image store's for a layer of
    /// a split image store.
    pub(super) fn driver_home_of(&self, in_image_store: bool) -> &StoreDir {
        match &self.image_store_driver_home {
            Some(home) if in_image_store => home,
            _ => &self.driver_home,
        }
    }

    pub(super) fn writable_layer_data_dir(&self, in_image_store: bool) -> &Arc<StoreDir> {
        match &self.image_store_layers_dir {
            Some(dir) if in_image_store => dir,
            _ => &self.layers_dir,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::store::test_support::{named, TestRoot};
    use crate::store::{ContainerOptions, ImageOptions, Kind, LayerOptions};

    #[test]
    fn ambiguous_prefix_is_not_found() {
        let root = TestRoot::new();
        let store = root.open();
        for id in ["abc1", "abc2"] {
            let opts = LayerOptions {
                id: Some(id.to_string()),
                ..Default::default()
            };
            store.create_layer(None, &opts).expect("create");
        }
        assert!(store.layer("abc").is_err());
        assert_eq!(store.layer("abc2").expect("exact").id, "abc2");
        assert_eq!(store.exists("abc1").expect("exists"), Some(Kind::Layer));
        assert_eq!(store.exists("zzz").expect("exists"), None);
    }

    #[test]
    fn incomplete_layer_is_removed_on_next_open() {
        let root = TestRoot::new();
        let id = {
            let store = root.open();
            store.create_layer(None, &named(&["keep"])).expect("keep");
            store
                .create_layer(None, &named(&["crashed"]))
                .expect("crashed")
                .id
        };
        // Simulate a crash between the record's first save and its completion.
        let path = root.graph("testfs-layers/layers.json");
        let mut records: Vec<serde_json::Value> =
            serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("parse");
        records[1]["flags"] = serde_json::json!({"incomplete": true});
        std::fs::write(&path, serde_json::to_vec(&records).expect("json")).expect("write");
        let store = root.open();
        let layers = store.layers().expect("layers");
        assert_eq!(layers.len(), 1);
        assert_eq!(layers[0].names, vec!["keep"]);
        assert!(
            !root.graph(&format!("testfs/dir/{id}")).exists(),
            "driver data removed"
        );
    }

    #[test]
    fn failed_creation_rolls_back() {
        let root = TestRoot::new();
        let store = root.open();
        let opts = LayerOptions {
            id: Some("doomed".to_string()),
            read_only: true,
            ..Default::default()
        };
        assert!(store.create_layer(None, &opts).is_err());
        assert!(store.layers().expect("layers").is_empty());
        assert!(!root.graph("testfs/dir/doomed").exists());
        let text = std::fs::read_to_string(root.graph("testfs-layers/layers.json")).expect("read");
        assert_eq!(text, "[]");
    }

    #[test]
    fn delete_layer_by_name_checks_children_and_users() {
        let root = TestRoot::new();
        let store = root.open();
        store
            .create_layer(None, &named(&["parent"]))
            .expect("parent");
        let child = store
            .create_layer(Some("parent"), &named(&["child"]))
            .expect("child");
        let err = store.delete_layer("parent").expect_err("refused");
        assert_eq!(
            err.to_string(),
            format!("used by layer {}: layer has children", child.id)
        );
        let img = store
            .create_image(Some("child"), &ImageOptions::default())
            .expect("img");
        let err = store.delete_layer("child").expect_err("refused");
        assert!(
            err.to_string().contains("layer is in use by an image"),
            "{err}"
        );
        let ctr = store
            .create_container(&img.id, &ContainerOptions::default())
            .expect("ctr");
        let err = store.delete_image(&img.id, true).expect_err("refused");
        assert_eq!(
            err.to_string(),
            format!("image used by {}: image is in use by a container", ctr.id)
        );
        let err = store.delete_container(&img.id).expect_err("refused");
        assert_eq!(err.to_string(), "identifier is not a container");
        store.delete_container(&ctr.id).expect("delete ctr");
        assert!(!root
            .graph(&format!("testfs-containers/{}", ctr.id))
            .exists());
        assert!(store.layer(&ctr.layer).is_err(), "container layer deleted");
        store.delete("child").expect("delete without checks");
    }
}
