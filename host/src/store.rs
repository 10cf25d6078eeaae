//! The store: the public API the CLI calls (see /work/notes/store-api.md).
//!
//! A `Store` holds the graph driver, the lock files and the loaded records of the layer,
//! image and container stores. Every operation takes the locks in upstream's order
//! (storage.lock, layers.lock, mountpoints.lock, images.lock, containers.lock): reads take
//! them shared, and anything that changes records or calls the driver takes them all
//! exclusively. Records are reloaded whenever a lock's last-write token or a JSON file's
//! mtime says another process (or another `Store`) wrote.

use std::io::{Read, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::compress::Compression;
use crate::config::StoreOptions;
use crate::containers::ContainerRecord;
use crate::driver::{
    ApplyDiffOpts, Change, CreateOpts, DriverError, DriverInit, DriverRegistry, GraphDriver,
    MountOpts,
};
pub use crate::error::StoreError;
use crate::gojson::now_rfc3339_nano;
use crate::idmap::IdMappings;
use crate::images::ImageRecord;
use crate::layers::{load_mount_points, save_mount_points, LayerRecord};
use crate::lock::{LockFile, LockGuard};
use crate::records::{big_data_file_name, dedup, random_id, sha256_digest, Record, RecordSet};

#[path = "check.rs"]
mod check;
pub use check::{CheckOptions, CheckReport};

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

/// How to create a layer.
#[derive(Debug, Clone, Default)]
pub struct LayerOptions {
    /// The ID to use (generated when `None`).
    pub id: Option<String>,
    /// Names of the new layer.
    pub names: Vec<String>,
    /// SELinux mount label.
    pub mount_label: String,
    /// Create an image-style (read-only) layer (`create-layer -r`).
    pub read_only: bool,
    /// ID mappings of the layer.
    pub id_mappings: IdMappings,
    /// Keep the record in the volatile file.
    pub volatile: bool,
}

/// How to create an image.
#[derive(Debug, Clone, Default)]
pub struct ImageOptions {
    /// The ID to use (generated when `None`).
    pub id: Option<String>,
    /// Names of the new image.
    pub names: Vec<String>,
    /// Free-form metadata.
    pub metadata: String,
    /// The image's primary digest.
    pub digest: Option<String>,
}

/// How to create a container.
#[derive(Debug, Clone, Default)]
pub struct ContainerOptions {
    /// The ID to use (generated when `None`).
    pub id: Option<String>,
    /// Names of the new container.
    pub names: Vec<String>,
    /// Free-form metadata.
    pub metadata: String,
    /// Keep the container and its layer in the volatile files.
    pub volatile: bool,
    /// ID mappings of the container.
    pub id_mappings: IdMappings,
    /// SELinux mount label.
    pub mount_label: String,
}

/// How to mount a layer.
#[derive(Debug, Clone, Default)]
pub struct MountOptions {
    /// SELinux mount label.
    pub mount_label: String,
    /// Mount read-only.
    pub read_only: bool,
    /// Driver mount options.
    pub options: Vec<String>,
}

/// The compression `diff` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffCompression {
    /// The compression recorded for the layer when it was imported.
    AsRecorded,
    /// No compression.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
    /// bzip2 (cannot be written).
    Bzip2,
    /// xz (cannot be written).
    Xz,
}

/// What `delete_image` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteImageReport {
    /// Layers deleted along with the image, top first.
    pub deleted_layers: Vec<String>,
}

/// The driver state and locks of one read-only (additional) image store.
struct ReadOnlyStore {
    root: PathBuf,
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
    containers_lock: LockFile,
    read_only_stores: Vec<ReadOnlyStore>,
    layers_dir: PathBuf,
    /// `<imagestore>/<drv>-layers` with a split image store.
    image_store_layers_dir: Option<PathBuf>,
    images_dir: PathBuf,
    containers_dir: PathBuf,
    mount_points_path: PathBuf,
    state: Mutex<State>,
}

fn mkdir_0700(path: &Path) -> Result<(), StoreError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|e| StoreError::io("creating directory", path, e))
}

fn lock_io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |e| StoreError::io("locking", path, e)
}

/// Removes a file or directory tree; a missing one is fine.
fn remove_path(path: &Path) -> Result<(), StoreError> {
    let result = match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    match result {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(StoreError::io("removing", path, e))
        }
        _ => Ok(()),
    }
}

fn incomplete(layer: &LayerRecord) -> bool {
    layer
        .flags
        .get(INCOMPLETE_FLAG)
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false)
}

const INCOMPLETE_FLAG: &str = "incomplete";

fn mappings_of(uids: &[crate::idmap::IdMap], gids: &[crate::idmap::IdMap]) -> IdMappings {
    IdMappings {
        uids: uids.to_vec(),
        gids: gids.to_vec(),
    }
}

impl Store {
    /// Creates directories, lock files and the driver (spec §1.1: before every command).
    pub fn open(opts: &StoreOptions, drivers: &DriverRegistry) -> Result<Store, StoreError> {
        let graph_root = &opts.graph_root;
        let run_root = &opts.run_root;
        mkdir_0700(graph_root)?;
        mkdir_0700(run_root)?;
        let driver = Self::init_driver(opts, drivers)?;
        let drv = driver.name().to_string();
        let layers_dir = graph_root.join(format!("{drv}-layers"));
        // With a split image store, images and read-only layers live there (spec §2.1).
        let image_store_layers_dir = opts
            .image_store
            .as_ref()
            .map(|is| is.join(format!("{drv}-layers")));
        let images_dir = match &opts.image_store {
            Some(is) => is.join(format!("{drv}-images")),
            None => graph_root.join(format!("{drv}-images")),
        };
        let containers_dir = graph_root.join(format!("{drv}-containers"));
        let run_layers_dir = run_root.join(format!("{drv}-layers"));
        let run_containers_dir = run_root.join(format!("{drv}-containers"));
        for dir in [&layers_dir, &images_dir, &containers_dir, &run_layers_dir] {
            mkdir_0700(dir)?;
        }
        mkdir_0700(&run_root.join(format!("{drv}-locks")))?;
        let open_lock = |path: PathBuf| {
            LockFile::open(&path, false).map_err(|e| StoreError::io("opening lock", path, e))
        };
        let graph_lock = open_lock(graph_root.join("storage.lock"))?;
        let _userns_lock = open_lock(graph_root.join("userns.lock"))?;
        let layers_lock = open_lock(layers_dir.join("layers.lock"))?;
        let image_store_layers_lock = match &image_store_layers_dir {
            Some(dir) => {
                mkdir_0700(dir)?;
                Some(open_lock(dir.join("layers.lock"))?)
            }
            None => None,
        };
        let mount_lock = open_lock(run_layers_dir.join("mountpoints.lock"))?;
        let images_lock = open_lock(images_dir.join("images.lock"))?;
        let (containers_lock, containers_json_dir) = if opts.transient_store {
            mkdir_0700(&run_containers_dir)?;
            (
                open_lock(run_containers_dir.join("containers.lock"))?,
                run_containers_dir.clone(),
            )
        } else {
            (
                open_lock(containers_dir.join("containers.lock"))?,
                containers_dir.clone(),
            )
        };
        let volatile_layers_dir = if opts.transient_store {
            &run_layers_dir
        } else {
            &layers_dir
        };
        let mut layers = RecordSet::new(
            layers_dir.join("layers.json"),
            Some(volatile_layers_dir.join("volatile-layers.json")),
        );
        if let Some(dir) = &image_store_layers_dir {
            layers = layers.with_image_store(dir.join("layers.json"));
        }
        let images = RecordSet::new(images_dir.join("images.json"), None);
        // In transient mode every container is volatile and its file is in the run root;
        // the stable file stays where upstream keeps it (and stays unused).
        let containers = RecordSet::new(
            containers_dir.join("containers.json"),
            Some(containers_json_dir.join("volatile-containers.json")),
        );
        let mut read_only_stores = Vec::new();
        let mut ro_layers = Vec::new();
        let mut ro_images = Vec::new();
        // A read-only store that is our own graph root would share our lock files and
        // deadlock against our own write locks; it adds nothing anyway.
        let own_root = std::fs::canonicalize(graph_root).unwrap_or_else(|_| graph_root.clone());
        for root in driver.additional_image_stores() {
            if std::fs::canonicalize(&root).unwrap_or_else(|_| root.clone()) == own_root {
                continue;
            }
            let ro_layers_dir = root.join(format!("{drv}-layers"));
            let ro_images_dir = root.join(format!("{drv}-images"));
            read_only_stores.push(ReadOnlyStore {
                root: root.clone(),
                layers_lock: LockFile::open(&ro_layers_dir.join("layers.lock"), true).ok(),
                images_lock: LockFile::open(&ro_images_dir.join("images.lock"), true).ok(),
            });
            ro_layers.push(RecordSet::new(ro_layers_dir.join("layers.json"), None));
            ro_images.push(RecordSet::new(ro_images_dir.join("images.json"), None));
        }
        Ok(Store {
            opts: opts.clone(),
            driver_name: drv,
            driver,
            graph_lock,
            layers_lock,
            image_store_layers_lock,
            mount_lock,
            images_lock,
            containers_lock,
            read_only_stores,
            mount_points_path: run_layers_dir.join("mountpoints.json"),
            layers_dir,
            image_store_layers_dir,
            images_dir,
            containers_dir,
            state: Mutex::new(State {
                layers,
                images,
                containers,
                ro_layers,
                ro_images,
            }),
        })
    }

