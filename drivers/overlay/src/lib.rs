//! `storage_overlay`: the native overlay graph driver (upstream's `drivers/overlay`).
//!
//! Layers are directories under `<graphroot>/overlay` (upstream's `drivers/overlay/overlay.go`); a
//! layer is presented by mounting an overlay of its ancestors' diff directories. [`layout`] knows
//! the files, [`options`] parses `overlay.*` options, [`mount`] performs mounts (new mount API with
//! one `lowerdir+` per layer, classic `mount(2)` otherwise), [`features`] probes and caches what
//! the kernel can do, [`getter`] reads files without mounting, [`archive_ops`] applies and produces
//! layer archives through `storage-archive`, [`idmap_update`] re-owns layers, [`quota`] sets xfs
//! project quotas (`size`, `inodes`), and [`driver`] ties them into a
//! [`storage_driver::GraphDriver`].

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod archive_ops;
pub mod archive_runtime;
pub mod driver;
pub mod features;
pub mod getter;
pub mod idmap_update;
pub mod layout;
pub mod mount;
mod mount_spec;
pub mod options;
pub mod quota;

pub use driver::OverlayDriver;
pub use options::OverlayOptions;

use storage_driver::{DriverInit, DriverRegistry, DriverResult, GraphDriver};

/// Creates the overlay driver (the factory registered under `overlay` and `overlay2`).
pub fn init(init: &DriverInit) -> DriverResult<Box<dyn GraphDriver>> {
    Ok(Box::new(OverlayDriver::new(init)?))
}

/// Registers the driver as `overlay`, and as `overlay2` like upstream.
pub fn register(registry: &mut DriverRegistry) {
    registry.register("overlay", init);
    registry.register("overlay2", init);
}
