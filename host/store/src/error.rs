//! The store's error type.
//!
//! What can go wrong: an object is not known or its ID/name is already taken, a deletion is
//! refused because something still uses the object, the graph driver fails, a lock or JSON
//! file cannot be read or written, an imported archive is malformed. Display strings are
//! upstream's messages where scripts may compare them (upstream's `cmd/containers-storage`).

use std::path::PathBuf;

use storage_driver::DriverError;

use crate::gostr::quote as go_quote;

/// Everything the store can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No layer has that ID, name or ID prefix; also what a lookup of any kind answers for
    /// an unknown name (names, metadata, `delete`), as upstream's does.
    #[error("layer not known")]
    LayerUnknown,
    /// No image has that ID, name or ID prefix.
    #[error("image not known")]
    ImageUnknown,
    /// An image named for something else (a new container's, an image's data) is not known:
    /// upstream says which name it looked for.
    #[error("locating image with ID {}: image not known", go_quote(image))]
    ImageNotLocated {
        /// The name, ID or ID prefix given.
        image: String,
    },
    /// No container has that ID, name or ID prefix.
    #[error("container not known")]
    ContainerUnknown,
    /// The name is neither a layer, an image nor a container (`set_metadata`, as upstream).
    #[error("identifier is not a layer, image, or container")]
    NotAnId,
    /// The name is not a container (delete-container).
    #[error("identifier is not a container")]
    NotAContainer,
    /// The name is not a layer (delete-layer, as upstream's `ErrNotALayer`).
    #[error("identifier is not a layer")]
    NotALayer,
    /// The name is not an image (delete-image, as upstream's `ErrNotAnImage`).
    #[error("identifier is not an image")]
    NotAnImage,
    /// A new object asked for an ID that is taken.
    #[error("that ID is already in use")]
    DuplicateId,
    /// A new object asked for a name that is taken.
    #[error("that name is already in use")]
    DuplicateName,
    /// A new image asked for a name another image has (upstream's words).
    #[error(
        "image name {} is already associated with image {}: that name is already in use",
        go_quote(name),
        go_quote(image)
    )]
    ImageNameInUse {
        /// The name asked for.
        name: String,
        /// The ID of the image that has it.
        image: String,
    },
    /// A new container asked for a name another container has (upstream's words).
    #[error("the container name {} is already in use by {container}. You have to remove that container to be able to reuse that name: that name is already in use", go_quote(name))]
    ContainerNameInUse {
        /// The name asked for.
        name: String,
        /// The ID of the container that has it.
        container: String,
    },
    /// The layer is the parent of another layer.
    #[error("used by layer {child}: layer has children")]
    LayerHasChildren {
        /// The child layer.
        child: String,
    },
    /// The layer is the top layer of an image.
    #[error("layer {layer} used by image {image}: layer is in use by an image")]
    LayerUsedByImage {
        /// The layer.
        layer: String,
        /// The image.
        image: String,
    },
    /// The layer is a container's layer.
    #[error("layer {layer} used by container {container}: layer is in use by a container")]
    LayerUsedByContainer {
        /// The layer.
        layer: String,
        /// The container.
        container: String,
    },
    /// The image is used by a container.
    #[error("image used by {container}: image is in use by a container")]
    ImageUsedByContainer {
        /// The container.
        container: String,
    },
    /// layer-parent-owners needs a mounted layer.
    #[error("LayerParentOwner: layer is not mounted")]
    LayerNotMounted,
    /// shutdown without force while layers are mounted.
    #[error("shutdown: a layer is mounted: layer is in use by a container")]
    LayerMounted,
    /// diff asked for a compression that cannot be written.
    #[error("unsupported compression format")]
    UnsupportedCompression,
    /// A big-data key that the object does not have, in upstream's words: its store's
    /// `locating item named ...` for layers and images, the failed open for containers.
    #[error("{}", big_data_unknown(.kind, .key, .id, .path))]
    BigDataUnknown {
        /// `layer`, `image` or `container`.
        kind: &'static str,
        /// The key.
        key: String,
        /// The object's ID.
        id: String,
        /// Where the item would be.
        path: PathBuf,
    },
    /// The size of a big-data item that an image or container does not have.
    #[error("size is not known")]
    SizeUnknown,
    /// The digest of a big-data item that an image or container does not have.
    #[error("could not compute digest of item")]
    DigestUnknown,
    /// An image of a read-only store whose top layer has an ID mapping cannot be mounted
    /// for the host's IDs (no copy can be added to the image).
    #[error("cannot create an image with canonical UID/GID mappings in a read-only store")]
    MappedLayerInReadOnlyStore,
    /// A read-only store cannot be changed.
    #[error("{what} {id} is in a read-only store and cannot be modified")]
    ReadOnly {
        /// `layer` or `image`.
        what: &'static str,
        /// Its ID.
        id: String,
    },
    /// The configured driver is not registered.
    #[error("failed to GetDriver graph {name} {root}: driver not supported")]
    DriverNotSupported {
        /// The driver name asked for.
        name: String,
        /// The graph root.
        root: PathBuf,
    },
    /// No driver was configured and more than one has a home in the graph root (upstream
    /// makes the user choose).
    #[error("{} contains several valid graphdrivers: {names}; Please cleanup or explicitly choose storage driver (-s <DRIVER>)", root.display())]
    SeveralDrivers {
        /// The graph root.
        root: PathBuf,
        /// The drivers with a home there, joined with `, `.
        names: String,
    },
    /// No driver was configured and none of the priority list or the registered drivers can
    /// run here.
    #[error("no supported storage backend found")]
    NoSupportedDriver,
    /// The driver refused to start (its message verbatim, as upstream prints it after
    /// `error initializing: `).
    #[error("{0}")]
    DriverInit(#[source] DriverError),
    /// The driver cannot do what was asked (`storage-layers` on a driver without a list).
    #[error("driver not supported")]
    NotSupported,
    /// A graph driver call failed.
    #[error("{context}: {source}")]
    Driver {
        /// What the store asked the driver to do.
        context: String,
        /// The driver's error.
        #[source]
        source: DriverError,
    },
    /// A file system operation failed.
    #[error(
        "{context} {path:?}: {}",
        storage_archive::error::os_error_text(source)
    )]
    Io {
        /// What the store was doing.
        context: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file of the store cannot be parsed.
    #[error("parsing {path:?}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// A digest argument is not valid (go-digest's words, as upstream prints them).
    #[error("{0}")]
    InvalidDigest(#[source] crate::digest::DigestError),
    /// The digest given to a new image is not valid (upstream's words).
    #[error(
        "validating digests for new image: validating image digest {}: {source}",
        go_quote(digest)
    )]
    NewImageDigest {
        /// The digest given.
        digest: String,
        /// Why it is not valid.
        #[source]
        source: crate::digest::DigestError,
    },
    /// Importing a layer archive failed: reading or decompressing the blob, recording its
    /// tar-split, or the driver's apply.
    #[error("{0}")]
    Ingest(#[from] crate::ingest::IngestError),
    /// The compressor of a diff could not be started.
    #[error("{0}")]
    Compress(#[source] crate::compress::CompressError),
    /// Re-creating a layer's archive from its tar-split failed.
    #[error("{0}")]
    TarSplit(#[from] crate::tarsplit::TarSplitError),
    /// Writing the compression trailer of a diff failed.
    #[error("finishing the diff: {}", storage_archive::error::os_error_text(.0))]
    FinishDiff(#[source] std::io::Error),
    /// An ID or digest prefix names several objects of one kind.
    #[error("{prefix:?} is ambiguous: it is a prefix of {}", candidates.join(", "))]
    Ambiguous {
        /// The prefix given.
        prefix: String,
        /// The IDs it is a prefix of (of their IDs or digests).
        candidates: Vec<String>,
    },
    /// A record on disk is inconsistent (for example an incomplete layer in a read-only store).
    #[error("{0}")]
    Corrupt(String),
}

impl StoreError {
    /// Wraps an I/O error with what was being done and on which path.
    pub fn io(context: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StoreError::Io {
            context,
            path: path.into(),
            source,
        }
    }

    /// Wraps a driver error with what the store asked for.
    pub fn driver(context: impl Into<String>, source: DriverError) -> Self {
        StoreError::Driver {
            context: context.into(),
            source,
        }
    }
}

/// Upstream's message for a missing big-data item of a `kind` object.
fn big_data_unknown(kind: &str, key: &str, id: &str, path: &std::path::Path) -> String {
    match kind {
        "container" => format!("open {}: no such file or directory", path.display()),
        "image" => format!(
            "locating item named {key:?} for image with ID {id:?} (consider removing the image \
             to resolve the issue): file does not exist"
        ),
        _ => format!("locating item named {key:?} for {kind} with ID {id:?}: file does not exist"),
    }
}

/// Result type of store operations.
pub type Result<T> = std::result::Result<T, StoreError>;
