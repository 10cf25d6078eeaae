//! Archive work of the overlay driver: applying a layer tar, and diffs, changes and
//! sizes. Native paths (upstream's `drivers/overlay/overlay.go`) work on `<id>/diff` directly and
//! are used when the parent asked for is the layer's real parent and native diff is usable;
//! otherwise the naive paths (upstream's `drivers/fsdiff.go`) mount the layers read-only and
//! compare the merged trees.
//!
//! The tar logic lives in `storage-archive`, run by default as the sandboxed archive
//! component and with `overlay.archive=native` as the crate built in (see
//! [`crate::archive_runtime`]); either works on the host's confined directories. This module
//! only picks directories and the whiteout format.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use storage_archive::{ApplyOptions, WhiteoutFormat};
use storage_driver::archive_runtime::ParentTree;
use storage_driver::confined;
use storage_driver::idmap::IdMappings;
use storage_driver::{ApplyDiffOpts, Change, DriverError, DriverResult, GraphDriver, MountOpts};

use crate::archive_runtime;
use crate::driver::OverlayDriver;
use crate::layout::Layout;

/// Overlay options of the archive crate: privileged mounts use `trusted.overlay.*`,
/// rootless (`userxattr`) ones `user.overlay.*`.
fn overlay_xattrs(driver: &OverlayDriver) -> storage_archive::OverlayOptions {
    storage_archive::OverlayOptions {
        rootless: driver.rootless(),
    }
}

/// Whether `parent` is the real parent of the layer in `dir`: the first `lower` entry
/// is the parent's short link (no `lower` file for a parentless layer).
fn is_real_parent(driver: &OverlayDriver, dir: &Path, parent: Option<&str>) -> DriverResult<bool> {
    let lowers = Layout::read_lower_file(dir)
        .map_err(|e| DriverError::io(format!("reading {}/lower", dir.display()), e))?;
    let Some(parent) = parent else {
        return Ok(lowers.is_empty());
    };
    let parent_dir = driver.layout().dir(parent)?;
    let Ok(link) = Layout::read_link_file(&parent_dir) else {
        return Ok(false);
    };
    Ok(lowers.first().map(String::as_str) == Some(format!("l/{link}").as_str()))
}

/// Whether the native paths apply to layer `dir` against `parent`.
fn native(driver: &OverlayDriver, dir: &Path, parent: Option<&str>) -> DriverResult<bool> {
    Ok(driver.uses_native_diff() && is_real_parent(driver, dir, parent)?)
}

/// A layer presented as a directory for the naive paths; unmounts on drop what it
/// mounted itself (a layer somebody else mounted stays mounted).
struct LayerView<'a> {
    driver: &'a OverlayDriver,
    id: String,
    path: PathBuf,
    mounted_here: bool,
}

impl<'a> LayerView<'a> {
    fn open(driver: &'a OverlayDriver, id: &str, read_only: bool) -> DriverResult<Self> {
        let dir = driver.layout().dir(id)?;
        let merged = driver.layout().merged_dir(id, &dir);
        if driver.syscalls().is_mount_point(&merged).unwrap_or(false) {
            return Ok(LayerView {
                driver,
                id: id.to_string(),
                path: merged,
                mounted_here: false,
            });
        }
        let opts = MountOpts {
            options: if read_only {
                vec!["ro".to_string()]
            } else {
                Vec::new()
            },
            ..Default::default()
        };
        let path = driver.get(id, &opts)?;
        Ok(LayerView {
            driver,
            id: id.to_string(),
            path,
            mounted_here: true,
        })
    }
}

impl Drop for LayerView<'_> {
    fn drop(&mut self) {
        if self.mounted_here {
            // A drop has no caller to tell: the diff (or its error) is what is reported,
            // and a view left mounted is logged (the next put of the layer retries).
            storage_driver::cleanup::log_failure(
                format_args!("releasing the view of layer {}", self.id),
                self.driver.put(&self.id),
            );
        }
    }
}

/// Read-only views of `id` and of `parent` (if any).
fn views<'a>(
    driver: &'a OverlayDriver,
    id: &str,
    parent: Option<&str>,
) -> DriverResult<(LayerView<'a>, Option<LayerView<'a>>)> {
    let layer = LayerView::open(driver, id, true)?;
    let parent = parent
        .map(|p| LayerView::open(driver, p, true))
        .transpose()?;
    Ok((layer, parent))
}

