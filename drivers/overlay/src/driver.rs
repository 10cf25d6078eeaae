//! [`OverlayDriver`]: the overlay graph driver (upstream's `drivers/overlay`).
//!
//! Layer content lives in `<id>/diff`; a layer is presented by mounting an overlay whose
//! lowers are the diff directories of its ancestors (through the `l/` short links) and
//! whose upper is its own diff. What can go wrong: the kernel has no overlay or refuses
//! the backing filesystem (`NotSupported`), options are bad (`BadOption`), a layer or one
//! of its lowers is missing (`LayerNotFound`, `Io`), a mount fails (`Io`).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use storage_driver::archive_runtime::ArchiveProvider;
use storage_driver::cleanup::log_failure;
use storage_driver::dedup::{DedupResult, HashMethod};
use storage_driver::idmap::IdMappings;
use storage_driver::syscalls::Syscalls;
use storage_driver::{
    ApplyDiffOpts, Change, CreateOpts, DriverError, DriverResult, FileGetter, GraphDriver,
    MountOpts,
};

use crate::features::Features;
use crate::getter::DiffDirGetter;
use crate::layout::{is_plain_name, Layout};
use crate::mount;
use crate::options::OverlayOptions;
use crate::quota::{Quota, QuotaControl};

mod create;
mod init;

/// The most lower layers a layer may have: the kernel's overlay stack limit
/// (`OVL_MAX_STACK`), which upstream's `maxDepth` also is.
pub const MAX_DEPTH: usize = 500;

/// The overlay graph driver.
#[derive(Debug)]
pub struct OverlayDriver {
    layout: Layout,
    run_home: PathBuf,
    options: OverlayOptions,
    features: Features,
    id_mappings: IdMappings,
    /// Project quotas of the home, when it is on xfs with project quota enabled.
    quota: Option<QuotaControl>,
    /// Where the archive work runs.
    archive: Arc<dyn ArchiveProvider>,
    /// The privileged system calls (mounts, owners, quotas).
    sys: Arc<dyn Syscalls>,
    /// Whether the kernel has the new mount API with `lowerdir+` (asked at init).
    new_mount_api: bool,
    /// Whether `volatile` mounts work, once asked ([`Features::volatile`]).
    volatile: std::sync::OnceLock<bool>,
}

