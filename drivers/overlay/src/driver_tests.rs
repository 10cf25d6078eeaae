//! Tests of the driver against the real kernel (they run as root): layout, mounts of
//! single layers and long chains, repair, options, image stores. Every fixture unmounts
//! whatever is mounted under its temp dir when dropped, even after a failed assertion.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::init::find_in_path;
use super::*;
use storage_driver::syscalls::LinuxSyscalls;
use storage_driver::DriverInit;

/// A driver in a temp dir; dropping it unmounts everything under the temp dir.
struct Fixture {
    driver: OverlayDriver,
    root: tempfile::TempDir,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        unmount_all_under(self.root.path());
    }
}

/// Unmounts every mount point under `base`, deepest first.
fn unmount_all_under(base: &Path) {
    for _ in 0..3 {
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut points: Vec<PathBuf> = info
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .map(PathBuf::from)
            .filter(|p| p.starts_with(base))
            .collect();
        if points.is_empty() {
            return;
        }
        points.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
        for p in points {
            let _ = rustix::mount::unmount(&p, rustix::mount::UnmountFlags::DETACH);
        }
    }
}

fn init_in(root: &Path, options: &[&str]) -> DriverResult<OverlayDriver> {
    OverlayDriver::new(&DriverInit {
        home: root.join("graph/overlay"),
        graph_root: root.join("graph"),
        run_root: root.join("run"),
        options: options.iter().map(|s| s.to_string()).collect(),
        archive: std::sync::Arc::new(
            storage_component_host::archive_provider::ComponentArchiveProvider,
        ),
        ..Default::default()
    })
}

fn fixture(options: &[&str]) -> Fixture {
    let root = tempfile::tempdir().expect("tempdir");
    let mut all = vec!["overlay.skip_mount_home=true"];
    all.extend_from_slice(options);
    let driver = init_in(root.path(), &all).expect("driver init");
    Fixture { driver, root }
}

fn create_chain(d: &OverlayDriver, n: usize, prefix: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let id = format!("{prefix}{i:04}");
        let parent = ids.last().map(String::as_str);
        d.create(&id, parent, &CreateOpts::default())
            .expect("create");
        std::fs::write(
            d.diff_dir(&id).expect("diff").join(format!("f{i}")),
            format!("{i}"),
        )
        .expect("write");
        ids.push(id);
    }
    ids
}

fn link_of(d: &OverlayDriver, id: &str) -> String {
    Layout::read_link_file(&d.layout().own_dir(id)).expect("link file")
}

#[test]
fn layout_after_create() {
    let f = fixture(&[]);
    let d = &f.driver;
    let ids = create_chain(d, 3, "layer");
    let home = d.home().to_path_buf();
    let a = home.join(&ids[0]);
    for sub in ["diff", "work", "merged", "empty"] {
        assert!(a.join(sub).is_dir(), "{sub} of a parentless layer");
    }
    assert!(
        !a.join("lower").exists(),
        "parentless layers have no lower file"
    );
    let la = link_of(d, &ids[0]);
    assert_eq!(la.len(), 26);
    assert_eq!(
        std::fs::read_link(home.join("l").join(&la)).expect("short link"),
        PathBuf::from(format!("../{}/diff", ids[0]))
    );
    let lb = link_of(d, &ids[1]);
    let c = home.join(&ids[2]);
    assert!(!c.join("empty").exists());
    assert_eq!(
        std::fs::read_to_string(c.join("lower")).expect("lower"),
        format!("l/{lb}:l/{la}")
    );
    assert_eq!(
        std::fs::read_to_string(home.join(".has-mount-program")).expect("flag"),
        "false"
    );
    assert_eq!(d.list_layers().expect("list"), ids);
    assert!(d.exists(&ids[1]) && !d.exists("missing") && !d.exists(".."));

    let meta = d.metadata(&ids[2]).expect("metadata");
    assert_eq!(meta["UpperDir"], c.join("diff").display().to_string());
    assert_eq!(meta["WorkDir"], c.join("work").display().to_string());
    assert_eq!(meta["MergedDir"], c.join("merged").display().to_string());
    let canon = |id: &str| std::fs::canonicalize(home.join(id).join("diff")).expect("canon");
    assert_eq!(
        meta["LowerDir"],
        format!("{}:{}", canon(&ids[1]).display(), canon(&ids[0]).display())
    );
    assert!(!d
        .metadata(&ids[0])
        .expect("metadata")
        .contains_key("LowerDir"));

    // Remove takes the short link with it.
    d.remove(&ids[2]).expect("remove");
    assert!(!c.exists());
    d.remove(&ids[2]).expect("removing twice is fine");
    assert!(std::fs::symlink_metadata(home.join("l").join(link_of(d, &ids[1]))).is_ok());
}

