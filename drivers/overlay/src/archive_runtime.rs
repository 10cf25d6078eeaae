//! Where the overlay driver's archive work runs: the archive logic the driver was given
//! ([`storage_driver::archive_runtime`]; the binary's provider runs it in the sandboxed
//! archive component by default), as the overlay options choose it
//! (`overlay.archive=native`, `archive_memory_limit`, `archive_deadline_ms`).

use std::sync::Arc;

use storage_driver::archive_runtime::{ArchiveOps, ArchiveSettings};
use storage_driver::DriverResult;

use crate::driver::OverlayDriver;

/// The archive logic the driver's options ask for.
pub fn for_driver(driver: &OverlayDriver) -> DriverResult<Arc<dyn ArchiveOps>> {
    let options = driver.options();
    driver.archive_provider().archive(&ArchiveSettings {
        runtime: options.archive,
        memory_limit: options.archive_memory_limit,
        deadline_ms: options.archive_deadline_ms,
    })
}
