//! The cache of precompiled components.
//!
//! An artifact is the engine's native code for one component: loading it is a `mmap`, not a
//! compile. `Component::deserialize_file` trusts its input completely (it is machine code run
//! as is), which is why it is `unsafe`. The use here is sound because an artifact is only
//! loaded when
//! - its name is the key of the component's bytes, the host version and the engine's
//!   compatibility hash, so it was made for this host from these bytes, and
//! - the cache directory and the artifact are owned by the effective user and writable by
//!   nobody else, so only a process of this user (this host, compiling) can have written it;
//!   anything else is ignored and recompiled in memory. For root that is root's
//!   [`SYSTEM_CACHE_DIR`]; for any other user, their own [`user_cache_dir`] (machine code
//!   the user could have written runs with nothing the user does not already have). In a
//!   user namespace the check holds as well: the user's files are owned by the namespace's
//!   root, which it runs as, and nobody else's are.
//!
//! wasmtime additionally checks the artifact's header against the engine configuration and
//! refuses a mismatch; such an artifact is replaced.
//!
//! One directory serves every store of the user (the archive component and the driver
//! components alike): an artifact is `<component>-<key>.cwasm`, and storing one removes the
//! older artifacts of the same component (made by another host version or engine, or from
//! other bytes), so the directory holds one artifact per component. Artifacts are only ever
//! replaced by a rename and removed by an unlink: a process loading one maps a whole file or
//! finds none and compiles.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use storage_driver::cleanup::log_failure;
use wasmtime::component::Component;
use wasmtime::Engine;

use super::engine::compile;
use super::error::ComponentError;

/// A directory of precompiled artifacts, `<component>-<key>.cwasm`.
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

/// Where root's process-wide runtime keeps precompiled components: a system cache
/// directory that only root can write.
pub const SYSTEM_CACHE_DIR: &str = "/var/cache/storage/components";

/// Whether `meta` is owned by the effective user and not writable by group or others.
fn only_owner_writes(meta: &std::fs::Metadata) -> bool {
    meta.uid() == rustix::process::geteuid().as_raw() && meta.permissions().mode() & 0o022 == 0
}

/// Whether this process works for a rootless user: not root, or re-executed by one in a
/// user namespace (`_CONTAINERS_ROOTLESS_UID`, see `storage_store::config`).
fn rootless(var: &dyn Fn(&str) -> Option<String>) -> bool {
    let in_userns_for = var("_CONTAINERS_ROOTLESS_UID")
        .and_then(|uid| uid.parse::<u32>().ok())
        .is_some_and(|uid| uid != 0);
    in_userns_for || !rustix::process::geteuid().is_root()
}

/// A user's own cache of precompiled components: `$XDG_CACHE_HOME/storage/components`, else
/// `$HOME/.cache/storage/components`; `None` when neither variable is set.
pub fn user_cache_dir(var: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let base = match var("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(var("HOME").filter(|h| !h.is_empty())?).join(".cache"),
    };
    Some(base.join("storage/components"))
}

/// The cache directory of this process's runtime for built-in components: [`SYSTEM_CACHE_DIR`]
/// for root, the user's [`user_cache_dir`] for anyone else (also inside the user namespace
/// a rootless user's command re-executes in, where the process is root but the files are
/// the user's).
pub fn process_cache_dir() -> Option<PathBuf> {
    cache_dir_for(&|name| std::env::var(name).ok())
}

