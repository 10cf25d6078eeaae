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
    ApplyDiffOpts, Change, CreateOpts, DriverError, DriverInit, DriverResult, FileGetter,
    GraphDriver, MountOpts,
};

use crate::features::{self, Features};
use crate::getter::DiffDirGetter;
use crate::layout::{is_plain_name, Layout, LINK_DIR};
use crate::mount;
use crate::options::{parse_options, OverlayOptions};
use crate::quota::{Quota, QuotaControl};

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

/// Writes a file readable only by root (mode 0600), like upstream's flag files.
fn write_private(path: &Path, content: &str) -> DriverResult<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| DriverError::io(format!("writing {}", path.display()), e))?;
    file.write_all(content.as_bytes())
        .map_err(|e| DriverError::io(format!("writing {}", path.display()), e))
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
    /// Starts the driver: parses options, prepares the home and run home, probes the
    /// kernel (answers cached in the run root) and makes the home a private mount. The
    /// system calls are `init.syscalls`.
    pub fn new(init: &DriverInit) -> DriverResult<Self> {
        let sys = Arc::clone(&init.syscalls);
        let mut options = parse_options(&init.options)?;
        if init.home.as_os_str().is_empty() || init.run_root.as_os_str().is_empty() {
            // Relative to whatever the working directory is would scatter state.
            return Err(DriverError::BadOption(
                "overlay: the driver needs a home and a run root".to_string(),
            ));
        }
        ensure_dir(&init.home, 0o700)?;
        // Mount points appear resolved in /proc/self/mountinfo: work with the resolved
        // home so a symlinked graph root does not hide our own mounts from us.
        let home = std::fs::canonicalize(&init.home)
            .map_err(|e| DriverError::io(format!("resolving {}", init.home.display()), e))?;
        ensure_dir(&home.join(LINK_DIR), 0o755)?;
        let name = home
            .file_name()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("overlay"));
        let run_home = init.run_root.join(name);
        ensure_dir(&run_home, 0o700)?;

        let backing_fs = features::backing_fs_name(&home);
        if options.force_mask.is_some() && options.mount_program.is_none() {
            return Err(DriverError::BadOption(
                "'force_mask' is supported only with 'mount_program'".to_string(),
            ));
        }
        let wants_quota = options.quota_size > 0 || options.quota_inodes > 0;
        // Like upstream, project quotas are tried on every xfs home; they are an error
        // only when `size` or `inodes` asked for them.
        let quota = if backing_fs == "xfs" {
            match QuotaControl::new(Arc::clone(&sys), &home) {
                Ok(control) => Some(control),
                Err(e) if wants_quota => {
                    return Err(DriverError::BadOption(format!(
                        "storage options overlay.size and overlay.inodes not supported. Filesystem does not support Project Quota: {e}"
                    )))
                }
                Err(_) => None,
            }
        } else if wants_quota {
            return Err(DriverError::BadOption(format!(
                "storage option overlay.size and overlay.inodes only supported for backingFS XFS. Found {backing_fs}"
            )));
        } else {
            None
        };
        let flag_file = home.join(".has-mount-program");
        let had_program = std::fs::read_to_string(&flag_file)
            .map(|t| t.trim() == "true")
            .unwrap_or(false);
        if had_program && options.mount_program.is_none() {
            // Layers written through fuse-overlayfs keep AUFS `.wh.` whiteouts that the
            // kernel's overlay would show as files: keep using a mount program.
            options.mount_program = Some(find_in_path("fuse-overlayfs").ok_or_else(|| {
                DriverError::NotSupported(format!(
                    "{} was set up with a mount program; set overlay.mount_program",
                    home.display()
                ))
            })?);
        }
        let uses_program = options.mount_program.is_some();
        write_private(&flag_file, if uses_program { "true" } else { "false" })?;
        let new_mount_api = !uses_program && mount::new_api_available(sys.as_ref());

        let features = if uses_program {
            Features {
                backing_fs,
                supports_d_type: true,
                native_diff: false,
                metacopy: false,
                volatile: true,
            }
        } else {
            features::probe_kernel(
                sys.as_ref(),
                new_mount_api,
                &home,
                &run_home,
                &options,
                backing_fs,
            )?
        };

        if !options.skip_mount_home {
            mount::make_private(sys.as_ref(), &home).map_err(|e| {
                DriverError::io(format!("making {} a private mount", home.display()), e)
            })?;
        }
        // A split store keeps image layers in `<image store>/overlay`, with its own `l/`.
        let image_home = match &init.image_store {
            Some(store) => {
                let image_home = store.join(name_of(&home));
                ensure_dir(&image_home, 0o700)?;
                ensure_dir(&image_home.join(LINK_DIR), 0o755)?;
                Some(std::fs::canonicalize(&image_home).map_err(|e| {
                    DriverError::io(format!("resolving {}", image_home.display()), e)
                })?)
            }
            None => None,
        };
        let read_only_homes = options
            .image_stores
            .iter()
            .map(|s| s.join(name_of(&home)))
            .collect();
        Ok(OverlayDriver {
            layout: Layout::new(home, image_home, read_only_homes),
            run_home,
            options,
            features,
            id_mappings: init.id_mappings.clone(),
            quota,
            archive: Arc::clone(&init.archive),
            sys,
            new_mount_api,
        })
    }

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

    /// Whether the driver runs without root, so overlay keeps its metadata in
    /// `user.overlay.*` xattrs (`userxattr`).
    pub fn rootless(&self) -> bool {
        self.sys.euid() != 0
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

    /// Whether diffs are computed by walking the upper directory (spec §4.6).
    pub fn uses_native_diff(&self) -> bool {
        self.features.native_diff
    }

    /// Whether the kernel mounts `volatile` overlays here.
    pub fn supports_volatile(&self) -> bool {
        self.features.volatile
    }

    /// Undoes the private bind mount of the home made at init, as upstream's `Cleanup`
    /// does at `shutdown` (spec §3, §7.11). Only a mount of the home's own filesystem
    /// (the bind mount of itself that init makes) is ours to detach: a filesystem that
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

    /// Creates the directories and links of a new layer.
    /// Image layers go to the split image store when there is one. With `quota`, the
    /// layer directory gets a project of its own with these limits before anything is
    /// created in it, so `diff/` and `work/` (between which overlay renames) share it.
    fn create_layer(
        &self,
        id: &str,
        parent: Option<&str>,
        opts: &CreateOpts,
        image_layer: bool,
        quota: Option<Quota>,
    ) -> DriverResult<()> {
        if !is_plain_name(id) {
            return Err(DriverError::InvalidLayerId(id.to_string()));
        }
        if self.layout.writable_dir(id).is_some() {
            // Debris of an interrupted create: upstream removes it and starts over.
            self.remove(id)?;
        }
        let base = match (image_layer, self.layout.image_home()) {
            (true, Some(image_home)) => image_home.to_path_buf(),
            _ => self.layout.home().to_path_buf(),
        };
        let dir = base.join(id);
        let mappings = if opts.id_mappings.is_identity() {
            &self.id_mappings
        } else {
            &opts.id_mappings
        };
        let mut owner = mappings.to_host(0, 0).ok_or(DriverError::UnmappedRoot)?;
        // Upstream's defaultPerms; applying a layer sets the real root permissions.
        let mut diff_mode = 0o555;
        let parent_dir = match parent {
            Some(p) => {
                let pdir = self.layout.dir(p)?;
                let meta = std::fs::metadata(pdir.join("diff"))
                    .map_err(|e| DriverError::io(format!("stat of layer {p}"), e))?;
                owner = (meta.uid(), meta.gid());
                diff_mode = meta.mode() & 0o7777;
                Some(pdir)
            }
            None => None,
        };
        if let Some(mask) = self.options.force_mask {
            diff_mode = mask;
        }
        ensure_dir(&base.join(LINK_DIR), 0o755)?;
        mkdir(self.syscalls(), &dir, 0o700, Some(owner))?;
        let result = (|| {
            if let (Some(control), Some(quota)) = (&self.quota, quota) {
                control.set_quota(&dir, quota)?;
            }
            mkdir(self.syscalls(), &dir.join("diff"), diff_mode, Some(owner))?;
            self.layout.create_link(&base, id)?;
            mkdir(self.syscalls(), &dir.join("work"), 0o700, Some(owner))?;
            mkdir(self.syscalls(), &dir.join("merged"), 0o700, Some(owner))?;
            match (parent, parent_dir) {
                (Some(p), Some(_)) => {
                    let lowers = self.layout.lowers_for_child(p)?;
                    if lowers.len() > MAX_DEPTH {
                        return Err(DriverError::BadOption(format!(
                            "max depth exceeded: layer {id} would have {} lower layers (at most {MAX_DEPTH})",
                            lowers.len()
                        )));
                    }
                    let lower_file = dir.join("lower");
                    std::fs::write(&lower_file, lowers.join(":")).map_err(|e| {
                        DriverError::io(format!("writing {}", lower_file.display()), e)
                    })?;
                }
                _ => mkdir(self.syscalls(), &dir.join("empty"), 0o700, Some(owner))?,
            }
            Ok(())
        })();
        if result.is_err() {
            // The create's error is the one to report; what stays is debris the next
            // create of this ID removes first.
            log_failure(
                format_args!("removing the debris of layer {id}"),
                self.remove(id),
            );
        }
        result
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

/// The first executable file named `name` in `$PATH`.
fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The last component of the home (the driver's name, normally `overlay`).
fn name_of(home: &Path) -> PathBuf {
    home.file_name()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("overlay"))
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
            ("Supports volatile".to_string(), f.volatile.to_string()),
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
