//! [`BtrfsDriver`]: the btrfs graph driver (upstream's `drivers/btrfs`).
//!
//! Layout (upstream's `drivers/btrfs/btrfs.go`): every layer is the subvolume
//! `<home>/subvolumes/<id>`; a parentless layer is a new empty subvolume, a child a writable
//! snapshot of its parent's (so it shares the parent's extents until written). Image layers go to
//! the split image store's home when there is one, and layers of additional image stores are used
//! read-only ([`Layout`]); a parent on another filesystem is copied (reflinked where possible) into
//! a new subvolume. `get` answers with the subvolume's path (nothing is mounted) and `put` does
//! nothing. A layer created with a `size` gets a qgroup limit on its referenced bytes, remembered
//! in `<home>/quotas/<id>` and applied again by `get`.
//!
//! What can go wrong: the home is not on btrfs (`NotSupported`), options are bad
//! (`BadOption`), a layer or its parent is missing (`LayerNotFound`), an ioctl or file
//! operation fails (`Io`, with the path).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use storage_driver::archive_runtime::ArchiveProvider;
use storage_driver::cleanup::log_failure;
use storage_driver::dedup::{DedupResult, HashMethod};
use storage_driver::idmap::IdMappings;
use storage_driver::syscalls::Syscalls;
use storage_driver::{
    ApplyDiffOpts, Change, CreateOpts, DriverError, DriverInit, DriverResult, FileGetter,
    GraphDriver, MountOpts,
};

use crate::getter::SubvolumeGetter;
use crate::layout::{is_plain_name, Layout, SUBVOLUMES_DIR};
use crate::options::{check_layer_size, parse_layer_options, parse_options, BtrfsOptions};
use crate::{home, subvolume};

/// Where per-layer quota sizes are remembered.
pub const QUOTAS_DIR: &str = "quotas";
/// Permissions of a new parentless layer's root (upstream's `defaultPerms`); applying a
/// layer sets the real ones.
const DEFAULT_PERMS: u32 = 0o555;

/// The btrfs graph driver.
#[derive(Debug)]
pub struct BtrfsDriver {
    home: PathBuf,
    layout: Layout,
    options: BtrfsOptions,
    id_mappings: IdMappings,
    /// Whether quotas are enabled on the filesystem; `None` until first asked.
    quota_enabled: Mutex<Option<bool>>,
    /// Where the archive work runs.
    archive: Arc<dyn ArchiveProvider>,
    /// The privileged system calls (ioctls, mounts, owners).
    sys: Arc<dyn Syscalls>,
}

/// Creates a directory (and its parents) unless it exists.
fn ensure_dir(path: &Path, mode: u32) -> DriverResult<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .map_err(|e| DriverError::io(format!("creating {}", path.display()), e))
}

/// The nearest existing directory at or above `path`, whose filesystem `path` will be on.
fn existing_ancestor(path: &Path) -> &Path {
    let mut at = path;
    while std::fs::symlink_metadata(at).is_err() {
        match at.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => at = parent,
            _ => break,
        }
    }
    at
}

/// Fails with upstream's `ErrPrerequisites` (`NotSupported`) unless `home` (or where it will be made) is on btrfs.
fn check_on_btrfs(home: &Path) -> DriverResult<()> {
    let probe = existing_ancestor(home);
    let magic = home::fs_magic(probe).map_err(|e| {
        DriverError::io(format!("checking the filesystem of {}", probe.display()), e)
    })?;
    if magic != home::BTRFS_SUPER_MAGIC {
        return Err(DriverError::prerequisites(format!(
            "{:?} is not on a btrfs filesystem",
            home.display().to_string()
        )));
    }
    Ok(())
}

/// The resolved path of `dir`, created if missing.
fn resolved_dir(dir: &Path) -> DriverResult<PathBuf> {
    ensure_dir(dir, 0o700)?;
    std::fs::canonicalize(dir)
        .map_err(|e| DriverError::io(format!("resolving {}", dir.display()), e))
}

