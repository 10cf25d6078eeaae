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
    assert!(all.contains("WIT Version: storage:plugin@0.1.0"), "{all}");
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

/// The example driver guest, as host/build.rs leaves it in `<target>/wasm-components`.
fn example_driver() -> PathBuf {
    let target = Path::new(STORAGE)
        .ancestors()
        .nth(2)
        .expect("the binary is <target>/<profile>/storage");
    let wasm =
        target.join("wasm-components/wasm32-wasip2/release/storage_test_guest_example_driver.wasm");
    assert!(
        wasm.is_file(),
        "built by storage-host's build script: {}",
        wasm.display()
    );
    wasm
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
