//! The mount calls an overlay spec turns into, against the recording double: no root needed
//! (CI runs these as an unprivileged user).

use std::ffi::OsString;

use storage_driver::syscalls::{Call, RecordingSyscalls};

use super::*;

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// A container layer over three layers, with the options a driver adds.
fn spec(options: &[&str]) -> OverlaySpec {
    OverlaySpec {
        lowers: vec!["/h/l/AAA".into(), "/h/l/BBB".into(), "/h/l/CCC".into()],
        relative_lowers: vec!["l/AAA".into(), "l/BBB".into(), "l/CCC".into()],
        relative_base: "/h".into(),
        upper: Some(("/h/c/diff".into(), "/h/c/work".into())),
        options: strings(options),
        target: "/h/c/merged".into(),
    }
}

fn set(key: &str, value: &str) -> Call {
    Call::FsconfigSetString {
        key: key.into(),
        value: value.into(),
    }
}

fn flag(key: &str) -> Call {
    Call::FsconfigSetFlag { key: key.into() }
}

#[test]
fn the_new_api_gets_one_lowerdir_plus_per_layer_then_the_options() {
    let sys = RecordingSyscalls::new();
    let options = [
        "nodev",
        "userxattr",
        "volatile",
        "metacopy=on",
        "context=\"system_u:object_r:container_file_t:s0:c1,c2\"",
        "noatime",
    ];
    mount_overlay(&sys, &spec(&options), true).expect("mount");
    assert_eq!(
        sys.calls(),
        vec![
            Call::Fsopen {
                fstype: "overlay".into()
            },
            set("source", "overlay"),
            set("lowerdir+", "/h/l/AAA"),
            set("lowerdir+", "/h/l/BBB"),
            set("lowerdir+", "/h/l/CCC"),
            set("upperdir", "/h/c/diff"),
            set("workdir", "/h/c/work"),
            flag("userxattr"),
            flag("volatile"),
            set("metacopy", "on"),
            // The quotes that protect the label's comma in a classic option string go.
            set("context", "system_u:object_r:container_file_t:s0:c1,c2"),
            Call::FsconfigCreate,
            Call::Fsmount {
                attrs: MountAttrFlags::MOUNT_ATTR_NODEV | MountAttrFlags::MOUNT_ATTR_NOATIME
            },
            Call::MoveMount {
                target: "/h/c/merged".into()
            },
        ]
    );
    assert_eq!(sys.mounted(), vec![PathBuf::from("/h/c/merged")]);
}

#[test]
fn a_read_only_mount_has_no_upper_and_the_read_only_attribute() {
    let sys = RecordingSyscalls::new();
    let mut read_only = spec(&["ro"]);
    read_only.upper = None;
    mount_overlay(&sys, &read_only, true).expect("mount");
    let calls = sys.calls();
    assert!(!calls.iter().any(|c| matches!(c,
        Call::FsconfigSetString { key, .. } if key == "upperdir" || key == "workdir")));
    assert!(calls.contains(&Call::Fsmount {
        attrs: MountAttrFlags::MOUNT_ATTR_RDONLY
    }));
}

#[test]
fn classic_mounts_join_the_lowers_with_colons() {
    let sys = RecordingSyscalls::new();
    mount_overlay(&sys, &spec(&["nodev", "userxattr", "volatile"]), false).expect("mount");
    assert_eq!(
        sys.calls(),
        vec![Call::Mount {
            source: "overlay".into(),
            target: "/h/c/merged".into(),
            fstype: "overlay".into(),
            flags: MountFlags::NODEV,
            data: Some(OsString::from(
                "lowerdir=/h/l/AAA:/h/l/BBB:/h/l/CCC,upperdir=/h/c/diff,workdir=/h/c/work,\
                 userxattr,volatile"
            )),
        }]
    );
}

