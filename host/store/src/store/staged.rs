//! Imports that hold no lock while the archive is written.
//!
//! Upstream holds the layer store's write lock from the first byte of an import to the last,
//! so every other command of every process waits for the whole import. Here an import takes
//! the locks twice, briefly:
//!
//! 1. [`Ctx::stage_layer`]: the parent is found, the ID and names are checked, and the driver
//!    creates the layer. No record is written: readers (ours and upstream's) see nothing of the
//!    layer, and upstream's writers, which delete every layer whose record says incomplete,
//!    find nothing to delete. What marks the layer as being filled is a marker file,
//!    `<drv>-layers/staging/<id>.lock`, that the importing process holds an `flock` on.
//! 2. [`Store::fill_staged`], with no lock: the archive is applied, its tar-split streams to
//!    `staging/<id>.tar-split.gz`, and both are flushed.
//! 3. [`Ctx::commit_staged`]: the records are read again; if the parent is still there and the
//!    ID and names are still free, the tar-split is put in place and the record written,
//!    complete. Otherwise (or if step 2 failed) the layer is removed and the error returned.
//!
//! A crash between 1 and 3 leaves a marker nobody holds: the next writer's crash cleanup
//! ([`Ctx::clean_up_staged_leftovers`]) removes the driver's data, the staged tar-split and
//! the marker — unless a record of that ID exists (the crash came after the commit), when
//! only the marker goes.

use std::fs::File;
use std::io::Read;
use std::sync::Arc;

use rustix::fs::{FlockOperation, OFlags};

use super::diff::publish;
use super::files::log_best_effort;
use super::layers::optional_layer_id;
use super::{Ctx, LayerOptions, Store, StoreError};
use crate::layers::LayerRecord;
use crate::records::new_identity;
use crate::store_dir::{DirFile, StoreDir};

/// The folder of a `<drv>-layers` directory holding the layers being filled.
pub(super) const STAGING_DIR: &str = "staging";

/// A layer the driver has and no record names yet, being filled by this process.
#[derive(Debug)]
pub(super) struct StagedLayer {
    /// The record it gets at the commit (digests filled in by [`Store::fill_staged`]).
    record: LayerRecord,
    /// `<drv>-layers/staging` of the directory the layer's tar-split goes to.
    dir: Arc<StoreDir>,
    /// The marker, locked (`flock`) while this process owns the layer; closing it (also by
    /// dying) releases the layer to the crash cleanup.
    _marker: File,
}

impl StagedLayer {
    fn tar_split(&self) -> DirFile {
        DirFile::new(Arc::clone(&self.dir), tar_split_name(&self.record.id))
    }
}

/// The staging marker of layer `id`.
fn marker_name(id: &str) -> String {
    format!("{id}.lock")
}

/// The tar-split file of layer `id`, staged or in place.
pub(super) fn tar_split_name(id: &str) -> String {
    format!("{id}.tar-split.gz")
}

/// Opens the marker of layer `id` in `dir` to read (to test its lock).
fn open_marker(dir: &StoreDir, id: &str) -> std::io::Result<File> {
    dir.open_file(&marker_name(id), OFlags::RDONLY | OFlags::NOFOLLOW, 0)
}

/// Removes the file `name` of `dir` (a missing one is fine), naming it on failure.
pub(super) fn remove_in(dir: &StoreDir, name: &str) -> Result<(), StoreError> {
    dir.remove_file(name)
        .map_err(|e| StoreError::io("removing", dir.path_of(name), e))
}

