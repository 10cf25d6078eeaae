//! Running operations under the lock files: shared locks and a reload for reads, every
//! lock exclusively (plus crash cleanup) for writes, and the saves that bump a lock's
//! last-write token so other processes reload.

use std::path::Path;
use std::sync::{MutexGuard, PoisonError};

use super::layers::incomplete;
use super::{Ctx, State, Store, StoreError};
use crate::layers::{load_mount_points, save_mount_points, MountPointRecord};
use crate::lock::{LockFile, LockGuard};
use crate::records::{FastHash, FastMap};
use storage_driver::GraphDriver;

fn lock_io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |e| StoreError::io("locking", path, e)
}

/// How the record locks are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LockMode {
    Shared,
    Exclusive,
}

fn take(lock: &LockFile, mode: LockMode) -> Result<LockGuard<'_>, StoreError> {
    match mode {
        LockMode::Shared => lock.lock_shared(),
        LockMode::Exclusive => lock.lock_exclusive(),
    }
    .map_err(lock_io(lock.path()))
}

/// Whether another writer used the lock since our last look (false for a lock we lack).
fn modified(lock: Option<&LockFile>) -> Result<bool, StoreError> {
    match lock {
        Some(l) => l.modified().map_err(lock_io(l.path())),
        None => Ok(false),
    }
}

/// Which records an operation reads, so which files it loads: a command that only creates
/// a layer never parses the images and containers (upstream loads its stores on first use
/// likewise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Need {
    /// The layers of every layer store, with their mount points.
    pub(super) layers: bool,
    /// The images of every image store.
    pub(super) images: bool,
    /// The containers.
    pub(super) containers: bool,
}

impl Need {
    /// Everything.
    pub(super) const ALL: Need = Need {
        layers: true,
        images: true,
        containers: true,
    };
    /// The layers only.
    pub(super) const LAYERS: Need = Need {
        layers: true,
        images: false,
        containers: false,
    };
    /// The layers and the images (an image's layers).
    pub(super) const LAYERS_AND_IMAGES: Need = Need {
        layers: true,
        images: true,
        containers: false,
    };
    /// The containers only (on top of what is loaded already).
    pub(super) const CONTAINERS: Need = Need {
        layers: false,
        images: false,
        containers: true,
    };
    /// The layers and the containers (a name of either; a container's layer).
    pub(super) const LAYERS_AND_CONTAINERS: Need = Need {
        layers: true,
        images: false,
        containers: true,
    };

    fn with_layers(self) -> Need {
        Need {
            layers: true,
            ..self
        }
    }
}

/// Bumps the lock's last-write token, so other processes reload what we save.
pub(super) fn record_write(lock: &LockFile) -> Result<(), StoreError> {
    lock.record_write().map_err(lock_io(lock.path()))
}

/// The record locks held for one operation; released in the reverse order of taking.
struct RecordLocks<'a>(Vec<LockGuard<'a>>);

impl Drop for RecordLocks<'_> {
    fn drop(&mut self) {
        while self.0.pop().is_some() {}
    }
}

impl Store {
    pub(super) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reloads whatever `need`s and changed since our last look; call with the locks held.
    /// What the operation does not need is neither read nor checked: its lock's last-write
    /// token stays unlooked-at, so the next operation that needs it still sees a change.
    pub(super) fn reload(&self, st: &mut State, need: Need) -> Result<(), StoreError> {
        // One buffer for every file read.
        let scratch = &mut Vec::new();
        if need.layers {
            self.reload_layers(st, scratch)?;
        }
        if need.images {
            self.reload_images(st, scratch)?;
        }
        if need.containers
            && (modified(Some(&self.containers_lock))? || st.containers.needs_reload())
        {
            st.containers.load_with(scratch)?;
            st.containers.resolve_duplicate_names();
        }
        Ok(())
    }