/// A chain whose absolute option string passes a page: the short `l/` links, from a
/// process working in the home; past a page even so, an error and no call.
#[test]
fn long_classic_chains_use_the_short_links_from_the_home() {
    let sys = RecordingSyscalls::new();
    let count = 100;
    let home = format!("/var/lib/containers/storage/{}/overlay", "x".repeat(40));
    let long = OverlaySpec {
        lowers: (0..count)
            .map(|n| PathBuf::from(format!("{home}/l/{n:026}")))
            .collect(),
        relative_lowers: (0..count)
            .map(|n| PathBuf::from(format!("l/{n:026}")))
            .collect(),
        relative_base: home.clone().into(),
        upper: Some((
            format!("{home}/c/diff").into(),
            format!("{home}/c/work").into(),
        )),
        options: strings(&["nosuid"]),
        target: format!("{home}/c/merged").into(),
    };
    assert!(long.option_string(false).len() >= rustix::param::page_size());
    mount_overlay(&sys, &long, false).expect("mount");
    let relative: Vec<String> = (0..count).map(|n| format!("l/{n:026}")).collect();
    assert_eq!(
        sys.take_calls(),
        vec![Call::MountInDir {
            dir: home.clone().into(),
            source: "overlay".into(),
            target: format!("{home}/c/merged").into(),
            fstype: "overlay".into(),
            flags: MountFlags::NOSUID,
            data: format!(
                "lowerdir={},upperdir={home}/c/diff,workdir={home}/c/work",
                relative.join(":")
            )
            .into(),
        }]
    );

    let too_long = OverlaySpec {
        relative_lowers: long.lowers.clone(),
        ..long
    };
    let err = mount_overlay(&sys, &too_long, false).expect_err("too long");
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert!(sys.calls().is_empty());
}

#[test]
fn lowerdir_plus_is_probed_once_per_ask() {
    let sys = RecordingSyscalls::new();
    assert!(new_api_available(&sys));
    assert_eq!(
        sys.take_calls(),
        vec![
            Call::Fsopen {
                fstype: "overlay".into()
            },
            set("lowerdir+", "/")
        ]
    );
    // A kernel before 6.8 refuses the key.
    sys.fail_when(
        |c| matches!(c, Call::FsconfigSetString { key, .. } if key == "lowerdir+"),
        libc::EINVAL,
    );
    assert!(!new_api_available(&sys));
}

#[test]
fn unmounting_what_is_not_mounted_is_fine_and_a_busy_mount_is_detached() {
    let sys = RecordingSyscalls::new();
    let target = Path::new("/h/c/merged");
    unmount_target(&sys, target).expect("nothing mounted: EINVAL is fine");
    sys.bind_mount(target, target).expect("mount");
    sys.fail_when(
        |c| matches!(c, Call::Unmount { flags, .. } if *flags == UnmountFlags::NOFOLLOW),
        libc::EBUSY,
    );
    sys.take_calls();
    unmount_target(&sys, target).expect("detached");
    assert_eq!(
        sys.calls(),
        vec![
            Call::Unmount {
                target: target.into(),
                flags: UnmountFlags::NOFOLLOW
            },
            Call::Unmount {
                target: target.into(),
                flags: UnmountFlags::DETACH | UnmountFlags::NOFOLLOW
            },
        ]
    );
    assert!(sys.mounted().is_empty());
}

#[test]
fn a_home_is_bind_mounted_on_itself_only_when_it_is_no_mount_point() {
    let sys = RecordingSyscalls::new();
    let home = Path::new("/var/lib/containers/storage/overlay");
    make_private(&sys, home).expect("private");
    make_private(&sys, home).expect("private again");
    let private = Call::SetPropagation {
        target: home.into(),
        propagation: MountPropagationFlags::PRIVATE,
    };
    assert_eq!(
        sys.calls(),
        vec![
            Call::BindMount {
                source: home.into(),
                target: home.into()
            },
            private.clone(),
            private,
        ]
    );
}
