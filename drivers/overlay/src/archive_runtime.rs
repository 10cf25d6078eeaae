//! Where the overlay driver's archive work runs: the sandboxed archive component (the
//! default) or the same `storage-archive` crate built into the binary (`overlay.archive=native`,
//! the benchmark baseline). Both work on the same confined directories; this module gives them
//! one interface and turns a stopped component into one clear driver error.

use std::borrow::Cow;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use storage_archive::{ApplyOptions, DiffOptions, OverlayOptions};
use storage_host::component::{self, ArchiveComponent, ComponentError, PluginLimits};
use storage_host::confined;
use storage_host::driver::{Change, DriverError, DriverResult};
use storage_host::idmap::IdMappings;

use crate::options::{ArchiveRuntime, OverlayOptions as DriverOptions};

/// The archive logic one operation runs through.
pub enum Archive {
    /// The crate built into this binary.
    Native,
    /// The process's archive component, with the driver's limits (boxed: a component with
    /// its own limits is a few hundred bytes).
    Component(Box<Cow<'static, ArchiveComponent>>),
}

impl Archive {
    /// The archive logic the driver's options ask for. The component (and the wasmtime
    /// runtime) is loaded on the first call in the process, not before: a command that runs
    /// no archive operation never pays for it.
    pub fn for_options(options: &DriverOptions) -> DriverResult<Archive> {
        if options.archive == ArchiveRuntime::Native {
            return Ok(Archive::Native);
        }
        let builtin = component::archive::builtin().map_err(stopped_error)?;
        if options.archive_memory_limit.is_none() && options.archive_deadline_ms.is_none() {
            return Ok(Archive::Component(Box::new(Cow::Borrowed(builtin))));
        }
        let default = builtin.limits();
        let limits = PluginLimits {
            memory_bytes: options
                .archive_memory_limit
                .map(|bytes| usize::try_from(bytes).unwrap_or(usize::MAX))
                .unwrap_or(default.memory_bytes),
            deadline: options
                .archive_deadline_ms
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

    /// Writes the diff recorded in the upper dir `upper` (`lowers` topmost first).
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

    /// Changes recorded in the upper dir `upper` (`lowers` topmost first).
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
    use storage_host::component::StopReason;

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

    /// The component an `Archive` runs through; panics (a test failure) on `Native`.
    fn component_of(archive: Archive) -> Cow<'static, ArchiveComponent> {
        match archive {
            Archive::Component(c) => *c,
            Archive::Native => panic!("expected the component"),
        }
    }

    #[test]
    fn default_options_use_the_shared_component_and_native_needs_none() {
        let options = DriverOptions::default();
        let Cow::Borrowed(first) = component_of(Archive::for_options(&options).unwrap()) else {
            panic!("the default is the shared component");
        };
        let Cow::Borrowed(second) = component_of(Archive::for_options(&options).unwrap()) else {
            panic!("the default is the shared component");
        };
        assert!(std::ptr::eq(first, second), "loaded once per process");
        let limited = DriverOptions {
            archive_memory_limit: Some(8 << 20),
            ..Default::default()
        };
        let Cow::Owned(own) = component_of(Archive::for_options(&limited).unwrap()) else {
            panic!("limits give an own handle");
        };
        assert_eq!(own.limits().memory_bytes, 8 << 20);
        assert_eq!(own.limits().deadline, first.limits().deadline);
        let native = DriverOptions {
            archive: ArchiveRuntime::Native,
            ..Default::default()
        };
        assert!(matches!(
            Archive::for_options(&native).unwrap(),
            Archive::Native
        ));
    }
}
