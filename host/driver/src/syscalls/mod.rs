//! The system calls that need privilege or decide durability, behind one trait.
//!
//! Mounting (classic `mount(2)`, the new mount API, bind mounts, propagation, unmounting),
//! changing owners, making device nodes, `security.*` xattrs, xfs project quotas, btrfs
//! subvolumes and qgroups, and the `syncfs` that decides whether a layer's data is on disk:
//! every such call the drivers, confined trees, the component host, the store and `copy`
//! make goes through [`Syscalls`]. [`LinuxSyscalls`] makes them; [`RecordingSyscalls`]
//! records them with their arguments and answers as configured, so the logic around them
//! (which mounts with which options, which owners, which quota limits, what happens when a
//! flush fails) is unit-tested without root. Real-root tests of the drivers then prove
//! [`LinuxSyscalls`] end to end.
//!
//! A driver gets its implementation from [`crate::DriverInit::syscalls`] (the real one by
//! default; a test puts the double there, or in the [`crate::DriverRegistry`]).
//!
//! The few unprivileged calls that need `unsafe` are functions here, beside the trait:
//! [`dedupe_range`] (the `FIDEDUPERANGE` ioctl of `storage dedup`), [`set_record_lock_wait`]
//! (the store's fcntl lock files), [`default_sigpipe`] and [`fork_unshared`] (the CLI's
//! process setup and `storage unshare`). Their module, `linux.rs`, is the only one in the
//! workspace allowed `unsafe` (the component host's loading of its own precompiled
//! artifacts aside, which is no system call); each block states why it is sound.
//!
//! Errors are the kernel's, as [`io::Error`]s with their `errno`.

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub use rustix::fs::{AtFlags, FileType};
pub use rustix::mount::{MountAttrFlags, MountFlags, MountPropagationFlags, UnmountFlags};

pub mod btrfs;
mod call;
mod linux;
mod recording;
pub mod xfs;

pub use call::Call;
pub use linux::{
    dedupe_range, default_sigpipe, fork_unshared, set_record_lock_wait, LinuxSyscalls,
    UnsharedChild,
};
pub use nix::sched::CloneFlags;
pub use recording::RecordingSyscalls;
pub use xfs::{FsDiskQuota, FsXattr, ProjectQuotaCmd};

/// The privileged and durability-deciding system calls (see the module doc).
///
/// Paths are used as given (relative ones against the working directory); `*_at` calls take
/// a directory descriptor (`rustix::fs::CWD` for none). Methods are as the product uses them:
/// each says which call it makes.
pub trait Syscalls: Send + Sync + fmt::Debug {
    /// `mount(2)`: mounts `source` of type `fstype` at `target` with `flags` and the
    /// filesystem's option string `data`.
    fn mount(
        &self,
        source: &str,
        target: &Path,
        fstype: &str,
        flags: MountFlags,
        data: Option<&OsStr>,
    ) -> io::Result<()>;

    /// `mount(2)` made by a child process whose working directory is `dir`, so that relative
    /// paths in `data` resolve there (the parent's working directory, which every thread
    /// shares, is never changed): overlay's short `l/` lowers on kernels without
    /// `lowerdir+`.
    fn mount_in_dir(
        &self,
        dir: &Path,
        source: &str,
        target: &Path,
        fstype: &str,
        flags: MountFlags,
        data: &OsStr,
    ) -> io::Result<()>;

    /// `mount(2)` with `MS_BIND`: makes `source` visible at `target` too.
    fn bind_mount(&self, source: &Path, target: &Path) -> io::Result<()>;

    /// `mount(2)` with `MS_REMOUNT | flags`: changes the flags of the mount at `target`.
    fn remount(&self, target: &Path, flags: MountFlags, data: &str) -> io::Result<()>;

    /// `mount(2)` with a propagation flag (`MS_PRIVATE`, ...) for the mount at `target`.
    fn set_propagation(&self, target: &Path, propagation: MountPropagationFlags) -> io::Result<()>;

    /// `umount2(2)`: detaches the mount at `target`.
    fn unmount(&self, target: &Path, flags: UnmountFlags) -> io::Result<()>;

    /// Whether `path` is the root of a mount.
    fn is_mount_point(&self, path: &Path) -> io::Result<bool>;

