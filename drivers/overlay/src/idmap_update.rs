//! Re-owning a layer's files from one ID mapping to another (upstream's
//! `UpdateLayerIDMap` for overlay): the layer is mounted read-write and every path of
//! the merged tree is chowned, so files of lower layers are copied up into this layer's
//! upper directory with their new owners, as upstream does.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use storage_driver::{DriverError, DriverResult, GraphDriver, MountOpts};
use storage_driver::idmap::IdMappings;

use crate::driver::OverlayDriver;

/// Maps a host owner into the container through `to_container`, then back to the host
/// through `to_host`.
fn remap(
    uid: u32,
    gid: u32,
    to_container: &IdMappings,
    to_host: &IdMappings,
) -> Option<(u32, u32)> {
    let (cuid, cgid) = to_container.to_container(uid, gid)?;
    to_host.to_host(cuid, cgid)
}

/// Chowns `path` and everything beneath it (never following symlinks).
fn chown_tree(path: &Path, to_container: &IdMappings, to_host: &IdMappings) -> DriverResult<()> {
    let ctx = |what: &str| format!("{what} {}", path.display());
    let meta = std::fs::symlink_metadata(path).map_err(|e| DriverError::io(ctx("stat of"), e))?;
    let (uid, gid) = remap(meta.uid(), meta.gid(), to_container, to_host).ok_or_else(|| {
        DriverError::BadOption(format!(
            "owner {}:{} of {} is not mapped",
            meta.uid(),
            meta.gid(),
            path.display()
        ))
    })?;
    if (uid, gid) != (meta.uid(), meta.gid()) {
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))
            .map_err(|e| DriverError::io(ctx("chown of"), e))?;
        // chown clears setuid/setgid; the layer must keep them.
        let mode = meta.mode() & 0o7777;
        if !meta.file_type().is_symlink() && mode & 0o6000 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                .map_err(|e| DriverError::io(ctx("chmod of"), e))?;
        }
    }
    if meta.is_dir() {
        let entries = std::fs::read_dir(path).map_err(|e| DriverError::io(ctx("reading"), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| DriverError::io(ctx("reading"), e))?;
            chown_tree(&entry.path(), to_container, to_host)?;
        }
    }
    Ok(())
}

/// Re-owns every file of layer `id` (see the module doc).
pub fn update_layer_id_map(
    driver: &OverlayDriver,
    id: &str,
    to_container: &IdMappings,
    to_host: &IdMappings,
    mount_label: &str,
) -> DriverResult<()> {
    let dir = driver.layout().dir(id)?;
    if driver.layout().is_read_only(&dir) {
        return Err(DriverError::Unsupported(
            "changing the ID mapping of a layer of a read-only image store",
        ));
    }
    let opts = MountOpts {
        mount_label: mount_label.to_string(),
        ..Default::default()
    };
    let merged = driver.get(id, &opts)?;
    let walked = chown_tree(&merged, to_container, to_host);
    let put = driver.put(id);
    walked?;
    put?;
    let (uid, gid) = to_host.to_host(0, 0).ok_or_else(|| {
        DriverError::BadOption("container root is not mapped to the host".to_string())
    })?;
    let diff = dir.join("diff");
    std::os::unix::fs::chown(&diff, Some(uid), Some(gid))
        .map_err(|e| DriverError::io(format!("chown of {}", diff.display()), e))
}
