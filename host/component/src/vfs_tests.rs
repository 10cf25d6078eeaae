//! Tests of [`super::graph_driver::ComponentGraphDriver`] with the built-in vfs component and
//! the example third-party driver: what the store sees through the `GraphDriver` trait.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::graph_driver::{register_builtin, register_plugins, ComponentGraphDriver};
use super::ComponentSource;
use crate::test_guests::wasm;
use storage_driver::PluginConfig;
use storage_driver::{
    ChangeKind, CreateOpts, DriverError, DriverInit, DriverRegistry, GraphDriver, MountOpts,
};

/// A temporary graph root and run root.
struct Roots {
    tmp: tempfile::TempDir,
}

impl Roots {
    fn new() -> Self {
        Roots {
            tmp: tempfile::tempdir().unwrap(),
        }
    }

    fn init(&self, name: &str, options: &[&str]) -> DriverInit {
        let graph_root = self.tmp.path().join("graph");
        DriverInit {
            home: graph_root.join(name),
            graph_root,
            run_root: self.tmp.path().join("run"),
            image_store: None,
            options: options.iter().map(|s| s.to_string()).collect(),
            id_mappings: Default::default(),
            archive: std::sync::Arc::new(crate::archive_provider::ComponentArchiveProvider),
            syscalls: storage_driver::syscalls::real(),
        }
    }
}

fn start(registry: &DriverRegistry, name: &str, init: &DriverInit) -> Box<dyn GraphDriver> {
    match registry.factory(name).unwrap()(init) {
        Ok(driver) => driver,
        Err(e) => panic!("start {name}: {e}"),
    }
}

/// The vfs component as the binary embeds it (with its digest, as its build script makes it).
fn vfs_source() -> ComponentSource {
    let bytes = wasm("storage-vfs-component");
    ComponentSource::Builtin {
        name: "builtin:vfs",
        bytes,
        sha256: Box::leak(storage_wasm_build::sha256_hex(bytes).into_boxed_str()),
    }
}

fn vfs_registry() -> DriverRegistry {
    let mut registry = DriverRegistry::new();
    register_builtin(&mut registry, "vfs", vfs_source());
    registry
}

/// A tar of `entries`: (path, contents; `None` for a directory).
fn layer(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(1_600_000_000);
        match data {
            Some(data) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o644);
                header.set_size(data.len() as u64);
                builder.append_data(&mut header, path, *data).unwrap();
            }
            None => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                builder.append_data(&mut header, path, &[][..]).unwrap();
            }
        }
    }
    builder.into_inner().unwrap()
}

fn tar_names(bytes: &[u8]) -> Vec<String> {
    let mut archive = tar::Archive::new(bytes);
    archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect()
}

#[test]
fn vfs_applies_an_import_from_the_headers_the_host_parsed() {
    // The vfs driver hands the tar to the host's archive logic, which takes the entries of
    // the parsed stream: with its header bytes blanked, only the headers can make the files.
    let roots = Roots::new();
    let init = roots.init("vfs", &[]);
    let driver = start(&vfs_registry(), "vfs", &init);
    let home = init.graph_root.join("vfs");
    driver.create("base", None, &CreateOpts::default()).unwrap();
    let base = layer(&[("etc/", None), ("etc/hostname", Some(b"parsed\n"))]);
    let parsed = crate::test_guests::blank_outlined(&base);
    let opts = storage_driver::ApplyDiffOpts {
        parsed: Some(parsed.clone()),
        ..Default::default()
    };
    let applied = driver
        .apply_diff("base", None, &mut parsed.clone(), &opts)
        .unwrap();
    assert_eq!(applied, 7);
    assert_eq!(
        std::fs::read(home.join("dir/base/etc/hostname")).unwrap(),
        b"parsed\n"
    );
}