#[test]
fn feature_cache_and_status() {
    let f = fixture(&[]);
    let run = f.root.path().join("run/overlay");
    for name in ["overlay-true", "native-diff()-true", "metacopy()-false"] {
        assert!(run.join(name).is_file(), "{name} cached");
    }
    // As upstream's: volatile is probed when first asked (`status`, a volatile mount).
    assert!(!run.join("volatile-true").exists() && !run.join("volatile-false").exists());
    let status = f.driver.status();
    assert!(run.join("volatile-true").is_file(), "volatile-true cached");
    let keys: Vec<&str> = status.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "Backing Filesystem",
            "Supports d_type",
            "Native Overlay Diff",
            "Using metacopy",
            "Supports shifting",
            "Supports volatile"
        ]
    );
    assert_eq!(status[1].1, "true");
    assert_eq!(status[2].1, "true");
    // A second driver on the same run root reads the cache.
    let again = init_in(f.root.path(), &["overlay.skip_mount_home=true"]).expect("again");
    assert!(again.uses_native_diff());
}

#[test]
fn mount_parentless_and_chain() {
    let f = fixture(&[]);
    let d = &f.driver;
    let ids = create_chain(d, 3, "m");
    let base = d
        .get(&ids[0], &MountOpts::default())
        .expect("get parentless");
    assert!(LinuxSyscalls.is_mount_point(&base).expect("mountinfo"));
    assert_eq!(std::fs::read_to_string(base.join("f0")).expect("f0"), "0");
    d.put(&ids[0]).expect("put");
    assert!(!LinuxSyscalls.is_mount_point(&base).expect("mountinfo"));

    let top = d.get(&ids[2], &MountOpts::default()).expect("get chain");
    for i in 0..3 {
        assert_eq!(
            std::fs::read_to_string(top.join(format!("f{i}"))).expect("file"),
            i.to_string()
        );
    }
    std::fs::write(top.join("new"), "n").expect("write through the mount");
    std::fs::remove_file(top.join("f0")).expect("delete a lower file");
    d.put(&ids[2]).expect("put");
    let upper = d.diff_dir(&ids[2]).expect("diff");
    assert_eq!(
        std::fs::read_to_string(upper.join("new")).expect("upper"),
        "n"
    );
    let wh = std::fs::symlink_metadata(upper.join("f0")).expect("whiteout");
    assert!(std::os::unix::fs::FileTypeExt::is_char_device(
        &wh.file_type()
    ));
    // As upstream 1.60, merged/ stays after put, a new empty directory.
    assert!(!LinuxSyscalls.is_mount_point(&top).expect("mountinfo"));
    assert_eq!(std::fs::read_dir(&top).expect("merged/ stays").count(), 0);
    // A removed merged/ comes back at the next get (overlay-recreate in upstream's suite).
    std::fs::remove_dir(&top).expect("rmdir merged");

    // The deletion shows through the new mount.
    let top = d.get(&ids[2], &MountOpts::default()).expect("get again");
    assert!(!top.join("f0").exists());
    assert!(top.join("f1").exists());
    d.put(&ids[2]).expect("put");
}

#[test]
fn read_only_mount() {
    let f = fixture(&[]);
    let d = &f.driver;
    let ids = create_chain(d, 2, "r");
    let opts = MountOpts {
        options: vec!["ro".to_string()],
        ..Default::default()
    };
    let merged = d.get(&ids[0], &opts).expect("ro parentless");
    assert!(merged.join("f0").is_file());
    d.put(&ids[0]).expect("put");
    let merged = d.get(&ids[1], &opts).expect("ro chain");
    assert!(merged.join("f0").is_file() && merged.join("f1").is_file());
    let err = std::fs::write(merged.join("x"), "x").expect_err("read-only");
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    d.put(&ids[1]).expect("put");
}

