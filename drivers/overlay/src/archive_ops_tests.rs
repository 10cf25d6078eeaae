//! Tests of applying and producing layer archives through real overlay mounts (root).

use std::os::unix::fs::FileTypeExt;

use storage_driver::{CreateOpts, DriverInit, GraphDriver};

use super::*;
use crate::driver::OverlayDriver;

/// A driver in a temp dir; dropping it unmounts everything mounted under the temp dir.
struct Fixture {
    driver: OverlayDriver,
    root: tempfile::TempDir,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut points: Vec<PathBuf> = info
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .map(PathBuf::from)
            .filter(|p| p.starts_with(self.root.path()))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
        for p in points {
            let _ = rustix::mount::unmount(&p, rustix::mount::UnmountFlags::DETACH);
        }
    }
}

fn fixture() -> Fixture {
    let root = tempfile::tempdir().expect("tempdir");
    let driver = OverlayDriver::new(&DriverInit {
        home: root.path().join("graph/overlay"),
        graph_root: root.path().join("graph"),
        run_root: root.path().join("run"),
        options: vec!["overlay.skip_mount_home=true".to_string()],
        archive: std::sync::Arc::new(
            storage_component_host::archive_provider::ComponentArchiveProvider,
        ),
        ..Default::default()
    })
    .expect("init");
    Fixture { driver, root }
}

enum Entry<'a> {
    Dir(&'a str),
    File(&'a str, &'a str),
}

/// A layer tar built with the `tar` crate (test input only).
fn layer_tar(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(1_700_000_000);
        match entry {
            Entry::Dir(path) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                builder
                    .append_data(&mut header, path, std::io::empty())
                    .expect("dir entry");
            }
            Entry::File(path, content) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o644);
                header.set_size(content.len() as u64);
                builder
                    .append_data(&mut header, path, content.as_bytes())
                    .expect("file entry");
            }
        }
    }
    builder.into_inner().expect("tar")
}

fn entry_names(tar_bytes: &[u8]) -> Vec<String> {
    let mut archive = tar::Archive::new(tar_bytes);
    archive
        .entries()
        .expect("entries")
        .map(|e| {
            let e = e.expect("entry");
            String::from_utf8_lossy(&e.path_bytes()).into_owned()
        })
        .collect()
}

/// Base layer `a` and child `b` that deletes `gone`, makes `odir` opaque and adds files.
fn two_layers(d: &OverlayDriver) {
    let base = layer_tar(&[
        Entry::File("gone", "bye"),
        Entry::File("keep", "kept"),
        Entry::Dir("odir/"),
        Entry::File("odir/old", "old"),
    ]);
    d.create("a", None, &CreateOpts::default())
        .expect("create a");
    d.apply_diff("a", None, &mut base.as_slice(), &Default::default())
        .expect("apply a");
    let child = layer_tar(&[
        Entry::File(".wh.gone", ""),
        Entry::Dir("odir/"),
        Entry::File("odir/.wh..wh..opq", ""),
        Entry::File("odir/n", "new in odir"),
        Entry::File("new", "new"),
    ]);
    d.create("b", Some("a"), &CreateOpts::default())
        .expect("create b");
    d.apply_diff("b", Some("a"), &mut child.as_slice(), &Default::default())
        .expect("apply b");
}

#[test]
fn applied_whiteouts_hide_files_in_the_merged_view() {
    let f = fixture();
    let d = &f.driver;
    two_layers(d);
    let upper = d.diff_dir("b").expect("diff");
    let wh = std::fs::symlink_metadata(upper.join("gone")).expect("whiteout on disk");
    assert!(
        wh.file_type().is_char_device(),
        "overlay whiteout is a char device"
    );
    let mut opaque = [0u8; 4];
    let n = rustix::fs::lgetxattr(
        upper.join("odir").as_path(),
        "trusted.overlay.opaque",
        &mut opaque,
    )
    .expect("opaque xattr");
    assert_eq!(&opaque[..n], b"y");

    let merged = d.get("b", &MountOpts::default()).expect("mount");
    assert!(!merged.join("gone").exists(), "deleted file hidden");
    assert_eq!(
        std::fs::read_to_string(merged.join("keep")).expect("keep"),
        "kept"
    );
    assert!(
        !merged.join("odir/old").exists(),
        "opaque dir hides lower content"
    );
    assert!(merged.join("odir/n").is_file());
    d.put("b").expect("put");
}

