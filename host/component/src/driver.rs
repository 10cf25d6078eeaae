//! A graph driver served by a component (world `driver-plugin`): the host lends the driver its
//! home for each call, and performs nothing the driver asks without checking it (mounts go
//! through [`super::mounts`]).

use std::path::{Path, PathBuf};

use wasmtime::component::{Linker, Resource};
use wasmtime::Store;

use super::bindings::driver::exports::storage::plugin::driver as wit;
use super::bindings::driver::{DriverPlugin, DriverPluginPre};
use super::bindings::storage::plugin::{archive_types, types};
use super::engine::{LoadedComponent, Runtime};
use super::error::ComponentError;
use super::host_fs::{DriverHomes, HostState, LentDir, LentInput, LentOutput};
use super::limits::PluginLimits;
use super::mounts::{check_mount_requests, CheckedMount};
use storage_driver::idmap::IdMappings;
use storage_driver::{Change, ChangeKind, CreateOpts, DriverError, DriverResult, MountOpts};

/// Where a layer is, as the host can use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerLocation {
    /// A directory inside the driver's home, absolute.
    Directory(PathBuf),
    /// Mounts to perform, checked: sources inside the home, allowed types and options.
    Mounts(Vec<CheckedMount>),
}

/// A driver component bound to its home.
pub struct DriverComponent {
    loaded: LoadedComponent,
    pre: DriverPluginPre<HostState>,
    engine: wasmtime::Engine,
    limits: PluginLimits,
    home: PathBuf,
    init: wit::InitOptions,
    homes: DriverHomes,
}

/// One call's Store and instance, after `init`.
struct Call<'c> {
    owner: &'c DriverComponent,
    store: Store<HostState>,
    plugin: DriverPlugin,
}

fn id_mapping_to_wit(m: &IdMappings) -> types::IdMapping {
    let ranges = |maps: &[storage_driver::idmap::IdMap]| {
        maps.iter()
            .map(|m| types::IdRange {
                container_id: m.container_id,
                host_id: m.host_id,
                size: m.size,
            })
            .collect()
    };
    types::IdMapping {
        uids: ranges(&m.uids),
        gids: ranges(&m.gids),
    }
}

impl DriverComponent {
    /// Links a loaded driver component; `home` is created if missing and lent at every call.
    pub fn new(
        runtime: &Runtime,
        loaded: LoadedComponent,
        limits: PluginLimits,
        home: &Path,
        options: Vec<String>,
        id_mappings: &IdMappings,
    ) -> Result<Self, ComponentError> {
        let instantiate_error = |e: wasmtime::Error| ComponentError::Instantiate {
            name: loaded.name.clone(),
            message: format!("{e:#}"),
        };
        let mut linker = Linker::new(runtime.engine());
        DriverPlugin::add_to_linker::<HostState, wasmtime::component::HasSelf<HostState>>(
            &mut linker,
            |state| state,
        )
        .map_err(instantiate_error)?;
        super::archive::define_used_resources(&mut linker).map_err(instantiate_error)?;
        define_homes_resources(&mut linker).map_err(instantiate_error)?;
        define_archive_resources(&mut linker).map_err(instantiate_error)?;
        // The WASI a component is granted (random, wall clock, stderr: `crate::wasi`);
        // whatever else std pulled in traps if called, naming the import.
        crate::wasi::define_granted(&mut linker, runtime.engine(), &loaded.component)
            .map_err(instantiate_error)?;
        linker
            .define_unknown_imports_as_traps(&loaded.component)
            .map_err(instantiate_error)?;
        let pre = linker
            .instantiate_pre(&loaded.component)
            .and_then(DriverPluginPre::new)
            .map_err(instantiate_error)?;
        // Readable by the owner only, as upstream's drivers make their homes.
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(home)
            .map_err(|source| ComponentError::Io {
                name: loaded.name.clone(),
                context: format!("create home {}", home.display()),
                source,
            })?;
        Ok(DriverComponent {
            engine: runtime.engine().clone(),
            loaded,
            pre,
            limits,
            home: home.to_path_buf(),
            init: wit::InitOptions {
                options,
                id_mapping: id_mapping_to_wit(id_mappings),
            },
            homes: DriverHomes::default(),
        })
    }

    /// The other homes (split image store, read-only image stores) the driver may ask for
    /// through the `homes` interface.
    pub fn with_homes(mut self, homes: DriverHomes) -> Self {
        self.homes = homes;
        self
    }

    /// The loaded component (for `storage status`: name, digest, WIT version).
    pub fn loaded(&self) -> &LoadedComponent {
        &self.loaded
    }

