//! The driver against the recording double: which mounts `get` makes for a chain (the new
//! mount API with one `lowerdir+` per layer through the short links, or one classic
//! `lowerdir=a:b:c`), with `volatile`, `userxattr` and `mountopt`; who owns what it creates;
//! the home's private bind mount at init and its unmount at shutdown. No root needed (CI
//! runs these as an unprivileged user): nothing is mounted, the layer directories are real.

use std::ffi::OsString;
use std::sync::Arc;

use storage_driver::idmap::IdMap;
use storage_driver::syscalls::{
    Call, FileType, MountAttrFlags, MountFlags, RecordingSyscalls, UnmountFlags,
};

use super::*;
use crate::layout::LINK_DIR;
use storage_driver::DriverInit;

/// A driver in a temp dir, making its system calls on a double.
struct Fixture {
    driver: OverlayDriver,
    sys: Arc<RecordingSyscalls>,
    _root: tempfile::TempDir,
}

fn fixture_with(sys: RecordingSyscalls, options: &[&str]) -> Fixture {
    let root = tempfile::tempdir().expect("tempdir");
    let sys = Arc::new(sys);
    let driver = OverlayDriver::new(&DriverInit {
        home: root.path().join("graph/overlay"),
        graph_root: root.path().join("graph"),
        run_root: root.path().join("run"),
        options: options.iter().map(|s| s.to_string()).collect(),
        syscalls: sys.clone(),
        ..Default::default()
    })
    .expect("driver init on the double");
    Fixture {
        driver,
        sys,
        _root: root,
    }
}

fn fixture(options: &[&str]) -> Fixture {
    fixture_with(RecordingSyscalls::new(), options)
}

