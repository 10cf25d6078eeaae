//! `storage-vfs-component`: the vfs graph driver as a WebAssembly component (world
//! `driver-plugin`), built for `wasm32-wasip2` by the `storage` binary's build script and registered
//! by it as the `vfs` driver.
//!
//! Layout (spec §2.2): every layer is a full tree `dir/<id>` in the home the host lends. A
//! child starts as a copy of its parent through the host's `copy-tree` fast path (reflinked
//! where the filesystem can); `get` answers with the directory, nothing is mounted, and `put`
//! does nothing. Apply, diff, changes and diff size are the naive ones of `storage-archive`,
//! linked in directly (AUFS whiteouts). On other targets the crate compiles but is never called.
//!
//! With a split image store, image layers (`create`) go to the image store's home; layers of
//! additional read-only image stores are found in their homes (both lent through the `homes`
//! interface), as upstream's vfs looks a layer up in every home.

// The guest side of the filesystem interface and the WIT<->archive type conversions are the
// archive component's, compiled again here: wit-bindgen generates the WIT types per world, so
// the same source is built against each crate's own `crate::bindings`.
#[path = "../../../archive/component/src/convert.rs"]
pub mod convert;
#[path = "../../../archive/component/src/guest_fs.rs"]
pub mod guest_fs;
pub mod options;

/// Bindings generated from `wit/` for the `driver-plugin` world.
#[allow(missing_docs, clippy::all, unsafe_op_in_unsafe_fn)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "driver-plugin",
        path: "../../wit",
    });
}

use std::cell::RefCell;

use bindings::exports::storage::plugin::driver::{
    CreateOptions, DriverError, GetOptions, Guest, InitOptions, LayerLocation,
};
use bindings::storage::plugin::archive_types::{ApplyOptions, Change};
use bindings::storage::plugin::filesystem::Directory;
use bindings::storage::plugin::streams::{InputStream, OutputStream};
use bindings::storage::plugin::types::{FsError, IdMapping};
use guest_fs::{GuestDir, GuestInput, GuestOutput};

/// Where the layers live inside the home.
const LAYERS_DIR: &[u8] = b"dir";

/// What `init` was given; an instance serves one call, on one thread.
struct State {
    home: Directory,
    /// The split image store's home, where image layers are created.
    image_home: Option<Directory>,
    /// Homes of additional read-only image stores, searched last.
    read_only_homes: Vec<Directory>,
    options: options::VfsOptions,
}

/// Which home a layer is in.
#[derive(Clone, Copy)]
enum Home {
    Own,
    Image,
    ReadOnly(usize),
}

impl State {
    /// Every home with where it is: own, image store, read-only stores.
    fn homes(&self) -> impl Iterator<Item = (Home, &Directory)> {
        std::iter::once((Home::Own, &self.home))
            .chain(self.image_home.iter().map(|d| (Home::Image, d)))
            .chain(
                self.read_only_homes
                    .iter()
                    .enumerate()
                    .map(|(i, d)| (Home::ReadOnly(i), d)),
            )
    }

    /// The home holding layer `id`, if any.
    fn locate(&self, id: &str) -> Result<Option<(Home, &Directory)>, DriverError> {
        for (which, dir) in self.homes() {
            if exists_in(dir, id)? {
                return Ok(Some((which, dir)));
            }
        }
        Ok(None)
    }

