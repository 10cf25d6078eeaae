//! Archive work of the btrfs driver: the naive paths of upstream's `drivers/fsdiff.go` on
//! subvolumes. A layer's tar is applied into its subvolume with whiteouts turned into deletions;
//! diffs, changes and sizes compare the layer's subvolume with its parent's (an unchanged file of a
//! snapshot has the same metadata as its parent's, so it is not reported).
//!
//! The tar logic lives in `storage-archive`, run by default as the sandboxed archive
//! component and with `btrfs.archive=native` as the crate built in (the host's
//! [`storage_driver::archive_runtime`], shared with overlay).

use std::io::{Read, Write};
use std::path::PathBuf;

use std::sync::Arc;
use storage_archive::WhiteoutFormat;

use storage_driver::archive_runtime::{ArchiveOps, ParentTree};
use storage_driver::confined;
use storage_driver::idmap::IdMappings;
use storage_driver::{ApplyDiffOpts, Change, DriverError, DriverResult};

use crate::driver::BtrfsDriver;

/// The archive logic the driver's options ask for.
fn archive(driver: &BtrfsDriver) -> DriverResult<Arc<dyn ArchiveOps>> {
    driver.archive_provider().archive(&driver.options().archive)
}

/// The subvolumes of `id` and of `parent` (if any).
fn dirs(
    driver: &BtrfsDriver,
    id: &str,
    parent: Option<&str>,
) -> DriverResult<(PathBuf, Option<PathBuf>)> {
    let layer = driver.layer_dir(id)?;
    let parent = parent.map(|p| driver.layer_dir(p)).transpose()?;
    Ok((layer, parent))
}

/// Applies an uncompressed layer tar to the layer's subvolume; returns the sum of entry
/// sizes.
pub fn apply_diff(
    driver: &BtrfsDriver,
    id: &str,
    _parent: Option<&str>,
    diff: &mut dyn Read,
    opts: &ApplyDiffOpts,
) -> DriverResult<u64> {
    let dir = driver.layer_dir(id)?;
    if driver.layout().is_read_only(&dir) {
        return Err(DriverError::Unsupported(
            "applying a diff to a layer of a read-only image store",
        ));
    }
    let options = confined::apply_options(opts, WhiteoutFormat::Aufs, false);
    archive(driver)?.apply_tar(&dir, opts.layer_tar(diff), &options)
}

/// Writes a tar of the layer's changes against `parent` (the whole layer when `None`),
/// with `.wh.` whiteouts.
pub fn diff(
    driver: &BtrfsDriver,
    id: &str,
    id_mappings: &IdMappings,
    parent: Option<&str>,
    parent_mappings: &IdMappings,
    out: &mut dyn Write,
) -> DriverResult<()> {
    let (layer, parent) = dirs(driver, id, parent)?;
    // Owner names and the whiteout time stamp as Go writes them.
    let options = confined::diff_options(id_mappings);
    let parent = parent.as_deref().map(|path| ParentTree {
        path,
        mappings: parent_mappings,
    });
    archive(driver)?.write_naive_diff(&layer, parent, out, &options)
}

/// Lists the layer's changes against `parent` in the naive comparison's order (upstream's:
/// a directory, then its added and changed entries, then its deleted ones); each side's
/// owners are read with its own mappings.
pub fn changes(
    driver: &BtrfsDriver,
    id: &str,
    id_mappings: &IdMappings,
    parent: Option<&str>,
    parent_mappings: &IdMappings,
) -> DriverResult<Vec<Change>> {
    let (layer, parent) = dirs(driver, id, parent)?;
    let parent = parent.as_deref().map(|path| ParentTree {
        path,
        mappings: parent_mappings,
    });
    archive(driver)?.changes_naive(&layer, id_mappings, parent)
}

/// The size of the layer's changed content against `parent`.
pub fn diff_size(
    driver: &BtrfsDriver,
    id: &str,
    id_mappings: &IdMappings,
    parent: Option<&str>,
    parent_mappings: &IdMappings,
) -> DriverResult<u64> {
    let (layer, parent) = dirs(driver, id, parent)?;
    let parent = parent.as_deref().map(|path| ParentTree {
        path,
        mappings: parent_mappings,
    });
    archive(driver)?.diff_size_naive(&layer, id_mappings, parent)
}
