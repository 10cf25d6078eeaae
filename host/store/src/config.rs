//! Store options: the roots, driver and driver options a store opens with, resolved from
//! `storage.toml` (the TOML format of containers' `storage.conf`), the environment and the
//! built-in default (upstream's `types/options.go`).
//!
//! What can go wrong: the file named by `CONTAINERS_STORAGE_CONF` is missing or unreadable,
//! or a configuration file is not valid TOML or has a key of the wrong type. Unknown keys
//! are not errors: they are collected as warnings, as upstream does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use storage_driver::idmap::IdMap;
use storage_driver::idmap::IdMappings;

/// The built-in default configuration, the repository's `storage.toml`.
pub const BUILTIN_CONFIG: &str = include_str!("../../../storage.toml");

/// Where the built-in configuration says it comes from, in messages.
pub const BUILTIN_CONFIG_NAME: &str = "<built-in storage.toml>";

/// Default graph root when no configuration names one.
pub const DEFAULT_GRAPH_ROOT: &str = "/var/lib/containers/storage";

/// Default run root when no configuration names one.
pub const DEFAULT_RUN_ROOT: &str = "/run/containers/storage";

/// The system configuration files, in the order they are looked for (upstream's
/// `defaultOverrideConfigFile` and `SystemConfigFile`).
pub const SYSTEM_CONFIG_FILES: [&str; 2] = [
    "/etc/containers/storage.conf",
    "/usr/share/containers/storage.conf",
];

/// Set (to `done`) in the environment of a process that was re-executed in a user namespace
/// (upstream's `UsernsEnvName`).
pub const USERNS_CONFIGURED_ENV: &str = "_CONTAINERS_USERNS_CONFIGURED";

/// The UID of the user who re-executed this process in a user namespace.
pub const ROOTLESS_UID_ENV: &str = "_CONTAINERS_ROOTLESS_UID";

/// The GID of the user who re-executed this process in a user namespace.
pub const ROOTLESS_GID_ENV: &str = "_CONTAINERS_ROOTLESS_GID";

/// Errors of configuration loading.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A configuration file could not be read.
    #[error(
        "reading configuration file {path}: {}",
        storage_archive::error::os_error_text(source)
    )]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A configuration file has a value of the wrong type or shape.
    #[error("parsing configuration file {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong, on one line.
        message: String,
    },
    /// A configuration file is not valid TOML (the parser's message, its first line only).
    #[error("parsing configuration file {path}: {}", first_line(source.message()))]
    Toml {
        /// The file.
        path: String,
        /// The parser's error.
        #[source]
        source: toml::de::Error,
    },
    /// Neither `XDG_DATA_HOME` nor a home directory says where a rootless store lives.
    #[error("neither XDG_DATA_HOME nor HOME was set non-empty")]
    NoHome,
    /// No runtime directory for a rootless user (upstream's `GetRuntimeDir`).
    #[error("path {path:?} exists and it is not writeable only by the current user")]
    RuntimeDir {
        /// The last directory tried.
        path: PathBuf,
    },
    /// The rootless run root could not be created.
    #[error(
        "unable to make rootless runtime: {}",
        storage_archive::error::os_error_text(source)
    )]
    MakeRunRoot {
        /// The run root.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// The first line of a message (the TOML parser's go on with the offending line).
fn first_line(message: &str) -> &str {
    message.lines().next().unwrap_or_default()
}

pub use storage_driver::PluginConfig;

/// Everything a [`crate::store::Store`] needs to open (upstream's `StoreOptions`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreOptions {
    /// Persistent root (`--graph`).
    pub graph_root: PathBuf,
    /// Volatile root (`--run`).
    pub run_root: PathBuf,
    /// Split image store (`--image-store`).
    pub image_store: Option<PathBuf>,
    /// Driver name (`--storage-driver`); empty means "pick one".
    pub driver_name: String,
    /// Driver priority used when `driver_name` is empty.
    pub driver_priority: Vec<String>,
    /// Driver options (`--storage-opt`), `key=value` each.
    pub driver_options: Vec<String>,
    /// Container records and volatile layers live in the run root (`--transient-store`).
    pub transient_store: bool,
    /// Default ID mappings of the store.
    pub id_mappings: IdMappings,
    /// Graph root for rootless users.
    pub rootless_storage_path: String,
    /// User whose ranges automatic user namespaces of root are taken from.
    pub root_auto_ns_user: String,
    /// Smallest automatic user namespace.
    pub auto_ns_min_size: u32,
    /// Largest automatic user namespace.
    pub auto_ns_max_size: u32,
    /// Options for pull managers (`pull_options`).
    pub pull_options: BTreeMap<String, String>,
    /// Volatile mounts are refused.
    pub disable_volatile: bool,
    /// Third-party driver components by driver name.
    pub plugins: BTreeMap<String, PluginConfig>,
}

/// The JSON form `storage config` prints: upstream's `StoreOptions` keys in upstream's order.
#[derive(Serialize)]
struct GoStoreOptions<'a> {
    #[serde(skip_serializing_if = "String::is_empty")]
    runroot: String,
    #[serde(skip_serializing_if = "is_false")]
    transient_store: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    root: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    imagestore: String,
    #[serde(rename = "RootlessStoragePath")]
    rootless_storage_path: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    driver: &'a str,
    #[serde(rename = "driver-priority", skip_serializing_if = "<[_]>::is_empty")]
    driver_priority: &'a [String],
    #[serde(rename = "driver-options", skip_serializing_if = "<[_]>::is_empty")]
    driver_options: &'a [String],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    uidmap: &'a [IdMap],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    gidmap: &'a [IdMap],
    #[serde(skip_serializing_if = "str::is_empty")]
    root_auto_ns_user: &'a str,
    #[serde(skip_serializing_if = "is_zero")]
    auto_userns_min_size: u32,
    #[serde(skip_serializing_if = "is_zero")]
    auto_userns_max_size: u32,
    #[serde(rename = "PullOptions")]
    pull_options: Option<&'a BTreeMap<String, String>>,
    #[serde(rename = "disable-volatile", skip_serializing_if = "is_false")]
    disable_volatile: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl StoreOptions {
    /// What `storage config` prints: serializes with upstream's `StoreOptions` JSON keys, in
    /// upstream's order.
    pub fn to_go_json(&self) -> impl Serialize + '_ {
        let image_store = self
            .image_store
            .as_deref()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        GoStoreOptions {
            runroot: self.run_root.to_string_lossy().into_owned(),
            transient_store: self.transient_store,
            root: self.graph_root.to_string_lossy().into_owned(),
            imagestore: image_store,
            rootless_storage_path: &self.rootless_storage_path,
            driver: &self.driver_name,
            driver_priority: &self.driver_priority,
            driver_options: &self.driver_options,
            uidmap: &self.id_mappings.uids,
            gidmap: &self.id_mappings.gids,
            root_auto_ns_user: &self.root_auto_ns_user,
            auto_userns_min_size: self.auto_ns_min_size,
            auto_userns_max_size: self.auto_ns_max_size,
            pull_options: (!self.pull_options.is_empty()).then_some(&self.pull_options),
            disable_volatile: self.disable_volatile,
        }
    }
}