    /// Starts the configured driver, or the first of the priority list that starts.
    fn init_driver(
        opts: &StoreOptions,
        drivers: &DriverRegistry,
    ) -> Result<Box<dyn GraphDriver>, StoreError> {
        let start = |name: &str| -> Result<Box<dyn GraphDriver>, StoreError> {
            let factory = drivers
                .factory(name)
                .ok_or_else(|| StoreError::DriverNotSupported {
                    name: name.to_string(),
                    root: opts.graph_root.clone(),
                })?;
            let init = DriverInit {
                home: opts.graph_root.join(name),
                graph_root: opts.graph_root.clone(),
                run_root: opts.run_root.clone(),
                image_store: opts.image_store.clone(),
                options: opts.driver_options.clone(),
                id_mappings: opts.id_mappings.clone(),
            };
            factory(&init).map_err(StoreError::DriverInit)
        };
        if !opts.driver_name.is_empty() {
            return start(&opts.driver_name);
        }
        // Like upstream: a driver whose home already exists wins, then the priority list.
        let existing: Vec<&str> = drivers
            .names()
            .filter(|n| opts.graph_root.join(n).is_dir())
            .collect();
        if let [only] = existing.as_slice() {
            return start(only);
        }
        let priority: Vec<String> = if opts.driver_priority.is_empty() {
            ["overlay", "btrfs", "zfs"]
                .iter()
                .map(|s| s.to_string())
                .collect()
        } else {
            opts.driver_priority.clone()
        };
        let mut last = None;
        for name in &priority {
            match start(name) {
                Ok(d) => return Ok(d),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(StoreError::DriverNotSupported {
            name: String::new(),
            root: opts.graph_root.clone(),
        }))
    }

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

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reloads whatever changed since our last look; call with the locks held.
    fn reload(&self, st: &mut State) -> Result<(), StoreError> {
        let layers_modified = self
            .layers_lock
            .modified()
            .map_err(lock_io(self.layers_lock.path()))?;
        let mounts_modified = self
            .mount_lock
            .modified()
            .map_err(lock_io(self.mount_lock.path()))?;
        let image_store_modified = match &self.image_store_layers_lock {
            Some(l) => l.modified().map_err(lock_io(l.path()))?,
            None => false,
        };
        if layers_modified || image_store_modified || mounts_modified || st.layers.needs_reload() {
            st.layers.load()?;
            // Duplicate names (hand edits, old bugs) go to the newest record; a writer
            // saves the fix.
            st.layers.resolve_duplicate_names();
            let mounts = load_mount_points(&self.mount_points_path)?;
            for layer in &mut st.layers.records {
                if let Some(m) = mounts.iter().find(|m| m.id == layer.id) {
                    layer.mount_point = m.path.clone();
                    layer.mount_count = m.count;
                }
            }
        }
        if self
            .images_lock
            .modified()
            .map_err(lock_io(self.images_lock.path()))?
            || st.images.needs_reload()
        {
            st.images.load()?;
            st.images.resolve_duplicate_names();
            for image in &mut st.images.records {
                image.recompute_digests();
            }
        }
        if self
            .containers_lock
            .modified()
            .map_err(lock_io(self.containers_lock.path()))?
            || st.containers.needs_reload()
        {
            st.containers.load()?;
            st.containers.resolve_duplicate_names();
        }
        for (i, ro) in self.read_only_stores.iter().enumerate() {
            let layers_modified = match &ro.layers_lock {
                Some(l) => l.modified().map_err(lock_io(l.path()))?,
                None => false,
            };
            if layers_modified || st.ro_layers[i].needs_reload() {
                st.ro_layers[i].load()?;
                for layer in &mut st.ro_layers[i].records {
                    layer.read_only = true;
                }
                // Nobody may clean up a read-only store: an incomplete layer there is an
                // error, as upstream reports it.
                if let Some(l) = st.ro_layers[i].records.iter().find(|l| incomplete(l)) {
                    let id = l.id.clone();
                    st.ro_layers[i].invalidate();
                    return Err(StoreError::Corrupt(format!(
                        "layer {id} in a read-only store is incomplete"
                    )));
                }
            }
            let images_modified = match &ro.images_lock {
                Some(l) => l.modified().map_err(lock_io(l.path()))?,
                None => false,
            };
            if images_modified || st.ro_images[i].needs_reload() {
                st.ro_images[i].load()?;
                for image in &mut st.ro_images[i].records {
                    image.read_only = true;
                    image.recompute_digests();
                }
            }
        }
        Ok(())
    }

    /// Runs `f` with every store's records loaded, under shared locks. Incomplete layers
    /// found on the way are first cleaned up under the write locks (spec §3.3).
    fn read<R>(&self, f: impl FnOnce(&State) -> Result<R, StoreError>) -> Result<R, StoreError> {
        let mut round = 0;
        loop {
            let _l = self
                .layers_lock
                .lock_shared()
                .map_err(lock_io(self.layers_lock.path()))?;
            let _is = match &self.image_store_layers_lock {
                Some(l) => Some(l.lock_shared().map_err(lock_io(l.path()))?),
                None => None,
            };
            let _m = self
                .mount_lock
                .lock_shared()
                .map_err(lock_io(self.mount_lock.path()))?;
            let _i = self
                .images_lock
                .lock_shared()
                .map_err(lock_io(self.images_lock.path()))?;
            let _c = self
                .containers_lock
                .lock_shared()
                .map_err(lock_io(self.containers_lock.path()))?;
            let _ro = self.lock_read_only_stores()?;
            let mut st = self.state();
            self.reload(&mut st)?;
            // The last round serves what is there rather than failing the read.
            if round < 2 && st.layers.records.iter().any(incomplete) {
                drop(st);
                drop((_ro, _c, _i, _m, _is, _l));
                self.write(|_| Ok(()))?;
                round += 1;
                continue;
            }
            return f(&st);
        }
    }

    fn lock_read_only_stores(&self) -> Result<Vec<LockGuard<'_>>, StoreError> {
        let mut guards = Vec::new();
        for ro in &self.read_only_stores {
            for lock in [&ro.layers_lock, &ro.images_lock].into_iter().flatten() {
                guards.push(lock.lock_shared().map_err(lock_io(lock.path()))?);
            }
        }
        Ok(guards)
    }

