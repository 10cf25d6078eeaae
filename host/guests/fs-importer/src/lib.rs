//! A component that asks for the host filesystem through WASI (`std::fs`), for the host's
//! tests: loading it must be refused.

/// Bindings generated from `wit/`.
#[allow(missing_docs, clippy::all, unsafe_op_in_unsafe_fn)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "archive-plugin",
        path: "../../../wit",
    });
}

use bindings::exports::storage::plugin::archive::Guest;
use bindings::storage::plugin::archive_types::{
    ApplyOptions, ArchiveError, Change, DiffOptions, EntryProblem, OverlayOptions,
};
use bindings::storage::plugin::filesystem::Directory;
use bindings::storage::plugin::streams::{InputStream, OutputStream};
use bindings::storage::plugin::types::IdMapping;

/// The component.
pub struct FsImporter;

bindings::export!(FsImporter with_types_in bindings);

fn unsupported() -> ArchiveError {
    ArchiveError::Unsupported(EntryProblem {
        path: Vec::new(),
        reason: "fs-importer test guest".into(),
    })
}

impl Guest for FsImporter {
    fn apply_diff(
        _dir: &Directory,
        _input: &InputStream,
        _options: ApplyOptions,
    ) -> Result<u64, ArchiveError> {
        // Through std this imports wasi:filesystem: the host must refuse to load it at all.
        let entries = std::fs::read_dir("/").map_err(|e| ArchiveError::Stream(e.to_string()))?;
        Ok(entries.count() as u64)
    }

    fn write_tree(_: &Directory, _: &OutputStream, _: DiffOptions) -> Result<(), ArchiveError> {
        Err(unsupported())
    }

    fn diff(
        _: &Directory,
        _: Option<&Directory>,
        _: IdMapping,
        _: &OutputStream,
        _: DiffOptions,
    ) -> Result<(), ArchiveError> {
        Err(unsupported())
    }

    fn overlay_diff(
        _: &Directory,
        _: Vec<Directory>,
        _: &OutputStream,
        _: DiffOptions,
        _: OverlayOptions,
    ) -> Result<(), ArchiveError> {
        Err(unsupported())
    }

    fn changes(
        _: &Directory,
        _: Option<&Directory>,
        _: IdMapping,
        _: IdMapping,
    ) -> Result<Vec<Change>, ArchiveError> {
        Err(unsupported())
    }

    fn overlay_changes(
        _: &Directory,
        _: Vec<Directory>,
        _: OverlayOptions,
    ) -> Result<Vec<Change>, ArchiveError> {
        Err(unsupported())
    }

    fn diff_size(
        _: &Directory,
        _: Option<&Directory>,
        _: IdMapping,
        _: IdMapping,
    ) -> Result<u64, ArchiveError> {
        Err(unsupported())
    }

    fn tree_size(_: &Directory) -> Result<u64, ArchiveError> {
        Err(unsupported())
    }
}
