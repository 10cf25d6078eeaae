//! Tests of the component runtime with real components: the archive component and the
//! hostile test guests (built on first use, see [`crate::test_guests`]).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::*;

use crate::test_guests::wasm;

/// One runtime for the tests that do not look at the cache (compiling once per process).
fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| Runtime::new(RuntimeConfig::default()).unwrap())
}

fn archive_component() -> &'static ArchiveComponent {
    static COMPONENT: OnceLock<ArchiveComponent> = OnceLock::new();
    COMPONENT.get_or_init(|| {
        let loaded = runtime()
            .load(builtin::ARCHIVE_COMPONENT_NAME, builtin::ARCHIVE_COMPONENT)
            .unwrap();
        ArchiveComponent::new(runtime(), loaded, PluginLimits::default()).unwrap()
    })
}

fn hostile(limits: PluginLimits) -> ArchiveComponent {
    let loaded = runtime()
        .load("hostile", wasm("storage-test-guest-hostile"))
        .unwrap();
    ArchiveComponent::new(runtime(), loaded, limits).unwrap()
}

fn command(text: &str) -> Box<dyn Read + Send> {
    Box::new(std::io::Cursor::new(text.as_bytes().to_vec()))
}

#[test]
fn second_load_comes_from_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let cache_dir = tmp.path().join("cache");
    let config = RuntimeConfig {
        cache_dir: Some(cache_dir.clone()),
    };
    let first = Runtime::new(config.clone()).unwrap();
    let loaded = first
        .load(builtin::ARCHIVE_COMPONENT_NAME, builtin::ARCHIVE_COMPONENT)
        .unwrap();
    assert!(!loaded.from_cache);
    assert!(loaded.digest.starts_with("sha256:"));
    assert_eq!(
        format!("storage:plugin@{}", loaded.wit_version),
        WIT_PACKAGE
    );
    let artifacts: Vec<_> = std::fs::read_dir(&cache_dir).unwrap().collect();
    assert_eq!(artifacts.len(), 1, "one artifact, no temp file left");

    // A new runtime (a new process, as far as the cache knows) loads without compiling.
    let second = Runtime::new(config.clone()).unwrap();
    let start = Instant::now();
    let again = second
        .load(builtin::ARCHIVE_COMPONENT_NAME, builtin::ARCHIVE_COMPONENT)
        .unwrap();
    let elapsed = start.elapsed();
    assert!(again.from_cache);
    assert_eq!(again.digest, loaded.digest);
    assert!(
        elapsed < Duration::from_millis(500),
        "cache load took {elapsed:?}"
    );
    // The cached component works.
    let component = ArchiveComponent::new(&second, again, PluginLimits::default()).unwrap();
    let layer = tmp.path().join("layer");
    std::fs::create_dir(&layer).unwrap();
    std::fs::write(layer.join("f"), b"12345").unwrap();
    assert_eq!(component.tree_size(&layer).unwrap(), 5);

    // A cache others can write is not trusted: compiled again, never loaded from there.
    std::fs::set_permissions(&cache_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let third = Runtime::new(config).unwrap();
    let untrusted = third
        .load(builtin::ARCHIVE_COMPONENT_NAME, builtin::ARCHIVE_COMPONENT)
        .unwrap();
    assert!(!untrusted.from_cache);
}

#[test]
fn a_component_importing_wasi_filesystem_is_refused() {
    let err = runtime()
        .load("fs-importer", wasm("storage-test-guest-fs-importer"))
        .err()
        .unwrap();
    let message = err.to_string();
    assert!(matches!(err, ComponentError::Refused { .. }), "{message}");
    assert!(message.contains("wasi:filesystem"), "{message}");
    assert!(message.contains("fs-importer"), "{message}");
}

#[test]
fn a_guest_allocating_without_bound_is_stopped() {
    let limits = PluginLimits {
        memory_bytes: 64 << 20,
        deadline: Duration::from_secs(60),
    };
    let tmp = tempfile::tempdir().unwrap();
    let err = hostile(limits)
        .apply_diff(tmp.path(), command("oom"), &Default::default())
        .err()
        .unwrap();
    let message = err.to_string();
    assert!(
        matches!(
            err,
            ComponentError::Stopped {
                reason: StopReason::OutOfMemory,
                ..
            }
        ),
        "{message}"
    );
    assert!(message.contains("exceeded its memory limit"), "{message}");
}

