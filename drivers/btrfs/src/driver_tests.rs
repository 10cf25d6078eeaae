//! The driver on a real btrfs: a sparse image made with `mkfs.btrfs` and loop-mounted per
//! test (root only). The fixture unmounts on drop, also when the test fails, and sweeps
//! what a killed earlier run left behind.

use super::*;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;
use storage_driver::syscalls::{LinuxSyscalls, Syscalls};
use storage_driver::ChangeKind;

/// Prefix of the fixture directories in the temporary directory: `<prefix><pid>-<n>`.
const PREFIX: &str = "storage-btrfs-unit-";

/// A btrfs filesystem loop-mounted at `<dir>/mnt`; the image file is deleted once mounted
/// (the loop device keeps it), and `mount -o loop` sets autoclear, so unmounting frees the
/// loop device and the space.
struct LoopBtrfs {
    dir: PathBuf,
}

/// Whether the process `pid` is alive.
fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Unmounts and removes fixture directories of processes that are gone.
fn sweep() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|p| !alive(p)) {
            detach_below(&entry.path());
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Detaches every mount at or below `dir`, deepest first.
fn detach_below(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    for p in points {
        let _ = rustix::mount::unmount(&p, rustix::mount::UnmountFlags::DETACH);
    }
}

impl LoopBtrfs {
    fn new() -> LoopBtrfs {
        static SWEEP: Once = Once::new();
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        SWEEP.call_once(sweep);
        let n = COUNT.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("{PREFIX}{}-{n}", std::process::id()));
        std::fs::create_dir_all(dir.join("mnt")).unwrap();
        let fixture = LoopBtrfs { dir };
        let image = fixture.dir.join("image");
        std::fs::File::create(&image)
            .unwrap()
            .set_len(512 << 20)
            .unwrap();
        let ok = |cmd: &mut Command| {
            let out = cmd
                .output()
                .expect("running a btrfs-progs or mount command");
            assert!(out.status.success(), "{cmd:?}: {out:?}");
        };
        ok(Command::new("mkfs.btrfs").arg("-q").arg(&image));
        ok(Command::new("mount")
            .args(["-t", "btrfs", "-o", "loop"])
            .arg(&image)
            .arg(fixture.mnt()));
        std::fs::remove_file(&image).unwrap();
        fixture
    }

    fn mnt(&self) -> PathBuf {
        self.dir.join("mnt")
    }

    /// A driver whose graph root is `<mnt>/graph`.
    fn driver(&self, options: &[&str]) -> DriverResult<BtrfsDriver> {
        let graph = self.mnt().join("graph");
        BtrfsDriver::new(&DriverInit {
            home: graph.join("btrfs"),
            graph_root: graph.clone(),
            run_root: self.dir.join("run"),
            options: options.iter().map(|s| s.to_string()).collect(),
            archive: std::sync::Arc::new(
                storage_component_host::archive_provider::ComponentArchiveProvider,
            ),
            ..Default::default()
        })
    }
}

