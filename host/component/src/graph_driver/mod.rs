//! A [`GraphDriver`] served by a driver component: the store calls it like any native driver,
//! the component decides where layers are, and the host performs (with its own privilege) the
//! mounts the component's `get` asks for once [`super::mounts`] has checked them, undoing
//! them at `put`. Whatever stops the guest (a trap, its memory limit, its deadline) is a
//! [`DriverError`] of one line, so the store rolls the layer back and the user reads why.
//!
//! Precompiled artifacts are cached where the archive component's are
//! ([`crate::cache::process_cache_dir`]: root's system cache, a user's own cache), one per
//! component for every store, so a new store does not compile the driver again. The
//! `<graphroot>/<driver>-components` of earlier versions is removed when a store starts.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod bridge;
mod naive;

use super::driver::{DriverComponent, LayerLocation};
use super::engine::{LoadedComponent, Runtime, RuntimeConfig};
use super::error::{ComponentError, Rephrased};
use super::host_fs::{DriverHomes, LentInput};
use super::limits::PluginLimits;
use super::mounts::LayerMounts;
use storage_driver::archive_runtime::ArchiveProvider;
use storage_driver::dedup::{DedupResult, HashMethod};
use storage_driver::idmap::IdMappings;
use storage_driver::PluginConfig;
use storage_driver::{
    ApplyDiffOpts, Change, CreateOpts, DriverError, DriverInit, DriverRegistry, DriverResult,
    GraphDriver, MountOpts,
};

/// Where a driver's component comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentSource {
    /// Embedded in the binary: its name (`builtin:vfs`) and bytes.
    Builtin {
        /// The name reported by `storage status`.
        name: &'static str,
        /// The component bytes.
        bytes: &'static [u8],
        /// Their SHA-256 (hex), computed by the build script that embedded them: the cache
        /// key, without hashing the bytes at every start.
        sha256: &'static str,
    },
    /// A `.wasm` file named by `[plugins.<name>]` in `storage.toml`.
    File(PathBuf),
}

/// A graph driver whose logic runs in a component.
pub struct ComponentGraphDriver {
    name: String,
    component: DriverComponent,
    /// Kept alive for its deadline timer: without it no call would ever be interrupted.
    _runtime: Runtime,
    image_stores: Vec<PathBuf>,
    /// The mounts the host performs for the component's layers.
    mounts: LayerMounts,
    /// The archive logic of the host's naive diff ([`naive`]), for a component that leaves
    /// apply-diff, diff, changes or diff-size to the host.
    archive: Arc<dyn ArchiveProvider>,
    /// The driver's `ignore_chown_errors` option, for the naive diff's apply.
    ignore_chown_errors: bool,
}

/// Registers a component embedded in the binary as driver `name` (the binary decides the
/// names; `source` is its `Builtin` bytes and the name `storage status` reports).
pub fn register_builtin(registry: &mut DriverRegistry, name: &str, source: ComponentSource) {
    let driver_name = name.to_string();
    registry.register(name, move |init: &DriverInit| {
        ComponentGraphDriver::start(&driver_name, &source, PluginLimits::default(), init)
            .map(|d| Box::new(d) as Box<dyn GraphDriver>)
    });
}

/// Registers every `[plugins.<name>]` of the configuration as driver `<name>` (replacing a
/// built-in of the same name: the configuration is the administrator's word).
pub fn register_plugins(registry: &mut DriverRegistry, plugins: &BTreeMap<String, PluginConfig>) {
    for (name, config) in plugins {
        let driver_name = name.clone();
        let source = ComponentSource::File(config.component.clone());
        let limits = PluginLimits::from_config(config);
        registry.register(name, move |init: &DriverInit| {
            ComponentGraphDriver::start(&driver_name, &source, limits, init)
                .map(|d| Box::new(d) as Box<dyn GraphDriver>)
        });
    }
}