    /// Opens layer `id`'s tree, wherever it is.
    fn open_layer(&self, id: &str) -> Result<Directory, DriverError> {
        match self.locate(id)? {
            Some((_, home)) => open_layer(home, id),
            None => Err(DriverError::LayerNotFound(id.to_string())),
        }
    }
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

/// The driver.
pub struct VfsDriver;

bindings::export!(VfsDriver with_types_in bindings);

fn fs(what: &str, e: FsError) -> DriverError {
    DriverError::Fs((what.to_string(), e))
}

fn archive(e: storage_archive::ArchiveError) -> DriverError {
    DriverError::Archive(convert::archive_error(e))
}

fn with_state<T>(f: impl FnOnce(&State) -> Result<T, DriverError>) -> Result<T, DriverError> {
    STATE.with(|state| match state.borrow().as_ref() {
        Some(state) => f(state),
        None => Err(DriverError::NotSupported("init was not called".into())),
    })
}

/// `dir/<id>`, refusing IDs that are not one plain name (an ID never leaves `dir`).
fn layer_path(id: &str) -> Result<Vec<u8>, DriverError> {
    if id.is_empty() || id == "." || id == ".." || id.contains('/') || id.contains('\0') {
        return Err(DriverError::BadOption(format!("invalid layer ID {id:?}")));
    }
    let mut path = LAYERS_DIR.to_vec();
    path.push(b'/');
    path.extend_from_slice(id.as_bytes());
    Ok(path)
}

fn exists_in(home: &Directory, id: &str) -> Result<bool, DriverError> {
    let path = layer_path(id)?;
    Ok(home.lstat(&path).map_err(|e| fs("lstat", e))?.is_some())
}

/// Opens the parent a diff is taken against, if there is one.
fn open_parent(state: &State, parent: Option<String>) -> Result<Option<Directory>, DriverError> {
    parent
        .filter(|p| !p.is_empty())
        .map(|p| state.open_layer(&p))
        .transpose()
}

/// Opens layer `id`'s tree, which must exist.
fn open_layer(home: &Directory, id: &str) -> Result<Directory, DriverError> {
    if !exists_in(home, id)? {
        return Err(DriverError::LayerNotFound(id.to_string()));
    }
    home.open_dir(&layer_path(id)?)
        .map_err(|e| fs(&format!("open layer {id}"), e))
}

/// The host IDs container root maps to (upstream chowns a new layer's root to them).
fn root_owner(mapping: &IdMapping) -> (u32, u32) {
    let map = |ranges: &[bindings::storage::plugin::types::IdRange]| {
        ranges
            .iter()
            .find(|r| r.container_id == 0 && r.size > 0)
            .map(|r| r.host_id)
            .unwrap_or(0)
    };
    (map(&mapping.uids), map(&mapping.gids))
}

/// Creates layer `id`; an image layer (`image_layer`) goes to the split image store's home
/// when there is one.
fn create_layer(
    id: &str,
    parent: Option<String>,
    opts: &CreateOptions,
    image_layer: bool,
) -> Result<(), DriverError> {
    if !opts.storage_opt.is_empty() {
        return Err(DriverError::BadOption(
            "--storage-opt is not supported for vfs".into(),
        ));
    }
    with_state(|state| {
        if state.locate(id)?.is_some() {
            return Err(DriverError::LayerExists(id.to_string()));
        }
        let home = match (&state.image_home, image_layer) {
            (Some(image_home), true) => image_home,
            _ => &state.home,
        };
        ensure_layers_dir(home)?;
        let path = layer_path(id)?;
        match parent.filter(|p| !p.is_empty()) {
            Some(parent) => {
                let Some((_, parent_home)) = state.locate(&parent)? else {
                    return Err(DriverError::LayerNotFound(parent));
                };
                parent_home
                    .copy_tree(&layer_path(&parent)?, home, &path)
                    .map_err(|e| fs("copy parent layer", e))
            }
            None => {
                // Upstream's `defaultPerms`: a layer without parent starts read-only to all;
                // its archive's root entry, if any, then sets what it says.
                home.mkdir(&path, 0o555).map_err(|e| fs("mkdir", e))?;
                let (uid, gid) = root_owner(&opts.id_mapping);
                if (uid, gid) != (0, 0) {
                    home.lchown(&path, uid, gid).map_err(|e| fs("lchown", e))?;
                }
                Ok(())
            }
        }
    })
}

/// Makes `dir` in a writable home if it is missing.
fn ensure_layers_dir(home: &Directory) -> Result<(), DriverError> {
    if home
        .lstat(LAYERS_DIR)
        .map_err(|e| fs("lstat", e))?
        .is_none()
    {
        home.mkdir(LAYERS_DIR, 0o700).map_err(|e| fs("mkdir", e))?;
    }
    Ok(())
}

impl Guest for VfsDriver {
    fn init(home: Directory, init: InitOptions) -> Result<(), DriverError> {
        let options = options::parse(&init.options).map_err(DriverError::BadOption)?;
        ensure_layers_dir(&home)?;
        let image_home = bindings::storage::plugin::homes::image_home();
        let read_only_homes = bindings::storage::plugin::homes::read_only_homes();
        STATE.with(|state| {
            *state.borrow_mut() = Some(State {
                home,
                image_home,
                read_only_homes,
                options,
            })
        });
        Ok(())
    }

    fn create(id: String, parent: Option<String>, opts: CreateOptions) -> Result<(), DriverError> {
        create_layer(&id, parent, &opts, true)
    }

    fn create_read_write(
        id: String,
        parent: Option<String>,
        opts: CreateOptions,
    ) -> Result<(), DriverError> {
        create_layer(&id, parent, &opts, false)
    }

    fn remove(id: String) -> Result<(), DriverError> {
        with_state(|state| {
            // Only the writable homes: a read-only store's layers are never removed here.
            match state.locate(&id)? {
                Some((Home::Own | Home::Image, home)) => home
                    .remove_all(&layer_path(&id)?)
                    .map_err(|e| fs("remove layer", e)),
                _ => Ok(()),
            }
        })
    }

