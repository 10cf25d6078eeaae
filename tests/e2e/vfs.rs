//! Driver components through the binary: the built-in vfs component (layout, mount, diff,
//! status), a third-party driver named in a `storage.toml`, and a driver component stopped by
//! its limits.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::harness::{tar_of, Output, Scratch, STORAGE};

#[test]
fn vfs_layers_mount_as_their_directory_and_diff_byte_identical() {
    let s = Scratch::new();
    let tar = tar_of(&[("etc/hostname", b"vfs\n"), ("bin/tool", b"#!/bin/sh\n")]);
    let layer = s.import_layer(&[], &tar);
    let img = crate::harness::id("vfsimage");
    s.ok(&["create-image", "--id", &img, &layer]);
    let ctr = s.ok(&["create-container", &img]);
    let ctr = ctr.trim();
    let mounted = s.ok(&["mount", ctr]);
    let mounted = PathBuf::from(mounted.trim());
    assert!(
        mounted.starts_with(s.graph().join("vfs/dir")),
        "{}",
        mounted.display()
    );
    assert_eq!(
        std::fs::read(mounted.join("etc/hostname")).unwrap(),
        b"vfs\n"
    );
    s.ok(&["unmount", ctr]);

    let diff = s.run(&["diff", "-u", &layer]);
    assert_eq!(diff.code, 0, "{}", diff.stderr);
    assert_eq!(diff.stdout, tar, "diff is the imported tar, byte for byte");

    let status = s.run(&["status"]);
    assert_eq!(status.code, 0, "{}", status.stderr);
    let all = status.stderr;
    assert!(all.contains("Component: builtin:vfs"), "{all}");
    assert!(all.contains("Component Digest: sha256:"), "{all}");
    assert!(all.contains("WIT Version: storage:plugin@0.3.0"), "{all}");
}

/// `--debug` on a fresh store, where the component is compiled first: the compiler's worker
/// threads log too, and a logger that waited for the command's own stderr lock hung here.
#[test]
fn debug_logging_while_the_component_compiles_does_not_hang() {
    let s = Scratch::new();
    let o = s.run(&["--debug", "layers"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.is_empty(), "a fresh store has no layers");
    assert!(
        o.stderr
            .lines()
            .all(|l| crate::harness::log_body(l).is_some_and(|b| b.starts_with("level="))),
        "only the project's own debug lines: {}",
        o.stderr
    );
}

#[test]
fn vfs_refuses_unknown_options_in_one_line() {
    let s = Scratch::new();
    let mut globals = s.globals();
    globals.extend(["--storage-opt".to_string(), "vfs.bogus=1".to_string()]);
    let o = run(&globals, &["layers"], &[]);
    assert_eq!(o.code, 1);
    assert_eq!(
        o.out().trim(),
        "error initializing: vfs driver does not support vfs.bogus options"
    );
}

/// The example driver guest (`host/guests/example-driver`), built on first use.
fn example_driver() -> PathBuf {
    test_guest("storage_test_guest_example_driver.wasm")
}

/// The hostile driver guest (spins creating a child layer, allocates applying a diff).
fn hostile_driver() -> PathBuf {
    test_guest("storage_test_guest_hostile_driver.wasm")
}

/// A test guest of `host/guests/`, built on first use (once per test process) by a nested
/// cargo into `<target>/wasm-components`.
fn test_guest(file: &str) -> PathBuf {
    use storage_wasm_build::ComponentCrate;
    const GUESTS: &[ComponentCrate] = &[
        ComponentCrate {
            package: "storage-test-guest-example-driver",
            file: "storage_test_guest_example_driver.wasm",
        },
        ComponentCrate {
            package: "storage-test-guest-hostile-driver",
            file: "storage_test_guest_hostile_driver.wasm",
        },
    ];
    static BUILT: std::sync::OnceLock<Vec<PathBuf>> = std::sync::OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        storage_wasm_build::build(&root, GUESTS, &storage_wasm_build::target_dir_for_tests())
            .unwrap_or_else(|e| panic!("{e}"))
    });
    built
        .iter()
        .find(|p| p.ends_with(file))
        .cloned()
        .unwrap_or_else(|| panic!("{file} is not a test guest"))
}

