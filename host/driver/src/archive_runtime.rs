//! Where a native driver's archive work runs: the sandboxed archive component (the default)
//! or the same `storage-archive` crate built into the binary (`<driver>.archive=native`, the
//! benchmark baseline). Both work on the same confined directories; this module gives them
//! one interface ([`ArchiveOps`]) and parses the three options that choose between them.
//! Which logic a driver gets comes from the [`ArchiveProvider`] in its
//! [`crate::DriverInit`]: this crate has only the native one ([`NativeOnly`]); the binary
//! installs one that also runs the component (the component host's). Shared by the overlay
//! and btrfs drivers.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use storage_archive::{ApplyOptions, DiffOptions, OverlayOptions};

use crate::confined;
pub use crate::confined::ParentTree;
use crate::idmap::IdMappings;
use crate::parsed_tar::LayerTar;
use crate::{Change, DriverError, DriverResult};

/// Where a driver runs the archive logic (`storage-archive`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ArchiveRuntime {
    /// Inside the sandboxed archive component (`archive=component`, the default).
    #[default]
    Component,
    /// The same crate built into the binary (`archive=native`): the benchmark baseline.
    Native,
}

/// A driver's choice of archive runtime and the component's limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArchiveSettings {
    /// Where apply-diff, diff and changes run (`archive`).
    pub runtime: ArchiveRuntime,
    /// Memory limit of the archive component, in bytes (`archive_memory_limit`, a size);
    /// `None` is the component default.
    pub memory_limit: Option<u64>,
    /// Time limit of one archive component call, in milliseconds (`archive_deadline_ms`);
    /// `None` is the component default.
    pub deadline_ms: Option<u64>,
}