/// Takes the marker's lock without waiting: `Ok(false)` when another process holds it.
fn try_lock(marker: &File) -> std::io::Result<bool> {
    match rustix::fs::flock(marker, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

impl Ctx<'_> {
    /// Step 1 (module docs): checks the parent, ID and names, marks the layer as being
    /// filled and has the driver create it (empty, or a copy of its parent re-owned for the
    /// layer's mapping). No record is written.
    pub(super) fn stage_layer(
        &mut self,
        parent: Option<&str>,
        opts: &LayerOptions,
        writable: bool,
    ) -> Result<StagedLayer, StoreError> {
        let record = self.new_layer_record(parent, opts, writable, None)?;
        let layers_dir = self.store.writable_layer_data_dir(record.in_image_store);
        let dir = layers_dir
            .create_dir(STAGING_DIR)
            .map_err(|e| StoreError::io("creating", layers_dir.path_of(STAGING_DIR), e))?;
        let marker_name = marker_name(&record.id);
        let marker = dir
            .open_file(
                &marker_name,
                OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW,
                0o600,
            )
            .map_err(|e| StoreError::io("creating", dir.path_of(&marker_name), e))?;
        // Another process filling a layer of this ID got here first (its layer has no record
        // yet, so the ID check above could not see it).
        if !try_lock(&marker)
            .map_err(|e| StoreError::io("locking", dir.path_of(&marker_name), e))?
        {
            return Err(StoreError::DuplicateId);
        }
        crate::crash_point::crash_point("layer-import:marker-locked");
        let staged = StagedLayer {
            record,
            dir: Arc::new(dir),
            _marker: marker,
        };
        if let Err(e) = self.populate_layer(&staged.record, writable, None) {
            self.discard_staged(&staged);
            return Err(e);
        }
        crate::crash_point::crash_point("layer-import:staged-in-driver");
        Ok(staged)
    }

    /// Step 3 (module docs): records the filled layer, or removes it when filling failed or
    /// the store changed under it (parent deleted, ID or a name taken meanwhile).
    pub(super) fn commit_staged(
        &mut self,
        staged: StagedLayer,
        filled: Result<(), StoreError>,
    ) -> Result<LayerRecord, StoreError> {
        let committed = filled.and_then(|()| self.record_staged(&staged));
        match committed {
            Ok(record) => {
                // The record is on disk: a marker left by a failed removal only makes the
                // next writer remove it (it never removes a layer that has a record).
                log_best_effort(
                    format_args!("removing the staging marker of layer {}", record.id),
                    remove_in(&staged.dir, &marker_name(&record.id)),
                );
                crate::crash_point::crash_point("layer-import:marker-removed");
                Ok(record)
            }
            Err(e) => {
                self.discard_staged(&staged);
                Err(e)
            }
        }
    }

    fn record_staged(&mut self, staged: &StagedLayer) -> Result<LayerRecord, StoreError> {
        let record = staged.record.clone();
        // What others did while the layer was filled: the parent must still be there, the ID
        // and the names still free (the same checks, and errors, as at the start).
        if !record.parent.is_empty() {
            optional_layer_id(self.st, Some(&record.parent))?;
        }
        new_identity(
            Some(&record.id),
            &record.names,
            &self.st.layers,
            &self.st.ro_layers,
        )?;
        let layers_dir = self.store.writable_layer_data_dir(record.in_image_store);
        publish(
            &staged.tar_split(),
            &DirFile::new(Arc::clone(layers_dir), tar_split_name(&record.id)),
        )?;
        crate::crash_point::crash_point("layer-import:tar-split-published");
        self.st.layers.records.push(record.clone());
        if let Err(e) = self.save_layers() {
            self.st.layers.remove_id(&record.id);
            return Err(e);
        }
        crate::crash_point::crash_point("layer-import:record-saved");
        Ok(record)
    }

    /// Removes a staged layer's driver data, staged tar-split and marker. Best effort, on
    /// the way out of an error: what stays is removed by the next command's cleanup, as after
    /// a crash. The marker goes last, and only when the rest went: it is what tells the next
    /// command that there is something to remove (a failure here is often the failure that
    /// stopped the import: a full disk, no file descriptors left, a read-only home).
    fn discard_staged(&self, staged: &StagedLayer) {
        remove_staged(self, &staged.dir, &staged.record.id, "staged");
    }

    /// The layers other processes are filling now: the driver has them and no record does,
    /// and neither `check` nor garbage collection may count them as leftovers. (The crash
    /// cleanup that ran when the store's locks were taken removed every marker nobody held.)
    pub(super) fn layers_being_filled(&self) -> std::collections::BTreeSet<String> {
        self.store
            .staging_markers()
            .into_iter()
            .map(|(_, id)| id)
            .collect()
    }

    /// Removes what imports that died while filling a layer left (module docs): every
    /// marker nobody holds, with the layer's driver data and staged tar-split when no record
    /// names the layer. Best effort, as the rest of the crash cleanup.
    pub(super) fn clean_up_staged_leftovers(&mut self) {
        for (dir, id) in self.store.staging_markers() {
            self.clean_up_staged(&dir, &id);
        }
    }

    fn clean_up_staged(&mut self, dir: &StoreDir, id: &str) {
        let Ok(marker) = open_marker(dir, id) else {
            return;
        };
        match try_lock(&marker) {
            Ok(true) => {}
            // Another process is filling it.
            Ok(false) => return,
            Err(e) => {
                let path = dir.path_of(&marker_name(id));
                log::warn!("locking {} (skipped): {e}", path.display());
                return;
            }
        }
        if self.st.layers.has_id(id) {
            // The import died after its commit: only the marker is left.
            log_best_effort(
                format_args!("removing the staging marker of layer {id}"),
                remove_in(dir, &marker_name(id)),
            );
        } else {
            log::debug!("Found layer {id:?} left half-imported, deleting it");
            remove_staged(self, dir, id, "half-imported");
        }
    }
}

/// Removes the driver's data and the staged tar-split of the layer `id` staged in `dir`,
/// and then its marker if both went; otherwise the marker stays so that a later command
/// tries again (best effort: failures are logged).
fn remove_staged(ctx: &Ctx<'_>, dir: &StoreDir, id: &str, what: &str) {
    let data = ctx.driver().remove(id);
    let removed_data = data.is_ok();
    crate::crash_point::crash_point("staged-remove:driver-data-removed");
    log_best_effort(
        format_args!("removing the driver's data of {what} layer {id}"),
        data,
    );
    let tar_split = remove_in(dir, &tar_split_name(id));
    let removed_tar_split = tar_split.is_ok();
    crate::crash_point::crash_point("staged-remove:tar-split-removed");
    log_best_effort(
        format_args!("removing the staged tar-split of layer {id}"),
        tar_split,
    );
    if removed_data && removed_tar_split {
        log_best_effort(
            format_args!("removing the staging marker of layer {id}"),
            remove_in(dir, &marker_name(id)),
        );
    } else {
        log::debug!("keeping the staging marker of layer {id}: the next command removes the rest");
    }
}

impl Store {
    /// Every staging marker of the graph root's and the image store's `<drv>-layers`, as
    /// its folder and the ID of its layer.
    fn staging_markers(&self) -> Vec<(Arc<StoreDir>, String)> {
        let mut markers = Vec::new();
        for layers_dir in std::iter::once(&self.layers_dir).chain(&self.image_store_layers_dir) {
            let Ok(dir) = layers_dir.open_dir(STAGING_DIR) else {
                continue;
            };
            let Ok(names) = dir.names() else {
                continue;
            };
            let dir = Arc::new(dir);
            for name in names {
                if let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".lock")) {
                    markers.push((Arc::clone(&dir), id.to_string()));
                }
            }
        }
        markers
    }

    /// Whether an import died while filling a layer: a marker nobody holds, which a reader
    /// hands to the crash cleanup as it does an incomplete record.
    pub(super) fn has_dead_imports(&self) -> bool {
        self.staging_markers().iter().any(|(dir, id)| {
            open_marker(dir, id)
                .and_then(|marker| try_lock(&marker))
                .unwrap_or(false)
        })
    }

    /// Step 2 (module docs): applies the archive to the staged layer, its tar-split
    /// streamed to the staging folder, everything flushed. Holds no lock.
    pub(super) fn fill_staged(
        &self,
        staged: &mut StagedLayer,
        diff: &mut (dyn Read + Send),
    ) -> Result<(), StoreError> {
        let tarsplit = staged.tar_split();
        // An import records the archive's sizes, not the driver's measure of its tree.
        self.apply_archive(&mut staged.record, diff, &tarsplit, true)
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::super::test_support::{named, tar_with, TestRoot};
    use super::super::{Store, StoreError};
    use super::StagedLayer;

    fn stage(store: &Store, parent: Option<&str>, name: &str) -> StagedLayer {
        store
            .write(|ctx| ctx.stage_layer(parent, &named(&[name]), false))
            .unwrap()
    }

    fn commit(store: &Store, mut staged: StagedLayer, tar: &[u8]) -> Result<(), StoreError> {
        let filled = store.fill_staged(&mut staged, &mut &tar[..]);
        store
            .write(|ctx| ctx.commit_staged(staged, filled))
            .map(|_| ())
    }

    fn driver_layers(root: &TestRoot) -> usize {
        std::fs::read_dir(root.graph("testfs/dir")).unwrap().count()
    }

    fn markers(root: &TestRoot) -> usize {
        std::fs::read_dir(root.graph("testfs-layers/staging"))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    #[test]
    fn a_layer_being_filled_is_invisible_and_the_store_stays_usable() {
        let root = TestRoot::new();
        let importer = root.open();
        let staged = stage(&importer, None, "filling");
        // Another store (as another process would): reads and writes, and its crash cleanup
        // leaves the held layer alone.
        let other = root.open();
        assert!(other.layers().unwrap().is_empty(), "no record yet");
        other.create_layer(None, &named(&["meanwhile"])).unwrap();
        assert_eq!(driver_layers(&root), 2, "the staged layer's data is kept");
        commit(&importer, staged, &tar_with(&[("a", b"a\n")])).unwrap();
        let names: Vec<Vec<String>> = other
            .layers()
            .unwrap()
            .into_iter()
            .map(|l| l.names)
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        let filled = other.layer("filling").unwrap();
        assert!(!filled.uncompressed_digest.is_empty());
        assert!(root
            .graph(&format!("testfs-layers/{}.tar-split.gz", filled.id))
            .exists());
        assert_eq!(markers(&root), 0);
    }

    #[test]
    fn a_dead_importers_layer_is_removed_by_the_next_writer() {
        let root = TestRoot::new();
        let store = root.open();
        let staged = stage(&store, None, "dead");
        let id = staged.record.id.clone();
        // Dropping the staged layer closes its marker, as the importer's death would.
        drop(staged);
        assert_eq!(driver_layers(&root), 1);
        root.open().create_layer(None, &named(&["next"])).unwrap();
        assert_eq!(driver_layers(&root), 1, "only the new layer's data is left");
        assert!(!root.graph(&format!("testfs/dir/{id}")).exists());
        assert_eq!(markers(&root), 0);
    }

    #[test]
    fn a_marker_left_after_the_commit_keeps_its_layer() {
        let root = TestRoot::new();
        let store = root.open();
        let staged = stage(&store, None, "kept");
        let marker = staged.dir.path_of(&super::marker_name(&staged.record.id));
        commit(&store, staged, &tar_with(&[("a", b"a\n")])).unwrap();
        // As if the process died after the record was written, before the marker went.
        std::fs::write(&marker, b"").unwrap();
        root.open().create_layer(None, &named(&["next"])).unwrap();
        assert!(store.layer("kept").is_ok());
        assert_eq!(driver_layers(&root), 2);
        assert_eq!(markers(&root), 0);
    }

    #[test]
    fn the_commit_fails_cleanly_when_the_store_changed_meanwhile() {
        let root = TestRoot::new();
        let store = root.open();
        let tar = tar_with(&[("a", b"a\n")]);

        // The parent was deleted while its child was filled.
        let parent = store.create_layer(None, &named(&["parent"])).unwrap();
        let staged = stage(&store, Some("parent"), "child");
        root.open().delete_layer(&parent.id).unwrap();
        let err = commit(&store, staged, &tar).unwrap_err();
        assert!(matches!(err, StoreError::LayerUnknown), "{err:?}");

        // The name was taken meanwhile.
        let staged = stage(&store, None, "wanted");
        root.open().create_layer(None, &named(&["wanted"])).unwrap();
        let err = commit(&store, staged, &tar).unwrap_err();
        assert!(matches!(err, StoreError::DuplicateName), "{err:?}");

        // Nothing of either is left: one layer (the name's taker), no marker, no tar-split.
        assert_eq!(store.layers().unwrap().len(), 1);
        assert_eq!(driver_layers(&root), 1);
        assert_eq!(markers(&root), 0);
    }

    #[test]
    fn a_failed_fill_leaves_nothing() {
        let root = TestRoot::new();
        let store = root.open();
        let staged = stage(&store, None, "broken");
        let err = commit(&store, staged, b"not a tar at all, far too short").unwrap_err();
        assert!(!err.to_string().is_empty());
        assert!(store.layers().unwrap().is_empty());
        assert_eq!(driver_layers(&root), 0);
        assert_eq!(markers(&root), 0);
    }

    #[test]
    fn two_imports_of_one_id_cannot_both_stage() {
        let root = TestRoot::new();
        let store = root.open();
        let opts = crate::store::LayerOptions {
            id: Some("c0ffee".to_string()),
            ..Default::default()
        };
        let first = store
            .write(|ctx| ctx.stage_layer(None, &opts, false))
            .unwrap();
        let second = root.open().write(|ctx| ctx.stage_layer(None, &opts, false));
        assert!(matches!(second, Err(StoreError::DuplicateId)), "{second:?}");
        commit(&store, first, &tar_with(&[("a", b"a\n")])).unwrap();
        assert!(store.layer("c0ffee").is_ok());
    }
}