    /// Runs `f` with the driver lock and every write lock held, records loaded and crash
    /// leftovers cleaned up.
    fn write<R>(
        &self,
        f: impl FnOnce(&mut Ctx<'_>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let _g = self
            .graph_lock
            .lock_exclusive()
            .map_err(lock_io(self.graph_lock.path()))?;
        let _l = self
            .layers_lock
            .lock_exclusive()
            .map_err(lock_io(self.layers_lock.path()))?;
        let _is = match &self.image_store_layers_lock {
            Some(l) => Some(l.lock_exclusive().map_err(lock_io(l.path()))?),
            None => None,
        };
        let _m = self
            .mount_lock
            .lock_exclusive()
            .map_err(lock_io(self.mount_lock.path()))?;
        let _i = self
            .images_lock
            .lock_exclusive()
            .map_err(lock_io(self.images_lock.path()))?;
        let _c = self
            .containers_lock
            .lock_exclusive()
            .map_err(lock_io(self.containers_lock.path()))?;
        let _ro = self.lock_read_only_stores()?;
        let mut st = self.state();
        self.reload(&mut st)?;
        let mut ctx = Ctx {
            store: self,
            st: &mut st,
        };
        ctx.clean_up_crash_leftovers();
        f(&mut ctx)
    }
}

/// One write operation: the store and its loaded records, all locks held.
struct Ctx<'a> {
    store: &'a Store,
    st: &'a mut State,
}

