//! The host's naive diff, for driver components that keep plain directories (upstream's
//! `NaiveDiffDriver`, `drivers/fsdiff.go`): a component that answers `unsupported` to
//! `apply-diff`, `diff`, `changes` or `diff-size` (without reading its input or writing its
//! output) gets the work done by the host, which makes the layer available with the
//! component's own `get` (performing the mounts it asks for in a directory of its own),
//! runs the archive logic over the directory (the sandboxed archive component in the default
//! configuration, see [`storage_driver::archive_runtime`]) and releases the layer with
//! `put`. So a driver needs no tar code of its own, and the archive
//! rules are the same for every driver.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use storage_archive::WhiteoutFormat;
use storage_driver::archive_runtime::{ArchiveOps, ArchiveSettings, ParentTree};
use storage_driver::cleanup::log_failure;
use storage_driver::confined;
use storage_driver::idmap::IdMappings;
use storage_driver::{ApplyDiffOpts, Change, DriverError, DriverResult, MountOpts};

use super::{tidy, ComponentGraphDriver};
use crate::driver::LayerLocation;

/// A layer's directory for the naive diff, from the component's own `get`: a directory in
/// its home, or mounts the host performs in a directory of this call's own (not the layer's
/// mount point, which the store counts: a layer or container mounted meanwhile is left
/// alone). Released with the component's `put` when done.
struct LayerTree<'a> {
    driver: &'a ComponentGraphDriver,
    id: &'a str,
    path: PathBuf,
    /// The private directory holding this call's mounts, if `get` asked for mounts.
    mounts: Option<PathBuf>,
    /// Whether the component's `get` is still to be `put`.
    held: bool,
}

impl<'a> LayerTree<'a> {
    fn get(
        driver: &'a ComponentGraphDriver,
        id: &'a str,
        mount_label: &str,
        read_only: bool,
    ) -> DriverResult<Self> {
        let opts = MountOpts {
            mount_label: mount_label.to_string(),
            options: if read_only {
                vec!["ro".to_string()]
            } else {
                Vec::new()
            },
            ..Default::default()
        };
        let mut tree = LayerTree {
            driver,
            id,
            path: PathBuf::new(),
            mounts: None,
            held: false,
        };
        let location = driver.component.get(id, &opts).map_err(tidy)?;
        tree.held = true;
        match location {
            LayerLocation::Directory(dir) => tree.path = dir,
            LayerLocation::Mounts(mounts) if mounts.is_empty() => {
                return Err(DriverError::not_supported(format!(
                    "{}: get asked for no mount",
                    driver.name
                )))
            }
            LayerLocation::Mounts(mounts) => {
                let dir = driver.mounts.private_dir(id)?;
                tree.path = driver.mounts.perform_in(&dir, &mounts)?;
                tree.mounts = Some(dir);
            }
        }
        Ok(tree)
    }

    /// Undoes this call's mounts and `put`s the layer, reporting the first failure
    /// (dropping the tree does the same, logging a failure).
    fn release(mut self) -> DriverResult<()> {
        let unmounted = match self.mounts.take() {
            Some(dir) => self.driver.mounts.undo_in(&dir),
            None => Ok(()),
        };
        let put = if std::mem::take(&mut self.held) {
            self.driver.component.put(self.id).map_err(tidy)
        } else {
            Ok(())
        };
        unmounted.and(put)
    }
}

impl Drop for LayerTree<'_> {
    fn drop(&mut self) {
        if let Some(dir) = self.mounts.take() {
            log_failure(
                format_args!(
                    "undoing the mounts of layer {} after a failed diff",
                    self.id
                ),
                self.driver.mounts.undo_in(&dir),
            );
        }
        if self.held {
            log_failure(
                format_args!("releasing layer {} after a failed diff", self.id),
                self.driver.component.put(self.id),
            );
        }
    }
}

/// The archive logic the registry's provider gives drivers, with default settings.
fn archive(driver: &ComponentGraphDriver) -> DriverResult<std::sync::Arc<dyn ArchiveOps>> {
    driver.archive.archive(&ArchiveSettings::default())
}

/// Runs `work` with the archive logic, layer `id`'s tree and, if there is a parent (an
/// empty ID is none), the parent's with its mappings (both read-only), then releases them.
fn with_trees<T>(
    driver: &ComponentGraphDriver,
    id: &str,
    parent: Option<&str>,
    parent_mappings: &IdMappings,
    work: impl FnOnce(&dyn ArchiveOps, &Path, Option<ParentTree<'_>>) -> DriverResult<T>,
) -> DriverResult<T> {
    let archive = archive(driver)?;
    let layer = LayerTree::get(driver, id, "", true)?;
    let parent = parent
        .filter(|p| !p.is_empty())
        .map(|p| LayerTree::get(driver, p, "", true))
        .transpose()?;
    let result = work(
        archive.as_ref(),
        &layer.path,
        parent.as_ref().map(|p| ParentTree {
            path: &p.path,
            mappings: parent_mappings,
        }),
    );
    finish(result, layer, parent)
}

/// Releases the trees (the layer's first), reporting the first failure after `result`'s.
fn finish<T>(
    result: DriverResult<T>,
    layer: LayerTree<'_>,
    parent: Option<LayerTree<'_>>,
) -> DriverResult<T> {
    let value = result?;
    layer.release()?;
    if let Some(parent) = parent {
        parent.release()?;
    }
    Ok(value)
}

/// Applies the uncompressed layer tar `diff` to layer `id` (AUFS whiteouts, as the layer is
/// a plain directory); the size is the sum of the entries' sizes, as upstream's.
pub(super) fn apply_diff(
    driver: &ComponentGraphDriver,
    id: &str,
    diff: &mut dyn Read,
    opts: &ApplyDiffOpts,
) -> DriverResult<u64> {
    let archive = archive(driver)?;
    let layer = LayerTree::get(driver, id, &opts.mount_label, false)?;
    let mut options = confined::apply_options(opts, WhiteoutFormat::Aufs, false);
    options.ignore_chown_errors |= driver.ignore_chown_errors;
    let result = archive.apply_tar(&layer.path, opts.layer_tar(diff), &options);
    finish(result, layer, None)
}

/// Writes the tar of `id`'s changes against `parent` (all of `id` without one).
pub(super) fn diff(
    driver: &ComponentGraphDriver,
    id: &str,
    id_mappings: &IdMappings,
    parent: Option<&str>,
    parent_mappings: &IdMappings,
    out: &mut dyn Write,
) -> DriverResult<()> {
    with_trees(
        driver,
        id,
        parent,
        parent_mappings,
        |archive, layer, parent| {
            archive.write_naive_diff(layer, parent, out, &confined::diff_options(id_mappings))
        },
    )
}

/// The changes of `id` against `parent`.
pub(super) fn changes(
    driver: &ComponentGraphDriver,
    id: &str,
    id_mappings: &IdMappings,
    parent: Option<&str>,
    parent_mappings: &IdMappings,
) -> DriverResult<Vec<Change>> {
    with_trees(
        driver,
        id,
        parent,
        parent_mappings,
        |archive, layer, parent| archive.changes_naive(layer, id_mappings, parent),
    )
}

/// The size of what [`changes`] lists.
pub(super) fn diff_size(
    driver: &ComponentGraphDriver,
    id: &str,
    id_mappings: &IdMappings,
    parent: Option<&str>,
    parent_mappings: &IdMappings,
) -> DriverResult<u64> {
    with_trees(
        driver,
        id,
        parent,
        parent_mappings,
        |archive, layer, parent| archive.diff_size_naive(layer, id_mappings, parent),
    )
}
