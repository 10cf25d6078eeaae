//! Parsing of the btrfs driver's options (`--storage-opt btrfs.X=V`, upstream's
//! `drivers/btrfs/btrfs.go`) and of the per-layer options a layer is created with (`size`).
//!
//! As upstream's `parseOptions`: keys are case-insensitive and must carry the `btrfs.`
//! prefix; `btrfs.min_space` (a size) turns quotas on, `btrfs.mountopt` is refused, and
//! anything else is an unknown option. The archive options overlay has (`archive`,
//! `archive_memory_limit`, `archive_deadline_ms`) are accepted too, with the same meaning.
//! Parsers take strings and do no I/O.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use storage_driver::archive_runtime::{parse_size, ArchiveSettings};
use storage_driver::{DriverError, DriverResult};

/// The btrfs driver's parsed options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BtrfsOptions {
    /// Smallest per-layer `size` accepted, in bytes (`btrfs.min_space`); 0 when not given.
    pub min_space: u64,
    /// Whether quotas were asked for (`btrfs.min_space` was given), so init enables them.
    pub enable_quota: bool,
    /// Where the archive work runs.
    pub archive: ArchiveSettings,
    /// Read-only graph roots (`imagestore`/`additionalimagestore`; upstream's btrfs driver
    /// has none, the issue asks for them on every driver).
    pub image_stores: Vec<PathBuf>,
}

/// Parses the driver options given at init.
pub fn parse_options(options: &[String]) -> DriverResult<BtrfsOptions> {
    let mut parsed = BtrfsOptions::default();
    for option in options {
        let (key, value) = option.split_once('=').ok_or_else(|| {
            DriverError::BadOption(format!("unable to parse key/value option: {option}"))
        })?;
        let key = key.trim().to_ascii_lowercase();
        let value = value.trim();
        let unknown = || DriverError::BadOption(format!("unknown option {key} ({option:?})"));
        let Some(name) = key.strip_prefix("btrfs.").or_else(|| {
            // The generic `.imagestore` form the configuration's additional stores use.
            key.strip_prefix('.')
                .filter(|n| matches!(*n, "imagestore" | "additionalimagestore"))
        }) else {
            return Err(unknown());
        };
        match name {
            "imagestore" | "additionalimagestore" => {
                for store in value.split(',').filter(|s| !s.is_empty()) {
                    parsed.image_stores.push(check_image_store(store)?);
                }
            }
            "min_space" => {
                parsed.min_space = parse_size("btrfs", value)?;
                parsed.enable_quota = true;
            }
            "mountopt" => {
                return Err(DriverError::BadOption(
                    "btrfs driver does not support mount options".to_string(),
                ))
            }
            other => {
                if !parsed.archive.parse_option("btrfs", other, value)? {
                    return Err(unknown());
                }
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
            "btrfs: image path {store:?} is not absolute.  Can not be relative"
        )));
    }
    let meta = std::fs::metadata(path).map_err(|source| DriverError::OptionPath {
        message: format!("btrfs: can't stat imageStore dir {store}"),
        source,
    })?;
    if !meta.is_dir() {
        return Err(DriverError::BadOption(format!(
            "btrfs: image path {store:?} must be a directory"
        )));
    }
    Ok(path.components().collect())
}

/// Parses a layer's `--storage-opt` map: only `size` is known; returns the size asked
/// for, if any.
pub fn parse_layer_options(storage_opt: &BTreeMap<String, String>) -> DriverResult<Option<u64>> {
    let mut size = None;
    for (key, value) in storage_opt {
        match key.to_ascii_lowercase().as_str() {
            "size" => size = Some(parse_size("btrfs", value.trim())?),
            other => {
                return Err(DriverError::BadOption(format!(
                    "unknown option {other} ({key}={value})"
                )))
            }
        }
    }
    Ok(size)
}

