//! Errors of archive operations.

/// What can go wrong while applying or producing a layer archive.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The input is not a well-formed tar stream.
    #[error("invalid tar header: {0}")]
    InvalidHeader(String),
    /// The input ended in the middle of an entry.
    #[error("unexpected EOF")]
    UnexpectedEof,
    /// An entry names a path outside the layer (`..`, absolute, or through a symlink).
    #[error("path {0:?} escapes the layer")]
    PathEscape(String),
    /// An entry is refused by policy (overlay xattrs, an unmapped owner...).
    #[error("refused entry {}: {reason}", quoted(path))]
    Refused {
        /// The entry's path, as in the archive.
        path: Vec<u8>,
        /// Why it was refused.
        reason: String,
    },
    /// A filesystem operation failed.
    #[error("{op} {}: {source}", quoted(path))]
    Fs {
        /// The operation.
        op: &'static str,
        /// The path it was applied to.
        path: Vec<u8>,
        /// The underlying error.
        #[source]
        source: crate::fs::FsError,
    },
    /// Reading the input or writing the output failed.
    #[error("{}", os_error_text(.0))]
    Stream(#[source] std::io::Error),
    /// The archive has a shape this implementation does not handle (an unknown type flag).
    #[error("unsupported entry {}: {reason}", quoted(path))]
    Unsupported {
        /// The entry's path, as in the archive.
        path: Vec<u8>,
        /// What is unsupported.
        reason: String,
    },
}

impl ArchiveError {
    /// Wraps a filesystem error of `op` on `path`; an escape becomes [`ArchiveError::PathEscape`].
    pub fn fs(op: &'static str, path: &[u8], source: crate::fs::FsError) -> Self {
        if source.kind == crate::fs::FsErrorKind::PathEscape {
            ArchiveError::PathEscape(String::from_utf8_lossy(path).into_owned())
        } else {
            ArchiveError::Fs {
                op,
                path: path.to_vec(),
                source,
            }
        }
    }
}

/// An I/O error in Go's words, as upstream prints the errors it wraps: an error of a system
/// call as Go's `syscall.Errno` text, which for the errors files fail with is the C library's
/// message with a lowercase first letter (`no space left on device`, not `No space left on
/// device (os error 28)`); any other error as it is.
pub fn os_error_text(e: &std::io::Error) -> String {
    let Some(code) = e.raw_os_error() else {
        return e.to_string();
    };
    let text = std::io::Error::from_raw_os_error(code).to_string();
    let text = text
        .strip_suffix(&format!(" (os error {code})"))
        .unwrap_or(&text);
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => format!("errno {code}"),
    }
}

/// A path in a message: quoted, bytes that are not UTF-8 shown as replacement characters.
pub fn quoted(path: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_of_system_calls_read_as_gos() {
        let enoent = std::io::Error::from_raw_os_error(2);
        assert_eq!(os_error_text(&enoent), "no such file or directory");
        let enospc = std::io::Error::from_raw_os_error(28);
        assert_eq!(os_error_text(&enospc), "no space left on device");
        let other = std::io::Error::other("short read");
        assert_eq!(os_error_text(&other), "short read");
        let stream = ArchiveError::Stream(std::io::Error::from_raw_os_error(32));
        assert_eq!(stream.to_string(), "broken pipe");
    }
}
