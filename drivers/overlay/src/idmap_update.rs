//! Re-owning a layer's files from one ID mapping to another (upstream's
//! `UpdateLayerIDMap` for overlay): the layer is mounted read-write and every path of
//! the merged tree is chowned, so files of lower layers are copied up with their new
//! owners. Then, as upstream does, the upper directory that holds those copies is moved
//! aside (`diff` becomes `diff1`, an earlier `diff1` becomes `diff2`, ...) and a new empty
//! `diff` takes its place: the moved-aside directories are mounted as the layer's lowest
//! own lowers (see [`own_extra_diffs`]), so the layer looks the same, while its native
//! diff and changes, which look at `diff` only, show just what was changed after the
//! re-owning, as they would for a layer whose parent had its mapping.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use storage_driver::idmap::IdMappings;
use storage_driver::reown::reown_tree;
use storage_driver::syscalls::Syscalls;
use storage_driver::{DriverError, DriverResult, GraphDriver, MountOpts};

use crate::driver::{mkdir, OverlayDriver};

/// Upstream's `defaultPerms` for the work directory.
const WORK_DIR_MODE: u32 = 0o555;

/// `diff` for 0, `diffN` for N (upstream's `nameWithSuffix`).
fn diff_name(n: usize) -> String {
    if n == 0 {
        "diff".to_string()
    } else {
        format!("diff{n}")
    }
}

/// The moved-aside upper directories of the layer directory `dir`: `dir/diff1`,
/// `dir/diff2`, ... up to the first that does not exist. Upstream mounts them right
/// below the layer's `diff` (and each lower's after that lower).
pub fn own_extra_diffs(dir: &Path) -> Vec<PathBuf> {
    (1..)
        .map(|n| dir.join(diff_name(n)))
        .take_while(|p| std::fs::symlink_metadata(p).is_ok())
        .collect()
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
    let (uid, gid) = to_host.to_host(0, 0).ok_or(DriverError::UnmappedRoot)?;
    let opts = MountOpts {
        mount_label: mount_label.to_string(),
        ..Default::default()
    };
    let merged = driver.get(id, &opts)?;
    let walked = reown_tree(driver.syscalls(), &merged, to_container, to_host);
    let put = driver.put(id);
    walked?;
    put?;
    rotate_diff_dirs(
        driver.syscalls(),
        &dir,
        (uid, gid),
        driver.options().force_mask,
    )
}

/// Moves `diff` (and earlier moved-aside directories) one number up and makes a new empty
/// `diff` with the old one's permissions and a new `work`, both owned by `root` (upstream
/// re-creates `work` because the kernel's index in it may point at the old upper).
fn rotate_diff_dirs(
    sys: &dyn Syscalls,
    dir: &Path,
    root: (u32, u32),
    force_mask: Option<u32>,
) -> DriverResult<()> {
    let diff = dir.join("diff");
    let perms = match force_mask {
        Some(mask) => mask,
        None => std::fs::metadata(&diff)
            .map(|m| m.mode() & 0o7777)
            .unwrap_or(WORK_DIR_MODE),
    };
    let mut next = 0;
    while std::fs::symlink_metadata(dir.join(diff_name(next))).is_ok() {
        next += 1;
    }
    for n in (1..=next).rev() {
        let from = dir.join(diff_name(n - 1));
        let to = dir.join(diff_name(n));
        std::fs::rename(&from, &to).map_err(|e| {
            DriverError::io(
                format!("renaming {} to {}", from.display(), to.display()),
                e,
            )
        })?;
    }
    let work = dir.join("work");
    match std::fs::remove_dir_all(&work) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(DriverError::io(format!("removing {}", work.display()), e)),
    }
    mkdir(sys, &work, WORK_DIR_MODE, Some(root))?;
    mkdir(sys, &diff, perms, Some(root))
}