    /// The driver's home.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// A fresh instance with its home lent and `init` called.
    fn start(&self) -> DriverResult<Call<'_>> {
        let mut store = super::call::new_store(&self.engine, &self.limits);
        store.data_mut().homes = self.homes.clone();
        let name = &self.loaded.name;
        let plugin = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| super::call::stop_error(name, &store, "instantiate", e))?;
        let home = LentDir::open(&self.home)
            .map_err(|e| DriverError::io(format!("open driver home {}", self.home.display()), e))?;
        let home: Resource<LentDir> = store
            .data_mut()
            .table
            .push(home)
            .map_err(|e| DriverError::io("lend home", std::io::Error::other(e)))?;
        let mut call = Call {
            owner: self,
            store,
            plugin,
        };
        let result =
            call.plugin
                .storage_plugin_driver()
                .call_init(&mut call.store, home, &self.init);
        // What a successful `init` wrote stays in the Store and is logged with the output of
        // the call it precedes.
        if !matches!(result, Ok(Ok(()))) {
            call.finish("init", result)?;
        }
        Ok(call)
    }

    /// Creates a read-only layer.
    pub fn create(&self, id: &str, parent: Option<&str>, opts: &CreateOpts) -> DriverResult<()> {
        let mut call = self.start()?;
        let opts = create_options(opts);
        let r = call
            .plugin
            .storage_plugin_driver()
            .call_create(&mut call.store, id, parent, &opts);
        call.finish("create", r)
    }

    /// Creates a read-write layer.
    pub fn create_read_write(
        &self,
        id: &str,
        parent: Option<&str>,
        opts: &CreateOpts,
    ) -> DriverResult<()> {
        let mut call = self.start()?;
        let opts = create_options(opts);
        let r = call.plugin.storage_plugin_driver().call_create_read_write(
            &mut call.store,
            id,
            parent,
            &opts,
        );
        call.finish("create-read-write", r)
    }

    /// Removes a layer.
    pub fn remove(&self, id: &str) -> DriverResult<()> {
        let mut call = self.start()?;
        let r = call
            .plugin
            .storage_plugin_driver()
            .call_remove(&mut call.store, id);
        call.finish("remove", r)
    }

    /// Where layer `id` is: a directory inside the home, or checked mounts.
    pub fn get(&self, id: &str, opts: &MountOpts) -> DriverResult<LayerLocation> {
        let mut call = self.start()?;
        let options = wit::GetOptions {
            mount_label: opts.mount_label.clone(),
            id_mapping: id_mapping_to_wit(&opts.id_mappings),
            options: opts.options.clone(),
        };
        let r = call
            .plugin
            .storage_plugin_driver()
            .call_get(&mut call.store, id, &options);
        match call.finish("get", r)? {
            wit::LayerLocation::Directory(path) => {
                let dir = checked_directory(&self.home, &path)?;
                Ok(LayerLocation::Directory(dir))
            }
            wit::LayerLocation::ImageHomeDirectory(path) => {
                let home = self.homes.image_home.as_ref().ok_or_else(|| {
                    DriverError::not_supported(format!(
                        "{}: get answered a directory in an image store the store does not have",
                        self.loaded.name
                    ))
                })?;
                Ok(LayerLocation::Directory(checked_directory(home, &path)?))
            }
            wit::LayerLocation::ReadOnlyDirectory((index, path)) => {
                let home = usize::try_from(index)
                    .ok()
                    .and_then(|i| self.homes.read_only_homes.get(i))
                    .ok_or_else(|| {
                        DriverError::not_supported(format!(
                            "{}: get answered a directory in read-only home {index}, which does not exist",
                            self.loaded.name
                        ))
                    })?;
                Ok(LayerLocation::Directory(checked_directory(home, &path)?))
            }
            wit::LayerLocation::Mounts(requests) => check_mount_requests(&self.home, &requests)
                .map(LayerLocation::Mounts)
                .map_err(|e| DriverError::not_supported(format!("{}: {e}", self.loaded.name))),
        }
    }

    /// Releases what `get` asked for.
    pub fn put(&self, id: &str) -> DriverResult<()> {
        let mut call = self.start()?;
        let r = call
            .plugin
            .storage_plugin_driver()
            .call_put(&mut call.store, id);
        call.finish("put", r)
    }

    /// Whether layer `id` exists. The contract's `exists` answers a bool, as upstream's
    /// `Exists` does, so a component that fails here (a trap, an error from `init`) is logged
    /// as a warning with its message, and the layer is taken as missing.
    pub fn exists(&self, id: &str) -> bool {
        self.try_exists(id).unwrap_or_else(|e| {
            log::warn!("exists {id}: {}", self.failure_line(&e));
            false
        })
    }

    /// Whether layer `id` exists, or how the component failed to say.
    fn try_exists(&self, id: &str) -> DriverResult<bool> {
        let mut call = self.start()?;
        let r = call
            .plugin
            .storage_plugin_driver()
            .call_exists(&mut call.store, id);
        call.finish("exists", r.map(Ok))
    }

    /// Starts an instance and runs `init` alone: what reports bad options (and a home the
    /// driver cannot use) when the driver starts, as upstream's drivers do, without the work
    /// of another call.
    pub fn check_init(&self) -> DriverResult<()> {
        let call = self.start()?;
        call.finish("init", Ok(Ok(())))
    }

    /// Every layer the driver holds.
    pub fn list_layers(&self) -> DriverResult<Vec<String>> {
        let mut call = self.start()?;
        let r = call
            .plugin
            .storage_plugin_driver()
            .call_list_layers(&mut call.store);
        call.finish("list-layers", r)
    }

    /// The driver's status lines, after the host's own: which component serves the driver,
    /// then the component's own lines. The contract's `status` has no error (upstream's
    /// `Status() [][2]string`): a component that fails there (a trap, an error from `init`)
    /// gives one line, `Driver Status Error`, with its message.
    pub fn status(&self) -> Vec<(String, String)> {
        let mut lines = vec![
            ("Component".to_string(), self.loaded.name.clone()),
            ("Component Digest".to_string(), self.loaded.digest.clone()),
            (
                "WIT Version".to_string(),
                format!("storage:plugin@{}", self.loaded.wit_version),
            ),
        ];
        match self.driver_status() {
            Ok(more) => lines.extend(more),
            Err(e) => lines.push(("Driver Status Error".to_string(), self.failure_line(&e))),
        }
        lines
    }

    /// A failure on one line naming the component: the component host's error names it
    /// already (without the `component:` the contract's error wraps it in), an error the
    /// guest returned does not.
    fn failure_line(&self, e: &DriverError) -> String {
        let message = match e {
            DriverError::Component(inner) => inner.to_string(),
            other => format!("component {}: {other}", self.loaded.name),
        };
        super::graph_driver::one_line(&message)
    }

    /// The component's own status lines, or how it failed to give them.
    fn driver_status(&self) -> DriverResult<Vec<(String, String)>> {
        let mut call = self.start()?;
        let r = call
            .plugin
            .storage_plugin_driver()
            .call_status(&mut call.store);
        call.finish("status", r.map(Ok))
    }

    /// Driver-specific metadata of a layer.
    pub fn metadata(&self, id: &str) -> DriverResult<Vec<(String, String)>> {
        let mut call = self.start()?;
        let r = call
            .plugin
            .storage_plugin_driver()
            .call_metadata(&mut call.store, id);
        call.finish("metadata", r)
    }

    /// Releases what the driver holds.
    pub fn cleanup(&self) -> DriverResult<()> {
        let mut call = self.start()?;
        let r = call
            .plugin
            .storage_plugin_driver()
            .call_cleanup(&mut call.store);
        call.finish("cleanup", r)
    }
}

