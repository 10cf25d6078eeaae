//! The wasmtime host for driver and archive components (compiled with the `components`
//! feature).
//!
//! A component is loaded through [`Runtime::load`]: its imports are checked against the
//! [`policy`] (no WASI filesystem or sockets, ever), it is compiled once and cached as a
//! precompiled artifact ([`cache`]), and every call runs in a fresh `Store` with a memory limit
//! and an epoch deadline ([`limits`]). What the guest can touch is only what the host lends it
//! for the call: directories ([`host_fs`], every path resolved beneath the lent directory by
//! [`crate::confined::ConfinedDir`]) and byte streams. A trap, an exhausted memory limit or a
//! missed deadline becomes one [`ComponentError`], and the Store is dropped with the call.

pub mod archive;
pub mod archive_runtime;
pub mod bindings;
pub mod builtin;
pub mod cache;
pub mod call;
pub mod driver;
pub mod engine;
pub mod error;
pub mod graph_driver;
pub mod host_fs;
pub mod limits;
pub mod mounts;
pub mod policy;
pub mod reown;
pub mod stream_pump;
#[cfg(test)]
mod tests;
pub mod tree_copy;
#[cfg(test)]
mod vfs_tests;

pub use archive::ArchiveComponent;
pub use driver::{DriverComponent, LayerLocation};
pub use engine::{LoadedComponent, Runtime, RuntimeConfig};
pub use error::{ComponentError, StopReason};
pub use graph_driver::{ComponentGraphDriver, ComponentSource};
pub use limits::PluginLimits;

/// The WIT package version this host implements; a component built against another one is
/// refused (see [`policy::check_imports`]).
pub const WIT_PACKAGE: &str = "storage:plugin@0.3.0";
