//! Where a native driver's archive work runs: the sandboxed archive component (the default)
//! or the same `storage-archive` crate built into the binary (`<driver>.archive=native`, the
//! benchmark baseline). Both work on the same confined directories; this module gives them
//! one interface, parses the three options that choose between them, and turns a stopped
//! component into one clear driver error. Shared by the overlay and btrfs drivers.

use std::borrow::Cow;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use storage_archive::{ApplyOptions, DiffOptions, OverlayOptions};

use super::{ArchiveComponent, ComponentError, PluginLimits};
use crate::confined;
use crate::driver::{Change, DriverError, DriverResult};
use crate::idmap::IdMappings;

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

/// The archive logic one operation runs through.
pub enum Archive {
    /// The crate built into this binary.
    Native,
    /// The process's archive component, with the driver's limits (boxed: a component with
    /// its own limits is a few hundred bytes).
    Component(Box<Cow<'static, ArchiveComponent>>),
}

impl Archive {
    /// The archive logic `settings` ask for. The component (and the wasmtime runtime) is
    /// loaded on the first call in the process, not before: a command that runs no archive
    /// operation never pays for it.
    pub fn for_settings(settings: &ArchiveSettings) -> DriverResult<Archive> {
        if settings.runtime == ArchiveRuntime::Native {
            return Ok(Archive::Native);
        }
        let builtin = super::archive::builtin().map_err(stopped_error)?;
        if settings.memory_limit.is_none() && settings.deadline_ms.is_none() {
            return Ok(Archive::Component(Box::new(Cow::Borrowed(builtin))));
        }
        let default = builtin.limits();
        let limits = PluginLimits {
            memory_bytes: settings
                .memory_limit
                .map(|bytes| usize::try_from(bytes).unwrap_or(usize::MAX))
                .unwrap_or(default.memory_bytes),
            deadline: settings
                .deadline_ms
                .map(Duration::from_millis)
                .unwrap_or(default.deadline),
        };
        Ok(Archive::Component(Box::new(Cow::Owned(
            builtin.with_limits(limits),
        ))))
    }

    /// Applies an uncompressed layer tar to `dir`; returns the applied size.
    pub fn apply_tar(
        &self,
        dir: &Path,
        input: &mut dyn Read,
        options: &ApplyOptions,
    ) -> DriverResult<u64> {
        match self {
            Archive::Native => Ok(confined::apply_tar(dir, input, options)?),
            Archive::Component(c) => c.apply_diff_from(dir, input, options).map_err(driver_error),
        }
    }

    /// Size of the tree at `dir`.
    pub fn tree_size(&self, dir: &Path) -> DriverResult<u64> {
        match self {
            Archive::Native => Ok(confined::tree_size(dir)?),
            Archive::Component(c) => c.tree_size(dir).map_err(driver_error),
        }
    }

    /// Writes the diff recorded in the overlay upper dir `upper` (`lowers` topmost first).
    pub fn write_overlay_diff(
        &self,
        upper: &Path,
        lowers: &[PathBuf],
        out: &mut dyn Write,
        options: &DiffOptions,
        overlay: &OverlayOptions,
    ) -> DriverResult<()> {
        match self {
            Archive::Native => Ok(confined::write_overlay_diff(
                upper, lowers, out, options, overlay,
            )?),
            Archive::Component(c) => c
                .overlay_diff_to(upper, lowers, out, options, overlay)
                .map_err(driver_error),
        }
    }

    /// Writes the naive diff of `layer` against `parent` (the whole tree when `None`).
    pub fn write_naive_diff(
        &self,
        layer: &Path,
        parent: Option<&Path>,
        out: &mut dyn Write,
        options: &DiffOptions,
    ) -> DriverResult<()> {
        match self {
            Archive::Native => Ok(confined::write_naive_diff(layer, parent, out, options)?),
            Archive::Component(c) => c.diff_to(layer, parent, out, options).map_err(driver_error),
        }
    }