/// A parsed configuration file with the warnings it gave.
#[derive(Debug, Clone, Default)]
pub struct LoadedConfig {
    /// The resolved options.
    pub options: StoreOptions,
    /// Where they came from: a path or [`BUILTIN_CONFIG_NAME`].
    pub source: String,
    /// Unknown keys and other non-fatal remarks, for `--debug`.
    pub warnings: Vec<String>,
}

/// The process environment, as far as configuration cares: injectable for tests.
pub trait Environment {
    /// The value of a variable, if set.
    fn var(&self, name: &str) -> Option<String>;

    /// The real UID of the process (Go's `os.Getuid`).
    fn uid(&self) -> u32;

    /// The effective UID of the process (owner of the directories it may use).
    fn euid(&self) -> u32;

    /// The home directory of user `uid` in the password database, for when `HOME` is unset.
    fn passwd_home(&self, uid: u32) -> Option<PathBuf>;

    /// The system configuration files, in the order they are looked for.
    fn system_config_files(&self) -> Vec<PathBuf> {
        SYSTEM_CONFIG_FILES.iter().map(PathBuf::from).collect()
    }

    /// The parent of the per-user runtime directories (`/run/user`).
    fn run_user_dir(&self) -> PathBuf {
        PathBuf::from("/run/user")
    }

    /// Whether overlay can serve a rootless user (upstream's `canUseRootlessOverlay`):
    /// fuse-overlayfs is installed or the kernel mounts overlay in a user namespace (5.13+).
    fn can_use_rootless_overlay(&self) -> bool;
}

/// The real process environment.
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn uid(&self) -> u32 {
        rustix::process::getuid().as_raw()
    }

    fn euid(&self) -> u32 {
        rustix::process::geteuid().as_raw()
    }

    fn passwd_home(&self, uid: u32) -> Option<PathBuf> {
        // `name:password:uid:gid:gecos:home:shell`; local users only, which is where
        // rootless users with subordinate IDs are.
        let text = std::fs::read_to_string("/etc/passwd").ok()?;
        text.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.len() >= 6 && fields[2].parse() == Ok(uid)).then(|| PathBuf::from(fields[5]))
        })
    }

    fn can_use_rootless_overlay(&self) -> bool {
        let fuse = self.var("PATH").is_some_and(|path| {
            std::env::split_paths(&path).any(|dir| dir.join("fuse-overlayfs").is_file())
        });
        fuse || kernel_at_least(
            &std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default(),
            (5, 13),
        )
    }
}

/// Whether a kernel release (`6.18.44-...`) is at least `(major, minor)`.
fn kernel_at_least(release: &str, wanted: (u32, u32)) -> bool {
    let mut parts = release.trim().split(['.', '-']);
    let major = parts.next().and_then(|p| p.parse::<u32>().ok());
    let minor = parts.next().and_then(|p| p.parse::<u32>().ok());
    match (major, minor) {
        (Some(major), Some(minor)) => (major, minor) >= wanted,
        _ => false,
    }
}

/// The UID of the rootless user: `_CONTAINERS_ROOTLESS_UID` in a process re-executed in a
/// user namespace (where it is 0), else the real UID (upstream's `GetRootlessUID`).
pub fn rootless_uid(env: &dyn Environment) -> u32 {
    env.var(ROOTLESS_UID_ENV)
        .filter(|v| !v.is_empty())
        .map(|v| v.parse().unwrap_or(0))
        .unwrap_or_else(|| env.uid())
}

/// Whether the per-user (rootless) defaults apply (upstream's `usePerUserStorage`): the
/// rootless UID is not root's. A process re-executed in a user namespace by a user keeps
/// that user's paths; root's own `--unshare` keeps root's.
pub fn uses_per_user_storage(env: &dyn Environment) -> bool {
    rootless_uid(env) != 0
}

/// The user's home: `HOME`, else the password database's (upstream's `unshare.HomeDir`).
pub fn home_dir(env: &dyn Environment) -> Option<PathBuf> {
    env.var("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .or_else(|| env.passwd_home(rootless_uid(env)))
}

/// `$XDG_DATA_HOME`, else `~/.local/share` (upstream's `homedir.GetDataHome`).
pub fn data_home(env: &dyn Environment) -> Result<PathBuf, ConfigError> {
    if let Some(dir) = env.var("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(dir.into());
    }
    home_dir(env)
        .map(|home| home.join(".local/share"))
        .ok_or(ConfigError::NoHome)
}

/// The default graph root of a rootless user: `$XDG_DATA_HOME/containers/storage`.
pub fn rootless_graph_root(env: &dyn Environment) -> Result<PathBuf, ConfigError> {
    Ok(data_home(env)?.join("containers/storage"))
}

/// Whether `dir` is owned by the effective user and writable by nobody else.
fn owned_only_by(dir: &Path, euid: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(dir)
        .is_ok_and(|m| m.is_dir() && m.uid() == euid && m.mode() & 0o722 == 0o700)
}

/// A directory for the user's runtime files (upstream's `homedir.GetRuntimeDir`):
/// `$XDG_RUNTIME_DIR`, else `/run/user/UID`, else `$TMPDIR/storage-run-UID` (`/tmp` when
/// `TMPDIR` is unset), the last two only when they are the user's alone (made if missing).
pub fn runtime_dir(env: &dyn Environment) -> Result<PathBuf, ConfigError> {
    if let Some(dir) = env.var("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        return Ok(std::fs::canonicalize(&dir).unwrap_or(dir));
    }
    let uid = rootless_uid(env);
    let make = |dir: &Path| {
        use std::os::unix::fs::DirBuilderExt;
        // Failing is fine: the ownership check below decides.
        let _ = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir);
    };
    let run_user = env.run_user_dir().join(uid.to_string());
    make(&run_user);
    if owned_only_by(&run_user, env.euid()) {
        return Ok(run_user);
    }
    let tmp = env
        .var("TMPDIR")
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "/tmp".to_string());
    let fallback = Path::new(&tmp).join(format!("storage-run-{uid}"));
    make(&fallback);
    if owned_only_by(&fallback, env.euid()) {
        return Ok(fallback);
    }
    Err(ConfigError::RuntimeDir { path: fallback })
}

