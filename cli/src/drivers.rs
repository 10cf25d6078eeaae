//! The graph drivers this binary serves, registered by name: the native overlay and btrfs drivers, the
//! vfs driver (a component embedded in the binary) and every third-party driver component the
//! configuration names in `[plugins.<name>]`.

use std::collections::BTreeMap;
use storage_component_host::archive_provider::ComponentArchiveProvider;
use storage_component_host::graph_driver::{register_builtin, register_plugins};
use storage_component_host::ComponentSource;

use storage_driver::DriverRegistry;
use storage_store::config::{self, PluginConfig, StoreOptions};
use storage_store::error::StoreError;

/// A registry with every built-in driver and the configured plugins.
pub fn registry(opts: &StoreOptions) -> DriverRegistry {
    let mut registry = DriverRegistry::new();
    // Native drivers run their archive work in the sandboxed archive component.
    registry.set_archive_provider(std::sync::Arc::new(ComponentArchiveProvider));
    register_linked(&mut registry);
    register_plugins(&mut registry, &configured_plugins(opts));
    registry
}

/// The `[plugins.*]` of the configuration. A store flag (`--graph`, `--storage-driver`...)
/// makes the options skip the configuration file, as upstream does; the plugins are read from
/// it anyway, so `--storage-driver <plugin>` works: they register drivers, they are not store
/// options. A configuration that cannot be read then registers nothing.
fn configured_plugins(opts: &StoreOptions) -> BTreeMap<String, PluginConfig> {
    if !opts.plugins.is_empty() {
        return opts.plugins.clone();
    }
    config::load_default_options()
        .map(|loaded| loaded.options.plugins)
        .unwrap_or_default()
}

/// What follows upstream's `failed to GetDriver graph NAME ROOT: driver not supported` when
/// the driver asked for is not registered: which configuration file the plugins were read
/// from (or that none was found and the built-in default served), and how a component
/// driver is registered. Empty for any other error.
pub fn unregistered_driver_hint(e: &StoreError, opts: &StoreOptions) -> String {
    match e {
        StoreError::DriverNotSupported { name, .. }
            if !name.is_empty() && *name == opts.driver_name =>
        {
            let read = match config::load_default_options() {
                Ok(loaded) if loaded.source == config::BUILTIN_CONFIG_NAME => {
                    "no configuration file was found, the built-in default served, and it has"
                        .to_string()
                }
                Ok(loaded) => format!("configuration file {} has", loaded.source),
                Err(e) => format!("the configuration could not be read ({e}), so there is"),
            };
            format!(
                " ({read} no [plugins.{name}]; [plugins.{name}] component = \"/path/to/driver.wasm\" \
                 in the configuration file registers a component driver)"
            )
        }
        _ => String::new(),
    }
}

/// The vfs driver as a component (world `driver-plugin`), built by this crate's build
/// script.
const VFS_COMPONENT: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/storage_vfs_component.wasm"));
/// Its SHA-256 (hex), computed by the build script.
const VFS_COMPONENT_SHA256: &str = include_str!(concat!(
    env!("OUT_DIR"),
    "/storage_vfs_component.wasm.sha256"
));

/// Registers the drivers linked into the binary: this is the one place that names them.
fn register_linked(registry: &mut DriverRegistry) {
    storage_overlay::register(registry);
    storage_btrfs::register(registry);
    register_builtin(
        registry,
        "vfs",
        ComponentSource::Builtin {
            name: "builtin:vfs",
            bytes: VFS_COMPONENT,
            sha256: VFS_COMPONENT_SHA256,
        },
    );
}
