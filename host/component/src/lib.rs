//! `storage_component_host`: the wasmtime host for driver and archive components.
//!
//! A component is loaded through [`Runtime::load`]: its imports are checked against the
//! [`policy`] (no WASI filesystem or sockets, ever), it is compiled once and cached as a
//! precompiled artifact ([`cache`]), and every call runs in a fresh `Store` with a memory limit
//! and an epoch deadline ([`limits`]). What the guest can touch is only what the host lends it
//! for the call: directories ([`host_fs`], every path resolved beneath the lent directory by
//! [`storage_driver::confined::ConfinedDir`]) and byte streams. A trap, an exhausted memory
//! limit or a missed deadline becomes one [`ComponentError`], and the Store is dropped with
//! the call.
//!
//! Two kinds of component: the archive logic ([`archive`], built into the binary, offered to
//! native drivers as an [`storage_driver::archive_runtime::ArchiveProvider`] by
//! [`archive_provider::ComponentArchiveProvider`]), and whole drivers ([`graph_driver`]),
//! registered under the names the binary gives them.

pub mod archive;
pub mod archive_provider;
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
pub mod stream_pump;
#[cfg(test)]
mod test_guests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod vfs_tests;
pub mod wasi;

pub use archive::ArchiveComponent;
pub use driver::{DriverComponent, LayerLocation};
pub use engine::{LoadedComponent, Runtime, RuntimeConfig};
pub use error::{ComponentError, StopReason};
pub use graph_driver::{ComponentGraphDriver, ComponentSource};
pub use limits::PluginLimits;

/// The WIT package version this host implements; a component built against another one is
/// refused (see [`policy::check_imports`]).
pub const WIT_PACKAGE: &str = "storage:plugin@0.3.0";