impl DriverComponent {
    /// Applies an uncompressed layer tar to layer `id`; returns the applied size.
    pub fn apply_diff(
        &self,
        id: &str,
        parent: Option<&str>,
        input: Box<dyn std::io::Read + Send>,
        opts: &storage_driver::ApplyDiffOpts,
    ) -> DriverResult<u64> {
        self.apply_diff_lent(id, parent, LentInput::new(input), opts)
    }

    /// [`Self::apply_diff`] of a lent input (a parsed tar is lent with its entries).
    pub(crate) fn apply_diff_lent(
        &self,
        id: &str,
        parent: Option<&str>,
        input: LentInput,
        opts: &storage_driver::ApplyDiffOpts,
    ) -> DriverResult<u64> {
        let mut call = self.start()?;
        let input = call.push(input)?;
        let options = archive_types::ApplyOptions {
            whiteout_format: archive_types::WhiteoutFormat::Aufs,
            rootless_overlay: false,
            id_mapping: id_mapping_to_wit(&opts.id_mappings),
            force_mask: opts.force_mask,
            ignore_chown_errors: opts.ignore_chown_errors,
            skip_device_nodes: storage_driver::idmap::running_in_user_namespace(),
        };
        let r = call.plugin.storage_plugin_driver().call_apply_diff(
            &mut call.store,
            id,
            parent,
            input,
            &options,
        );
        call.finish("apply-diff", r)
    }