#[test]
fn a_guest_looping_forever_is_stopped_at_its_deadline() {
    let limits = PluginLimits {
        memory_bytes: 64 << 20,
        deadline: Duration::from_millis(200),
    };
    let tmp = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let err = hostile(limits)
        .apply_diff(tmp.path(), command("loop"), &Default::default())
        .err()
        .unwrap();
    let message = err.to_string();
    assert!(
        matches!(
            err,
            ComponentError::Stopped {
                reason: StopReason::Deadline,
                ..
            }
        ),
        "{message}"
    );
    assert!(message.contains("ran past its deadline"), "{message}");
    assert!(start.elapsed() < Duration::from_secs(10));
}

/// Everything observable about a path that an escape could change.
fn fingerprint(path: &Path) -> (u32, u32, u32, i64, i64, Vec<String>) {
    let meta = std::fs::symlink_metadata(path).unwrap();
    let mut names: Vec<String> = if meta.is_dir() {
        std::fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    } else {
        vec![String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned()]
    };
    names.sort();
    (
        meta.mode(),
        meta.uid(),
        meta.gid(),
        meta.mtime(),
        meta.mtime_nsec(),
        names,
    )
}

/// What the hostile guest reports of running `cmd` in `dir`: one `name=result` line per
/// attempt, sent back as its refusal.
fn hostile_report(dir: &Path, cmd: &str) -> String {
    let err = hostile(PluginLimits::default())
        .apply_diff(dir, command(cmd), &Default::default())
        .err()
        .unwrap();
    match err {
        ComponentError::Archive {
            source: storage_archive::ArchiveError::Refused { reason, .. },
            ..
        } => reason,
        other => panic!("unexpected {other}"),
    }
}

/// The `name=result` lines of a [`hostile_report`].
fn report_lines(report: &str) -> BTreeMap<&str, &str> {
    report
        .lines()
        .filter_map(|line| line.split_once('='))
        .collect()
}

#[test]
fn the_host_refuses_overlay_xattrs_but_the_opaque_mark_on_a_directory() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("overlay xattr policy: trusted.* needs root; skipped");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let report = hostile_report(tmp.path(), "policy");
    let results = report_lines(&report);
    for refused in [
        "redirect",
        "metacopy",
        "user-origin",
        "opaque-on-file",
        "opaque-other-value",
    ] {
        let result = results[refused];
        assert!(
            result
                .starts_with("FsErrorKind::PermissionDenied: refused by the host's policy: xattr "),
            "{refused}: {report}"
        );
    }
    // Also when set with the calls that set several attributes at once.
    for refused in ["meta-redirect", "new-file-metacopy"] {
        let result = results[refused];
        assert!(
            result
                .starts_with("FsErrorKind::PermissionDenied: refused by the host's policy: xattr "),
            "{refused}: {report}"
        );
    }
    for allowed in [
        "opaque-dir",
        "user-opaque-dir",
        "plain-user",
        "meta-opaque-dir",
    ] {
        assert_eq!(results[allowed], "ok", "{allowed}: {report}");
    }
    assert!(!tmp.path().join("g").exists(), "refused before it was made");
    // `mknod` makes device nodes only; root outside a user namespace makes them as
    // upstream does (in one, only the whiteout: the rule's unit tests in host_fs::rules).
    for refused in ["mknod-regular", "mknod-fifo"] {
        assert!(
            results[refused].starts_with(
                "FsErrorKind::PermissionDenied: refused by the host's policy: mknod of "
            ),
            "{refused}: {report}"
        );
    }
    if !storage_driver::idmap::running_in_user_namespace() {
        assert_eq!(results["dev-null"], "ok", "{report}");
    }
    assert_eq!(results["whiteout"], "ok", "{report}");
    let mut buf = [0u8; 64];
    assert!(
        rustix::fs::lgetxattr(tmp.path().join("d"), "trusted.overlay.redirect", &mut buf).is_err(),
        "the refused attribute is not there"
    );
    let opaque = rustix::fs::lgetxattr(tmp.path().join("d"), "trusted.overlay.opaque", &mut buf);
    assert_eq!(opaque.ok().map(|n| &buf[..n]), Some(&b"y"[..]));
}