fn run(globals: &[String], args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(STORAGE);
    cmd.args(globals)
        .args(args)
        .env_remove("STORAGE_DRIVER")
        .env_remove("STORAGE_OPTS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("running the binary");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `--graph`, `--run` of `s` with driver `driver`.
fn globals_with(s: &Scratch, driver: &str) -> Vec<String> {
    vec![
        "--graph".into(),
        s.graph().display().to_string(),
        "--run".into(),
        s.run_root().display().to_string(),
        "--storage-driver".into(),
        driver.into(),
    ]
}

fn write_conf(s: &Scratch, plugins: &str) -> PathBuf {
    let conf = s.dir().join("storage.toml");
    let text = format!(
        "[storage]\ndriver = \"overlay\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n\n{plugins}",
        s.graph().display(),
        s.run_root().display()
    );
    std::fs::write(&conf, text).unwrap();
    conf
}

#[test]
fn a_plugin_named_in_storage_toml_is_a_driver() {
    let s = Scratch::new();
    let wasm = s.dir().join("example.wasm");
    std::fs::copy(example_driver(), &wasm).unwrap();
    let conf = write_conf(
        &s,
        &format!("[plugins.example]\ncomponent = \"{}\"\n", wasm.display()),
    );
    let env = [("CONTAINERS_STORAGE_CONF", conf.as_path())];
    let globals = globals_with(&s, "example");
    let o = run(&globals, &["create-layer"], &env);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let layer = o.out().trim().to_string();
    assert!(s.graph().join("example/dir").join(&layer).is_dir());
    let o = run(&globals, &["mount", &layer], &env);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(
        PathBuf::from(o.out().trim()),
        s.graph().join("example/dir").join(&layer)
    );
    run(&globals, &["unmount", &layer], &env);

    let o = run(&globals, &["status"], &env);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let all = format!("{}{}", o.out(), o.stderr);
    assert!(all.contains("Driver Name: example"), "{all}");
    assert!(
        all.contains(&format!("Component: {}", wasm.display())),
        "{all}"
    );
    assert!(all.contains("Backing Filesystem: example"), "{all}");
}

#[test]
fn a_plugin_stopped_by_its_memory_limit_fails_in_one_line() {
    let s = Scratch::new();
    let wasm = s.dir().join("example.wasm");
    std::fs::copy(example_driver(), &wasm).unwrap();
    let conf = write_conf(
        &s,
        &format!(
            "[plugins.tiny]\ncomponent = \"{}\"\nmemory_limit = 65536\n",
            wasm.display()
        ),
    );
    let env = [("CONTAINERS_STORAGE_CONF", conf.as_path())];
    let o = run(&globals_with(&s, "tiny"), &["layers"], &env);
    assert_eq!(o.code, 1, "{}", o.stderr);
    let out = o.out();
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.starts_with("error initializing:"), "{out}");
    assert!(out.contains("memory limit"), "{out}");
}

#[test]
fn a_component_that_is_not_a_driver_is_refused_in_one_line() {
    let s = Scratch::new();
    let missing = s.dir().join("missing.wasm");
    let conf = write_conf(
        &s,
        &format!("[plugins.gone]\ncomponent = \"{}\"\n", missing.display()),
    );
    let env = [("CONTAINERS_STORAGE_CONF", conf.as_path())];
    let o = run(&globals_with(&s, "gone"), &["layers"], &env);
    assert_eq!(o.code, 1, "{}", o.stderr);
    let out = o.out();
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains("missing.wasm"), "{out}");
}

/// The layer IDs `layers.json` records, and whether any is still marked incomplete.
fn recorded_layers(s: &Scratch, driver: &str) -> (Vec<String>, bool) {
    let path = s.graph().join(format!("{driver}-layers/layers.json"));
    let Ok(text) = std::fs::read_to_string(&path) else {
        return (Vec::new(), false);
    };
    let records: serde_json::Value = serde_json::from_str(&text).unwrap();
    let records = records.as_array().cloned().unwrap_or_default();
    let incomplete = records
        .iter()
        .any(|r| r.get("flags").and_then(|f| f.get("incomplete")).is_some());
    let ids = records
        .iter()
        .filter_map(|r| r["id"].as_str().map(str::to_string))
        .collect();
    (ids, incomplete)
}

/// The directories the plugin keeps under its home (`dir/<id>`).
fn plugin_layer_dirs(s: &Scratch, driver: &str) -> Vec<String> {
    let mut dirs: Vec<String> = std::fs::read_dir(s.graph().join(driver).join("dir"))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}

