//! The store: the public API the CLI calls (docs/architecture.md follows an import through
//! it).
//!
//! A `Store` holds the graph driver, the lock files and the loaded records of the layer,
//! image and container stores. Every operation takes the locks in upstream's order
//! (storage.lock, layers.lock, mountpoints.lock, images.lock, containers.lock): reads take
//! them shared, and anything that changes records or calls the driver takes them all
//! exclusively. Records are reloaded whenever a lock's last-write token or a JSON file's
//! mtime says another process (or another `Store`) wrote.
//!
//! One job per submodule:
//! - `open`: directories, lock files, record sets and the driver;
//! - `locking`: reads under shared locks, writes under every lock, saves that tell other
//!   processes to reload;
//! - `layers`, `images`, `containers`: creating, finding and deleting each kind;
//! - `names`: a name of any kind (kinds, names, metadata, `delete`);
//! - `big_data`, `mounts`, `diff`: big-data items, mount counts, archives in and out;
//! - `check`: finding and repairing damage, `gc` (one submodule per kind of check, and
//!   `check::tree`: a mounted layer against its archives); `dedup`: which layers `dedup`
//!   hands the driver;
//! - `files`: the small filesystem helpers they share; `options`: what callers pass in.

use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::config::StoreOptions;
use crate::containers::ContainerRecord;
pub use crate::error::StoreError;
use crate::images::ImageRecord;
use crate::layers::LayerRecord;
use crate::lock::LockFile;
use crate::records::RecordSet;
use crate::store_dir::{DirFile, StoreDir};
use storage_driver::syscalls::Syscalls;
use storage_driver::GraphDriver;

mod big_data;
mod check;
mod containers;
mod dedup;
mod diff;
mod files;
mod images;
mod layers;
mod locking;
mod mapped;
mod mounts;
mod names;
mod open;
mod options;
mod staged;

pub use check::{CheckOptions, CheckReport};
pub use diff::DiffCompression;
pub use images::{DeleteImageReport, ImageContent};
pub use options::{ContainerOptions, ImageOptions, LayerOptions, MountOptions};

/// The kinds of object a store keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A layer.
    Layer,
    /// An image.
    Image,
    /// A container.
    Container,
}

/// The driver state and locks of one read-only (additional) image store.
struct ReadOnlyStore {
    /// `<root>/<drv>-layers`, held open if the store has one (its records, tar-splits and
    /// layers' big data are read under it).
    layers_dir: Option<Arc<StoreDir>>,
    /// `<root>/<drv>-images`, held open if the store has one.
    images_dir: Option<Arc<StoreDir>>,
    layers_lock: Option<LockFile>,
    images_lock: Option<LockFile>,
}

/// The records of every store, loaded under the locks.
struct State {
    layers: RecordSet<LayerRecord>,
    images: RecordSet<ImageRecord>,
    containers: RecordSet<ContainerRecord>,
    ro_layers: Vec<RecordSet<LayerRecord>>,
    ro_images: Vec<RecordSet<ImageRecord>>,
    /// With a split image store, the graph root's own images: an additional image store
    /// that stays writable (upstream adds the graph root to the image stores).
    graph_images: Option<RecordSet<ImageRecord>>,
}

/// An open store.
pub struct Store {
    opts: StoreOptions,
    driver_name: String,
    driver: Box<dyn GraphDriver>,
    graph_lock: LockFile,
    layers_lock: LockFile,
    /// `<imagestore>/<drv>-layers/layers.lock` with a split image store.
    image_store_layers_lock: Option<LockFile>,
    mount_lock: LockFile,
    images_lock: LockFile,
    /// `<graphroot>/<drv>-images/images.lock` with a split image store.
    graph_images_lock: Option<LockFile>,
    containers_lock: LockFile,
    read_only_stores: Vec<ReadOnlyStore>,
    /// The driver's home, held open to flush the filesystem a layer's files are on.
    driver_home: Arc<StoreDir>,
    /// `<imagestore>/<drv>` with a split image store: the home of the image layers.
    image_store_driver_home: Option<Arc<StoreDir>>,
    layers_dir: Arc<StoreDir>,
    /// `<imagestore>/<drv>-layers` with a split image store.
    image_store_layers_dir: Option<Arc<StoreDir>>,
    images_dir: Arc<StoreDir>,
    /// `<graphroot>/<drv>-images` with a split image store.
    graph_images_dir: Option<Arc<StoreDir>>,
    containers_dir: Arc<StoreDir>,
    /// `<runroot>/<drv>-containers`: the containers' run-time folders (and, in transient
    /// mode, their records).
    run_containers_dir: Arc<StoreDir>,
    /// `<runroot>/<drv>-layers/mountpoints.json`.
    mount_points: DirFile,
    state: Mutex<State>,
    /// The system calls that decide durability (`syncfs` before a layer is complete).
    syscalls: std::sync::Arc<dyn Syscalls>,
}