#[test]
fn vfs_layers_are_full_copies_and_diff_against_the_parent() {
    let roots = Roots::new();
    let init = roots.init("vfs", &[]);
    let driver = start(&vfs_registry(), "vfs", &init);
    let home = init.graph_root.join("vfs");
    let opts = CreateOpts::default();

    driver.create("base", None, &opts).unwrap();
    let base = layer(&[
        ("etc/", None),
        ("etc/hostname", Some(b"base\n")),
        ("gone", Some(b"deleted by the child")),
    ]);
    let applied = driver
        .apply_diff("base", None, &mut base.as_slice(), &Default::default())
        .unwrap();
    assert_eq!(applied, 5 + 20);
    assert_eq!(
        std::fs::read(home.join("dir/base/etc/hostname")).unwrap(),
        b"base\n"
    );

    // A child starts as a copy of its parent.
    driver
        .create_read_write("child", Some("base"), &opts)
        .unwrap();
    assert_eq!(
        std::fs::read(home.join("dir/child/gone")).unwrap(),
        b"deleted by the child"
    );
    let upper = layer(&[("new", Some(b"added")), (".wh.gone", Some(b""))]);
    driver
        .apply_diff(
            "child",
            Some("base"),
            &mut upper.as_slice(),
            &Default::default(),
        )
        .unwrap();
    assert!(!home.join("dir/child/gone").exists());
    assert!(
        home.join("dir/base/gone").exists(),
        "the parent is untouched"
    );

    let changes = driver
        .changes(
            "child",
            &storage_driver::idmap::IdMappings::default(),
            Some("base"),
            &storage_driver::idmap::IdMappings::default(),
        )
        .unwrap();
    let by_path: BTreeMap<&str, ChangeKind> = changes
        .iter()
        .map(|c| (std::str::from_utf8(&c.path).unwrap(), c.kind))
        .collect();
    assert_eq!(by_path.get("/new"), Some(&ChangeKind::Add), "{changes:?}");
    assert_eq!(
        by_path.get("/gone"),
        Some(&ChangeKind::Delete),
        "{changes:?}"
    );
    assert!(!by_path.contains_key("/etc/hostname"), "{changes:?}");
    assert_eq!(
        driver
            .diff_size(
                "child",
                &storage_driver::idmap::IdMappings::default(),
                Some("base"),
                &storage_driver::idmap::IdMappings::default()
            )
            .unwrap(),
        5
    );

    let mut diff = Vec::new();
    driver
        .diff(
            "child",
            &Default::default(),
            Some("base"),
            &Default::default(),
            &mut diff,
        )
        .unwrap();
    let names = tar_names(&diff);
    assert!(names.contains(&"new".to_string()), "{names:?}");
    assert!(names.contains(&".wh.gone".to_string()), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("etc")), "{names:?}");

    // The whole layer without a parent.
    let mut full = Vec::new();
    driver
        .diff(
            "base",
            &Default::default(),
            None,
            &Default::default(),
            &mut full,
        )
        .unwrap();
    let names = tar_names(&full);
    assert!(names.contains(&"etc/hostname".to_string()), "{names:?}");

    // get is the directory; put does nothing; only `ro` is accepted.
    let got = driver.get("child", &MountOpts::default()).unwrap();
    assert_eq!(got, home.join("dir/child"));
    let ro = MountOpts {
        options: vec!["ro".into()],
        ..Default::default()
    };
    assert_eq!(driver.get("child", &ro).unwrap(), home.join("dir/child"));
    let nodev = MountOpts {
        options: vec!["nodev".into()],
        ..Default::default()
    };
    let err = driver.get("child", &nodev).unwrap_err();
    assert_eq!(err.to_string(), "vfs driver does not support mount options");
    driver.put("child").unwrap();

    assert_eq!(driver.list_layers().unwrap(), ["base", "child"]);
    let status = driver.status();
    assert_eq!(
        status[0],
        ("Component".to_string(), "builtin:vfs".to_string())
    );
    assert!(status[1].1.starts_with("sha256:"), "{status:?}");
    driver.remove("child").unwrap();
    assert!(!driver.exists("child"));
    driver.remove("child").unwrap();
    assert!(matches!(
        driver.create("x", Some("missing"), &opts),
        Err(DriverError::LayerNotFound(_))
    ));
}

