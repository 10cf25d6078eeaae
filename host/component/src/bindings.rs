//! Host bindings generated from `wit/` (worlds `archive-plugin` and `driver-plugin`).
//!
//! Resources are mapped to the host types of [`super::host_fs`]: a guest's handle is an index
//! into the Store's resource table, never a pointer or a path.

#![allow(missing_docs, clippy::all)]

wasmtime::component::bindgen!({
    world: "archive-plugin",
    path: "../../wit",
    with: {
        "storage:plugin/filesystem.directory": super::host_fs::LentDir,
        "storage:plugin/streams.input-stream": super::host_fs::LentInput,
        "storage:plugin/streams.output-stream": super::host_fs::LentOutput,
    },
});

/// Host bindings of the `driver-plugin` world; the interfaces it shares with the archive world
/// are the ones above, so a lent directory or stream is the same host type in both.
pub mod driver {
    wasmtime::component::bindgen!({
        world: "driver-plugin",
        path: "../../wit",
        with: {
            "storage:plugin/types": super::storage::plugin::types,
            "storage:plugin/streams": super::storage::plugin::streams,
            "storage:plugin/filesystem": super::storage::plugin::filesystem,
            "storage:plugin/entries": super::storage::plugin::entries,
            "storage:plugin/archive-types": super::storage::plugin::archive_types,
            "storage:plugin/tar-headers": super::storage::plugin::tar_headers,
        },
    });
}
