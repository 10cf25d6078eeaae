//! The WebAssembly components the tests load: the test guests (`host/guests/`) and the vfs
//! driver, built on first use by a nested cargo (not by the build script: a release never
//! compiles them), once per test process.

use std::path::Path;
use std::sync::OnceLock;

use storage_wasm_build::ComponentCrate;

const CRATES: &[ComponentCrate] = &[
    ComponentCrate {
        package: "storage-test-guest-hostile",
        file: "storage_test_guest_hostile.wasm",
    },
    ComponentCrate {
        package: "storage-test-guest-fs-importer",
        file: "storage_test_guest_fs_importer.wasm",
    },
    ComponentCrate {
        package: "storage-test-guest-example-driver",
        file: "storage_test_guest_example_driver.wasm",
    },
    ComponentCrate {
        package: "storage-test-guest-hostile-driver",
        file: "storage_test_guest_hostile_driver.wasm",
    },
    ComponentCrate {
        package: "storage-vfs-component",
        file: "storage_vfs_component.wasm",
    },
];

/// The bytes of the component built from `package` (one of [`CRATES`]); panics (a test
/// failure) when it cannot be built.
pub fn wasm(package: &str) -> &'static [u8] {
    static BUILT: OnceLock<Vec<(&'static str, Vec<u8>)>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let paths =
            storage_wasm_build::build(&root, CRATES, &storage_wasm_build::target_dir_for_tests())
                .unwrap_or_else(|e| panic!("{e}"));
        CRATES
            .iter()
            .zip(paths)
            .map(|(c, path)| {
                let bytes = std::fs::read(&path)
                    .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
                (c.package, bytes)
            })
            .collect()
    });
    built
        .iter()
        .find(|(p, _)| *p == package)
        .map(|(_, bytes)| bytes.as_slice())
        .unwrap_or_else(|| panic!("{package} is not a test component"))
}
