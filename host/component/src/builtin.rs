//! The archive component, built by this crate's build script for `wasm32-wasip2` and
//! embedded (nothing to install beside the binary).

/// The `storage-archive` crate as a component (world `archive-plugin`).
pub const ARCHIVE_COMPONENT: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/storage_archive_component.wasm"));

/// The SHA-256 of [`ARCHIVE_COMPONENT`] (hex), computed when it was embedded.
pub const ARCHIVE_COMPONENT_SHA256: &str = include_str!(concat!(
    env!("OUT_DIR"),
    "/storage_archive_component.wasm.sha256"
));

/// The name the archive component is reported under.
pub const ARCHIVE_COMPONENT_NAME: &str = "builtin:archive";
