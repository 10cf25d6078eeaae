//! `storage-archive-component`: the `storage-archive` crate as a WebAssembly component.
//!
//! It exports the `archive` interface of the `storage:plugin` WIT package (world
//! `archive-plugin`) by calling the same functions the host calls natively, over
//! [`guest_fs::GuestDir`], an implementation of the crate's filesystem traits that calls the
//! directory functions the host lends. Built for `wasm32-wasip2` by the component host's
//! build script; on other targets it compiles (so workspace checks see it) but is never called.

pub mod convert;
pub mod guest_fs;

/// Bindings generated from `wit/` for the `archive-plugin` world.
#[allow(missing_docs, clippy::all, unsafe_op_in_unsafe_fn)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "archive-plugin",
        path: "../../wit",
    });
}

use bindings::exports::storage::plugin::archive::Guest;
use bindings::storage::plugin::archive_types::{
    ApplyOptions, ArchiveError, Change, DiffOptions, OverlayOptions,
};
use bindings::storage::plugin::filesystem::Directory;
use bindings::storage::plugin::streams::{InputStream, OutputStream};
use bindings::storage::plugin::types::IdMapping;
use guest_fs::{GuestDir, GuestInput, GuestOutput};

/// The exported archive interface.
pub struct ArchiveComponent;

bindings::export!(ArchiveComponent with_types_in bindings);

/// Runs a tar writer, then flushes what the output buffers.
fn write_with<'a>(
    out: &'a OutputStream,
    f: impl FnOnce(&mut GuestOutput<'a>) -> Result<(), storage_archive::ArchiveError>,
) -> Result<(), ArchiveError> {
    let mut output = GuestOutput::new(out);
    f(&mut output).map_err(convert::archive_error)?;
    std::io::Write::flush(&mut output)
        .map_err(|e| convert::archive_error(storage_archive::ArchiveError::Stream(e)))
}

impl Guest for ArchiveComponent {
    fn apply_diff(
        dir: &Directory,
        input: &InputStream,
        options: ApplyOptions,
    ) -> Result<u64, ArchiveError> {
        let mut fs = GuestDir::new(dir);
        let mut input = GuestInput::new(input);
        storage_archive::apply_layer(&mut fs, &mut input, &convert::apply_options(options))
            .map_err(convert::archive_error)
    }

    fn write_tree(
        dir: &Directory,
        out: &OutputStream,
        options: DiffOptions,
    ) -> Result<(), ArchiveError> {
        let mut fs = GuestDir::new(dir);
        let opts = convert::diff_options(options);
        write_with(out, |o| storage_archive::write_tree_tar(&mut fs, o, &opts))
    }

    fn diff(
        layer: &Directory,
        parent: Option<&Directory>,
        parent_mapping: IdMapping,
        out: &OutputStream,
        options: DiffOptions,
    ) -> Result<(), ArchiveError> {
        let mut layer = GuestDir::new(layer);
        let mut parent = parent.map(GuestDir::new);
        let parent_mapping = convert::id_mapping(parent_mapping);
        let opts = convert::diff_options(options);
        write_with(out, |o| {
            storage_archive::write_diff_naive(
                &mut layer,
                parent.as_mut(),
                &parent_mapping,
                o,
                &opts,
            )
        })
    }

    fn overlay_diff(
        upper: &Directory,
        lowers: Vec<Directory>,
        out: &OutputStream,
        options: DiffOptions,
        overlay: OverlayOptions,
    ) -> Result<(), ArchiveError> {
        let mut upper = GuestDir::new(upper);
        let mut lowers: Vec<GuestDir<'_>> = lowers.iter().map(GuestDir::new).collect();
        let opts = convert::diff_options(options);
        let overlay = convert::overlay_options(overlay);
        write_with(out, |o| {
            storage_archive::write_overlay_diff(&mut upper, &mut lowers, o, &opts, &overlay)
        })
    }

    fn changes(
        layer: &Directory,
        parent: Option<&Directory>,
        mapping: IdMapping,
        parent_mapping: IdMapping,
    ) -> Result<Vec<Change>, ArchiveError> {
        let mut layer = GuestDir::new(layer);
        let mut parent = parent.map(GuestDir::new);
        storage_archive::changes_naive(
            &mut layer,
            parent.as_mut(),
            &convert::id_mapping(mapping),
            &convert::id_mapping(parent_mapping),
        )
        .map(convert::changes)
        .map_err(convert::archive_error)
    }

    fn overlay_changes(
        upper: &Directory,
        lowers: Vec<Directory>,
        overlay: OverlayOptions,
    ) -> Result<Vec<Change>, ArchiveError> {
        let mut upper = GuestDir::new(upper);
        let mut lowers: Vec<GuestDir<'_>> = lowers.iter().map(GuestDir::new).collect();
        storage_archive::changes_overlay(
            &mut upper,
            &mut lowers,
            &convert::overlay_options(overlay),
        )
        .map(convert::changes)
        .map_err(convert::archive_error)
    }

    fn diff_size(
        layer: &Directory,
        parent: Option<&Directory>,
        mapping: IdMapping,
        parent_mapping: IdMapping,
    ) -> Result<u64, ArchiveError> {
        let mut layer = GuestDir::new(layer);
        let mut parent = parent.map(GuestDir::new);
        storage_archive::diff_size_naive(
            &mut layer,
            parent.as_mut(),
            &convert::id_mapping(mapping),
            &convert::id_mapping(parent_mapping),
        )
        .map_err(convert::archive_error)
    }

    fn tree_size(dir: &Directory) -> Result<u64, ArchiveError> {
        let mut fs = GuestDir::new(dir);
        storage_archive::tree_size(&mut fs).map_err(convert::archive_error)
    }
}
