//! Store options: the roots, driver and driver options a store opens with, resolved from
//! `storage.toml` (the TOML format of containers' `storage.conf`), the environment and the
//! built-in default (spec §6).
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

/// Errors of configuration loading.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A configuration file could not be read.
    #[error("reading configuration file {path}: {source}")]
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
}

/// The real process environment.
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// Loads the default options as upstream does when no root, driver or option flag is given
/// (spec §6.1): the file named by `CONTAINERS_STORAGE_CONF`, else
/// `$XDG_CONFIG_HOME/containers/storage.conf`, `/etc/containers/storage.conf`,
/// `/usr/share/containers/storage.conf`, whichever exists first, else the built-in
/// `storage.toml`; then `STORAGE_DRIVER` and `STORAGE_OPTS` from the environment.
pub fn load_default_options() -> Result<LoadedConfig, ConfigError> {
    load_default_options_from(&ProcessEnvironment)
}

/// [`load_default_options`] with an explicit environment.
pub fn load_default_options_from(env: &dyn Environment) -> Result<LoadedConfig, ConfigError> {
    match config_file_path(env) {
        Some(path) => load_file(&path, env),
        None => parse_config(BUILTIN_CONFIG, BUILTIN_CONFIG_NAME, env),
    }
}

/// The configuration file that applies, or `None` for the built-in default.
pub fn config_file_path(env: &dyn Environment) -> Option<PathBuf> {
    if let Some(path) = env.var("CONTAINERS_STORAGE_CONF") {
        // Named explicitly: it must exist, so a typo is an error rather than a silent default.
        return Some(PathBuf::from(path));
    }
    let mut candidates = Vec::new();
    if let Some(home) = env.var("XDG_CONFIG_HOME").filter(|h| !h.is_empty()) {
        candidates.push(Path::new(&home).join("containers/storage.conf"));
    }
    candidates.push(PathBuf::from("/etc/containers/storage.conf"));
    candidates.push(PathBuf::from("/usr/share/containers/storage.conf"));
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

/// Resolves the text of a configuration file into store options (upstream's
/// `ReloadConfigurationFile`). `source` names the file in messages.
pub fn parse_config(
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
        warnings: Vec::new(),
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

    if opts.graph_root.as_os_str().is_empty() {
        opts.graph_root = DEFAULT_GRAPH_ROOT.into();
    }
    if opts.run_root.as_os_str().is_empty() {
        opts.run_root = DEFAULT_RUN_ROOT.into();
    }
    Ok(LoadedConfig {
        options: opts,
        source: source.to_string(),
        warnings: reader.warnings,
    })
}

/// Typed access to TOML values with upstream-style messages, collecting unknown keys.
struct TableReader<'a> {
    warnings: Vec<String>,
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
        self.warnings.push(format!(
            "Failed to decode the keys [{key:?}] from {:?}",
            self.source
        ));
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
    use super::*;

    struct FakeEnv(Vec<(&'static str, &'static str)>);

    impl Environment for FakeEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
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
        assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
        assert!(c.warnings[0].contains("storage.bogus"));
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
}