#[test]
fn vfs_options_are_checked_at_start() {
    let roots = Roots::new();
    let registry = vfs_registry();
    let factory = registry.factory("vfs").unwrap();
    let err = factory(&roots.init("vfs", &["vfs.bogus=1"]))
        .err()
        .expect("must refuse");
    assert_eq!(
        err.to_string(),
        "vfs driver does not support vfs.bogus options"
    );

    let init = roots.init(
        "vfs",
        &["vfs.imagestore=/a,/b", "vfs.ignore_chown_errors=true"],
    );
    let driver = start(&registry, "vfs", &init);
    assert_eq!(
        driver.additional_image_stores(),
        [PathBuf::from("/a"), PathBuf::from("/b")]
    );
    let storage_opt = CreateOpts {
        storage_opt: [("size".to_string(), "1G".to_string())].into(),
        ..Default::default()
    };
    assert!(matches!(
        driver.create("l", None, &storage_opt),
        Err(DriverError::BadOption(_))
    ));
    // The cache of precompiled code is not in the graph root (it is the process's).
    assert!(!init.graph_root.join("vfs-components").exists());
}

#[test]
fn stores_share_the_compiled_driver_and_an_old_per_store_cache_is_removed() {
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().join("components");
    let (first, second) = (Roots::new(), Roots::new());
    let start = |roots: &Roots| {
        let init = roots.init("vfs", &[]);
        let driver = ComponentGraphDriver::start_with_cache(
            "vfs",
            &vfs_source(),
            Default::default(),
            &init,
            Some(cache_dir.clone()),
        )
        .unwrap();
        (driver.component().loaded().from_cache, init)
    };
    let (from_cache, _) = start(&first);
    assert!(!from_cache, "an empty cache compiles");
    let artifacts = || -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&cache_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let made = artifacts();
    assert_eq!(made.len(), 1, "{made:?}");
    assert!(made[0].starts_with("builtin_vfs-") && made[0].ends_with(".cwasm"));

    // An artifact an earlier version left in the second store's graph root.
    let old = second.tmp.path().join("graph/vfs-components");
    std::fs::create_dir_all(&old).unwrap();
    std::fs::write(old.join(format!("{}.cwasm", "0".repeat(64))), b"old").unwrap();
    let (from_cache, init) = start(&second);
    assert!(
        from_cache,
        "the second store loads the first one's artifact"
    );
    assert_eq!(artifacts(), made);
    assert!(!init.graph_root.join("vfs-components").exists());
}

/// Unmounts at drop whatever a failed test left mounted.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(&self.0, rustix::mount::UnmountFlags::DETACH);
    }
}

fn is_mount_point(path: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let path = path.display().to_string();
    mounts
        .lines()
        .any(|line| line.split(' ').nth(4) == Some(path.as_str()))
}

#[test]
fn a_plugin_from_the_configuration_is_a_driver_and_its_mounts_are_performed() {
    let roots = Roots::new();
    let wasm_file = roots.tmp.path().join("example.wasm");
    std::fs::write(&wasm_file, wasm("storage-test-guest-example-driver")).unwrap();
    let wasm = wasm_file;
    let mut registry = DriverRegistry::new();
    let plugins = BTreeMap::from([(
        "example".to_string(),
        PluginConfig {
            component: wasm.clone(),
            memory_limit: Some(64 << 20),
            deadline_ms: Some(10_000),
        },
    )]);
    register_plugins(&mut registry, &plugins);
    let init = roots.init("example", &[]);
    let driver = start(&registry, "example", &init);
    assert_eq!(driver.name(), "example");
    driver.create("base", None, &CreateOpts::default()).unwrap();
    std::fs::write(init.home.join("dir/base/file"), b"content").unwrap();

    let bind = MountOpts {
        options: vec!["bind".into()],
        ..Default::default()
    };
    let mounted = driver.get("base", &bind).unwrap();
    let _guard = Unmount(mounted.clone());
    assert_eq!(mounted, init.run_root.join("example-mounts/base/merged"));
    assert!(is_mount_point(&mounted));
    assert_eq!(std::fs::read(mounted.join("file")).unwrap(), b"content");
    // The guest asked for a read-only bind.
    assert!(std::fs::write(mounted.join("other"), b"x").is_err());
    driver.put("base").unwrap();
    assert!(!is_mount_point(&mounted));
    assert!(!init.run_root.join("example-mounts/base").exists());

    let status = driver.status();
    assert_eq!(
        status[0],
        ("Component".to_string(), wasm.display().to_string())
    );
    assert!(status.contains(&("Backing Filesystem".to_string(), "example".to_string())));
}