    /// Reloads the layers (with their mount points) of every layer store.
    fn reload_layers(&self, st: &mut State, scratch: &mut Vec<u8>) -> Result<(), StoreError> {
        let layers_modified = modified(Some(&self.layers_lock))?;
        let mounts_modified = modified(Some(&self.mount_lock))?;
        let image_store_modified = modified(self.image_store_layers_lock.as_ref())?;
        if layers_modified || image_store_modified || mounts_modified || st.layers.needs_reload() {
            st.layers.load_with(scratch)?;
            // Duplicate names (hand edits, old bugs) go to the newest record; a writer
            // saves the fix.
            st.layers.resolve_duplicate_names();
            let mounts = load_mount_points(&self.mount_points)?;
            // One hash lookup per layer, not a search of the mounts per layer; the first
            // entry of an ID counts.
            let mut by_id: FastMap<&str, &MountPointRecord> =
                FastMap::with_capacity_and_hasher(mounts.len(), FastHash);
            for m in &mounts {
                by_id.entry(m.id.as_str()).or_insert(m);
            }
            if !by_id.is_empty() {
                for layer in &mut st.layers.records {
                    if let Some(m) = by_id.get(layer.id.as_str()) {
                        layer.mount_point = m.path.clone();
                        layer.mount_count = m.count;
                    }
                }
            }
        }
        for (i, ro) in self.read_only_stores.iter().enumerate() {
            if modified(ro.layers_lock.as_ref())? || st.ro_layers[i].needs_reload() {
                st.ro_layers[i].load_with(scratch)?;
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
        }
        Ok(())
    }

    /// Reloads the images of every image store.
    fn reload_images(&self, st: &mut State, scratch: &mut Vec<u8>) -> Result<(), StoreError> {
        if modified(Some(&self.images_lock))? || st.images.needs_reload() {
            st.images.load_with(scratch)?;
            st.images.resolve_duplicate_names();
            for image in &mut st.images.records {
                image.recompute_digests();
            }
        }
        if let Some(set) = &mut st.graph_images {
            if modified(self.graph_images_lock.as_ref())? || set.needs_reload() {
                set.load_with(scratch)?;
                set.resolve_duplicate_names();
                for image in &mut set.records {
                    image.recompute_digests();
                }
            }
        }
        for (i, ro) in self.read_only_stores.iter().enumerate() {
            if modified(ro.images_lock.as_ref())? || st.ro_images[i].needs_reload() {
                st.ro_images[i].load_with(scratch)?;
                for image in &mut st.ro_images[i].records {
                    image.read_only = true;
                    image.recompute_digests();
                }
            }
        }
        Ok(())
    }

    /// Runs `f` with every store's records loaded, under shared locks. Incomplete layers
    /// found on the way are first cleaned up under the write locks (upstream's `layers.go`,
    /// incomplete layers).
    pub(super) fn read<R>(
        &self,
        f: impl FnOnce(&State) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        self.read_needing(Need::ALL, f)
    }

    /// [`Store::read`] with only the records `need` names loaded: `f` must not look at
    /// the others, which may be stale or never read.
    pub(super) fn read_needing<R>(
        &self,
        need: Need,
        f: impl FnOnce(&State) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut round = 0;
        loop {
            let locks = self.lock_records(LockMode::Shared)?;
            let mut st = self.state();
            // The layers are always looked at: an incomplete one is cleaned up first.
            self.reload(&mut st, need.with_layers())?;
            // The last round serves what is there rather than failing the read.
            if round < 2 && (st.layers.records.iter().any(incomplete) || self.has_dead_imports()) {
                drop(st);
                drop(locks);
                self.write_needing(Need::LAYERS, |_| Ok(()))?;
                round += 1;
                continue;
            }
            st.take_ambiguity();
            let result = f(&st);
            return st.explain_unknown(result);
        }
    }

    /// Takes the record locks in upstream's order (layers, image-store layers, mount
    /// points, images, containers), then the read-only stores' locks, always shared:
    /// nobody may write those.
    fn lock_records(&self, mode: LockMode) -> Result<RecordLocks<'_>, StoreError> {
        let own = [
            Some(&self.layers_lock),
            self.image_store_layers_lock.as_ref(),
            Some(&self.mount_lock),
            Some(&self.images_lock),
            self.graph_images_lock.as_ref(),
            Some(&self.containers_lock),
        ];
        let mut guards = RecordLocks(Vec::new());
        for lock in own.into_iter().flatten() {
            guards.0.push(take(lock, mode)?);
        }
        for ro in &self.read_only_stores {
            for lock in [&ro.layers_lock, &ro.images_lock].into_iter().flatten() {
                guards.0.push(take(lock, LockMode::Shared)?);
            }
        }
        Ok(guards)
    }