    /// Writes the tar of the changes of `id` against `parent` to `out`; gives `out` back.
    pub fn diff(
        &self,
        id: &str,
        id_mappings: &IdMappings,
        parent: Option<&str>,
        parent_mappings: &IdMappings,
        out: Box<dyn std::io::Write + Send>,
    ) -> DriverResult<Box<dyn std::io::Write + Send>> {
        let mut call = self.start()?;
        let out = call.push(LentOutput::new(out))?;
        let rep = out.rep();
        let r = call.plugin.storage_plugin_driver().call_diff(
            &mut call.store,
            id,
            &id_mapping_to_wit(id_mappings),
            parent,
            &id_mapping_to_wit(parent_mappings),
            out,
        );
        call.finish("diff", r)?;
        call.store
            .data_mut()
            .table
            .delete(Resource::<LentOutput>::new_own(rep))
            .ok()
            .and_then(LentOutput::into_writer)
            .ok_or_else(|| DriverError::io("diff", std::io::Error::other("output lost")))
    }

    /// Changes of `id` against `parent`, each side's owners read with its mappings.
    pub fn changes(
        &self,
        id: &str,
        id_mappings: &IdMappings,
        parent: Option<&str>,
        parent_mappings: &IdMappings,
    ) -> DriverResult<Vec<Change>> {
        let mut call = self.start()?;
        let r = call.plugin.storage_plugin_driver().call_changes(
            &mut call.store,
            id,
            &id_mapping_to_wit(id_mappings),
            parent,
            &id_mapping_to_wit(parent_mappings),
        );
        let changes = call.finish("changes", r)?;
        Ok(changes
            .into_iter()
            .map(|c| Change {
                path: [&b"/"[..], &c.path].concat(),
                kind: match c.kind {
                    archive_types::ChangeKind::Add => ChangeKind::Add,
                    archive_types::ChangeKind::Modify => ChangeKind::Modify,
                    archive_types::ChangeKind::Delete => ChangeKind::Delete,
                },
            })
            .collect())
    }

    /// Size of the changed content of `id` against `parent` (mappings as for `changes`).
    pub fn diff_size(
        &self,
        id: &str,
        id_mappings: &IdMappings,
        parent: Option<&str>,
        parent_mappings: &IdMappings,
    ) -> DriverResult<u64> {
        let mut call = self.start()?;
        let r = call.plugin.storage_plugin_driver().call_diff_size(
            &mut call.store,
            id,
            &id_mapping_to_wit(id_mappings),
            parent,
            &id_mapping_to_wit(parent_mappings),
        );
        call.finish("diff-size", r)
    }
}

/// Defines, in the `homes` instance, the directory resource it `use`s from the filesystem
/// interface (the generated `add_to_linker` defines a resource only in its own interface).
fn define_homes_resources(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    let version = super::WIT_PACKAGE
        .split_once('@')
        .map(|(_, v)| v)
        .unwrap_or_default();
    linker
        .instance(&format!("storage:plugin/homes@{version}"))?
        .resource(
            "directory",
            wasmtime::component::ResourceType::host::<LentDir>(),
            |_, _| Ok(()),
        )?;
    Ok(())
}

/// Defines in the `archive` instance a driver imports the resources it `use`s (as
/// [`define_homes_resources`] does for `homes`).
fn define_archive_resources(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    use wasmtime::component::ResourceType;
    let version = crate::WIT_PACKAGE
        .split_once('@')
        .map(|(_, v)| v)
        .unwrap_or_default();
    let mut archive = linker.instance(&format!("storage:plugin/archive@{version}"))?;
    archive.resource("directory", ResourceType::host::<LentDir>(), |_, _| Ok(()))?;
    archive.resource("input-stream", ResourceType::host::<LentInput>(), |_, _| {
        Ok(())
    })?;
    archive.resource(
        "output-stream",
        ResourceType::host::<LentOutput>(),
        |_, _| Ok(()),
    )?;
    Ok(())
}

/// A directory answer must be a clean path to a real directory inside the home.
fn checked_directory(home: &Path, path: &[u8]) -> DriverResult<PathBuf> {
    let request = [wit::MountRequest {
        fstype: "bind".into(),
        sources: vec![path.to_vec()],
        options: Vec::new(),
    }];
    let checked = check_mount_requests(home, &request)
        .map_err(|e| DriverError::not_supported(format!("get answered a bad directory: {e}")))?;
    checked
        .into_iter()
        .next()
        .and_then(|m| m.sources.into_iter().next())
        .ok_or_else(|| DriverError::not_supported("get answered no directory"))
}

fn create_options(opts: &CreateOpts) -> wit::CreateOptions {
    wit::CreateOptions {
        mount_label: opts.mount_label.clone(),
        storage_opt: opts
            .storage_opt
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        id_mapping: id_mapping_to_wit(&opts.id_mappings),
    }
}