    fn get(id: String, options: GetOptions) -> Result<LayerLocation, DriverError> {
        // Upstream accepts exactly no option or the single option `ro` (which it ignores).
        match options.options.as_slice() {
            [] => {}
            [only] if only == "ro" => {}
            _ => {
                return Err(DriverError::BadOption(
                    "vfs driver does not support mount options".into(),
                ))
            }
        }
        with_state(|state| {
            let path = layer_path(&id)?;
            match state.locate(&id)? {
                Some((Home::Own, _)) => Ok(LayerLocation::Directory(path)),
                Some((Home::Image, _)) => Ok(LayerLocation::ImageHomeDirectory(path)),
                Some((Home::ReadOnly(i), _)) => Ok(LayerLocation::ReadOnlyDirectory((
                    u32::try_from(i).unwrap_or(u32::MAX),
                    path,
                ))),
                None => Err(DriverError::LayerNotFound(id.clone())),
            }
        })
    }

    fn put(_id: String) -> Result<(), DriverError> {
        Ok(())
    }

    fn exists(id: String) -> bool {
        with_state(|state| Ok(state.locate(&id)?.is_some())).unwrap_or(false)
    }

    fn list_layers() -> Result<Vec<String>, DriverError> {
        with_state(|state| {
            // The layers this store keeps: its own home's and its image store's.
            let mut ids: Vec<String> = Vec::new();
            for home in std::iter::once(&state.home).chain(&state.image_home) {
                if home
                    .lstat(LAYERS_DIR)
                    .map_err(|e| fs("lstat", e))?
                    .is_none()
                {
                    continue;
                }
                ids.extend(
                    home.read_dir(LAYERS_DIR)
                        .map_err(|e| fs("read-dir", e))?
                        .into_iter()
                        .map(|e| String::from_utf8_lossy(&e.name).into_owned()),
                );
            }
            ids.sort();
            Ok(ids)
        })
    }

    fn status() -> Vec<(String, String)> {
        // Upstream's vfs reports nothing of its own.
        Vec::new()
    }

    fn metadata(id: String) -> Result<Vec<(String, String)>, DriverError> {
        layer_path(&id)?;
        Ok(Vec::new())
    }

    fn cleanup() -> Result<(), DriverError> {
        Ok(())
    }

    fn apply_diff(
        id: String,
        _parent: Option<String>,
        input: &InputStream,
        options: ApplyOptions,
    ) -> Result<u64, DriverError> {
        with_state(|state| {
            let layer = state.open_layer(&id)?;
            let mut opts = convert::apply_options(options);
            opts.ignore_chown_errors |= state.options.ignore_chown_errors;
            let mut fs = GuestDir::new(&layer);
            let mut input = GuestInput::new(input);
            storage_archive::apply_layer(&mut fs, &mut input, &opts).map_err(archive)
        })
    }

    fn diff(
        id: String,
        mapping: IdMapping,
        parent: Option<String>,
        parent_mapping: IdMapping,
        out: &OutputStream,
    ) -> Result<(), DriverError> {
        with_state(|state| {
            let layer = state.open_layer(&id)?;
            let parent = open_parent(state, parent)?;
            let opts = storage_archive::DiffOptions {
                id_mapping: convert::id_mapping(mapping),
                ..Default::default()
            };
            let parent_mapping = convert::id_mapping(parent_mapping);
            let mut layer = GuestDir::new(&layer);
            let mut parent = parent.as_ref().map(GuestDir::new);
            let mut output = GuestOutput::new(out);
            storage_archive::write_diff_naive(
                &mut layer,
                parent.as_mut(),
                &parent_mapping,
                &mut output,
                &opts,
            )
            .map_err(archive)?;
            std::io::Write::flush(&mut output)
                .map_err(|e| archive(storage_archive::ArchiveError::Stream(e)))
        })
    }

    fn changes(
        id: String,
        mapping: IdMapping,
        parent: Option<String>,
        parent_mapping: IdMapping,
    ) -> Result<Vec<Change>, DriverError> {
        with_state(|state| {
            let layer = state.open_layer(&id)?;
            let parent = open_parent(state, parent)?;
            let mut layer = GuestDir::new(&layer);
            let mut parent = parent.as_ref().map(GuestDir::new);
            storage_archive::changes_naive(
                &mut layer,
                parent.as_mut(),
                &convert::id_mapping(mapping),
                &convert::id_mapping(parent_mapping),
            )
            .map(convert::changes)
            .map_err(archive)
        })
    }

    fn diff_size(
        id: String,
        mapping: IdMapping,
        parent: Option<String>,
        parent_mapping: IdMapping,
    ) -> Result<u64, DriverError> {
        with_state(|state| {
            let layer = state.open_layer(&id)?;
            let parent = open_parent(state, parent)?;
            let mut layer = GuestDir::new(&layer);
            let mut parent = parent.as_ref().map(GuestDir::new);
            storage_archive::diff_size_naive(
                &mut layer,
                parent.as_mut(),
                &convert::id_mapping(mapping),
                &convert::id_mapping(parent_mapping),
            )
            .map_err(archive)
        })
    }
}
