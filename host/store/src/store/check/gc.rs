//! Garbage collection (upstream's `GarbageCollect`): what no record accounts for, removed.

use std::collections::BTreeSet;

use crate::store::files::remove_path;
use crate::store::layers::find_layer;
use crate::store::{Ctx, StoreError};

impl Ctx<'_> {
    /// Removes driver layers, tar-split files and big-data directories that no record
    /// accounts for (upstream's `GarbageCollect`).
    pub(super) fn garbage_collect(&mut self) -> Result<Vec<String>, StoreError> {
        let mut removed = Vec::new();
        let being_filled = self.layers_being_filled();
        if let Ok(on_disk) = self.driver().list_layers() {
            for id in on_disk {
                if find_layer(self.st, &id).is_none() && !being_filled.contains(&id) {
                    self.driver()
                        .remove(&id)
                        .map_err(|e| StoreError::driver(format!("removing layer {id}"), e))?;
                    removed.push(id);
                }
            }
        }
        let mut layer_dirs = vec![self.store.layers_dir.path().to_path_buf()];
        layer_dirs.extend(
            self.store
                .image_store_layers_dir
                .as_ref()
                .map(|d| d.path().to_path_buf()),
        );
        for dir in layer_dirs {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let id = name.strip_suffix(".tar-split.gz").unwrap_or(&name);
                let is_layer_file = name.ends_with(".tar-split.gz") || entry.path().is_dir();
                if !is_layer_file
                    || name.starts_with('.')
                    || name == "tmp"
                    || name == crate::store::staged::STAGING_DIR
                {
                    continue;
                }
                if !self.st.layers.has_id(id) {
                    remove_path(&entry.path())?;
                }
            }
        }
        for (dir, known) in [
            (
                self.store.images_dir.path().to_path_buf(),
                self.st
                    .images
                    .records
                    .iter()
                    .map(|i| i.id.clone())
                    .collect::<BTreeSet<_>>(),
            ),
            (
                self.store.containers_dir.path().to_path_buf(),
                self.st
                    .containers
                    .records
                    .iter()
                    .map(|c| c.id.clone())
                    .collect(),
            ),
        ] {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if entry.path().is_dir() && !name.starts_with('.') && !known.contains(&name) {
                    remove_path(&entry.path())?;
                }
            }
        }
        Ok(removed)
    }
}
