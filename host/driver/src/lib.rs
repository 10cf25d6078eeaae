//! `storage_driver`: what a graph driver is, and the toolkit drivers are built from.
//!
//! The contract ([`GraphDriver`], its types, errors and the [`DriverRegistry`] the binary
//! fills by name) is at the crate root. Around it, the pieces every driver shares:
//! [`confined`] directory handles (every path resolved beneath the directory, never
//! through a final symlink), the [`syscalls`] trait every privileged or durability-deciding
//! system call goes through (the real calls, or a recording double for tests without root), the [`archive_runtime`] that runs the archive logic natively
//! or through a provider such as the component host, one [`reown`] walk for ID-mapped
//! copies, [`tree_copy`] with reflinks, [`dedup`] of identical files, and [`idmap`] types.
//!
//! Nothing here knows a driver by name, nor links wasmtime.

pub mod archive_runtime;
pub mod cleanup;
pub mod confined;
mod contract;
pub mod dedup;
pub mod idmap;
pub mod parsed_tar;
pub mod reown;
pub mod syscalls;
pub mod tree_copy;

pub use contract::*;
