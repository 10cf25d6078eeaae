//! The graph drivers this binary links, registered by name.

use storage_host::driver::DriverRegistry;

/// A registry with every built-in driver.
pub fn registry() -> DriverRegistry {
    let mut registry = DriverRegistry::new();
    register_builtin(&mut registry);
    registry
}

/// Registers the drivers linked into the binary.
fn register_builtin(registry: &mut DriverRegistry) {
    storage_overlay::register(registry);
}
