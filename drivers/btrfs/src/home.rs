//! The driver home as a mount: the check that it is on btrfs, the private bind mount of
//! itself that init makes (upstream's `mount.MakePrivate`, so layer mounts made beneath it
//! by a container engine do not propagate), and undoing it at `shutdown`.

use std::io;
use std::path::Path;

use rustix::fs::{statx, AtFlags, StatxAttributes, StatxFlags, CWD};
use rustix::mount::{mount_bind, mount_change, unmount, MountPropagationFlags, UnmountFlags};

/// `BTRFS_SUPER_MAGIC`, the `f_type` statfs reports for btrfs.
pub const BTRFS_SUPER_MAGIC: u32 = 0x9123_683E;

/// The filesystem magic of the filesystem `path` is on.
pub fn fs_magic(path: &Path) -> io::Result<u32> {
    let st = rustix::fs::statfs(path)?;
    // f_type is a signed word whose width varies by architecture; magics are 32 bits.
    Ok(st.f_type as u32)
}

/// Whether `path` is the root of a mount (statx's `STATX_ATTR_MOUNT_ROOT`, Linux ≥ 5.8).
pub fn is_mount_root(path: &Path) -> io::Result<bool> {
    let st = statx(
        CWD,
        path,
        AtFlags::SYMLINK_NOFOLLOW | AtFlags::NO_AUTOMOUNT,
        StatxFlags::empty(),
    )?;
    if !st.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT) {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the kernel does not report mount roots",
        ));
    }
    Ok(st.stx_attributes.contains(StatxAttributes::MOUNT_ROOT))
}

/// Makes `dir` a private mount: bind-mounts it on itself first if it is not a mount root.
pub fn make_private(dir: &Path) -> io::Result<()> {
    if !is_mount_root(dir)? {
        mount_bind(dir, dir)?;
    }
    mount_change(dir, MountPropagationFlags::PRIVATE)?;
    Ok(())
}

/// Detaches the mount at `dir` (lazily, as upstream's `mount.Unmount`); a `dir` that is not
/// a mount point is not an error.
pub fn unmount_dir(dir: &Path) -> io::Result<()> {
    match unmount(dir, UnmountFlags::DETACH | UnmountFlags::NOFOLLOW) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOENT => Ok(()),
        Err(e) => Err(e.into()),
    }
}
