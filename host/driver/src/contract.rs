//! The graph-driver contract and the registry of drivers by name.
//!
//! A graph driver keeps the content of layers on disk: it creates a layer (empty, or
//! starting as the content of its parent), makes it available as a directory (`get`),
//! applies a layer archive into it and produces one from it. The store above it keeps the
//! records (`layers.json`), the mount counts, tar-split and digests; the driver keeps only
//! file trees. Nothing in the host knows a driver by name: the binary registers the
//! drivers it links into a [`DriverRegistry`] and the store picks one by the configured
//! name.
//!
//! Mirrors upstream's `drivers/driver.go`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use std::sync::Arc;

use crate::archive_runtime::{ArchiveProvider, NativeOnly};
use crate::idmap::IdMappings;
use crate::parsed_tar::{LayerTar, SharedParsedTar};
use crate::syscalls::Syscalls;

/// Errors a graph driver reports.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The driver cannot run here: a missing kernel feature, a wrong or incompatible
    /// filesystem, a missing prerequisite (upstream's `ErrNotSupported`, `ErrPrerequisites`
    /// and `ErrIncompatibleFS`). The text is the whole message, ending with upstream's words
    /// for the kind ([`DriverError::not_supported`], [`DriverError::prerequisites`],
    /// [`DriverError::incompatible_fs`] add them), so that a message upstream cached on disk
    /// reads the same when given back. A store choosing a driver by priority tries the next.
    #[error("{0}")]
    NotSupported(String),
    /// An option given to the driver is unknown or malformed.
    #[error("{0}")]
    BadOption(String),
    /// An option names a file or directory that cannot be used.
    #[error("{message}: {}", storage_archive::error::os_error_text(source))]
    OptionPath {
        /// What is wrong with the option (`overlay: can't stat imageStore dir /x`).
        message: String,
        /// Why the path cannot be used.
        #[source]
        source: std::io::Error,
    },
    /// A layer ID that cannot name a directory (empty, `.`, `..`, with a `/` or a NUL).
    #[error("invalid layer id {0:?}")]
    InvalidLayerId(String),
    /// The container's root (0:0) has no host IDs in the layer's ID mapping.
    #[error("container root is not mapped to the host")]
    UnmappedRoot,
    /// A file's owner has no IDs in the layer's ID mapping (re-owning a layer).
    #[error("owner {uid}:{gid} of {} is not in the layer's ID mapping", path.display())]
    UnmappedOwner {
        /// The file's user ID.
        uid: u32,
        /// The file's group ID.
        gid: u32,
        /// The file.
        path: PathBuf,
    },
    /// Project quotas cannot be used here or read (not enabled on the filesystem, a
    /// directory that is not empty, no quota set for a directory).
    #[error("{0}")]
    Quota(String),
    /// The layer does not exist in the driver.
    #[error("layer {0:?} not known to the driver")]
    LayerNotFound(String),
    /// The layer already exists in the driver.
    #[error("layer {0:?} already exists in the driver")]
    LayerExists(String),
    /// The operation is not implemented by this driver.
    #[error("driver does not support {0}")]
    Unsupported(&'static str),
    /// Applying or producing an archive failed.
    #[error(transparent)]
    Archive(#[from] storage_archive::ArchiveError),
    /// The component runtime failed (loading or compiling a component, a guest stopped):
    /// the component host's error, whose text names the component.
    #[error("{0}")]
    Component(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A driver component cannot be used: it does not compile, asks for what the host
    /// never grants, or does not instantiate (upstream's words for a driver that cannot
    /// start); the component host's error.
    #[error("driver not supported: {0}")]
    ComponentUnusable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A filesystem or system call failed.
    #[error("{context}: {}", storage_archive::error::os_error_text(source))]
    Io {
        /// What the driver was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl DriverError {
    /// Upstream's `ErrNotSupported`: `{detail}: driver not supported`.
    pub fn not_supported(detail: impl std::fmt::Display) -> Self {
        DriverError::NotSupported(format!("{detail}: driver not supported"))
    }

    /// Upstream's `ErrPrerequisites`: `{detail}: prerequisites for driver not satisfied
    /// (wrong filesystem?)`.
    pub fn prerequisites(detail: impl std::fmt::Display) -> Self {
        DriverError::NotSupported(format!(
            "{detail}: prerequisites for driver not satisfied (wrong filesystem?)"
        ))
    }

    /// Upstream's `ErrIncompatibleFS`: `{detail}: backing file system is unsupported for this
    /// graph driver`.
    pub fn incompatible_fs(detail: impl std::fmt::Display) -> Self {
        DriverError::NotSupported(format!(
            "{detail}: backing file system is unsupported for this graph driver"
        ))
    }

    /// Whether the driver cannot run here at all (upstream's `isDriverNotSupported`): a store
    /// choosing by priority goes on to the next driver.
    pub fn cannot_run_here(&self) -> bool {
        matches!(
            self,
            DriverError::NotSupported(_) | DriverError::ComponentUnusable(_)
        )
    }

    /// Wraps an I/O error with what the driver was doing.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        DriverError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Result type of driver operations.
pub type DriverResult<T> = std::result::Result<T, DriverError>;

/// What a driver is given when it starts (upstream's `drivers.Options`).
#[derive(Debug, Clone)]
pub struct DriverInit {
    /// The driver's home: `<graphroot>/<driver name>`.
    pub home: PathBuf,
    /// The graph root.
    pub graph_root: PathBuf,
    /// The run root (volatile state such as feature caches).
    pub run_root: PathBuf,
    /// The split image store root, if any (`--image-store`).
    pub image_store: Option<PathBuf>,
    /// Driver options (`--storage-opt`), as `key=value` strings, already stripped of nothing:
    /// the driver parses its own prefix (`overlay.`, `.`).
    pub options: Vec<String>,
    /// ID mappings of the store.
    pub id_mappings: IdMappings,
    /// Where the driver's archive work runs (see [`crate::archive_runtime`]).
    pub archive: Arc<dyn ArchiveProvider>,
    /// The privileged system calls the driver makes (see [`crate::syscalls`]): the real
    /// ones, or a test double.
    pub syscalls: Arc<dyn Syscalls>,
}

impl Default for DriverInit {
    fn default() -> Self {
        DriverInit {
            home: PathBuf::new(),
            graph_root: PathBuf::new(),
            run_root: PathBuf::new(),
            image_store: None,
            options: Vec::new(),
            id_mappings: IdMappings::default(),
            archive: Arc::new(NativeOnly),
            syscalls: crate::syscalls::real(),
        }
    }
}

/// Options for creating a layer (upstream's `CreateOpts`).
#[derive(Debug, Clone, Default)]
pub struct CreateOpts {
    /// SELinux mount label.
    pub mount_label: String,
    /// Per-layer driver options (for example `size`).
    pub storage_opt: BTreeMap<String, String>,
    /// ID mappings of the new layer.
    pub id_mappings: IdMappings,
}

/// Options for making a layer available (upstream's `MountOpts`).
#[derive(Debug, Clone, Default)]
pub struct MountOpts {
    /// SELinux mount label.
    pub mount_label: String,
    /// ID mappings to present the layer with.
    pub id_mappings: IdMappings,
    /// Mount options, for example `ro`.
    pub options: Vec<String>,
    /// The layer belongs to a volatile container.
    pub volatile: bool,
}

/// Options for applying a layer archive (upstream's `ApplyDiffOpts`).
#[derive(Debug, Clone, Default)]
pub struct ApplyDiffOpts {
    /// ID mappings of the layer: archive owners are container IDs, mapped to host IDs on disk.
    pub id_mappings: IdMappings,
    /// SELinux mount label.
    pub mount_label: String,
    /// Ignore failures to change ownership (rootless).
    pub ignore_chown_errors: bool,
    /// Force this permission mask on what is written (`force_mask`).
    pub force_mask: Option<u32>,
    /// The same tar as the `diff` being applied, with its headers already parsed (the store
    /// parses every header of an import to record tar-split): the archive logic reads the
    /// entries from it instead of parsing `diff` again, so a driver that hands the tar to
    /// its archive logic passes [`ApplyDiffOpts::layer_tar`]. One or the other is read,
    /// never both.
    pub parsed: Option<SharedParsedTar>,
    /// The caller has no use for the returned size (the store's import records the
    /// archive's own sizes, not the driver's). A driver that measures its tree after
    /// applying (overlay's native path, upstream's `directory.Size`) may then return the
    /// size the archive logic applied instead, and spare a walk of every file of the layer.
    pub size_unused: bool,
}

impl ApplyDiffOpts {
    /// The tar to apply: the parsed one when there is one, else `diff`.
    pub fn layer_tar<'a>(&self, diff: &'a mut dyn Read) -> LayerTar<'a> {
        match &self.parsed {
            Some(parsed) => LayerTar::Parsed(parsed.clone()),
            None => LayerTar::Stream(diff),
        }
    }
}

/// The kind of a change between two layers; the numbers are upstream's JSON values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeKind {
    /// The path exists in both, with different content or metadata.
    Modify = 0,
    /// The path exists only in the newer layer.
    Add = 1,
    /// The path exists only in the older layer.
    Delete = 2,
}

/// One changed path (upstream's `archive.Change`), path absolute (`/a/b`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Change {
    /// Absolute path inside the layer, starting with `/`; bytes, as names need not be UTF-8.
    pub path: Vec<u8>,
    /// What happened to it.
    pub kind: ChangeKind,
}