impl ArchiveSettings {
    /// Takes one driver option if it is an archive option (`archive`,
    /// `archive_memory_limit`, `archive_deadline_ms`; `name` already stripped of the
    /// driver's prefix and lower-cased); returns whether it was one. `driver` prefixes
    /// error messages (`btrfs: ...`).
    pub fn parse_option(&mut self, driver: &str, name: &str, value: &str) -> DriverResult<bool> {
        match name {
            "archive" => {
                self.runtime = match value {
                    "component" => ArchiveRuntime::Component,
                    "native" => ArchiveRuntime::Native,
                    _ => {
                        return Err(DriverError::BadOption(format!(
                            "{driver}: archive must be \"component\" or \"native\", not {value:?}"
                        )))
                    }
                }
            }
            "archive_memory_limit" => self.memory_limit = Some(parse_size(driver, value)?),
            "archive_deadline_ms" => {
                self.deadline_ms = Some(value.parse().map_err(|_| {
                    DriverError::BadOption(format!(
                        "{driver}: invalid archive_deadline_ms value {value:?}"
                    ))
                })?);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// Parses a size such as `10G`, `512m`, `1.5GiB` or `4096` in binary units, like
/// go-units' `RAMInBytes`; `driver` prefixes the error message.
pub fn parse_size(driver: &str, value: &str) -> DriverResult<u64> {
    let bad = || DriverError::BadOption(format!("{driver}: invalid size: {value:?}"));
    let split = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse().map_err(|_| bad())?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        "p" | "pb" | "pib" => 1 << 50,
        _ => return Err(bad()),
    };
    let bytes = number * multiplier as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// The archive logic over directories, wherever it runs.
pub trait ArchiveOps: Send + Sync {
    /// Applies an uncompressed layer tar to `dir`; returns the applied size. A parsed tar
    /// is applied from its entries, without parsing its headers again.
    fn apply_tar(
        &self,
        dir: &Path,
        input: LayerTar<'_>,
        options: &ApplyOptions,
    ) -> DriverResult<u64>;

    /// Size of the tree at `dir`.
    fn tree_size(&self, dir: &Path) -> DriverResult<u64>;

    /// Writes the diff recorded in the overlay upper dir `upper` (`lowers` topmost first).
    fn write_overlay_diff(
        &self,
        upper: &Path,
        lowers: &[PathBuf],
        out: &mut dyn Write,
        options: &DiffOptions,
        overlay: &OverlayOptions,
    ) -> DriverResult<()>;

    /// Writes the naive diff of `layer` against `parent` (the whole tree when `None`).
    fn write_naive_diff(
        &self,
        layer: &Path,
        parent: Option<ParentTree<'_>>,
        out: &mut dyn Write,
        options: &DiffOptions,
    ) -> DriverResult<()>;

    /// Changes recorded in the overlay upper dir `upper` (`lowers` topmost first).
    fn changes_overlay(
        &self,
        upper: &Path,
        lowers: &[PathBuf],
        overlay: &OverlayOptions,
    ) -> DriverResult<Vec<Change>>;

    /// Naive changes of `layer` against `parent`.
    fn changes_naive(
        &self,
        layer: &Path,
        mappings: &IdMappings,
        parent: Option<ParentTree<'_>>,
    ) -> DriverResult<Vec<Change>>;

    /// Naive diff size of `layer` against `parent`.
    fn diff_size_naive(
        &self,
        layer: &Path,
        mappings: &IdMappings,
        parent: Option<ParentTree<'_>>,
    ) -> DriverResult<u64>;
}

/// Gives a driver the archive logic its settings ask for.
pub trait ArchiveProvider: Send + Sync + std::fmt::Debug {
    /// The archive logic for `settings`. A provider may load what it needs on the first
    /// call: a command that runs no archive operation never pays for it.
    fn archive(&self, settings: &ArchiveSettings) -> DriverResult<Arc<dyn ArchiveOps>>;
}

/// The `storage-archive` crate built into this binary, on confined directories.
#[derive(Debug, Clone, Copy, Default)]
pub struct NativeArchive;

impl ArchiveOps for NativeArchive {
    fn apply_tar(
        &self,
        dir: &Path,
        input: LayerTar<'_>,
        options: &ApplyOptions,
    ) -> DriverResult<u64> {
        Ok(match input {
            LayerTar::Stream(input) => confined::apply_tar(dir, input, options)?,
            LayerTar::Parsed(mut parsed) => confined::apply_parsed_tar(dir, &mut parsed, options)?,
        })
    }

    fn tree_size(&self, dir: &Path) -> DriverResult<u64> {
        Ok(confined::tree_size(dir)?)
    }

    fn write_overlay_diff(
        &self,
        upper: &Path,
        lowers: &[PathBuf],
        out: &mut dyn Write,
        options: &DiffOptions,
        overlay: &OverlayOptions,
    ) -> DriverResult<()> {
        Ok(confined::write_overlay_diff(
            upper, lowers, out, options, overlay,
        )?)
    }

    fn write_naive_diff(
        &self,
        layer: &Path,
        parent: Option<ParentTree<'_>>,
        out: &mut dyn Write,
        options: &DiffOptions,
    ) -> DriverResult<()> {
        Ok(confined::write_naive_diff(layer, parent, out, options)?)
    }

    fn changes_overlay(
        &self,
        upper: &Path,
        lowers: &[PathBuf],
        overlay: &OverlayOptions,
    ) -> DriverResult<Vec<Change>> {
        Ok(confined::changes_overlay(upper, lowers, overlay)?)
    }

    fn changes_naive(
        &self,
        layer: &Path,
        mappings: &IdMappings,
        parent: Option<ParentTree<'_>>,
    ) -> DriverResult<Vec<Change>> {
        Ok(confined::changes_naive(layer, mappings, parent)?)
    }

    fn diff_size_naive(
        &self,
        layer: &Path,
        mappings: &IdMappings,
        parent: Option<ParentTree<'_>>,
    ) -> DriverResult<u64> {
        Ok(confined::diff_size_naive(layer, mappings, parent)?)
    }
}

/// A provider with only the native archive logic: asking for the component says that no
/// component runtime is linked (the binary installs one that has it).
#[derive(Debug, Clone, Copy, Default)]
pub struct NativeOnly;

impl ArchiveProvider for NativeOnly {
    fn archive(&self, settings: &ArchiveSettings) -> DriverResult<Arc<dyn ArchiveOps>> {
        match settings.runtime {
            ArchiveRuntime::Native => Ok(Arc::new(NativeArchive)),
            ArchiveRuntime::Component => Err(DriverError::not_supported(
                "archive=component: no component runtime is linked into this program \
                 (archive=native runs the archive logic natively)",
            )),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn archive_options_are_parsed_with_the_driver_named() {
        let mut s = ArchiveSettings::default();
        assert!(s.parse_option("btrfs", "archive", "native").unwrap());
        assert!(s
            .parse_option("btrfs", "archive_memory_limit", "64m")
            .unwrap());
        assert!(s
            .parse_option("btrfs", "archive_deadline_ms", "1500")
            .unwrap());
        assert!(!s.parse_option("btrfs", "min_space", "1G").unwrap());
        assert_eq!(
            s,
            ArchiveSettings {
                runtime: ArchiveRuntime::Native,
                memory_limit: Some(64 << 20),
                deadline_ms: Some(1500),
            }
        );
        let err = s.parse_option("btrfs", "archive", "wasm").unwrap_err();
        assert_eq!(
            err.to_string(),
            "btrfs: archive must be \"component\" or \"native\", not \"wasm\""
        );
        assert!(s
            .parse_option("btrfs", "archive_deadline_ms", "soon")
            .is_err());
    }

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(parse_size("x", "4096").unwrap(), 4096);
        assert_eq!(parse_size("x", "10k").unwrap(), 10 * 1024);
        assert_eq!(parse_size("x", "1.5G").unwrap(), 3 << 29);
        assert_eq!(parse_size("x", "2MiB").unwrap(), 2 << 20);
        assert_eq!(
            parse_size("btrfs", "12Q").unwrap_err().to_string(),
            "btrfs: invalid size: \"12Q\""
        );
        assert!(parse_size("x", "").is_err());
        assert!(parse_size("x", "G").is_err());
    }

    #[test]
    fn the_native_only_provider_says_what_is_missing() {
        let native = ArchiveSettings {
            runtime: ArchiveRuntime::Native,
            ..Default::default()
        };
        assert!(NativeOnly.archive(&native).is_ok());
        let err = NativeOnly
            .archive(&ArchiveSettings::default())
            .err()
            .unwrap();
        assert!(err.to_string().contains("no component runtime"), "{err}");
    }
}
