//! Parsing of the overlay driver's options (`--storage-opt overlay.X=V`, upstream's
//! `docs/containers-storage.conf.5.md`).
//!
//! Keys are case-insensitive and may carry an `overlay.`, `overlay2.` or `.` prefix, as
//! upstream's `parseOptions` accepts. Parsing checks what can be checked without the
//! driver's home (paths exist, numbers parse); checks that need the backing filesystem
//! (project quota) are done at init.

use std::path::{Path, PathBuf};

use storage_driver::{DriverError, DriverResult};

/// The overlay driver's parsed options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OverlayOptions {
    /// Extra mount options for every layer mount (`mountopt`, comma list).
    pub mount_options: Vec<String>,
    /// Quota size in bytes requested with `size` (needs project quota).
    pub quota_size: u64,
    /// Quota inode count requested with `inodes` (needs project quota).
    pub quota_inodes: u64,
    /// Read-only graph roots (`imagestore`/`additionalimagestore`).
    pub image_stores: Vec<PathBuf>,
    /// A FUSE program doing the mounts instead of the kernel (`mount_program`).
    pub mount_program: Option<PathBuf>,
    /// Do not make the home a private bind mount (`skip_mount_home`).
    pub skip_mount_home: bool,
    /// Ignore chown failures while applying layers (`ignore_chown_errors`).
    pub ignore_chown_errors: bool,
    /// Permission mask forced on layer content (`force_mask`).
    pub force_mask: Option<u32>,
    /// Where apply-diff, diff and changes run (`archive`).
    pub archive: ArchiveRuntime,
    /// Memory limit of the archive component, in bytes (`archive_memory_limit`, a size);
    /// `None` is the component default.
    pub archive_memory_limit: Option<u64>,
    /// Time limit of one archive component call, in milliseconds (`archive_deadline_ms`);
    /// `None` is the component default.
    pub archive_deadline_ms: Option<u64>,
}

/// Where the overlay driver runs the archive logic (`storage-archive`); the host's type,
/// shared with the btrfs driver.
pub use storage_driver::archive_runtime::ArchiveRuntime;

/// Parses the driver options given at init.
pub fn parse_options(options: &[String]) -> DriverResult<OverlayOptions> {
    let mut parsed = OverlayOptions::default();
    for option in options {
        let (key, value) = option.split_once('=').ok_or_else(|| {
            DriverError::BadOption(format!("unable to parse key/value option: {option}"))
        })?;
        let lower = key.trim().to_ascii_lowercase();
        let name = lower
            .strip_prefix("overlay.")
            .or_else(|| lower.strip_prefix("overlay2."))
            .or_else(|| lower.strip_prefix('.'))
            .unwrap_or(&lower);
        let value = value.trim();
        match name {
            // Accepted for compatibility; upstream no longer needs it either.
            "override_kernel_check" => {}
            "mountopt" => {
                parsed.mount_options = value
                    .split(',')
                    .filter(|o| !o.is_empty())
                    .map(str::to_string)
                    .collect();
            }
            "size" => parsed.quota_size = parse_size(value)?,
            "inodes" => {
                parsed.quota_inodes = value.parse().map_err(|_| {
                    DriverError::BadOption(format!("overlay: invalid inodes value {value:?}"))
                })?;
            }
            "imagestore" | "additionalimagestore" => {
                for store in value.split(',').filter(|s| !s.is_empty()) {
                    parsed.image_stores.push(check_image_store(store)?);
                }
            }
            "additionallayerstore" => {
                return Err(DriverError::BadOption(
                    "overlay: additionallayerstore is not supported".to_string(),
                ))
            }
            "use_composefs" => {
                if parse_bool(key, value)? {
                    return Err(DriverError::BadOption(
                        "overlay: composefs is not supported".to_string(),
                    ));
                }
            }
            "mount_program" => {
                if value.is_empty() {
                    parsed.mount_program = None;
                } else {
                    std::fs::metadata(value).map_err(|source| DriverError::OptionPath {
                        message: format!("overlay: can't stat program {value:?}"),
                        source,
                    })?;
                    parsed.mount_program = Some(PathBuf::from(value));
                }
            }
            "skip_mount_home" => parsed.skip_mount_home = parse_bool(key, value)?,
            "ignore_chown_errors" => parsed.ignore_chown_errors = parse_bool(key, value)?,
            "force_mask" => parsed.force_mask = Some(parse_force_mask(value)?),
            "archive" => {
                parsed.archive = match value {
                    "component" => ArchiveRuntime::Component,
                    "native" => ArchiveRuntime::Native,
                    _ => {
                        return Err(DriverError::BadOption(format!(
                            "overlay: archive must be \"component\" or \"native\", not {value:?}"
                        )))
                    }
                }
            }
            "archive_memory_limit" => parsed.archive_memory_limit = Some(parse_size(value)?),
            "archive_deadline_ms" => {
                parsed.archive_deadline_ms = Some(value.parse().map_err(|_| {
                    DriverError::BadOption(format!(
                        "overlay: invalid archive_deadline_ms value {value:?}"
                    ))
                })?);
            }
            _ => {
                return Err(DriverError::BadOption(format!(
                    "overlay: unknown option {key}"
                )))
            }
        }
    }
    Ok(parsed)
}

/// Checks one image store path: absolute, existing, a directory.
fn check_image_store(store: &str) -> DriverResult<PathBuf> {
    let path = Path::new(store);
    if !path.is_absolute() {
        return Err(DriverError::BadOption(format!(
            "overlay: image path {store:?} is not absolute.  Can not be relative"
        )));
    }
    let meta = std::fs::metadata(path).map_err(|source| DriverError::OptionPath {
        message: format!("overlay: can't stat imageStore dir {store}: stat {store}"),
        source,
    })?;
    if !meta.is_dir() {
        return Err(DriverError::BadOption(format!(
            "overlay: image path {store:?} must be a directory"
        )));
    }
    Ok(path.components().collect())
}

