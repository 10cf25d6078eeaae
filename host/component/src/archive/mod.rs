//! The archive component: `storage-archive`'s apply, diff, changes and sizes run inside a
//! sandbox, on directories and streams the host lends for each call.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use wasmtime::component::{Linker, Resource};
use wasmtime::Store;

use crate::bindings::storage::plugin::archive_types;
use crate::bindings::{ArchivePlugin, ArchivePluginPre};
use crate::builtin::{ARCHIVE_COMPONENT, ARCHIVE_COMPONENT_NAME};
use crate::engine::{LoadedComponent, Runtime, RuntimeConfig};
use crate::error::ComponentError;
use crate::host_fs::{HostState, LentDir, LentInput, LentOutput};
use crate::limits::PluginLimits;
use crate::stream_pump;
use storage_driver::parsed_tar::LayerTar;

mod convert;
mod relay;

pub(crate) use convert::archive_error_from_wit;
use convert::{apply_options_to_wit, changes_from_wit, diff_options_to_wit, id_mapping_to_wit};

pub use crate::cache::SYSTEM_CACHE_DIR;

/// The process-wide runtime and built-in archive component, made on first use (a command
/// that runs no archive operation never loads wasmtime artifacts). A failure is kept (shared):
/// every later use reports it again.
static BUILTIN: OnceLock<Result<(Runtime, ArchiveComponent), Arc<ComponentError>>> =
    OnceLock::new();

/// The built-in archive component of this process with the default limits: the runtime
/// and the compiled component are made once, on the first call, and reused.
pub fn builtin() -> Result<&'static ArchiveComponent, ComponentError> {
    let loaded = BUILTIN.get_or_init(|| {
        let runtime = Runtime::new(RuntimeConfig {
            cache_dir: crate::cache::process_cache_dir(),
        })
        .map_err(Arc::new)?;
        let component = runtime
            .load_digested(
                ARCHIVE_COMPONENT_NAME,
                ARCHIVE_COMPONENT,
                crate::builtin::ARCHIVE_COMPONENT_SHA256,
            )
            .and_then(|loaded| ArchiveComponent::new(&runtime, loaded, PluginLimits::default()))
            .map_err(Arc::new)?;
        Ok((runtime, component))
    });
    match loaded {
        Ok((_, component)) => Ok(component),
        Err(first) => Err(ComponentError::BuiltinUnavailable {
            name: ARCHIVE_COMPONENT_NAME.to_string(),
            source: Arc::clone(first),
        }),
    }
}

/// A loaded archive component with its limits; each call gets a fresh instance and Store.
#[derive(Clone)]
pub struct ArchiveComponent {
    loaded: LoadedComponent,
    /// Linked and type-checked once; each call only instantiates.
    pre: ArchivePluginPre<HostState>,
    engine: wasmtime::Engine,
    limits: PluginLimits,
}

/// Defines, in the filesystem and entries instances, the resources they `use`. The generated
/// `add_to_linker` defines each resource only in its own interface; a component importing the
/// filesystem functions that take streams also expects them there, and the trap stubs of
/// `define_unknown_imports_as_traps` would otherwise give them a type of their own.
pub fn define_used_resources(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    use wasmtime::component::ResourceType;
    let mut filesystem =
        linker.instance(&format!("storage:plugin/filesystem@{}", wit_version()))?;
    filesystem.resource("input-stream", ResourceType::host::<LentInput>(), |_, _| {
        Ok(())
    })?;
    filesystem.resource(
        "output-stream",
        ResourceType::host::<LentOutput>(),
        |_, _| Ok(()),
    )?;
    let mut entries = linker.instance(&format!("storage:plugin/entries@{}", wit_version()))?;
    entries.resource("input-stream", ResourceType::host::<LentInput>(), |_, _| {
        Ok(())
    })?;
    entries.resource("directory", ResourceType::host::<LentDir>(), |_, _| Ok(()))?;
    let mut headers = linker.instance(&format!("storage:plugin/tar-headers@{}", wit_version()))?;
    headers.resource("input-stream", ResourceType::host::<LentInput>(), |_, _| {
        Ok(())
    })?;
    Ok(())
}