#[test]
fn volatile_layer_mounts_again() {
    let f = fixture(&[]);
    let d = &f.driver;
    let ids = create_chain(d, 2, "v");
    let opts = MountOpts {
        volatile: true,
        ..Default::default()
    };
    let merged = d.get(&ids[1], &opts).expect("volatile mount");
    std::fs::write(merged.join("new"), "test").expect("write");
    d.put(&ids[1]).expect("put");
    // The kernel leaves its volatile marker in the work dir and refuses a second mount
    // of the same upper while it is there; the driver removes it, as upstream does.
    if d.supports_volatile() {
        assert!(d
            .layout
            .dir(&ids[1])
            .expect("dir")
            .join("work/work/incompat/volatile")
            .exists());
    }
    let merged = d.get(&ids[1], &opts).expect("volatile mount again");
    assert_eq!(
        std::fs::read_to_string(merged.join("new")).expect("read"),
        "test"
    );
    d.put(&ids[1]).expect("put");
}

#[test]
fn chain_of_300_layers_mounts() {
    let f = fixture(&[]);
    let d = &f.driver;
    let ids = create_chain(d, 300, "c");
    let top = d
        .get(&ids[299], &MountOpts::default())
        .expect("300-layer mount");
    assert_eq!(
        std::fs::read_to_string(top.join("f0")).expect("bottom file"),
        "0"
    );
    assert_eq!(
        std::fs::read_to_string(top.join("f299")).expect("top file"),
        "299"
    );
    d.put(&ids[299]).expect("put");
}

#[test]
fn classic_mount_uses_short_relative_links_for_long_chains() {
    let f = fixture(&[]);
    let d = &f.driver;
    let ids = create_chain(d, 120, "k");
    let dir = d.layout().own_dir(&ids[119]);
    let spec = d
        .mount_spec(&ids[119], &dir, &MountOpts::default())
        .expect("spec");
    let page = rustix::param::page_size();
    assert!(
        spec.option_string(false).len() >= page,
        "absolute form too long"
    );
    assert!(spec.option_string(true).len() < page, "relative form fits");
    mount::mount_classic(&LinuxSyscalls, &spec).expect("classic mount from the home");
    assert_eq!(
        std::fs::read_to_string(spec.target.join("f0")).expect("bottom"),
        "0"
    );
    d.put(&ids[119]).expect("put");

    // Short chains go straight through mount(2) with absolute paths, read-only too.
    let dir = d.layout().own_dir(&ids[2]);
    let ro = MountOpts {
        options: vec!["ro".to_string()],
        ..Default::default()
    };
    let spec = d.mount_spec(&ids[2], &dir, &ro).expect("spec");
    assert!(spec.upper.is_none());
    std::fs::create_dir_all(&spec.target).expect("merged");
    mount::mount_classic(&LinuxSyscalls, &spec).expect("classic read-only mount");
    assert_eq!(
        std::fs::read_to_string(spec.target.join("f2")).expect("own file"),
        "2"
    );
    assert_eq!(
        std::fs::read_to_string(spec.target.join("f0")).expect("bottom"),
        "0"
    );
    d.put(&ids[2]).expect("put");
}

#[test]
fn missing_links_are_repaired_on_get() {
    let f = fixture(&[]);
    let d = &f.driver;
    let ids = create_chain(d, 3, "p");
    let home = d.home().to_path_buf();
    let la = link_of(d, &ids[0]);
    std::fs::remove_file(home.join("l").join(&la)).expect("delete l/ link");
    std::fs::remove_file(home.join(&ids[2]).join("link")).expect("delete link file");
    std::fs::remove_dir(home.join(&ids[2]).join("merged")).expect("delete merged");
    let top = d.get(&ids[2], &MountOpts::default()).expect("get repairs");
    assert_eq!(
        std::fs::read_to_string(top.join("f0")).expect("bottom"),
        "0"
    );
    d.put(&ids[2]).expect("put");
    assert_eq!(
        std::fs::read_link(home.join("l").join(&la)).expect("link back"),
        PathBuf::from(format!("../{}/diff", ids[0]))
    );
    let lc = link_of(d, &ids[2]);
    assert!(
        home.join("l").join(lc).is_dir(),
        "new link for the layer that lost its file"
    );
}

