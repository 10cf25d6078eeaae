//! Starting the driver: options, the home and run home, project quotas, the mount program
//! a home was set up with, the kernel's features, and the home's private mount.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use storage_driver::{DriverError, DriverInit, DriverResult};

use super::{ensure_dir, OverlayDriver};
use crate::features::{self, Features};
use crate::layout::{Layout, LINK_DIR};
use crate::mount;
use crate::options::parse_options;
use crate::quota::QuotaControl;

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
                DriverError::not_supported(format!(
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
                volatile: Some(true),
            }
        } else if sys.euid() != 0 {
            // A rootless user outside a user namespace (`--unshare=false`): the kernel
            // refuses the test mounts for want of privilege, which says nothing about
            // overlay. The home's private mount below fails with EPERM as upstream's does
            // (or, with skip_mount_home, the first mount does).
            features::unprobed(&home, &options, backing_fs)?
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
            volatile: std::sync::OnceLock::new(),
        })
    }
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

/// The first executable file named `name` in `$PATH`.
pub(super) fn find_in_path(name: &str) -> Option<PathBuf> {
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
