//! The store options a command runs with (upstream's `cmd/containers-storage/main.go` and
//! `types/options.go`).
//!
//! When none of `--graph`, `--run`, `--storage-driver` and `--storage-opt` is given, the
//! configuration file and environment decide everything. When any is given, the
//! configuration file and `STORAGE_DRIVER`/`STORAGE_OPTS` are ignored for all four (spec
//! quirk 9), and a missing root is the built-in default.

use std::path::{Component, Path, PathBuf};

use storage_store::config::{self, ConfigError, StoreOptions};

use crate::flags::FlagValues;

/// Whether any of the four flags that bypass the configuration has a non-empty value
/// (upstream tests the resulting strings, so `--graph ""` counts as not given).
pub fn bypasses_config(flags: &FlagValues) -> bool {
    ["graph", "run", "storage-driver"]
        .iter()
        .any(|k| !flags.value_or_empty(k).is_empty())
        || !flags.list("storage-opt").is_empty()
}

/// Whether the command line changes the options the configuration gives: one of the flags of
/// [`bypasses_config`], `--image-store` or `--transient-store`. `config` then prints the
/// options the command runs with instead of the configuration's.
pub fn changes_options(flags: &FlagValues) -> bool {
    bypasses_config(flags)
        || flags.value("image-store").is_some_and(|v| !v.is_empty())
        || flags.bool("transient-store")
}

/// Resolves the options from the flags, loading the configuration with `load_default`
/// only when no flag bypasses it; when one does, a root the flags do not name is the
/// user's default from `default_roots` (graph root, run root: root's or a rootless user's).
/// Relative roots are made absolute against `cwd`.
pub fn resolve(
    flags: &FlagValues,
    cwd: &Path,
    load_default: impl FnOnce() -> Result<StoreOptions, ConfigError>,
    default_roots: impl FnOnce() -> Result<(PathBuf, PathBuf), ConfigError>,
) -> Result<StoreOptions, ConfigError> {
    let mut opts = if bypasses_config(flags) {
        let non_empty = |k: &str| Some(flags.value_or_empty(k)).filter(|v| !v.is_empty());
        let (graph_root, run_root) = match (non_empty("graph"), non_empty("run")) {
            (Some(graph), Some(run)) => (PathBuf::from(graph), PathBuf::from(run)),
            (graph, run) => {
                let (default_graph, default_run) = default_roots()?;
                (
                    graph.map_or(default_graph, PathBuf::from),
                    run.map_or(default_run, PathBuf::from),
                )
            }
        };
        StoreOptions {
            graph_root,
            run_root,
            driver_name: non_empty("storage-driver").unwrap_or_default().to_string(),
            driver_options: flags.list("storage-opt").to_vec(),
            ..Default::default()
        }
    } else {
        load_default()?
    };
    if let Some(image_store) = flags.value("image-store").filter(|v| !v.is_empty()) {
        opts.image_store = Some(absolute(Path::new(image_store), cwd));
    }
    if flags.bool("transient-store") {
        opts.transient_store = true;
    }
    // "overlay2" is the old name of the overlay driver; upstream rewrites it.
    if opts.driver_name == "overlay2" {
        opts.driver_name = "overlay".to_string();
    }
    opts.graph_root = absolute(&opts.graph_root, cwd);
    opts.run_root = absolute(&opts.run_root, cwd);
    Ok(opts)
}

/// Resolves the options of this process (real configuration files and environment);
/// also returns the configuration's warnings (unknown keys), shown with `--debug`.
pub fn resolve_for_process(flags: &FlagValues) -> Result<(StoreOptions, Vec<String>), ConfigError> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let mut warnings = Vec::new();
    let opts = resolve(
        flags,
        &cwd,
        || {
            config::load_default_options().map(|loaded| {
                warnings = loaded.warnings;
                loaded.options
            })
        },
        || config::default_roots(&config::ProcessEnvironment),
    )?;
    Ok((opts, warnings))
}

/// The values a command's flag list shows (upstream makes the command's flag set with the
/// options it has so far as the defaults): the global flags as given when any store flag
/// (`--run`, `--graph`, `--storage-driver`, `--storage-opt`) was given, else the options
/// of the configuration files, which then replace `--image-store` and `--transient-store`
/// too; `--debug` as given. The given flags when the configuration cannot be read.
pub fn shown_in_usage(given: &FlagValues) -> FlagValues {
    const STORE_FLAGS: [&str; 4] = ["run", "graph", "storage-driver", "storage-opt"];
    if STORE_FLAGS.iter().any(|key| given.given(key)) {
        return given.clone();
    }
    let Ok((opts, _)) = resolve_for_process(&FlagValues::default()) else {
        return given.clone();
    };
    let mut shown = FlagValues::default();
    if given.bool("debug") {
        shown.push("debug", "true".to_string());
    }
    shown.push("run", opts.run_root.display().to_string());
    shown.push("graph", opts.graph_root.display().to_string());
    shown.push("storage-driver", opts.driver_name.clone());
    for option in &opts.driver_options {
        shown.push("storage-opt", option.clone());
    }
    if let Some(image_store) = &opts.image_store {
        shown.push("image-store", image_store.display().to_string());
    }
    if opts.transient_store {
        shown.push("transient-store", "true".to_string());
    }
    shown
}

