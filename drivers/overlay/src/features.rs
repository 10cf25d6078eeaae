//! What the kernel and the backing filesystem can do, probed once and cached in the run
//! root under upstream's file names (`overlay-true`, `native-diff(<mountopts>)-true`,
//! `metacopy(<mountopts>)-false`, `volatile-true`; the content is the reason text), so a
//! Go driver sharing the run root reads the same answers.

use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use storage_driver::cleanup::log_failure;
use storage_driver::syscalls::{FileType, Syscalls};
use storage_driver::{DriverError, DriverResult};

use crate::mount::{mount_overlay, unmount_target, OverlaySpec};
use crate::options::OverlayOptions;

/// The name upstream gives the filesystem at `path` (`extfs`, `xfs`, `tmpfs`, ...), or
/// `<unknown>`.
pub fn backing_fs_name(path: &Path) -> String {
    let Ok(st) = rustix::fs::statfs(path) else {
        return "<unknown>".to_string();
    };
    #[allow(clippy::unnecessary_cast)] // f_type's width differs between targets
    let magic = st.f_type as u64;
    match magic {
        0x0000_EF53 => "extfs",
        0x5846_5342 => "xfs",
        0x0102_1994 => "tmpfs",
        0x9123_683E => "btrfs",
        0x794C_7630 => "overlayfs",
        0x2FC1_2FC1 => "zfs",
        0xF2F5_2010 => "f2fs",
        0x0000_6969 => "nfs",
        0x6573_5546 => "fuseblk",
        0x6175_6673 => "aufs",
        0xF15F => "ecryptfs",
        0x8584_58F6 => "ramfs",
        0x0000_4D44 => "msdos",
        _ => "<unknown>",
    }
    .to_string()
}

/// Reads a cached feature answer: `Some((supported, reason text))`.
pub fn cached(run_home: &Path, feature: &str) -> Option<(bool, String)> {
    for (value, suffix) in [(true, "true"), (false, "false")] {
        if let Ok(text) = std::fs::read_to_string(run_home.join(format!("{feature}-{suffix}"))) {
            return Some((value, text));
        }
    }
    None
}

/// Records a feature answer (best effort: the run root may be read-only for us).
pub fn record(run_home: &Path, feature: &str, supported: bool, reason: &str) {
    let _ = std::fs::write(run_home.join(format!("{feature}-{supported}")), reason);
}

/// Returns the cached answer for `feature`, or runs `probe` and records its answer.
pub fn check(run_home: &Path, feature: &str, probe: impl FnOnce() -> Result<(), String>) -> bool {
    if let Some((value, _)) = cached(run_home, feature) {
        return value;
    }
    match probe() {
        Ok(()) => {
            record(run_home, feature, true, "");
            true
        }
        Err(reason) => {
            record(run_home, feature, false, &reason);
            false
        }
    }
}

/// Whether readdir on `dir` reports file types (overlay needs d_type).
pub fn supports_d_type(dir: &Path) -> io::Result<bool> {
    // Per process: concurrent inits sharing one name removed each other's probe.
    let name = format!("d_type-probe-{}", std::process::id());
    let probe = dir.join(&name);
    std::fs::write(&probe, b"")?;
    let result = std::fs::read_dir(dir)?
        .flatten()
        .find(|e| e.file_name() == name.as_str())
        .map(|e| e.file_type().is_ok());
    // The answer is known; a probe file left behind is only an empty file in the home.
    log_failure(
        format_args!("removing {}", probe.display()),
        std::fs::remove_file(&probe),
    );
    Ok(result.unwrap_or(false))
}

