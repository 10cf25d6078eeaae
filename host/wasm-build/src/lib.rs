//! Building the workspace's WebAssembly components from a build script or a test.
//!
//! A component crate is compiled for `wasm32-wasip2` by a nested `cargo build --release`
//! into its own target directory (beside the outer build's, shared by every profile of it,
//! apart from its lock). Build scripts embed what a release needs (the archive component,
//! the vfs driver); tests build the guests they load, so a release build never compiles
//! them.
//!
//! What can go wrong: cargo cannot be run, or the build fails (most often: the
//! `wasm32-wasip2` target is not installed; `rust-toolchain.toml` asks rustup for it).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Why a component could not be built.
#[derive(Debug)]
pub enum BuildError {
    /// cargo could not be started.
    Spawn(std::io::Error),
    /// cargo failed; the status, and what to look at.
    Failed(String),
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildError::Spawn(e) => write!(f, "cannot run cargo to build the components: {e}"),
            BuildError::Failed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for BuildError {}

/// One component crate: its package name and the file it produces.
#[derive(Debug, Clone, Copy)]
pub struct ComponentCrate {
    /// The cargo package.
    pub package: &'static str,
    /// The `.wasm` file it produces (`<lib name>.wasm`).
    pub file: &'static str,
}

/// Builds `crates` of the workspace at `root` into `target_dir`; returns each component's
/// path, in the order given.
pub fn build(
    root: &Path,
    crates: &[ComponentCrate],
    target_dir: &Path,
) -> Result<Vec<PathBuf>, BuildError> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(root)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .arg("--target-dir")
        .arg(target_dir);
    for c in crates {
        command.args(["-p", c.package]);
    }
    // The outer build's settings are for the host target and its own package, not for the
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
    let status = command.status().map_err(BuildError::Spawn)?;
    if !status.success() {
        return Err(BuildError::Failed(format!(
            "building the wasm32-wasip2 components failed ({status}): see the cargo output \
             above (the target is installed by `rustup target add wasm32-wasip2`)"
        )));
    }
    Ok(crates
        .iter()
        .map(|c| target_dir.join("wasm32-wasip2/release").join(c.file))
        .collect())
}

/// For tests: the component target directory beside the running test binary
/// (`<target>/<profile>/deps/<test>` → `<target>/wasm-components`).
pub fn target_dir_for_tests() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.ancestors()
        .nth(3)
        .map(|target| target.join("wasm-components"))
        .unwrap_or_else(|| std::env::temp_dir().join("storage-wasm-components"))
}

/// The shared component target directory for a build script's `OUT_DIR`
/// (`<target>/<profile>/build/<pkg>-<hash>/out` → `<target>/wasm-components`).
pub fn target_dir_for_out_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .nth(4)
        .map(|t| t.join("wasm-components"))
        .unwrap_or_else(|| out_dir.join("wasm-components"))
}

/// For a build script: builds `crates`, copies each component to `OUT_DIR` with its
/// SHA-256 beside it (`<file>.sha256`, 64 hex digits: the binary keys its cache of compiled
/// code with it instead of hashing megabytes on every run), and tells cargo to run again when
/// `watched` (paths relative to the workspace root) change.
/// Panics with the reason, which is how a build script fails.
pub fn embed(root: &Path, crates: &[ComponentCrate], watched: &[&str]) {
    println!("cargo::rerun-if-changed=build.rs");
    for path in watched.iter().chain(["wit", "Cargo.lock"].iter()) {
        println!("cargo::rerun-if-changed={}", root.join(path).display());
    }
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let target_dir = target_dir_for_out_dir(&out_dir);
    let built = build(root, crates, &target_dir).unwrap_or_else(|e| panic!("{e}"));
    for (c, path) in crates.iter().zip(built) {
        let to = out_dir.join(c.file);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        std::fs::write(&to, &bytes).unwrap_or_else(|e| panic!("write {}: {e}", to.display()));
        let digest = sha256_hex(&bytes);
        let digest_file = out_dir.join(format!("{}.sha256", c.file));
        std::fs::write(&digest_file, digest)
            .unwrap_or_else(|e| panic!("write {}: {e}", digest_file.display()));
    }
}

/// The SHA-256 of `bytes` in lowercase hex (what `sha256sum` prints).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
