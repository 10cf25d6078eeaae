//! Builds the test guest of the `host_calls` target (guest/, a workspace of its own) for
//! wasm32-wasip2 with the toolchain building this crate, and copies it to `OUT_DIR`, the way
//! the host crates embed their components (`storage-wasm-build`: the settings cargo-fuzz
//! gives the outer build, sanitizer and coverage flags, are not passed on).

use std::path::PathBuf;

use storage_wasm_build::{build, target_dir_for_out_dir, ComponentCrate};

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    for watched in [
        "build.rs",
        "guest/src",
        "guest/Cargo.toml",
        "guest/Cargo.lock",
        "../wit",
    ] {
        println!(
            "cargo::rerun-if-changed={}",
            manifest_dir.join(watched).display()
        );
    }
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let guest = ComponentCrate {
        package: "storage-fuzz-guest",
        file: "storage_fuzz_guest.wasm",
    };
    let built = build(
        &manifest_dir.join("guest"),
        &[guest],
        &target_dir_for_out_dir(&out_dir).join("fuzz-guest"),
    )
    .unwrap_or_else(|e| panic!("the host_calls guest: {e}"));
    let to = out_dir.join(guest.file);
    std::fs::copy(&built[0], &to)
        .unwrap_or_else(|e| panic!("copy {} to {}: {e}", built[0].display(), to.display()));
}
