//! Re-owning a layer's files from one ID mapping to another (upstream's `UpdateLayerIDMap`,
//! `ChownPathByMaps`): the vfs component's and btrfs's layers in place, overlay's through its
//! mount. The walk never follows a symbolic link; each inode is re-owned once, and a path
//! that is another link to an inode already re-owned is linked to the first path again (on
//! overlay, re-owning copies a lower file up, which splits its hard links). A chown that
//! clears set-user/group-ID bits or a file capability is followed by restoring them. The
//! chowns, the capability's read and write and the chmods go through the caller's
//! [`Syscalls`], so which calls a walk makes is unit-tested without root (`without_root`).

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::idmap::{IdMap, IdMappings};
use crate::syscalls::Syscalls;
use crate::{DriverError, DriverResult};

/// The xattr holding a file capability, which the kernel drops on chown.
const CAPABILITY_XATTR: &str = "security.capability";

/// The owner a host (uid, gid) gets: into the container through `to_container`, then back to
/// the host through `to_host`. `None` when `to_container` does not map it.
pub fn remap(
    uid: u32,
    gid: u32,
    to_container: &IdMappings,
    to_host: &IdMappings,
) -> Option<(u32, u32)> {
    let (cuid, cgid) = to_container.to_container(uid, gid)?;
    to_host.to_host(cuid, cgid)
}

/// The owner upstream's `LChown` gives a host (uid, gid): into the container through
/// `to_container` (an owner it does not map is an error, except 0:0, kept as it is), then
/// to the host through `to_host`, where an ID it does not map becomes the kernel's overflow
/// ID (`ToHostOverflow`).
pub fn remap_like_upstream(
    uid: u32,
    gid: u32,
    to_container: &IdMappings,
    to_host: &IdMappings,
) -> Option<(u32, u32)> {
    let (cuid, cgid) = match to_container.to_container(uid, gid) {
        Some(pair) => pair,
        None if (uid, gid) == (0, 0) => (0, 0),
        None => return None,
    };
    let root_uid = root_id(&to_host.uids);
    let root_gid = root_id(&to_host.gids);
    let host_uid = if Some(cuid) == root_uid {
        cuid
    } else {
        raw_to_host(&to_host.uids, cuid).unwrap_or_else(|| overflow_id("overflowuid"))
    };
    let host_gid = if Some(cgid) == root_gid {
        cgid
    } else {
        raw_to_host(&to_host.gids, cgid).unwrap_or_else(|| overflow_id("overflowgid"))
    };
    Some((host_uid, host_gid))
}

/// Upstream's `GetRootUIDGID` for one list: the host ID of container root.
fn root_id(ranges: &[IdMap]) -> Option<u32> {
    match ranges {
        [only] if only.size == 1 => Some(only.host_id),
        _ => raw_to_host(ranges, 0),
    }
}

/// One container ID on the host; an empty list is the identity.
fn raw_to_host(ranges: &[IdMap], id: u32) -> Option<u32> {
    if ranges.is_empty() {
        return Some(id);
    }
    ranges.iter().find_map(|m| {
        let offset = id.checked_sub(m.container_id)?;
        (offset < m.size).then(|| m.host_id + offset)
    })
}

/// The kernel's overflow user or group ID (65534 unless configured otherwise).
fn overflow_id(which: &str) -> u32 {
    std::fs::read_to_string(format!("/proc/sys/kernel/{which}"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(65534)
}

/// Re-owns `root` and everything beneath it, as upstream's `ChownPathByMaps`.
pub fn reown_tree(
    sys: &dyn Syscalls,
    root: &Path,
    to_container: &IdMappings,
    to_host: &IdMappings,
) -> DriverResult<()> {
    if to_container == to_host {
        return Ok(());
    }
    let mut seen: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path)
            .map_err(|e| DriverError::io(format!("stat of {}", path.display()), e))?;
        let inode = (meta.dev(), meta.ino());
        if let Some(first) = seen.get(&inode) {
            if !meta.is_dir() {
                relink(first, &path)?;
            }
            continue;
        }
        seen.insert(inode, path.clone());
        reown_one(sys, &path, &meta, to_container, to_host)?;
        if meta.is_dir() {
            let entries = std::fs::read_dir(&path)
                .map_err(|e| DriverError::io(format!("reading {}", path.display()), e))?;
            let mut children = Vec::new();
            for entry in entries {
                let entry =
                    entry.map_err(|e| DriverError::io(format!("reading {}", path.display()), e))?;
                children.push(entry.path());
            }
            // Popped in name order, as upstream's walk visits them: the first name of
            // a hard-linked inode is the one the others are linked to again.
            children.sort_unstable_by(|a, b| b.cmp(a));
            pending.extend(children);
        }
    }
    Ok(())
}

