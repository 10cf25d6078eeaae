//! OS errors as the archive crate's error categories.

use std::io;

use rustix::io::Errno;
use storage_archive::fs::{FsError, FsErrorKind};

/// An OS error of `what` as the archive crate's error: its category, its number and `what`
/// with the error in Go's words.
pub fn fs_error(errno: Errno, what: &str) -> FsError {
    let kind = match errno {
        Errno::NOENT => FsErrorKind::NotFound,
        Errno::EXIST => FsErrorKind::AlreadyExists,
        Errno::NOTEMPTY => FsErrorKind::NotEmpty,
        Errno::NOTDIR => FsErrorKind::NotADirectory,
        // openat2 reports an escape (RESOLVE_BENEATH) or a magic link with EXDEV / ELOOP.
        Errno::XDEV => FsErrorKind::PathEscape,
        Errno::PERM | Errno::ACCESS => FsErrorKind::PermissionDenied,
        Errno::OPNOTSUPP | Errno::NOSYS => FsErrorKind::Unsupported,
        _ => FsErrorKind::Other,
    };
    FsError {
        kind,
        errno: errno.raw_os_error(),
        message: format!(
            "{what}: {}",
            storage_archive::error::os_error_text(&io::Error::from(errno))
        ),
    }
}

/// An I/O error of `what` as the archive crate's error ([`fs_error`] for an OS error).
pub fn io_error(e: io::Error, what: &str) -> FsError {
    match e.raw_os_error() {
        Some(raw) => fs_error(Errno::from_raw_os_error(raw), what),
        None if e.kind() == io::ErrorKind::UnexpectedEof => {
            FsError::new(FsErrorKind::UnexpectedEof, format!("{what}: {e}"))
        }
        None => FsError::new(FsErrorKind::Other, format!("{what}: {e}")),
    }
}
