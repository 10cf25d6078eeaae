//! Opening a store: directories, lock files, record sets and the graph driver (upstream's
//! `cmd/containers-storage/main.go`).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::{ReadOnlyStore, State, Store, StoreError};
use crate::config::StoreOptions;
use crate::lock::LockFile;
use crate::records::{Record, RecordSet};
use crate::store_dir::{DirFile, StoreDir};
use storage_driver::{DriverInit, DriverRegistry, GraphDriver};

impl Store {
    /// Creates directories, lock files and the driver (before every command, as upstream's
    /// `cmd/containers-storage/main.go`).
    pub fn open(opts: &StoreOptions, drivers: &DriverRegistry) -> Result<Store, StoreError> {
        let graph_root = &opts.graph_root;
        let run_root = &opts.run_root;
        let graph_dir = open_dir(graph_root.clone())?;
        open_dir(run_root.clone())?;
        // The configured driver's home, made before the driver starts, as upstream's
        // `GetStore` does (so a driver that cannot start still leaves its empty home); only
        // for a name that is one path component, which upstream does not check.
        let name = opts.driver_name.as_str();
        if !name.is_empty() && name != "." && name != ".." && !name.contains('/') {
            open_dir(graph_root.join(&opts.driver_name))?;
            if let Some(is) = &opts.image_store {
                open_dir(is.join(&opts.driver_name))?;
            }
        }
        let graph_lock = open_lock(&graph_dir, "storage.lock")?;
        // Made before the driver starts, as upstream does.
        let _userns_lock = open_lock(&graph_dir, "userns.lock")?;
        // The driver starts under storage.lock, as upstream's `load` does under graphLock:
        // two first commands on a fresh store would otherwise both bind-mount the driver
        // home and race on its probes.
        let driver = {
            let _guard = graph_lock
                .lock_exclusive()
                .map_err(|e| StoreError::io("locking", graph_lock.path(), e))?;
            Self::init_driver(opts, drivers)?
        };
        let drv = driver.name().to_string();
        // The driver's homes as it left them (a bind mount of itself, say), held for the
        // flush that makes a layer's files durable.
        let driver_home = open_dir(driver.home().to_path_buf())?;
        let image_store_driver_home = match &opts.image_store {
            Some(is) => Some(open_dir(is.join(&drv))?),
            None => None,
        };
        let layers_dir = open_dir(graph_root.join(format!("{drv}-layers")))?;
        // With a split image store, images and read-only layers live there (upstream's `store.go`).
        let images_dir = open_dir(match &opts.image_store {
            Some(is) => is.join(format!("{drv}-images")),
            None => graph_root.join(format!("{drv}-images")),
        })?;
        let containers_dir = open_dir(graph_root.join(format!("{drv}-containers")))?;
        let run_layers_dir = open_dir(run_root.join(format!("{drv}-layers")))?;
        open_dir(run_root.join(format!("{drv}-locks")))?;
        let layers_lock = open_lock(&layers_dir, "layers.lock")?;
        let image_store_layers_dir = match &opts.image_store {
            Some(is) => Some(open_dir(is.join(format!("{drv}-layers")))?),
            None => None,
        };
        let image_store_layers_lock = match &image_store_layers_dir {
            Some(dir) => Some(open_lock(dir, "layers.lock")?),
            None => None,
        };
        let mount_lock = open_lock(&run_layers_dir, "mountpoints.lock")?;
        let images_lock = open_lock(&images_dir, "images.lock")?;
        // With a split image store, the graph root's images stay visible and deletable
        // (upstream's `load` adds the graph root to the image stores, read-write).
        let graph_images_dir = match &opts.image_store {
            Some(is) if !same_dir(is, graph_root) => {
                Some(open_dir(graph_root.join(format!("{drv}-images")))?)
            }
            _ => None,
        };
        let graph_images_lock = match &graph_images_dir {
            Some(dir) => Some(open_lock(dir, "images.lock")?),
            None => None,
        };
        // In transient mode every container is volatile and its file (and lock) is in the
        // run root; the stable file stays where upstream keeps it (and stays unused). The run
        // root's folder is made either way, as upstream's `load` does.
        let run_containers_dir = open_dir(run_root.join(format!("{drv}-containers")))?;
        let containers_json_dir = if opts.transient_store {
            Arc::clone(&run_containers_dir)
        } else {
            Arc::clone(&containers_dir)
        };
        let containers_lock = open_lock(&containers_json_dir, "containers.lock")?;
        let volatile_layers_dir = if opts.transient_store {
            &run_layers_dir
        } else {
            &layers_dir
        };
        let mut layers = RecordSet::new(
            DirFile::new(Arc::clone(&layers_dir), "layers.json"),
            Some(DirFile::new(
                Arc::clone(volatile_layers_dir),
                "volatile-layers.json",
            )),
        );
        if let Some(dir) = &image_store_layers_dir {
            layers = layers.with_image_store(DirFile::new(Arc::clone(dir), "layers.json"));
        }
        let images = RecordSet::new(DirFile::new(Arc::clone(&images_dir), "images.json"), None);
        let containers = RecordSet::new(
            DirFile::new(Arc::clone(&containers_dir), "containers.json"),
            Some(DirFile::new(
                containers_json_dir,
                "volatile-containers.json",
            )),
        );
        let mut read_only_stores = Vec::new();
        let mut ro_layers = Vec::new();
        let mut ro_images = Vec::new();
        // A read-only store that is our own graph root would share our lock files and
        // deadlock against our own write locks; it adds nothing anyway.
        let own_root = graph_dir.identity().ok();
        for root in driver.additional_image_stores() {
            let identity = StoreDir::open(&root).and_then(|d| d.identity()).ok();
            if identity.is_some() && identity == own_root {
                continue;
            }
            // A read-only store holds what it holds when the command starts: a kind it has
            // no directory of has no records, and its lock is taken only if it exists.
            let ro_dir = |kind: &str| {
                StoreDir::open(&root.join(format!("{drv}-{kind}")))
                    .ok()
                    .map(Arc::new)
            };
            let (ro_layers_dir, ro_images_dir) = (ro_dir("layers"), ro_dir("images"));
            let ro_lock = |dir: &Option<Arc<StoreDir>>, name: &str| {
                dir.as_ref()
                    .and_then(|d| LockFile::open_in(d, name, true).ok())
            };
            read_only_stores.push(ReadOnlyStore {
                layers_lock: ro_lock(&ro_layers_dir, "layers.lock"),
                images_lock: ro_lock(&ro_images_dir, "images.lock"),
                layers_dir: ro_layers_dir.clone(),
                images_dir: ro_images_dir.clone(),
            });
            ro_layers.push(read_only_set(ro_layers_dir, "layers.json"));
            ro_images.push(read_only_set(ro_images_dir, "images.json"));
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
            graph_images_lock,
            containers_lock,
            read_only_stores,
            mount_points: DirFile::new(run_layers_dir, "mountpoints.json"),
            syscalls: drivers.syscalls(),
            driver_home,
            image_store_driver_home,
            layers_dir,
            image_store_layers_dir,
            graph_images_dir: graph_images_dir.clone(),
            images_dir,
            containers_dir,
            run_containers_dir,
            state: Mutex::new(State {
                layers,
                images,
                containers,
                ro_layers,
                ro_images,
                graph_images: graph_images_dir
                    .map(|dir| RecordSet::new(DirFile::new(dir, "images.json"), None)),
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
                archive: drivers.archive_provider(),
                syscalls: drivers.syscalls(),
            };
            factory(&init).map_err(StoreError::DriverInit)
        };
        if !opts.driver_name.is_empty() {
            let started = start(&opts.driver_name);
            if let Err(StoreError::DriverNotSupported { name, root }) = &started {
                // Upstream's `GetDriver` logs a name it does not know, then returns the error.
                log::error!("Failed to GetDriver graph {name} {}", root.display());
            }
            return started;
        }
        // Upstream's `drivers.New`. First a driver with state in the graph root, in the order
        // of the priority list (vfs only when the list is the configuration's): its failure
        // to start is the answer, and state of more than one driver makes the user choose.
        let default_list = opts.driver_priority.is_empty();
        let priority: Vec<String> = if default_list {
            DEFAULT_PRIORITY.iter().map(|s| s.to_string()).collect()
        } else {
            opts.driver_priority.clone()
        };
        let prior: Vec<&str> = drivers
            .names()
            .filter(|n| opts.graph_root.join(n).exists())
            .collect();
        for name in &priority {
            if (name == "vfs" && default_list) || !prior.contains(&name.as_str()) {
                continue;
            }
            let driver = start(name).inspect_err(|e| {
                log::error!("[graphdriver] prior storage driver {name} failed: {e}")
            })?;
            if prior.len() > 1 {
                // As upstream, after the driver started (its error comes first).
                return Err(StoreError::SeveralDrivers {
                    root: opts.graph_root.clone(),
                    names: prior.join(", "),
                });
            }
            log::info!("[graphdriver] using prior storage driver: {name}");
            return Ok(driver);
        }
        // Then the first of the priority list, and then of every registered driver, that can
        // run here; any other failure to start is the answer.
        for name in priority.iter().map(String::as_str).chain(drivers.names()) {
            match start(name) {
                Ok(driver) => return Ok(driver),
                Err(e) if cannot_run_here(&e) => {
                    log::debug!("[graphdriver] {name} cannot be used here: {e}")
                }
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::NoSupportedDriver)
    }
}

/// Upstream's `drivers.Priority`: the order drivers are tried in when none is configured.
/// Names this build does not register (aufs, zfs) cannot run, as where upstream lacks them.
const DEFAULT_PRIORITY: [&str; 5] = ["overlay", "aufs", "btrfs", "zfs", "vfs"];

/// Whether a driver's failure to start means it cannot run here (upstream's
/// `isDriverNotSupported`), so that the next one is tried.
fn cannot_run_here(e: &StoreError) -> bool {
    match e {
        StoreError::DriverNotSupported { .. } => true,
        StoreError::DriverInit(e) => e.cannot_run_here(),
        _ => false,
    }
}

/// Whether two paths name one directory (either may not exist yet).
fn same_dir(a: &std::path::Path, b: &std::path::Path) -> bool {
    let canonical =
        |p: &std::path::Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    canonical(a) == canonical(b)
}

/// Creates (0700, with its parents) and opens a directory of the store.
fn open_dir(path: PathBuf) -> Result<Arc<StoreDir>, StoreError> {
    match StoreDir::create(&path) {
        Ok(dir) => Ok(Arc::new(dir)),
        Err(e) => Err(StoreError::io("creating directory", path, e)),
    }
}

/// Opens (creating it) the lock file `name` of `dir`.
fn open_lock(dir: &StoreDir, name: &str) -> Result<LockFile, StoreError> {
    LockFile::open_in(dir, name, false)
        .map_err(|e| StoreError::io("opening lock", dir.path_of(name), e))
}

/// The records of a read-only store's file `name` in `dir`; none without the directory.
fn read_only_set<T: Record>(dir: Option<Arc<StoreDir>>, name: &str) -> RecordSet<T> {
    match dir {
        Some(dir) => RecordSet::new(DirFile::new(dir, name), None),
        None => RecordSet::empty(),
    }
}

#[cfg(test)]
mod tests {
    use storage_driver::{DriverError, DriverRegistry};

    use crate::store::test_support::{registry, test_driver, TestRoot};
    use crate::store::Store;
    use crate::store::StoreError;

    /// `overlay` cannot run (upstream's incompatible filesystem), `btrfs` refuses an
    /// option, `vfs` runs.
    fn priority_registry() -> DriverRegistry {
        let mut r = DriverRegistry::new();
        r.register("overlay", |_| {
            Err(DriverError::incompatible_fs("no overlay here"))
        });
        r.register("btrfs", |_| {
            Err(DriverError::BadOption("btrfs: unknown option a".into()))
        });
        r.register("vfs", test_driver);
        r
    }

    fn started(root: &TestRoot, priority: &[&str]) -> Result<String, String> {
        let mut opts = root.opts.clone();
        opts.driver_name.clear();
        opts.driver_priority = priority.iter().map(|s| s.to_string()).collect();
        Store::open(&opts, &priority_registry())
            .map(|s| s.driver_name().to_string())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn without_a_driver_the_priority_list_decides_as_upstream() {
        let root = TestRoot::new();
        // A driver that cannot run is passed over; any other failure to start is the answer.
        assert_eq!(started(&root, &["overlay", "vfs"]), Ok("vfs".into()));
        assert_eq!(
            started(&TestRoot::new(), &["overlay", "btrfs", "vfs"]),
            Err("btrfs: unknown option a".into())
        );
        // Names nothing registers cannot run; after the list, every registered driver.
        let other = TestRoot::new();
        assert_eq!(
            started(&other, &["zfs", "overlay"]),
            Err("btrfs: unknown option a".into())
        );
        // Upstream's own list ends with vfs.
        let fresh = TestRoot::new();
        let mut r = priority_registry();
        r.register("btrfs", |_| Err(DriverError::prerequisites("not on btrfs")));
        let mut opts = fresh.opts.clone();
        opts.driver_name.clear();
        let store = Store::open(&opts, &r).expect("falls back to vfs");
        assert_eq!(store.driver_name(), "vfs");
    }

    #[test]
    fn state_of_a_driver_decides_and_state_of_two_is_refused() {
        let root = TestRoot::new();
        std::fs::create_dir_all(root.graph("btrfs")).expect("mkdir");
        // The prior driver's failure is the answer, even one that otherwise passes over.
        assert_eq!(
            started(&root, &["overlay", "btrfs", "vfs"]),
            Err("btrfs: unknown option a".into())
        );
        let root = TestRoot::new();
        std::fs::create_dir_all(root.graph("vfs")).expect("mkdir");
        assert_eq!(started(&root, &["btrfs", "vfs"]), Ok("vfs".into()));
        // Upstream's own list never picks vfs for its state: overlay and btrfs come first.
        let mut opts = root.opts.clone();
        opts.driver_name.clear();
        let mut r = DriverRegistry::new();
        r.register("overlay", test_driver);
        r.register("vfs", test_driver);
        let store = Store::open(&opts, &r).expect("open");
        assert_eq!(store.driver_name(), "overlay");
        drop(store);
        // Now both have state: the user must choose.
        let err = Store::open(&opts, &r).err().expect("several");
        assert!(matches!(err, StoreError::SeveralDrivers { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "{} contains several valid graphdrivers: overlay, vfs; Please cleanup or \
                 explicitly choose storage driver (-s <DRIVER>)",
                opts.graph_root.display()
            )
        );
        opts.driver_name = "vfs".into();
        assert_eq!(Store::open(&opts, &r).expect("chosen").driver_name(), "vfs");
    }

    #[test]
    fn nothing_that_runs_is_upstreams_message() {
        let root = TestRoot::new();
        let mut opts = root.opts.clone();
        opts.driver_name.clear();
        let mut r = DriverRegistry::new();
        r.register("overlay", |_| Err(DriverError::not_supported("no")));
        let err = Store::open(&opts, &r).err().expect("none");
        assert_eq!(err.to_string(), "no supported storage backend found");
    }

    #[test]
    fn open_creates_layout_and_unknown_driver_fails() {
        let root = TestRoot::new();
        let store = root.open();
        assert_eq!(store.driver_name(), "testfs");
        for dir in ["testfs-layers", "testfs-images", "testfs-containers"] {
            assert!(root.graph(dir).is_dir(), "{dir}");
        }
        assert!(root.graph("storage.lock").exists());
        assert!(root.run("testfs-layers/mountpoints.lock").exists());
        assert!(!root.graph("testfs-layers/layers.json").exists());
        assert!(store.layers().expect("layers").is_empty());
        let mut bad = root.opts.clone();
        bad.driver_name = "bogus".to_string();
        let err = Store::open(&bad, &registry()).err().expect("must fail");
        assert!(err.to_string().ends_with("driver not supported"), "{err}");
    }
}
