//! A hostile graph driver component, for the host's tests of a *driver* plugin's limits: it
//! keeps layers as directories `dir/<id>` like the example driver, but creating a layer on top
//! of a parent spins forever (stopped by the plugin's deadline) and applying a diff allocates
//! without bound (stopped by its memory limit). The store must roll the layer back each time.

/// Bindings generated from `wit/`.
#[allow(missing_docs, clippy::all, unsafe_op_in_unsafe_fn)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "driver-plugin",
        path: "../../../wit",
    });
}

use std::cell::RefCell;

use bindings::exports::storage::plugin::driver::{
    CreateOptions, DriverError, GetOptions, Guest, InitOptions, LayerLocation, MountRequest,
};
use bindings::storage::plugin::archive_types::{ApplyOptions, Change};
use bindings::storage::plugin::filesystem::Directory;
use bindings::storage::plugin::streams::{InputStream, OutputStream};
use bindings::storage::plugin::types::{FsError, IdMapping};

thread_local! {
    /// The home lent at `init` (an instance serves one thread).
    static HOME: RefCell<Option<Directory>> = const { RefCell::new(None) };
}

/// The driver.
pub struct HostileDriver;

bindings::export!(HostileDriver with_types_in bindings);

fn fs(what: &str, e: FsError) -> DriverError {
    DriverError::Fs((what.to_string(), e))
}

fn with_home<T>(f: impl FnOnce(&Directory) -> Result<T, DriverError>) -> Result<T, DriverError> {
    HOME.with(|home| match home.borrow().as_ref() {
        Some(dir) => f(dir),
        None => Err(DriverError::NotSupported("init was not called".into())),
    })
}

/// `dir/<id>`, refusing IDs that are not one plain name.
fn layer_path(id: &str) -> Result<Vec<u8>, DriverError> {
    if id.is_empty() || id == "." || id == ".." || id.contains('/') {
        return Err(DriverError::BadOption(format!("invalid layer ID {id:?}")));
    }
    Ok(format!("dir/{id}").into_bytes())
}

fn exists_in(home: &Directory, id: &str) -> Result<bool, DriverError> {
    let path = layer_path(id)?;
    Ok(home.lstat(&path).map_err(|e| fs("lstat", e))?.is_some())
}

fn create_layer(id: &str, parent: Option<String>) -> Result<(), DriverError> {
    with_home(|home| {
        if exists_in(home, id)? {
            return Err(DriverError::LayerExists(id.to_string()));
        }
        let path = layer_path(id)?;
        match parent {
            Some(parent) => {
                if !exists_in(home, &parent)? {
                    return Err(DriverError::LayerNotFound(parent));
                }
                // Make the layer, then never finish: the host's deadline must stop this and
                // the store remove the half-made layer.
                home.mkdir(&path, 0o755).map_err(|e| fs("mkdir", e))?;
                spin_forever()
            }
            None => home.mkdir(&path, 0o755).map_err(|e| fs("mkdir", e)),
        }
    })
}

/// Loops without end (`black_box` keeps the optimiser from proving it).
fn spin_forever() -> ! {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

/// Grows a heap allocation until the host's memory limit stops it.
fn allocate_forever() -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![1u8; 1 << 20]);
        std::hint::black_box(&hoard);
    }
}

fn unsupported(what: &str) -> DriverError {
    DriverError::Unsupported(what.to_string())
}

impl Guest for HostileDriver {
    fn init(home: Directory, _options: InitOptions) -> Result<(), DriverError> {
        if home.lstat(b"dir").map_err(|e| fs("lstat", e))?.is_none() {
            home.mkdir(b"dir", 0o700).map_err(|e| fs("mkdir", e))?;
        }
        HOME.with(|h| *h.borrow_mut() = Some(home));
        Ok(())
    }

    fn create(id: String, parent: Option<String>, _: CreateOptions) -> Result<(), DriverError> {
        create_layer(&id, parent)
    }

    fn create_read_write(
        id: String,
        parent: Option<String>,
        _: CreateOptions,
    ) -> Result<(), DriverError> {
        create_layer(&id, parent)
    }

    fn remove(id: String) -> Result<(), DriverError> {
        with_home(|home| {
            home.remove_all(&layer_path(&id)?)
                .map_err(|e| fs("remove", e))
        })
    }

    fn get(id: String, options: GetOptions) -> Result<LayerLocation, DriverError> {
        with_home(|home| {
            if !exists_in(home, &id)? {
                return Err(DriverError::LayerNotFound(id.clone()));
            }
            let path = layer_path(&id)?;
            if options.options.iter().any(|o| o == "bind") {
                return Ok(LayerLocation::Mounts(vec![MountRequest {
                    fstype: "bind".into(),
                    sources: vec![path],
                    options: vec!["ro".into()],
                }]));
            }
            Ok(LayerLocation::Directory(path))
        })
    }

    fn put(_id: String) -> Result<(), DriverError> {
        Ok(())
    }

    fn exists(id: String) -> bool {
        with_home(|home| exists_in(home, &id)).unwrap_or(false)
    }

    fn list_layers() -> Result<Vec<String>, DriverError> {
        with_home(|home| {
            let mut ids: Vec<String> = home
                .read_dir(b"dir")
                .map_err(|e| fs("read-dir", e))?
                .into_iter()
                .map(|e| String::from_utf8_lossy(&e.name).into_owned())
                .collect();
            ids.sort();
            Ok(ids)
        })
    }

    fn status() -> Vec<(String, String)> {
        let layers = Self::list_layers().map(|l| l.len()).unwrap_or(0);
        vec![
            ("Backing Filesystem".into(), "hostile".into()),
            ("Layers".into(), layers.to_string()),
        ]
    }

    fn metadata(id: String) -> Result<Vec<(String, String)>, DriverError> {
        let path = layer_path(&id)?;
        Ok(vec![(
            "Path".into(),
            String::from_utf8_lossy(&path).into_owned(),
        )])
    }

    fn cleanup() -> Result<(), DriverError> {
        Ok(())
    }

    fn apply_diff(
        _: String,
        _: Option<String>,
        _: &InputStream,
        _: ApplyOptions,
    ) -> Result<u64, DriverError> {
        allocate_forever()
    }

    fn diff(
        _: String,
        _: IdMapping,
        _: Option<String>,
        _: IdMapping,
        _: &OutputStream,
    ) -> Result<(), DriverError> {
        Err(unsupported("diff"))
    }

    fn changes(
        _: String,
        _: IdMapping,
        _: Option<String>,
        _: IdMapping,
    ) -> Result<Vec<Change>, DriverError> {
        Err(unsupported("changes"))
    }

    fn diff_size(
        _: String,
        _: IdMapping,
        _: Option<String>,
        _: IdMapping,
    ) -> Result<u64, DriverError> {
        Err(unsupported("diff-size"))
    }
}
