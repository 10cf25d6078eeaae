//! The graph drivers this binary serves, registered by name: the native overlay and btrfs drivers, the
//! vfs driver (a component embedded in the binary) and every third-party driver component the
//! configuration names in `[plugins.<name>]`.

use std::collections::BTreeMap;
use storage_host::component::graph_driver::{register_builtin_vfs, register_plugins};

use storage_host::config::{self, PluginConfig, StoreOptions};
use storage_host::driver::DriverRegistry;

/// A registry with every built-in driver and the configured plugins.
pub fn registry(opts: &StoreOptions) -> DriverRegistry {
    let mut registry = DriverRegistry::new();
    register_builtin(&mut registry);
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

/// Registers the drivers linked into the binary.
fn register_builtin(registry: &mut DriverRegistry) {
    storage_overlay::register(registry);
    storage_btrfs::register(registry);
    register_builtin_vfs(registry);
}
