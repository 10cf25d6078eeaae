//! OCI image layouts in and out of the store: the store seen as content-addressed blobs
//! with references, as skopeo, buildah, umoci and registries' tools read and write them.
//!
//! One job per submodule:
//! - `layout`: the JSON of a layout (`oci-layout`, `index.json`, manifests, configs),
//!   media types, references and platforms; parsers that take bytes and do no I/O;
//! - `blob`: reading blobs by digest with their digest and size checked while they stream;
//! - `import`: a layout's image into the store, as containers/image's `storage` transport
//!   writes it (layer IDs, big-data keys, image ID = config digest);
//! - `export`: an image of the store out to a layout, layers re-created through tar-split;
//! - `verify`: whether everything an image needs is present and intact;
//! - `prune`: removing layers (and, asked, unnamed images) that nothing references.
//!
//! What can go wrong ([`OciError`]): the layout is not one, a blob is missing, short, long
//! or has another digest, a media type is unknown, the index names no or several images,
//! a layer's content is not what the config says, or the store refuses.

mod blob;
mod export;
mod import;
pub mod layout;
mod prune;
mod verify;

pub use blob::{BlobReader, ProgressReader, VerifyingReader};
pub use export::{export_image, ExportOptions, ExportReport};
pub use import::{import_layout, ImportOptions, ImportedImage};
pub use layout::{LayoutRef, Platform};
pub use prune::{prune, PruneOptions, PruneReport};
pub use verify::{verify_image, VerifyReport};

use std::path::PathBuf;

use crate::error::StoreError;

/// Errors of OCI layout import, export, verification and pruning.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// A file of the layout cannot be read or written.
    #[error(
        "{context} {path:?}: {}",
        storage_archive::error::os_error_text(source)
    )]
    Io {
        /// What was being done.
        context: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON document of the layout does not parse.
    #[error("parsing {what}: {source}")]
    Json {
        /// Which document.
        what: String,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// The directory is not an OCI image layout (or one of an unknown version).
    #[error("{0}")]
    NotALayout(String),
    /// A digest is not `sha256:<64 hex>` or `sha512:<128 hex>`.
    #[error("invalid digest {0:?}")]
    InvalidDigest(String),
    /// A blob the layout refers to is not there.
    #[error("blob {0} is missing")]
    MissingBlob(String),
    /// A blob is shorter or longer than its descriptor says.
    #[error("blob {digest} has size {actual}, its descriptor says {expected}")]
    SizeMismatch {
        /// The blob's digest.
        digest: String,
        /// The size the descriptor gives.
        expected: u64,
        /// What was read (at least, when it was too long).
        actual: u64,
    },
    /// A blob's content does not have its digest.
    #[error("blob {expected} has digest {actual}")]
    DigestMismatch {
        /// The digest the descriptor gives.
        expected: String,
        /// The digest of what was read.
        actual: String,
    },
    /// A media type this side does not know how to handle.
    #[error("unsupported {what} media type {media_type:?}")]
    UnknownMediaType {
        /// Manifest, config or layer.
        what: &'static str,
        /// The media type.
        media_type: String,
    },
    /// Which image of the index to take cannot be decided.
    #[error("{0}")]
    Selection(String),
    /// `--platform` is not `os/arch[/variant]`.
    #[error("invalid platform {0:?}: expected os/arch[/variant]")]
    InvalidPlatform(String),
    /// The manifest and the config disagree, or a layer is not what the config says.
    #[error("{0}")]
    Inconsistent(String),
    /// The compressor of an exported layer could not be started.
    #[error("{0}")]
    Compress(#[from] crate::compress::CompressError),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl OciError {
    /// Wraps an I/O error with what was being done and on which path.
    pub fn io(context: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        OciError::Io {
            context,
            path: path.into(),
            source,
        }
    }
}

/// Result type of the OCI operations.
pub type Result<T> = std::result::Result<T, OciError>;

/// Told how far a long import or export has come (the CLI draws a progress bar on a
/// terminal). Every method has a default that does nothing.
pub trait Progress: Send {
    /// A new item starts: `what` names it, `total` is its size in bytes when known.
    fn start(&mut self, _what: &str, _total: Option<u64>) {}
    /// `n` more bytes of the current item are done.
    fn advance(&mut self, _n: u64) {}
    /// Everything is done (or failed): clear what was drawn.
    fn finish(&mut self) {}
}

/// A [`Progress`] that reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}