/// The default run root of a rootless user: `<runtime dir>/containers`.
pub fn rootless_run_root(env: &dyn Environment) -> Result<PathBuf, ConfigError> {
    Ok(runtime_dir(env)?.join("containers"))
}

/// The roots a command uses when flags name only some of them: the rootless defaults for a
/// rootless user, [`DEFAULT_GRAPH_ROOT`] and [`DEFAULT_RUN_ROOT`] otherwise.
pub fn default_roots(env: &dyn Environment) -> Result<(PathBuf, PathBuf), ConfigError> {
    if uses_per_user_storage(env) {
        Ok((rootless_graph_root(env)?, rootless_run_root(env)?))
    } else {
        Ok((DEFAULT_GRAPH_ROOT.into(), DEFAULT_RUN_ROOT.into()))
    }
}

/// Loads the default options as upstream does when no root, driver or option flag is given
/// (upstream's `types/options.go`). The system options come from the file named by
/// `CONTAINERS_STORAGE_CONF`, else `$XDG_CONFIG_HOME/containers/storage.conf`,
/// `/etc/containers/storage.conf`, `/usr/share/containers/storage.conf`, whichever exists first,
/// else the built-in `storage.toml`; then `STORAGE_DRIVER` and `STORAGE_OPTS` from the environment.
/// A rootless user (see [`uses_per_user_storage`]) gets the rootless roots and driver derived from
/// them ([`rootless_options`]), unless the user's own file (`CONTAINERS_STORAGE_CONF`, else
/// `$XDG_CONFIG_HOME/containers/storage.conf`, else `~/.config/containers/storage.conf`) exists:
/// then that file decides, with the rootless roots where it names none. `$UID` and environment
/// variables in the roots are expanded.
pub fn load_default_options() -> Result<LoadedConfig, ConfigError> {
    load_default_options_from(&ProcessEnvironment)
}

/// [`load_default_options`] with an explicit environment.
pub fn load_default_options_from(env: &dyn Environment) -> Result<LoadedConfig, ConfigError> {
    let system = match config_file_path(env) {
        Some(path) => load_file(&path, env)?,
        None => parse_config(BUILTIN_CONFIG, BUILTIN_CONFIG_NAME, env)?,
    };
    let mut loaded = if uses_per_user_storage(env) {
        let rootless = rootless_options(&system.options, env)?;
        match user_config_file(env).filter(|p| p.exists()) {
            Some(path) => {
                let mut user = load_file_without_defaults(&path, env)?;
                let opts = &mut user.options;
                if opts.run_root.as_os_str().is_empty() {
                    opts.run_root = rootless.run_root;
                }
                if opts.graph_root.as_os_str().is_empty() {
                    opts.graph_root = if opts.rootless_storage_path.is_empty() {
                        rootless.graph_root
                    } else {
                        opts.rootless_storage_path.clone().into()
                    };
                }
                user.warnings.splice(0..0, system.warnings);
                user
            }
            None => LoadedConfig {
                options: rootless,
                ..system
            },
        }
    } else {
        system
    };
    let uid = rootless_uid(env);
    let opts = &mut loaded.options;
    opts.run_root = expand_env_path(&opts.run_root.to_string_lossy(), uid, env);
    opts.graph_root = expand_env_path(&opts.graph_root.to_string_lossy(), uid, env);
    if !opts.rootless_storage_path.is_empty() {
        opts.rootless_storage_path = expand_env_path(&opts.rootless_storage_path, uid, env)
            .to_string_lossy()
            .into_owned();
    }
    Ok(loaded)
}

/// The configuration file of a rootless user (upstream's `DefaultConfigFile` for one).
pub fn user_config_file(env: &dyn Environment) -> Option<PathBuf> {
    if let Some(path) = env.var("CONTAINERS_STORAGE_CONF") {
        return Some(path.into());
    }
    if let Some(home) = env.var("XDG_CONFIG_HOME").filter(|h| !h.is_empty()) {
        return Some(Path::new(&home).join("containers/storage.conf"));
    }
    home_dir(env).map(|home| home.join(".config/containers/storage.conf"))
}

/// The drivers a rootless user may take from the system configuration.
const ROOTLESS_DRIVERS: &[&str] = &["btrfs", "overlay", "overlay2", "vfs"];

/// The options of a rootless user derived from the system's (upstream's
/// `getRootlessStorageOpts`): the rootless run root (made, `0700`) and graph root (the
/// system's `rootless_storage_path` if set), the system's driver if a rootless user can use
/// it (`STORAGE_DRIVER` wins), of the driver options only overlay's `ignore_chown_errors`,
/// then `STORAGE_OPTS` appended. Without a driver: the system's priority list, else the
/// driver whose `<driver>-images` the graph root holds, else overlay when it can serve a
/// rootless user, else vfs. The pull options and the `[plugins]` are kept.
pub fn rootless_options(
    system: &StoreOptions,
    env: &dyn Environment,
) -> Result<StoreOptions, ConfigError> {
    let uid = rootless_uid(env);
    let run_root = rootless_run_root(env)?;
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&run_root)
            .map_err(|source| ConfigError::MakeRunRoot {
                path: run_root.clone(),
                source,
            })?;
    }
    let graph_root = if system.rootless_storage_path.is_empty() {
        rootless_graph_root(env)?
    } else {
        expand_env_path(&system.rootless_storage_path, uid, env)
    };
    let mut opts = StoreOptions {
        run_root,
        graph_root,
        pull_options: system.pull_options.clone(),
        plugins: system.plugins.clone(),
        ..StoreOptions::default()
    };
    if ROOTLESS_DRIVERS.contains(&system.driver_name.as_str()) {
        opts.driver_name = system.driver_name.clone();
    }
    if let Some(driver) = env.var("STORAGE_DRIVER").filter(|d| !d.is_empty()) {
        opts.driver_name = driver;
    }
    if opts.driver_name == "overlay2" {
        opts.driver_name = "overlay".to_string();
    }
    if opts.driver_name == "overlay" {
        // Upstream keeps this one option: without it a rootless user with no subordinate
        // IDs could not apply layers owned by others.
        opts.driver_options.extend(
            system
                .driver_options
                .iter()
                .find(|o| o.contains("ignore_chown_errors"))
                .cloned(),
        );
    }
    if opts.driver_name.is_empty() {
        if system.driver_priority.is_empty() {
            opts.driver_name = driver_of_graph_root(&opts.graph_root).unwrap_or_else(|| {
                if env.can_use_rootless_overlay() {
                    "overlay".to_string()
                } else {
                    "vfs".to_string()
                }
            });
        } else {
            opts.driver_priority = system.driver_priority.clone();
        }
    }
    if let Some(env_opts) = env.var("STORAGE_OPTS").filter(|o| !o.is_empty()) {
        // Appended here, where the system file's replace them (upstream).
        opts.driver_options.extend(
            env_opts
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        );
    }
    Ok(opts)
}

