//! [`Call`]: one call made to [`super::RecordingSyscalls`], with its arguments, as tests
//! compare it.

use std::ffi::OsString;
use std::path::PathBuf;

use rustix::fs::FileType;
use rustix::mount::{MountAttrFlags, MountFlags, MountPropagationFlags, UnmountFlags};

use super::xfs::{FsDiskQuota, FsXattr, ProjectQuotaCmd};

/// One call the code under test made, with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// [`super::Syscalls::mount`].
    Mount {
        /// The source (`overlay`, ...).
        source: String,
        /// Where.
        target: PathBuf,
        /// The filesystem type.
        fstype: String,
        /// `MS_*` flags.
        flags: MountFlags,
        /// The option string.
        data: Option<OsString>,
    },
    /// [`super::Syscalls::mount_in_dir`].
    MountInDir {
        /// The working directory of the mount.
        dir: PathBuf,
        /// The source.
        source: String,
        /// Where.
        target: PathBuf,
        /// The filesystem type.
        fstype: String,
        /// `MS_*` flags.
        flags: MountFlags,
        /// The option string (relative paths in it are relative to `dir`).
        data: OsString,
    },
    /// [`super::Syscalls::bind_mount`].
    BindMount {
        /// What is bound.
        source: PathBuf,
        /// Where.
        target: PathBuf,
    },
    /// [`super::Syscalls::remount`].
    Remount {
        /// The mount.
        target: PathBuf,
        /// The new flags (with `MS_BIND` for a bind mount).
        flags: MountFlags,
        /// The option string.
        data: String,
    },
    /// [`super::Syscalls::set_propagation`].
    SetPropagation {
        /// The mount.
        target: PathBuf,
        /// `MS_PRIVATE`, ...
        propagation: MountPropagationFlags,
    },
    /// [`super::Syscalls::unmount`].
    Unmount {
        /// The mount.
        target: PathBuf,
        /// `MNT_DETACH`, `UMOUNT_NOFOLLOW`, ...
        flags: UnmountFlags,
    },
    /// [`super::Syscalls::fsopen`].
    Fsopen {
        /// The filesystem type.
        fstype: String,
    },
    /// [`super::Syscalls::fsconfig_set_string`].
    FsconfigSetString {
        /// The key (`lowerdir+`, `upperdir`, ...).
        key: String,
        /// Its value.
        value: OsString,
    },
    /// [`super::Syscalls::fsconfig_set_flag`].
    FsconfigSetFlag {
        /// The flag (`userxattr`, `volatile`, ...).
        key: String,
    },
    /// [`super::Syscalls::fsconfig_create`].
    FsconfigCreate,
    /// [`super::Syscalls::fsmount`].
    Fsmount {
        /// `MOUNT_ATTR_*` attributes.
        attrs: MountAttrFlags,
    },
    /// [`super::Syscalls::move_mount`].
    MoveMount {
        /// Where the detached mount goes.
        target: PathBuf,
    },
    /// [`super::Syscalls::chown_at`] (and `chown`, `lchown`).
    Chown {
        /// The path.
        path: PathBuf,
        /// The new owner, if it changes.
        uid: Option<u32>,
        /// The new group, if it changes.
        gid: Option<u32>,
        /// Whether a symlink would be followed.
        follow: bool,
    },
    /// [`super::Syscalls::fchown`].
    Fchown {
        /// The path the descriptor has.
        path: PathBuf,
        /// The new owner, if it changes.
        uid: Option<u32>,
        /// The new group, if it changes.
        gid: Option<u32>,
    },
    /// [`super::Syscalls::chmod`].
    Chmod {
        /// The path.
        path: PathBuf,
        /// The permission bits.
        mode: u32,
    },
    /// [`super::Syscalls::mknod_at`].
    Mknod {
        /// The node.
        path: PathBuf,
        /// Its type.
        kind: FileType,
        /// Its permission bits.
        mode: u32,
        /// Its device number.
        dev: u64,
    },
    /// [`super::Syscalls::lget_xattr`].
    GetXattr {
        /// The path.
        path: PathBuf,
        /// The attribute.
        name: String,
    },
    /// [`super::Syscalls::lset_xattr`] and [`super::Syscalls::fset_xattr`] (the path the
    /// descriptor has).
    SetXattr {
        /// The path.
        path: PathBuf,
        /// The attribute.
        name: String,
        /// Its value.
        value: Vec<u8>,
    },
    /// [`super::Syscalls::lremove_xattr`].
    RemoveXattr {
        /// The path.
        path: PathBuf,
        /// The attribute.
        name: String,
    },
    /// [`super::Syscalls::fs_get_xattr`].
    FsGetXattr {
        /// The directory.
        dir: PathBuf,
    },
    /// [`super::Syscalls::fs_set_xattr`].
    FsSetXattr {
        /// The directory.
        dir: PathBuf,
        /// What it was given.
        attr: FsXattr,
    },
    /// [`super::Syscalls::project_quotactl`].
    ProjectQuotactl {
        /// The command.
        cmd: ProjectQuotaCmd,
        /// The block device node.
        device: PathBuf,
        /// The project.
        id: u32,
        /// The argument as given.
        quota: FsDiskQuota,
    },
    /// [`super::Syscalls::btrfs_subvol_create`].
    BtrfsSubvolCreate {
        /// The directory that gets it.
        dir: PathBuf,
        /// Its name.
        name: OsString,
    },
    /// [`super::Syscalls::btrfs_snapshot`].
    BtrfsSnapshot {
        /// The subvolume snapshotted.
        source: PathBuf,
        /// The directory that gets the snapshot.
        dir: PathBuf,
        /// Its name.
        name: OsString,
    },
    /// [`super::Syscalls::btrfs_subvol_destroy`].
    BtrfsSubvolDestroy {
        /// The directory holding it.
        dir: PathBuf,
        /// Its name.
        name: OsString,
    },
    /// [`super::Syscalls::btrfs_subvolume_id`].
    BtrfsSubvolumeId {
        /// The path asked about.
        path: PathBuf,
    },
    /// [`super::Syscalls::btrfs_quota_enable`].
    BtrfsQuotaEnable {
        /// The path the call was made on.
        path: PathBuf,
    },
    /// [`super::Syscalls::btrfs_quota_enabled`].
    BtrfsQuotaEnabled {
        /// The path the call was made on.
        path: PathBuf,
    },
    /// [`super::Syscalls::btrfs_qgroup_limit`].
    BtrfsQgroupLimit {
        /// The subvolume.
        path: PathBuf,
        /// The limit on referenced bytes.
        bytes: u64,
    },
    /// [`super::Syscalls::btrfs_qgroup_destroy`].
    BtrfsQgroupDestroy {
        /// The path the call was made on.
        path: PathBuf,
        /// The qgroup.
        qgroupid: u64,
    },
    /// [`super::Syscalls::btrfs_quota_rescan_wait`].
    BtrfsQuotaRescanWait {
        /// The path the call was made on.
        path: PathBuf,
    },
    /// [`super::Syscalls::syncfs`].
    Syncfs {
        /// The path the flushed descriptor has.
        path: PathBuf,
    },
}