impl Drop for LoopBtrfs {
    fn drop(&mut self) {
        detach_below(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        header.set_mtime(1_700_000_000);
        builder.append_data(&mut header, path, *data).unwrap();
    }
    builder.into_inner().unwrap()
}

fn apply(d: &BtrfsDriver, id: &str, parent: Option<&str>, tar: &[u8]) {
    d.apply_diff(id, parent, &mut &tar[..], &ApplyDiffOpts::default())
        .unwrap();
}

#[test]
fn layers_are_subvolumes_and_children_snapshots() {
    let fs = LoopBtrfs::new();
    let d = fs.driver(&["btrfs.archive=native"]).unwrap();
    d.create("base", None, &CreateOpts::default()).unwrap();
    let base = d.get("base", &MountOpts::default()).unwrap();
    assert_eq!(base, d.home().join("subvolumes/base"));
    let meta = std::fs::metadata(&base).unwrap();
    assert_eq!(
        meta.ino(),
        storage_driver::syscalls::btrfs::FIRST_FREE_OBJECTID,
        "a subvolume root"
    );
    assert_eq!(meta.mode() & 0o7777, 0o555);
    apply(&d, "base", None, &tar_of(&[("a", b"one"), ("b", b"two")]));

    d.create_read_write("child", Some("base"), &CreateOpts::default())
        .unwrap();
    let child = d.get("child", &MountOpts::default()).unwrap();
    assert!(subvolume::is_subvolume(&child).unwrap());
    assert_ne!(
        subvolume::id_of(&LinuxSyscalls, &child).unwrap(),
        subvolume::id_of(&LinuxSyscalls, &base).unwrap()
    );
    assert_eq!(std::fs::read(child.join("a")).unwrap(), b"one");
    std::fs::write(child.join("c"), "three").unwrap();
    std::fs::remove_file(child.join("b")).unwrap();
    assert!(base.join("b").exists(), "the parent is untouched");

    let changes = d
        .changes(
            "child",
            &IdMappings::default(),
            Some("base"),
            &IdMappings::default(),
        )
        .unwrap();
    let shown: Vec<(&str, ChangeKind)> = changes
        .iter()
        .map(|c| (std::str::from_utf8(&c.path).unwrap(), c.kind))
        .collect();
    // Upstream's naive order: what the directory has, then what it lost.
    assert_eq!(
        shown,
        vec![("/c", ChangeKind::Add), ("/b", ChangeKind::Delete)]
    );
    assert_eq!(
        d.diff_size(
            "child",
            &IdMappings::default(),
            Some("base"),
            &IdMappings::default()
        )
        .unwrap(),
        5
    );
    let mut out = Vec::new();
    d.diff(
        "child",
        &IdMappings::default(),
        Some("base"),
        &IdMappings::default(),
        &mut out,
    )
    .unwrap();
    let names: Vec<String> = tar::Archive::new(&out[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(names, vec![".wh.b", "c"]);

    let mut getter = d.diff_getter("base").unwrap();
    let mut text = String::new();
    getter.get(b"b").unwrap().read_to_string(&mut text).unwrap();
    assert_eq!(text, "two");
    drop(getter);

    assert_eq!(d.list_layers().unwrap(), vec!["base", "child"]);
    assert!(d.exists("child") && !d.exists("nope") && !d.exists("../x"));
    assert!(matches!(
        d.create("x", Some("nope"), &CreateOpts::default()),
        Err(DriverError::LayerNotFound(_))
    ));
    assert!(!d.exists("x"), "a failed create leaves nothing");
}

#[test]
fn remove_deletes_nested_subvolumes() {
    let fs = LoopBtrfs::new();
    let d = fs.driver(&[]).unwrap();
    d.create_read_write("l", None, &CreateOpts::default())
        .unwrap();
    let dir = d.get("l", &MountOpts::default()).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir(dir.join("deep")).unwrap();
    subvolume::create(&LinuxSyscalls, &dir.join("deep"), OsStr::new("inner")).unwrap();
    subvolume::create(
        &LinuxSyscalls,
        &dir.join("deep/inner"),
        OsStr::new("innermost"),
    )
    .unwrap();
    std::fs::write(dir.join("deep/inner/innermost/f"), "x").unwrap();
    d.remove("l").unwrap();
    assert!(!dir.exists());
    assert!(!d.exists("l"));
    d.remove("l").unwrap();
    assert_eq!(d.list_layers().unwrap(), Vec::<String>::new());
}

#[test]
fn size_is_a_qgroup_limit_enforced_by_the_kernel() {
    let fs = LoopBtrfs::new();
    let d = fs.driver(&["btrfs.min_space=1M"]).unwrap();
    assert!(d.quota_enabled(), "min_space enables quotas");
    let home = std::fs::File::open(d.home()).unwrap();
    assert!(LinuxSyscalls.btrfs_quota_enabled(home.as_fd()).unwrap());

    let small = CreateOpts {
        storage_opt: [("size".to_string(), "512k".to_string())].into(),
        ..Default::default()
    };
    let err = d.create_read_write("tiny", None, &small).unwrap_err();
    assert_eq!(
        err.to_string(),
        "btrfs: storage size cannot be less than 1.049MB"
    );
    assert!(!d.exists("tiny"));

    let sized = CreateOpts {
        storage_opt: [("size".to_string(), "2M".to_string())].into(),
        ..Default::default()
    };
    d.create_read_write("q", None, &sized).unwrap();
    assert_eq!(
        std::fs::read_to_string(d.home().join("quotas/q")).unwrap(),
        (2u64 << 20).to_string()
    );
    let dir = d.get("q", &MountOpts::default()).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut file = std::fs::File::create(dir.join("big")).unwrap();
    let chunk = vec![7u8; 256 << 10];
    let mut written = 0usize;
    let err = loop {
        match file.write_all(&chunk).and_then(|()| file.sync_all()) {
            Ok(()) => written += chunk.len(),
            Err(e) => break e,
        }
        assert!(written < 64 << 20, "the quota was never enforced");
    };
    assert_eq!(err.raw_os_error(), Some(libc::EDQUOT), "{err}");
    assert!(written <= 2 << 20);
    drop(file);
    d.remove("q").unwrap();
    assert!(!d.home().join("quotas/q").exists());

    let bad = CreateOpts {
        storage_opt: [("inodes".to_string(), "5".to_string())].into(),
        ..Default::default()
    };
    assert!(d.create("i", None, &bad).is_err());
}

#[test]
fn get_refuses_mount_options_but_ro() {
    let fs = LoopBtrfs::new();
    let d = fs.driver(&[]).unwrap();
    d.create("l", None, &CreateOpts::default()).unwrap();
    let ro = MountOpts {
        options: vec!["ro".to_string()],
        ..Default::default()
    };
    assert!(d.get("l", &ro).is_ok());
    let other = MountOpts {
        options: vec!["nodev".to_string()],
        ..Default::default()
    };
    assert_eq!(
        d.get("l", &other).unwrap_err().to_string(),
        "btrfs driver does not support mount options"
    );
    assert!(matches!(
        d.get("missing", &MountOpts::default()),
        Err(DriverError::LayerNotFound(_))
    ));
    d.put("l").unwrap();
}

#[test]
fn home_is_a_private_mount_until_cleanup() {
    let fs = LoopBtrfs::new();
    let d = fs.driver(&[]).unwrap();
    assert!(LinuxSyscalls.is_mount_point(d.home()).unwrap());
    // A second start does not stack another bind mount.
    let again = fs.driver(&[]).unwrap();
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mounts = info
        .lines()
        .filter(|l| l.split(' ').nth(4) == Some(&*d.home().display().to_string()))
        .count();
    assert_eq!(mounts, 1);
    again.cleanup().unwrap();
    assert!(!LinuxSyscalls.is_mount_point(d.home()).unwrap());
    // The filesystem itself stays mounted.
    assert!(LinuxSyscalls.is_mount_point(&fs.mnt()).unwrap());
    d.cleanup().unwrap();
}

#[test]
fn init_refuses_a_home_not_on_btrfs_and_creates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    if home::fs_magic(tmp.path()).unwrap() == home::BTRFS_SUPER_MAGIC {
        eprintln!("the temporary directory is on btrfs; nothing to check");
        return;
    }
    let home = tmp.path().join("graph/btrfs");
    let err = BtrfsDriver::new(&DriverInit {
        home: home.clone(),
        graph_root: tmp.path().join("graph"),
        run_root: tmp.path().join("run"),
        archive: std::sync::Arc::new(
            storage_component_host::archive_provider::ComponentArchiveProvider,
        ),
        ..Default::default()
    })
    .unwrap_err();
    assert!(matches!(err, DriverError::NotSupported(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "{:?} is not on a btrfs filesystem: prerequisites for driver not satisfied (wrong filesystem?)",
            home.display().to_string()
        )
    );
    assert!(!err.to_string().contains('\n'));
    assert!(!tmp.path().join("graph").exists());
}

#[test]
fn bad_options_fail_before_anything_is_made() {
    let fs = LoopBtrfs::new();
    assert!(fs.driver(&["btrfs.mountopt=nodev"]).is_err());
    assert!(fs.driver(&["btrfs.unknown=1"]).is_err());
    assert!(!fs.mnt().join("graph").exists());
}

#[test]
fn read_only_stores_are_used_and_never_written_even_on_another_filesystem() {
    let ro_fs = LoopBtrfs::new();
    let ro = ro_fs.driver(&[]).unwrap();
    ro.create("rolayer", None, &CreateOpts::default()).unwrap();
    apply(&ro, "rolayer", None, &tar_of(&[("etc/os", b"ro")]));
    std::fs::set_permissions(
        ro.layer_dir("rolayer").unwrap(),
        std::fs::Permissions::from_mode(0o751),
    )
    .unwrap();
    ro.cleanup().unwrap();
    let store = ro_fs.mnt().join("graph");

    let fs = LoopBtrfs::new();
    let d = fs
        .driver(&[&format!("btrfs.imagestore={}", store.display())])
        .unwrap();
    assert_eq!(d.additional_image_stores(), vec![store.clone()]);
    assert!(d.exists("rolayer"));
    let ro_dir = d.get("rolayer", &MountOpts::default()).unwrap();
    assert!(ro_dir.starts_with(&store));
    // A child of a layer on another filesystem is a copy in a new subvolume.
    d.create_read_write("child", Some("rolayer"), &CreateOpts::default())
        .unwrap();
    let child = d.get("child", &MountOpts::default()).unwrap();
    assert!(subvolume::is_subvolume(&child).unwrap());
    assert_eq!(std::fs::read(child.join("etc/os")).unwrap(), b"ro");
    assert_eq!(
        std::fs::metadata(&child).unwrap().mode() & 0o7777,
        0o751,
        "the root keeps the parent's permissions"
    );
    assert_eq!(
        d.changes(
            "child",
            &IdMappings::default(),
            Some("rolayer"),
            &IdMappings::default()
        )
        .unwrap(),
        vec![]
    );
    // The read-only layer is neither written nor removed.
    let err = d
        .apply_diff(
            "rolayer",
            None,
            &mut &tar_of(&[("x", b"x")])[..],
            &ApplyDiffOpts::default(),
        )
        .unwrap_err();
    assert!(matches!(err, DriverError::Unsupported(_)), "{err:?}");
    d.remove("rolayer").unwrap();
    assert!(ro_dir.join("etc/os").exists());
    assert_eq!(d.list_layers().unwrap(), vec!["child"]);
    d.cleanup().unwrap();
}