/// The records of a store, borrowed for the length of one read
/// ([`Store::with_records`]): listings print them without copying them.
pub struct RecordsView<'a> {
    st: &'a State,
    need: locking::Need,
}

impl<'a> RecordsView<'a> {
    /// Every layer, in creation order, the writable store's first.
    pub fn layers(&self) -> Vec<&'a LayerRecord> {
        self.st
            .layer_sets()
            .flat_map(|s| s.records.iter())
            .collect()
    }

    /// Every image, in creation order, the writable store's first; none unless asked for.
    pub fn images(&self) -> Vec<&'a ImageRecord> {
        if !self.need.images {
            return Vec::new();
        }
        self.st
            .image_sets()
            .flat_map(|s| s.records.iter())
            .collect()
    }

    /// Every container, in creation order; none unless asked for.
    pub fn containers(&self) -> &'a [ContainerRecord] {
        if !self.need.containers {
            return &[];
        }
        &self.st.containers.records
    }
}

/// One write operation: the store and its loaded records, all locks held.
struct Ctx<'a> {
    store: &'a Store,
    st: &'a mut State,
}

impl State {
    /// The layer record sets, the writable one first.
    fn layer_sets(&self) -> impl Iterator<Item = &RecordSet<LayerRecord>> {
        std::iter::once(&self.layers).chain(&self.ro_layers)
    }

    /// The image record sets, the writable one first, then the graph root's of a split
    /// store, then the read-only ones.
    fn image_sets(&self) -> impl Iterator<Item = &RecordSet<ImageRecord>> {
        std::iter::once(&self.images)
            .chain(&self.graph_images)
            .chain(&self.ro_images)
    }
}

impl Store {
    /// The graph root.
    pub fn graph_root(&self) -> &Path {
        &self.opts.graph_root
    }
    /// The run root.
    pub fn run_root(&self) -> &Path {
        &self.opts.run_root
    }
    /// The driver's name.
    pub fn driver_name(&self) -> &str {
        &self.driver_name
    }
    /// The options the store was opened with.
    pub fn options(&self) -> &StoreOptions {
        &self.opts
    }

    /// Driver status pairs.
    pub fn status(&self) -> Result<Vec<(String, String)>, StoreError> {
        Ok(self.driver.status())
    }

    /// Runs `f` over the records of the layers and of the other `kinds` asked for, loaded
    /// under one read and borrowed, not copied: only the files of those kinds are read.
    pub fn with_records<R>(
        &self,
        kinds: &[Kind],
        f: impl FnOnce(&RecordsView<'_>) -> R,
    ) -> Result<R, StoreError> {
        let need = locking::Need {
            layers: true,
            images: kinds.contains(&Kind::Image),
            containers: kinds.contains(&Kind::Container),
        };
        self.read_needing(need, |st| Ok(f(&RecordsView { st, need })))
    }

    /// Forgets the loaded records without freeing them, for a process about to exit: the
    /// memory goes back with the process. Freeing a store of 40k records one allocation
    /// at a time was a fifth of a `layers` command. The next operation loads them again.
    pub fn forget_records(&self) {
        fn forget<T: crate::records::Record>(set: &mut RecordSet<T>) {
            std::mem::forget(std::mem::take(&mut set.records));
            set.invalidate();
        }
        let mut st = self.state();
        let st = &mut *st;
        forget(&mut st.layers);
        forget(&mut st.images);
        forget(&mut st.containers);
        st.ro_layers.iter_mut().for_each(forget);
        st.ro_images.iter_mut().for_each(forget);
        st.graph_images.iter_mut().for_each(forget);
    }

    /// Deletes every container, image and layer.
    pub fn wipe(&self) -> Result<(), StoreError> {
        self.write(|ctx| {
            let containers: Vec<String> = ctx
                .st
                .containers
                .records
                .iter()
                .map(|c| c.id.clone())
                .collect();
            for id in containers {
                ctx.remove_container(&id)?;
            }
            let images: Vec<String> = ctx.st.images.records.iter().map(|i| i.id.clone()).collect();
            for id in images {
                ctx.remove_image(&id)?;
            }
            // Children before parents: newest first is always safe.
            let layers: Vec<String> = ctx
                .st
                .layers
                .records
                .iter()
                .rev()
                .map(|l| l.id.clone())
                .collect();
            for id in layers {
                ctx.remove_layer(&id)?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod error_tests;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
