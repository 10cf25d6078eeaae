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
        source: std::io::Error,
    },
    /// Reading the input or writing the output failed.
    #[error("{0}")]
    Stream(#[source] std::io::Error),
}
