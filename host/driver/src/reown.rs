//! Re-owning a layer's files from one ID mapping to another (upstream's `UpdateLayerIDMap`,
//! `ChownPathByMaps`), for drivers served by a component: the component says where the layer
//! is, and the host, which holds the privilege, walks it and changes the owners. The walk
//! never follows a symbolic link, and a chown that clears set-user/group-ID bits is followed
//! by a chmod that restores them.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::{DriverError, DriverResult};
use crate::idmap::IdMappings;

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

/// Re-owns `root` and everything beneath it.
pub fn reown_tree(
    root: &Path,
    to_container: &IdMappings,
    to_host: &IdMappings,
) -> DriverResult<()> {
    if to_container == to_host {
        return Ok(());
    }
    let mut pending = vec![root.to_path_buf()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path)
            .map_err(|e| DriverError::io(format!("stat of {}", path.display()), e))?;
        let (uid, gid) = remap(meta.uid(), meta.gid(), to_container, to_host).ok_or_else(|| {
            DriverError::BadOption(format!(
                "owner {}:{} of {} is not in the layer's ID mapping",
                meta.uid(),
                meta.gid(),
                path.display()
            ))
        })?;
        if (uid, gid) != (meta.uid(), meta.gid()) {
            std::os::unix::fs::lchown(&path, Some(uid), Some(gid))
                .map_err(|e| DriverError::io(format!("chown of {}", path.display()), e))?;
            let mode = meta.mode() & 0o7777;
            if !meta.file_type().is_symlink() && mode & 0o6000 != 0 {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                    .map_err(|e| DriverError::io(format!("chmod of {}", path.display()), e))?;
            }
        }
        if meta.is_dir() {
            let entries = std::fs::read_dir(&path)
                .map_err(|e| DriverError::io(format!("reading {}", path.display()), e))?;
            for entry in entries {
                let entry =
                    entry.map_err(|e| DriverError::io(format!("reading {}", path.display()), e))?;
                pending.push(entry.path());
            }
        }
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