/// Removes the per-store cache of driver `name` that earlier versions kept in the graph root
/// (module docs): its artifacts and temp files, then the directory if nothing else is in it.
/// Best effort: a failure is logged.
fn remove_old_cache(graph_root: &Path, name: &str) {
    let dir = graph_root.join(format!("{name}-components"));
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let file_name = file_name.to_string_lossy();
        if file_name.ends_with(".cwasm") || file_name.contains(".tmp.") {
            storage_driver::cleanup::log_failure(
                format_args!("removing the old artifact {}", entry.path().display()),
                std::fs::remove_file(entry.path()),
            );
        }
    }
    storage_driver::cleanup::log_failure(
        format_args!("removing the old cache {}", dir.display()),
        std::fs::remove_dir(&dir),
    );
}

/// A runtime error as one line: wasmtime's messages carry a wasm backtrace, one frame a line,
/// which would split `error initializing: ...` and hide the reason at the end.
pub fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .filter(|line| !is_backtrace_frame(line) && !line.starts_with("note:"))
        // The headers of what was dropped say nothing on their own.
        .filter(|line| *line != "error while executing at wasm backtrace:" && *line != "Caused by:")
        .collect::<Vec<_>>()
        .join(" ")
}

/// `0: 0x1f - <unknown>!func` or `at src/lib.rs:3:5`.
fn is_backtrace_frame(line: &str) -> bool {
    let numbered = line
        .split_once(':')
        .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    numbered || line.starts_with("at ")
}

fn component_error(e: ComponentError) -> DriverError {
    match e {
        ComponentError::Archive { source, .. } => DriverError::Archive(source),
        other => DriverError::Component(Box::new(on_one_line(other))),
    }
}

/// A component error whose text is kept on one line (see [`one_line`]).
fn on_one_line(e: ComponentError) -> Rephrased {
    Rephrased {
        text: one_line(&e.to_string()),
        source: e,
    }
}

/// A driver component that cannot be loaded or linked.
fn unusable(e: ComponentError) -> DriverError {
    DriverError::ComponentUnusable(Box::new(on_one_line(e)))
}

/// Keeps an error of the guest on one line (see [`one_line`]).
fn tidy(e: DriverError) -> DriverError {
    match e {
        // An error of a system call is one line already, and stays one (its number kept).
        DriverError::Io { context, source } if source.raw_os_error().is_none() => DriverError::Io {
            context,
            source: std::io::Error::new(source.kind(), one_line(&source.to_string())),
        },
        other => other,
    }
}

/// The values of driver `name`'s option `key` (`<name>.<key>=...` or `.<key>=...`, keys
/// without regard to case), in the order given.
fn option_values<'a>(name: &str, key: &str, options: &'a [String]) -> Vec<&'a str> {
    let own = format!("{name}.{key}");
    let bare = format!(".{key}");
    options
        .iter()
        .filter_map(|o| o.split_once('='))
        .filter(|(k, _)| {
            let k = k.trim().to_ascii_lowercase();
            k == own || k == bare
        })
        .map(|(_, v)| v)
        .collect()
}

/// The `imagestore` options of driver `name` (`<name>.imagestore=/a,/b`, `.imagestore=/c`).
fn image_stores(name: &str, options: &[String]) -> Vec<PathBuf> {
    option_values(name, "imagestore", options)
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .collect()
}