/// [`process_cache_dir`] with an explicit environment.
pub fn cache_dir_for(var: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if rootless(var) {
        user_cache_dir(var)
    } else {
        Some(PathBuf::from(SYSTEM_CACHE_DIR))
    }
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

    /// The key of an artifact on `engine` of the component whose SHA-256 is `digest` (hex):
    /// host version, engine compatibility and component digest.
    pub fn key(engine: &Engine, digest: &str) -> String {
        let mut hasher = ShaHasher(Sha256::new());
        // The crate that compiles the artifact: its version keys the cache.
        hasher.write(b"storage-component-host ");
        hasher.write(env!("CARGO_PKG_VERSION").as_bytes());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        hasher.write(digest.as_bytes());
        hex::encode(hasher.0.finalize())
    }

    /// The artifact path of component `name` whose SHA-256 is `digest` (hex).
    pub fn artifact_path(&self, engine: &Engine, name: &str, digest: &str) -> PathBuf {
        self.dir.join(format!(
            "{}-{}.cwasm",
            artifact_prefix(name),
            Self::key(engine, digest)
        ))
    }

    /// Whether the cache directory may be trusted (see the module docs).
    fn trusted_dir(&self) -> bool {
        std::fs::symlink_metadata(&self.dir)
            .map(|m| m.is_dir() && only_owner_writes(&m))
            .unwrap_or(false)
    }

    /// The compiled component `name` (`bytes`, whose SHA-256 is `digest` in hex): from a
    /// trusted artifact when there is one (`true`), compiled and stored otherwise (`false`).
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        name: &str,
        bytes: &[u8],
        digest: &str,
    ) -> Result<(Component, bool), ComponentError> {
        let path = self.artifact_path(engine, name, digest);
        if self.trusted_dir() {
            if let Ok(meta) = std::fs::symlink_metadata(&path) {
                if meta.is_file() && only_owner_writes(&meta) {
                    // Not a system call: wasmtime marks loading native code `unsafe`, and
                    // only this host can vouch for the artifact it wrote.
                    #[allow(
                        unsafe_code,
                        reason = "loading a precompiled artifact trusts it; sound for the ones this host wrote (module docs)"
                    )]
                    // SAFETY: the artifact is named by the key of these bytes and this host
                    // and sits in a directory of the effective user's alone, owned by that
                    // user and not writable by others: this host, run by that user, wrote it
                    // with `Engine::precompile_component` (module docs). wasmtime checks the
                    // header against the engine on top.
                    let loaded = unsafe { Component::deserialize_file(engine, &path) };
                    // An error also when another process removed the artifact since the
                    // check (it was stale for that process): then this one compiles.
                    if let Ok(component) = loaded {
                        return Ok((component, true));
                    }
                }
            }
        }
        let (component, artifact) = compile(engine, name, bytes)?;
        // A cache that cannot be written (not root, read-only) only costs the next load a
        // compile: the component itself is fine, so the failure is not an error.
        let stored = self.store(&artifact, &path);
        if log_failure("caching the compiled component", stored).is_some() {
            self.remove_stale(name, &path);
        }
        Ok((component, false))
    }

    /// Writes `artifact` atomically (temp file, fsync, rename), creating the
    /// directory (writable by its owner only) if needed.
    fn store(&self, artifact: &[u8], path: &Path) -> Result<(), ComponentError> {
        let cache_error = |source| ComponentError::Cache {
            path: self.dir.clone(),
            source,
        };
        if !self.dir.exists() {
            std::fs::create_dir_all(&self.dir).map_err(cache_error)?;
            // Root's system cache may be read by all; a user's is private (also when made
            // in the user's namespace, where the process is root).
            let mode = if rootless(&|name| std::env::var(name).ok()) {
                0o700
            } else {
                0o755
            };
            std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(mode))
                .map_err(cache_error)?;
        }
        if !self.trusted_dir() {
            return Err(cache_error(std::io::Error::other(
                "not owned by this user or writable by others: not used",
            )));
        }
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
            file.write_all(artifact)?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| {
            // The write's error is the one to report; a temp file left behind is never
            // loaded (only the renamed artifact is), and the next store truncates it.
            log_failure(
                format_args!("removing {}", tmp.display()),
                std::fs::remove_file(&tmp),
            );
            cache_error(e)
        })?;
        Ok(())
    }

    /// Removes the artifacts of component `name` older than `kept`, the one just stored, and
    /// the unprefixed `<key>.cwasm` of earlier hosts: they were made by another host version
    /// or engine, or from other bytes, and would only fill the directory. A newer one (another
    /// host stored it meanwhile) is left to that host. Best effort: a failure is logged.
    fn remove_stale(&self, name: &str, kept: &Path) {
        let Some(kept_time) = log_failure(
            format_args!("reading {}", kept.display()),
            std::fs::metadata(kept).and_then(|m| m.modified()),
        ) else {
            return;
        };
        let prefix = format!("{}-", artifact_prefix(name));
        let Some(entries) = log_failure(
            format_args!("listing {}", self.dir.display()),
            std::fs::read_dir(&self.dir),
        ) else {
            return;
        };
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some(file_name) = file_name.to_str() else {
                continue;
            };
            let ours = file_name
                .strip_prefix(prefix.as_str())
                .is_some_and(is_artifact_name);
            if !(ours || is_artifact_name(file_name)) || entry.path() == kept {
                continue;
            }
            let older = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|time| time < kept_time);
            if older {
                match std::fs::remove_file(entry.path()) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => log::warn!(
                        "removing the stale artifact {} (carrying on): {e}",
                        entry.path().display()
                    ),
                    _ => log::debug!("removed the stale artifact {}", entry.path().display()),
                }
            }
        }
    }
}