#[test]
fn option_errors_at_init() {
    let root = tempfile::tempdir().expect("tempdir");
    let err = |opts: &[&str]| {
        init_in(root.path(), opts)
            .expect_err("must fail")
            .to_string()
    };
    assert_eq!(
        err(&["overlay.nope=1"]),
        "overlay: unknown option overlay.nope"
    );
    let size = err(&["overlay.skip_mount_home=true", "overlay.size=10G"]);
    assert!(size.contains("overlay.size"), "{size}");
    assert!(
        size.contains("XFS") || size.contains("Project Quota"),
        "{size}"
    );
    assert!(err(&["overlay.force_mask=shared"]).contains("only with 'mount_program'"));
    assert!(err(&[".use_composefs=true"]).contains("composefs"));
    let no_run_root = OverlayDriver::new(&DriverInit {
        home: root.path().join("graph/overlay"),
        archive: std::sync::Arc::new(
            storage_component_host::archive_provider::ComponentArchiveProvider,
        ),
        ..Default::default()
    });
    assert!(no_run_root.is_err());
    unmount_all_under(root.path());
}

#[test]
fn per_layer_storage_options_are_refused() {
    let f = fixture(&[]);
    let mut opts = CreateOpts::default();
    opts.storage_opt
        .insert("size".to_string(), "1G".to_string());
    assert!(f.driver.create("a", None, &opts).is_err());
    assert!(f.driver.create_read_write("b", None, &opts).is_err());
    assert!(!f.driver.exists("a") && !f.driver.exists("b"));
}

#[test]
fn home_becomes_a_private_mount() {
    let root = tempfile::tempdir().expect("tempdir");
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            unmount_all_under(self.0);
        }
    }
    let _guard = Unmount(root.path());
    let d = init_in(root.path(), &[]).expect("init");
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let home = d.home().as_os_str().as_bytes().to_vec();
    let line = info
        .lines()
        .find(|l| l.split(' ').nth(4).map(str::as_bytes) == Some(home.as_slice()))
        .expect("home is a mount point");
    assert!(!line.contains("shared:"), "home mount is private: {line}");
    // A second init does not stack another bind mount.
    let _again = init_in(root.path(), &[]).expect("init again");
    let count = std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .filter(|l| l.split(' ').nth(4).map(str::as_bytes) == Some(home.as_slice()))
        .count();
    assert_eq!(count, 1);
    // `shutdown` (the driver's cleanup) undoes the bind mount, as upstream's Cleanup,
    // so that the graph root can be removed afterwards.
    d.cleanup().expect("cleanup");
    assert!(!LinuxSyscalls.is_mount_point(d.home()).expect("mountinfo"));
    std::fs::remove_dir_all(root.path().join("graph")).expect("graph root removable");
}

#[test]
fn cleanup_leaves_a_filesystem_mounted_at_the_home() {
    let root = tempfile::tempdir().expect("tempdir");
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            unmount_all_under(self.0);
        }
    }
    let _guard = Unmount(root.path());
    let home = root.path().join("graph").join("overlay");
    std::fs::create_dir_all(&home).expect("home");
    rustix::mount::mount(
        "tmpfs",
        &home,
        "tmpfs",
        rustix::mount::MountFlags::empty(),
        c"",
    )
    .expect("mount tmpfs at the home");
    let d = init_in(root.path(), &[]).expect("init");
    d.cleanup().expect("cleanup");
    // Not a bind mount this driver made: it stays.
    assert!(LinuxSyscalls.is_mount_point(&home).expect("mountinfo"));
}