/// Parses a boolean the way Go's `strconv.ParseBool` does.
fn parse_bool(key: &str, value: &str) -> DriverResult<bool> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(DriverError::BadOption(format!(
            "overlay: invalid boolean {value:?} for {key}"
        ))),
    }
}

/// `shared` (0755), `private` (0700) or an octal mode.
fn parse_force_mask(value: &str) -> DriverResult<u32> {
    match value {
        "shared" => Ok(0o755),
        "private" => Ok(0o700),
        _ => u32::from_str_radix(value, 8)
            .ok()
            .filter(|m| *m <= 0o7777)
            .ok_or_else(|| {
                DriverError::BadOption(format!("overlay: invalid force_mask {value:?}"))
            }),
    }
}

/// Parses a size such as `10G`, `512m`, `1.5GiB` or `4096` in binary units, like
/// go-units' `RAMInBytes` (the host's parser, shared with the btrfs driver).
pub fn parse_size(value: &str) -> DriverResult<u64> {
    storage_driver::archive_runtime::parse_size("overlay", value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(list: &[&str]) -> DriverResult<OverlayOptions> {
        parse_options(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn prefixes_and_case_are_accepted() {
        let o = opts(&[
            "overlay.mountopt=nodev,metacopy=on",
            ".Skip_Mount_Home=true",
            "overlay2.ignore_chown_errors=1",
            "OVERLAY.force_mask=shared",
            "overlay.override_kernel_check=true",
        ])
        .expect("valid options");
        assert_eq!(o.mount_options, vec!["nodev", "metacopy=on"]);
        assert!(o.skip_mount_home);
        assert!(o.ignore_chown_errors);
        assert_eq!(o.force_mask, Some(0o755));
    }

    #[test]
    fn force_mask_forms() {
        assert_eq!(
            opts(&["force_mask=private"]).expect("ok").force_mask,
            Some(0o700)
        );
        assert_eq!(
            opts(&["force_mask=0750"]).expect("ok").force_mask,
            Some(0o750)
        );
        assert!(opts(&["force_mask=99"]).is_err());
    }

    #[test]
    fn unknown_option_is_named() {
        let err = opts(&["overlay.bogus=1"]).expect_err("must fail");
        assert_eq!(err.to_string(), "overlay: unknown option overlay.bogus");
    }

    /// A path an option names that cannot be used keeps the I/O error as its source, under
    /// upstream's message.
    #[test]
    fn an_unusable_image_store_keeps_its_cause() {
        let err = opts(&["overlay.imagestore=/nonexistent/store"]).expect_err("missing");
        assert_eq!(
            err.to_string(),
            "overlay: can't stat imageStore dir /nonexistent/store: stat /nonexistent/store: \
             no such file or directory"
        );
        let source = std::error::Error::source(&err)
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .expect("the stat's error");
        assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
    }

    #[test]
    fn malformed_values_are_rejected() {
        assert!(opts(&["overlay.mountopt"]).is_err());
        assert!(opts(&["overlay.skip_mount_home=maybe"]).is_err());
        assert!(opts(&["overlay.inodes=lots"]).is_err());
        assert!(opts(&["overlay.size=12Q"]).is_err());
        assert!(opts(&["overlay.use_composefs=true"])
            .expect_err("composefs")
            .to_string()
            .contains("composefs"));
        assert!(opts(&["overlay.use_composefs=false"]).is_ok());
        assert!(opts(&["overlay.mount_program=/nonexistent/fuse-overlayfs"])
            .expect_err("missing program")
            .to_string()
            .contains("can't stat program"));
    }

    #[test]
    fn image_stores_must_be_absolute_dirs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").expect("write");
        let d = dir.path().display();
        let o = opts(&[&format!("overlay.imagestore={d},{d}/")]).expect("two stores");
        assert_eq!(
            o.image_stores,
            vec![dir.path().to_path_buf(), dir.path().to_path_buf()]
        );
        assert!(opts(&["overlay.imagestore=relative/dir"])
            .expect_err("relative")
            .to_string()
            .contains("not absolute"));
        assert!(opts(&[&format!("additionalimagestore={}", file.display())])
            .expect_err("file")
            .to_string()
            .contains("must be a directory"));
    }

    #[test]
    fn archive_runtime_and_limits() {
        let default = opts(&[]).expect("no options");
        assert_eq!(default.archive, ArchiveRuntime::Component);
        assert_eq!(default.archive_memory_limit, None);
        let o = opts(&[
            "overlay.archive=native",
            "overlay.archive_memory_limit=64m",
            "overlay.archive_deadline_ms=1500",
        ])
        .expect("valid archive options");
        assert_eq!(o.archive, ArchiveRuntime::Native);
        assert_eq!(o.archive_memory_limit, Some(64 << 20));
        assert_eq!(o.archive_deadline_ms, Some(1500));
        assert_eq!(
            opts(&["archive=component"]).expect("component").archive,
            ArchiveRuntime::Component
        );
        assert!(opts(&["overlay.archive=wasm"])
            .expect_err("unknown runtime")
            .to_string()
            .contains("\"component\" or \"native\""));
        assert!(opts(&["overlay.archive_deadline_ms=soon"]).is_err());
    }

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(parse_size("4096").expect("plain"), 4096);
        assert_eq!(parse_size("10k").expect("k"), 10 * 1024);
        assert_eq!(parse_size("1.5G").expect("G"), 3 << 29);
        assert_eq!(parse_size("2MiB").expect("MiB"), 2 << 20);
        assert!(parse_size("").is_err());
        assert!(parse_size("G").is_err());
    }
}