/// Makes `path` a hard link to `first` again (they were links to one inode).
fn relink(first: &Path, path: &Path) -> DriverResult<()> {
    std::fs::remove_file(path)
        .map_err(|e| DriverError::io(format!("removing {}", path.display()), e))?;
    std::fs::hard_link(first, path).map_err(|e| {
        DriverError::io(
            format!("linking {} to {}", path.display(), first.display()),
            e,
        )
    })
}

/// Re-owns one path (not following it), keeping its set-ID bits and capability.
fn reown_one(
    sys: &dyn Syscalls,
    path: &Path,
    meta: &std::fs::Metadata,
    to_container: &IdMappings,
    to_host: &IdMappings,
) -> DriverResult<()> {
    let (uid, gid) = remap_like_upstream(meta.uid(), meta.gid(), to_container, to_host)
        .ok_or_else(|| DriverError::UnmappedOwner {
            uid: meta.uid(),
            gid: meta.gid(),
            path: path.to_path_buf(),
        })?;
    if (uid, gid) == (meta.uid(), meta.gid()) {
        return Ok(());
    }
    let is_link = meta.file_type().is_symlink();
    let capability = if is_link {
        None
    } else {
        sys.lget_xattr(path, CAPABILITY_XATTR)
            .ok()
            .flatten()
            .filter(|value| !value.is_empty())
    };
    sys.lchown(path, uid, gid)
        .map_err(|e| DriverError::io(format!("chown of {}", path.display()), e))?;
    let mode = meta.mode() & 0o7777;
    if !is_link && mode & 0o6000 != 0 {
        sys.chmod(path, mode)
            .map_err(|e| DriverError::io(format!("chmod of {}", path.display()), e))?;
    }
    if let Some(value) = capability {
        sys.lset_xattr(path, CAPABILITY_XATTR, &value)
            .map_err(|e| {
                DriverError::io(format!("restoring the capability of {}", path.display()), e)
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idmap::IdMap;
    use crate::syscalls::LinuxSyscalls;
    use std::os::unix::fs::PermissionsExt;

    fn shifted(host: u32) -> IdMappings {
        let r = vec![IdMap {
            container_id: 0,
            host_id: host,
            size: 65536,
        }];
        IdMappings {
            uids: r.clone(),
            gids: r,
        }
    }

    #[test]
    fn remap_goes_through_the_container_ids() {
        let id = IdMappings::default();
        assert_eq!(
            remap(5, 7, &id, &shifted(100_000)),
            Some((100_005, 100_007))
        );
        assert_eq!(
            remap(100_005, 100_007, &shifted(100_000), &id),
            Some((5, 7))
        );
        assert_eq!(
            remap(100_005, 100_000, &shifted(100_000), &shifted(300_000)),
            Some((300_005, 300_000))
        );
        assert_eq!(remap(5, 5, &shifted(100_000), &id), None);
    }

    #[test]
    fn upstream_remap_keeps_zero_and_overflows_unmapped_host_ids() {
        let small = IdMappings {
            uids: vec![IdMap {
                container_id: 0,
                host_id: 1000,
                size: 10,
            }],
            gids: vec![IdMap {
                container_id: 0,
                host_id: 2000,
                size: 10,
            }],
        };
        // 0:0 that the source mapping lacks is taken as container root.
        assert_eq!(
            remap_like_upstream(0, 0, &shifted(100_000), &small),
            Some((1000, 2000))
        );
        // Any other owner the source mapping lacks is an error.
        assert_eq!(remap_like_upstream(5, 0, &shifted(100_000), &small), None);
        // A container ID the target mapping lacks becomes the overflow ID.
        let overflow = overflow_id("overflowuid");
        assert_eq!(
            remap_like_upstream(100_050, 100_003, &shifted(100_000), &small),
            Some((overflow, 2003))
        );
    }

    #[test]
    fn reown_tree_keeps_hard_links_and_capabilities() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("reown_tree: needs root to chown; skipped");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("layer");
        std::fs::create_dir_all(&root).expect("mkdir");
        std::fs::write(root.join("origin"), b"x").expect("write");
        std::fs::hard_link(root.join("origin"), root.join("link")).expect("link");
        // security.capability v2: effective, CAP_NET_RAW permitted.
        let cap: [u8; 20] = [0, 0, 0, 2, 0, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        std::fs::write(root.join("cap"), b"c").expect("write");
        rustix::fs::lsetxattr(
            root.join("cap"),
            CAPABILITY_XATTR,
            &cap,
            rustix::fs::XattrFlags::empty(),
        )
        .expect("setcap");
        reown_tree(
            &LinuxSyscalls,
            &root,
            &IdMappings::default(),
            &shifted(100_000),
        )
        .expect("reown");
        let meta = |p: &str| std::fs::symlink_metadata(root.join(p)).expect("lstat");
        assert_eq!(meta("origin").ino(), meta("link").ino());
        assert_eq!(meta("origin").nlink(), 2);
        assert_eq!(meta("origin").uid(), 100_000);
        assert_eq!(meta("cap").uid(), 100_000);
        let mut value = [0u8; 64];
        let len = rustix::fs::lgetxattr(root.join("cap"), CAPABILITY_XATTR, &mut value)
            .expect("the capability survives the chown");
        assert_eq!(&value[..len], &cap);
    }

    #[test]
    fn reown_tree_chowns_without_following_links_and_keeps_setuid() {
        if !rustix::process::geteuid().is_root() {
            eprintln!("reown_tree: needs root to chown; skipped");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("layer");
        std::fs::create_dir_all(root.join("sub")).expect("mkdir");
        std::fs::write(root.join("sub/suid"), b"x").expect("write");
        std::fs::set_permissions(
            root.join("sub/suid"),
            std::fs::Permissions::from_mode(0o4755),
        )
        .expect("chmod");
        std::os::unix::fs::lchown(root.join("sub/suid"), Some(5), Some(7)).expect("chown");
        std::fs::set_permissions(
            root.join("sub/suid"),
            std::fs::Permissions::from_mode(0o4755),
        )
        .expect("chmod");
        // A link out of the tree: its own owner changes, never its target's.
        let outside = dir.path().join("outside");
        std::fs::write(&outside, b"o").expect("write");
        std::os::unix::fs::symlink(&outside, root.join("link")).expect("symlink");
        reown_tree(
            &LinuxSyscalls,
            &root,
            &IdMappings::default(),
            &shifted(100_000),
        )
        .expect("reown");
        let meta = |p: &Path| std::fs::symlink_metadata(p).expect("lstat");
        let suid = meta(&root.join("sub/suid"));
        assert_eq!((suid.uid(), suid.gid()), (100_005, 100_007));
        assert_eq!(suid.mode() & 0o7777, 0o4755);
        assert_eq!(meta(&root).uid(), 100_000);
        assert_eq!(meta(&root.join("link")).uid(), 100_000);
        assert_eq!(meta(&outside).uid(), 0);
        // Back again; an owner the source mapping lacks is an error.
        reown_tree(
            &LinuxSyscalls,
            &root,
            &shifted(100_000),
            &IdMappings::default(),
        )
        .expect("back");
        assert_eq!(meta(&root.join("sub/suid")).uid(), 5);
        assert!(reown_tree(
            &LinuxSyscalls,
            &root,
            &shifted(100_000),
            &IdMappings::default()
        )
        .is_err());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod without_root {
    use super::*;
    use crate::syscalls::{Call, RecordingSyscalls};
    use std::os::unix::fs::PermissionsExt;

    fn shifted(host: u32) -> IdMappings {
        let r = vec![IdMap {
            container_id: 0,
            host_id: host,
            size: 65536,
        }];
        IdMappings {
            uids: r.clone(),
            gids: r,
        }
    }

    /// security.capability v2: effective, CAP_NET_RAW permitted.
    const CAP: [u8; 20] = [0, 0, 0, 2, 0, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

    /// A walk makes one lchown per inode with the mapped IDs (never following a link), reads
    /// a file's capability before its chown and writes it back after, puts back set-ID bits
    /// with a chmod, and links a second name of an inode to the first again instead of
    /// chowning it twice. The files are the test user's: the IDs expected follow from it.
    #[test]
    fn one_lchown_per_inode_then_capability_and_set_id_bits_restored() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("layer");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/suid"), b"x").unwrap();
        std::fs::set_permissions(
            root.join("sub/suid"),
            std::fs::Permissions::from_mode(0o4755),
        )
        .unwrap();
        std::fs::write(root.join("hard1"), b"h").unwrap();
        std::fs::hard_link(root.join("hard1"), root.join("hard2")).unwrap();
        std::fs::write(root.join("cap"), b"c").unwrap();
        std::os::unix::fs::symlink("/outside", root.join("symlink")).unwrap();
        let me = std::fs::metadata(&root).unwrap();
        let (uid, gid) = (100_000 + me.uid(), 100_000 + me.gid());
        let sys = RecordingSyscalls::new();
        sys.put_xattr(&root.join("cap"), CAPABILITY_XATTR, &CAP);

        reown_tree(&sys, &root, &IdMappings::default(), &shifted(100_000)).unwrap();

        let calls = sys.calls();
        let chowns: Vec<(PathBuf, Option<u32>, Option<u32>, bool)> = calls
            .iter()
            .filter_map(|c| match c {
                Call::Chown {
                    path,
                    uid,
                    gid,
                    follow,
                } => Some((
                    path.strip_prefix(&root).unwrap().into(),
                    *uid,
                    *gid,
                    *follow,
                )),
                _ => None,
            })
            .collect();
        let expected: Vec<(PathBuf, Option<u32>, Option<u32>, bool)> =
            ["", "cap", "hard1", "sub", "sub/suid", "symlink"]
                .iter()
                .map(|p| (PathBuf::from(p), Some(uid), Some(gid), false))
                .collect();
        assert_eq!(
            chowns, expected,
            "each inode once, in name order, links not followed"
        );

        let around = |name: &str| {
            let path = root.join(name);
            let at = calls
                .iter()
                .position(|c| matches!(c, Call::Chown { path: p, .. } if *p == path))
                .unwrap();
            calls[at - 1..=at + 1].to_vec()
        };
        let cap = root.join("cap");
        assert_eq!(
            around("cap"),
            vec![
                Call::GetXattr {
                    path: cap.clone(),
                    name: CAPABILITY_XATTR.into()
                },
                Call::Chown {
                    path: cap.clone(),
                    uid: Some(uid),
                    gid: Some(gid),
                    follow: false
                },
                Call::SetXattr {
                    path: cap,
                    name: CAPABILITY_XATTR.into(),
                    value: CAP.to_vec()
                },
            ],
            "the capability the chown clears is written back"
        );
        let suid = root.join("sub/suid");
        assert_eq!(
            around("sub/suid")[2],
            Call::Chmod {
                path: suid,
                mode: 0o4755
            },
            "the set-user-ID bit the chown clears is put back"
        );
        assert!(
            !calls.iter().any(|c| matches!(c,
                Call::GetXattr { path, .. } | Call::Chmod { path, .. } | Call::SetXattr { path, .. }
                    if path.ends_with("symlink"))),
            "a symlink has no capability or mode to keep"
        );
        let ino = |p: &str| std::fs::symlink_metadata(root.join(p)).unwrap().ino();
        assert_eq!(ino("hard1"), ino("hard2"), "still one inode");
    }

    #[test]
    fn equal_mappings_make_no_call() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("f"), b"f").unwrap();
        let sys = RecordingSyscalls::new();
        let m = shifted(100_000);
        reown_tree(&sys, tmp.path(), &m, &m).unwrap();
        assert!(sys.calls().is_empty());
    }

    /// An owner the source mapping lacks is its own error, naming the owner and the path,
    /// and nothing is chowned. (As root the directory is given such an owner first; as
    /// anyone else, the user's own IDs are outside the mapping already.)
    #[test]
    fn an_unmapped_owner_is_reported_as_such() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("layer");
        std::fs::create_dir(&root).unwrap();
        if rustix::process::geteuid().is_root() {
            std::os::unix::fs::lchown(&root, Some(5), Some(5)).unwrap();
        }
        let owner = std::fs::metadata(&root).unwrap();
        let sys = RecordingSyscalls::new();
        let err = reown_tree(&sys, &root, &shifted(100_000), &IdMappings::default()).unwrap_err();
        match &err {
            DriverError::UnmappedOwner { uid, gid, path } => {
                assert_eq!((*uid, *gid), (owner.uid(), owner.gid()));
                assert_eq!(path, &root);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            err.to_string(),
            format!(
                "owner {}:{} of {} is not in the layer's ID mapping",
                owner.uid(),
                owner.gid(),
                root.display()
            )
        );
        assert!(
            !sys.calls().iter().any(|c| matches!(c, Call::Chown { .. })),
            "nothing chowned"
        );
    }

    #[test]
    fn a_failed_chown_stops_the_walk_with_the_path() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("f"), b"f").unwrap();
        let sys = RecordingSyscalls::new();
        sys.fail_when(|c| matches!(c, Call::Chown { .. }), libc::EPERM);
        let err =
            reown_tree(&sys, tmp.path(), &IdMappings::default(), &shifted(100_000)).unwrap_err();
        assert!(err.to_string().starts_with("chown of "), "{err}");
        assert_eq!(
            sys.calls().len(),
            2,
            "the root's capability read and chown, no more"
        );
    }
}