/// Go's `filepath.Abs`: joined with the working directory and cleaned lexically.
fn absolute(path: &Path, cwd: &Path) -> PathBuf {
    if path.as_os_str().is_empty() {
        return PathBuf::new();
    }
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        cwd.join(path)
    };
    let mut clean = PathBuf::from("/");
    for component in joined.components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::ParentDir => {
                clean.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    clean
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(pairs: &[(&'static str, &str)]) -> FlagValues {
        let mut f = FlagValues::default();
        for (k, v) in pairs {
            f.push(k, v.to_string());
        }
        f
    }

    fn from_config() -> Result<StoreOptions, ConfigError> {
        Ok(StoreOptions {
            graph_root: "/conf/graph".into(),
            run_root: "/conf/run".into(),
            driver_name: "vfs".into(),
            driver_options: vec!["vfs.ignore_chown_errors=true".into()],
            ..Default::default()
        })
    }

    fn root_defaults() -> Result<(PathBuf, PathBuf), ConfigError> {
        Ok((
            config::DEFAULT_GRAPH_ROOT.into(),
            config::DEFAULT_RUN_ROOT.into(),
        ))
    }

    fn no_defaults() -> Result<(PathBuf, PathBuf), ConfigError> {
        panic!("the default roots must not be needed")
    }

    #[test]
    fn no_flags_use_configuration() {
        let o = resolve(
            &FlagValues::default(),
            Path::new("/cwd"),
            from_config,
            no_defaults,
        )
        .expect("ok");
        assert_eq!(o.graph_root, Path::new("/conf/graph"));
        assert_eq!(o.driver_name, "vfs");
        assert_eq!(o.driver_options.len(), 1);
    }

    #[test]
    fn any_flag_ignores_configuration_entirely() {
        let o = resolve(
            &flags(&[("storage-driver", "overlay")]),
            Path::new("/cwd"),
            || panic!("configuration must not be read"),
            root_defaults,
        )
        .expect("ok");
        assert_eq!(o.graph_root, Path::new(config::DEFAULT_GRAPH_ROOT));
        assert_eq!(o.run_root, Path::new(config::DEFAULT_RUN_ROOT));
        assert_eq!(o.driver_name, "overlay");
        assert!(o.driver_options.is_empty());

        let o = resolve(
            &flags(&[("storage-opt", "overlay.mountopt=nodev")]),
            Path::new("/cwd"),
            || panic!("configuration must not be read"),
            root_defaults,
        )
        .expect("ok");
        assert_eq!(o.driver_name, "");
        assert_eq!(o.driver_options, ["overlay.mountopt=nodev"]);
    }

    #[test]
    fn a_missing_root_is_the_users_default() {
        let user_defaults = || -> Result<(PathBuf, PathBuf), ConfigError> {
            Ok((
                "/home/u/.local/share/containers/storage".into(),
                "/run/user/1000/containers".into(),
            ))
        };
        let o = resolve(
            &flags(&[("storage-driver", "vfs")]),
            Path::new("/cwd"),
            || panic!("configuration must not be read"),
            user_defaults,
        )
        .expect("ok");
        assert_eq!(
            o.graph_root,
            Path::new("/home/u/.local/share/containers/storage")
        );
        assert_eq!(o.run_root, Path::new("/run/user/1000/containers"));
        let o = resolve(
            &flags(&[("graph", "/g")]),
            Path::new("/cwd"),
            || panic!("configuration must not be read"),
            user_defaults,
        )
        .expect("ok");
        assert_eq!(
            (o.graph_root.as_path(), o.run_root.as_path()),
            (Path::new("/g"), Path::new("/run/user/1000/containers"))
        );
    }

    #[test]
    fn empty_values_do_not_count() {
        let o = resolve(
            &flags(&[("graph", "")]),
            Path::new("/cwd"),
            from_config,
            no_defaults,
        )
        .expect("ok");
        assert_eq!(o.graph_root, Path::new("/conf/graph"));
    }

    #[test]
    fn relative_roots_become_absolute() {
        let o = resolve(
            &flags(&[("graph", "g"), ("run", "./r"), ("image-store", "is")]),
            Path::new("/cwd"),
            from_config,
            no_defaults,
        )
        .expect("ok");
        assert_eq!(o.graph_root, Path::new("/cwd/g"));
        assert_eq!(o.run_root, Path::new("/cwd/r"));
        assert_eq!(
            absolute(Path::new("../x/./y/"), Path::new("/a/b")),
            Path::new("/a/x/y")
        );
        assert_eq!(o.image_store.as_deref(), Some(Path::new("/cwd/is")));
    }

    #[test]
    fn overlay2_is_overlay() {
        let o = resolve(
            &flags(&[("storage-driver", "overlay2")]),
            Path::new("/"),
            from_config,
            root_defaults,
        )
        .expect("ok");
        assert_eq!(o.driver_name, "overlay");
    }
}