/// The last component of the home (the driver's name, normally `btrfs`).
fn name_of(home: &Path) -> PathBuf {
    home.file_name()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("btrfs"))
}

impl BtrfsDriver {
    /// Starts the driver: checks that the home is on btrfs, parses options (in upstream's
    /// order, so that a home elsewhere is the error a store choosing a driver passes over),
    /// prepares the home, makes it a private mount, and enables quotas if `btrfs.min_space`
    /// asks for them. Nothing is created when the options are bad or the home is not on btrfs.
    pub fn new(init: &DriverInit) -> DriverResult<Self> {
        if init.home.as_os_str().is_empty() {
            return Err(DriverError::BadOption(
                "btrfs: the driver needs a home".to_string(),
            ));
        }
        check_on_btrfs(&init.home)?;
        let image_home = init
            .image_store
            .as_ref()
            .map(|s| s.join(name_of(&init.home)));
        if let Some(image_home) = &image_home {
            check_on_btrfs(image_home)?;
        }
        let options = parse_options(&init.options)?;
        ensure_dir(&init.home.join(SUBVOLUMES_DIR), 0o700)?;
        // Mount points appear resolved in mountinfo: work with the resolved home.
        let home = std::fs::canonicalize(&init.home)
            .map_err(|e| DriverError::io(format!("resolving {}", init.home.display()), e))?;
        home::make_private(init.syscalls.as_ref(), &home).map_err(|e| {
            DriverError::io(format!("making {} a private mount", home.display()), e)
        })?;
        let image_home = image_home.as_deref().map(resolved_dir).transpose()?;
        let read_only_homes = options
            .image_stores
            .iter()
            .map(|s| s.join(name_of(&home)))
            .collect();
        let driver = BtrfsDriver {
            layout: Layout::new(home.clone(), image_home, read_only_homes),
            home,
            options,
            id_mappings: init.id_mappings.clone(),
            quota_enabled: Mutex::new(None),
            archive: std::sync::Arc::clone(&init.archive),
            sys: Arc::clone(&init.syscalls),
        };
        if driver.options.enable_quota {
            driver.enable_quota()?;
        }
        Ok(driver)
    }

    /// The driver's parsed options.
    pub fn options(&self) -> &BtrfsOptions {
        &self.options
    }

    /// Where the driver's archive work runs.
    pub fn archive_provider(&self) -> &dyn ArchiveProvider {
        self.archive.as_ref()
    }

    /// The store's ID mappings, given at init.
    pub fn id_mappings(&self) -> &IdMappings {
        &self.id_mappings
    }

    /// Where the layers are.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The system calls the driver makes.
    pub fn syscalls(&self) -> &dyn Syscalls {
        self.sys.as_ref()
    }

    /// Opens a directory for an ioctl.
    fn open(path: &Path) -> DriverResult<std::fs::File> {
        std::fs::File::open(path)
            .map_err(|e| DriverError::io(format!("opening {}", path.display()), e))
    }

    /// `<home>/quotas/<id>`.
    fn quota_file(&self, id: &str) -> PathBuf {
        self.home.join(QUOTAS_DIR).join(id)
    }

    /// The subvolume of layer `id` (in any home), which must exist.
    pub fn layer_dir(&self, id: &str) -> DriverResult<PathBuf> {
        self.layout
            .find_dir(id)
            .ok_or_else(|| DriverError::LayerNotFound(id.to_string()))
    }

    /// Whether quotas are enabled on the filesystem (asked once, then remembered).
    pub fn quota_enabled(&self) -> bool {
        let mut known = self
            .quota_enabled
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *known.get_or_insert_with(|| {
            std::fs::File::open(&self.home)
                .and_then(|home| self.sys.btrfs_quota_enabled(home.as_fd()))
                .unwrap_or(false)
        })
    }

