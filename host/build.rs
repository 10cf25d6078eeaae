//! Builds the components storage-host embeds, when the `components` feature is on: the
//! archive component (drivers/archive-component), the vfs driver (drivers/vfs) and the test guests (host/tests/guests/),
//! compiled for `wasm32-wasip2` by a nested cargo into its own target directory and copied to
//! `OUT_DIR`. Without the feature it does nothing, so builds that do not want wasmtime do not
//! pay for it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Packages built for wasm32-wasip2 and the file each produces.
const COMPONENTS: &[(&str, &str)] = &[
    (
        "storage-archive-component",
        "storage_archive_component.wasm",
    ),
    ("storage-vfs-component", "storage_vfs_component.wasm"),
    (
        "storage-test-guest-hostile",
        "storage_test_guest_hostile.wasm",
    ),
    (
        "storage-test-guest-fs-importer",
        "storage_test_guest_fs_importer.wasm",
    ),
    (
        "storage-test-guest-example-driver",
        "storage_test_guest_example_driver.wasm",
    ),
    (
        "storage-test-guest-hostile-driver",
        "storage_test_guest_hostile_driver.wasm",
    ),
];

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_COMPONENTS").is_none() {
        return;
    }
    let manifest_dir = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .parent()
        .expect("host/ lives in the workspace root")
        .to_path_buf();
    for watched in [
        "wit",
        "drivers/archive/src",
        "drivers/archive/Cargo.toml",
        "drivers/archive-component",
        "drivers/vfs",
        "host/tests/guests",
        "Cargo.lock",
    ] {
        println!("cargo::rerun-if-changed={}", root.join(watched).display());
    }
    let out_dir = PathBuf::from(env("OUT_DIR"));
    // <target>/<profile>/build/storage-host-<hash>/out → <target>/wasm-components: shared by
    // every profile of the outer build, apart from its lock.
    let target_dir = out_dir
        .ancestors()
        .nth(4)
        .map(|t| t.join("wasm-components"))
        .unwrap_or_else(|| out_dir.join("wasm-components"));

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(&root)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .arg("--target-dir")
        .arg(&target_dir);
    for (package, _) in COMPONENTS {
        command.args(["-p", package]);
    }
    // The outer build's settings are for the host target and this package, not for the
    // guests; what says where crates come from, and the jobserver, is kept.
    const KEEP: &[&str] = &[
        "CARGO_HOME",
        "CARGO_MAKEFLAGS",
        "CARGO_NET_",
        "CARGO_HTTP_",
        "CARGO_REGISTRIES_",
        "CARGO_REGISTRY_",
        "CARGO_SOURCE_",
        "CARGO_TERM_",
    ];
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        let cargo_setting =
            key.starts_with("CARGO_") && !KEEP.iter().any(|keep| key.starts_with(keep));
        if cargo_setting || key == "RUSTFLAGS" || key == "RUSTC_WORKSPACE_WRAPPER" {
            command.env_remove(&key);
        }
    }
    let status = command
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build the components: {e}"));
    assert!(
        status.success(),
        "building the wasm32-wasip2 components failed ({status}): see the cargo output above \
         (the target is installed by `rustup target add wasm32-wasip2`)"
    );
    for (_, file) in COMPONENTS {
        let built = target_dir.join("wasm32-wasip2/release").join(file);
        copy(&built, &out_dir.join(file));
    }
}

fn env(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| panic!("{key} is set by cargo"))
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to)
        .unwrap_or_else(|e| panic!("copy {} to {}: {e}", from.display(), to.display()));
}