impl Ctx<'_> {
    fn driver(&self) -> &dyn GraphDriver {
        self.store.driver.as_ref()
    }

    fn save_layers(&mut self) -> Result<(), StoreError> {
        self.store
            .layers_lock
            .record_write()
            .map_err(lock_io(self.store.layers_lock.path()))?;
        if let Some(l) = &self.store.image_store_layers_lock {
            l.record_write().map_err(lock_io(l.path()))?;
        }
        self.st.layers.save()
    }

    fn save_mounts(&mut self) -> Result<(), StoreError> {
        self.store
            .mount_lock
            .record_write()
            .map_err(lock_io(self.store.mount_lock.path()))?;
        save_mount_points(&self.store.mount_points_path, &self.st.layers.records)
    }

    fn save_images(&mut self) -> Result<(), StoreError> {
        self.store
            .images_lock
            .record_write()
            .map_err(lock_io(self.store.images_lock.path()))?;
        self.st.images.save()
    }

    fn save_containers(&mut self) -> Result<(), StoreError> {
        self.store
            .containers_lock
            .record_write()
            .map_err(lock_io(self.store.containers_lock.path()))?;
        self.st.containers.save()
    }

    /// Deletes layers left incomplete by a crash and stale temp dirs. Best effort: this
    /// must never make the command fail (spec §3.3).
    fn clean_up_crash_leftovers(&mut self) {
        let _ = remove_path(&self.store.layers_dir.join("tmp"));
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
        for id in &ids {
            crate::log::debug(&format!("Found incomplete layer {id:?}, deleting it"));
            let _ = self.driver().put(id);
            let _ = self.driver().remove(id);
            let _ = remove_path(&self.tar_split_path(id));
            let _ = remove_path(&self.layer_data_dir(id).join(id));
            self.st.layers.remove_id(id);
        }
        let _ = self.save_layers();
        let _ = self.save_mounts();
    }

    fn tar_split_path(&self, id: &str) -> PathBuf {
        self.layer_data_dir(id).join(format!("{id}.tar-split.gz"))
    }

    /// The `<drv>-layers` directory holding a RW-store layer's tar-split and big data.
    fn layer_data_dir(&self, id: &str) -> PathBuf {
        self.store.layer_data_dir(self.st, id)
    }

    /// A layer by ID/name/prefix in the RW store, then the read-only ones.
    fn find_layer(&self, name: &str) -> Option<LayerRecord> {
        find_layer(self.st, name)
    }

    fn rw_layer_index(&self, name: &str) -> Result<usize, StoreError> {
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

    /// Creates a layer record and its driver data; with `diff`, applies the archive.
    fn create_layer(
        &mut self,
        parent: Option<&str>,
        opts: &LayerOptions,
        writable: bool,
        diff: Option<&mut dyn Read>,
    ) -> Result<LayerRecord, StoreError> {
        let parent = match parent.filter(|p| !p.is_empty()) {
            Some(p) => Some(self.find_layer(p).ok_or(StoreError::LayerUnknown)?),
            None => None,
        };
        let id = match &opts.id {
            Some(id) if !id.is_empty() => id.clone(),
            _ => random_id(),
        };
        if self.st.layers.has_id(&id) || self.st.ro_layers.iter().any(|s| s.has_id(&id)) {
            return Err(StoreError::DuplicateId);
        }
        let names = dedup(&opts.names);
        if names.iter().any(|n| self.st.layers.has_name(n)) {
            return Err(StoreError::DuplicateName);
        }
        let mut record = LayerRecord {
            id: id.clone(),
            names,
            parent: parent.as_ref().map(|p| p.id.clone()).unwrap_or_default(),
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
        record
            .flags
            .insert(INCOMPLETE_FLAG.to_string(), serde_json::Value::Bool(true));
        // The record goes to disk before the driver creates anything, so a crash leaves
        // something the next writer knows to clean up.
        self.st.layers.records.push(record.clone());
        self.save_layers()?;
        match self.populate_layer(&mut record, writable, diff) {
            Ok(()) => {
                record.flags.remove(INCOMPLETE_FLAG);
                if let Some(i) = self.st.layers.find(&id) {
                    self.st.layers.records[i] = record.clone();
                }
                self.save_layers()?;
                Ok(record)
            }
            Err(e) => {
                let _ = self.driver().remove(&id);
                let _ = remove_path(&self.tar_split_path(&id));
                self.st.layers.remove_id(&id);
                let _ = self.save_layers();
                Err(e)
            }
        }
    }

    fn populate_layer(
        &mut self,
        record: &mut LayerRecord,
        writable: bool,
        diff: Option<&mut dyn Read>,
    ) -> Result<(), StoreError> {
        let parent = (!record.parent.is_empty()).then_some(record.parent.as_str());
        let opts = CreateOpts {
            mount_label: record.mount_label.clone(),
            storage_opt: Default::default(),
            id_mappings: mappings_of(&record.uid_map, &record.gid_map),
        };
        let created = if writable {
            self.driver().create_read_write(&record.id, parent, &opts)
        } else {
            self.driver().create(&record.id, parent, &opts)
        };
        created.map_err(|e| StoreError::driver(format!("creating layer {}", record.id), e))?;
        // A child whose mapping differs from its parent's starts as a copy owned for the
        // parent's mapping: re-own it, unless the driver maps at mount time (upstream's
        // layerStore.create does the same).
        let parent_mappings = match parent.and_then(|p| find_layer(self.st, p)) {
            Some(p) => mappings_of(&p.uid_map, &p.gid_map),
            None => IdMappings::default(),
        };
        if parent_mappings != opts.id_mappings
            && !self.driver().supports_shifting(&opts.id_mappings)
        {
            match self.driver().update_layer_id_map(
                &record.id,
                &parent_mappings,
                &opts.id_mappings,
                &record.mount_label,
            ) {
                Ok(()) => {}
                Err(DriverError::Unsupported(what)) => crate::log::debug(&format!(
                    "layer {}: driver does not support {what}",
                    record.id
                )),
                Err(e) => {
                    return Err(StoreError::driver(
                        format!("changing the ID mapping of layer {}", record.id),
                        e,
                    ))
                }
            }
        }
        if let Some(diff) = diff {
            self.apply_diff_to(record, diff)?;
        }
        Ok(())
    }

    /// Applies an archive to an existing layer: digests, tar-split, driver apply, then a
    /// flush of the driver's filesystem before the record says the layer is complete.
    fn apply_diff_to(
        &mut self,
        record: &mut LayerRecord,
        diff: &mut dyn Read,
    ) -> Result<u64, StoreError> {
        let parent = (!record.parent.is_empty()).then(|| record.parent.clone());
        let opts = ApplyDiffOpts {
            id_mappings: mappings_of(&record.uid_map, &record.gid_map),
            mount_label: record.mount_label.clone(),
            ignore_chown_errors: false,
            force_mask: None,
        };
        let driver = self.store.driver.as_ref();
        let id = record.id.clone();
        let mut applied = 0u64;
        let mut apply = |tar: &mut dyn Read| -> Result<u64, DriverError> {
            let n = driver.apply_diff(&id, parent.as_deref(), tar, &opts)?;
            applied = n;
            Ok(n)
        };
        let mut tarsplit: Vec<u8> = Vec::new();
        let summary = crate::ingest::ingest_layer(diff, &mut tarsplit, &mut apply)
            .map_err(|e| StoreError::Archive(e.to_string()))?;
        let path = self.tar_split_path(&record.id);
        crate::atomic::write_file(&path, &tarsplit, true)
            .map_err(|e| StoreError::io("writing", path.as_path(), e))?;
        sync_filesystem(self.driver().home());
        record.compressed_digest = summary.compressed_digest;
        record.compressed_size = summary.compressed_size as i64;
        record.uncompressed_digest = summary.uncompressed_digest;
        record.uncompressed_size = summary.uncompressed_size as i64;
        record.compression = summary.compression as u8;
        record.uids = summary.uids;
        record.gids = summary.gids;
        Ok(applied)
    }

    /// Removes a RW layer's data and record (after marking it incomplete, so a crash in the
    /// middle is finished by the next writer). No safety checks.
    fn remove_layer(&mut self, id: &str) -> Result<(), StoreError> {
        let Some(i) = self.st.layers.find(id) else {
            return Err(StoreError::LayerUnknown);
        };
        let id = self.st.layers.records[i].id.clone();
        if self.st.layers.records[i].mount_count > 0 {
            let _ = self.driver().put(&id);
            self.st.layers.records[i].mount_count = 0;
            self.st.layers.records[i].mount_point.clear();
            self.save_mounts()?;
        }
        self.st.layers.records[i]
            .flags
            .insert(INCOMPLETE_FLAG.to_string(), serde_json::Value::Bool(true));
        self.save_layers()?;
        self.driver()
            .remove(&id)
            .map_err(|e| StoreError::driver(format!("removing layer {id}"), e))?;
        remove_path(&self.tar_split_path(&id))?;
        remove_path(&self.layer_data_dir(&id).join(&id))?;
        self.st.layers.remove_id(&id);
        self.save_layers()
    }

    /// Why a layer cannot be deleted, if something uses it.
    fn layer_in_use(&self, id: &str) -> Option<StoreError> {
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
                image: image.id.clone(),
            });
        }
        if let Some(c) = self.st.containers.records.iter().find(|c| c.layer == id) {
            return Some(StoreError::LayerUsedByContainer {
                container: c.id.clone(),
            });
        }
        None
    }

    fn remove_container(&mut self, id: &str) -> Result<(), StoreError> {
        let Some(c) = self.st.containers.get(id).cloned() else {
            return Err(StoreError::ContainerUnknown);
        };
        if !c.layer.is_empty() && self.st.layers.has_id(&c.layer) {
            self.remove_layer(&c.layer)?;
        }
        self.st.containers.remove_id(&c.id);
        self.save_containers()?;
        remove_path(&self.store.containers_dir.join(&c.id))?;
        remove_path(&self.store.run_containers_dir().join(&c.id))?;
        Ok(())
    }

    fn remove_image(&mut self, id: &str) -> Result<(), StoreError> {
        let Some(image) = self.st.images.get(id).cloned() else {
            return Err(StoreError::ImageUnknown);
        };
        self.st.images.remove_id(&image.id);
        self.save_images()?;
        remove_path(&self.store.images_dir.join(&image.id))
    }

    /// Mounts a layer (driver `get` only on the first mount).
    fn mount_layer(&mut self, id: &str, opts: &MountOpts) -> Result<PathBuf, StoreError> {
        let i = self.rw_layer_index(id)?;
        let layer = &self.st.layers.records[i];
        if layer.mount_count > 0 && !layer.mount_point.is_empty() {
            self.st.layers.records[i].mount_count += 1;
            let path = PathBuf::from(&self.st.layers.records[i].mount_point);
            self.save_mounts()?;
            return Ok(path);
        }
        let mut opts = opts.clone();
        opts.id_mappings = mappings_of(&layer.uid_map, &layer.gid_map);
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
    fn unmount_layer(&mut self, id: &str, force: bool) -> Result<bool, StoreError> {
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

    /// The layer a layer-or-container name stands for (layers first).
    fn layer_or_container_layer(&self, name: &str) -> Result<String, StoreError> {
        if let Some(l) = self.st.layers.get(name) {
            return Ok(l.id.clone());
        }
        if let Some(c) = self.st.containers.get(name) {
            return Ok(c.layer.clone());
        }
        if let Some(l) = self.find_layer(name) {
            return Ok(l.id);
        }
        Err(StoreError::LayerUnknown)
    }
}

fn find_layer(st: &State, name: &str) -> Option<LayerRecord> {
    if let Some(l) = st.layers.get(name) {
        return Some(l.clone());
    }
    st.ro_layers.iter().find_map(|s| s.get(name).cloned())
}

fn find_image(st: &State, name: &str) -> Option<ImageRecord> {
    if let Some(i) = st.images.get(name) {
        return Some(i.clone());
    }
    st.ro_images.iter().find_map(|s| s.get(name).cloned())
}

/// Flushes the filesystem holding `path`, so layer data is on disk before the record that
/// calls the layer complete. Best effort: a failure to sync is not a failure to import.
fn sync_filesystem(path: &Path) {
    if let Ok(dir) = std::fs::File::open(path) {
        let _ = rustix::fs::syncfs(&dir);
    }
}

impl Store {
    fn run_containers_dir(&self) -> PathBuf {
        self.opts
            .run_root
            .join(format!("{}-containers", self.driver_name))
    }

    /// Driver status pairs.
    pub fn status(&self) -> Result<Vec<(String, String)>, StoreError> {
        Ok(self.driver.status())
    }

    /// Every layer, creation order, read-write store first.
    pub fn layers(&self) -> Result<Vec<LayerRecord>, StoreError> {
        self.read(|st| {
            let mut all = st.layers.records.clone();
            for s in &st.ro_layers {
                all.extend(s.records.iter().cloned());
            }
            Ok(all)
        })
    }

    /// The layer with this ID, name or ID prefix.
    pub fn layer(&self, name: &str) -> Result<LayerRecord, StoreError> {
        self.read(|st| find_layer(st, name).ok_or(StoreError::LayerUnknown))
    }

    /// Every image.
    pub fn images(&self) -> Result<Vec<ImageRecord>, StoreError> {
        self.read(|st| {
            let mut all = st.images.records.clone();
            for s in &st.ro_images {
                all.extend(s.records.iter().cloned());
            }
            Ok(all)
        })
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

    /// Every container.
    pub fn containers(&self) -> Result<Vec<ContainerRecord>, StoreError> {
        self.read(|st| Ok(st.containers.records.clone()))
    }

    /// The container with this ID, name or ID prefix.
    pub fn container(&self, name: &str) -> Result<ContainerRecord, StoreError> {
        self.read(|st| {
            st.containers
                .get(name)
                .cloned()
                .ok_or(StoreError::ContainerUnknown)
        })
    }

    /// Which kind `name` resolves to first (layer, image, container).
    pub fn exists(&self, name: &str) -> Result<Option<Kind>, StoreError> {
        Ok(self.kinds_of(name)?.first().copied())
    }

    /// Every kind `name` resolves to.
    pub fn kinds_of(&self, name: &str) -> Result<Vec<Kind>, StoreError> {
        self.read(|st| {
            let mut kinds = Vec::new();
            if find_layer(st, name).is_some() {
                kinds.push(Kind::Layer);
            }
            if find_image(st, name).is_some() {
                kinds.push(Kind::Image);
            }
            if st.containers.get(name).is_some() {
                kinds.push(Kind::Container);
            }
            Ok(kinds)
        })
    }

    /// Creates an empty layer (or a copy of its parent).
    pub fn create_layer(
        &self,
        parent: Option<&str>,
        opts: &LayerOptions,
    ) -> Result<LayerRecord, StoreError> {
        self.write(|ctx| ctx.create_layer(parent, opts, !opts.read_only, None))
    }

    /// Creates a layer and applies a (possibly compressed) archive to it.
    pub fn import_layer(
        &self,
        parent: Option<&str>,
        opts: &LayerOptions,
        diff: &mut dyn Read,
    ) -> Result<LayerRecord, StoreError> {
        self.write(|ctx| ctx.create_layer(parent, opts, !opts.read_only, Some(diff)))
    }

    /// Creates an image.
    pub fn create_image(
        &self,
        top_layer: Option<&str>,
        opts: &ImageOptions,
    ) -> Result<ImageRecord, StoreError> {
        self.write(|ctx| {
            let top = match top_layer.filter(|t| !t.is_empty()) {
                Some(t) => ctx.find_layer(t).ok_or(StoreError::LayerUnknown)?.id,
                None => String::new(),
            };
            let id = match &opts.id {
                Some(id) if !id.is_empty() => id.clone(),
                _ => random_id(),
            };
            if ctx.st.images.has_id(&id) || ctx.st.ro_images.iter().any(|s| s.has_id(&id)) {
                return Err(StoreError::DuplicateId);
            }
            let names = dedup(&opts.names);
            if names.iter().any(|n| ctx.st.images.has_name(n)) {
                return Err(StoreError::DuplicateName);
            }
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
                let img = find_image(ctx.st, image).ok_or(StoreError::ImageUnknown)?;
                let top = (!img.top_layer.is_empty()).then_some(img.top_layer);
                (img.id, top)
            };
            let id = match &opts.id {
                Some(id) if !id.is_empty() => id.clone(),
                _ => random_id(),
            };
            if ctx.st.containers.has_id(&id) {
                return Err(StoreError::DuplicateId);
            }
            let names = dedup(&opts.names);
            if names.iter().any(|n| ctx.st.containers.has_name(n)) {
                return Err(StoreError::DuplicateName);
            }
            let volatile = opts.volatile || self.opts.transient_store;
            let layer_opts = LayerOptions {
                id: None,
                names: Vec::new(),
                mount_label: opts.mount_label.clone(),
                read_only: false,
                id_mappings: opts.id_mappings.clone(),
                volatile,
            };
            let layer = ctx.create_layer(top.as_deref(), &layer_opts, true, None)?;
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
            let dirs = [
                self.containers_dir.join(&id).join("userdata"),
                self.run_containers_dir().join(&id).join("userdata"),
            ];
            let saved = (|| {
                for dir in &dirs {
                    mkdir_0700(dir)?;
                }
                ctx.st.containers.records.push(record.clone());
                ctx.save_containers()
            })();
            if let Err(e) = saved {
                ctx.st.containers.remove_id(&id);
                let _ = ctx.remove_layer(&layer.id);
                let _ = remove_path(&self.containers_dir.join(&id));
                let _ = remove_path(&self.run_containers_dir().join(&id));
                return Err(e);
            }
            Ok(record)
        })
    }

    /// Deletes a layer, image or container without safety checks.
    pub fn delete(&self, name: &str) -> Result<(), StoreError> {
        self.write(|ctx| {
            if ctx.st.layers.find(name).is_some() {
                return ctx.remove_layer(name);
            }
            if ctx.st.images.find(name).is_some() {
                return ctx.remove_image(name);
            }
            if ctx.st.containers.find(name).is_some() {
                return ctx.remove_container(name);
            }
            Err(StoreError::NotAnId)
        })
    }

    /// Deletes a layer nothing uses. Unlike upstream (spec §7.1), the checks also apply
    /// when the layer is given by name.
    pub fn delete_layer(&self, name: &str) -> Result<(), StoreError> {
        self.write(|ctx| {
            let i = ctx.rw_layer_index(name)?;
            let id = ctx.st.layers.records[i].id.clone();
            if let Some(e) = ctx.layer_in_use(&id) {
                return Err(e);
            }
            ctx.remove_layer(&id)
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

    /// Deletes a container, its layer and its directories.
    pub fn delete_container(&self, name: &str) -> Result<(), StoreError> {
        self.write(|ctx| {
            if ctx.st.containers.find(name).is_none() {
                return Err(StoreError::NotAContainer);
            }
            ctx.remove_container(name)
        })
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
            self.graph_lock
                .record_write()
                .map_err(lock_io(self.graph_lock.path()))?;
            ctx.driver()
                .cleanup()
                .map_err(|e| StoreError::driver("shutting down the driver", e))?;
            Ok(mounted)
        })
    }

    /// Metadata of a layer, image or container (in that lookup order).
    pub fn metadata(&self, name: &str) -> Result<String, StoreError> {
        self.read(|st| {
            if let Some(l) = find_layer(st, name) {
                return Ok(l.metadata);
            }
            if let Some(i) = find_image(st, name) {
                return Ok(i.metadata);
            }
            if let Some(c) = st.containers.get(name) {
                return Ok(c.metadata.clone());
            }
            Err(StoreError::NotAnId)
        })
    }

    /// Sets the metadata of a layer, image or container.
    pub fn set_metadata(&self, name: &str, metadata: &str) -> Result<(), StoreError> {
        self.write(|ctx| {
            if let Some(i) = ctx.st.layers.find(name) {
                ctx.st.layers.records[i].metadata = metadata.to_string();
                return ctx.save_layers();
            }
            if let Some(i) = ctx.st.images.find(name) {
                ctx.st.images.records[i].metadata = metadata.to_string();
                return ctx.save_images();
            }
            if let Some(i) = ctx.st.containers.find(name) {
                ctx.st.containers.records[i].metadata = metadata.to_string();
                return ctx.save_containers();
            }
            if find_layer(ctx.st, name).is_some() || find_image(ctx.st, name).is_some() {
                return Err(StoreError::ReadOnly {
                    what: "object",
                    id: name.to_string(),
                });
            }
            Err(StoreError::NotAnId)
        })
    }

    /// Names of a layer, image or container.
    pub fn names(&self, name: &str) -> Result<Vec<String>, StoreError> {
        self.read(|st| {
            if let Some(l) = find_layer(st, name) {
                return Ok(l.names);
            }
            if let Some(i) = find_image(st, name) {
                return Ok(i.names);
            }
            if let Some(c) = st.containers.get(name) {
                return Ok(c.names.clone());
            }
            Err(StoreError::NotAnId)
        })
    }

    /// Adds names; returns the resulting names.
    pub fn add_names(&self, name: &str, names: &[String]) -> Result<Vec<String>, StoreError> {
        self.update_names(name, names, NameOp::Add)
    }

    /// Removes names; returns the resulting names.
    pub fn remove_names(&self, name: &str, names: &[String]) -> Result<Vec<String>, StoreError> {
        self.update_names(name, names, NameOp::Remove)
    }

    /// Replaces names; returns the resulting names.
    pub fn set_names(&self, name: &str, names: &[String]) -> Result<Vec<String>, StoreError> {
        self.update_names(name, names, NameOp::Set)
    }

    fn update_names(
        &self,
        name: &str,
        names: &[String],
        op: NameOp,
    ) -> Result<Vec<String>, StoreError> {
        self.write(|ctx| {
            if let Some(i) = ctx.st.layers.find(name) {
                let result = apply_name_op(&mut ctx.st.layers, i, names, op);
                ctx.save_layers()?;
                return Ok(result);
            }
            if ctx.st.images.find(name).is_none() {
                // A read-only image is copied into the writable store first (spec §2.6).
                if let Some(ro) = ctx.st.ro_images.iter().find_map(|s| s.get(name).cloned()) {
                    copy_image_big_data(&ro, self)?;
                    let mut copy = ro;
                    copy.read_only = false;
                    ctx.st.images.records.push(copy);
                }
            }
            if let Some(i) = ctx.st.images.find(name) {
                let result = apply_name_op(&mut ctx.st.images, i, names, op);
                let image = &mut ctx.st.images.records[i];
                if op != NameOp::Remove {
                    // Each resulting name is prepended in turn, as upstream (observed with
                    // the Go CLI 1.43: adding `other` to `img` gives ["other","img"]).
                    let mut history: Vec<String> = result.iter().rev().cloned().collect();
                    history.extend(image.names_history.iter().cloned());
                    image.names_history = dedup(&history);
                }
                ctx.save_images()?;
                return Ok(result);
            }
            if let Some(i) = ctx.st.containers.find(name) {
                let result = apply_name_op(&mut ctx.st.containers, i, names, op);
                ctx.save_containers()?;
                return Ok(result);
            }
            if ctx.find_layer(name).is_some() {
                return Err(StoreError::ReadOnly {
                    what: "layer",
                    id: name.to_string(),
                });
            }
            Err(StoreError::NotAnId)
        })
    }

    /// Where the big data of an object lives and its ID (RW stores, then RO).
    fn big_data_dir(
        &self,
        st: &State,
        kind: Kind,
        id: &str,
    ) -> Result<(PathBuf, String), StoreError> {
        match kind {
            Kind::Layer => {
                let l = find_layer(st, id).ok_or(StoreError::LayerUnknown)?;
                let dir = match st.ro_layers.iter().position(|s| s.has_id(&l.id)) {
                    Some(i) if !st.layers.has_id(&l.id) => {
                        self.ro_root(i).join(format!("{}-layers", self.driver_name))
                    }
                    _ => self.layer_data_dir(st, &l.id),
                };
                Ok((dir.join(&l.id), l.id))
            }
            Kind::Image => {
                let img = find_image(st, id).ok_or(StoreError::ImageUnknown)?;
                let dir = match st.ro_images.iter().position(|s| s.has_id(&img.id)) {
                    Some(i) if !st.images.has_id(&img.id) => {
                        self.ro_root(i).join(format!("{}-images", self.driver_name))
                    }
                    _ => self.images_dir.clone(),
                };
                Ok((dir.join(&img.id), img.id))
            }
            Kind::Container => {
                let c = st.containers.get(id).ok_or(StoreError::ContainerUnknown)?;
                Ok((self.containers_dir.join(&c.id), c.id.clone()))
            }
        }
    }

    /// The `<drv>-layers` directory holding a RW-store layer's tar-split and big data.
    fn layer_data_dir(&self, st: &State, id: &str) -> PathBuf {
        let in_image_store = st
            .layers
            .records
            .iter()
            .any(|l| l.id == id && l.in_image_store);
        match &self.image_store_layers_dir {
            Some(dir) if in_image_store => dir.clone(),
            _ => self.layers_dir.clone(),
        }
    }

    fn ro_root(&self, i: usize) -> PathBuf {
        self.read_only_stores
            .get(i)
            .map(|ro| ro.root.clone())
            .unwrap_or_default()
    }

    /// Big-data keys of an object.
    pub fn big_data_names(&self, kind: Kind, id: &str) -> Result<Vec<String>, StoreError> {
        self.read(|st| match kind {
            Kind::Layer => Ok(find_layer(st, id)
                .ok_or(StoreError::LayerUnknown)?
                .big_data_names),
            Kind::Image => Ok(find_image(st, id)
                .ok_or(StoreError::ImageUnknown)?
                .big_data_names),
            Kind::Container => Ok(st
                .containers
                .get(id)
                .ok_or(StoreError::ContainerUnknown)?
                .big_data_names
                .clone()),
        })
    }

    /// One big-data item.
    pub fn big_data(&self, kind: Kind, id: &str, key: &str) -> Result<Vec<u8>, StoreError> {
        self.read(|st| {
            let (dir, _) = self.big_data_dir(st, kind, id)?;
            let path = dir.join(big_data_file_name(key));
            match std::fs::read(&path) {
                Ok(data) => Ok(data),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    Err(StoreError::BigDataUnknown {
                        kind: kind_name(kind),
                        key: key.to_string(),
                    })
                }
                Err(e) => Err(StoreError::io("reading", path, e)),
            }
        })
    }

    /// Stores one big-data item.
    pub fn set_big_data(
        &self,
        kind: Kind,
        id: &str,
        key: &str,
        data: &[u8],
    ) -> Result<(), StoreError> {
        let digest = sha256_digest(data);
        let size = data.len() as i64;
        self.write(|ctx| {
            let (dir, id) = self.big_data_dir(ctx.st, kind, id)?;
            let writable = match kind {
                Kind::Layer => ctx.st.layers.has_id(&id),
                Kind::Image => ctx.st.images.has_id(&id),
                Kind::Container => true,
            };
            if !writable {
                return Err(StoreError::ReadOnly {
                    what: kind_name(kind),
                    id,
                });
            }
            let path = dir.join(big_data_file_name(key));
            crate::atomic::write_file(&path, data, true)
                .map_err(|e| StoreError::io("writing", path.as_path(), e))?;
            let add_key = |names: &mut Vec<String>| {
                if !names.iter().any(|n| n == key) {
                    names.push(key.to_string());
                }
            };
            match kind {
                Kind::Layer => {
                    if let Some(i) = ctx.st.layers.find(&id) {
                        add_key(&mut ctx.st.layers.records[i].big_data_names);
                    }
                    ctx.save_layers()
                }
                Kind::Image => {
                    if let Some(i) = ctx.st.images.find(&id) {
                        let image = &mut ctx.st.images.records[i];
                        add_key(&mut image.big_data_names);
                        image.big_data_sizes.insert(key.to_string(), size);
                        image
                            .big_data_digests
                            .insert(key.to_string(), digest.clone());
                        if key.starts_with("manifest") && image.digest.is_empty() {
                            image.digest = digest.clone();
                        }
                        image.recompute_digests();
                    }
                    ctx.save_images()
                }
                Kind::Container => {
                    if let Some(i) = ctx.st.containers.find(&id) {
                        let c = &mut ctx.st.containers.records[i];
                        add_key(&mut c.big_data_names);
                        c.big_data_sizes.insert(key.to_string(), size);
                        c.big_data_digests.insert(key.to_string(), digest.clone());
                    }
                    ctx.save_containers()
                }
            }
        })
    }

    /// Size of one big-data item.
    pub fn big_data_size(&self, kind: Kind, id: &str, key: &str) -> Result<i64, StoreError> {
        let recorded = self.read(|st| {
            Ok(match kind {
                Kind::Image => find_image(st, id).and_then(|i| i.big_data_sizes.get(key).copied()),
                Kind::Container => st
                    .containers
                    .get(id)
                    .and_then(|c| c.big_data_sizes.get(key).copied()),
                Kind::Layer => None,
            })
        })?;
        match recorded {
            Some(size) => Ok(size),
            None => Ok(self.big_data(kind, id, key)?.len() as i64),
        }
    }

    /// Digest of one big-data item.
    pub fn big_data_digest(&self, kind: Kind, id: &str, key: &str) -> Result<String, StoreError> {
        let recorded = self.read(|st| {
            Ok(match kind {
                Kind::Image => {
                    find_image(st, id).and_then(|i| i.big_data_digests.get(key).cloned())
                }
                Kind::Container => st
                    .containers
                    .get(id)
                    .and_then(|c| c.big_data_digests.get(key).cloned()),
                Kind::Layer => None,
            })
        })?;
        match recorded {
            Some(d) => Ok(d),
            None => Ok(sha256_digest(&self.big_data(kind, id, key)?)),
        }
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

    /// `<graphroot>/<drv>-containers/<id>/userdata`, created.
    pub fn container_dir(&self, name: &str) -> Result<PathBuf, StoreError> {
        let id = self.container(name)?.id;
        let dir = self.containers_dir.join(id).join("userdata");
        mkdir_0700(&dir)?;
        Ok(dir)
    }

    /// `<runroot>/<drv>-containers/<id>/userdata`, created.
    pub fn container_run_dir(&self, name: &str) -> Result<PathBuf, StoreError> {
        let id = self.container(name)?.id;
        let dir = self.run_containers_dir().join(id).join("userdata");
        mkdir_0700(&dir)?;
        Ok(dir)
    }

    /// Mounts a layer or a container's layer; returns the mount point.
    pub fn mount(&self, name: &str, opts: &MountOptions) -> Result<PathBuf, StoreError> {
        self.write(|ctx| {
            let id = ctx.layer_or_container_layer(name)?;
            let volatile = ctx
                .st
                .containers
                .records
                .iter()
                .any(|c| c.layer == id && c.volatile);
            let mut options = opts.options.clone();
            if opts.read_only && !options.iter().any(|o| o == "ro") {
                options.push("ro".to_string());
            }
            let mount_opts = MountOpts {
                mount_label: opts.mount_label.clone(),
                id_mappings: IdMappings::default(),
                options,
                volatile,
            };
            ctx.mount_layer(&id, &mount_opts)
        })
    }

    /// Mounts an image's top layer read-only.
    pub fn mount_image(&self, name: &str, opts: &MountOptions) -> Result<PathBuf, StoreError> {
        self.write(|ctx| {
            let image = find_image(ctx.st, name).ok_or(StoreError::ImageUnknown)?;
            if image.top_layer.is_empty() {
                return Err(StoreError::LayerUnknown);
            }
            let mut options = opts.options.clone();
            if !options.iter().any(|o| o == "ro") {
                options.push("ro".to_string());
            }
            let mount_opts = MountOpts {
                mount_label: opts.mount_label.clone(),
                id_mappings: IdMappings::default(),
                options,
                volatile: false,
            };
            ctx.mount_layer(&image.top_layer, &mount_opts)
        })
    }

    /// Unmounts; true when the mount count reached zero. Falls back to an image's top layer.
    pub fn unmount(&self, name: &str, force: bool) -> Result<bool, StoreError> {
        self.write(|ctx| {
            let id = match ctx.layer_or_container_layer(name) {
                Ok(id) => id,
                Err(e) => match find_image(ctx.st, name) {
                    Some(image) if !image.top_layer.is_empty() => image.top_layer,
                    _ => return Err(e),
                },
            };
            ctx.unmount_layer(&id, force)
        })
    }

    /// How many times a layer (or a container's layer) is mounted.
    pub fn mount_count(&self, name: &str) -> Result<u32, StoreError> {
        self.read(|st| {
            if let Some(l) = find_layer(st, name) {
                return Ok(l.mount_count);
            }
            if let Some(c) = st.containers.get(name) {
                return Ok(st.layers.get(&c.layer).map(|l| l.mount_count).unwrap_or(0));
            }
            Err(StoreError::LayerUnknown)
        })
    }

    /// The layer and the layer to compare with (`from`, default: its parent).
    fn diff_pair(
        st: &State,
        layer: &str,
        from: Option<&str>,
    ) -> Result<(LayerRecord, Option<String>), StoreError> {
        let l = find_layer(st, layer).ok_or(StoreError::LayerUnknown)?;
        let from = match from.filter(|f| !f.is_empty()) {
            Some(f) => Some(find_layer(st, f).ok_or(StoreError::LayerUnknown)?.id),
            None => (!l.parent.is_empty()).then(|| l.parent.clone()),
        };
        Ok((l, from))
    }

    /// Changes of a layer against `from` (default: its parent).
    pub fn changes(&self, layer: &str, from: Option<&str>) -> Result<Vec<Change>, StoreError> {
        self.write(|ctx| {
            let (l, from) = Self::diff_pair(ctx.st, layer, from)?;
            let mut changes = ctx
                .driver()
                .changes(&l.id, from.as_deref())
                .map_err(|e| StoreError::driver(format!("listing changes of {}", l.id), e))?;
            changes.sort();
            Ok(changes)
        })
    }

    /// Size of the changes of a layer against `from`.
    pub fn diff_size(&self, layer: &str, from: Option<&str>) -> Result<u64, StoreError> {
        self.write(|ctx| {
            let (l, from) = Self::diff_pair(ctx.st, layer, from)?;
            ctx.driver()
                .diff_size(&l.id, from.as_deref())
                .map_err(|e| StoreError::driver(format!("measuring the diff of {}", l.id), e))
        })
    }

    /// Writes the layer's archive against `from`, compressed as asked.
    pub fn diff(
        &self,
        layer: &str,
        from: Option<&str>,
        compression: DiffCompression,
        out: &mut dyn Write,
    ) -> Result<(), StoreError> {
        self.write(|ctx| {
            let (l, from) = Self::diff_pair(ctx.st, layer, from)?;
            let kind = match compression {
                DiffCompression::AsRecorded => {
                    Compression::from_number(u64::from(l.compression)).unwrap_or_default()
                }
                DiffCompression::None => Compression::None,
                DiffCompression::Gzip => Compression::Gzip,
                DiffCompression::Zstd => Compression::Zstd,
                DiffCompression::Bzip2 | DiffCompression::Xz => {
                    return Err(StoreError::UnsupportedCompression)
                }
            };
            let mut writer = crate::compress::compressor(kind, out).map_err(|e| match e {
                crate::compress::CompressError::UnsupportedFormat(_) => {
                    StoreError::UnsupportedCompression
                }
                other => StoreError::Archive(other.to_string()),
            })?;
            let tar_split = ctx.tar_split_path(&l.id);
            let real_parent = (!l.parent.is_empty()).then(|| l.parent.clone());
            if from == real_parent && tar_split.exists() {
                reassemble_layer(ctx, &l, &tar_split, &mut writer)?;
            } else {
                ctx.driver()
                    .diff(
                        &l.id,
                        &mappings_of(&l.uid_map, &l.gid_map),
                        from.as_deref(),
                        &mut writer,
                    )
                    .map_err(|e| {
                        StoreError::driver(format!("producing the diff of {}", l.id), e)
                    })?;
            }
            writer
                .finish()
                .map_err(|e| StoreError::Archive(format!("finishing the diff: {e}")))?;
            Ok(())
        })
    }

    /// Applies an archive to an existing layer.
    pub fn apply_diff(&self, layer: &str, diff: &mut dyn Read) -> Result<u64, StoreError> {
        self.write(|ctx| {
            let i = ctx.rw_layer_index(layer)?;
            let mut record = ctx.st.layers.records[i].clone();
            let applied = ctx.apply_diff_to(&mut record, diff)?;
            if let Some(i) = ctx.st.layers.find(&record.id) {
                ctx.st.layers.records[i] = record;
            }
            ctx.save_layers()?;
            Ok(applied)
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
        if layer.mount_count == 0 || layer.mount_point.is_empty() {
            return Err(StoreError::LayerNotMounted);
        }
        let maps = mappings_of(&layer.uid_map, &layer.gid_map);
        if maps.is_identity() {
            return Ok((Vec::new(), Vec::new()));
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

/// Re-creates the imported archive of `layer` from its tar-split and the layer's files.
fn reassemble_layer(
    ctx: &mut Ctx<'_>,
    layer: &LayerRecord,
    tar_split: &Path,
    out: &mut dyn Write,
) -> Result<(), StoreError> {
    let file =
        std::fs::File::open(tar_split).map_err(|e| StoreError::io("opening", tar_split, e))?;
    let tar_split_reader = flate2::read::GzDecoder::new(std::io::BufReader::new(file));
    let store = ctx.store;
    match store.driver.diff_getter(&layer.id) {
        Ok(mut getter) => {
            crate::tarsplit::reassemble(tar_split_reader, getter.as_mut(), out)
                .map_err(|e| StoreError::Archive(e.to_string()))?;
            Ok(())
        }
        Err(_) => {
            let opts = MountOpts {
                options: vec!["ro".to_string()],
                ..Default::default()
            };
            let root = ctx.mount_layer(&layer.id, &opts)?;
            let mut getter = MountedFiles { root };
            let result = crate::tarsplit::reassemble(tar_split_reader, &mut getter, out)
                .map_err(|e| StoreError::Archive(e.to_string()));
            let unmounted = ctx.unmount_layer(&layer.id, false);
            result?;
            unmounted.map(|_| ())
        }
    }
}

/// Files of a mounted layer, for tar-split reassembly.
struct MountedFiles {
    root: PathBuf,
}

impl crate::driver::FileGetter for MountedFiles {
    fn get(&mut self, path: &str) -> Result<Box<dyn Read + '_>, DriverError> {
        let rel = path.trim_start_matches('/');
        if Path::new(rel).components().any(|c| {
            !matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        }) {
            return Err(DriverError::io(
                format!("opening {path:?}"),
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "path leaves the layer"),
            ));
        }
        let file = std::fs::File::open(self.root.join(rel))
            .map_err(|e| DriverError::io(format!("opening {path:?}"), e))?;
        Ok(Box::new(file))
    }
}

/// Copies a read-only image's big data into the writable image store.
fn copy_image_big_data(image: &ImageRecord, store: &Store) -> Result<(), StoreError> {
    let st_dir = store.images_dir.join(&image.id);
    for (i, _) in store.read_only_stores.iter().enumerate() {
        let src = store
            .ro_root(i)
            .join(format!("{}-images", store.driver_name))
            .join(&image.id);
        if !src.is_dir() {
            continue;
        }
        for key in &image.big_data_names {
            let name = big_data_file_name(key);
            if let Ok(data) = std::fs::read(src.join(&name)) {
                let dst = st_dir.join(&name);
                crate::atomic::write_file(&dst, &data, true)
                    .map_err(|e| StoreError::io("writing", dst.as_path(), e))?;
            }
        }
        break;
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameOp {
    Add,
    Remove,
    Set,
}

/// Applies a names operation to record `i`, moving names away from other records.
fn apply_name_op<T: Record>(
    set: &mut RecordSet<T>,
    i: usize,
    names: &[String],
    op: NameOp,
) -> Vec<String> {
    let current = set.records[i].names().to_vec();
    let result = match op {
        NameOp::Add => {
            let mut all = current;
            all.extend(names.iter().cloned());
            dedup(&all)
        }
        NameOp::Remove => current.into_iter().filter(|n| !names.contains(n)).collect(),
        NameOp::Set => dedup(names),
    };
    set.take_names_from_others(i, &result);
    *set.records[i].names_mut() = result.clone();
    result
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Layer => "layer",
        Kind::Image => "image",
        Kind::Container => "container",
    }
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
#[path = "store_tests.rs"]
mod tests;