#[test]
fn a_driver_plugin_stopped_by_its_deadline_leaves_the_store_as_it_was() {
    let s = Scratch::new();
    let wasm = s.dir().join("hostile.wasm");
    std::fs::copy(hostile_driver(), &wasm).unwrap();
    let conf = write_conf(
        &s,
        &format!(
            "[plugins.spin]\ncomponent = \"{}\"\ndeadline_ms = 500\n",
            wasm.display()
        ),
    );
    let env = [("CONTAINERS_STORAGE_CONF", conf.as_path())];
    let globals = globals_with(&s, "spin");
    let o = run(&globals, &["create-layer"], &env);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let base = o.out().trim().to_string();

    // The child's `create` never returns: the deadline stops it, in one line.
    let o = run(&globals, &["create-layer", &base], &env);
    assert_ne!(o.code, 0, "a spinning create succeeded");
    let all = format!("{}{}", o.out(), o.stderr);
    assert_eq!(all.trim().lines().count(), 1, "{all}");
    assert!(all.contains("deadline"), "{all}");

    // Only the base is left, in the records and in the plugin's home; later commands work.
    assert_eq!(recorded_layers(&s, "spin"), (vec![base.clone()], false));
    assert_eq!(plugin_layer_dirs(&s, "spin"), vec![base.clone()]);
    let o = run(&globals, &["layers"], &env);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.out().trim(), base);
}

#[test]
fn a_driver_plugin_stopped_by_its_memory_limit_mid_import_leaves_no_layer() {
    let s = Scratch::new();
    let wasm = s.dir().join("hostile.wasm");
    std::fs::copy(hostile_driver(), &wasm).unwrap();
    let conf = write_conf(
        &s,
        &format!(
            "[plugins.hoard]\ncomponent = \"{}\"\nmemory_limit = 16777216\n",
            wasm.display()
        ),
    );
    let env = [("CONTAINERS_STORAGE_CONF", conf.as_path())];
    let globals = globals_with(&s, "hoard");
    let tar_path = s.dir().join("layer.tar");
    std::fs::write(&tar_path, tar_of(&[("file", b"content")])).unwrap();
    let mut cmd = Command::new(STORAGE);
    cmd.args(&globals)
        .arg("import-layer")
        .env("CONTAINERS_STORAGE_CONF", &conf)
        .env_remove("STORAGE_DRIVER")
        .env_remove("STORAGE_OPTS")
        .stdin(std::fs::File::open(&tar_path).unwrap());
    let o = cmd.output().unwrap();
    assert_ne!(
        o.status.code(),
        Some(0),
        "an unbounded allocation succeeded"
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(all.trim().lines().count(), 1, "{all}");
    assert!(all.contains("memory limit"), "{all}");
    assert_eq!(recorded_layers(&s, "hoard"), (Vec::new(), false));
    assert!(plugin_layer_dirs(&s, "hoard").is_empty());
    let o = run(&globals, &["layers"], &env);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.out(), "");
}

/// The hostile driver registered as `hostile` in a scratch `storage.toml`: its environment
/// and the global flags naming the scratch roots.
fn hostile_plugin(s: &Scratch) -> (PathBuf, Vec<String>) {
    let wasm = s.dir().join("hostile.wasm");
    std::fs::copy(hostile_driver(), &wasm).unwrap();
    let conf = write_conf(
        s,
        &format!("[plugins.hostile]\ncomponent = \"{}\"\n", wasm.display()),
    );
    (conf, globals_with(s, "hostile"))
}

#[test]
fn a_panicking_driver_plugin_fails_in_one_line_quoting_the_panic() {
    let s = Scratch::new();
    let (conf, globals) = hostile_plugin(&s);
    let env = [("CONTAINERS_STORAGE_CONF", conf.as_path())];

    let o = run(&globals, &["create-layer", "--id", "panic"], &env);
    assert_eq!(o.code, 1, "{}", o.stderr);
    let all = format!("{}{}", o.out(), o.stderr);
    assert_eq!(all.lines().count(), 1, "{all}");
    assert!(
        all.contains("trapped during create-read-write: panicked at "),
        "{all}"
    );
    assert!(
        all.contains("the hostile driver refuses layer \"panic\" on purpose"),
        "{all}"
    );

    // A denied import is named.
    let o = run(&globals, &["create-layer", "--id", "stdin"], &env);
    assert_eq!(o.code, 1, "{}", o.stderr);
    let all = format!("{}{}", o.out(), o.stderr);
    assert_eq!(all.lines().count(), 1, "{all}");
    assert!(all.contains("`wasi:cli/stdin@0.2."), "{all}");
    assert!(all.contains("#get-stdin` has not been defined"), "{all}");

    // Both layers were rolled back; the store works.
    assert_eq!(recorded_layers(&s, "hostile"), (Vec::new(), false));
    let o = run(&globals, &["layers"], &env);
    assert_eq!((o.code, o.out()), (0, String::new()), "{}", o.stderr);
}

