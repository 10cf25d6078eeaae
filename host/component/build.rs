//! Embeds the archive component (`archive/component`, the `storage-archive` crate built for
//! `wasm32-wasip2`): the component host offers it to native drivers. The test guests are
//! built by the tests that load them, not here.

use storage_wasm_build::ComponentCrate;

fn main() {
    let manifest_dir =
        std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let root = manifest_dir.join("../..");
    storage_wasm_build::embed(
        &root,
        &[ComponentCrate {
            package: "storage-archive-component",
            file: "storage_archive_component.wasm",
        }],
        &["archive/src", "archive/Cargo.toml", "archive/component"],
    );
}