/// Reads files of a layer by path, for re-creating an imported archive from tar-split
/// without mounting (upstream's `DiffGetter`).
pub trait FileGetter {
    /// Opens the file at `path` (relative to the layer root; bytes, as tar-split keeps
    /// names that are not UTF-8) for reading.
    fn get(&mut self, path: &[u8]) -> DriverResult<Box<dyn Read + '_>>;
}

/// A graph driver: keeps the file trees of layers (upstream's `Driver`).
///
/// All methods take `&self`: the store serialises calls under `storage.lock`, and a driver
/// keeps whatever state it needs behind its own interior mutability.
pub trait GraphDriver: Send + Sync {
    /// The driver's name (`overlay`, `vfs`, `btrfs`, or a plugin's name).
    fn name(&self) -> &str;

    /// The driver's home directory.
    fn home(&self) -> &Path;

    /// Creates a layer intended to stay read-only (an image layer), starting as the content
    /// of `parent` (or empty).
    fn create(&self, id: &str, parent: Option<&str>, opts: &CreateOpts) -> DriverResult<()>;

    /// Creates a writable layer (a container layer), starting as the content of `parent`.
    fn create_read_write(
        &self,
        id: &str,
        parent: Option<&str>,
        opts: &CreateOpts,
    ) -> DriverResult<()>;