#[test]
fn a_driver_plugin_failing_in_status_shows_the_failure_as_a_status_line() {
    let s = Scratch::new();
    let (conf, globals) = hostile_plugin(&s);
    let env = [("CONTAINERS_STORAGE_CONF", conf.as_path())];
    let o = run(&globals, &["status"], &env);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stderr.contains("Backing Filesystem: hostile"),
        "{}",
        o.stderr
    );
    assert!(!o.stderr.contains("Driver Status Error"), "{}", o.stderr);

    // The guest's `status` panics once this layer exists.
    let o = run(&globals, &["create-layer", "--id", "status-panic"], &env);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let o = run(&globals, &["status"], &env);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let lines: Vec<&str> = o.stderr.lines().collect();
    // The host's lines are all there, the component's replaced by one line saying why.
    for host_line in [
        "Root: ",
        "Run Root: ",
        "Driver Name: hostile",
        "Component: ",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(host_line)),
            "{host_line}: {}",
            o.stderr
        );
    }
    let errors: Vec<&&str> = lines
        .iter()
        .filter(|l| l.starts_with("Driver Status Error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{}", o.stderr);
    assert!(
        errors[0].contains("trapped during status: panicked at "),
        "{}",
        errors[0]
    );
    assert!(
        errors[0].contains("the hostile driver has no status while layer \"status-panic\" exists"),
        "{}",
        errors[0]
    );
    assert!(!o.stderr.contains("Backing Filesystem"), "{}", o.stderr);
}

/// `exists` answers a bool in the contract (upstream's `Exists`): a component failing there
/// is a warning quoting it, shown as logrus shows upstream's warnings (without `--debug`),
/// and the layer is taken as missing.
#[test]
fn a_driver_plugin_failing_in_exists_is_logged_as_a_warning() {
    let s = Scratch::new();
    let (conf, globals) = hostile_plugin(&s);
    let env = [("CONTAINERS_STORAGE_CONF", conf.as_path())];
    // `create-storage-layer` asks the driver whether the layer exists before creating it.
    let o = run(
        &globals,
        &["create-storage-layer", "--id", "exists-panic"],
        &env,
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.out().trim(), "exists-panic");
    let warnings: Vec<&str> = o
        .stderr
        .lines()
        .filter_map(crate::harness::log_body)
        .filter(|l| l.starts_with("level=warning "))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", o.stderr);
    assert!(
        warnings[0].contains("msg=\"exists exists-panic: component ")
            && warnings[0].contains("trapped during exists: panicked at ")
            && warnings[0].contains("the hostile driver cannot tell whether"),
        "{}",
        warnings[0]
    );
    assert_eq!(plugin_layer_dirs(&s, "hostile"), ["exists-panic"]);
}

#[test]
fn debug_logs_what_a_driver_plugin_wrote_during_a_call_that_succeeded() {
    let s = Scratch::new();
    let (conf, globals) = hostile_plugin(&s);
    let env = [("CONTAINERS_STORAGE_CONF", conf.as_path())];
    let o = run(&globals, &["create-layer", "--id", "chatty"], &env);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stderr, "", "the guest's output is only for --debug");

    let mut debug = globals.clone();
    debug.push("--debug".into());
    let o = run(&globals, &["delete-layer", "chatty"], &env);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let o = run(&debug, &["create-layer", "--id", "chatty"], &env);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let logged: Vec<&str> = o
        .stderr
        .lines()
        .filter(|l| l.contains("output of create-read-write"))
        .collect();
    assert_eq!(logged.len(), 1, "{}", o.stderr);
    assert!(
        o.stderr
            .contains(r#"the hostile driver creates layer \"chatty\" and says so"#),
        "{}",
        o.stderr
    );
}