#[test]
fn layers_of_read_only_image_stores_are_lowers() {
    let ro = fixture(&[]);
    let ro_ids = create_chain(&ro.driver, 2, "ro");
    let store = ro.root.path().join("graph");
    let f = fixture(&[&format!("overlay.imagestore={}", store.display())]);
    let d = &f.driver;
    assert_eq!(d.additional_image_stores(), vec![store.clone()]);
    assert!(d.exists(&ro_ids[1]));
    d.create_read_write("top", Some(&ro_ids[1]), &CreateOpts::default())
        .expect("child of a read-only layer");
    let lower = d
        .get(&ro_ids[1], &MountOpts::default())
        .expect("get a store's layer");
    assert_eq!(lower, d.home().join(&ro_ids[1]).join("merged"));
    assert!(lower.join("f1").is_file());
    assert!(std::fs::write(lower.join("x"), "x").is_err(), "read-only");
    d.put(&ro_ids[1]).expect("put");
    assert!(!d.home().join(&ro_ids[1]).exists());
    let merged = d.get("top", &MountOpts::default()).expect("get");
    assert_eq!(
        std::fs::read_to_string(merged.join("f0")).expect("from the store"),
        "0"
    );
    std::fs::write(merged.join("mine"), "x").expect("write");
    d.put("top").expect("put");
    assert!(!store
        .join("overlay")
        .join(&ro_ids[1])
        .join("diff/mine")
        .exists());
    assert!(d.list_layers().expect("list") == vec!["top".to_string()]);
}

#[test]
fn diff_getter_reads_through_lowers() {
    let f = fixture(&[]);
    let d = &f.driver;
    let ids = create_chain(d, 3, "g");
    let mut getter = d.diff_getter(&ids[2]).expect("getter");
    let mut text = String::new();
    getter
        .get(b"f0")
        .expect("bottom file")
        .read_to_string(&mut text)
        .expect("read");
    assert_eq!(text, "0");
    assert!(getter.get(b"absent").is_err());
}

#[test]
fn mount_program_does_the_mounts() {
    let root = tempfile::tempdir().expect("tempdir");
    // A stand-in for fuse-overlayfs with the same command line: PROG -o OPTS TARGET.
    let program = root.path().join("fake-fuse-overlayfs");
    std::fs::write(
        &program,
        "#!/bin/sh\nexec mount -t overlay overlay -o \"$2\" \"$3\"\n",
    )
    .expect("script");
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let prog_opt = format!("overlay.mount_program={}", program.display());
    let f = fixture(&[&prog_opt, "overlay.force_mask=private"]);
    let d = &f.driver;
    // Once a mount program wrote layers, a driver without one refuses the home unless
    // it finds fuse-overlayfs.
    if find_in_path("fuse-overlayfs").is_none() {
        let err = init_in(f.root.path(), &["overlay.skip_mount_home=true"]).expect_err("refused");
        assert!(err.to_string().contains("mount program"), "{err}");
    }
    assert_eq!(
        std::fs::read_to_string(d.home().join(".has-mount-program")).expect("flag"),
        "true"
    );
    assert!(!d.uses_native_diff());
    let ids = create_chain(d, 2, "fp");
    let mode = std::fs::metadata(d.diff_dir(&ids[0]).expect("diff"))
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o700, "force_mask applies to new diff dirs");
    let merged = d
        .get(&ids[1], &MountOpts::default())
        .expect("mounted by the program");
    assert!(LinuxSyscalls.is_mount_point(&merged).expect("mountinfo"));
    assert_eq!(
        std::fs::read_to_string(merged.join("f0")).expect("lower"),
        "0"
    );
    d.put(&ids[1]).expect("put");
    assert!(!LinuxSyscalls.is_mount_point(&merged).expect("mountinfo"));
    assert_eq!(
        std::fs::read_dir(&merged).expect("merged/ stays").count(),
        0
    );
}

#[test]
fn mounts_layers_made_by_the_go_driver() {
    let Some(go) = storage_test_support::reference_binary() else {
        eprintln!("no reference containers-storage; skipping");
        return;
    };
    let root = tempfile::tempdir().expect("tempdir");
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            unmount_all_under(self.0);
        }
    }
    let _guard = Unmount(root.path());
    let run_go = |args: &[&str]| -> String {
        let out = std::process::Command::new(&go)
            .arg("--graph")
            .arg(root.path().join("graph"))
            .arg("--run")
            .arg(root.path().join("gorun"))
            .args(["--storage-driver", "overlay"])
            .args(args)
            .output()
            .expect("run containers-storage");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let a = run_go(&["create-layer"]);
    let b = run_go(&["create-layer", &a]);
    let d = init_in(root.path(), &["overlay.skip_mount_home=true"]).expect("init");
    std::fs::write(d.diff_dir(&a).expect("diff").join("from-go"), "a").expect("write");
    let merged = d.get(&b, &MountOpts::default()).expect("mount Go's layer");
    assert_eq!(
        std::fs::read_to_string(merged.join("from-go")).expect("lower"),
        "a"
    );
    d.put(&b).expect("put");
    // And a layer of ours on top of Go's layers gets the right lower chain.
    d.create("ours", Some(&b), &CreateOpts::default())
        .expect("create");
    let lower = std::fs::read_to_string(d.home().join("ours/lower")).expect("lower");
    assert_eq!(
        lower,
        format!("l/{}:l/{}", link_of(&d, &b), link_of(&d, &a))
    );
}