/// Checks a layer's quota against `min_space` the way upstream's `setStorageSize` does.
pub fn check_layer_size(size: u64, min_space: u64) -> DriverResult<()> {
    if size == 0 {
        return Err(DriverError::BadOption(
            "btrfs: invalid storage size: 0B".to_string(),
        ));
    }
    if min_space > 0 && size < min_space {
        return Err(DriverError::BadOption(format!(
            "btrfs: storage size cannot be less than {}",
            human_size(min_space)
        )));
    }
    Ok(())
}

/// A size the way go-units' `HumanSize` prints it (decimal units, 4 significant digits).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    // %.4g: four significant digits, no trailing zeros.
    let digits = if value >= 100.0 {
        1
    } else if value >= 10.0 {
        2
    } else {
        3
    };
    let text = format!("{value:.digits$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    format!("{text}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage_driver::archive_runtime::ArchiveRuntime;

    fn opts(list: &[&str]) -> DriverResult<BtrfsOptions> {
        parse_options(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn min_space_enables_quota() {
        let none = opts(&[]).expect("no options");
        assert!(!none.enable_quota);
        assert_eq!(none.min_space, 0);
        let o = opts(&["BTRFS.Min_Space=10M"]).expect("min_space");
        assert!(o.enable_quota);
        assert_eq!(o.min_space, 10 << 20);
        assert!(opts(&["btrfs.min_space=lots"]).is_err());
    }

    #[test]
    fn mountopt_and_unknown_options_are_refused_as_upstream() {
        assert_eq!(
            opts(&["btrfs.mountopt=nodev"])
                .expect_err("mountopt")
                .to_string(),
            "btrfs driver does not support mount options"
        );
        assert_eq!(
            opts(&["btrfs.bogus=1"]).expect_err("unknown").to_string(),
            "unknown option btrfs.bogus (\"btrfs.bogus=1\")"
        );
        // Upstream knows no other prefix, and no `size` driver option.
        assert!(opts(&[".min_space=1G"]).is_err());
        assert!(opts(&["min_space=1G"]).is_err());
        assert!(opts(&["btrfs.size=1G"]).is_err());
        assert!(opts(&["btrfs.min_space"]).is_err());
    }

    #[test]
    fn archive_options_are_those_of_overlay() {
        let o = opts(&["btrfs.archive=native", "btrfs.archive_deadline_ms=900"]).expect("ok");
        assert_eq!(o.archive.runtime, ArchiveRuntime::Native);
        assert_eq!(o.archive.deadline_ms, Some(900));
        assert!(opts(&["btrfs.archive=wasm"]).is_err());
    }

    #[test]
    fn image_stores_must_be_absolute_dirs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display();
        let o = opts(&[
            &format!("btrfs.imagestore={d},{d}/"),
            &format!(".imagestore={d}"),
        ])
        .expect("three stores");
        assert_eq!(o.image_stores, vec![dir.path().to_path_buf(); 3]);
        assert!(opts(&["btrfs.imagestore=relative"]).is_err());
        assert!(opts(&["btrfs.imagestore=/nonexistent/store"]).is_err());
        assert!(opts(&[".bogus=1"]).is_err());
    }

    #[test]
    fn layer_options_know_only_size() {
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        assert_eq!(parse_layer_options(&map(&[])).expect("empty"), None);
        assert_eq!(
            parse_layer_options(&map(&[("Size", "2M")])).expect("size"),
            Some(2 << 20)
        );
        assert!(parse_layer_options(&map(&[("inodes", "5")])).is_err());
        assert!(parse_layer_options(&map(&[("size", "big")])).is_err());
    }

    #[test]
    fn layer_sizes_are_checked_against_min_space() {
        assert!(check_layer_size(1 << 20, 0).is_ok());
        assert!(check_layer_size(0, 0).is_err());
        assert_eq!(
            check_layer_size(1 << 20, 10 << 20)
                .expect_err("too small")
                .to_string(),
            "btrfs: storage size cannot be less than 10.49MB"
        );
        assert!(check_layer_size(10 << 20, 10 << 20).is_ok());
    }

    #[test]
    fn human_sizes_as_go_units() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1000), "1kB");
        assert_eq!(human_size(10 << 20), "10.49MB");
        assert_eq!(human_size(1 << 30), "1.074GB");
    }
}