/// Test-mounts an overlay with two lowers, an upper with a kernel whiteout, and the
/// extra `options`, in a scratch directory under `home` (through the new mount API when
/// `new_api`).
pub fn probe_mount(
    sys: &dyn Syscalls,
    home: &Path,
    options: &[String],
    new_api: bool,
) -> Result<(), String> {
    let scratch = tempfile::Builder::new()
        .prefix("compat")
        .tempdir_in(home)
        .map_err(|e| {
            format!(
                "creating a test directory in {}: {}",
                home.display(),
                storage_archive::error::os_error_text(&e)
            )
        })?;
    let base = scratch.path();
    for sub in ["lower1", "lower2", "upper", "work", "merged"] {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(base.join(sub))
            .map_err(|e| {
                format!(
                    "creating {sub}: {}",
                    storage_archive::error::os_error_text(&e)
                )
            })?;
    }
    sys.mknod_at(
        rustix::fs::CWD,
        &base.join("upper/whiteout"),
        FileType::CharacterDevice,
        0o600,
        rustix::fs::makedev(0, 0),
    )
    .map_err(|e| {
        format!(
            "unable to create kernel-style whiteout: {}",
            storage_archive::error::os_error_text(&e)
        )
    })?;
    let spec = OverlaySpec {
        lowers: vec![base.join("lower1"), base.join("lower2")],
        relative_lowers: vec!["lower1".into(), "lower2".into()],
        relative_base: base.to_path_buf(),
        upper: Some((base.join("upper"), base.join("work"))),
        options: options.to_vec(),
        target: base.join("merged"),
    };
    // As upstream: the kernel's answer is logged at debug level, the reason names the
    // filesystem and the place.
    let result = mount_overlay(sys, &spec, new_api).map_err(|e| {
        log::debug!("overlay: test mount failed: {e}");
        format!(
            "'overlay' is not supported over {} at {:?}",
            backing_fs_name(home),
            home
        )
    });
    if result.is_ok() {
        // The answer is known (yes); as upstream, a test mount that stays is logged.
        log_failure(
            format_args!("unmounting the test mount {}", spec.target.display()),
            unmount_target(sys, &spec.target),
        );
    }
    result
}

/// What was found out about the kernel and filesystem at init.
#[derive(Debug, Clone)]
pub(crate) struct Features {
    /// Upstream's name of the home's filesystem.
    pub(crate) backing_fs: String,
    /// Whether readdir reports file types there.
    pub(crate) supports_d_type: bool,
    /// Whether diffs are computed from the upper directory alone.
    pub(crate) native_diff: bool,
    /// Whether `metacopy=on` works.
    pub(crate) metacopy: bool,
    /// Whether `volatile` works; `None` until asked, when a test mount is made (through the
    /// cache) by [`probe_volatile`]: upstream's `getSupportsVolatile` asks only for `status`
    /// and for a volatile mount, so a fresh run root has no `volatile-*` answer before.
    pub(crate) volatile: Option<bool>,
}

/// Probes overlay support, metacopy and native diff, through the cache (the new mount API
/// when `new_api`); `volatile` is probed when first asked ([`probe_volatile`]).
pub(crate) fn probe_kernel(
    sys: &dyn Syscalls,
    new_api: bool,
    home: &Path,
    run_home: &Path,
    options: &OverlayOptions,
    backing_fs: String,
) -> DriverResult<Features> {
    if matches!(backing_fs.as_str(), "aufs" | "overlayfs" | "ecryptfs") {
        return Err(DriverError::incompatible_fs(format!(
            "'overlay' is not supported over {backing_fs}, a mount_program is required"
        )));
    }
    let supports_d_type = supports_d_type(home)
        .map_err(|e| DriverError::io(format!("checking d_type in {}", home.display()), e))?;
    if !supports_d_type {
        // Upstream's `overlayutils.ErrDTypeNotSupported`.
        let reformat = if backing_fs == "xfs" {
            " Reformat the filesystem with ftype=1 to enable d_type support."
        } else {
            ""
        };
        return Err(DriverError::not_supported(format!(
            "overlay: the backing {backing_fs} filesystem is formatted without d_type support, \
             which leads to incorrect behavior.{reformat} Running without d_type is not supported."
        )));
    }
    // The answer is cached as upstream caches it: the whole message, given back verbatim.
    let probe_overlay = || {
        probe_mount(sys, home, &[], new_api).map_err(|reason| {
            DriverError::incompatible_fs(format!("kernel does not support overlay fs: {reason}"))
                .to_string()
        })
    };
    if !check(run_home, "overlay", probe_overlay) {
        return Err(match cached(run_home, "overlay") {
            Some((_, text)) if !text.is_empty() => DriverError::NotSupported(text),
            _ => DriverError::incompatible_fs("kernel does not support overlay fs"),
        });
    }
    let mountopt = options.mount_options.join(",");
    let metacopy_wanted = options.mount_options.iter().any(|o| o == "metacopy=on");
    let metacopy = check(run_home, &format!("metacopy({mountopt})"), || {
        if metacopy_wanted {
            probe_mount(sys, home, &options.mount_options, new_api)
        } else {
            Err("metacopy not requested".to_string())
        }
    });
    // Walking the upper dir gives a correct diff only when the kernel records every
    // change there: metacopy and redirect_dir store renames and metadata-only
    // copies in xattrs that a diff walk would miss.
    let native_diff = check(run_home, &format!("native-diff({mountopt})"), || {
        native_diff_allowed(options)
    });
    Ok(Features {
        backing_fs,
        supports_d_type,
        native_diff,
        metacopy,
        volatile: None,
    })
}