    /// Changes recorded in the overlay upper dir `upper` (`lowers` topmost first).
    pub fn changes_overlay(
        &self,
        upper: &Path,
        lowers: &[PathBuf],
        overlay: &OverlayOptions,
    ) -> DriverResult<Vec<Change>> {
        match self {
            Archive::Native => Ok(confined::changes_overlay(upper, lowers, overlay)?),
            Archive::Component(c) => c
                .overlay_changes(upper, lowers, overlay)
                .map(confined::to_host_changes)
                .map_err(driver_error),
        }
    }

    /// Naive changes of `layer` against `parent`.
    pub fn changes_naive(
        &self,
        layer: &Path,
        parent: Option<&Path>,
        mappings: &IdMappings,
    ) -> DriverResult<Vec<Change>> {
        match self {
            Archive::Native => Ok(confined::changes_naive(layer, parent, mappings)?),
            Archive::Component(c) => c
                .changes(layer, parent, &confined::id_mapping(mappings))
                .map(confined::to_host_changes)
                .map_err(driver_error),
        }
    }

    /// Naive diff size of `layer` against `parent`.
    pub fn diff_size_naive(
        &self,
        layer: &Path,
        parent: Option<&Path>,
        mappings: &IdMappings,
    ) -> DriverResult<u64> {
        match self {
            Archive::Native => Ok(confined::diff_size_naive(layer, parent, mappings)?),
            Archive::Component(c) => c
                .diff_size(layer, parent, &confined::id_mapping(mappings))
                .map_err(driver_error),
        }
    }
}

/// A component error as the driver reports it: the archive crate's own error when the
/// guest returned one (so messages read as natively), one line naming the component and why
/// it was stopped otherwise.
pub fn driver_error(e: ComponentError) -> DriverError {
    match e {
        ComponentError::Archive { source, .. } => DriverError::Archive(source),
        other => stopped_error(other),
    }
}

/// One line for a component that was stopped or could not run.
fn stopped_error(e: ComponentError) -> DriverError {
    let line = match &e {
        ComponentError::Stopped {
            name,
            call,
            reason,
            message,
        } => match trap_cause(message) {
            Some(cause) => format!("component {name} {reason} during {call} ({cause})"),
            None => format!("component {name} {reason} during {call}"),
        },
        other => other
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
    };
    DriverError::io("archive", std::io::Error::other(line))
}

/// The trap's own words from wasmtime's multi-line message (which carries a wasm backtrace).
fn trap_cause(message: &str) -> Option<&str> {
    let start = message.find("wasm trap: ")?;
    message[start..].lines().next()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::component::StopReason;

    #[test]
    fn a_stopped_component_is_one_line_naming_why() {
        let err = driver_error(ComponentError::Stopped {
            name: "builtin:archive".into(),
            call: "apply-diff",
            reason: StopReason::Trap,
            message: "error while executing at wasm backtrace:\n    0: 0x1 - f\n\nCaused by:\n    wasm trap: wasm `unreachable` instruction executed".into(),
        });
        let text = err.to_string();
        assert_eq!(
            text,
            "archive: component builtin:archive trapped during apply-diff \
             (wasm trap: wasm `unreachable` instruction executed)"
        );
        let oom = driver_error(ComponentError::Stopped {
            name: "builtin:archive".into(),
            call: "apply-diff",
            reason: StopReason::OutOfMemory,
            message: "memory grow refused\nmore".into(),
        });
        assert_eq!(
            oom.to_string(),
            "archive: component builtin:archive exceeded its memory limit during apply-diff"
        );
    }

    #[test]
    fn an_archive_error_of_the_guest_reads_as_natively() {
        let err = driver_error(ComponentError::Archive {
            name: "builtin:archive".into(),
            source: storage_archive::ArchiveError::PathEscape("../x".into()),
        });
        assert!(matches!(
            err,
            DriverError::Archive(storage_archive::ArchiveError::PathEscape(_))
        ));
    }

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
}
