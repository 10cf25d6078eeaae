//! Re-owning a layer's files from one ID mapping to another (upstream's `UpdateLayerIDMap`,
//! `ChownPathByMaps`): the vfs component's and btrfs's layers in place, overlay's through its
//! mount. The walk never follows a symbolic link; each inode is re-owned once, and a path
//! that is another link to an inode already re-owned is linked to the first path again (on
//! overlay, re-owning copies a lower file up, which splits its hard links). A chown that
//! clears set-user/group-ID bits or a file capability is followed by restoring them.

use std::collections::HashMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::idmap::{IdMap, IdMappings};
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
        reown_one(&path, &meta, to_container, to_host)?;
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
    path: &Path,
    meta: &std::fs::Metadata,
    to_container: &IdMappings,
    to_host: &IdMappings,
) -> DriverResult<()> {
    let (uid, gid) = remap_like_upstream(meta.uid(), meta.gid(), to_container, to_host)
        .ok_or_else(|| {
            DriverError::BadOption(format!(
                "owner {}:{} of {} is not in the layer's ID mapping",
                meta.uid(),
                meta.gid(),
                path.display()
            ))
        })?;
    if (uid, gid) == (meta.uid(), meta.gid()) {
        return Ok(());
    }
    let is_link = meta.file_type().is_symlink();
    let capability = if is_link {
        None
    } else {
        // A capability is at most 24 bytes (VFS_CAP_REVISION_3).
        let mut value = vec![0u8; 64];
        rustix::fs::lgetxattr(path, CAPABILITY_XATTR, &mut value[..])
            .ok()
            .filter(|len| *len > 0)
            .map(|len| {
                value.truncate(len);
                value
            })
    };
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
        .map_err(|e| DriverError::io(format!("chown of {}", path.display()), e))?;
    let mode = meta.mode() & 0o7777;
    if !is_link && mode & 0o6000 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| DriverError::io(format!("chmod of {}", path.display()), e))?;
    }
    if let Some(value) = capability {
        rustix::fs::lsetxattr(
            path,
            CAPABILITY_XATTR,
            &value,
            rustix::fs::XattrFlags::empty(),
        )
        .map_err(|e| {
            DriverError::io(
                format!("restoring the capability of {}", path.display()),
                e.into(),
            )
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idmap::IdMap;

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
        reown_tree(&root, &IdMappings::default(), &shifted(100_000)).expect("reown");
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
        reown_tree(&root, &IdMappings::default(), &shifted(100_000)).expect("reown");
        let meta = |p: &Path| std::fs::symlink_metadata(p).expect("lstat");
        let suid = meta(&root.join("sub/suid"));
        assert_eq!((suid.uid(), suid.gid()), (100_005, 100_007));
        assert_eq!(suid.mode() & 0o7777, 0o4755);
        assert_eq!(meta(&root).uid(), 100_000);
        assert_eq!(meta(&root.join("link")).uid(), 100_000);
        assert_eq!(meta(&outside).uid(), 0);
        // Back again; an owner the source mapping lacks is an error.
        reown_tree(&root, &shifted(100_000), &IdMappings::default()).expect("back");
        assert_eq!(meta(&root.join("sub/suid")).uid(), 5);
        assert!(reown_tree(&root, &shifted(100_000), &IdMappings::default()).is_err());
    }
}