/// The `ignore_chown_errors` option of driver `name` (`<name>.ignore_chown_errors=true`,
/// `.ignore_chown_errors=true`; the last one given wins), which upstream's vfs honours when it
/// applies a layer: the host's naive diff does the same for any component it applies for.
fn ignore_chown_errors(name: &str, options: &[String]) -> bool {
    option_values(name, "ignore_chown_errors", options)
        .last()
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// The driver's homes in the split image store (created) and in the read-only image stores
/// (those that exist): `<root>/<driver>`.
fn other_homes(
    name: &str,
    init: &DriverInit,
    image_stores: &[PathBuf],
) -> DriverResult<DriverHomes> {
    let image_home = match &init.image_store {
        Some(root) => {
            let home = root.join(name);
            std::fs::create_dir_all(&home)
                .map_err(|e| DriverError::io(format!("create {}", home.display()), e))?;
            Some(home)
        }
        None => None,
    };
    Ok(DriverHomes {
        image_home,
        read_only_homes: image_stores
            .iter()
            .map(|root| root.join(name))
            .filter(|home| home.is_dir())
            .collect(),
    })
}

impl ComponentGraphDriver {
    /// Loads the component (through the process's cache), links it to `init.home` and calls
    /// its `init`.
    pub fn start(
        name: &str,
        source: &ComponentSource,
        limits: PluginLimits,
        init: &DriverInit,
    ) -> DriverResult<Self> {
        Self::start_with_cache(
            name,
            source,
            limits,
            init,
            crate::cache::process_cache_dir(),
        )
    }

    /// [`ComponentGraphDriver::start`] with the cache in `cache_dir` (`None`: compile in
    /// memory).
    pub fn start_with_cache(
        name: &str,
        source: &ComponentSource,
        limits: PluginLimits,
        init: &DriverInit,
        cache_dir: Option<PathBuf>,
    ) -> DriverResult<Self> {
        remove_old_cache(&init.graph_root, name);
        let runtime = Runtime::new(RuntimeConfig { cache_dir }).map_err(component_error)?;
        let loaded: LoadedComponent = match source {
            ComponentSource::Builtin {
                name,
                bytes,
                sha256,
            } => runtime.load_digested(name, bytes, sha256),
            ComponentSource::File(path) => runtime.load_file(path),
        }
        .map_err(unusable)?;
        let image_stores = image_stores(name, &init.options);
        let component = DriverComponent::new(
            &runtime,
            loaded,
            limits,
            &init.home,
            init.options.clone(),
            &init.id_mappings,
        )
        .map_err(unusable)?
        .with_homes(other_homes(name, init, &image_stores)?);
        // `init` runs at every call; running it once now reports bad options at start-up,
        // as upstream's drivers do.
        component.check_init().map_err(tidy)?;
        let mounts = LayerMounts::new(
            init.run_root.join(format!("{name}-mounts")),
            Arc::clone(&init.syscalls),
        );
        mounts.reclaim_private_dirs();
        Ok(ComponentGraphDriver {
            name: name.to_string(),
            component,
            _runtime: runtime,
            image_stores,
            mounts,
            archive: Arc::clone(&init.archive),
            ignore_chown_errors: ignore_chown_errors(name, &init.options),
        })
    }

    /// The component serving this driver.
    pub fn component(&self) -> &DriverComponent {
        &self.component
    }
}

impl GraphDriver for ComponentGraphDriver {
    fn name(&self) -> &str {
        &self.name
    }

    fn home(&self) -> &Path {
        self.component.home()
    }

    fn create(&self, id: &str, parent: Option<&str>, opts: &CreateOpts) -> DriverResult<()> {
        self.component.create(id, parent, opts).map_err(tidy)
    }

    fn create_read_write(
        &self,
        id: &str,
        parent: Option<&str>,
        opts: &CreateOpts,
    ) -> DriverResult<()> {
        self.component
            .create_read_write(id, parent, opts)
            .map_err(tidy)
    }

    fn remove(&self, id: &str) -> DriverResult<()> {
        self.mounts.undo(id)?;
        self.component.remove(id).map_err(tidy)
    }

    fn get(&self, id: &str, opts: &MountOpts) -> DriverResult<PathBuf> {
        match self.component.get(id, opts).map_err(tidy)? {
            LayerLocation::Directory(dir) => Ok(dir),
            LayerLocation::Mounts(mounts) if mounts.is_empty() => Err(DriverError::not_supported(
                format!("{}: get asked for no mount", self.name),
            )),
            LayerLocation::Mounts(mounts) => self.mounts.perform(id, &mounts),
        }
    }

    fn put(&self, id: &str) -> DriverResult<()> {
        self.mounts.undo(id)?;
        self.component.put(id).map_err(tidy)
    }

    fn exists(&self, id: &str) -> bool {
        self.component.exists(id)
    }

    fn list_layers(&self) -> DriverResult<Vec<String>> {
        self.component.list_layers().map_err(tidy)
    }

    fn status(&self) -> Vec<(String, String)> {
        self.component.status()
    }

    fn metadata(&self, id: &str) -> DriverResult<BTreeMap<String, String>> {
        Ok(self
            .component
            .metadata(id)
            .map_err(tidy)?
            .into_iter()
            .collect())
    }

    fn cleanup(&self) -> DriverResult<()> {
        self.component.cleanup().map_err(tidy)
    }

    fn apply_diff(
        &self,
        id: &str,
        parent: Option<&str>,
        diff: &mut dyn Read,
        opts: &ApplyDiffOpts,
    ) -> DriverResult<u64> {
        if let Some(parsed) = &opts.parsed {
            // An import's tar, owned and parsed: lent as is, entries and all.
            let lent = LentInput::parsed(parsed.clone());
            return match self.component.apply_diff_lent(id, parent, lent, opts) {
                // Left to the host before a byte was read: the naive diff applies it.
                Err(DriverError::Unsupported(_)) if parsed.delivered() == 0 => {
                    naive::apply_diff(self, id, diff, opts)
                }
                Err(e) => Err(tidy(e)),
                Ok(size) => Ok(size),
            };
        }
        // The guest's stream must own its reader, and `diff` is borrowed: the guest runs on
        // a scoped thread reading chunks this thread feeds from `diff`, a few at a time, once
        // it has asked for the first.
        let (feeder, reader) = bridge::input();
        let (result, fed) = std::thread::scope(|scope| {
            let guest = scope.spawn(|| {
                self.component
                    .apply_diff(id, parent, Box::new(reader), opts)
            });
            let fed = bridge::feed(diff, feeder);
            (join_guest(guest), fed)
        });
        match (result?, fed) {
            // Left to the host before a byte was read: the naive diff applies it.
            (Err(DriverError::Unsupported(_)), Ok(bridge::Fed::Untouched)) => {
                naive::apply_diff(self, id, diff, opts)
            }
            // A guest that stopped early closed the channel: its error is the one to report.
            (Err(e), _) => Err(tidy(e)),
            (Ok(_), Err(e)) => Err(DriverError::io("read layer", e)),
            (Ok(size), Ok(_)) => Ok(size),
        }
    }

    fn diff(
        &self,
        id: &str,
        id_mappings: &IdMappings,
        parent: Option<&str>,
        parent_mappings: &IdMappings,
        out: &mut dyn Write,
    ) -> DriverResult<()> {
        let (writer, receiver) = bridge::output();
        let (result, drained) = std::thread::scope(|scope| {
            let guest = scope.spawn(|| {
                // Dropping the writer it gives back closes the channel and ends the drain.
                self.component
                    .diff(id, id_mappings, parent, parent_mappings, Box::new(writer))
                    .map(drop)
            });
            let drained = bridge::drain(receiver, out);
            (join_guest(guest), drained)
        });
        match (result?, drained) {
            // Left to the host before a byte was written: the naive diff writes it.
            (Err(DriverError::Unsupported(_)), Ok(0)) => {
                naive::diff(self, id, id_mappings, parent, parent_mappings, out)
            }
            (Err(e), _) => Err(tidy(e)),
            (Ok(()), drained) => drained
                .map(drop)
                .map_err(|e| DriverError::io("write diff", e)),
        }
    }

    fn changes(
        &self,
        id: &str,
        id_mappings: &IdMappings,
        parent: Option<&str>,
        parent_mappings: &IdMappings,
    ) -> DriverResult<Vec<Change>> {
        match self
            .component
            .changes(id, id_mappings, parent, parent_mappings)
        {
            Err(DriverError::Unsupported(_)) => {
                naive::changes(self, id, id_mappings, parent, parent_mappings)
            }
            other => other.map_err(tidy),
        }
    }

    fn diff_size(
        &self,
        id: &str,
        id_mappings: &IdMappings,
        parent: Option<&str>,
        parent_mappings: &IdMappings,
    ) -> DriverResult<u64> {
        match self
            .component
            .diff_size(id, id_mappings, parent, parent_mappings)
        {
            Err(DriverError::Unsupported(_)) => {
                naive::diff_size(self, id, id_mappings, parent, parent_mappings)
            }
            other => other.map_err(tidy),
        }
    }

    fn additional_image_stores(&self) -> Vec<PathBuf> {
        self.image_stores.clone()
    }

    /// Done by the host: a component never gets the ioctl. Layers whose `get` answers with
    /// a directory inside the home (vfs) are walked through directory handles; a layer
    /// that needs mounts cannot be deduplicated this way.
    fn dedup(&self, layers: &[String], method: HashMethod) -> DriverResult<DedupResult> {
        let opts = MountOpts {
            options: vec!["ro".to_string()],
            ..Default::default()
        };
        let mut dirs = Vec::new();
        let mut needs_mounts = false;
        for id in layers {
            if !self.component.exists(id) {
                continue;
            }
            match self.component.get(id, &opts) {
                Ok(LayerLocation::Directory(dir)) => dirs.push(dir),
                Ok(LayerLocation::Mounts(_)) => needs_mounts = true,
                // Not in the home (a read-only store's layer): left alone.
                Err(e) => log::debug!("dedup: skipping layer {id}: {e}"),
            }
            self.component.put(id).map_err(tidy)?;
        }
        if needs_mounts {
            return Err(DriverError::Unsupported("dedup of layers that need mounts"));
        }
        Ok(storage_driver::dedup::dedup_dirs(&dirs, method))
    }

    /// The component says where the layer is; the host re-owns it (the component cannot
    /// chown anything but what an archive names).
    fn update_layer_id_map(
        &self,
        id: &str,
        to_container: &IdMappings,
        to_host: &IdMappings,
        mount_label: &str,
    ) -> DriverResult<()> {
        let opts = MountOpts {
            mount_label: mount_label.to_string(),
            ..Default::default()
        };
        let root = self.get(id, &opts)?;
        let reowned =
            storage_driver::reown::reown_tree(self.mounts.syscalls(), &root, to_container, to_host);
        let put = self.put(id);
        reowned?;
        put
    }
}

/// The result of the guest's thread.
fn join_guest<T>(
    handle: std::thread::ScopedJoinHandle<'_, DriverResult<T>>,
) -> DriverResult<DriverResult<T>> {
    handle.join().map_err(|_| {
        DriverError::io(
            "component call",
            std::io::Error::other("the thread running the guest panicked"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_options_the_host_reads_take_the_name_or_the_bare_prefix() {
        let options = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(ignore_chown_errors(
            "acme",
            &options(&["acme.ignore_chown_errors=true"])
        ));
        assert!(ignore_chown_errors(
            "acme",
            &options(&[".IGNORE_CHOWN_ERRORS = True"])
        ));
        // The last one given wins; another driver's is not ours.
        assert!(!ignore_chown_errors(
            "acme",
            &options(&[
                "acme.ignore_chown_errors=true",
                ".ignore_chown_errors=false"
            ])
        ));
        assert!(!ignore_chown_errors(
            "acme",
            &options(&["vfs.ignore_chown_errors=true"])
        ));
        assert_eq!(
            image_stores(
                "acme",
                &options(&["acme.imagestore=/a,/b", ".imagestore=/c"])
            ),
            [PathBuf::from("/a"), "/b".into(), "/c".into()]
        );
    }
}