    /// The text of `/proc/self/mountinfo`: the mounts and their options.
    fn mountinfo(&self) -> io::Result<String>;

    /// `fsopen(2)` (close-on-exec): a new filesystem context of type `fstype`.
    fn fsopen(&self, fstype: &str) -> io::Result<OwnedFd>;

    /// `fsconfig(2)` `FSCONFIG_SET_STRING`: sets `key` to `value` in the context `fs` (for
    /// overlay's `lowerdir+`, once per layer).
    fn fsconfig_set_string(&self, fs: BorrowedFd<'_>, key: &str, value: &OsStr) -> io::Result<()>;

    /// `fsconfig(2)` `FSCONFIG_SET_FLAG`: sets the flag `key` in the context `fs`.
    fn fsconfig_set_flag(&self, fs: BorrowedFd<'_>, key: &str) -> io::Result<()>;

    /// `fsconfig(2)` `FSCONFIG_CMD_CREATE`: creates the filesystem of the context `fs`.
    fn fsconfig_create(&self, fs: BorrowedFd<'_>) -> io::Result<()>;

    /// `fsmount(2)` (close-on-exec): a detached mount of the created filesystem `fs`, with the
    /// mount attributes `attrs`.
    fn fsmount(&self, fs: BorrowedFd<'_>, attrs: MountAttrFlags) -> io::Result<OwnedFd>;

    /// `move_mount(2)` with `MOVE_MOUNT_F_EMPTY_PATH`: attaches the detached `mount` at
    /// `target`.
    fn move_mount(&self, mount: BorrowedFd<'_>, target: &Path) -> io::Result<()>;

    /// `fchownat(2)`: gives `path` (beneath `dir`) the owner `uid` and group `gid` (`None`
    /// leaves one as it is); with `AtFlags::SYMLINK_NOFOLLOW` a symlink itself.
    fn chown_at(
        &self,
        dir: BorrowedFd<'_>,
        path: &Path,
        uid: Option<u32>,
        gid: Option<u32>,
        flags: AtFlags,
    ) -> io::Result<()>;

    /// `fchown(2)`: gives the open file `fd` the owner `uid` and group `gid` (`None` leaves
    /// one as it is).
    fn fchown(&self, fd: BorrowedFd<'_>, uid: Option<u32>, gid: Option<u32>) -> io::Result<()>;

    /// `chmod(2)`: sets the permission bits of `path` (following a symlink): how re-owning
    /// puts back the set-user/group-ID bits a chown cleared.
    fn chmod(&self, path: &Path, mode: u32) -> io::Result<()>;

    /// `mknodat(2)`: makes the node `path` (beneath `dir`) of `kind` with `mode` and device
    /// number `dev`.
    fn mknod_at(
        &self,
        dir: BorrowedFd<'_>,
        path: &Path,
        kind: FileType,
        mode: u32,
        dev: u64,
    ) -> io::Result<()>;

    /// `lgetxattr(2)`: the value of the xattr `name` of `path` (not following a symlink);
    /// `None` when it has none (or the filesystem has no xattrs).
    fn lget_xattr(&self, path: &Path, name: &str) -> io::Result<Option<Vec<u8>>>;

    /// `lsetxattr(2)`: sets the xattr `name` of `path` (not following a symlink); `trusted.*`
    /// and `security.*` names need privilege.
    fn lset_xattr(&self, path: &Path, name: &str, value: &[u8]) -> io::Result<()>;

    /// `fsetxattr(2)`: sets the xattr `name` of the open file `fd`.
    fn fset_xattr(&self, fd: BorrowedFd<'_>, name: &str, value: &[u8]) -> io::Result<()>;

    /// `lremovexattr(2)`: removes the xattr `name` of `path` (not following a symlink).
    fn lremove_xattr(&self, path: &Path, name: &str) -> io::Result<()>;

    /// `ioctl(FS_IOC_FSGETXATTR)`: the extended attributes (project ID, flags) of the
    /// directory `dir`.
    fn fs_get_xattr(&self, dir: BorrowedFd<'_>) -> io::Result<FsXattr>;

    /// `ioctl(FS_IOC_FSSETXATTR)`: sets them.
    fn fs_set_xattr(&self, dir: BorrowedFd<'_>, attr: &FsXattr) -> io::Result<()>;

    /// `quotactl(2)` on xfs project quotas: `cmd` for project `id` on the filesystem of the
    /// block device node `device`, reading or filling `quota`.
    fn project_quotactl(
        &self,
        cmd: ProjectQuotaCmd,
        device: &Path,
        id: u32,
        quota: &mut FsDiskQuota,
    ) -> io::Result<()>;

    /// `BTRFS_IOC_SUBVOL_CREATE`: creates the empty subvolume `name` in the directory `dir`.
    fn btrfs_subvol_create(&self, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()>;

    /// `BTRFS_IOC_SNAP_CREATE_V2`: creates `name` in the directory `dir` as a writable
    /// snapshot of the subvolume `source`.
    fn btrfs_snapshot(
        &self,
        source: BorrowedFd<'_>,
        dir: BorrowedFd<'_>,
        name: &OsStr,
    ) -> io::Result<()>;

    /// `BTRFS_IOC_SNAP_DESTROY_V2` (or the first version on kernels without it): deletes the
    /// subvolume `name` of the directory `dir`.
    fn btrfs_subvol_destroy(&self, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()>;

    /// `BTRFS_IOC_INO_LOOKUP`: the ID of the subvolume `fd` is in (also its level-0 qgroup).
    fn btrfs_subvolume_id(&self, fd: BorrowedFd<'_>) -> io::Result<u64>;

    /// `BTRFS_IOC_QUOTA_CTL` enable: turns quotas on for the filesystem `fd` is on.
    fn btrfs_quota_enable(&self, fd: BorrowedFd<'_>) -> io::Result<()>;

    /// `BTRFS_IOC_TREE_SEARCH` for the quota status item: whether quotas are on.
    fn btrfs_quota_enabled(&self, fd: BorrowedFd<'_>) -> io::Result<bool>;

    /// `BTRFS_IOC_QGROUP_LIMIT`: limits the referenced bytes of the subvolume `fd` is in.
    fn btrfs_qgroup_limit(&self, fd: BorrowedFd<'_>, bytes: u64) -> io::Result<()>;

    /// `BTRFS_IOC_QGROUP_CREATE` destroy: removes the qgroup `qgroupid`.
    fn btrfs_qgroup_destroy(&self, fd: BorrowedFd<'_>, qgroupid: u64) -> io::Result<()>;

    /// `BTRFS_IOC_QUOTA_RESCAN_WAIT`: waits for a running quota rescan.
    fn btrfs_quota_rescan_wait(&self, fd: BorrowedFd<'_>) -> io::Result<()>;

    /// `syncfs(2)`: flushes the filesystem `fd` is on. Its failure means the data may not be
    /// on disk.
    fn syncfs(&self, fd: BorrowedFd<'_>) -> io::Result<()>;

    /// `geteuid(2)`: whether the process has root's privileges decides what a driver asks
    /// the kernel for (overlay's `userxattr` without them).
    fn euid(&self) -> u32;

    /// Whether the process runs in a user namespace other than the initial one (its
    /// `/proc/self/uid_map` is not the identity over all IDs): root there is no root on the
    /// host, so overlay keeps its metadata in `user.overlay.*` xattrs there too, as upstream's
    /// `unshare.IsRootless()` decides in the namespace its re-execution makes.
    fn in_user_namespace(&self) -> bool;

    /// `chown(2)`: [`Syscalls::chown_at`] following a symlink.
    fn chown(&self, path: &Path, uid: u32, gid: u32) -> io::Result<()> {
        self.chown_at(
            rustix::fs::CWD,
            path,
            Some(uid),
            Some(gid),
            AtFlags::empty(),
        )
    }

    /// `lchown(2)`: [`Syscalls::chown_at`] of a symlink itself.
    fn lchown(&self, path: &Path, uid: u32, gid: u32) -> io::Result<()> {
        self.chown_at(
            rustix::fs::CWD,
            path,
            Some(uid),
            Some(gid),
            AtFlags::SYMLINK_NOFOLLOW,
        )
    }
}

/// The kind of a record lock, for [`set_record_lock_wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordLock {
    /// `F_RDLCK`: shared with other readers.
    Read,
    /// `F_WRLCK`: exclusive.
    Write,
    /// `F_UNLCK`: drops the lock.
    Unlock,
}

/// The kernel's answer for one destination range of [`dedupe_range`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeOutcome {
    /// This many bytes now share extents (may be fewer than asked: the kernel caps a call).
    Deduped(u64),
    /// The contents differ (`FILE_DEDUPE_RANGE_DIFFERS`).
    Differs,
    /// The destination was refused with this error (the call itself succeeded).
    Refused(rustix::io::Errno),
}

/// The real implementation, shared: what [`crate::DriverInit`] and
/// [`crate::DriverRegistry`] hand out by default.
pub fn real() -> std::sync::Arc<dyn Syscalls> {
    std::sync::Arc::new(LinuxSyscalls)
}

/// Whether `/proc/self/mountinfo`'s text `info` has a mount at `path`.
pub fn mountinfo_has(info: &str, path: &Path) -> bool {
    let wanted = path.as_os_str().as_bytes();
    info.lines().any(|line| {
        line.split(' ')
            .nth(4)
            .is_some_and(|mp| unescape_mountinfo(mp) == wanted)
    })
}

/// Undoes mountinfo's octal escapes (`\040` for a space, ...).
pub fn unescape_mountinfo(field: &str) -> Vec<u8> {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(v) = u8::try_from(value) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// Escapes a path as mountinfo shows it (space, tab, newline and backslash in octal).
pub fn escape_mountinfo(path: &Path) -> String {
    let mut out = Vec::new();
    for &b in path.as_os_str().as_bytes() {
        match b {
            b' ' | b'\t' | b'\n' | b'\\' => out.extend(format!("\\{b:03o}").bytes()),
            _ => out.push(b),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::wait::{waitpid, WaitStatus};
    use std::ffi::CString;

    fn strings(list: &[&str]) -> Vec<CString> {
        list.iter()
            .map(|s| CString::new(*s).expect("no NUL"))
            .collect()
    }

    /// Forks with no namespace to enter (so it needs no privilege), releases the child as
    /// `run` says, and returns how it ended.
    fn run_unshared(argv: &[&str], env: &[&str], run: bool) -> WaitStatus {
        let mut child =
            fork_unshared(CloneFlags::empty(), &strings(argv), &strings(env)).expect("fork");
        assert!(child.wait_unshared());
        child.release(run);
        waitpid(child.pid, None).expect("waitpid")
    }

    #[test]
    fn an_unshared_child_runs_its_command_with_its_environment_once_released() {
        let status = run_unshared(&["sh", "-c", r#"test "$X" = y && exit 3"#], &["X=y"], true);
        assert!(matches!(status, WaitStatus::Exited(_, 3)), "{status:?}");
        // Refused: the command never runs.
        let status = run_unshared(&["sh", "-c", "exit 3"], &[], false);
        assert!(matches!(status, WaitStatus::Exited(_, 1)), "{status:?}");
        // A command that cannot be run: the shell's "command not found".
        let status = run_unshared(&["/nonexistent/command"], &[], true);
        assert!(matches!(status, WaitStatus::Exited(_, 127)), "{status:?}");
        assert_eq!(
            fork_unshared(CloneFlags::empty(), &[], &[])
                .expect_err("no command")
                .kind(),
            io::ErrorKind::InvalidInput
        );
    }

    #[test]
    fn mountinfo_escapes_round_trip() {
        assert_eq!(unescape_mountinfo("/a\\040b"), b"/a b".to_vec());
        assert_eq!(unescape_mountinfo("/plain"), b"/plain".to_vec());
        let odd = Path::new("/x y\\z");
        assert_eq!(escape_mountinfo(odd), "/x\\040y\\134z");
        assert_eq!(
            unescape_mountinfo(&escape_mountinfo(odd)),
            b"/x y\\z".to_vec()
        );
        let info = "36 1 0:30 / /srv/my\\040home rw - ext4 /dev/sda rw\n";
        assert!(mountinfo_has(info, Path::new("/srv/my home")));
        assert!(!mountinfo_has(info, Path::new("/srv/my")));
    }
}