    /// Enables quotas on the filesystem unless they are.
    fn enable_quota(&self) -> DriverResult<()> {
        if self.quota_enabled() {
            return Ok(());
        }
        let home = Self::open(&self.home)?;
        self.sys.btrfs_quota_enable(home.as_fd()).map_err(|e| {
            DriverError::io(
                format!("failed to enable btrfs quota for {}", self.home.display()),
                e,
            )
        })?;
        *self
            .quota_enabled
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(true);
        Ok(())
    }

    /// Limits the referenced bytes of the subvolume at `dir`.
    fn limit(&self, dir: &Path, size: u64) -> DriverResult<()> {
        self.enable_quota()?;
        let fd = Self::open(dir)?;
        self.sys.btrfs_qgroup_limit(fd.as_fd(), size).map_err(|e| {
            DriverError::io(format!("failed to limit qgroup for {}", dir.display()), e)
        })
    }

    /// Creates layer `id` (the same for image and container layers, as upstream, except that
    /// image layers go to the split image store when there is one).
    fn create_layer(
        &self,
        id: &str,
        parent: Option<&str>,
        opts: &CreateOpts,
        image_layer: bool,
    ) -> DriverResult<()> {
        if !is_plain_name(id) {
            return Err(DriverError::InvalidLayerId(id.to_string()));
        }
        let size = parse_layer_options(&opts.storage_opt)?;
        if let Some(size) = size {
            check_layer_size(size, self.options.min_space)?;
        }
        if self.layout.writable_dir(id).is_some() {
            // Debris of an interrupted create: remove it and start over.
            self.remove(id)?;
        }
        let subvolumes = self.layout.subvolumes_for(image_layer);
        ensure_dir(&subvolumes, 0o700)?;
        let dir = subvolumes.join(id);
        match parent {
            None => {
                subvolume::create(self.syscalls(), &subvolumes, OsStr::new(id))
                    .map_err(|e| DriverError::io("btrfs", e))?;
            }
            Some(parent) => {
                let parent_dir = self.layer_dir(parent)?;
                match subvolume::snapshot(self.syscalls(), &parent_dir, &subvolumes, OsStr::new(id))
                {
                    Ok(()) => {}
                    // A read-only store on another filesystem: no snapshot can reach it.
                    Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {
                        subvolume::create(self.syscalls(), &subvolumes, OsStr::new(id))
                            .map_err(|e| DriverError::io("btrfs", e))?;
                        if let Err(e) = subvolume::copy_contents(self.syscalls(), &parent_dir, &dir)
                        {
                            // The copy's error is the one to report; what stays is debris
                            // the next create of this ID removes first.
                            log_failure(
                                format_args!("removing the debris of layer {id}"),
                                self.remove(id),
                            );
                            return Err(DriverError::io(
                                format!("copying layer {parent} into layer {id}"),
                                e,
                            ));
                        }
                    }
                    Err(e) => return Err(DriverError::io("btrfs", e)),
                }
            }
        }
        let result = self.finish_layer(id, &dir, parent.is_none(), opts, size);
        if result.is_err() {
            // As above: the error to report is the one that got us here.
            log_failure(
                format_args!("removing the debris of layer {id}"),
                self.remove(id),
            );
        }
        result
    }

    /// Sets a new layer's root permissions and owner and its quota.
    fn finish_layer(
        &self,
        id: &str,
        dir: &Path,
        parentless: bool,
        opts: &CreateOpts,
        size: Option<u64>,
    ) -> DriverResult<()> {
        if parentless {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DEFAULT_PERMS))
                .map_err(|e| DriverError::io(format!("chmod {}", dir.display()), e))?;
            let mappings = if opts.id_mappings.is_identity() {
                &self.id_mappings
            } else {
                &opts.id_mappings
            };
            let (uid, gid) = mappings.to_host(0, 0).ok_or(DriverError::UnmappedRoot)?;
            if (uid, gid) != (0, 0) {
                self.sys
                    .chown(dir, uid, gid)
                    .map_err(|e| DriverError::io(format!("chown {}", dir.display()), e))?;
            }
        }
        if let Some(size) = size {
            self.limit(dir, size)?;
            let quotas = self.home.join(QUOTAS_DIR);
            ensure_dir(&quotas, 0o700)?;
            let file = self.quota_file(id);
            std::fs::write(&file, size.to_string())
                .map_err(|e| DriverError::io(format!("writing {}", file.display()), e))?;
        }
        Ok(())
    }
}

