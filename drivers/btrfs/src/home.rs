//! The driver home as a mount: the check that it is on btrfs, the private bind mount of
//! itself that init makes (upstream's `mount.MakePrivate`, so layer mounts made beneath it
//! by a container engine do not propagate), and undoing it at `shutdown`, through the
//! driver's [`Syscalls`].

use std::io;
use std::path::Path;

use storage_driver::syscalls::{MountPropagationFlags, Syscalls, UnmountFlags};

/// `BTRFS_SUPER_MAGIC`, the `f_type` statfs reports for btrfs.
pub const BTRFS_SUPER_MAGIC: u32 = 0x9123_683E;

/// The filesystem magic of the filesystem `path` is on.
pub fn fs_magic(path: &Path) -> io::Result<u32> {
    let st = rustix::fs::statfs(path)?;
    // f_type is a signed word whose width varies by architecture; magics are 32 bits.
    Ok(st.f_type as u32)
}

/// Makes `dir` a private mount: bind-mounts it on itself first if it is not a mount root.
pub fn make_private(sys: &dyn Syscalls, dir: &Path) -> io::Result<()> {
    if !sys.is_mount_point(dir)? {
        sys.bind_mount(dir, dir)?;
    }
    sys.set_propagation(dir, MountPropagationFlags::PRIVATE)
}

/// Detaches the mount at `dir` (lazily, as upstream's `mount.Unmount`); a `dir` that is not
/// a mount point is not an error.
pub fn unmount_dir(sys: &dyn Syscalls, dir: &Path) -> io::Result<()> {
    match sys.unmount(dir, UnmountFlags::DETACH | UnmountFlags::NOFOLLOW) {
        Ok(()) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOENT)) => Ok(()),
        Err(e) => Err(e),
    }
}