#[test]
fn escape_attempts_touch_nothing_outside_the_lent_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path();
    let lent = base.join("lent");
    let outside = base.join("outside");
    std::fs::create_dir_all(lent.join("sub")).unwrap();
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret"), b"top secret").unwrap();
    std::fs::set_permissions(
        outside.join("secret"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let watched = [base.to_path_buf(), outside.clone(), outside.join("secret")];
    let before: Vec<_> = watched.iter().map(|p| fingerprint(p)).collect();

    let report = hostile_report(&lent, &format!("escape {}", outside.display()));
    let results = report_lines(&report);
    assert!(results.len() > 25, "{report}");
    println!("{report}");

    // Nothing outside changed: not the secret, not the directory beside, not the parent.
    let after: Vec<_> = watched.iter().map(|p| fingerprint(p)).collect();
    assert_eq!(before, after, "{report}");
    assert!(!report.contains("top secret"));
    // What names `..` or an absolute path is refused outright.
    for (name, result) in &results {
        if name.ends_with("-dotdot") || ["mkdir-abs", "create-abs", "read-abs"].contains(name) {
            assert!(result.ends_with("PathEscape"), "{name}: {report}");
        }
    }
    // Reads through planted symlinks do not get the secret.
    for name in [
        "read-via-abs",
        "read-via-link",
        "hardlink-via-link",
        "open-dir-link",
    ] {
        assert_ne!(results[name], "ok", "{name}: {report}");
    }
    // What the guest could create stayed inside: only names it made, all in the lent dir.
    let mut inside: Vec<String> = std::fs::read_dir(&lent)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    inside.sort();
    for name in &inside {
        assert!(
            [
                "abs-link",
                "rel-link",
                "secret-link",
                "sub",
                "moved",
                "outside"
            ]
            .contains(&name.as_str()),
            "unexpected {name} in {inside:?}: {report}"
        );
    }
}

// ---- the archive component against the native build of the same crate ----

/// A tar with the shapes layers have: dirs, files (one large), symlinks, a hard link, a fifo,
/// owners, modes, times and an xattr.
fn base_layer() -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut add = |path: &str, kind: tar::EntryType, mode: u32, data: &[u8], link: Option<&str>| {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(1000);
        header.set_gid(100);
        header.set_mtime(1_600_000_000);
        header.set_size(data.len() as u64);
        if let Some(link) = link {
            header.set_link_name(link).unwrap();
        }
        builder.append_data(&mut header, path, data).unwrap();
    };
    add("etc/", tar::EntryType::Directory, 0o755, b"", None);
    add(
        "etc/hostname",
        tar::EntryType::Regular,
        0o644,
        b"layer\n",
        None,
    );
    add(
        "etc/shadow",
        tar::EntryType::Regular,
        0o600,
        b"root:*:1::::::\n",
        None,
    );
    add("bin/", tar::EntryType::Directory, 0o755, b"", None);
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    add("bin/tool", tar::EntryType::Regular, 0o4755, &big, None);
    add(
        "bin/alias",
        tar::EntryType::Symlink,
        0o777,
        b"",
        Some("tool"),
    );
    add(
        "bin/tool-hard",
        tar::EntryType::Link,
        0o755,
        b"",
        Some("bin/tool"),
    );
    add("run/", tar::EntryType::Directory, 0o1777, b"", None);
    add("run/pipe", tar::EntryType::Fifo, 0o644, b"", None);
    add("opt/", tar::EntryType::Directory, 0o755, b"", None);
    add("opt/app/", tar::EntryType::Directory, 0o750, b"", None);
    add(
        "opt/app/data",
        tar::EntryType::Regular,
        0o640,
        b"data",
        None,
    );
    builder.into_inner().unwrap()
}

/// A layer on top: a deletion, an opaque directory and a replaced file.
fn upper_layer() -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut add = |path: &str, kind: tar::EntryType, mode: u32, data: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_mtime(1_700_000_000);
        header.set_size(data.len() as u64);
        builder.append_data(&mut header, path, data).unwrap();
    };
    add("etc/", tar::EntryType::Directory, 0o755, b"");
    add("etc/.wh.shadow", tar::EntryType::Regular, 0o644, b"");
    add("etc/hostname", tar::EntryType::Regular, 0o644, b"upper\n");
    add("opt/app/", tar::EntryType::Directory, 0o755, b"");
    add("opt/app/.wh..wh..opq", tar::EntryType::Regular, 0o644, b"");
    add("opt/app/new", tar::EntryType::Regular, 0o644, b"new");
    builder.into_inner().unwrap()
}

