//! The cache of precompiled components.
//!
//! An artifact is the engine's native code for one component: loading it is a `mmap`, not a
//! compile. `Component::deserialize_file` trusts its input completely (it is machine code run
//! as is), which is why it is `unsafe`. The use here is sound because an artifact is only
//! loaded when
//! - its name is the key of the component's bytes, the host version and the engine's
//!   compatibility hash, so it was made for this host from these bytes, and
//! - the cache directory and the artifact are owned by root and writable by nobody else, so only
//!   a root process (this host, compiling) can have written it; anything else is ignored and
//!   recompiled in memory.
//!
//! wasmtime additionally checks the artifact's header against the engine configuration and
//! refuses a mismatch; such an artifact is replaced.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

use super::engine::compile;
use super::error::ComponentError;

/// A directory of precompiled artifacts, `<key>.cwasm`.
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: PathBuf,
}

/// Feeds the engine's compatibility hash into a sha256 (it only exposes `Hash`).
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// Whether `meta` is owned by root and not writable by group or others.
fn only_root_writes(meta: &std::fs::Metadata) -> bool {
    meta.uid() == 0 && meta.permissions().mode() & 0o022 == 0
}

impl ComponentCache {
    /// A cache in `dir` (created on first store).
    pub fn new(dir: PathBuf) -> Self {
        ComponentCache { dir }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The artifact name for `bytes` on `engine`: host version, engine compatibility and
    /// component digest.
    pub fn key(engine: &Engine, bytes: &[u8]) -> String {
        let mut hasher = ShaHasher(Sha256::new());
        // The crate that compiles the artifact: its version keys the cache.
        hasher.write(b"storage-component-host ");
        hasher.write(env!("CARGO_PKG_VERSION").as_bytes());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        hasher.write(&Sha256::digest(bytes));
        hex::encode(hasher.0.finalize())
    }

    /// The artifact path for `bytes`.
    pub fn artifact_path(&self, engine: &Engine, bytes: &[u8]) -> PathBuf {
        self.dir.join(format!("{}.cwasm", Self::key(engine, bytes)))
    }

    /// Whether the cache directory may be trusted (see the module docs).
    fn trusted_dir(&self) -> bool {
        std::fs::symlink_metadata(&self.dir)
            .map(|m| m.is_dir() && only_root_writes(&m))
            .unwrap_or(false)
    }

    /// The compiled component: from a trusted artifact when there is one (`true`), compiled
    /// and stored otherwise (`false`).
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        name: &str,
        bytes: &[u8],
    ) -> Result<(Component, bool), ComponentError> {
        let path = self.artifact_path(engine, bytes);
        if self.trusted_dir() {
            if let Ok(meta) = std::fs::symlink_metadata(&path) {
                if meta.is_file() && only_root_writes(&meta) {
                    // Not a system call: wasmtime marks loading native code `unsafe`, and
                    // only this host can vouch for the artifact it wrote.
                    #[allow(
                        unsafe_code,
                        reason = "loading a precompiled artifact trusts it; sound for the ones this host wrote (module docs)"
                    )]
                    // SAFETY: the artifact is named by the key of these bytes and this host
                    // and sits in a root-only directory, owned by root and not writable by
                    // others: this host wrote it with `Engine::precompile_component` (module
                    // docs). wasmtime checks the header against the engine on top.
                    let loaded = unsafe { Component::deserialize_file(engine, &path) };
                    if let Ok(component) = loaded {
                        return Ok((component, true));
                    }
                }
            }
        }
        let component = compile(engine, name, bytes)?;
        // A cache that cannot be written (not root, read-only) only costs the next load a
        // compile: the component itself is fine, so the failure is not an error.
        let stored = self.store(&component, &path);
        storage_driver::cleanup::log_failure("caching the compiled component", stored);
        Ok((component, false))
    }

    /// Writes the artifact of `component` atomically (temp file, fsync, rename), creating the
    /// directory root-only if needed.
    fn store(&self, component: &Component, path: &Path) -> Result<(), ComponentError> {
        let cache_error = |source| ComponentError::Cache {
            path: self.dir.clone(),
            source,
        };
        if !self.dir.exists() {
            std::fs::create_dir_all(&self.dir).map_err(cache_error)?;
            std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o755))
                .map_err(cache_error)?;
        }
        if !self.trusted_dir() {
            return Err(cache_error(std::io::Error::other(
                "not owned by root or writable by others: not used",
            )));
        }
        let bytes = component
            .serialize()
            .map_err(|e| cache_error(std::io::Error::other(format!("serialize: {e:#}"))))?;
        // A name of this process: a concurrent writer of the same artifact uses another one,
        // and the renames are atomic, so a reader sees a whole artifact or none.
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o644)
                .open(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| {
            // The write's error is the one to report; a temp file left behind is never
            // loaded (only the renamed artifact is), and the next store truncates it.
            storage_driver::cleanup::log_failure(
                format_args!("removing {}", tmp.display()),
                std::fs::remove_file(&tmp),
            );
            cache_error(e)
        })?;
        Ok(())
    }
}