impl GraphDriver for BtrfsDriver {
    fn name(&self) -> &str {
        "btrfs"
    }

    fn home(&self) -> &Path {
        &self.home
    }

    fn create(&self, id: &str, parent: Option<&str>, opts: &CreateOpts) -> DriverResult<()> {
        self.create_layer(id, parent, opts, true)
    }

    fn create_read_write(
        &self,
        id: &str,
        parent: Option<&str>,
        opts: &CreateOpts,
    ) -> DriverResult<()> {
        self.create_layer(id, parent, opts, false)
    }

    fn remove(&self, id: &str) -> DriverResult<()> {
        // Only layers of a writable home are ours to remove.
        let Some(dir) = self.layout.writable_dir(id) else {
            return Ok(());
        };
        let Some(subvolumes) = dir.parent().map(Path::to_path_buf) else {
            return Ok(());
        };
        let quota_file = self.quota_file(id);
        match std::fs::remove_file(&quota_file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(DriverError::io(
                    format!("removing {}", quota_file.display()),
                    e,
                ))
            }
        }
        let quota = self.quota_enabled();
        let is_subvolume = subvolume::is_subvolume(&dir)
            .map_err(|e| DriverError::io(format!("stat of {}", dir.display()), e))?;
        if is_subvolume {
            if let Err(e) = subvolume::delete(self.syscalls(), &subvolumes, OsStr::new(id), quota) {
                if quota {
                    return Err(DriverError::io(format!("removing layer {id}"), e));
                }
                // Without quotas, removing what is left as a directory still works
                // (an empty subvolume is removed by rmdir on Linux ≥ 4.18), as upstream
                // falls back to.
                log::debug!("btrfs: {e}; removing as a directory");
            }
        }
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(DriverError::io(format!("removing {}", dir.display()), e)),
        }
        if quota {
            let home = Self::open(&self.home)?;
            self.sys
                .btrfs_quota_rescan_wait(home.as_fd())
                .map_err(|e| {
                    DriverError::io(
                        format!("failed to rescan btrfs quota for {}", self.home.display()),
                        e,
                    )
                })?;
        }
        Ok(())
    }

    fn get(&self, id: &str, opts: &MountOpts) -> DriverResult<PathBuf> {
        let dir = self.layer_dir(id)?;
        // `ro` is accepted and ignored, as upstream does; nothing else is.
        if opts.options.iter().any(|o| o != "ro") {
            return Err(DriverError::BadOption(
                "btrfs driver does not support mount options".to_string(),
            ));
        }
        if let Ok(text) = std::fs::read_to_string(self.quota_file(id)) {
            if let Ok(size) = text.trim().parse::<u64>() {
                if size >= self.options.min_space {
                    self.limit(&dir, size)?;
                }
            }
        }
        Ok(dir)
    }

    fn put(&self, _id: &str) -> DriverResult<()> {
        // `get` mounts nothing.
        Ok(())
    }

    fn exists(&self, id: &str) -> bool {
        self.layout.find_dir(id).is_some()
    }

    fn list_layers(&self) -> DriverResult<Vec<String>> {
        self.layout.layer_ids().map_err(|e| {
            DriverError::io(
                format!("reading {}", self.home.join(SUBVOLUMES_DIR).display()),
                e,
            )
        })
    }

    fn status(&self) -> Vec<(String, String)> {
        // Upstream reports the libbtrfs it was built with; this driver links none and
        // speaks to the kernel's ioctl interface directly.
        vec![
            (
                "Build Version".to_string(),
                format!("storage-btrfs {}", env!("CARGO_PKG_VERSION")),
            ),
            ("Library Version".to_string(), "kernel ioctls".to_string()),
        ]
    }

    fn metadata(&self, id: &str) -> DriverResult<BTreeMap<String, String>> {
        self.layer_dir(id)?;
        Ok(BTreeMap::new())
    }

    fn cleanup(&self) -> DriverResult<()> {
        // Upstream's Cleanup unmounts the home (observed: `shutdown` removes the private
        // bind mount on btrfs, unlike overlay). Only a bind mount of the home's own
        // filesystem is ours to detach: a filesystem mounted right at the home stays.
        let parent_dev = self
            .home
            .parent()
            .and_then(|p| std::fs::metadata(p).ok())
            .map(|m| m.dev());
        let own_dev = std::fs::metadata(&self.home).ok().map(|m| m.dev());
        if self.sys.is_mount_point(&self.home).unwrap_or(false) && parent_dev == own_dev {
            home::unmount_dir(self.syscalls(), &self.home)
                .map_err(|e| DriverError::io(format!("unmounting {}", self.home.display()), e))?;
        }
        Ok(())
    }

    fn apply_diff(
        &self,
        id: &str,
        parent: Option<&str>,
        diff: &mut dyn Read,
        opts: &ApplyDiffOpts,
    ) -> DriverResult<u64> {
        crate::archive_ops::apply_diff(self, id, parent, diff, opts)
    }

    fn diff(
        &self,
        id: &str,
        id_mappings: &IdMappings,
        parent: Option<&str>,
        parent_mappings: &IdMappings,
        out: &mut dyn Write,
    ) -> DriverResult<()> {
        crate::archive_ops::diff(self, id, id_mappings, parent, parent_mappings, out)
    }

    fn changes(
        &self,
        id: &str,
        id_mappings: &IdMappings,
        parent: Option<&str>,
        parent_mappings: &IdMappings,
    ) -> DriverResult<Vec<Change>> {
        crate::archive_ops::changes(self, id, id_mappings, parent, parent_mappings)
    }

    fn diff_size(
        &self,
        id: &str,
        id_mappings: &IdMappings,
        parent: Option<&str>,
        parent_mappings: &IdMappings,
    ) -> DriverResult<u64> {
        crate::archive_ops::diff_size(self, id, id_mappings, parent, parent_mappings)
    }

    fn diff_getter(&self, id: &str) -> DriverResult<Box<dyn FileGetter + '_>> {
        Ok(Box::new(SubvolumeGetter::open(&self.layer_dir(id)?)?))
    }

    fn additional_image_stores(&self) -> Vec<PathBuf> {
        self.options.image_stores.clone()
    }

    /// Re-owns every file of the layer's subvolume (upstream's naive `UpdateLayerIDMap`:
    /// a snapshot starts with its parent's owners).
    fn update_layer_id_map(
        &self,
        id: &str,
        to_container: &IdMappings,
        to_host: &IdMappings,
        _mount_label: &str,
    ) -> DriverResult<()> {
        let dir = self.layer_dir(id)?;
        if self.layout.is_read_only(&dir) {
            return Err(DriverError::Unsupported(
                "changing the ID mapping of a layer of a read-only image store",
            ));
        }
        storage_driver::reown::reown_tree(self.syscalls(), &dir, to_container, to_host)
    }

    /// Shares the extents of identical files among the listed layers' subvolumes
    /// (`FIDEDUPERANGE` works across subvolumes of one filesystem). Upstream's btrfs driver
    /// answers with nothing deduplicated; snapshots already share what they inherited, so
    /// this finds what separate imports wrote twice.
    fn dedup(&self, layers: &[String], method: HashMethod) -> DriverResult<DedupResult> {
        let dirs: Vec<PathBuf> = layers
            .iter()
            .filter_map(|id| self.layout.writable_dir(id))
            .filter(|dir| dir.is_dir())
            .collect();
        Ok(storage_driver::dedup::dedup_dirs(&dirs, method))
    }
}

#[cfg(test)]
#[path = "driver_tests.rs"]
mod tests;