#[test]
fn a_driver_leaving_the_archive_work_to_the_host_gets_the_naive_diff() {
    // The example driver answers `unsupported` to apply-diff, diff, changes and diff-size:
    // the host applies and diffs its directories with the archive component.
    let roots = Roots::new();
    let wasm_file = roots.tmp.path().join("example.wasm");
    std::fs::write(&wasm_file, wasm("storage-test-guest-example-driver")).unwrap();
    let mut registry = DriverRegistry::new();
    let plugins = BTreeMap::from([(
        "example".to_string(),
        PluginConfig {
            component: wasm_file,
            memory_limit: None,
            deadline_ms: None,
        },
    )]);
    register_plugins(&mut registry, &plugins);
    let init = roots.init("example", &[]);
    let driver = start(&registry, "example", &init);
    let home = init.home.clone();
    let opts = CreateOpts::default();
    let none = storage_driver::idmap::IdMappings::default();

    driver.create("base", None, &opts).unwrap();
    let base = layer(&[
        ("etc/", None),
        ("etc/hostname", Some(b"base\n")),
        ("gone", Some(b"deleted by the child")),
    ]);
    let applied = driver
        .apply_diff("base", None, &mut base.as_slice(), &Default::default())
        .unwrap();
    assert_eq!(applied, 5 + 20);
    assert_eq!(
        std::fs::read(home.join("dir/base/etc/hostname")).unwrap(),
        b"base\n"
    );

    driver.create("child", Some("base"), &opts).unwrap();
    let upper = layer(&[("new", Some(b"added")), (".wh.gone", Some(b""))]);
    driver
        .apply_diff(
            "child",
            Some("base"),
            &mut upper.as_slice(),
            &Default::default(),
        )
        .unwrap();
    assert!(!home.join("dir/child/gone").exists());
    assert!(home.join("dir/base/gone").exists());

    let changes = driver.changes("child", &none, Some("base"), &none).unwrap();
    let by_path: BTreeMap<&str, ChangeKind> = changes
        .iter()
        .map(|c| (std::str::from_utf8(&c.path).unwrap(), c.kind))
        .collect();
    assert_eq!(
        by_path,
        BTreeMap::from([("/gone", ChangeKind::Delete), ("/new", ChangeKind::Add)]),
        "{changes:?}"
    );
    assert_eq!(
        driver
            .diff_size("child", &none, Some("base"), &none)
            .unwrap(),
        5
    );

    // With the child's layer mounted by the store (a bind mount the host made for the
    // guest's `get`), the naive diff reads it there and leaves the mount alone.
    let bind = MountOpts {
        options: vec!["bind".into()],
        ..Default::default()
    };
    let mounted = driver.get("child", &bind).unwrap();
    let _guard = Unmount(mounted.clone());
    let mut diff = Vec::new();
    driver
        .diff("child", &none, Some("base"), &none, &mut diff)
        .unwrap();
    let mut names = tar_names(&diff);
    names.sort();
    assert_eq!(names, [".wh.gone", "new"], "{names:?}");
    assert!(is_mount_point(&mounted), "the store's mount stays");
    driver.put("child").unwrap();
    assert!(!is_mount_point(&mounted));

    // The whole layer without a parent; whiteouts are dated now, not 1970.
    let mut full = Vec::new();
    driver.diff("base", &none, None, &none, &mut full).unwrap();
    let names = tar_names(&full);
    assert!(names.contains(&"etc/hostname".to_string()), "{names:?}");
    let mut archive = tar::Archive::new(diff.as_slice());
    let whiteout_mtime = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.path().unwrap().to_str() == Some(".wh.gone"))
        .map(|e| e.header().mtime().unwrap())
        .unwrap();
    assert!(whiteout_mtime > 1_600_000_000, "{whiteout_mtime}");

    // A driver applying a layer itself through the host's `archive` interface (the example
    // does for `self-*` layers, into `root/`): the stream is relayed to the archive
    // component, and an archive's refusal comes back as the archive error it is.
    driver.create("self-a", None, &opts).unwrap();
    let applied = driver
        .apply_diff("self-a", None, &mut base.as_slice(), &Default::default())
        .unwrap();
    assert_eq!(applied, 5 + 20);
    assert_eq!(
        std::fs::read(home.join("dir/self-a/root/etc/hostname")).unwrap(),
        b"base\n"
    );
    driver.create("self-b", None, &opts).unwrap();
    // (The tar crate will not write `..`: the header is made by hand.)
    let mut header = tar::Header::new_gnu();
    header.as_mut_bytes()[..9].copy_from_slice(b"../escape");
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o644);
    header.set_size(1);
    header.set_cksum();
    let mut hostile = header.as_bytes().to_vec();
    hostile.push(b'x');
    hostile.resize(512 * 4, 0);
    let err = driver
        .apply_diff("self-b", None, &mut hostile.as_slice(), &Default::default())
        .unwrap_err();
    assert!(
        matches!(
            err,
            DriverError::Archive(storage_archive::ArchiveError::PathEscape(_))
        ),
        "{err}"
    );
    assert!(!home.join("dir/escape").exists() && !home.join("dir/self-b/escape").exists());

    // A layer that is not there is the driver's error, through the fallback too.
    let err = driver
        .apply_diff("missing", None, &mut base.as_slice(), &Default::default())
        .unwrap_err();
    assert!(
        matches!(err, DriverError::LayerNotFound(ref id) if id == "missing"),
        "{err}"
    );
    // Nothing was left mounted or behind in the run root.
    assert!(!init.run_root.join("example-mounts/child").exists());
}