/// Whether `name` is `<key>.cwasm` (64 hex digits).
fn is_artifact_name(name: &str) -> bool {
    name.strip_suffix(".cwasm")
        .is_some_and(|key| key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The start of the artifact names of component `name` (`builtin:vfs` -> `builtin_vfs`, a
/// plugin's path -> its file name, `driver.wasm`): one file name of letters, digits, `.` and
/// `_`, at most 100 bytes (the end of a longer name). Not the whole path: a plugin copied to
/// temporary directories (tests) would leave an artifact per directory that nothing removes.
/// Two components sharing a prefix only remove each other's artifact, which costs a compile.
fn artifact_prefix(name: &str) -> String {
    let file_name = name.rsplit('/').next().unwrap_or(name);
    let safe: String = file_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    // ASCII only, so any byte index is a char boundary.
    safe[safe.len().saturating_sub(100)..].to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn a_users_cache_is_in_xdg_cache_home_else_in_home() {
        assert_eq!(
            user_cache_dir(&env(&[("XDG_CACHE_HOME", "/x"), ("HOME", "/home/u")])),
            Some(PathBuf::from("/x/storage/components"))
        );
        assert_eq!(
            user_cache_dir(&env(&[("XDG_CACHE_HOME", ""), ("HOME", "/home/u")])),
            Some(PathBuf::from("/home/u/.cache/storage/components"))
        );
        assert_eq!(user_cache_dir(&env(&[])), None);
    }

    #[test]
    fn the_user_who_reexecuted_in_a_user_namespace_keeps_their_cache() {
        let inside = env(&[("_CONTAINERS_ROOTLESS_UID", "1000"), ("HOME", "/home/u")]);
        assert_eq!(
            cache_dir_for(&inside),
            Some(PathBuf::from("/home/u/.cache/storage/components"))
        );
        let root = env(&[("_CONTAINERS_ROOTLESS_UID", "0"), ("HOME", "/root")]);
        let expected = if rustix::process::geteuid().is_root() {
            PathBuf::from(SYSTEM_CACHE_DIR)
        } else {
            PathBuf::from("/root/.cache/storage/components")
        };
        assert_eq!(cache_dir_for(&root), Some(expected));
    }

    #[test]
    fn artifact_names_start_with_the_component_as_one_file_name() {
        assert_eq!(artifact_prefix("builtin:vfs"), "builtin_vfs");
        assert_eq!(
            artifact_prefix("/usr/lib/x/my-driver.wasm"),
            "my_driver.wasm"
        );
        let long = format!("/x/{}.wasm", "a".repeat(300));
        assert_eq!(artifact_prefix(&long).len(), 100);
        assert!(artifact_prefix(&long).ends_with("aa.wasm"));
    }

    #[test]
    fn storing_an_artifact_removes_the_older_ones_of_the_same_component_only() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = ComponentCache::new(tmp.path().to_path_buf());
        let key = |c: char| c.to_string().repeat(64);
        let file = |name: String, age_s: u64| {
            let path = tmp.path().join(name);
            std::fs::write(&path, b"x").unwrap();
            let time = std::time::SystemTime::now() - std::time::Duration::from_secs(age_s);
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(time)
                .unwrap();
            path
        };
        let kept = file(format!("builtin_vfs-{}.cwasm", key('a')), 10);
        let stale = file(format!("builtin_vfs-{}.cwasm", key('b')), 20);
        let unprefixed = file(format!("{}.cwasm", key('c')), 20);
        let newer = file(format!("builtin_vfs-{}.cwasm", key('d')), 0);
        let other_component = file(format!("builtin_archive-{}.cwasm", key('e')), 20);
        let not_an_artifact = file("builtin_vfs-notes.cwasm".to_string(), 20);
        let temp = file(format!("builtin_vfs-{}.tmp.7", key('f')), 20);
        cache.remove_stale("builtin:vfs", &kept);
        assert!(!stale.exists() && !unprefixed.exists());
        for left in [kept, newer, other_component, not_an_artifact, temp] {
            assert!(left.exists(), "{left:?} removed");
        }
    }

    #[test]
    fn only_a_directory_of_the_effective_user_alone_is_trusted() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = ComponentCache::new(tmp.path().join("c"));
        std::fs::create_dir(cache.dir()).unwrap();
        std::fs::set_permissions(cache.dir(), std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(cache.trusted_dir());
        std::fs::set_permissions(cache.dir(), std::fs::Permissions::from_mode(0o775)).unwrap();
        assert!(!cache.trusted_dir());
        if rustix::process::geteuid().is_root() {
            // Someone else's directory, even a private one.
            std::fs::set_permissions(cache.dir(), std::fs::Permissions::from_mode(0o700)).unwrap();
            std::os::unix::fs::chown(cache.dir(), Some(65534), None).unwrap();
            assert!(!cache.trusted_dir());
        }
    }
}
