//! The btrfs driver through the binary: layers are subvolumes under `btrfs/subvolumes`,
//! children are snapshots of their parents, removal takes nested subvolumes along,
//! `btrfs.min_space` turns quotas on, bad options and a home that is not on btrfs fail in
//! one line, and `shutdown` undoes the home's bind mount. `btrfs` (btrfs-progs) only
//! inspects what the driver did; the driver itself uses ioctls. The per-layer `size`
//! quota, which no command sets, is proven against the kernel by the driver's own tests.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::loop_btrfs::LoopBtrfs;
use crate::harness::{id, tar_of, Scratch, STORAGE};

/// Inode number of every subvolume root (`BTRFS_FIRST_FREE_OBJECTID`).
const SUBVOLUME_ROOT_INO: u64 = 256;

/// Runs `btrfs args...`, which must succeed; returns its standard output.
fn btrfs(args: &[&str], path: &Path) -> String {
    let out = Command::new("btrfs")
        .args(args)
        .arg(path)
        .output()
        .expect("running btrfs");
    assert!(
        out.status.success(),
        "btrfs {args:?} {}: {out:?}",
        path.display()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of `key:` in `btrfs subvolume show` output.
fn field(show: &str, key: &str) -> String {
    show.lines()
        .find_map(|l| l.trim().strip_prefix(key))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no {key} in {show}"))
}

fn subvolume(s: &Scratch, layer: &str) -> PathBuf {
    s.graph().join("btrfs/subvolumes").join(layer)
}

fn is_mount_point(path: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let wanted = path.display().to_string();
    info.lines()
        .any(|l| l.split(' ').nth(4) == Some(wanted.as_str()))
}

#[test]
fn layers_are_subvolumes_and_children_snapshots_of_their_parents() {
    let s = Scratch::new();
    let tar = tar_of(&[("etc/", b""), ("etc/os-release", b"ID=btrfs\n")]);
    let base = s.import_layer(&["-n", "base"], &tar);
    let img = id("btrfsimg");
    s.ok(&["create-image", "--id", &img, &base]);
    let ctr = s.ok(&["create-container", &img]);
    let ctr = ctr.trim();
    let record = s.run(&["container", "-j", ctr]).json();
    let record = if record.is_array() {
        &record[0]
    } else {
        &record
    };
    let ctr_layer = record["layer"].as_str().unwrap().to_string();

    let base_dir = subvolume(&s, &base);
    let ctr_dir = subvolume(&s, &ctr_layer);
    for dir in [&base_dir, &ctr_dir] {
        let meta = std::fs::metadata(dir).unwrap();
        assert_eq!(
            meta.ino(),
            SUBVOLUME_ROOT_INO,
            "{} is a subvolume",
            dir.display()
        );
    }
    let parent_show = btrfs(&["subvolume", "show"], &base_dir);
    let child_show = btrfs(&["subvolume", "show"], &ctr_dir);
    assert_eq!(
        field(&child_show, "Parent UUID:"),
        field(&parent_show, "UUID:"),
        "the container layer is a snapshot of the image's layer"
    );
    assert_eq!(
        field(&parent_show, "Parent UUID:"),
        "-",
        "a parentless layer is new"
    );

    // Mounting answers with the subvolume itself; nothing is mounted for it.
    let mounted = PathBuf::from(s.ok(&["mount", ctr]).trim());
    assert_eq!(mounted, ctr_dir);
    assert!(!is_mount_point(&mounted));
    assert_eq!(
        std::fs::read(mounted.join("etc/os-release")).unwrap(),
        b"ID=btrfs\n"
    );
    std::fs::write(mounted.join("etc/added"), b"new\n").unwrap();
    std::fs::remove_file(mounted.join("etc/os-release")).unwrap();
    s.ok(&["unmount", ctr]);
    assert!(
        base_dir.join("etc/os-release").exists(),
        "the parent is untouched"
    );

    let changes = s.ok(&["changes", &ctr_layer]);
    assert_eq!(
        changes,
        "Modify \"/etc\"\nAdd \"/etc/added\"\nDelete \"/etc/os-release\"\n"
    );
    let diff = s.run(&["diff", "-u", &base]);
    assert_eq!(diff.code, 0, "{}", diff.stderr);
    assert_eq!(diff.stdout, tar, "diff is the imported tar, byte for byte");

    let listed = s.ok(&["storage-layers"]);
    let mut expected = vec![base.clone(), ctr_layer.clone()];
    expected.sort();
    let mut got: Vec<String> = listed.lines().map(str::to_string).collect();
    got.sort();
    assert_eq!(got, expected);
}

#[test]
fn deleting_a_layer_deletes_its_subvolume_and_the_ones_inside_it() {
    let s = Scratch::new();
    let layer = s.create_layer(&[]);
    let dir = PathBuf::from(s.ok(&["mount", &layer]).trim());
    btrfs(&["subvolume", "create"], &dir.join("inner"));
    btrfs(&["subvolume", "create"], &dir.join("inner/innermost"));
    std::fs::write(dir.join("inner/innermost/file"), b"x").unwrap();
    s.ok(&["unmount", &layer]);
    s.ok(&["delete-layer", &layer]);
    assert!(!dir.exists());
    let all = btrfs(&["subvolume", "list", "-a"], &s.graph());
    assert!(!all.contains(&layer), "{all}");
    assert_eq!(s.ok(&["storage-layers"]), "");
}

#[test]
fn status_names_the_driver_and_its_versions() {
    let s = Scratch::new();
    let o = s.run(&["status"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stderr.contains("Driver Name: btrfs\n"), "{}", o.stderr);
    assert!(o.stderr.contains("\nBuild Version: "), "{}", o.stderr);
    assert!(o.stderr.contains("\nLibrary Version: "), "{}", o.stderr);
}

#[test]
fn the_home_is_a_private_bind_mount_until_shutdown() {
    let s = Scratch::new();
    s.create_layer(&[]);
    let home = s.graph().join("btrfs");
    assert!(is_mount_point(&home));
    s.ok(&["shutdown"]);
    assert!(
        !is_mount_point(&home),
        "shutdown unmounts the home, as upstream"
    );
    assert!(is_mount_point(&crate::harness::loop_btrfs::shared_mount()));
}

#[test]
fn min_space_turns_quotas_on() {
    // Quotas are a property of the whole filesystem: a filesystem of its own.
    let fs = LoopBtrfs::new("quota");
    let s = Scratch::with_binary_in(&fs.mnt(), Path::new(STORAGE), "btrfs");
    let qgroups = |path: &Path| {
        Command::new("btrfs")
            .args(["qgroup", "show"])
            .arg(path)
            .output()
            .unwrap()
    };
    s.create_layer(&[]);
    assert!(
        !qgroups(&fs.mnt()).status.success(),
        "quotas start disabled"
    );
    let layer = s.create_layer(&["--storage-opt", "btrfs.min_space=10M"]);
    let shown = qgroups(&fs.mnt());
    assert!(shown.status.success(), "{shown:?}");
    let id = btrfs(&["subvolume", "show"], &subvolume(&s, &layer));
    let qgroup = format!("0/{}", field(&id, "Subvolume ID:"));
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains(&qgroup),
        "the new layer has its qgroup {qgroup}: {shown:?}"
    );
    s.ok(&[
        "--storage-opt",
        "btrfs.min_space=10M",
        "delete-layer",
        &layer,
    ]);
    assert!(!subvolume(&s, &layer).exists());
    // The store goes before its filesystem.
    drop(s);
}

#[test]
fn bad_options_fail_initialisation_in_one_line() {
    let s = Scratch::new();
    for (opt, message) in [
        (
            "btrfs.mountopt=nodev",
            "btrfs driver does not support mount options",
        ),
        ("btrfs.bogus=1", "unknown option btrfs.bogus"),
        ("btrfs.min_space=lots", "btrfs: invalid size"),
    ] {
        let o = s.run(&["--storage-opt", opt, "layers"]);
        assert_eq!(o.code, 1, "{opt}: {o:?}");
        assert!(o.out().starts_with("error initializing: "), "{opt}: {o:?}");
        assert!(o.out().contains(message), "{opt}: {o:?}");
        assert_eq!(o.out().lines().count(), 1, "{opt}: {o:?}");
    }
    assert_nothing_made_but_the_home(&s);
}

/// A driver that did not start made nothing in its home: the store made the home itself
/// before starting it, empty, as upstream 1.60's `GetStore` does.
fn assert_nothing_made_but_the_home(s: &Scratch) {
    let home = s.graph().join("btrfs");
    let inside: Vec<_> = std::fs::read_dir(&home)
        .unwrap_or_else(|e| panic!("{}: {e}", home.display()))
        .collect();
    assert!(inside.is_empty(), "something was made: {inside:?}");
}

#[test]
fn a_home_that_is_not_on_btrfs_is_refused_in_one_line() {
    let tmp = std::env::temp_dir();
    let magic = nix::sys::statfs::statfs(&tmp).unwrap().filesystem_type();
    if magic == nix::sys::statfs::BTRFS_SUPER_MAGIC {
        eprintln!("{} is on btrfs: nothing to check", tmp.display());
        return;
    }
    let s = Scratch::with_binary_in(&tmp, Path::new(STORAGE), "btrfs");
    let o = s.run(&["layers"]);
    assert_eq!(o.code, 1, "{o:?}");
    let line = o.out();
    assert!(line.starts_with("error initializing: "), "{o:?}");
    assert!(line.contains("is not on a btrfs filesystem"), "{o:?}");
    assert_eq!(line.lines().count(), 1, "{o:?}");
    assert_nothing_made_but_the_home(&s);
}

#[test]
fn native_and_component_archives_give_the_same_layer() {
    let s = Scratch::new();
    let tar = tar_of(&[("d/", b""), ("d/a", b"alpha"), ("d/b", b"beta")]);
    let via_component = s.import_layer(&[], &tar);
    let via_native = s.import_layer(&["--storage-opt", "btrfs.archive=native"], &tar);
    for layer in [&via_component, &via_native] {
        assert_eq!(
            std::fs::read(subvolume(&s, layer).join("d/b")).unwrap(),
            b"beta"
        );
    }
    let child = s.create_layer(&[&via_native]);
    let dir = PathBuf::from(s.ok(&["mount", &child]).trim());
    std::fs::remove_file(dir.join("d/a")).unwrap();
    s.ok(&["unmount", &child]);
    let component = s.ok(&["changes", &child]);
    let native = s.ok(&["--storage-opt", "btrfs.archive=native", "changes", &child]);
    assert_eq!(component, "Modify \"/d\"\nDelete \"/d/a\"\n");
    assert_eq!(native, component);
    let o = s.run(&["--storage-opt", "btrfs.archive=wasm", "layers"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.out().contains("archive must be"), "{o:?}");
}

#[test]
fn go_containers_storage_reads_and_extends_the_store() {
    let Some(go_cli) = crate::harness::reference_binary() else {
        return;
    };
    let s = Scratch::new();
    let tar = tar_of(&[("etc/", b""), ("etc/hostname", b"shared\n")]);
    let layer = s.import_layer(&["-n", "base"], &tar);
    s.ok(&["create-image", "-n", "img", &layer]);
    s.ok(&["shutdown"]);
    let go = |args: &[&str]| {
        let out = Command::new(&go_cli)
            .args(s.globals())
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "go {args:?}: {out:?}");
        out.stdout
    };
    assert_eq!(go(&["diff", "-u", "base"]), tar, "Go re-creates our layer");
    let ctr = String::from_utf8(go(&["create-container", "img"])).unwrap();
    let ctr = ctr.lines().next().unwrap().to_string();
    go(&["shutdown"]);
    // Go's container layer is a snapshot in the same layout, and we use it.
    let mounted = PathBuf::from(s.ok(&["mount", &ctr]).trim());
    assert!(mounted.starts_with(s.graph().join("btrfs/subvolumes")));
    assert_eq!(
        std::fs::metadata(&mounted).unwrap().ino(),
        SUBVOLUME_ROOT_INO
    );
    assert_eq!(
        std::fs::read(mounted.join("etc/hostname")).unwrap(),
        b"shared\n"
    );
    s.ok(&["unmount", &ctr]);
    s.ok(&["delete-container", &ctr]);
    assert!(!mounted.exists());
}