    /// Removes a layer's data. Removing a layer the driver does not have is not an error.
    fn remove(&self, id: &str) -> DriverResult<()>;

    /// Makes the layer's content available and returns the directory where it is. The store
    /// counts mounts; the driver is called only for the first.
    fn get(&self, id: &str, opts: &MountOpts) -> DriverResult<PathBuf>;

    /// Releases what `get` set up (unmounts).
    fn put(&self, id: &str) -> DriverResult<()>;

    /// Whether the driver has data for the layer.
    fn exists(&self, id: &str) -> bool;

    /// Every layer ID the driver has data for.
    fn list_layers(&self) -> DriverResult<Vec<String>>;

    /// Diagnostic pairs shown by `storage status`.
    fn status(&self) -> Vec<(String, String)>;

    /// Driver-specific facts about one layer (overlay: `LowerDir`, `UpperDir`, ...).
    fn metadata(&self, id: &str) -> DriverResult<BTreeMap<String, String>>;

    /// Releases everything the driver holds (called by `shutdown`).
    fn cleanup(&self) -> DriverResult<()>;

    /// Extracts an uncompressed layer archive into layer `id`; returns the number of bytes
    /// applied (upstream's size result).
    fn apply_diff(
        &self,
        id: &str,
        parent: Option<&str>,
        diff: &mut dyn Read,
        opts: &ApplyDiffOpts,
    ) -> DriverResult<u64>;

    /// Writes an uncompressed tar of the changes of `id` against `parent` (the whole layer
    /// when `parent` is `None`), with whiteouts in `.wh.` form. `id_mappings` are the ones
    /// `id` is stored with (the tar's owners are container IDs through them),
    /// `parent_mappings` the parent's: a layer re-owned for other mappings than its
    /// parent's has not changed its files (upstream's `Diff(id, idMappings, parent,
    /// parentMappings)`).
    fn diff(
        &self,
        id: &str,
        id_mappings: &IdMappings,
        parent: Option<&str>,
        parent_mappings: &IdMappings,
        out: &mut dyn Write,
    ) -> DriverResult<()>;

    /// Lists the changes of `id` against `parent` (mappings as for [`GraphDriver::diff`]).
    fn changes(
        &self,
        id: &str,
        id_mappings: &IdMappings,
        parent: Option<&str>,
        parent_mappings: &IdMappings,
    ) -> DriverResult<Vec<Change>>;