/// The driver a graph root was used with: the first `<driver>-images` in it.
fn driver_of_graph_root(graph_root: &Path) -> Option<String> {
    let mut names: Vec<String> = std::fs::read_dir(graph_root)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    // Go's os.ReadDir sorts by name.
    names.sort();
    names
        .into_iter()
        .find_map(|n| n.strip_suffix("-images").map(str::to_string))
}

/// Upstream's `expandEnvPath`: `$UID` becomes the rootless UID, then `$VAR` and `${VAR}`
/// expand from the environment (unset: empty), then symbolic links are resolved, or the path
/// is cleaned lexically when it does not exist.
pub fn expand_env_path(path: &str, uid: u32, env: &dyn Environment) -> PathBuf {
    let replaced = path.replace("$UID", &uid.to_string());
    let expanded = expand_env(&replaced, env);
    if expanded.is_empty() {
        return PathBuf::new();
    }
    std::fs::canonicalize(&expanded).unwrap_or_else(|_| clean(&expanded))
}

/// Go's `os.ExpandEnv`, for names of letters, digits and underscores.
fn expand_env(text: &str, env: &dyn Environment) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
        if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => {
                    out.push_str(&env.var(&braced[..end]).unwrap_or_default());
                    rest = &braced[end + 1..];
                }
                None => {
                    // Go eats the bad syntax.
                    rest = "";
                }
            }
            continue;
        }
        let len = after.find(|c: char| !is_name(c)).unwrap_or(after.len());
        if len == 0 {
            out.push('$');
        } else {
            out.push_str(&env.var(&after[..len]).unwrap_or_default());
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

/// Go's `filepath.Clean` for the shapes configuration paths take.
fn clean(path: &str) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for component in Path::new(path).components() {
        match component {
            Component::ParentDir => {
                if !out.pop() && !path.starts_with('/') {
                    out.push("..");
                }
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        out
    }
}

/// The system configuration file that applies, or `None` for the built-in default.
pub fn config_file_path(env: &dyn Environment) -> Option<PathBuf> {
    if let Some(path) = env.var("CONTAINERS_STORAGE_CONF") {
        // Named explicitly: it must exist, so a typo is an error rather than a silent default.
        return Some(PathBuf::from(path));
    }
    let mut candidates = Vec::new();
    if let Some(home) = env.var("XDG_CONFIG_HOME").filter(|h| !h.is_empty()) {
        candidates.push(Path::new(&home).join("containers/storage.conf"));
    }
    candidates.extend(env.system_config_files());
    candidates.into_iter().find(|p| p.exists())
}

/// Reads and resolves one configuration file.
pub fn load_file(path: &Path, env: &dyn Environment) -> Result<LoadedConfig, ConfigError> {
    let text = fs_err::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_config(&text, &path.to_string_lossy(), env)
}

/// [`load_file`] without the default roots where the file names none.
fn load_file_without_defaults(
    path: &Path,
    env: &dyn Environment,
) -> Result<LoadedConfig, ConfigError> {
    let text = fs_err::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_config_without_defaults(&text, &path.to_string_lossy(), env)
}

/// Resolves the text of a configuration file into store options (upstream's
/// `ReloadConfigurationFile`). `source` names the file in messages.
pub fn parse_config(
    text: &str,
    source: &str,
    env: &dyn Environment,
) -> Result<LoadedConfig, ConfigError> {
    let mut loaded = parse_config_without_defaults(text, source, env)?;
    let opts = &mut loaded.options;
    if opts.graph_root.as_os_str().is_empty() {
        opts.graph_root = DEFAULT_GRAPH_ROOT.into();
    }
    if opts.run_root.as_os_str().is_empty() {
        opts.run_root = DEFAULT_RUN_ROOT.into();
    }
    Ok(loaded)
}

/// [`parse_config`] leaving the roots empty where the file names none.
fn parse_config_without_defaults(
    text: &str,
    source: &str,
    env: &dyn Environment,
) -> Result<LoadedConfig, ConfigError> {
    let parse_err = |message: String| ConfigError::Parse {
        path: source.to_string(),
        message: first_line(&message).to_string(),
    };
    let root: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Toml {
            path: source.to_string(),
            source: e,
        })?;
    let mut reader = TableReader {
        unknown_keys: Vec::new(),
        source,
    };
    let mut opts = StoreOptions::default();

    let empty = toml::Table::new();
    for key in root.keys().filter(|k| *k != "storage" && *k != "plugins") {
        reader.unknown(key);
    }
    let storage = match root.get("storage") {
        Some(v) => v
            .as_table()
            .ok_or_else(|| parse_err("[storage] must be a table".into()))?,
        None => &empty,
    };

    let mut driver = String::new();
    let mut options_table = &empty;
    for (key, value) in storage {
        match key.as_str() {
            "driver" => driver = reader.string("storage.driver", value)?,
            "driver_priority" => {
                opts.driver_priority = reader.strings("storage.driver_priority", value)?
            }
            "graphroot" => opts.graph_root = reader.string("storage.graphroot", value)?.into(),
            "runroot" => opts.run_root = reader.string("storage.runroot", value)?.into(),
            "imagestore" => {
                let s = reader.string("storage.imagestore", value)?;
                opts.image_store = (!s.is_empty()).then(|| s.into());
            }
            "rootless_storage_path" => {
                opts.rootless_storage_path =
                    reader.string("storage.rootless_storage_path", value)?
            }
            "transient_store" => {
                opts.transient_store = reader.boolean("storage.transient_store", value)?
            }
            "options" => {
                options_table = value
                    .as_table()
                    .ok_or_else(|| parse_err("[storage.options] must be a table".into()))?
            }
            other => reader.unknown(&format!("storage.{other}")),
        }
    }

    if let Some(d) = env.var("STORAGE_DRIVER").filter(|d| !d.is_empty()) {
        driver = d;
    }
    if driver == "overlay2" {
        driver = "overlay".to_string();
    }
    opts.driver_name = driver.clone();
    opts.driver_options = reader.driver_options(&driver, options_table, &mut opts)?;
    if let Some(env_opts) = env.var("STORAGE_OPTS") {
        // Upstream replaces (not extends) the configured options with STORAGE_OPTS.
        opts.driver_options = env_opts
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
    }

    if let Some(plugins) = root.get("plugins") {
        let plugins = plugins
            .as_table()
            .ok_or_else(|| parse_err("[plugins] must be a table".into()))?;
        for (name, value) in plugins {
            opts.plugins
                .insert(name.clone(), reader.plugin(name, value)?);
        }
    }

    Ok(LoadedConfig {
        options: opts,
        source: source.to_string(),
        warnings: reader.warnings(),
    })
}

/// Typed access to TOML values with upstream-style messages, collecting unknown keys.
struct TableReader<'a> {
    unknown_keys: Vec<String>,
    source: &'a str,
}

