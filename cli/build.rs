//! Embeds the vfs driver (`drivers/vfs`, a whole driver built for `wasm32-wasip2`): the
//! binary registers it under the name `vfs`, as it registers the native drivers.

use storage_wasm_build::ComponentCrate;

fn main() {
    let manifest_dir =
        std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let root = manifest_dir.join("..");
    storage_wasm_build::embed(
        &root,
        &[ComponentCrate {
            package: "storage-vfs-component",
            file: "storage_vfs_component.wasm",
        }],
        &["archive/src", "archive/Cargo.toml", "drivers/vfs"],
    );
}