/// The version part of [`super::WIT_PACKAGE`].
fn wit_version() -> &'static str {
    super::WIT_PACKAGE
        .split_once('@')
        .map(|(_, v)| v)
        .unwrap_or_default()
}

/// One call's Store and instance.
struct Call<'c> {
    owner: &'c ArchiveComponent,
    store: Store<HostState>,
    plugin: ArchivePlugin,
}

impl ArchiveComponent {
    /// Links a loaded component against the host interfaces.
    pub fn new(
        runtime: &Runtime,
        loaded: LoadedComponent,
        limits: PluginLimits,
    ) -> Result<Self, ComponentError> {
        let instantiate_error = |e: wasmtime::Error| ComponentError::Instantiate {
            name: loaded.name.clone(),
            message: format!("{e:#}"),
        };
        let mut linker = Linker::new(runtime.engine());
        ArchivePlugin::add_to_linker::<HostState, wasmtime::component::HasSelf<HostState>>(
            &mut linker,
            |state| state,
        )
        .map_err(instantiate_error)?;
        define_used_resources(&mut linker).map_err(instantiate_error)?;
        // The WASI a component is granted (random, wall clock, stderr: `crate::wasi`);
        // whatever else std pulled in traps if called, naming the import.
        crate::wasi::define_granted(&mut linker, runtime.engine(), &loaded.component)
            .map_err(instantiate_error)?;
        linker
            .define_unknown_imports_as_traps(&loaded.component)
            .map_err(instantiate_error)?;
        // Type-checks the imports now: a component that does not fit the world fails here,
        // at load, not in the middle of a command.
        let pre = linker
            .instantiate_pre(&loaded.component)
            .and_then(ArchivePluginPre::new)
            .map_err(instantiate_error)?;
        Ok(ArchiveComponent {
            engine: runtime.engine().clone(),
            loaded,
            pre,
            limits,
        })
    }

    /// The loaded component (name, digest, whether it came from the cache).
    pub fn loaded(&self) -> &LoadedComponent {
        &self.loaded
    }

    /// The limits every call runs under.
    pub fn limits(&self) -> PluginLimits {
        self.limits
    }

    /// The same component with other limits (cheap: the compiled code and the linking are
    /// shared).
    pub fn with_limits(&self, limits: PluginLimits) -> ArchiveComponent {
        ArchiveComponent {
            limits,
            ..self.clone()
        }
    }

    /// [`Self::apply_diff`] from a borrowed reader (see [`stream_pump`]), or of a tar whose
    /// headers were parsed (lent as is: the guest takes its entries, `tar-headers`).
    pub fn apply_diff_from(
        &self,
        dir: &Path,
        input: LayerTar<'_>,
        options: &storage_archive::ApplyOptions,
    ) -> Result<u64, ComponentError> {
        match input {
            LayerTar::Stream(input) => stream_pump::with_input(input, |input| {
                self.apply_diff_lent(dir, LentInput::new(input), options)
            }),
            LayerTar::Parsed(parsed) => {
                self.apply_diff_lent(dir, LentInput::parsed(parsed), options)
            }
        }
    }

    /// [`Self::overlay_diff`] into a borrowed writer (see [`stream_pump`]).
    pub fn overlay_diff_to(
        &self,
        upper: &Path,
        lowers: &[PathBuf],
        out: &mut dyn Write,
        options: &storage_archive::DiffOptions,
        overlay: &storage_archive::OverlayOptions,
    ) -> Result<(), ComponentError> {
        let written = stream_pump::with_output(out, |out| {
            self.overlay_diff(upper, lowers, out, options, overlay)
                .map(drop)
        });
        self.pumped(written)
    }

