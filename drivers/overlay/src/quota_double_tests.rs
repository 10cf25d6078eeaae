//! Project quota setup against the recording double: which ioctls, `quotactl` calls and
//! device node a home on xfs gets, which project and limits a layer gets. No root needed
//! (CI runs these as an unprivileged user); the home is a plain temp dir that the double's
//! mountinfo puts on an xfs filesystem with `prjquota`.

use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, Ordering};

use storage_driver::syscalls::{escape_mountinfo, Call, ProjectQuotaCmd, RecordingSyscalls};

use super::*;

/// The home's own project ID, which new IDs go above.
const HOME_ID: u32 = 100;

/// A home with a layer that has project 150 and one without, on "xfs" with project quotas
/// (`super_options`), inheriting its project as `xfs_quota project -s` leaves it.
fn xfs_home(super_options: &str) -> (tempfile::TempDir, PathBuf, Arc<RecordingSyscalls>) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = std::fs::canonicalize(tmp.path())
        .expect("resolve")
        .join("overlay");
    for dir in ["old", "plain"] {
        std::fs::create_dir_all(home.join(dir)).expect("mkdir");
    }
    let sys = Arc::new(RecordingSyscalls::new());
    sys.add_mountinfo(&format!(
        "40 22 7:1 / {} rw,relatime shared:3 - xfs /dev/loop1 {super_options}",
        escape_mountinfo(home.parent().expect("parent"))
    ));
    let inherit = |projid| FsXattr {
        projid,
        xflags: FS_XFLAG_PROJINHERIT,
        ..FsXattr::default()
    };
    sys.put_fs_xattr(&home, inherit(HOME_ID));
    sys.put_fs_xattr(&home.join("old"), inherit(150));
    (tmp, home, sys)
}

fn is_limit(call: &Call) -> bool {
    matches!(
        call,
        Call::ProjectQuotactl {
            cmd: ProjectQuotaCmd::SetLimits,
            ..
        }
    )
}

#[test]
fn setup_makes_the_device_node_checks_quotas_and_stops_the_home_passing_its_project_on() {
    let (_tmp, home, sys) = xfs_home("rw,attr2,prjquota");
    let control = QuotaControl::new(sys.clone(), &home).expect("quota control");
    let node = home.join(BACKING_FS_BLOCK_DEV);
    assert_eq!(control.backing_dev(), node);
    assert!(node.exists(), "renamed into place from its temporary name");
    let calls = sys.calls();
    let dev = std::fs::metadata(&home).expect("stat").dev();
    assert_eq!(
        calls[..3],
        [
            Call::FsGetXattr { dir: home.clone() },
            Call::Mknod {
                path: home.join(format!("{BACKING_FS_BLOCK_DEV}.tmp")),
                kind: FileType::BlockDevice,
                mode: 0o600,
                dev,
            },
            // Whether project quotas work: an empty limit on the home's own ID.
            Call::ProjectQuotactl {
                cmd: ProjectQuotaCmd::SetLimits,
                device: node.clone(),
                id: HOME_ID,
                quota: Quota::default().disk_quota(HOME_ID),
            },
        ]
    );
    assert!(
        calls.contains(&Call::FsSetXattr {
            dir: home.clone(),
            attr: FsXattr {
                projid: HOME_ID,
                ..FsXattr::default()
            }
        }),
        "PROJINHERIT cleared on the home: {calls:?}"
    );
    for layer in ["old", "plain"] {
        assert!(calls.contains(&Call::FsGetXattr {
            dir: home.join(layer)
        }));
    }
}

#[test]
fn a_layer_gets_the_next_free_project_and_its_limits() {
    let (_tmp, home, sys) = xfs_home("rw,prjquota");
    let control = QuotaControl::new(sys.clone(), &home).expect("quota control");
    let layer = home.join("new");
    std::fs::create_dir(&layer).expect("mkdir");
    sys.take_calls();
    let quota = Quota {
        size: (1 << 20) + 100,
        inodes: 50,
    };
    // Above the highest ID in use (150), not just above the home's.
    assert_eq!(control.set_quota(&layer, quota).expect("set quota"), 151);
    assert_eq!(
        sys.take_calls(),
        vec![
            Call::FsGetXattr { dir: layer.clone() },
            Call::FsSetXattr {
                dir: layer.clone(),
                attr: FsXattr {
                    projid: 151,
                    xflags: FS_XFLAG_PROJINHERIT,
                    ..FsXattr::default()
                }
            },
            Call::ProjectQuotactl {
                cmd: ProjectQuotaCmd::SetLimits,
                device: home.join(BACKING_FS_BLOCK_DEV),
                id: 151,
                quota: quota.disk_quota(151),
            },
        ]
    );
    let limits = control.get_quota(&layer).expect("get quota");
    assert_eq!((limits.blk_hardlimit, limits.ino_hardlimit), (2048, 50));

    // Its project stays its own: setting limits again changes only the limits.
    control.set_quota(&layer, Quota::default()).expect("again");
    assert!(!sys
        .take_calls()
        .iter()
        .any(|c| matches!(c, Call::FsSetXattr { .. })));

    let next = home.join("next");
    std::fs::create_dir(&next).expect("mkdir");
    assert_eq!(control.set_quota(&next, quota).expect("set quota"), 152);

    let full = home.join("full");
    std::fs::create_dir(&full).expect("mkdir");
    std::fs::write(full.join("file"), b"x").expect("write");
    let err = control.set_quota(&full, quota).expect_err("not empty");
    assert!(err
        .to_string()
        .contains("only set project ID on empty directories"));
}

#[test]
fn a_missing_device_node_is_made_again() {
    let (_tmp, home, sys) = xfs_home("rw,prjquota");
    let control = QuotaControl::new(sys.clone(), &home).expect("quota control");
    let gone = AtomicBool::new(true);
    sys.fail_when(
        move |c| is_limit(c) && gone.swap(false, Ordering::SeqCst),
        libc::ENOENT,
    );
    let layer = home.join("new");
    std::fs::create_dir(&layer).expect("mkdir");
    sys.take_calls();
    control
        .set_quota(&layer, Quota::default())
        .expect("set quota");
    let calls = sys.calls();
    let limits: Vec<usize> = (0..calls.len()).filter(|&i| is_limit(&calls[i])).collect();
    assert_eq!(limits.len(), 2, "tried again: {calls:?}");
    assert!(calls[limits[0]..limits[1]]
        .iter()
        .any(|c| matches!(c, Call::Mknod { .. })));
}

#[test]
fn user_quotas_alone_are_not_project_quotas() {
    let (_tmp, home, sys) = xfs_home("rw,attr2,usrquota");
    let err = QuotaControl::new(sys, &home).expect_err("no project quotas");
    assert!(
        err.to_string().contains("project quota is not enabled"),
        "{err}"
    );
}