/// Applies an uncompressed layer tar: natively into `<id>/diff` with overlay whiteouts,
/// or through a read-write mount with whiteouts applied as deletions.
pub fn apply_diff(
    driver: &OverlayDriver,
    id: &str,
    parent: Option<&str>,
    diff: &mut dyn Read,
    opts: &ApplyDiffOpts,
) -> DriverResult<u64> {
    let dir = driver.layout().dir(id)?;
    if driver.layout().is_read_only(&dir) {
        return Err(DriverError::Unsupported(
            "applying a diff to a layer of a read-only image store",
        ));
    }
    let mut apply = ApplyOptions {
        whiteout_format: WhiteoutFormat::Overlay,
        rootless_overlay: driver.rootless(),
        id_mapping: confined::id_mapping(&opts.id_mappings),
        force_mask: opts.force_mask.or(driver.options().force_mask),
        ignore_chown_errors: opts.ignore_chown_errors || driver.options().ignore_chown_errors,
        skip_device_nodes: storage_driver::idmap::running_in_user_namespace(),
    };
    let archive = archive_runtime::for_driver(driver)?;
    if native(driver, &dir, parent)? {
        let diff_dir = dir.join("diff");
        let applied = archive.apply_tar(&diff_dir, opts.layer_tar(diff), &apply)?;
        if opts.size_unused {
            return Ok(applied);
        }
        return archive.tree_size(&diff_dir);
    }
    apply.whiteout_format = WhiteoutFormat::Aufs;
    let view = LayerView::open(driver, id, false)?;
    archive.apply_tar(&view.path, opts.layer_tar(diff), &apply)
}

/// Writes a tar of the layer's changes against `parent`, with `.wh.` whiteouts.
pub fn diff(
    driver: &OverlayDriver,
    id: &str,
    id_mappings: &IdMappings,
    parent: Option<&str>,
    parent_mappings: &IdMappings,
    out: &mut dyn Write,
) -> DriverResult<()> {
    let dir = driver.layout().dir(id)?;
    // Owner names and the whiteout time stamp as Go writes them.
    let opts = confined::diff_options(id_mappings);
    let archive = archive_runtime::for_driver(driver)?;
    if native(driver, &dir, parent)? {
        let lowers = driver.layout().lower_diff_dirs(&dir)?;
        return archive.write_overlay_diff(
            &dir.join("diff"),
            &lowers,
            out,
            &opts,
            &overlay_xattrs(driver),
        );
    }
    let (layer, parent_view) = views(driver, id, parent)?;
    archive.write_naive_diff(
        &layer.path,
        parent_view.as_ref().map(|v| ParentTree {
            path: &v.path,
            mappings: parent_mappings,
        }),
        out,
        &opts,
    )
}

/// Lists the layer's changes against `parent`, in upstream's order: the overlay walk's
/// (pre-order, names sorted), or the naive comparison's (a directory, then its added and
/// changed entries, then its deleted ones).
pub fn changes(
    driver: &OverlayDriver,
    id: &str,
    id_mappings: &IdMappings,
    parent: Option<&str>,
    parent_mappings: &IdMappings,
) -> DriverResult<Vec<Change>> {
    let dir = driver.layout().dir(id)?;
    let archive = archive_runtime::for_driver(driver)?;
    let changes = if native(driver, &dir, parent)? {
        let lowers = driver.layout().lower_diff_dirs(&dir)?;
        archive.changes_overlay(&dir.join("diff"), &lowers, &overlay_xattrs(driver))?
    } else {
        let (layer, parent_view) = views(driver, id, parent)?;
        archive.changes_naive(
            &layer.path,
            id_mappings,
            parent_view.as_ref().map(|v| ParentTree {
                path: &v.path,
                mappings: parent_mappings,
            }),
        )?
    };
    Ok(changes)
}

/// The size of the layer's changes against `parent`: the disk usage of `<id>/diff` on
/// the native path.
pub fn diff_size(
    driver: &OverlayDriver,
    id: &str,
    id_mappings: &IdMappings,
    parent: Option<&str>,
    parent_mappings: &IdMappings,
) -> DriverResult<u64> {
    let dir = driver.layout().dir(id)?;
    let archive = archive_runtime::for_driver(driver)?;
    if native(driver, &dir, parent)? {
        return archive.tree_size(&dir.join("diff"));
    }
    let (layer, parent_view) = views(driver, id, parent)?;
    archive.diff_size_naive(
        &layer.path,
        id_mappings,
        parent_view.as_ref().map(|v| ParentTree {
            path: &v.path,
            mappings: parent_mappings,
        }),
    )
}

#[cfg(test)]
#[path = "archive_ops_tests.rs"]
mod tests;