    /// Runs `f` with the driver lock and every write lock held, records loaded and crash
    /// leftovers cleaned up.
    pub(super) fn write<R>(
        &self,
        f: impl FnOnce(&mut Ctx<'_>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        self.write_needing(Need::ALL, f)
    }

    /// [`Store::write`] with only the records `need` names loaded (the layers always, for
    /// the crash cleanup): `f` must neither look at nor save the others. Every lock is
    /// still taken, in upstream's order.
    pub(super) fn write_needing<R>(
        &self,
        need: Need,
        f: impl FnOnce(&mut Ctx<'_>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let _graph = take(&self.graph_lock, LockMode::Exclusive)?;
        let _records = self.lock_records(LockMode::Exclusive)?;
        let mut st = self.state();
        self.reload(&mut st, need.with_layers())?;
        let mut ctx = Ctx {
            store: self,
            st: &mut st,
        };
        ctx.clean_up_crash_leftovers();
        ctx.st.take_ambiguity();
        let result = f(&mut ctx);
        st.explain_unknown(result)
    }
}

impl State {
    /// The ambiguous prefix a lookup met since the last call, in any record set.
    fn take_ambiguity(&self) -> Option<crate::records::Ambiguity> {
        let layers = self.layer_sets().filter_map(|s| s.take_ambiguity());
        let images = self.image_sets().filter_map(|s| s.take_ambiguity());
        let containers = self.containers.take_ambiguity();
        let all: Vec<_> = layers.chain(images).chain(containers).collect();
        all.into_iter().next()
    }

    /// Turns an operation's "not known" into "ambiguous" when the name it could not
    /// resolve was a prefix of several objects.
    fn explain_unknown<R>(&self, result: Result<R, StoreError>) -> Result<R, StoreError> {
        let ambiguity = self.take_ambiguity();
        match (result, ambiguity) {
            (
                Err(
                    StoreError::LayerUnknown
                    | StoreError::ImageUnknown
                    | StoreError::ImageNotLocated { .. }
                    | StoreError::ContainerUnknown
                    | StoreError::NotAnId
                    | StoreError::NotAContainer
                    | StoreError::NotALayer
                    | StoreError::NotAnImage,
                ),
                Some((prefix, candidates)),
            ) => Err(StoreError::Ambiguous { prefix, candidates }),
            (result, _) => result,
        }
    }
}

impl Ctx<'_> {
    pub(super) fn driver(&self) -> &dyn GraphDriver {
        self.store.driver.as_ref()
    }

    pub(super) fn save_layers(&mut self) -> Result<(), StoreError> {
        record_write(&self.store.layers_lock)?;
        if let Some(l) = &self.store.image_store_layers_lock {
            record_write(l)?;
        }
        self.st.layers.save()
    }

    pub(super) fn save_mounts(&mut self) -> Result<(), StoreError> {
        record_write(&self.store.mount_lock)?;
        save_mount_points(&self.store.mount_points, &self.st.layers.records)
    }

    pub(super) fn save_images(&mut self) -> Result<(), StoreError> {
        record_write(&self.store.images_lock)?;
        self.st.images.save()
    }

    /// Saves the graph root's images of a split store.
    pub(super) fn save_graph_images(&mut self) -> Result<(), StoreError> {
        if let Some(lock) = &self.store.graph_images_lock {
            record_write(lock)?;
        }
        match &mut self.st.graph_images {
            Some(set) => set.save(),
            None => Ok(()),
        }
    }

    pub(super) fn save_containers(&mut self) -> Result<(), StoreError> {
        record_write(&self.store.containers_lock)?;
        self.st.containers.save()
    }
}

#[cfg(test)]
mod tests {
    use crate::config::StoreOptions;
    use crate::store::test_support::{named, registry, TestRoot};
    use crate::store::{ContainerOptions, ImageOptions, Store};

    #[test]
    fn another_store_sees_writes() {
        let root = TestRoot::new();
        let a = root.open();
        let b = root.open();
        assert!(b.layers().expect("layers").is_empty());
        let before = std::fs::read(root.graph("testfs-layers/layers.lock")).expect("read");
        a.create_layer(None, &named(&["x"])).expect("create");
        let after = std::fs::read(root.graph("testfs-layers/layers.lock")).expect("read");
        assert_eq!(after.len(), 64);
        assert_ne!(before, after, "token changes on write");
        assert_eq!(b.layers().expect("layers").len(), 1);
        b.set_metadata("x", "meta").expect("set");
        assert_eq!(a.metadata("x").expect("meta"), "meta");
    }