/// Issue #14 item 5: `[plugins]` are read from the configuration file in effect whatever the
/// flags; the roots follow upstream's rule (a store flag skips the file's); `config` prints
/// the roots and driver the command uses, so a plugin selected by flag is where `config`
/// says.
#[test]
fn config_names_the_roots_a_plugin_selected_by_flag_uses() {
    let s = Scratch::new();
    let wasm = s.dir().join("example.wasm");
    std::fs::copy(example_driver(), &wasm).unwrap();
    // The file's own roots are elsewhere than the flags'.
    let file_graph = s.dir().join("file-graph");
    let file_run = s.dir().join("file-run");
    let conf = s.dir().join("storage.toml");
    std::fs::write(
        &conf,
        format!(
            "[storage]\ndriver = \"example\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n\n\
             [plugins.example]\ncomponent = \"{}\"\n",
            file_graph.display(),
            file_run.display(),
            wasm.display()
        ),
    )
    .unwrap();
    let env = [("CONTAINERS_STORAGE_CONF", conf.as_path())];

    // Flags: the flags' roots, the plugin from the file.
    let globals = globals_with(&s, "example");
    let o = run(&globals, &["config"], &env);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let config = o.json();
    assert_eq!(config["root"], s.graph().display().to_string(), "{config}");
    assert_eq!(
        config["runroot"],
        s.run_root().display().to_string(),
        "{config}"
    );
    assert_eq!(config["driver"], "example", "{config}");
    let o = run(&globals, &["create-layer"], &env);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let layer = o.out().trim().to_string();
    let root = PathBuf::from(config["root"].as_str().unwrap());
    assert!(root.join("example/dir").join(&layer).is_dir());
    assert!(!file_graph.exists(), "the file's graph root was not used");

    // No flags: the file's roots and driver, for `config` and the command alike.
    let o = run(&[], &["config"], &env);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let config = o.json();
    assert_eq!(config["root"], file_graph.display().to_string(), "{config}");
    assert_eq!(
        config["runroot"],
        file_run.display().to_string(),
        "{config}"
    );
    assert_eq!(config["driver"], "example", "{config}");
    let o = run(&[], &["create-layer"], &env);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let layer = o.out().trim().to_string();
    assert!(file_graph.join("example/dir").join(&layer).is_dir());
    let o = run(&[], &["shutdown"], &env);
    assert_eq!(o.code, 0, "{}", o.stderr);
}

/// The tree beneath `dir`, as sorted relative paths.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            out.push(path.strip_prefix(root).unwrap().display().to_string());
            if path.symlink_metadata().unwrap().is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut paths = Vec::new();
    walk(dir, dir, &mut paths);
    paths.sort();
    paths
}

/// An opaque marker (AUFS format, as vfs stores layers) keeps what the layer made, also the
/// parents it did not name: GNU tar writes `d/implied/c` without `d/implied/`. Upstream 1.60
/// removes `d/implied` and the layer's own `c` with it (README: where we differ on purpose).
#[test]
fn an_opaque_marker_keeps_the_parents_the_layer_made() {
    let work = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(work.path().join("d/implied")).unwrap();
    std::fs::write(work.path().join("d/implied/c"), b"c\n").unwrap();
    std::fs::write(work.path().join("d/.wh..wh..opq"), b"").unwrap();
    let child = Command::new("tar")
        .args(["--format=gnu", "-C"])
        .arg(work.path())
        .args(["-cf", "-", "d/implied/c", "d/.wh..wh..opq"])
        .output()
        .unwrap();
    assert!(child.status.success(), "GNU tar failed");
    let parent = tar_of(&[("d/old", b"o\n"), ("d/kept/old", b"o\n")]);

    let s = Scratch::new();
    let lower = s.import_layer(&[], &parent);
    let upper = s.import_layer(&[&lower], &child.stdout);
    assert_eq!(
        tree(&crate::harness::layer_dir(&s.graph(), "vfs", &upper)),
        ["d", "d/implied", "d/implied/c"]
    );

    let Some(reference) = crate::harness::reference_binary() else {
        return;
    };
    let go = Scratch::with_binary(&reference, "vfs");
    let lower = go.import_layer(&[], &parent);
    let upper = go.import_layer(&[&lower], &child.stdout);
    assert_eq!(
        tree(&crate::harness::layer_dir(&go.graph(), "vfs", &upper)),
        ["d"],
        "upstream keeps only the paths a layer names"
    );
}

