//! OS errors as the archive crate's error categories.

use std::io;

use rustix::io::Errno;
use storage_archive::fs::{FsError, FsErrorKind};

/// Maps an OS error to the archive crate's error categories.
pub(crate) fn fs_error(errno: Errno, what: &str) -> FsError {
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
        message: format!("{what}: {}", io::Error::from(errno)),
    }
}

pub(crate) fn io_error(e: io::Error, what: &str) -> FsError {
    match e.raw_os_error() {
        Some(raw) => fs_error(Errno::from_raw_os_error(raw), what),
        None if e.kind() == io::ErrorKind::UnexpectedEof => {
            FsError::new(FsErrorKind::UnexpectedEof, format!("{what}: {e}"))
        }
        None => FsError::new(FsErrorKind::Other, format!("{what}: {e}")),
    }
}
