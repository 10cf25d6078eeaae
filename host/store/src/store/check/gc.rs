//! Garbage collection (upstream's `GarbageCollect`): what no record accounts for, removed.

use std::collections::BTreeSet;

use crate::store::files::remove_all_in;
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
        let mut layer_dirs = vec![&self.store.layers_dir];
        layer_dirs.extend(&self.store.image_store_layers_dir);
        for dir in layer_dirs {
            let Ok(names) = dir.names() else {
                continue;
            };
            for name in names {
                let text = name.to_string_lossy();
                let id = text.strip_suffix(".tar-split.gz").unwrap_or(&text);
                let is_layer_file = text.ends_with(".tar-split.gz") || dir.is_dir(&name);
                if !is_layer_file
                    || text.starts_with('.')
                    || text == "tmp"
                    || text == crate::store::staged::STAGING_DIR
                {
                    continue;
                }
                if !self.st.layers.has_id(id) {
                    remove_all_in(dir, &name)?;
                }
            }
        }
        for (dir, known) in [
            (
                &self.store.images_dir,
                self.st
                    .images
                    .records
                    .iter()
                    .map(|i| i.id.clone())
                    .collect::<BTreeSet<_>>(),
            ),
            (
                &self.store.containers_dir,
                self.st
                    .containers
                    .records
                    .iter()
                    .map(|c| c.id.clone())
                    .collect(),
            ),
        ] {
            let Ok(names) = dir.names() else {
                continue;
            };
            for name in names {
                let text = name.to_string_lossy();
                if !text.starts_with('.') && !known.contains(&*text) && dir.is_dir(&name) {
                    remove_all_in(dir, &name)?;
                }
            }
        }
        Ok(removed)
    }
}