/// The keys of `[storage.options]` that are legacy top-level forms of driver options.
const LEGACY_DRIVER_KEYS: &[&str] = &[
    "size",
    "mount_program",
    "skip_mount_home",
    "ignore_chown_errors",
    "force_mask",
    "mountopt",
];

/// The per-driver tables of `[storage.options.<driver>]` and the keys each accepts.
const DRIVER_TABLE_KEYS: &[(&str, &[&str])] = &[
    (
        "overlay",
        &[
            "mountopt",
            "mount_program",
            "size",
            "inodes",
            "skip_mount_home",
            "ignore_chown_errors",
            "force_mask",
            "use_composefs",
            // Ours: where apply-diff, diff and changes run, and the component's limits.
            "archive",
            "archive_memory_limit",
            "archive_deadline_ms",
        ],
    ),
    ("vfs", &["ignore_chown_errors"]),
    (
        "btrfs",
        &[
            "min_space",
            "size",
            // Ours, as for overlay.
            "archive",
            "archive_memory_limit",
            "archive_deadline_ms",
        ],
    ),
    ("zfs", &["mountopt", "fsname", "size"]),
    ("aufs", &["mountopt"]),
    ("thinpool", &[]),
];

impl TableReader<'_> {
    fn err(&self, message: String) -> ConfigError {
        ConfigError::Parse {
            path: self.source.to_string(),
            message,
        }
    }

    fn unknown(&mut self, key: &str) {
        self.unknown_keys.push(key.to_string());
    }

    /// The file's warnings: upstream's one line naming every key it did not decode, quoted
    /// and space-separated as Go's `%q` prints a list of strings.
    fn warnings(&self) -> Vec<String> {
        if self.unknown_keys.is_empty() {
            return Vec::new();
        }
        let keys: Vec<String> = self.unknown_keys.iter().map(|k| format!("{k:?}")).collect();
        vec![format!(
            "Failed to decode the keys [{}] from {:?}",
            keys.join(" "),
            self.source
        )]
    }

    fn string(&self, key: &str, v: &toml::Value) -> Result<String, ConfigError> {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| self.err(format!("{key} must be a string")))
    }

    /// A value that upstream keeps as a string but people write as a bool or number too.
    fn scalar(&self, key: &str, v: &toml::Value) -> Result<String, ConfigError> {
        match v {
            toml::Value::String(s) => Ok(s.clone()),
            toml::Value::Boolean(b) => Ok(b.to_string()),
            toml::Value::Integer(i) => Ok(i.to_string()),
            _ => Err(self.err(format!("{key} must be a string"))),
        }
    }

    fn boolean(&self, key: &str, v: &toml::Value) -> Result<bool, ConfigError> {
        v.as_bool()
            .ok_or_else(|| self.err(format!("{key} must be a boolean")))
    }

    fn unsigned(&self, key: &str, v: &toml::Value) -> Result<u64, ConfigError> {
        v.as_integer()
            .and_then(|i| u64::try_from(i).ok())
            .ok_or_else(|| self.err(format!("{key} must be a non-negative integer")))
    }

    fn strings(&self, key: &str, v: &toml::Value) -> Result<Vec<String>, ConfigError> {
        let arr = v
            .as_array()
            .ok_or_else(|| self.err(format!("{key} must be a list of strings")))?;
        arr.iter().map(|item| self.string(key, item)).collect()
    }

    /// `force_mask` is an octal number in upstream's struct; accept `"0755"`, `755` or the
    /// names `shared`/`private` as strings.
    fn force_mask(&self, key: &str, v: &toml::Value) -> Result<String, ConfigError> {
        match v {
            toml::Value::Integer(i) => Ok(format!("{i:o}")),
            _ => self.scalar(key, v),
        }
    }

    /// Turns `[storage.options]` into `<driver>.<key>=<value>` strings, as upstream's
    /// `ReloadConfigurationFile` and `GetGraphDriverOptions` do.
    fn driver_options(
        &mut self,
        driver: &str,
        table: &toml::Table,
        opts: &mut StoreOptions,
    ) -> Result<Vec<String>, ConfigError> {
        let mut out = Vec::new();
        let mut per_driver = Vec::new();
        for (key, value) in table {
            let full = format!("storage.options.{key}");
            match key.as_str() {
                "additionalimagestores" => {
                    for s in self.strings(&full, value)? {
                        out.push(format!("{driver}.imagestore={s}"));
                    }
                }
                "additionallayerstores" => {
                    for s in self.strings(&full, value)? {
                        out.push(format!("{driver}.additionallayerstore={s}"));
                    }
                }
                k if LEGACY_DRIVER_KEYS.contains(&k) => {
                    let v = if k == "force_mask" {
                        self.force_mask(&full, value)?
                    } else {
                        self.scalar(&full, value)?
                    };
                    if !v.is_empty() {
                        out.push(format!("{driver}.{k}={v}"));
                    }
                }
                "pull_options" => {
                    let t = value
                        .as_table()
                        .ok_or_else(|| self.err(format!("{full} must be a table")))?;
                    for (k, v) in t {
                        opts.pull_options
                            .insert(k.clone(), self.scalar(&format!("{full}.{k}"), v)?);
                    }
                }
                "disable-volatile" => opts.disable_volatile = self.boolean(&full, value)?,
                "root-auto-userns-user" => opts.root_auto_ns_user = self.string(&full, value)?,
                "auto-userns-min-size" => {
                    opts.auto_ns_min_size = u32::try_from(self.unsigned(&full, value)?)
                        .map_err(|_| self.err(format!("{full} is too large")))?
                }
                "auto-userns-max-size" => {
                    opts.auto_ns_max_size = u32::try_from(self.unsigned(&full, value)?)
                        .map_err(|_| self.err(format!("{full} is too large")))?
                }
                // Accepted by upstream's parser; ID remapping from the config is not applied
                // by the CLI, so they are read and kept out of the driver options.
                "remap-uids" | "remap-gids" | "remap-user" | "remap-group" => {
                    self.scalar(&full, value)?;
                }
                name => match DRIVER_TABLE_KEYS.iter().find(|(d, _)| *d == name) {
                    Some((d, keys)) => {
                        let t = value
                            .as_table()
                            .ok_or_else(|| self.err(format!("{full} must be a table")))?;
                        per_driver.push((*d, *keys, t));
                    }
                    None => self.unknown(&full),
                },
            }
        }
        // Only the table of the configured driver turns into options, like upstream.
        for (d, keys, table) in per_driver {
            for (key, value) in table {
                let full = format!("storage.options.{d}.{key}");
                if !keys.contains(&key.as_str()) {
                    self.unknown(&full);
                    continue;
                }
                if d != driver {
                    continue;
                }
                let v = if key == "force_mask" {
                    self.force_mask(&full, value)?
                } else {
                    self.scalar(&full, value)?
                };
                if !v.is_empty() {
                    out.push(format!("{d}.{key}={v}"));
                }
            }
        }
        Ok(out)
    }

    fn plugin(&mut self, name: &str, value: &toml::Value) -> Result<PluginConfig, ConfigError> {
        let table = value
            .as_table()
            .ok_or_else(|| self.err(format!("[plugins.{name}] must be a table")))?;
        let mut plugin = PluginConfig::default();
        for (key, v) in table {
            let full = format!("plugins.{name}.{key}");
            match key.as_str() {
                "component" => plugin.component = self.string(&full, v)?.into(),
                "memory_limit" => plugin.memory_limit = Some(self.unsigned(&full, v)?),
                "deadline_ms" => plugin.deadline_ms = Some(self.unsigned(&full, v)?),
                _ => self.unknown(&full),
            }
        }
        if plugin.component.as_os_str().is_empty() {
            return Err(self.err(format!("[plugins.{name}] needs `component`")));
        }
        Ok(plugin)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Root's environment with the given variables and no system files.
    struct FakeEnv(Vec<(&'static str, &'static str)>);

    impl Environment for FakeEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
        fn uid(&self) -> u32 {
            0
        }
        fn euid(&self) -> u32 {
            0
        }
        fn passwd_home(&self, _uid: u32) -> Option<PathBuf> {
            None
        }
        fn system_config_files(&self) -> Vec<PathBuf> {
            Vec::new()
        }
        fn run_user_dir(&self) -> PathBuf {
            PathBuf::from("/nonexistent/run/user")
        }
        fn can_use_rootless_overlay(&self) -> bool {
            true
        }
    }

    fn parse(text: &str, env: &[(&'static str, &'static str)]) -> LoadedConfig {
        parse_config(text, "test.toml", &FakeEnv(env.to_vec())).expect("valid config")
    }

    #[test]
    fn builtin_config_parses_without_warnings() {
        let c = parse(BUILTIN_CONFIG, &[]);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(c.options.driver_name, "overlay");
        assert_eq!(c.options.graph_root, Path::new(DEFAULT_GRAPH_ROOT));
        assert_eq!(c.options.run_root, Path::new(DEFAULT_RUN_ROOT));
    }

    #[test]
    fn driver_options_follow_upstream_mapping() {
        let c = parse(
            r#"
            [storage]
            driver = "overlay2"
            graphroot = "/g"
            runroot = "/r"
            [storage.options]
            additionalimagestores = ["/ro1", "/ro2"]
            size = "10G"
            force_mask = 0o700
            [storage.options.overlay]
            mountopt = "nodev,metacopy=on"
            skip_mount_home = true
            [storage.options.btrfs]
            min_space = "1G"
            "#,
            &[],
        );
        assert_eq!(c.options.driver_name, "overlay");
        assert_eq!(
            c.options.driver_options,
            vec![
                "overlay.imagestore=/ro1",
                "overlay.imagestore=/ro2",
                "overlay.force_mask=700",
                "overlay.size=10G",
                "overlay.mountopt=nodev,metacopy=on",
                "overlay.skip_mount_home=true",
            ]
        );
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn the_archive_switch_becomes_a_btrfs_option_too() {
        let c = parse(
            "[storage]\ndriver = \"btrfs\"\n[storage.options.btrfs]\narchive = \"native\"\n",
            &[],
        );
        assert_eq!(c.options.driver_options, vec!["btrfs.archive=native"]);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn the_archive_switch_and_limits_become_overlay_options() {
        let c = parse(
            r#"
            [storage]
            driver = "overlay"
            [storage.options.overlay]
            archive = "native"
            archive_memory_limit = "64m"
            archive_deadline_ms = 5000
            "#,
            &[],
        );
        assert_eq!(
            c.options.driver_options,
            vec![
                "overlay.archive=native",
                "overlay.archive_deadline_ms=5000",
                "overlay.archive_memory_limit=64m",
            ]
        );
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn environment_overrides_driver_and_replaces_options() {
        let c = parse(
            "[storage]\ndriver = \"overlay\"\n[storage.options.overlay]\nmountopt = \"nodev\"\n",
            &[
                ("STORAGE_DRIVER", "vfs"),
                ("STORAGE_OPTS", "vfs.ignore_chown_errors=true,"),
            ],
        );
        assert_eq!(c.options.driver_name, "vfs");
        assert_eq!(
            c.options.driver_options,
            vec!["vfs.ignore_chown_errors=true"]
        );
    }

    #[test]
    fn unknown_keys_are_warnings_not_errors() {
        let c = parse(
            "[storage]\nbogus = 1\n[storage.options]\nnope = \"x\"\n",
            &[],
        );
        assert_eq!(
            c.warnings,
            [
                r#"Failed to decode the keys ["storage.bogus" "storage.options.nope"] from "test.toml""#
            ],
        );
    }

    #[test]
    fn wrong_types_and_bad_toml_are_one_line_errors() {
        let env = FakeEnv(vec![]);
        let e = parse_config("[storage]\ndriver = 3\n", "f", &env).expect_err("type error");
        assert_eq!(
            e.to_string(),
            "parsing configuration file f: storage.driver must be a string"
        );
        let e = parse_config("[storage\n", "f", &env).expect_err("syntax error");
        assert!(!e.to_string().contains('\n'), "{e}");
        assert!(
            e.to_string().starts_with("parsing configuration file f: "),
            "{e}"
        );
        let source = std::error::Error::source(&e).expect("the parser's error is kept");
        assert!(source.is::<toml::de::Error>(), "{source:?}");
    }

    #[test]
    fn plugins_are_read() {
        let c = parse(
            "[plugins.mydrv]\ncomponent = \"/opt/mydrv.wasm\"\nmemory_limit = 1048576\n",
            &[],
        );
        let p = &c.options.plugins["mydrv"];
        assert_eq!(p.component, Path::new("/opt/mydrv.wasm"));
        assert_eq!(p.memory_limit, Some(1 << 20));
        assert!(parse_config("[plugins.x]\n", "f", &FakeEnv(vec![])).is_err());
    }

    #[test]
    fn explicit_config_path_wins_and_missing_file_is_an_error() {
        let env = FakeEnv(vec![(
            "CONTAINERS_STORAGE_CONF",
            "/nonexistent/storage.toml",
        )]);
        assert_eq!(
            config_file_path(&env),
            Some(PathBuf::from("/nonexistent/storage.toml"))
        );
        let e = load_default_options_from(&env).expect_err("missing file");
        assert!(e.to_string().contains("/nonexistent/storage.toml"));
    }

    #[test]
    fn go_json_has_upstream_keys() {
        let c = parse(BUILTIN_CONFIG, &[]);
        let text = crate::gojson::to_string(&c.options.to_go_json());
        assert!(
            text.starts_with(r#"{"runroot":"/run/containers/storage","root":"#),
            "{text}"
        );
        let v: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(v["driver"], "overlay");
        assert_eq!(v["root"], DEFAULT_GRAPH_ROOT);
        assert_eq!(v["runroot"], DEFAULT_RUN_ROOT);
        assert_eq!(v["RootlessStoragePath"], "");
        assert!(v["PullOptions"].is_null());
    }

    /// A rootless user's environment: variables, UIDs, system files and `/run/user` all
    /// injected (the directories live in a temporary directory).
    struct UserEnv {
        vars: Vec<(String, String)>,
        uid: u32,
        euid: u32,
        system_files: Vec<PathBuf>,
        run_user: PathBuf,
        overlay: bool,
    }

    impl UserEnv {
        /// User 1000 with HOME and XDG_RUNTIME_DIR in `dir`; the effective UID is the test's
        /// (root), as in a user namespace, so that the directories it makes are "its own".
        fn new(dir: &Path) -> UserEnv {
            let env = UserEnv {
                vars: Vec::new(),
                uid: 1000,
                euid: rustix::process::geteuid().as_raw(),
                system_files: vec![dir.join("etc.conf"), dir.join("usr.conf")],
                run_user: dir.join("run/user"),
                overlay: true,
            };
            env.with("HOME", &dir.join("home").display().to_string())
                .with(
                    "XDG_RUNTIME_DIR",
                    &dir.join("xdg-run").display().to_string(),
                )
        }

        fn with(mut self, name: &str, value: &str) -> UserEnv {
            self.vars.retain(|(k, _)| k != name);
            self.vars.push((name.to_string(), value.to_string()));
            self
        }

        fn without(mut self, name: &str) -> UserEnv {
            self.vars.retain(|(k, _)| k != name);
            self
        }
    }

    impl Environment for UserEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.vars
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
        fn uid(&self) -> u32 {
            self.uid
        }
        fn euid(&self) -> u32 {
            self.euid
        }
        fn passwd_home(&self, uid: u32) -> Option<PathBuf> {
            Some(PathBuf::from(format!("/passwd/home/{uid}")))
        }
        fn system_config_files(&self) -> Vec<PathBuf> {
            self.system_files.clone()
        }
        fn run_user_dir(&self) -> PathBuf {
            self.run_user.clone()
        }
        fn can_use_rootless_overlay(&self) -> bool {
            self.overlay
        }
    }

    /// Debian's /usr/share/containers/storage.conf, trimmed.
    const DEBIAN_CONF: &str = r#"
        [storage]
        driver = "overlay"
        runroot = "/run/containers/storage"
        graphroot = "/var/lib/containers/storage"
        [storage.options]
        pull_options = {enable_partial_images = "false", use_hard_links = "false"}
        [storage.options.overlay]
        mountopt = "nodev"
        ignore_chown_errors = "true"
    "#;

    #[test]
    fn a_rootless_user_gets_the_xdg_paths_and_only_ignore_chown_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("usr.conf"), DEBIAN_CONF).unwrap();
        let env = UserEnv::new(dir.path());
        let c = load_default_options_from(&env).expect("loads");
        let o = &c.options;
        assert_eq!(
            o.graph_root,
            dir.path().join("home/.local/share/containers/storage")
        );
        assert_eq!(o.run_root, dir.path().join("xdg-run/containers"));
        let run_root = std::fs::metadata(&o.run_root).expect("the run root is made");
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&run_root.permissions()) & 0o777,
            0o700
        );
        assert_eq!(o.driver_name, "overlay");
        assert_eq!(o.driver_options, ["overlay.ignore_chown_errors=true"]);
        assert_eq!(o.pull_options["use_hard_links"], "false");
        assert_eq!(o.rootless_storage_path, "");
        assert_eq!(c.source, dir.path().join("usr.conf").display().to_string());

        // XDG_DATA_HOME moves the graph root; the password database stands in for HOME.
        let env = UserEnv::new(dir.path())
            .with("XDG_DATA_HOME", "/data")
            .with("STORAGE_DRIVER", "vfs")
            .with("STORAGE_OPTS", "vfs.ignore_chown_errors=true");
        let o = load_default_options_from(&env).expect("loads").options;
        assert_eq!(o.graph_root, Path::new("/data/containers/storage"));
        assert_eq!(o.driver_name, "vfs");
        // Appended to the (here no) kept options rather than replacing them.
        assert_eq!(o.driver_options, ["vfs.ignore_chown_errors=true"]);
        let env = UserEnv::new(dir.path()).without("HOME");
        let o = load_default_options_from(&env).expect("loads").options;
        assert_eq!(
            o.graph_root,
            Path::new("/passwd/home/1000/.local/share/containers/storage")
        );
    }

    #[test]
    fn rootless_storage_path_is_the_graph_root_with_uid_and_variables_expanded() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("etc.conf"),
            "[storage]\ndriver = \"overlay\"\nrootless_storage_path = \"$HOME/stores/$UID/${NAME}\"\n",
        )
        .unwrap();
        // A later system file is not read when an earlier one exists.
        std::fs::write(
            dir.path().join("usr.conf"),
            "[storage]\ndriver = \"btrfs\"\n",
        )
        .unwrap();
        let env = UserEnv::new(dir.path()).with("NAME", "mine");
        let o = load_default_options_from(&env).expect("loads").options;
        assert_eq!(o.graph_root, dir.path().join("home/stores/1000/mine"));
        assert_eq!(o.driver_name, "overlay");
        assert_eq!(o.rootless_storage_path, "");
    }

    #[test]
    fn the_users_own_file_decides_with_rootless_roots_where_it_names_none() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("usr.conf"), DEBIAN_CONF).unwrap();
        let user_conf = dir.path().join("home/.config/containers/storage.conf");
        std::fs::create_dir_all(user_conf.parent().unwrap()).unwrap();
        std::fs::write(
            &user_conf,
            "[storage]\ndriver = \"vfs\"\n[storage.options.vfs]\nignore_chown_errors = \"true\"\n",
        )
        .unwrap();
        let env = UserEnv::new(dir.path());
        let c = load_default_options_from(&env).expect("loads");
        assert_eq!(c.source, user_conf.display().to_string());
        let o = &c.options;
        assert_eq!(o.driver_name, "vfs");
        assert_eq!(o.driver_options, ["vfs.ignore_chown_errors=true"]);
        assert_eq!(
            o.graph_root,
            dir.path().join("home/.local/share/containers/storage")
        );
        assert_eq!(o.run_root, dir.path().join("xdg-run/containers"));

        std::fs::write(
            &user_conf,
            "[storage]\ndriver = \"vfs\"\nrootless_storage_path = \"/elsewhere/$UID\"\n",
        )
        .unwrap();
        let o = load_default_options_from(&env).expect("loads").options;
        assert_eq!(o.graph_root, Path::new("/elsewhere/1000"));

        // XDG_CONFIG_HOME names the user's file (and is the system one too when it exists).
        let xdg = dir.path().join("xdg-config");
        std::fs::create_dir_all(xdg.join("containers")).unwrap();
        std::fs::write(
            xdg.join("containers/storage.conf"),
            "[storage]\ndriver = \"btrfs\"\ngraphroot = \"/g\"\nrunroot = \"/r\"\n",
        )
        .unwrap();
        let env = UserEnv::new(dir.path()).with("XDG_CONFIG_HOME", &xdg.display().to_string());
        let o = load_default_options_from(&env).expect("loads").options;
        assert_eq!(
            (
                o.driver_name.as_str(),
                o.graph_root.as_path(),
                o.run_root.as_path()
            ),
            ("btrfs", Path::new("/g"), Path::new("/r"))
        );
    }

    #[test]
    fn the_runtime_dir_falls_back_to_run_user_then_tmp() {
        let dir = tempfile::tempdir().unwrap();
        let env = UserEnv::new(dir.path())
            .without("XDG_RUNTIME_DIR")
            .with("TMPDIR", &dir.path().join("tmp").display().to_string());
        // /run/user/1000 is made, and is ours alone.
        assert_eq!(runtime_dir(&env).unwrap(), dir.path().join("run/user/1000"));
        // Writable by others: not used; $TMPDIR/storage-run-UID is.
        std::fs::set_permissions(
            dir.path().join("run/user/1000"),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .unwrap();
        assert_eq!(
            runtime_dir(&env).unwrap(),
            dir.path().join("tmp/storage-run-1000")
        );
        // Owned by someone else: an error naming it.
        let env = UserEnv { euid: 4321, ..env };
        let e = runtime_dir(&env).expect_err("nothing usable");
        assert!(e.to_string().contains("storage-run-1000"), "{e}");
        // In a user namespace, the UID is the one the re-exec recorded.
        let env = UserEnv::new(dir.path())
            .with(ROOTLESS_UID_ENV, "1234")
            .with("TMPDIR", &dir.path().join("tmp").display().to_string())
            .without("XDG_RUNTIME_DIR");
        let env = UserEnv { uid: 0, ..env };
        assert!(uses_per_user_storage(&env));
        assert_eq!(runtime_dir(&env).unwrap(), dir.path().join("run/user/1234"));
    }

    #[test]
    fn a_rootless_driver_is_picked_when_none_is_configured() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("usr.conf"), "[storage]\n").unwrap();
        let env = UserEnv::new(dir.path());
        assert_eq!(
            load_default_options_from(&env).unwrap().options.driver_name,
            "overlay"
        );
        let env = UserEnv {
            overlay: false,
            ..UserEnv::new(dir.path())
        };
        assert_eq!(
            load_default_options_from(&env).unwrap().options.driver_name,
            "vfs"
        );
        // The store's own driver, by its `<driver>-images`.
        let graph = dir.path().join("home/.local/share/containers/storage");
        std::fs::create_dir_all(graph.join("btrfs-images")).unwrap();
        assert_eq!(
            load_default_options_from(&env).unwrap().options.driver_name,
            "btrfs"
        );
        // A priority list is passed on instead; a driver a rootless user cannot use is not.
        std::fs::write(
            dir.path().join("usr.conf"),
            "[storage]\ndriver_priority = [\"vfs\", \"overlay\"]\n",
        )
        .unwrap();
        let o = load_default_options_from(&env).unwrap().options;
        assert_eq!((o.driver_name.as_str(), o.driver_priority.len()), ("", 2));
        std::fs::write(dir.path().join("usr.conf"), "[storage]\ndriver = \"zfs\"\n").unwrap();
        assert_eq!(
            load_default_options_from(&env).unwrap().options.driver_name,
            "btrfs"
        );
    }

    #[test]
    fn root_keeps_the_system_paths_and_flags_fall_back_to_the_rootless_roots() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("usr.conf"), DEBIAN_CONF).unwrap();
        let root = UserEnv {
            uid: 0,
            ..UserEnv::new(dir.path())
        };
        let o = load_default_options_from(&root).unwrap().options;
        assert_eq!(o.graph_root, Path::new(DEFAULT_GRAPH_ROOT));
        assert_eq!(
            o.driver_options,
            ["overlay.ignore_chown_errors=true", "overlay.mountopt=nodev"]
        );
        assert_eq!(
            default_roots(&root).unwrap(),
            (DEFAULT_GRAPH_ROOT.into(), DEFAULT_RUN_ROOT.into())
        );
        // Root re-executed in a user namespace by itself stays root.
        let root_in_userns = root
            .with(USERNS_CONFIGURED_ENV, "done")
            .with(ROOTLESS_UID_ENV, "0");
        assert!(!uses_per_user_storage(&root_in_userns));
        let user = UserEnv::new(dir.path());
        assert_eq!(
            default_roots(&user).unwrap(),
            (
                dir.path().join("home/.local/share/containers/storage"),
                dir.path().join("xdg-run/containers")
            )
        );
    }

    #[test]
    fn env_paths_expand_as_go_does() {
        let env = FakeEnv(vec![("HOME", "/home/u"), ("A_1", "x")]);
        assert_eq!(expand_env("$HOME/a/${A_1}/$A_1-$", &env), "/home/u/a/x/x-$");
        assert_eq!(expand_env("$NOPE/b", &env), "/b");
        assert_eq!(
            expand_env_path("/nonexistent/$UID/../c/./d/", 7, &env),
            Path::new("/nonexistent/c/d")
        );
        assert!(kernel_at_least("6.18.44-fc-v1252", (5, 13)));
        assert!(kernel_at_least("5.13.0", (5, 13)));
        assert!(!kernel_at_least("5.4.0-100-generic", (5, 13)));
        assert!(!kernel_at_least("", (5, 13)));
    }
}