/// Three image layers and a container layer on top; returns their IDs, bottom first.
fn chain(d: &OverlayDriver) -> Vec<String> {
    let ids: Vec<String> = ["base", "mid", "top", "ctr"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut parent: Option<&str> = None;
    for (n, id) in ids.iter().enumerate() {
        if n == 3 {
            d.create_read_write(id, parent, &CreateOpts::default())
                .expect("create container layer");
        } else {
            d.create(id, parent, &CreateOpts::default())
                .expect("create layer");
        }
        parent = Some(id);
    }
    ids
}

/// `<home>/l/<short>` of each layer, as its lowers name them.
fn link_of(d: &OverlayDriver, id: &str) -> PathBuf {
    let dir = d.layout().dir(id).expect("layer");
    let short = Layout::read_link_file(&dir).expect("link file");
    d.home().join(LINK_DIR).join(short)
}

fn set(key: &str, value: impl Into<OsString>) -> Call {
    Call::FsconfigSetString {
        key: key.into(),
        value: value.into(),
    }
}

/// The calls of the last overlay mount: from its `fsopen` (or classic `mount`) on.
fn last_mount(calls: &[Call]) -> Vec<Call> {
    let start = calls
        .iter()
        .rposition(|c| {
            matches!(
                c,
                Call::Fsopen { .. } | Call::Mount { .. } | Call::MountInDir { .. }
            )
        })
        .expect("a mount");
    calls[start..].to_vec()
}

#[test]
fn init_probes_on_the_double_and_makes_the_home_a_private_mount() {
    let f = fixture(&[]);
    let home = f.driver.home().to_path_buf();
    let calls = f.sys.calls();
    // The kernel-style whiteout of the probe, through the double.
    assert!(calls.iter().any(|c| matches!(c,
        Call::Mknod { path, kind: FileType::CharacterDevice, dev: 0, .. }
            if path.ends_with("upper/whiteout"))));
    assert!(calls.contains(&Call::BindMount {
        source: home.clone(),
        target: home.clone()
    }));
    assert_eq!(
        f.sys.mounted(),
        vec![home],
        "probes unmounted, the home stays"
    );
    let status: BTreeMap<String, String> = f.driver.status().into_iter().collect();
    assert_eq!(status["Supports volatile"], "true");
}

#[test]
fn get_mounts_a_chain_with_one_lowerdir_plus_per_layer_through_the_short_links() {
    let f = fixture(&["overlay.mountopt=nodev"]);
    let ids = chain(&f.driver);
    f.sys.take_calls();
    let merged = f.driver.get("ctr", &MountOpts::default()).expect("get");
    let dir = f.driver.layout().dir("ctr").expect("dir");
    assert_eq!(merged, dir.join("merged"));
    let mut expected = vec![
        Call::Fsopen {
            fstype: "overlay".into(),
        },
        set("source", "overlay"),
    ];
    // Nearest parent first.
    for id in ids[..3].iter().rev() {
        expected.push(set("lowerdir+", link_of(&f.driver, id)));
    }
    expected.extend([
        set("upperdir", dir.join("diff")),
        set("workdir", dir.join("work")),
        Call::FsconfigCreate,
        Call::Fsmount {
            attrs: MountAttrFlags::MOUNT_ATTR_NODEV,
        },
        Call::MoveMount {
            target: merged.clone(),
        },
    ]);
    assert_eq!(last_mount(&f.sys.calls()), expected);

    // Mounted already: a second get makes no mount.
    f.sys.take_calls();
    assert_eq!(
        f.driver.get("ctr", &MountOpts::default()).expect("get"),
        merged
    );
    assert!(f.sys.calls().is_empty());

    f.driver.put("ctr").expect("put");
    assert_eq!(
        f.sys.take_calls()[0],
        Call::Unmount {
            target: merged.clone(),
            flags: UnmountFlags::NOFOLLOW
        }
    );
    assert!(merged.is_dir(), "merged/ stays after put, as upstream 1.60");
}

#[test]
fn volatile_and_userxattr_are_asked_for_when_they_apply() {
    let sys = RecordingSyscalls::new();
    sys.set_euid(1000); // rootless: overlay keeps its metadata in user.overlay.*
    let f = fixture_with(sys, &[]);
    chain(&f.driver);
    let volatile = MountOpts {
        volatile: true,
        ..Default::default()
    };
    f.driver.get("ctr", &volatile).expect("get");
    let mount = last_mount(&f.sys.calls());
    let flags: Vec<&str> = mount
        .iter()
        .filter_map(|c| match c {
            Call::FsconfigSetFlag { key } => Some(key.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(flags, ["userxattr", "volatile"]);
    f.driver.put("ctr").expect("put");

    // A read-only mount is never volatile; its own diff becomes the top lower.
    let read_only = MountOpts {
        volatile: true,
        options: vec!["ro".to_string()],
        ..Default::default()
    };
    f.driver.get("top", &read_only).expect("get ro");
    let mount = last_mount(&f.sys.calls());
    assert!(!mount.contains(&Call::FsconfigSetFlag {
        key: "volatile".into()
    }));
    let top = f.driver.layout().dir("top").expect("dir");
    assert_eq!(mount[2], set("lowerdir+", top.join("diff")));
    // Without an upper the overlay is read-only as it is: `ro` is not passed on.
    assert!(!mount.iter().any(|c| matches!(c,
        Call::FsconfigSetString { key, .. } if key == "upperdir" || key == "workdir")));
    assert!(mount.contains(&Call::Fsmount {
        attrs: MountAttrFlags::empty()
    }));
}

#[test]
fn root_of_a_user_namespace_asks_for_userxattr_and_marks_opaque_dirs_as_a_user() {
    // A rootless command re-executed in its user namespace: euid 0 there, no root on the
    // host, so `trusted.overlay.*` cannot be set and the mount must read `user.overlay.*`.
    let sys = RecordingSyscalls::new();
    sys.set_user_namespace(true);
    let f = fixture_with(sys, &[]);
    assert!(f.driver.rootless());
    chain(&f.driver);
    f.driver.get("ctr", &MountOpts::default()).expect("get");
    let mount = last_mount(&f.sys.calls());
    assert!(mount.contains(&Call::FsconfigSetFlag {
        key: "userxattr".into()
    }));
    f.driver.put("ctr").expect("put");
}

#[test]
fn without_lowerdir_plus_a_chain_is_one_classic_option_string() {
    let sys = RecordingSyscalls::new();
    // A kernel before 6.8.
    sys.fail_when(
        |c| matches!(c, Call::FsconfigSetString { key, .. } if key == "lowerdir+"),
        libc::EINVAL,
    );
    let f = fixture_with(sys, &["overlay.mountopt=nodev,metacopy=on"]);
    let ids = chain(&f.driver);
    let merged = f.driver.get("ctr", &MountOpts::default()).expect("get");
    let dir = f.driver.layout().dir("ctr").expect("dir");
    let lowers: Vec<String> = ids[..3]
        .iter()
        .rev()
        .map(|id| link_of(&f.driver, id).display().to_string())
        .collect();
    assert_eq!(
        last_mount(&f.sys.calls()),
        vec![Call::Mount {
            source: "overlay".into(),
            target: merged,
            fstype: "overlay".into(),
            flags: MountFlags::NODEV,
            data: Some(
                format!(
                    "lowerdir={},upperdir={},workdir={},metacopy=on",
                    lowers.join(":"),
                    dir.join("diff").display(),
                    dir.join("work").display()
                )
                .into()
            ),
        }]
    );
}

#[test]
fn layer_directories_are_owned_by_the_mapped_root() {
    let f = fixture(&[]);
    let shifted = vec![IdMap {
        container_id: 0,
        host_id: 100_000,
        size: 65536,
    }];
    let opts = CreateOpts {
        id_mappings: IdMappings {
            uids: shifted.clone(),
            gids: shifted,
        },
        ..Default::default()
    };
    f.sys.take_calls();
    f.driver.create("mapped", None, &opts).expect("create");
    let dir = f.driver.layout().dir("mapped").expect("dir");
    let chowned: Vec<PathBuf> = f
        .sys
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::Chown {
                path,
                uid: Some(100_000),
                gid: Some(100_000),
                follow: true,
            } => Some(path),
            _ => None,
        })
        .collect();
    let expected: Vec<PathBuf> = ["", "diff", "work", "merged", "empty"]
        .iter()
        .map(|p| {
            if p.is_empty() {
                dir.clone()
            } else {
                dir.join(p)
            }
        })
        .collect();
    assert_eq!(chowned, expected);
}

#[test]
fn shutdown_unmounts_the_home_bind_mount_once() {
    let f = fixture(&[]);
    let home = f.driver.home().to_path_buf();
    f.sys.take_calls();
    f.driver.cleanup().expect("cleanup");
    assert_eq!(
        f.sys.take_calls(),
        vec![Call::Unmount {
            target: home.clone(),
            flags: UnmountFlags::NOFOLLOW
        }]
    );
    assert!(f.sys.mounted().is_empty());
    // Nothing mounted there any more: a second shutdown unmounts nothing.
    f.driver.cleanup().expect("cleanup again");
    assert!(f.sys.calls().is_empty());
}

#[test]
fn a_home_that_is_not_to_be_mounted_is_left_alone() {
    let f = fixture(&["overlay.skip_mount_home=true"]);
    assert!(!f
        .sys
        .calls()
        .iter()
        .any(|c| matches!(c, Call::BindMount { .. } | Call::SetPropagation { .. })));
    f.sys.take_calls();
    f.driver.cleanup().expect("cleanup");
    assert!(f.sys.calls().is_empty());
}

#[test]
fn a_failed_mount_is_the_error_of_get() {
    let sys = RecordingSyscalls::new();
    let f = fixture_with(sys, &[]);
    chain(&f.driver);
    f.sys
        .fail_when(|c| matches!(c, Call::FsconfigCreate), libc::EINVAL);
    let err = f
        .driver
        .get("ctr", &MountOpts::default())
        .expect_err("mount fails");
    assert!(
        err.to_string()
            .starts_with("mounting overlay for layer ctr"),
        "{err}"
    );
    assert!(!f.sys.mounted().iter().any(|m| m.ends_with("merged")));
}

/// The run home's recorded feature answers (`<feature>-true` / `<feature>-false`).
fn recorded_features(run: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(run.join("overlay"))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn without_root_outside_a_user_namespace_nothing_is_probed_or_recorded() {
    // A rootless user's `--unshare=false`: the kernel refuses the bind mount of the home.
    let root = tempfile::tempdir().expect("tempdir");
    let sys = Arc::new(RecordingSyscalls::new());
    sys.set_euid(1000);
    sys.fail_when(|c| matches!(c, Call::BindMount { .. }), libc::EPERM);
    let init = |options: &[&str]| {
        OverlayDriver::new(&DriverInit {
            home: root.path().join("graph/overlay"),
            graph_root: root.path().join("graph"),
            run_root: root.path().join("run"),
            options: options.iter().map(|s| s.to_string()).collect(),
            syscalls: sys.clone(),
            ..Default::default()
        })
    };
    let Err(err) = init(&[]) else {
        panic!("the private mount is refused")
    };
    assert!(
        err.to_string().contains("a private mount") && err.to_string().contains("not permitted"),
        "{err}"
    );
    // No test mount was tried, so no refusal was taken for the kernel's answer and cached
    // for the user's commands in a user namespace.
    let calls = sys.take_calls();
    assert!(
        !calls.iter().any(|c| matches!(
            c,
            Call::Mknod { .. } | Call::Mount { .. } | Call::FsconfigCreate
        )),
        "{calls:?}"
    );
    assert_eq!(
        recorded_features(&root.path().join("run")),
        Vec::<String>::new()
    );
    // With skip_mount_home the driver starts (listing needs no mount), still unprobed.
    init(&["overlay.skip_mount_home=true"]).expect("starts");
    assert!(!sys
        .take_calls()
        .iter()
        .any(|c| matches!(c, Call::Mknod { .. })));
    assert_eq!(
        recorded_features(&root.path().join("run")),
        Vec::<String>::new()
    );
    // As root (in a user namespace, say), the same run root gets the kernel's answers.
    sys.set_euid(0);
    init(&["overlay.skip_mount_home=true"]).expect("starts as root");
    assert!(sys
        .take_calls()
        .iter()
        .any(|c| matches!(c, Call::Mknod { .. })));
    assert!(
        recorded_features(&root.path().join("run")).contains(&"overlay-true".to_string()),
        "{:?}",
        recorded_features(&root.path().join("run"))
    );
}