#[test]
fn update_layer_id_map_reowns_files_through_the_mount() {
    use std::os::unix::fs::MetadataExt;
    use storage_driver::idmap::IdMap;
    let f = fixture(&[]);
    let d = &f.driver;
    let ids = create_chain(d, 2, "u");
    let upper = d.diff_dir(&ids[1]).expect("diff");
    std::fs::set_permissions(upper.join("f1"), std::fs::Permissions::from_mode(0o4755))
        .expect("setuid");
    let range = vec![IdMap {
        container_id: 0,
        host_id: 100_000,
        size: 65_536,
    }];
    let to_host = IdMappings {
        uids: range.clone(),
        gids: range,
    };
    d.update_layer_id_map(&ids[1], &IdMappings::default(), &to_host, "")
        .expect("update");
    // As upstream, the upper dir holding the re-owned files moved aside to `diff1`, and
    // a new empty `diff` (owned by the new root) takes its place.
    let moved = d.layout().own_dir(&ids[1]).join("diff1");
    let meta = std::fs::metadata(moved.join("f1")).expect("own file");
    assert_eq!((meta.uid(), meta.gid()), (100_000, 100_000));
    assert_eq!(meta.mode() & 0o7777, 0o4755, "setuid kept");
    // The lower layer's file was copied up with its new owner; the lower is untouched.
    assert_eq!(
        std::fs::metadata(moved.join("f0"))
            .expect("copied up")
            .uid(),
        100_000
    );
    assert_eq!(std::fs::read_dir(&upper).expect("new diff").count(), 0);
    assert_eq!(
        std::fs::metadata(d.diff_dir(&ids[0]).expect("diff").join("f0"))
            .expect("lower")
            .uid(),
        0
    );
    assert_eq!(std::fs::metadata(&upper).expect("diff dir").uid(), 100_000);
    assert!(!LinuxSyscalls
        .is_mount_point(&d.layout().own_dir(&ids[1]).join("merged"))
        .unwrap_or(true));
    // Mounted, the layer shows the re-owned files (`diff1` is a lower right below `diff`);
    // its native changes see only what is written after the re-owning.
    let merged = d.get(&ids[1], &MountOpts::default()).expect("mount");
    let owner = |name: &str| {
        let m = std::fs::metadata(merged.join(name)).expect("merged file");
        (m.uid(), m.mode() & 0o7777)
    };
    assert_eq!(owner("f0").0, 100_000);
    assert_eq!(owner("f1"), (100_000, 0o4755));
    std::fs::write(merged.join("new"), "n").expect("write");
    d.put(&ids[1]).expect("put");
    let changes: Vec<String> = d
        .changes(
            &ids[1],
            &IdMappings::default(),
            Some(&ids[0]),
            &IdMappings::default(),
        )
        .expect("changes")
        .into_iter()
        .map(|c| format!("{:?} {}", c.kind, String::from_utf8_lossy(&c.path)))
        .collect();
    assert_eq!(changes, vec!["Add /new".to_string()]);
    // A second re-owning moves `diff1` to `diff2` and `diff` to `diff1`.
    d.update_layer_id_map(&ids[1], &to_host, &IdMappings::default(), "")
        .expect("update back");
    let dir = d.layout().own_dir(&ids[1]);
    assert!(dir.join("diff2").join("f1").exists());
    assert!(dir.join("diff1").join("new").exists());
    let merged = d.get(&ids[1], &MountOpts::default()).expect("mount");
    assert_eq!(std::fs::metadata(merged.join("f1")).expect("f1").uid(), 0);
    assert_eq!(std::fs::metadata(merged.join("new")).expect("new").uid(), 0);
    d.put(&ids[1]).expect("put");
}

