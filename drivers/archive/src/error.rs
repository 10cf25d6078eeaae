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
    /// An entry is refused by policy (device nodes, overlay xattrs...).
    #[error("refused entry {path:?}: {reason}")]
    Refused {
        /// The entry's path.
        path: String,
        /// Why it was refused.
        reason: String,
    },
    /// A filesystem operation failed.
    #[error("{op} {path:?}: {source}")]
    Fs {
        /// The operation.
        op: &'static str,
        /// The path it was applied to.
        path: String,
        /// The underlying error.
        #[source]
        source: crate::fs::FsError,
    },
    /// Reading the input or writing the output failed.
    #[error("{0}")]
    Stream(#[source] std::io::Error),
    /// The archive has a shape this implementation does not handle (e.g. sparse files).
    #[error("unsupported entry {path:?}: {reason}")]
    Unsupported {
        /// The entry's path.
        path: String,
        /// What is unsupported.
        reason: String,
    },
}

impl ArchiveError {
    /// Wraps a filesystem error of `op` on `path`; an escape becomes [`ArchiveError::PathEscape`].
    pub fn fs(op: &'static str, path: &[u8], source: crate::fs::FsError) -> Self {
        let path = String::from_utf8_lossy(path).into_owned();
        if source.kind == crate::fs::FsErrorKind::PathEscape {
            ArchiveError::PathEscape(path)
        } else {
            ArchiveError::Fs { op, path, source }
        }
    }
}
