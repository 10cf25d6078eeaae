//! Small filesystem helpers the store modules share.

use std::os::fd::AsFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use storage_driver::syscalls::Syscalls;

use super::StoreError;
use crate::store_dir::StoreDir;

/// Creates a directory and its parents, readable by the owner only (as upstream does).
pub(super) fn mkdir_0700(path: &Path) -> Result<(), StoreError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|e| StoreError::io("creating directory", path, e))
}

/// Removes `name` from `dir` with everything below it, never following a symlink; a missing
/// one is fine. Any name the directory lists will do (`gc` removes what it listed).
pub(super) fn remove_all_in(
    dir: &StoreDir,
    name: impl AsRef<std::ffi::OsStr>,
) -> Result<(), StoreError> {
    let name = name.as_ref();
    dir.remove_all(name)
        .map_err(|e| StoreError::io("removing", dir.path().join(name), e))
}

/// Flushes the filesystem holding `dir`, so layer data is on disk before the record that
/// calls the layer complete. A failure is an error: after a failed flush the data may not be
/// on disk (a write-back error of the filesystem shows here), so the layer must not be
/// recorded complete; the caller's rollback removes it instead.
pub(super) fn sync_filesystem(sys: &dyn Syscalls, dir: &StoreDir) -> Result<(), StoreError> {
    sys.syncfs(dir.as_fd())
        .map_err(|e| StoreError::io("flushing the filesystem of", dir.path(), e))
}

/// The end of a best-effort step: a rollback on the way out of an error that is already
/// being reported, or a cleanup whose work the next writer repeats. Its failure must neither
/// hide the first error nor fail the command, so it is logged (`--debug` shows it), with
/// `what` saying which step it was.
pub(super) fn log_best_effort<T, E: std::fmt::Display>(
    what: impl std::fmt::Display,
    result: Result<T, E>,
) {
    if let Err(e) = result {
        log::debug!("{what} (best effort, carrying on): {e}");
    }
}

#[cfg(test)]
#[path = "files_tests.rs"]
mod without_root;
