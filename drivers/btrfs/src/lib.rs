//! `storage_btrfs`: the native btrfs graph driver (upstream's `drivers/btrfs`).
//!
//! Layers are subvolumes under `<graphroot>/btrfs/subvolumes` and children are snapshots of
//! their parents (upstream's `drivers/btrfs/btrfs.go`); [`layout`] finds them in the driver's home,
//! the split image store and read-only image stores. [`subvolume`] creates, snapshots and deletes
//! subvolumes by path through the btrfs ioctls of the toolkit's
//! [`storage_driver::syscalls::Syscalls`] (which the driver gets from its `DriverInit`, so tests
//! can hand it the recording double), [`home`] checks the filesystem and makes the home a private
//! mount, [`options`] parses `btrfs.*` and per-layer options, [`archive_ops`] applies and produces
//! layer archives through the host's archive runtime, [`getter`] reads files for tar-split
//! reassembly, and [`driver`] ties them into a [`storage_driver::GraphDriver`].

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod archive_ops;
pub mod driver;
pub mod getter;
pub mod home;
pub mod layout;
pub mod options;
pub mod subvolume;

pub use driver::BtrfsDriver;
pub use options::BtrfsOptions;

use storage_driver::{DriverInit, DriverRegistry, DriverResult, GraphDriver};

/// Creates the btrfs driver (the factory registered under `btrfs`).
pub fn init(init: &DriverInit) -> DriverResult<Box<dyn GraphDriver>> {
    Ok(Box::new(BtrfsDriver::new(init)?))
}

/// Registers the driver as `btrfs`.
pub fn register(registry: &mut DriverRegistry) {
    registry.register("btrfs", init);
}
