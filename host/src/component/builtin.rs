//! Components built by the workspace build and embedded in the host (storage-host's build
//! script compiles them for `wasm32-wasip2`; nothing to install beside the binary).

/// The `storage-archive` crate as a component (world `archive-plugin`).
pub const ARCHIVE_COMPONENT: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/storage_archive_component.wasm"));

/// The name the archive component is reported under.
pub const ARCHIVE_COMPONENT_NAME: &str = "builtin:archive";

/// The vfs graph driver as a component (world `driver-plugin`).
pub const VFS_COMPONENT: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/storage_vfs_component.wasm"));

/// The name the vfs component is reported under (`storage status`: `Component: builtin:vfs`).
pub const VFS_COMPONENT_NAME: &str = "builtin:vfs";