/// Whether the kernel mounts `volatile` overlays in `home`: the run home's cached answer,
/// else a test mount, recorded there (upstream's `checkSupportVolatile`).
pub(crate) fn probe_volatile(
    sys: &dyn Syscalls,
    new_api: bool,
    home: &Path,
    run_home: &Path,
) -> bool {
    check(run_home, "volatile", || {
        probe_mount(sys, home, &["volatile".to_string()], new_api)
    })
}

/// Whether the mount options leave diffs to a walk of the upper directory: metacopy and
/// redirect_dir store renames and metadata-only copies in xattrs that a walk would miss.
fn native_diff_allowed(options: &OverlayOptions) -> Result<(), String> {
    if options
        .mount_options
        .iter()
        .any(|o| o == "metacopy=on" || (o.starts_with("redirect_dir=") && o != "redirect_dir=off"))
    {
        Err("Not using native diff for overlay, this may cause degraded performance for building images: metacopy or redirect_dir enabled".to_string())
    } else {
        Ok(())
    }
}

/// The features of a driver started without root's privileges outside a user namespace,
/// where the kernel refuses every test mount: nothing is probed and nothing is recorded in
/// the run root's cache (a refusal recorded there would be read by the same user's later
/// commands in a user namespace, where the kernel says yes). Upstream does the same: its
/// `SupportsNativeOverlay` and `checkAndRecordOverlaySupport` return at once for a non-zero
/// effective UID.
pub(crate) fn unprobed(
    home: &Path,
    options: &OverlayOptions,
    backing_fs: String,
) -> DriverResult<Features> {
    let supports_d_type = supports_d_type(home)
        .map_err(|e| DriverError::io(format!("checking d_type in {}", home.display()), e))?;
    Ok(Features {
        backing_fs,
        supports_d_type,
        native_diff: native_diff_allowed(options).is_ok(),
        metacopy: false,
        // As with a mount program, assumed: the only mounts such a process can make are in
        // a user namespace, which overlay allows from Linux 5.11 on; `volatile` came in 5.10.
        volatile: Some(true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(cached(dir.path(), "overlay").is_none());
        let mut runs = 0;
        assert!(!check(dir.path(), "native-diff()", || {
            runs += 1;
            Err("no".to_string())
        }));
        assert!(!check(dir.path(), "native-diff()", || {
            runs += 1;
            Ok(())
        }));
        assert_eq!(runs, 1);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("native-diff()-false")).expect("file"),
            "no"
        );
    }

    #[test]
    fn names_of_common_filesystems() {
        let name = backing_fs_name(Path::new("/proc"));
        assert_eq!(name, "<unknown>"); // procfs is not a backing filesystem upstream knows
        assert_ne!(backing_fs_name(Path::new("/")), "");
    }
}