/// Every path of a tree with what `apply` sets on it.
fn tree(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let content = if meta.is_file() {
                format!("{:x}", sha2::Sha256::digest(std::fs::read(&path).unwrap()))
            } else if meta.file_type().is_symlink() {
                std::fs::read_link(&path).unwrap().display().to_string()
            } else {
                String::new()
            };
            if meta.is_dir() {
                stack.push(path.clone());
            }
            out.insert(
                path.strip_prefix(root).unwrap().to_path_buf(),
                format!(
                    "mode={:o} uid={} gid={} mtime={}.{} nlink={} {content}",
                    meta.mode(),
                    meta.uid(),
                    meta.gid(),
                    meta.mtime(),
                    meta.mtime_nsec(),
                    if meta.is_dir() { 0 } else { meta.nlink() },
                ),
            );
        }
    }
    out
}

use sha2::Digest;

/// A writer the test can read back after the component gave the box back.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn an_import_is_applied_from_the_headers_the_host_parsed() {
    // The header bytes are blanked (`blank_outlined`): the trees can only be right if the
    // entries come from the parsed headers, natively and through the component alike.
    let tmp = tempfile::tempdir().unwrap();
    let dirs = ["bytes", "native", "component"].map(|d| tmp.path().join(d));
    for dir in &dirs {
        std::fs::create_dir(dir).unwrap();
    }
    let opts = storage_archive::ApplyOptions::default();
    for layer in [base_layer(), upper_layer()] {
        let n =
            storage_driver::confined::apply_tar(&dirs[0], &mut layer.as_slice(), &opts).unwrap();
        let native = storage_driver::confined::apply_parsed_tar(
            &dirs[1],
            &mut crate::test_guests::blank_outlined(&layer),
            &opts,
        )
        .unwrap();
        let component = archive_component()
            .apply_diff_from(
                &dirs[2],
                storage_driver::parsed_tar::LayerTar::Parsed(crate::test_guests::blank_outlined(
                    &layer,
                )),
                &opts,
            )
            .unwrap();
        assert_eq!((native, component), (n, n));
    }
    let from_bytes = tree(&dirs[0]);
    assert!(from_bytes.contains_key(Path::new("bin/tool")));
    assert_eq!(tree(&dirs[1]), from_bytes);
    assert_eq!(tree(&dirs[2]), from_bytes);
}

#[test]
fn applying_through_the_component_gives_the_native_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let native = tmp.path().join("native");
    let wasm = tmp.path().join("component");
    std::fs::create_dir(&native).unwrap();
    std::fs::create_dir(&wasm).unwrap();
    let opts = storage_archive::ApplyOptions::default();
    let mut sizes = Vec::new();
    for layer in [base_layer(), upper_layer()] {
        let n = storage_driver::confined::apply_tar(&native, &mut layer.as_slice(), &opts).unwrap();
        let c = archive_component()
            .apply_diff(&wasm, Box::new(std::io::Cursor::new(layer)), &opts)
            .unwrap();
        sizes.push((n, c));
    }
    for (n, c) in &sizes {
        assert_eq!(n, c);
    }
    let native_tree = tree(&native);
    assert!(native_tree.contains_key(Path::new("bin/tool")));
    assert!(!native_tree.contains_key(Path::new("etc/shadow")));
    assert!(!native_tree.contains_key(Path::new("opt/app/data")));
    assert_eq!(native_tree, tree(&wasm));

    // The tar of the tree is the same bytes both ways (file contents copied by the host).
    let diff_opts = storage_archive::DiffOptions::default();
    let mut native_tar = Vec::new();
    storage_driver::confined::write_tar(&native, &mut native_tar, &diff_opts).unwrap();
    let shared = Shared::default();
    archive_component()
        .write_tree(&wasm, Box::new(shared.clone()), &diff_opts)
        .unwrap();
    let component_tar = shared.0.lock().unwrap().clone();
    assert_eq!(native_tar.len(), component_tar.len());
    assert!(native_tar == component_tar);

    // Changes and sizes against a parent agree too.
    let parent = tmp.path().join("parent");
    std::fs::create_dir(&parent).unwrap();
    storage_driver::confined::apply_tar(&parent, &mut base_layer().as_slice(), &opts).unwrap();
    let mapping = storage_archive::IdMapping::default();
    let component_changes = archive_component()
        .changes(&wasm, Some(&parent), &mapping, &mapping)
        .unwrap();
    let no_mappings = storage_driver::idmap::IdMappings::default();
    let parent_tree = storage_driver::confined::ParentTree {
        path: &parent,
        mappings: &no_mappings,
    };
    let native_changes =
        storage_driver::confined::changes_naive(&native, &no_mappings, Some(parent_tree)).unwrap();
    let paths = |c: &[storage_archive::Change]| -> Vec<String> {
        c.iter()
            .map(|c| format!("/{} {:?}", String::from_utf8_lossy(&c.path), c.kind))
            .collect()
    };
    let native_paths: Vec<String> = native_changes
        .iter()
        .map(|c| format!("{} {:?}", String::from_utf8_lossy(&c.path), c.kind))
        .collect();
    assert!(!component_changes.is_empty());
    assert_eq!(paths(&component_changes), native_paths);
    assert_eq!(
        archive_component()
            .diff_size(&wasm, Some(&parent), &mapping, &mapping)
            .unwrap(),
        storage_driver::confined::diff_size_naive(&native, &no_mappings, Some(parent_tree))
            .unwrap()
    );
}

