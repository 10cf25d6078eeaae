//! `storage_archive`: the logic that reads and writes container layer archives.
//!
//! It applies a layer tar to a directory tree, produces a tar of a tree or of the
//! differences between two trees, lists changes and measures them. It does no I/O of its
//! own: every filesystem operation goes through the narrow [`fs`] traits, which the host
//! implements with confined directory handles, so the same code runs natively or as a
//! WebAssembly component against the WIT contract.

// Tests assert with unwrap: a panic there is the failure report.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod apply;
pub mod changes;
pub mod diff;
pub mod error;
pub mod fs;
pub mod idmap;
#[cfg(any(test, feature = "memfs"))]
pub mod memfs;
pub mod path_set;
pub mod paths;
pub mod tar_parser;
pub mod tar_stream;
pub mod tar_writer;

pub use apply::{apply_entries, apply_layer, ApplyOptions, WhiteoutFormat};
pub use changes::{changes_naive, changes_overlay, Change, ChangeKind, OverlayOptions};
pub use diff::{
    diff_size_naive, tree_size, write_changes_tar, write_diff_naive, write_overlay_diff,
    write_tree_tar, DiffOptions,
};
pub use error::ArchiveError;
pub use idmap::{IdMapping, IdRange};
pub use path_set::{path_hash, PathSet};
pub use tar_stream::{
    EntryKind, ParsedEntries, ParsedTar, TarEntries, TarEntryHeader, TarStreamReader,
};