/// A configuration file with keys upstream 1.60 no longer decodes and a mount option vfs
/// refuses: one warning naming every key (shown without `--debug`, as logrus shows
/// warnings), then upstream's own error for mount options, as the reference prints them.
#[test]
fn config_warnings_and_the_vfs_mount_option_error_read_as_upstream() {
    let s = Scratch::new();
    let conf = s.dir().join("storage.conf");
    std::fs::write(
        &conf,
        format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n\
             [storage.options]\noverride_kernel_check = \"true\"\nmountopt = \"nodev\"\n\
             [storage.options.thinpool]\nsize = \"1G\"\n",
            s.graph().display(),
            s.run_root().display()
        ),
    )
    .unwrap();
    let conf_env = conf.display().to_string();
    let o = crate::harness::run_env(&["layers"], &[("CONTAINERS_STORAGE_CONF", &conf_env)]);
    let warning = format!(
        "level=warning msg=\"Failed to decode the keys [\\\"storage.options.override_kernel_check\\\" \
         \\\"storage.options.thinpool.size\\\"] from \\\"{}\\\"\"",
        conf.display()
    );
    assert_eq!(o.code, 1, "{o:?}");
    let lines: Vec<&str> = o.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", o.stderr);
    assert_eq!(crate::harness::log_body(lines[0]), Some(warning.as_str()));
    assert_eq!(
        o.out(),
        "error initializing: vfs driver does not support mount options\n"
    );

    let Some(reference) = crate::harness::reference_binary() else {
        return;
    };
    let go = Command::new(&reference)
        .arg("layers")
        .env("CONTAINERS_STORAGE_CONF", &conf)
        .env_remove("STORAGE_DRIVER")
        .env_remove("STORAGE_OPTS")
        .output()
        .unwrap();
    let go_err = String::from_utf8_lossy(&go.stderr);
    let go_out = String::from_utf8_lossy(&go.stdout);
    let go_lines: Vec<&str> = go_err.lines().collect();
    assert_eq!(go_lines.len(), 1, "{go_err}");
    assert_eq!(
        crate::harness::log_body(go_lines[0]),
        Some(warning.as_str())
    );
    assert_eq!(go_out, o.out(), "stdout as upstream's");

    // On a terminal logrus colors the level and counts seconds instead of printing the time:
    // both binaries under `script` (a pseudo-terminal for stdout and stderr alike), the
    // seconds, whatever they are, compared as zero.
    let on_terminal = |binary: &Path| -> String {
        let out = Command::new("script")
            .args(["-qec", &format!("{} layers", binary.display()), "/dev/null"])
            .env("CONTAINERS_STORAGE_CONF", &conf)
            .env_remove("STORAGE_DRIVER")
            .env_remove("STORAGE_OPTS")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        match text.split_once("\x1b[0m[") {
            Some((head, tail)) if tail.len() > 4 => format!("{head}\x1b[0m[0000{}", &tail[4..]),
            _ => text,
        }
    };
    let ours = on_terminal(Path::new(STORAGE));
    assert!(
        ours.starts_with("\x1b[33mWARN\x1b[0m[0000] Failed to decode"),
        "{ours:?}"
    );
    assert_eq!(ours, on_terminal(&reference));
}

/// A component driver's private mount (the host's naive diff reads a layer there) left by a
/// process that was killed is undone by the next command: unmounted, its directories
/// removed one by one, nothing removed through the mount.
#[test]
fn a_private_mount_left_by_a_dead_process_is_undone_by_the_next_command() {
    let s = Scratch::new();
    let layer = s.import_layer(&[], &tar_of(&[("f", b"layer file\n")]));
    // A PID above the kernel's largest: no such process.
    let private = s
        .run_root()
        .join(format!("vfs-mounts/.private-4294967295-0-{layer}"));
    let merged = private.join("merged");
    std::fs::create_dir_all(&merged).unwrap();
    let source = crate::harness::layer_dir(&s.graph(), "vfs", &layer);
    let status = Command::new("mount")
        .arg("--bind")
        .arg(&source)
        .arg(&merged)
        .status()
        .unwrap();
    assert!(status.success(), "mount --bind");
    assert!(crate::harness::is_mountpoint(&merged));

    s.ok(&["layers"]);
    assert!(
        !crate::harness::is_mountpoint(&merged),
        "the private mount stayed"
    );
    assert!(!private.exists(), "its directory stayed");
    assert_eq!(std::fs::read(source.join("f")).unwrap(), b"layer file\n");
}