#[test]
fn an_archive_error_in_the_guest_is_the_archive_crates_error() {
    let tmp = tempfile::tempdir().unwrap();
    // A header whose checksum is wrong.
    let mut bad = base_layer();
    bad[148..156].copy_from_slice(b"0000000\0");
    let err = archive_component()
        .apply_diff(
            tmp.path(),
            Box::new(std::io::Cursor::new(bad)),
            &Default::default(),
        )
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            ComponentError::Archive {
                source: storage_archive::ArchiveError::InvalidHeader(_),
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_real_tar_of_etc_applies_the_same_both_ways() {
    // GNU tar's own output: PAX/GNU headers, long names, every file type /etc has.
    let tar = std::process::Command::new("tar")
        .args(["--numeric-owner", "--xattrs", "-C", "/", "-cf", "-", "etc"])
        .output();
    let Ok(tar) = tar else {
        eprintln!("skipped: no GNU tar");
        return;
    };
    assert!(!tar.stdout.is_empty());
    let tmp = tempfile::tempdir().unwrap();
    let native = tmp.path().join("native");
    let wasm = tmp.path().join("component");
    std::fs::create_dir(&native).unwrap();
    std::fs::create_dir(&wasm).unwrap();
    let opts = storage_archive::ApplyOptions::default();
    let n =
        storage_driver::confined::apply_tar(&native, &mut tar.stdout.as_slice(), &opts).unwrap();
    let c = archive_component()
        .apply_diff(&wasm, Box::new(std::io::Cursor::new(tar.stdout)), &opts)
        .unwrap();
    assert_eq!(n, c);
    let native_tree = tree(&native);
    assert!(native_tree.len() > 100, "{}", native_tree.len());
    assert_eq!(native_tree, tree(&wasm));
}

#[test]
fn copy_tree_copies_everything_and_stays_inside() {
    let tmp = tempfile::tempdir().unwrap();
    let lent = tmp.path().join("lent");
    let src = lent.join("src");
    std::fs::create_dir_all(src.join("dir")).unwrap();
    std::fs::create_dir(lent.join("sub")).unwrap();
    std::fs::write(src.join("file"), vec![7u8; 200_000]).unwrap();
    std::fs::hard_link(src.join("file"), src.join("dir/link")).unwrap();
    std::os::unix::fs::symlink("../file", src.join("dir/sym")).unwrap();
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        src.join("fifo"),
        rustix::fs::Mode::from_bits_truncate(0o640),
    )
    .unwrap();
    std::os::unix::fs::lchown(src.join("file"), Some(1000), Some(1000)).unwrap();
    std::fs::set_permissions(src.join("file"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    rustix::fs::setxattr(
        src.join("dir"),
        "user.note",
        b"kept",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    let times = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: 1_000_000,
            tv_nsec: 5,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: 1_500_000,
            tv_nsec: 7,
        },
    };
    for p in ["dir", "file", ""] {
        rustix::fs::utimensat(
            rustix::fs::CWD,
            src.join(p),
            &times,
            rustix::fs::AtFlags::empty(),
        )
        .unwrap();
    }
    let before_parent = fingerprint(tmp.path());

    let err = hostile(PluginLimits::default())
        .apply_diff(&lent, command("copy"), &Default::default())
        .err()
        .unwrap();
    let report = err.to_string();
    let many = format!("open-many={}", host_fs::MAX_OPENED_DIRS - 1);
    for line in [
        "copy=ok",
        "open-sub=ok",
        "copy-into-sub=ok",
        &many,
        "open-after-drop=ok",
    ] {
        assert!(report.contains(line), "{line}: {report}");
    }
    for name in ["copy-sub-dotdot", "copy-dotdot", "copy-to-dotdot"] {
        assert!(
            report.contains(&format!("{name}=FsErrorKind::PathEscape")),
            "{name}: {report}"
        );
    }
    let source_tree = tree(&src);
    assert_eq!(source_tree.len(), 5);
    assert_eq!(tree(&lent.join("dst")), source_tree);
    assert_eq!(tree(&lent.join("sub/copied")), source_tree);
    let xattr = |p: &Path| {
        let mut buf = [0u8; 16];
        let n = rustix::fs::getxattr(p, "user.note", &mut buf).unwrap();
        buf[..n].to_vec()
    };
    assert_eq!(xattr(&lent.join("dst/dir")), b"kept");
    assert_eq!(fingerprint(tmp.path()), before_parent);
}

#[test]
fn a_third_party_driver_component_serves_layers_in_its_home() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("example");
    let loaded = runtime()
        .load("example.wasm", wasm("storage-test-guest-example-driver"))
        .unwrap();
    let driver = DriverComponent::new(
        runtime(),
        loaded,
        PluginLimits::default(),
        &home,
        Vec::new(),
        &Default::default(),
    )
    .unwrap();
    let opts = storage_driver::CreateOpts::default();
    driver.create("base", None, &opts).unwrap();
    assert!(driver.exists("base"));
    assert!(!driver.exists("other"));
    std::fs::write(home.join("dir/base/file"), b"from the parent").unwrap();
    driver
        .create_read_write("child", Some("base"), &opts)
        .unwrap();
    assert_eq!(
        std::fs::read(home.join("dir/child/file")).unwrap(),
        b"from the parent"
    );
    assert_eq!(driver.list_layers().unwrap(), ["base", "child"]);

    let mount = storage_driver::MountOpts::default();
    assert_eq!(
        driver.get("child", &mount).unwrap(),
        LayerLocation::Directory(home.join("dir/child"))
    );
    let bind = storage_driver::MountOpts {
        options: vec!["bind".into()],
        ..Default::default()
    };
    match driver.get("child", &bind).unwrap() {
        LayerLocation::Mounts(mounts) => {
            assert_eq!(mounts[0].fstype, "bind");
            assert_eq!(mounts[0].sources, [home.join("dir/child")]);
        }
        other => panic!("{other:?}"),
    }
    let err = driver.create("base", None, &opts).unwrap_err();
    assert!(
        matches!(err, storage_driver::DriverError::LayerExists(_)),
        "{err}"
    );
    let err = driver.create("../escape", None, &opts).unwrap_err();
    assert!(
        matches!(err, storage_driver::DriverError::BadOption(_)),
        "{err}"
    );
    let err = driver.get("missing", &mount).unwrap_err();
    assert!(
        matches!(err, storage_driver::DriverError::LayerNotFound(_)),
        "{err}"
    );

    // What the example leaves to the host is reported as unsupported, by name (the
    // `GraphDriver` of a component then does it: vfs_tests); its `diff-size` goes through the
    // host's `archive` interface.
    let none = storage_driver::idmap::IdMappings::default();
    std::fs::write(home.join("dir/child/file"), b"12345").unwrap();
    assert_eq!(driver.diff_size("child", &none, None, &none).unwrap(), 5);
    let err = driver.changes("child", &none, None, &none).unwrap_err();
    assert!(
        matches!(err, storage_driver::DriverError::Unsupported("changes")),
        "{err}"
    );
    let err = driver
        .apply_diff("child", None, command(""), &Default::default())
        .unwrap_err();
    assert!(
        matches!(err, storage_driver::DriverError::Unsupported("apply-diff")),
        "{err}"
    );

    let status = driver.status();
    assert!(status.contains(&("WIT Version".to_string(), WIT_PACKAGE.to_string())));
    assert!(status.contains(&("Layers".to_string(), "2".to_string())));
    driver.remove("base").unwrap();
    assert!(!driver.exists("base"));
    assert_eq!(driver.list_layers().unwrap(), ["child"]);
    // Everything the driver did is inside its home.
    let mut around: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    around.sort();
    assert_eq!(around, [std::ffi::OsString::from("example")]);
}