impl Call<'_> {
    fn push<T: Send + 'static>(&mut self, value: T) -> DriverResult<Resource<T>> {
        self.store
            .data_mut()
            .table
            .push(value)
            .map_err(|e| DriverError::io("lend", std::io::Error::other(e)))
    }

    /// A trap stops the guest (the Store goes with `self`); an error it returned is the
    /// driver's. What the guest wrote is logged under `--debug` either way.
    fn finish<T>(
        &self,
        call: &'static str,
        result: wasmtime::Result<Result<T, wit::DriverError>>,
    ) -> DriverResult<T> {
        match result {
            Ok(answer) => {
                super::call::log_guest_output(&self.owner.loaded.name, call, &self.store);
                answer.map_err(|e| driver_error(call, e))
            }
            Err(e) => {
                Err(super::call::stop_error(&self.owner.loaded.name, &self.store, call, e).into())
            }
        }
    }
}

/// The guest's error as the host's.
fn driver_error(call: &'static str, e: wit::DriverError) -> DriverError {
    use wit::DriverError as W;
    match e {
        W::NotSupported(m) => DriverError::not_supported(m),
        W::BadOption(m) => DriverError::BadOption(m),
        W::LayerNotFound(id) => DriverError::LayerNotFound(id),
        W::LayerExists(id) => DriverError::LayerExists(id),
        W::Unsupported(_) => DriverError::Unsupported(call),
        W::Archive(e) => DriverError::Archive(super::archive::archive_error_from_wit(e)),
        W::Fs((context, e)) => DriverError::io(
            context,
            if e.errno > 0 {
                std::io::Error::from_raw_os_error(e.errno)
            } else {
                std::io::Error::other(e.message)
            },
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::OnceLock;

    use super::*;
    use crate::test_guests::wasm;
    use crate::RuntimeConfig;

    fn runtime() -> &'static Runtime {
        static RUNTIME: OnceLock<Runtime> = OnceLock::new();
        RUNTIME.get_or_init(|| Runtime::new(RuntimeConfig::default()).unwrap())
    }

    fn driver(package: &str, home: &Path) -> DriverComponent {
        let loaded = runtime()
            .load(&format!("{package}.wasm"), wasm(package))
            .unwrap();
        DriverComponent::new(
            runtime(),
            loaded,
            PluginLimits::default(),
            home,
            Vec::new(),
            &Default::default(),
        )
        .unwrap()
    }

    #[test]
    fn a_driver_using_hash_sets_and_the_wall_clock_works() {
        let tmp = tempfile::tempdir().unwrap();
        let driver = driver("storage-test-guest-example-driver", tmp.path());
        let opts = CreateOpts::default();
        driver.create("b", None, &opts).unwrap();
        driver.create("a", None, &opts).unwrap();
        // The guest collects the layers in a `HashSet` (seeded from `wasi:random`).
        assert_eq!(driver.list_layers().unwrap(), ["a", "b"]);
        // And dates its answer by `wasi:clocks/wall-clock`.
        let now = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
        };
        let before = now();
        let metadata = driver.metadata("a").unwrap();
        let after = now();
        let read_at: u64 = metadata
            .iter()
            .find(|(k, _)| k == "Read At")
            .map(|(_, v)| v.parse().unwrap())
            .unwrap();
        assert!((before..=after).contains(&read_at), "{metadata:?}");
    }

    #[test]
    fn a_panic_is_quoted_and_a_denied_import_named() {
        let tmp = tempfile::tempdir().unwrap();
        let driver = driver("storage-test-guest-hostile-driver", tmp.path());
        let opts = CreateOpts::default();
        let err = driver.create("panic", None, &opts).unwrap_err().to_string();
        assert!(
            err.contains(
                "component storage-test-guest-hostile-driver.wasm trapped during create: \
                 panicked at host/guests/hostile-driver/src/lib.rs:"
            ),
            "{err}"
        );
        assert!(
            err.ends_with(
                ": the hostile driver refuses layer \"panic\" on purpose \
                 (wasm trap: wasm `unreachable` instruction executed)"
            ),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");
        let err = driver.create("stdin", None, &opts).unwrap_err().to_string();
        assert!(err.contains("wasi:cli/stdin@0.2."), "{err}");
        assert!(err.contains("#get-stdin` has not been defined"), "{err}");
        // The instance was dropped with the trap: the next call works.
        driver.create("fine", None, &opts).unwrap();
        assert_eq!(driver.list_layers().unwrap(), ["fine"]);
    }
}