#[test]
fn a_component_that_is_not_a_driver_is_refused_in_one_line() {
    let roots = Roots::new();
    let wasm = roots.tmp.path().join("archive.wasm");
    std::fs::write(&wasm, super::builtin::ARCHIVE_COMPONENT).unwrap();
    let mut registry = DriverRegistry::new();
    let plugins = BTreeMap::from([(
        "notadriver".to_string(),
        PluginConfig {
            component: wasm,
            memory_limit: None,
            deadline_ms: None,
        },
    )]);
    register_plugins(&mut registry, &plugins);
    let err = registry.factory("notadriver").unwrap()(&roots.init("notadriver", &[]))
        .err()
        .expect("must refuse");
    let message = err.to_string();
    assert!(!message.contains('\n'), "{message}");
    assert!(message.contains("archive.wasm"), "{message}");
    assert!(message.starts_with("driver not supported: "), "{message}");
    // Shown on one line, the component host's error is kept whole as the cause.
    let cause = std::error::Error::source(&err)
        .and_then(std::error::Error::source)
        .and_then(|e| e.downcast_ref::<crate::ComponentError>());
    assert!(cause.is_some(), "{err:?}");
}

#[test]
fn one_line_drops_the_wasm_backtrace() {
    let message = "error while executing at wasm backtrace:\n    0: 0x1234 - guest!main\n    \
                   1: 0x99 - <unknown>!x\nnote: using the `WASMTIME_BACKTRACE_DETAILS` env var\n\n\
                   Caused by:\n    wasm trap: unreachable";
    assert_eq!(
        super::graph_driver::one_line(message),
        "wasm trap: unreachable"
    );
    let _ = ComponentGraphDriver::start;
}
