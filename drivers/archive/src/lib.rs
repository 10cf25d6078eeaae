//! `storage_archive`: the logic that reads and writes container layer archives.
//!
//! It applies a layer tar to a directory tree, produces a tar of a tree or of the
//! differences between two trees, lists changes and measures them. It does no I/O of its
//! own: every filesystem operation goes through the narrow [`fs`] traits, which the host
//! implements with confined directory handles, so the same code runs natively or as a
//! WebAssembly component against the WIT contract.

pub mod error;

pub use error::ArchiveError;