    /// The size of the changed content of `id` against `parent` (mappings as for
    /// [`GraphDriver::diff`]).
    fn diff_size(
        &self,
        id: &str,
        id_mappings: &IdMappings,
        parent: Option<&str>,
        parent_mappings: &IdMappings,
    ) -> DriverResult<u64>;

    /// Opens files of a layer by path without mounting it, for tar-split reassembly.
    /// Drivers that cannot return `Unsupported`, and the store mounts the layer instead.
    fn diff_getter(&self, id: &str) -> DriverResult<Box<dyn FileGetter + '_>> {
        let _ = id;
        Err(DriverError::Unsupported("diff getter"))
    }

    /// Read-only graph roots named by the driver's `imagestore` options.
    fn additional_image_stores(&self) -> Vec<PathBuf> {
        Vec::new()
    }

    /// Re-owns every file of a layer from one ID mapping to another (upstream's
    /// `UpdateLayerIDMap`).
    fn update_layer_id_map(
        &self,
        id: &str,
        to_container: &IdMappings,
        to_host: &IdMappings,
        mount_label: &str,
    ) -> DriverResult<()> {
        let _ = (id, to_container, to_host, mount_label);
        Err(DriverError::Unsupported("changing a layer's ID mapping"))
    }

    /// Whether the driver can present a layer with other ID mappings at mount time, so no
    /// chowned copy is needed.
    fn supports_shifting(&self, id_mappings: &IdMappings) -> bool {
        let _ = id_mappings;
        false
    }

    /// Shares the extents of identical files among the given layers (upstream's `Dedup`);
    /// layers the driver does not hold in a writable home are skipped. Drivers whose layers
    /// are not plain file trees say `Unsupported`.
    fn dedup(
        &self,
        layers: &[String],
        method: crate::dedup::HashMethod,
    ) -> DriverResult<crate::dedup::DedupResult> {
        let _ = (layers, method);
        Err(DriverError::Unsupported("dedup"))
    }
}

/// Creates a driver from its start-up options. A closure, so a factory can carry what it was
/// configured with (a plugin's component file and limits).
pub type DriverFactory =
    std::sync::Arc<dyn Fn(&DriverInit) -> DriverResult<Box<dyn GraphDriver>> + Send + Sync>;

/// The drivers a binary links, by name, and the archive logic they are given.
#[derive(Clone)]
pub struct DriverRegistry {
    factories: BTreeMap<String, DriverFactory>,
    archive: Arc<dyn ArchiveProvider>,
    syscalls: Arc<dyn Syscalls>,
}

impl Default for DriverRegistry {
    fn default() -> Self {
        DriverRegistry {
            factories: BTreeMap::new(),
            archive: Arc::new(NativeOnly),
            syscalls: crate::syscalls::real(),
        }
    }
}

impl DriverRegistry {
    /// An empty registry whose drivers get only the native archive logic.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets where the drivers started from this registry run their archive work.
    pub fn set_archive_provider(&mut self, provider: Arc<dyn ArchiveProvider>) {
        self.archive = provider;
    }

    /// Where the drivers started from this registry run their archive work.
    pub fn archive_provider(&self) -> Arc<dyn ArchiveProvider> {
        Arc::clone(&self.archive)
    }

    /// Sets the system calls the drivers started from this registry (and the store that
    /// starts them) make: a test puts a double here.
    pub fn set_syscalls(&mut self, syscalls: Arc<dyn Syscalls>) {
        self.syscalls = syscalls;
    }

    /// The system calls the drivers started from this registry make.
    pub fn syscalls(&self) -> Arc<dyn Syscalls> {
        Arc::clone(&self.syscalls)
    }

    /// Registers a driver under `name`, replacing any earlier one of that name.
    pub fn register(
        &mut self,
        name: &str,
        factory: impl Fn(&DriverInit) -> DriverResult<Box<dyn GraphDriver>> + Send + Sync + 'static,
    ) {
        self.factories.insert(name.to_string(), Arc::new(factory));
    }

    /// The factory registered under `name`.
    pub fn factory(&self, name: &str) -> Option<DriverFactory> {
        self.factories.get(name).cloned()
    }

    /// The names of every registered driver, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.factories.keys().map(String::as_str)
    }
}

/// A third-party driver component registered in `[plugins.<name>]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PluginConfig {
    /// Path of the `.wasm` component.
    pub component: PathBuf,
    /// Memory limit of one instance, in bytes.
    pub memory_limit: Option<u64>,
    /// Deadline of one call, in milliseconds.
    pub deadline_ms: Option<u64>,
}