    /// [`Self::diff`] into a borrowed writer (see [`stream_pump`]).
    pub fn diff_to(
        &self,
        layer: &Path,
        parent: Option<&Path>,
        parent_mapping: &storage_archive::IdMapping,
        out: &mut dyn Write,
        options: &storage_archive::DiffOptions,
    ) -> Result<(), ComponentError> {
        let written = stream_pump::with_output(out, |out| {
            self.diff(layer, parent, parent_mapping, out, options)
                .map(drop)
        });
        self.pumped(written)
    }

    /// The outcome of a pumped output call: the writer's own error comes first (the guest
    /// only saw its consequence, a closed output).
    fn pumped(
        &self,
        written: std::io::Result<Result<(), ComponentError>>,
    ) -> Result<(), ComponentError> {
        written.map_err(|source| ComponentError::Archive {
            name: self.loaded.name.clone(),
            source: storage_archive::ArchiveError::Stream(source),
        })?
    }

    /// A fresh Store with the limits, and the instance in it.
    fn start(&self) -> Result<Call<'_>, ComponentError> {
        let mut store = super::call::new_store(&self.engine, &self.limits);
        let plugin = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| self.stopped(&store, "instantiate", e))?;
        Ok(Call {
            owner: self,
            store,
            plugin,
        })
    }

    /// Turns a wasmtime error of a call into the one error the caller sees.
    fn stopped(
        &self,
        store: &Store<HostState>,
        call: &'static str,
        e: wasmtime::Error,
    ) -> ComponentError {
        super::call::stop_error(&self.loaded.name, store, call, e)
    }

    fn archive_error(&self, e: archive_types::ArchiveError) -> ComponentError {
        ComponentError::Archive {
            name: self.loaded.name.clone(),
            source: archive_error_from_wit(e),
        }
    }

    fn io_error(&self, context: String, source: std::io::Error) -> ComponentError {
        ComponentError::Io {
            name: self.loaded.name.clone(),
            context,
            source,
        }
    }

    /// Applies the uncompressed layer tar `input` to `dir`; returns the applied size.
    pub fn apply_diff(
        &self,
        dir: &Path,
        input: Box<dyn Read + Send>,
        options: &storage_archive::ApplyOptions,
    ) -> Result<u64, ComponentError> {
        self.apply_diff_lent(dir, LentInput::new(input), options)
    }

    /// [`Self::apply_diff`] of a lent input.
    fn apply_diff_lent(
        &self,
        dir: &Path,
        input: LentInput,
        options: &storage_archive::ApplyOptions,
    ) -> Result<u64, ComponentError> {
        let mut call = self.start()?;
        let dir = call.lend_dir(dir)?;
        let input = call.push(input)?;
        let options = apply_options_to_wit(options);
        let result = call.plugin.storage_plugin_archive().call_apply_diff(
            &mut call.store,
            dir,
            input,
            &options,
        );
        call.finish("apply-diff", result)
    }

    /// Writes a tar of the whole tree at `dir` to `out`; gives `out` back.
    pub fn write_tree(
        &self,
        dir: &Path,
        out: Box<dyn Write + Send>,
        options: &storage_archive::DiffOptions,
    ) -> Result<Box<dyn Write + Send>, ComponentError> {
        let mut call = self.start()?;
        let dir = call.lend_dir(dir)?;
        let (out, out_rep) = call.lend_output(out)?;
        let options = diff_options_to_wit(options);
        let result = call.plugin.storage_plugin_archive().call_write_tree(
            &mut call.store,
            dir,
            out,
            &options,
        );
        call.finish("write-tree", result)?;
        call.take_output(out_rep)
    }

    /// Writes the naive diff of `layer` against `parent` (whose owners are read with
    /// `parent_mapping`) to `out`; gives `out` back.
    pub fn diff(
        &self,
        layer: &Path,
        parent: Option<&Path>,
        parent_mapping: &storage_archive::IdMapping,
        out: Box<dyn Write + Send>,
        options: &storage_archive::DiffOptions,
    ) -> Result<Box<dyn Write + Send>, ComponentError> {
        let mut call = self.start()?;
        let layer = call.lend_dir(layer)?;
        let parent = parent.map(|p| call.lend_dir(p)).transpose()?;
        let (out, out_rep) = call.lend_output(out)?;
        let options = diff_options_to_wit(options);
        let parent_mapping = id_mapping_to_wit(parent_mapping);
        let result = call.plugin.storage_plugin_archive().call_diff(
            &mut call.store,
            layer,
            parent,
            &parent_mapping,
            out,
            &options,
        );
        call.finish("diff", result)?;
        call.take_output(out_rep)
    }

    /// Naive changes of `layer` against `parent`, each side's owners read with its mapping.
    pub fn changes(
        &self,
        layer: &Path,
        parent: Option<&Path>,
        mapping: &storage_archive::IdMapping,
        parent_mapping: &storage_archive::IdMapping,
    ) -> Result<Vec<storage_archive::Change>, ComponentError> {
        let mut call = self.start()?;
        let layer = call.lend_dir(layer)?;
        let parent = parent.map(|p| call.lend_dir(p)).transpose()?;
        let mapping = id_mapping_to_wit(mapping);
        let parent_mapping = id_mapping_to_wit(parent_mapping);
        let result = call.plugin.storage_plugin_archive().call_changes(
            &mut call.store,
            layer,
            parent,
            &mapping,
            &parent_mapping,
        );
        call.finish("changes", result).map(changes_from_wit)
    }

    /// Size of the changed content of `layer` against `parent` (mappings as for
    /// [`ArchiveComponent::changes`]).
    pub fn diff_size(
        &self,
        layer: &Path,
        parent: Option<&Path>,
        mapping: &storage_archive::IdMapping,
        parent_mapping: &storage_archive::IdMapping,
    ) -> Result<u64, ComponentError> {
        let mut call = self.start()?;
        let layer = call.lend_dir(layer)?;
        let parent = parent.map(|p| call.lend_dir(p)).transpose()?;
        let mapping = id_mapping_to_wit(mapping);
        let parent_mapping = id_mapping_to_wit(parent_mapping);
        let result = call.plugin.storage_plugin_archive().call_diff_size(
            &mut call.store,
            layer,
            parent,
            &mapping,
            &parent_mapping,
        );
        call.finish("diff-size", result)
    }

    /// Size of the tree at `dir`.
    pub fn tree_size(&self, dir: &Path) -> Result<u64, ComponentError> {
        let mut call = self.start()?;
        let dir = call.lend_dir(dir)?;
        let result = call
            .plugin
            .storage_plugin_archive()
            .call_tree_size(&mut call.store, dir);
        call.finish("tree-size", result)
    }

    /// Writes the diff recorded in the overlay upper dir `upper` (`lowers` topmost first).
    pub fn overlay_diff(
        &self,
        upper: &Path,
        lowers: &[PathBuf],
        out: Box<dyn Write + Send>,
        options: &storage_archive::DiffOptions,
        overlay: &storage_archive::OverlayOptions,
    ) -> Result<Box<dyn Write + Send>, ComponentError> {
        let mut call = self.start()?;
        let upper = call.lend_dir(upper)?;
        let lowers = lowers
            .iter()
            .map(|p| call.lend_dir(p))
            .collect::<Result<Vec<_>, _>>()?;
        let (out, out_rep) = call.lend_output(out)?;
        let options = diff_options_to_wit(options);
        let overlay = archive_types::OverlayOptions {
            rootless: overlay.rootless,
        };
        let result = call.plugin.storage_plugin_archive().call_overlay_diff(
            &mut call.store,
            upper,
            &lowers,
            out,
            &options,
            overlay,
        );
        call.finish("overlay-diff", result)?;
        call.take_output(out_rep)
    }

    /// Changes recorded in the overlay upper dir `upper` (`lowers` topmost first).
    pub fn overlay_changes(
        &self,
        upper: &Path,
        lowers: &[PathBuf],
        overlay: &storage_archive::OverlayOptions,
    ) -> Result<Vec<storage_archive::Change>, ComponentError> {
        let mut call = self.start()?;
        let upper = call.lend_dir(upper)?;
        let lowers = lowers
            .iter()
            .map(|p| call.lend_dir(p))
            .collect::<Result<Vec<_>, _>>()?;
        let overlay = archive_types::OverlayOptions {
            rootless: overlay.rootless,
        };
        let result = call.plugin.storage_plugin_archive().call_overlay_changes(
            &mut call.store,
            upper,
            &lowers,
            overlay,
        );
        call.finish("overlay-changes", result).map(changes_from_wit)
    }
}