#[test]
fn chains_deeper_than_the_kernel_stack_are_created_and_refused_at_mount() {
    let f = fixture(&[]);
    let d = &f.driver;
    d.create("p", None, &CreateOpts::default()).expect("create");
    // Pretend `p` already sits on MAX_DEPTH layers: its child has one more. Upstream
    // creates it and refuses to mount it.
    let fake: Vec<String> = (0..MAX_DEPTH).map(|i| format!("l/FAKE{i}")).collect();
    std::fs::write(d.home().join("p/lower"), fake.join(":")).expect("lower");
    let err = d
        .get("p", &MountOpts::default())
        .expect_err("missing lowers");
    assert!(!err.to_string().contains("max depth"), "{err}");
    d.create("deep", Some("p"), &CreateOpts::default())
        .expect("created, as upstream");
    assert_eq!(
        std::fs::read_to_string(d.home().join("deep/lower"))
            .expect("lower")
            .split(':')
            .count(),
        MAX_DEPTH + 1
    );
    let err = d.get("deep", &MountOpts::default()).expect_err("too deep");
    assert_eq!(err.to_string(), "max depth exceeded");
    d.remove("deep").expect("remove");
}

#[test]
fn split_image_store_keeps_image_layers_apart() {
    let root = tempfile::tempdir().expect("tempdir");
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            unmount_all_under(self.0);
        }
    }
    let _guard = Unmount(root.path());
    let d = OverlayDriver::new(&DriverInit {
        home: root.path().join("graph/overlay"),
        graph_root: root.path().join("graph"),
        run_root: root.path().join("run"),
        image_store: Some(root.path().join("images")),
        options: vec!["overlay.skip_mount_home=true".to_string()],
        archive: std::sync::Arc::new(
            storage_component_host::archive_provider::ComponentArchiveProvider,
        ),
        ..Default::default()
    })
    .expect("init");
    let image_home = root.path().join("images/overlay");
    d.create("img", None, &CreateOpts::default())
        .expect("image layer");
    assert!(image_home.join("img/diff").is_dir());
    assert!(!d.home().join("img").exists());
    std::fs::write(image_home.join("img/diff/base"), "b").expect("write");
    d.create_read_write("ctr", Some("img"), &CreateOpts::default())
        .expect("container layer");
    assert!(d.home().join("ctr/diff").is_dir());
    let link = Layout::read_link_file(&image_home.join("img")).expect("link");
    assert!(image_home.join("l").join(&link).is_dir());
    assert_eq!(
        std::fs::read_to_string(d.home().join("ctr/lower")).expect("lower"),
        format!("l/{link}")
    );
    assert_eq!(d.list_layers().expect("list"), vec!["ctr", "img"]);
    let merged = d.get("ctr", &MountOpts::default()).expect("mount");
    assert_eq!(
        std::fs::read_to_string(merged.join("base")).expect("base"),
        "b"
    );
    d.put("ctr").expect("put");
    d.remove("img").expect("remove");
    assert!(!image_home.join("img").exists());
    assert!(std::fs::symlink_metadata(image_home.join("l").join(&link)).is_err());
}

#[test]
fn symlinked_graph_root_mounts_are_recognised() {
    let root = tempfile::tempdir().expect("tempdir");
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            unmount_all_under(self.0);
        }
    }
    let _guard = Unmount(root.path());
    std::fs::create_dir(root.path().join("real")).expect("mkdir");
    std::os::unix::fs::symlink(root.path().join("real"), root.path().join("graph"))
        .expect("symlink");
    let d = init_in(root.path(), &["overlay.skip_mount_home=true"]).expect("init");
    assert_eq!(d.home(), root.path().join("real/overlay"));
    d.create("a", None, &CreateOpts::default()).expect("create");
    let first = d.get("a", &MountOpts::default()).expect("get");
    let second = d.get("a", &MountOpts::default()).expect("get again");
    assert_eq!(first, second);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .filter(|l| l.split(' ').nth(4) == first.to_str())
        .count();
    assert_eq!(mounts, 1, "a second get does not stack another mount");
    d.put("a").expect("put");
}