    #[test]
    fn concurrent_creators_lose_nothing() {
        let root = TestRoot::new();
        let opts = root.opts.clone();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let opts = opts.clone();
                std::thread::spawn(move || {
                    let store = Store::open(&opts, &registry()).expect("open");
                    for i in 0..5 {
                        store
                            .create_layer(None, &named(&[&format!("t{t}-{i}")]))
                            .expect("create");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("join");
        }
        // One store shared by threads works as well.
        let shared = std::sync::Arc::new(root.open());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let store = std::sync::Arc::clone(&shared);
                std::thread::spawn(move || {
                    for i in 0..5 {
                        store
                            .create_layer(None, &named(&[&format!("s{t}-{i}")]))
                            .expect("create");
                        store.layers().expect("list");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("join");
        }
        let store = root.open();
        assert_eq!(store.layers().expect("layers").len(), 60);
    }

    #[test]
    fn commands_read_only_the_files_they_need() {
        let root = TestRoot::new();
        let store = root.open();
        store.create_layer(None, &named(&["base"])).expect("base");
        let image = store
            .create_image(Some("base"), &ImageOptions::default())
            .expect("image");
        store
            .create_container(&image.id, &ContainerOptions::default())
            .expect("container");
        // Files a command does not need are not read: broken ones go unnoticed.
        let images = root.graph("testfs-images/images.json");
        let containers = root.graph("testfs-containers/containers.json");
        let (images_json, containers_json) = (
            std::fs::read(&images).expect("read"),
            std::fs::read(&containers).expect("read"),
        );
        std::fs::write(&images, "not json").expect("write");
        std::fs::write(&containers, "not json").expect("write");
        let other = root.open();
        other
            .create_layer(Some("base"), &named(&["more"]))
            .expect("create-layer reads the layers only");
        assert_eq!(other.layers().expect("layers").len(), 3);
        assert!(other.images().is_err(), "images.json is read for images");
        assert!(other.containers().is_err());
        assert!(other.mount("more", &Default::default()).is_err());
        std::fs::write(&images, &images_json).expect("write");
        std::fs::write(&containers, &containers_json).expect("write");
        assert_eq!(other.images().expect("images").len(), 1);
        assert_eq!(other.containers().expect("containers").len(), 1);
    }

    #[test]
    fn a_change_is_seen_by_the_first_command_that_needs_it() {
        let root = TestRoot::new();
        let a = root.open();
        let b = root.open();
        a.create_layer(None, &named(&["base"])).expect("base");
        assert!(b.images().expect("images").is_empty());
        a.create_image(Some("base"), &ImageOptions::default())
            .expect("image");
        // b's reads of the layers alone do not look at the images' lock, so they cannot
        // take the news from the images' read that needs it.
        assert_eq!(b.layers().expect("layers").len(), 1);
        b.create_layer(None, &named(&["second"])).expect("second");
        assert_eq!(b.images().expect("images").len(), 1);
        let ctr = a
            .create_container("", &ContainerOptions::default())
            .expect("container");
        b.create_layer(None, &named(&["third"])).expect("third");
        assert_eq!(b.container(&ctr.id).expect("container").id, ctr.id);
    }

    #[test]
    fn forgotten_records_are_loaded_again() {
        let root = TestRoot::new();
        let store = root.open();
        store.create_layer(None, &named(&["x"])).expect("x");
        store.forget_records();
        assert_eq!(store.layers().expect("layers").len(), 1);
        store.create_layer(None, &named(&["y"])).expect("y");
        store.forget_records();
        assert!(
            store.create_layer(None, &named(&["y"])).is_err(),
            "name taken"
        );
        assert_eq!(store.layer("y").expect("y").names, ["y"]);
    }

    #[test]
    fn hand_edited_json_is_reloaded() {
        let root = TestRoot::new();
        let store = root.open();
        store.create_layer(None, &named(&["x"])).expect("x");
        assert_eq!(store.layers().expect("layers").len(), 1);
        // An edit that does not touch the lock file is noticed through the file's mtime.
        let path = root.graph("testfs-layers/layers.json");
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&path, "[]").expect("write");
        assert!(store.layers().expect("layers").is_empty());
    }

    const CHILD_ENV: &str = "STORAGE_STORE_TEST_CHILD";

    /// Run as a child process by `concurrent_processes_lose_nothing`: creates five layers in
    /// the store named by the environment.
    #[test]
    fn child_creates_layers() {
        let Ok(spec) = std::env::var(CHILD_ENV) else {
            return;
        };
        let mut parts = spec.split('|');
        let (Some(graph), Some(run), Some(tag)) = (parts.next(), parts.next(), parts.next()) else {
            panic!("bad child spec {spec:?}");
        };
        let opts = StoreOptions {
            graph_root: graph.into(),
            run_root: run.into(),
            driver_name: "testfs".to_string(),
            ..Default::default()
        };
        let store = Store::open(&opts, &registry()).expect("open");
        for i in 0..5 {
            store
                .create_layer(None, &named(&[&format!("{tag}-{i}")]))
                .expect("create");
        }
    }

    #[test]
    fn concurrent_processes_lose_nothing() {
        let root = TestRoot::new();
        let exe = std::env::current_exe().expect("exe");
        let children: Vec<_> = (0..4)
            .map(|p| {
                let spec = format!(
                    "{}|{}|p{p}",
                    root.opts.graph_root.display(),
                    root.opts.run_root.display()
                );
                std::process::Command::new(&exe)
                    .args([
                        "--exact",
                        "store::locking::tests::child_creates_layers",
                        "--nocapture",
                    ])
                    .env(CHILD_ENV, spec)
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .expect("spawn")
            })
            .collect();
        for mut child in children {
            assert!(child.wait().expect("wait").success());
        }
        let store = root.open();
        let layers = store.layers().expect("layers");
        assert_eq!(layers.len(), 20);
        assert!(layers.iter().all(|l| l.flags.is_empty()));
    }
}
