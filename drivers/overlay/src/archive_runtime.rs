//! Where the overlay driver's archive work runs: the sandboxed archive component (the
//! default) or the same `storage-archive` crate built into the binary (`overlay.archive=native`,
//! the benchmark baseline). The runtime itself is the host's, shared with the btrfs driver
//! ([`storage_host::component::archive_runtime`]); this module picks it from the overlay
//! options.

use storage_host::component::archive_runtime::ArchiveSettings;
pub use storage_host::component::archive_runtime::{driver_error, Archive};
use storage_host::driver::DriverResult;

use crate::options::OverlayOptions as DriverOptions;

/// The archive logic the driver's options ask for (loaded on first use, see
/// [`Archive::for_settings`]).
pub fn for_options(options: &DriverOptions) -> DriverResult<Archive> {
    Archive::for_settings(&ArchiveSettings {
        runtime: options.archive,
        memory_limit: options.archive_memory_limit,
        deadline_ms: options.archive_deadline_ms,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::options::ArchiveRuntime;
    use std::borrow::Cow;
    use storage_host::component::ArchiveComponent;

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
        let Cow::Borrowed(first) = component_of(for_options(&options).unwrap()) else {
            panic!("the default is the shared component");
        };
        let Cow::Borrowed(second) = component_of(for_options(&options).unwrap()) else {
            panic!("the default is the shared component");
        };
        assert!(std::ptr::eq(first, second), "loaded once per process");
        let limited = DriverOptions {
            archive_memory_limit: Some(8 << 20),
            ..Default::default()
        };
        let Cow::Owned(own) = component_of(for_options(&limited).unwrap()) else {
            panic!("limits give an own handle");
        };
        assert_eq!(own.limits().memory_bytes, 8 << 20);
        assert_eq!(own.limits().deadline, first.limits().deadline);
        let native = DriverOptions {
            archive: ArchiveRuntime::Native,
            ..Default::default()
        };
        assert!(matches!(for_options(&native).unwrap(), Archive::Native));
    }
}
