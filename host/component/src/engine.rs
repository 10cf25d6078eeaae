//! The wasmtime engine (one configuration for every component) and loading components.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Engine};

use super::cache::ComponentCache;
use super::error::ComponentError;
use super::policy;

/// How often the epoch advances: the granularity of deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Where the runtime keeps precompiled artifacts.
#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    /// The cache directory (for example `<runroot>/components` or a system cache); `None`
    /// compiles every load in memory.
    pub cache_dir: Option<PathBuf>,
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until the runtime is dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("storage-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .map(|_| ())
            // Without a ticker no deadline fires; the runtime still works, so say so and go on.
            .unwrap_or_else(|e| {
                eprintln!("storage: cannot start the component deadline timer: {e}")
            });
        EpochTicker { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The component runtime: one engine, its deadline timer and its artifact cache.
///
/// The engine runs components and loads their compiled code; it has no compiler, so making it
/// costs a command nothing of Cranelift's (a compiler is set up, with the host's CPU features
/// probed, only when a component is not in the cache: [`compile`]).
pub struct Runtime {
    engine: Engine,
    cache: Option<ComponentCache>,
    _ticker: EpochTicker,
}

/// A compiled component that passed the import policy.
#[derive(Clone)]
pub struct LoadedComponent {
    /// A name for messages (file name or built-in name).
    pub name: String,
    /// `sha256:<hex>` of the component bytes.
    pub digest: String,
    /// Whether the compiled code came from the cache (no compile).
    pub from_cache: bool,
    /// The `storage:plugin` package version the component was built against (what
    /// `storage status` reports; equal to the host's, or the load was refused).
    pub wit_version: String,
    /// The compiled component.
    pub component: Component,
}

/// The engine configuration: epoch interruption for deadlines; every artifact in the cache
/// was compiled with exactly this, and the cache key includes it. With `compiler`, the engine
/// compiles (for [`compile`]); without, it only loads what one with a compiler made.
fn engine_config(compiler: bool) -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.wasm_component_model(true);
    config.enable_compiler(compiler);
    config
}

/// An engine of [`engine_config`].
fn new_engine(compiler: bool) -> Result<Engine, ComponentError> {
    Engine::new(&engine_config(compiler)).map_err(|e| ComponentError::Compile {
        name: "(engine)".into(),
        message: format!("{e:#}"),
    })
}

impl Runtime {
    /// Creates the engine and starts its deadline timer.
    pub fn new(config: RuntimeConfig) -> Result<Self, ComponentError> {
        let engine = new_engine(false)?;
        let cache = config.cache_dir.map(ComponentCache::new);
        Ok(Runtime {
            _ticker: EpochTicker::start(engine.clone()),
            engine,
            cache,
        })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Loads a component from its bytes: checks its imports, then takes the compiled code from
    /// the cache or compiles (and caches) it.
    pub fn load(&self, name: &str, bytes: &[u8]) -> Result<LoadedComponent, ComponentError> {
        self.load_digested(name, bytes, &hex::encode(Sha256::digest(bytes)))
    }

    /// [`Runtime::load`] of bytes whose SHA-256 (hex) is known: a built-in component's,
    /// computed by the build script that embedded it, so a command does not hash megabytes.
    pub fn load_digested(
        &self,
        name: &str,
        bytes: &[u8],
        sha256: &str,
    ) -> Result<LoadedComponent, ComponentError> {
        debug_assert_eq!(
            sha256,
            hex::encode(Sha256::digest(bytes)),
            "digest of {name}"
        );
        let digest = format!("sha256:{sha256}");
        let (component, from_cache) = match &self.cache {
            Some(cache) => cache.load_or_compile(&self.engine, name, bytes, sha256)?,
            None => (compile(&self.engine, name, bytes)?.0, false),
        };
        let imports: Vec<String> = component
            .component_type()
            .imports(&self.engine)
            .map(|(import, _)| import.to_string())
            .collect();
        policy::check_imports(name, imports.iter().map(String::as_str))?;
        let wit_version = imports
            .iter()
            .find_map(|import| import.strip_prefix("storage:plugin/"))
            .and_then(|rest| rest.split_once('@'))
            .map(|(_, version)| version.to_string())
            .unwrap_or_default();
        Ok(LoadedComponent {
            name: name.to_string(),
            digest,
            from_cache,
            wit_version,
            component,
        })
    }

    /// Loads a component file (a plugin named in `storage.toml`).
    pub fn load_file(&self, path: &Path) -> Result<LoadedComponent, ComponentError> {
        let bytes = std::fs::read(path).map_err(|source| ComponentError::Io {
            name: path.display().to_string(),
            context: "read component".into(),
            source,
        })?;
        self.load(&path.display().to_string(), &bytes)
    }
}

/// Compiles component bytes in memory for `engine` (a [`Runtime`]'s, which has no compiler):
/// an engine with the same configuration and a compiler makes the artifact, which `engine`
/// then loads. Returns the component and its artifact (what the cache stores).
pub fn compile(
    engine: &Engine,
    name: &str,
    bytes: &[u8],
) -> Result<(Component, Vec<u8>), ComponentError> {
    let compile_error = |e: wasmtime::Error| ComponentError::Compile {
        name: name.to_string(),
        message: format!("{e:#}"),
    };
    let artifact = new_engine(true)?
        .precompile_component(bytes)
        .map_err(compile_error)?;
    // Not a system call: wasmtime marks loading native code `unsafe`, and only the compiler
    // that just made it can vouch for it.
    #[allow(
        unsafe_code,
        reason = "loading the artifact an engine of the same configuration just compiled"
    )]
    // SAFETY: `artifact` is what `precompile_component` of an engine with this very
    // configuration returned a moment ago, in this process: native code for this host from
    // these bytes, never written anywhere or changed. wasmtime checks its header against
    // `engine` on top.
    let component = unsafe { Component::deserialize(engine, &artifact) }.map_err(compile_error)?;
    Ok((component, artifact))
}