/// Creates a directory with `mode` (not subject to the umask), owned by `owner`.
pub(crate) fn mkdir(
    sys: &dyn Syscalls,
    path: &Path,
    mode: u32,
    owner: Option<(u32, u32)>,
) -> DriverResult<()> {
    std::fs::DirBuilder::new()
        .mode(mode)
        .create(path)
        .map_err(|e| DriverError::io(format!("creating {}", path.display()), e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| DriverError::io(format!("chmod {}", path.display()), e))?;
    if let Some((uid, gid)) = owner {
        sys.chown(path, uid, gid)
            .map_err(|e| DriverError::io(format!("chown {}", path.display()), e))?;
    }
    Ok(())
}

/// Creates a directory unless it exists.
pub(crate) fn ensure_dir(path: &Path, mode: u32) -> DriverResult<()> {
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
    {
        Ok(()) => Ok(()),
        Err(e) => Err(DriverError::io(format!("creating {}", path.display()), e)),
    }
}

impl OverlayDriver {
    /// The paths of this driver's files.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The driver's parsed options.
    pub fn options(&self) -> &OverlayOptions {
        &self.options
    }

    /// Where the driver's archive work runs.
    pub fn archive_provider(&self) -> &dyn ArchiveProvider {
        self.archive.as_ref()
    }

    /// Whether the driver runs without root on the host, so overlay keeps its metadata in
    /// `user.overlay.*` xattrs (`userxattr`): as an ordinary user, or as root of a user
    /// namespace (a rootless command's re-execution), where `trusted.*` xattrs are refused.
    pub fn rootless(&self) -> bool {
        self.sys.euid() != 0 || self.sys.in_user_namespace()
    }

    /// The system calls the driver makes.
    pub fn syscalls(&self) -> &dyn Syscalls {
        self.sys.as_ref()
    }

    /// The store's ID mappings, given at init.
    pub fn id_mappings(&self) -> &IdMappings {
        &self.id_mappings
    }

    /// The home's project quota control, when the home is on xfs with project quota.
    pub fn project_quota(&self) -> Option<&QuotaControl> {
        self.quota.as_ref()
    }

    /// The run home (`<runroot>/overlay`), where feature answers are cached.
    pub fn run_home(&self) -> &Path {
        &self.run_home
    }

    /// Whether diffs are computed by walking the upper directory (upstream's
    /// `drivers/overlay/overlay.go`).
    pub fn uses_native_diff(&self) -> bool {
        self.features.native_diff
    }

    /// Whether the kernel mounts `volatile` overlays here.
    pub fn supports_volatile(&self) -> bool {
        *self.volatile.get_or_init(|| {
            self.features.volatile.unwrap_or_else(|| {
                crate::features::probe_volatile(
                    self.syscalls(),
                    self.new_mount_api,
                    self.layout.home(),
                    &self.run_home,
                )
            })
        })
    }

    /// Undoes the private bind mount of the home made at init, as upstream's `Cleanup`
    /// does at `shutdown` (upstream's `drivers/overlay/overlay.go`). Only a mount of the home's own
    /// filesystem (the bind mount of itself that init makes) is ours to detach: a filesystem that
    /// somebody mounted right at the home stays.
    pub fn unmount_home(&self) -> DriverResult<()> {
        let home = self.layout.home();
        let err = |e| DriverError::io(format!("unmounting {}", home.display()), e);
        if !self.sys.is_mount_point(home).map_err(err)? {
            return Ok(());
        }
        let own_dev = std::fs::metadata(home).map_err(err)?.dev();
        let parent_dev = match home.parent() {
            Some(parent) => std::fs::metadata(parent).map_err(err)?.dev(),
            None => return Ok(()),
        };
        if own_dev != parent_dev {
            return Ok(());
        }
        mount::unmount_target(self.sys.as_ref(), home).map_err(err)
    }

    /// The diff directory of a layer (in the home or a read-only store).
    pub fn diff_dir(&self, id: &str) -> DriverResult<PathBuf> {
        Ok(self.layout.dir(id)?.join("diff"))
    }

    /// Checks the layer's own link and repairs the home's links if it is missing.
    fn check_own_link(&self, dir: &Path) -> DriverResult<()> {
        if self.layout.is_read_only(dir) {
            return Ok(());
        }
        let ok = Layout::read_link_file(dir)
            .map(|short| std::fs::metadata(Layout::link_dir_of(dir).join(short)).is_ok())
            .unwrap_or(false);
        if !ok {
            self.layout.repair_links()?;
        }
        Ok(())
    }
}

impl GraphDriver for OverlayDriver {
    fn name(&self) -> &str {
        "overlay"
    }

    fn home(&self) -> &Path {
        self.layout.home()
    }

    fn create(&self, id: &str, parent: Option<&str>, opts: &CreateOpts) -> DriverResult<()> {
        for key in ["size", "inodes"] {
            if opts.storage_opt.contains_key(key) {
                return Err(DriverError::BadOption(format!(
                    "--storage-opt {key} is only supported for ReadWrite Layers"
                )));
            }
        }
        self.create_layer(id, parent, opts, true, None)
    }

    fn create_read_write(
        &self,
        id: &str,
        parent: Option<&str>,
        opts: &CreateOpts,
    ) -> DriverResult<()> {
        let quota = match &self.quota {
            // Every writable layer gets a project: with no limit, usage is still tracked.
            Some(_) => Some(Quota::for_layer(
                &opts.storage_opt,
                Quota {
                    size: self.options.quota_size,
                    inodes: self.options.quota_inodes,
                },
            )?),
            None if !opts.storage_opt.is_empty() => {
                return Err(DriverError::BadOption(
                    "--storage-opt is supported only for overlay over xfs with 'pquota' mount option"
                        .to_string(),
                ));
            }
            None => None,
        };
        self.create_layer(id, parent, opts, false, quota)
    }

    fn remove(&self, id: &str) -> DriverResult<()> {
        if !is_plain_name(id) {
            return Ok(());
        }
        let Some(dir) = self.layout.writable_dir(id) else {
            return Ok(());
        };
        if let Ok(short) = Layout::read_link_file(&dir) {
            // A short link left behind points at nothing; upstream only logs it too.
            log_failure(
                "removing a layer's short link",
                std::fs::remove_file(Layout::link_dir_of(&dir).join(short)),
            );
        }
        let merged = dir.join("merged");
        // As upstream, a failed unmount is logged: the removal below then fails on the
        // busy mount point and says so.
        log_failure(
            format_args!("unmounting {}", merged.display()),
            mount::unmount_target(self.syscalls(), &merged),
        );
        std::fs::remove_dir_all(&dir)
            .map_err(|e| DriverError::io(format!("removing {}", dir.display()), e))?;
        if let Some(control) = &self.quota {
            control.clear_quota(&dir);
        }
        Ok(())
    }

    fn get(&self, id: &str, opts: &MountOpts) -> DriverResult<PathBuf> {
        let dir = self.layout.dir(id)?;
        self.check_own_link(&dir)?;
        let spec = self.mount_spec(id, &dir, opts)?;
        let merged = &spec.target;
        if std::fs::symlink_metadata(merged).is_err() {
            // Upstream removes merged/ at put; recreate it (and, for a layer of a
            // read-only store, the directory in our home that holds it).
            ensure_dir(merged, 0o700)?;
        }
        if self.sys.is_mount_point(merged).unwrap_or(false) {
            return Ok(merged.clone());
        }
        if let Some((_, work)) = &spec.upper {
            // A volatile mount leaves `work/work/incompat/volatile` behind, and the kernel
            // refuses to mount that upper again while it exists (upstream removes it too).
            let marker = work.join("work").join("incompat").join("volatile");
            match std::fs::remove_dir_all(&marker) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(DriverError::io(format!("removing {}", marker.display()), e)),
            }
        }
        let result = match &self.options.mount_program {
            Some(program) => mount::mount_with_program(program, &spec),
            None => mount::mount_overlay(self.syscalls(), &spec, self.new_mount_api),
        };
        result.map_err(|e| DriverError::io(format!("mounting overlay for layer {id}"), e))?;
        Ok(spec.target)
    }

    fn put(&self, id: &str) -> DriverResult<()> {
        let dir = self.layout.dir(id)?;
        let merged = self.layout.merged_dir(id, &dir);
        mount::unmount_target(self.syscalls(), &merged)
            .map_err(|e| DriverError::io(format!("unmounting {}", merged.display()), e))?;
        if self.layout.is_read_only(&dir) {
            // The mount point of a read-only store's layer was our only file for it; one
            // left behind is an empty directory the next get uses again.
            log_failure(
                format_args!("removing {}", merged.display()),
                std::fs::remove_dir(&merged),
            );
            log_failure(
                format_args!("removing the directory of layer {id}"),
                std::fs::remove_dir(self.layout.own_dir(id)),
            );
            return Ok(());
        }
        // As upstream 1.60: merged/ never goes missing; the unmounted mount point is
        // swapped (rename(2) onto the empty directory) for a new one with its owner.
        let owner = std::fs::metadata(&merged)
            .or_else(|_| std::fs::metadata(&dir))
            .map(|m| (m.uid(), m.gid()))
            .map_err(|e| DriverError::io(format!("stat of {}", merged.display()), e))?;
        let fresh = dir.join("merged.1");
        match mkdir(self.syscalls(), &fresh, 0o700, Some(owner)) {
            Ok(()) => {}
            Err(_) if fresh.is_dir() => {}
            Err(e) => return Err(e),
        }
        std::fs::rename(&fresh, &merged).or_else(|e| {
            // rename(2) replaces only an empty directory; a non-empty merged/ (written
            // to while unmounted) stays, and the spare goes (if it stays, the next put
            // uses it).
            log_failure(
                format_args!("removing {}", fresh.display()),
                std::fs::remove_dir(&fresh),
            );
            if merged.is_dir() {
                Ok(())
            } else {
                Err(DriverError::io(
                    format!("replacing mount point {}", merged.display()),
                    e,
                ))
            }
        })
    }

    fn exists(&self, id: &str) -> bool {
        self.layout.find_dir(id).is_some()
    }

    fn list_layers(&self) -> DriverResult<Vec<String>> {
        self.layout.layer_ids()
    }

    fn status(&self) -> Vec<(String, String)> {
        let f = &self.features;
        vec![
            ("Backing Filesystem".to_string(), f.backing_fs.clone()),
            ("Supports d_type".to_string(), f.supports_d_type.to_string()),
            ("Native Overlay Diff".to_string(), f.native_diff.to_string()),
            ("Using metacopy".to_string(), f.metacopy.to_string()),
            ("Supports shifting".to_string(), false.to_string()),
            (
                "Supports volatile".to_string(),
                self.supports_volatile().to_string(),
            ),
        ]
    }

    fn metadata(&self, id: &str) -> DriverResult<BTreeMap<String, String>> {
        let dir = self.layout.dir(id)?;
        let mut meta = BTreeMap::new();
        let show = |p: PathBuf| p.display().to_string();
        meta.insert("WorkDir".to_string(), show(dir.join("work")));
        meta.insert("MergedDir".to_string(), show(dir.join("merged")));
        meta.insert("UpperDir".to_string(), show(dir.join("diff")));
        let lowers = self.layout.lower_diff_dirs(&dir)?;
        if !lowers.is_empty() {
            let joined: Vec<String> = lowers.into_iter().map(show).collect();
            meta.insert("LowerDir".to_string(), joined.join(":"));
        }
        Ok(meta)
    }

    fn cleanup(&self) -> DriverResult<()> {
        // Upstream's Cleanup also prunes leaked staging directories first; this driver
        // stages nothing beneath its home, so undoing the home's bind mount is all.
        self.unmount_home()
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
        let dir = self.layout.dir(id)?;
        let mut dirs = vec![dir.join("diff")];
        dirs.extend(self.layout.lower_diff_dirs(&dir)?);
        Ok(Box::new(DiffDirGetter::new(
            dirs,
            self.options.mount_program.is_some(),
        )))
    }

    fn update_layer_id_map(
        &self,
        id: &str,
        to_container: &IdMappings,
        to_host: &IdMappings,
        mount_label: &str,
    ) -> DriverResult<()> {
        crate::idmap_update::update_layer_id_map(self, id, to_container, to_host, mount_label)
    }

    fn additional_image_stores(&self) -> Vec<PathBuf> {
        self.options.image_stores.clone()
    }

    /// Upstream's overlay `Dedup`: the diff directories of the listed layers that live in
    /// a writable home (read-only stores are left alone).
    fn dedup(&self, layers: &[String], method: HashMethod) -> DriverResult<DedupResult> {
        let dirs: Vec<PathBuf> = layers
            .iter()
            .filter_map(|id| self.layout.writable_dir(id))
            .map(|dir| dir.join("diff"))
            .filter(|diff| diff.is_dir())
            .collect();
        Ok(storage_driver::dedup::dedup_dirs(&dirs, method))
    }
}

#[cfg(test)]
#[path = "driver_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "driver_double_tests.rs"]
mod without_root;