impl Call<'_> {
    fn push<T: Send + 'static>(&mut self, value: T) -> Result<Resource<T>, ComponentError> {
        self.store
            .data_mut()
            .table
            .push(value)
            .map_err(|e| self.owner.io_error("lend".into(), std::io::Error::other(e)))
    }

    fn lend_dir(&mut self, path: &Path) -> Result<Resource<LentDir>, ComponentError> {
        let dir = LentDir::open(path)
            .map_err(|e| self.owner.io_error(format!("open {}", path.display()), e))?;
        self.push(dir)
    }

    /// Lends `out`; the second handle is the host's, to take the writer back.
    fn lend_output(
        &mut self,
        out: Box<dyn Write + Send>,
    ) -> Result<(Resource<LentOutput>, u32), ComponentError> {
        let handle = self.push(LentOutput::new(out))?;
        let rep = handle.rep();
        Ok((handle, rep))
    }

    fn take_output(mut self, rep: u32) -> Result<Box<dyn Write + Send>, ComponentError> {
        self.reclaim_output(rep).ok_or_else(|| {
            self.owner
                .io_error("take output".into(), std::io::Error::other("output lost"))
        })
    }

    /// The writer lent as output handle `rep`, out of the Store (none if the guest dropped
    /// the handle it owned).
    fn reclaim_output(&mut self, rep: u32) -> Option<Box<dyn Write + Send>> {
        self.store
            .data_mut()
            .table
            .delete(Resource::<LentOutput>::new_own(rep))
            .ok()
            .and_then(LentOutput::into_writer)
    }

    /// The reader lent as input handle `rep`, out of the Store.
    fn reclaim_input(&mut self, rep: u32) -> Option<Box<dyn Read + Send>> {
        self.store
            .data_mut()
            .table
            .delete(Resource::<LentInput>::new_own(rep))
            .ok()
            .and_then(LentInput::into_reader)
    }

    /// The call's outcome as the guest gave it (its own error untouched, for a driver the
    /// call is relayed for), or why it stopped. What the guest wrote is logged under
    /// `--debug`.
    fn finish_raw<T>(
        &self,
        call: &'static str,
        result: wasmtime::Result<Result<T, archive_types::ArchiveError>>,
    ) -> Result<Result<T, archive_types::ArchiveError>, ComponentError> {
        match result {
            Ok(answer) => {
                super::call::log_guest_output(&self.owner.loaded.name, call, &self.store);
                Ok(answer)
            }
            Err(e) => Err(self.owner.stopped(&self.store, call, e)),
        }
    }

    /// Maps the call's outcome: a trap stops the guest (the Store is dropped with `self`),
    /// an error it returned is an archive error. What the guest wrote is logged under
    /// `--debug` either way.
    fn finish<T>(
        &self,
        call: &'static str,
        result: wasmtime::Result<Result<T, archive_types::ArchiveError>>,
    ) -> Result<T, ComponentError> {
        match result {
            Ok(answer) => {
                super::call::log_guest_output(&self.owner.loaded.name, call, &self.store);
                answer.map_err(|e| self.owner.archive_error(e))
            }
            Err(e) => Err(self.owner.stopped(&self.store, call, e)),
        }
    }
}