#[test]
fn native_diff_gives_back_whiteout_entries() {
    let f = fixture();
    let d = &f.driver;
    two_layers(d);
    let mut out = Vec::new();
    d.diff(
        "b",
        &IdMappings::default(),
        Some("a"),
        &IdMappings::default(),
        &mut out,
    )
    .expect("diff");
    let names = entry_names(&out);
    for wanted in [".wh.gone", "odir/", "odir/.wh..wh..opq", "odir/n", "new"] {
        assert!(names.iter().any(|n| n == wanted), "{wanted} in {names:?}");
    }
    assert!(
        !names.iter().any(|n| n == "gone" || n == "keep"),
        "{names:?}"
    );

    let changes = d
        .changes(
            "b",
            &IdMappings::default(),
            Some("a"),
            &IdMappings::default(),
        )
        .expect("changes");
    let has = |path: &str, kind| {
        changes
            .iter()
            .any(|c| c.path == path.as_bytes() && c.kind == kind)
    };
    use storage_driver::ChangeKind::*;
    assert!(has("/gone", Delete), "{changes:?}");
    assert!(has("/new", Add), "{changes:?}");
    assert!(has("/odir/n", Add), "{changes:?}");

    // The diff re-applied on the same parent gives a layer with the same changes.
    d.create("b2", Some("a"), &CreateOpts::default())
        .expect("create b2");
    d.apply_diff("b2", Some("a"), &mut out.as_slice(), &Default::default())
        .expect("re-apply");
    assert_eq!(
        d.changes(
            "b2",
            &IdMappings::default(),
            Some("a"),
            &IdMappings::default()
        )
        .expect("changes of b2"),
        changes
    );

    let size = d
        .diff_size(
            "b",
            &IdMappings::default(),
            Some("a"),
            &IdMappings::default(),
        )
        .expect("size");
    assert_eq!(size, ("new in odir".len() + "new".len()) as u64);
    // Whole-layer tar of the parentless base.
    let mut base = Vec::new();
    d.diff(
        "a",
        &IdMappings::default(),
        None,
        &IdMappings::default(),
        &mut base,
    )
    .expect("base diff");
    let names = entry_names(&base);
    assert!(names.iter().any(|n| n == "gone") && names.iter().any(|n| n == "odir/old"));
}

#[test]
fn naive_paths_when_parent_is_not_the_real_parent() {
    let f = fixture();
    let d = &f.driver;
    two_layers(d);
    // Against no parent, `b` is its whole merged tree: lower files appear as additions.
    let changes = d
        .changes("b", &IdMappings::default(), None, &IdMappings::default())
        .expect("naive changes");
    let paths: Vec<&str> = changes
        .iter()
        .map(|c| std::str::from_utf8(&c.path).expect("UTF-8"))
        .collect();
    assert!(
        paths.contains(&"/keep") && paths.contains(&"/new"),
        "{paths:?}"
    );
    assert!(
        !paths.contains(&"/gone") && !paths.contains(&"/odir/old"),
        "{paths:?}"
    );
    let mut out = Vec::new();
    d.diff(
        "b",
        &IdMappings::default(),
        None,
        &IdMappings::default(),
        &mut out,
    )
    .expect("naive diff");
    let names = entry_names(&out);
    assert!(names.iter().any(|n| n == "keep"), "{names:?}");
    assert!(
        d.diff_size("b", &IdMappings::default(), None, &IdMappings::default())
            .expect("size")
            >= "kept".len() as u64
    );
    // Nothing stays mounted after the naive paths.
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(!info.contains(f.root.path().to_str().expect("utf-8")));

    // Applying against another parent goes through a mount: deletions become whiteouts
    // made by the kernel.
    d.create("c", Some("a"), &CreateOpts::default())
        .expect("create c");
    let tar = layer_tar(&[Entry::File(".wh.keep", ""), Entry::File("extra", "e")]);
    d.apply_diff("c", None, &mut tar.as_slice(), &Default::default())
        .expect("naive apply");
    let upper = d.diff_dir("c").expect("diff");
    assert!(std::fs::symlink_metadata(upper.join("keep"))
        .expect("whiteout")
        .file_type()
        .is_char_device());
    assert_eq!(
        std::fs::read_to_string(upper.join("extra")).expect("extra"),
        "e"
    );
}

#[test]
fn diff_getter_skips_whiteouts() {
    let f = fixture();
    let d = &f.driver;
    two_layers(d);
    let mut getter = d.diff_getter("b").expect("getter");
    let mut s = String::new();
    getter
        .get(b"keep")
        .expect("from the lower")
        .read_to_string(&mut s)
        .expect("read");
    assert_eq!(s, "kept");
    assert!(getter.get(b"gone").is_err(), "whited out");
    assert!(getter.get(b"odir/old").is_err(), "under an opaque dir");
}

#[test]
fn applied_size_is_measured_unless_unused() {
    let f = fixture();
    let d = &f.driver;
    // A symlink counts in the measure of the tree (its target's length, as Go's
    // `directory.Size` counts it) but not in the sizes the archive's headers carry.
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Symlink);
    header.set_size(0);
    header.set_mode(0o777);
    builder
        .append_link(&mut header, "link", "twelve-bytes")
        .expect("symlink entry");
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o644);
    header.set_size(5);
    builder
        .append_data(&mut header, "file", &b"12345"[..])
        .expect("file entry");
    let tar = builder.into_inner().expect("tar");

    d.create("measured", None, &CreateOpts::default())
        .expect("create");
    let measured = d
        .apply_diff("measured", None, &mut tar.as_slice(), &Default::default())
        .expect("apply");
    assert_eq!(measured, 5 + 12, "the tree walked");

    d.create("unmeasured", None, &CreateOpts::default())
        .expect("create");
    let opts = storage_driver::ApplyDiffOpts {
        size_unused: true,
        ..Default::default()
    };
    let applied = d
        .apply_diff("unmeasured", None, &mut tar.as_slice(), &opts)
        .expect("apply");
    assert_eq!(applied, 5, "the archive's own sizes, no walk");
    let upper = d.diff_dir("unmeasured").expect("diff");
    assert_eq!(std::fs::read(upper.join("file")).expect("file"), b"12345");
}
