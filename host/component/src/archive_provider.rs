//! The archive component offered to native drivers as their archive logic: an
//! [`ArchiveProvider`] that runs `storage-archive` natively or in the sandboxed archive
//! component (the default), with the driver's limits, and turns a stopped component into one
//! clear driver error.

use std::borrow::Cow;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use storage_archive::{ApplyOptions, DiffOptions, OverlayOptions};
use storage_driver::archive_runtime::{
    ArchiveOps, ArchiveProvider, ArchiveRuntime, ArchiveSettings, NativeArchive, ParentTree,
};
use storage_driver::confined;
use storage_driver::idmap::IdMappings;
use storage_driver::parsed_tar::LayerTar;
use storage_driver::{Change, DriverError, DriverResult};

use crate::{ArchiveComponent, ComponentError, PluginLimits};

/// Native drivers' archive logic: the built-in archive component (loaded on the first call
/// in the process, not before), or the native crate when the settings say `archive=native`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ComponentArchiveProvider;

impl ArchiveProvider for ComponentArchiveProvider {
    fn archive(&self, settings: &ArchiveSettings) -> DriverResult<Arc<dyn ArchiveOps>> {
        if settings.runtime == ArchiveRuntime::Native {
            return Ok(Arc::new(NativeArchive));
        }
        let builtin = crate::archive::builtin().map_err(stopped_error)?;
        if settings.memory_limit.is_none() && settings.deadline_ms.is_none() {
            return Ok(Arc::new(InComponent(Cow::Borrowed(builtin))));
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
        Ok(Arc::new(InComponent(Cow::Owned(
            builtin.with_limits(limits),
        ))))
    }
}

/// The archive component, with the process's limits or a driver's own.
pub struct InComponent(pub Cow<'static, ArchiveComponent>);

impl ArchiveOps for InComponent {
    fn apply_tar(
        &self,
        dir: &Path,
        input: LayerTar<'_>,
        options: &ApplyOptions,
    ) -> DriverResult<u64> {
        self.0
            .apply_diff_from(dir, input, options)
            .map_err(driver_error)
    }

    fn tree_size(&self, dir: &Path) -> DriverResult<u64> {
        self.0.tree_size(dir).map_err(driver_error)
    }

    fn write_overlay_diff(
        &self,
        upper: &Path,
        lowers: &[PathBuf],
        out: &mut dyn Write,
        options: &DiffOptions,
        overlay: &OverlayOptions,
    ) -> DriverResult<()> {
        self.0
            .overlay_diff_to(upper, lowers, out, options, overlay)
            .map_err(driver_error)
    }

    fn write_naive_diff(
        &self,
        layer: &Path,
        parent: Option<ParentTree<'_>>,
        out: &mut dyn Write,
        options: &DiffOptions,
    ) -> DriverResult<()> {
        let (path, parent_mapping) = split_parent(parent);
        self.0
            .diff_to(layer, path, &parent_mapping, out, options)
            .map_err(driver_error)
    }

    fn changes_overlay(
        &self,
        upper: &Path,
        lowers: &[PathBuf],
        overlay: &OverlayOptions,
    ) -> DriverResult<Vec<Change>> {
        self.0
            .overlay_changes(upper, lowers, overlay)
            .map(confined::to_host_changes)
            .map_err(driver_error)
    }

    fn changes_naive(
        &self,
        layer: &Path,
        mappings: &IdMappings,
        parent: Option<ParentTree<'_>>,
    ) -> DriverResult<Vec<Change>> {
        let (path, parent_mapping) = split_parent(parent);
        self.0
            .changes(
                layer,
                path,
                &confined::id_mapping(mappings),
                &parent_mapping,
            )
            .map(confined::to_host_changes)
            .map_err(driver_error)
    }

    fn diff_size_naive(
        &self,
        layer: &Path,
        mappings: &IdMappings,
        parent: Option<ParentTree<'_>>,
    ) -> DriverResult<u64> {
        let (path, parent_mapping) = split_parent(parent);
        self.0
            .diff_size(
                layer,
                path,
                &confined::id_mapping(mappings),
                &parent_mapping,
            )
            .map_err(driver_error)
    }
}

/// A parent tree as the component's functions take it: its path, and its mapping.
fn split_parent(parent: Option<ParentTree<'_>>) -> (Option<&Path>, storage_archive::IdMapping) {
    match parent {
        Some(p) => (Some(p.path), confined::id_mapping(p.mappings)),
        None => (None, storage_archive::IdMapping::default()),
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

/// One line for a component that was stopped or could not run (the error itself kept as
/// the source).
fn stopped_error(e: ComponentError) -> DriverError {
    let line = match &e {
        ComponentError::Stopped {
            name,
            call,
            reason,
            message,
        } if message.is_empty() => format!("component {name} {reason} during {call}"),
        ComponentError::Stopped {
            name,
            call,
            reason,
            message,
        } => format!("component {name} {reason} during {call} ({message})"),
        other => other
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
    };
    DriverError::io(
        "archive",
        std::io::Error::other(crate::error::Rephrased {
            text: line,
            source: e,
        }),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::StopReason;
    #[test]
    fn a_stopped_component_is_one_line_naming_why() {
        let err = driver_error(ComponentError::Stopped {
            name: "builtin:archive".into(),
            call: "apply-diff",
            reason: StopReason::Trap,
            // One line, as `call::stop_error` makes it: the guest's last words, then the trap.
            message: "panicked at src/lib.rs:3:5: no tar here \
                      (wasm trap: wasm `unreachable` instruction executed)"
                .into(),
        });
        let text = err.to_string();
        assert_eq!(
            text,
            "archive: component builtin:archive trapped during apply-diff \
             (panicked at src/lib.rs:3:5: no tar here \
             (wasm trap: wasm `unreachable` instruction executed))"
        );
        let oom = driver_error(ComponentError::Stopped {
            name: "builtin:archive".into(),
            call: "apply-diff",
            reason: StopReason::OutOfMemory,
            message: String::new(),
        });
        assert_eq!(
            oom.to_string(),
            "archive: component builtin:archive exceeded its memory limit during apply-diff"
        );
        // The line is what is shown; the component's error is kept whole behind it.
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&oom);
        let mut stopped = None;
        while let Some(e) = cause {
            if let Some(found) = e.downcast_ref::<ComponentError>() {
                stopped = Some(found);
            }
            cause = e.source();
        }
        assert!(
            matches!(
                stopped,
                Some(ComponentError::Stopped {
                    reason: StopReason::OutOfMemory,
                    ..
                })
            ),
            "{oom:?}"
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
    fn the_default_is_the_shared_component_and_limits_make_an_own_one() {
        let provider = ComponentArchiveProvider;
        assert!(provider
            .archive(&ArchiveSettings {
                runtime: ArchiveRuntime::Native,
                ..Default::default()
            })
            .is_ok());
        let limited = ArchiveSettings {
            memory_limit: Some(8 << 20),
            ..Default::default()
        };
        assert!(provider.archive(&ArchiveSettings::default()).is_ok());
        assert!(provider.archive(&limited).is_ok());
        let builtin = crate::archive::builtin().unwrap();
        let own = builtin.with_limits(PluginLimits {
            memory_bytes: 8 << 20,
            deadline: builtin.limits().deadline,
        });
        assert_eq!(own.limits().memory_bytes, 8 << 20);
    }
}
