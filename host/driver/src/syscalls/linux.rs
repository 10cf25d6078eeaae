//! [`LinuxSyscalls`]: the real system calls, through rustix where it has them and `libc`
//! where it does not (`quotactl`, the fork of [`Syscalls::mount_in_dir`]). The one module of
//! the toolkit allowed `unsafe`: each block says why it is sound.
#![allow(unsafe_code)]

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, StatxAttributes, StatxFlags};
use rustix::io::Errno;
use rustix::ioctl::{ioctl, Getter, Opcode, Setter, Updater};
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MountPropagationFlags, MoveMountFlags,
    UnmountFlags,
};

use super::btrfs::{
    InoLookupArgs, QgroupCreateArgs, QgroupLimit, QgroupLimitArgs, QuotaCtlArgs, SearchArgs,
    VolArgs, VolArgsV2, FIRST_FREE_OBJECTID, INO_LOOKUP_PATH_MAX, IOC_INO_LOOKUP,
    IOC_QGROUP_CREATE, IOC_QGROUP_LIMIT, IOC_QUOTA_CTL, IOC_QUOTA_RESCAN_WAIT, IOC_SNAP_CREATE_V2,
    IOC_SNAP_DESTROY, IOC_SNAP_DESTROY_V2, IOC_SUBVOL_CREATE, IOC_TREE_SEARCH,
    QGROUP_LIMIT_MAX_RFER, QGROUP_STATUS_KEY, QUOTA_CTL_ENABLE, QUOTA_TREE_OBJECTID,
};
use super::xfs::{FsDiskQuota, FsXattr, ProjectQuotaCmd, FS_IOC_FSGETXATTR, FS_IOC_FSSETXATTR};
use super::{mountinfo_has, Syscalls};

/// The system calls themselves.
#[derive(Debug, Clone, Copy, Default)]
pub struct LinuxSyscalls;

/// `bytes` as a C string; a NUL inside is an invalid argument (the kernel would cut there).
fn c_string(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in an argument"))
}

/// A uid as `chown` takes it; `None`, and `u32::MAX` (`(uid_t)-1`, which the kernel reads
/// the same way), leave it unchanged (rustix refuses to wrap -1, with a debug assertion).
fn uid(id: Option<u32>) -> Option<rustix::fs::Uid> {
    id.filter(|id| *id != u32::MAX)
        .map(rustix::fs::Uid::from_raw)
}

/// [`uid`] for groups.
fn gid(id: Option<u32>) -> Option<rustix::fs::Gid> {
    id.filter(|id| *id != u32::MAX)
        .map(rustix::fs::Gid::from_raw)
}

/// Runs one btrfs ioctl whose argument the kernel reads and may write.
///
/// # Safety
/// `OPCODE` must be the request whose argument type is `T`.
unsafe fn btrfs_call<const OPCODE: Opcode, T>(fd: BorrowedFd<'_>, arg: &mut T) -> io::Result<()> {
    // SAFETY: the caller pairs the opcode with its argument type; `arg` is a live, writable
    // value of that type for the duration of the call.
    unsafe { ioctl(fd, Updater::<OPCODE, T>::new(arg)) }.map_err(io::Error::from)
}

impl Syscalls for LinuxSyscalls {
    fn mount(
        &self,
        source: &str,
        target: &Path,
        fstype: &str,
        flags: MountFlags,
        data: Option<&OsStr>,
    ) -> io::Result<()> {
        let data = data.map(|d| c_string(d.as_bytes())).transpose()?;
        rustix::mount::mount(source, target, fstype, flags, data.as_deref())
            .map_err(io::Error::from)
    }

    fn mount_in_dir(
        &self,
        dir: &Path,
        source: &str,
        target: &Path,
        fstype: &str,
        flags: MountFlags,
        data: &OsStr,
    ) -> io::Result<()> {
        use nix::sys::wait::{waitpid, WaitStatus};
        use nix::unistd::ForkResult;

        // Everything the child needs is allocated before fork: after fork in a threaded
        // process only async-signal-safe calls are allowed.
        let dir = c_string(dir.as_os_str().as_bytes())?;
        let source = c_string(source.as_bytes())?;
        let target = c_string(target.as_os_str().as_bytes())?;
        let fstype = c_string(fstype.as_bytes())?;
        let data = c_string(data.as_bytes())?;
        // SAFETY: the child only calls chdir, mount and _exit, all async-signal-safe system
        // calls on pre-allocated C strings; it never returns into Rust code.
        match unsafe { nix::unistd::fork() }.map_err(io::Error::from)? {
            ForkResult::Child => {
                let code = match rustix::process::chdir(dir.as_c_str()) {
                    Err(e) => e.raw_os_error(),
                    Ok(()) => match rustix::mount::mount(
                        source.as_c_str(),
                        target.as_c_str(),
                        fstype.as_c_str(),
                        flags,
                        Some(data.as_c_str()),
                    ) {
                        Ok(()) => 0,
                        Err(e) => e.raw_os_error(),
                    },
                };
                // SAFETY: _exit ends the child without running the parent's destructors or
                // atexit handlers, which must not run twice.
                unsafe { libc::_exit(code.clamp(0, 255)) }
            }
            ForkResult::Parent { child } => match waitpid(child, None).map_err(io::Error::from)? {
                WaitStatus::Exited(_, 0) => Ok(()),
                WaitStatus::Exited(_, errno) => Err(io::Error::from_raw_os_error(errno)),
                other => Err(io::Error::other(format!("mount helper ended: {other:?}"))),
            },
        }
    }

    fn bind_mount(&self, source: &Path, target: &Path) -> io::Result<()> {
        rustix::mount::mount_bind(source, target).map_err(io::Error::from)
    }

    fn remount(&self, target: &Path, flags: MountFlags, data: &str) -> io::Result<()> {
        rustix::mount::mount_remount(target, flags, data).map_err(io::Error::from)
    }

    fn set_propagation(&self, target: &Path, propagation: MountPropagationFlags) -> io::Result<()> {
        rustix::mount::mount_change(target, propagation).map_err(io::Error::from)
    }

    fn unmount(&self, target: &Path, flags: UnmountFlags) -> io::Result<()> {
        rustix::mount::unmount(target, flags).map_err(io::Error::from)
    }

    /// `statx`'s `STATX_ATTR_MOUNT_ROOT` (Linux ≥ 5.8), else whether mountinfo lists `path`.
    fn is_mount_point(&self, path: &Path) -> io::Result<bool> {
        let st = rustix::fs::statx(
            rustix::fs::CWD,
            path,
            AtFlags::SYMLINK_NOFOLLOW | AtFlags::NO_AUTOMOUNT,
            StatxFlags::empty(),
        )?;
        if st.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT) {
            return Ok(st.stx_attributes.contains(StatxAttributes::MOUNT_ROOT));
        }
        Ok(mountinfo_has(&self.mountinfo()?, path))
    }

    fn mountinfo(&self) -> io::Result<String> {
        std::fs::read_to_string("/proc/self/mountinfo")
    }

    fn fsopen(&self, fstype: &str) -> io::Result<OwnedFd> {
        rustix::mount::fsopen(fstype, FsOpenFlags::FSOPEN_CLOEXEC).map_err(io::Error::from)
    }

    fn fsconfig_set_string(&self, fs: BorrowedFd<'_>, key: &str, value: &OsStr) -> io::Result<()> {
        rustix::mount::fsconfig_set_string(fs, key, value.as_bytes()).map_err(io::Error::from)
    }

    fn fsconfig_set_flag(&self, fs: BorrowedFd<'_>, key: &str) -> io::Result<()> {
        rustix::mount::fsconfig_set_flag(fs, key).map_err(io::Error::from)
    }

    fn fsconfig_create(&self, fs: BorrowedFd<'_>) -> io::Result<()> {
        rustix::mount::fsconfig_create(fs).map_err(io::Error::from)
    }

    fn fsmount(&self, fs: BorrowedFd<'_>, attrs: MountAttrFlags) -> io::Result<OwnedFd> {
        rustix::mount::fsmount(fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs).map_err(io::Error::from)
    }

    fn move_mount(&self, mount: BorrowedFd<'_>, target: &Path) -> io::Result<()> {
        rustix::mount::move_mount(
            mount,
            c"",
            rustix::fs::CWD,
            target,
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
        .map_err(io::Error::from)
    }

    fn chown_at(
        &self,
        dir: BorrowedFd<'_>,
        path: &Path,
        owner: Option<u32>,
        group: Option<u32>,
        flags: AtFlags,
    ) -> io::Result<()> {
        rustix::fs::chownat(dir, path, uid(owner), gid(group), flags).map_err(io::Error::from)
    }

    fn fchown(&self, fd: BorrowedFd<'_>, owner: Option<u32>, group: Option<u32>) -> io::Result<()> {
        rustix::fs::fchown(fd, uid(owner), gid(group)).map_err(io::Error::from)
    }

    fn chmod(&self, path: &Path, mode: u32) -> io::Result<()> {
        rustix::fs::chmod(path, Mode::from_raw_mode(mode)).map_err(io::Error::from)
    }

    fn mknod_at(
        &self,
        dir: BorrowedFd<'_>,
        path: &Path,
        kind: FileType,
        mode: u32,
        dev: u64,
    ) -> io::Result<()> {
        rustix::fs::mknodat(dir, path, kind, Mode::from_raw_mode(mode), dev)
            .map_err(io::Error::from)
    }

    fn lget_xattr(&self, path: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
        // An xattr value is at most 64 KiB (XATTR_SIZE_MAX).
        let mut value = vec![0u8; 64 * 1024];
        match rustix::fs::lgetxattr(path, name, &mut value[..]) {
            Ok(len) => {
                value.truncate(len);
                Ok(Some(value))
            }
            Err(Errno::NODATA) | Err(Errno::OPNOTSUPP) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn lset_xattr(&self, path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
        rustix::fs::lsetxattr(path, name, value, rustix::fs::XattrFlags::empty())
            .map_err(io::Error::from)
    }

    fn fset_xattr(&self, fd: BorrowedFd<'_>, name: &str, value: &[u8]) -> io::Result<()> {
        rustix::fs::fsetxattr(fd, name, value, rustix::fs::XattrFlags::empty())
            .map_err(io::Error::from)
    }

    fn lremove_xattr(&self, path: &Path, name: &str) -> io::Result<()> {
        rustix::fs::lremovexattr(path, name).map_err(io::Error::from)
    }

    fn fs_get_xattr(&self, dir: BorrowedFd<'_>) -> io::Result<FsXattr> {
        // SAFETY: FS_IOC_FSGETXATTR writes a `struct fsxattr`, which `FsXattr` lays out.
        unsafe { ioctl(dir, Getter::<FS_IOC_FSGETXATTR, FsXattr>::new()) }.map_err(io::Error::from)
    }

    fn fs_set_xattr(&self, dir: BorrowedFd<'_>, attr: &FsXattr) -> io::Result<()> {
        // SAFETY: FS_IOC_FSSETXATTR reads a `struct fsxattr`, which `FsXattr` lays out.
        unsafe { ioctl(dir, Setter::<FS_IOC_FSSETXATTR, FsXattr>::new(*attr)) }
            .map_err(io::Error::from)
    }

    fn project_quotactl(
        &self,
        cmd: ProjectQuotaCmd,
        device: &Path,
        id: u32,
        quota: &mut FsDiskQuota,
    ) -> io::Result<()> {
        let special = c_string(device.as_os_str().as_bytes())?;
        // Project IDs are unsigned; the syscall takes the same bits as an int (upstream
        // passes them through unchanged too).
        let id = id as i32;
        // SAFETY: `special` is a NUL-terminated path that outlives the call, and `quota` is a
        // live, writable `struct fs_disk_quota`, the argument of the Q_X* commands.
        let rc = unsafe {
            libc::quotactl(
                cmd.raw(),
                special.as_ptr(),
                id,
                (quota as *mut FsDiskQuota).cast::<libc::c_char>(),
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    fn btrfs_subvol_create(&self, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
        let mut args = VolArgs::named(name)?;
        // SAFETY: BTRFS_IOC_SUBVOL_CREATE takes a `struct btrfs_ioctl_vol_args`.
        unsafe { btrfs_call::<IOC_SUBVOL_CREATE, VolArgs>(dir, &mut args) }
    }

    fn btrfs_snapshot(
        &self,
        source: BorrowedFd<'_>,
        dir: BorrowedFd<'_>,
        name: &OsStr,
    ) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let mut args = VolArgsV2::named(i64::from(source.as_raw_fd()), name)?;
        // SAFETY: BTRFS_IOC_SNAP_CREATE_V2 takes a `struct btrfs_ioctl_vol_args_v2`; the
        // source descriptor in it is borrowed for the call.
        unsafe { btrfs_call::<IOC_SNAP_CREATE_V2, VolArgsV2>(dir, &mut args) }
    }

    fn btrfs_subvol_destroy(&self, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
        let mut v2 = VolArgsV2::named(0, name)?;
        // SAFETY: BTRFS_IOC_SNAP_DESTROY_V2 takes a `struct btrfs_ioctl_vol_args_v2`.
        match unsafe { btrfs_call::<IOC_SNAP_DESTROY_V2, VolArgsV2>(dir.as_fd(), &mut v2) } {
            Err(e) if e.raw_os_error() == Some(libc::ENOTTY) => {
                let mut v1 = VolArgs::named(name)?;
                // SAFETY: BTRFS_IOC_SNAP_DESTROY takes a `struct btrfs_ioctl_vol_args`.
                unsafe { btrfs_call::<IOC_SNAP_DESTROY, VolArgs>(dir, &mut v1) }
            }
            other => other,
        }
    }

    fn btrfs_subvolume_id(&self, fd: BorrowedFd<'_>) -> io::Result<u64> {
        let mut args = Box::new(InoLookupArgs {
            treeid: 0,
            objectid: FIRST_FREE_OBJECTID,
            name: [0; INO_LOOKUP_PATH_MAX],
        });
        // SAFETY: BTRFS_IOC_INO_LOOKUP takes a `struct btrfs_ioctl_ino_lookup_args`.
        unsafe { btrfs_call::<IOC_INO_LOOKUP, InoLookupArgs>(fd, &mut args) }?;
        if args.treeid == 0 {
            return Err(io::Error::other("btrfs returned subvolume ID 0"));
        }
        Ok(args.treeid)
    }

    fn btrfs_quota_enable(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        let mut args = QuotaCtlArgs {
            cmd: QUOTA_CTL_ENABLE,
            status: 0,
        };
        // SAFETY: BTRFS_IOC_QUOTA_CTL takes a `struct btrfs_ioctl_quota_ctl_args`.
        unsafe { btrfs_call::<IOC_QUOTA_CTL, QuotaCtlArgs>(fd, &mut args) }
    }

    /// The quota tree holds a status item while quotas are enabled (what `btrfs qgroup
    /// show` looks for); no quota tree at all is "not enabled".
    fn btrfs_quota_enabled(&self, fd: BorrowedFd<'_>) -> io::Result<bool> {
        let mut args = SearchArgs::for_items(QUOTA_TREE_OBJECTID, QGROUP_STATUS_KEY);
        // SAFETY: BTRFS_IOC_TREE_SEARCH takes a `struct btrfs_ioctl_search_args`.
        match unsafe { btrfs_call::<IOC_TREE_SEARCH, SearchArgs>(fd, &mut args) } {
            Ok(()) => Ok(args
                .first_header()
                .is_some_and(|h| h.item_type == QGROUP_STATUS_KEY)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn btrfs_qgroup_limit(&self, fd: BorrowedFd<'_>, bytes: u64) -> io::Result<()> {
        let mut args = QgroupLimitArgs {
            qgroupid: 0,
            lim: QgroupLimit {
                flags: QGROUP_LIMIT_MAX_RFER,
                max_rfer: bytes,
                ..Default::default()
            },
        };
        // SAFETY: BTRFS_IOC_QGROUP_LIMIT takes a `struct btrfs_ioctl_qgroup_limit_args`.
        unsafe { btrfs_call::<IOC_QGROUP_LIMIT, QgroupLimitArgs>(fd, &mut args) }
    }

    fn btrfs_qgroup_destroy(&self, fd: BorrowedFd<'_>, qgroupid: u64) -> io::Result<()> {
        let mut args = QgroupCreateArgs {
            create: 0,
            qgroupid,
        };
        // SAFETY: BTRFS_IOC_QGROUP_CREATE takes a `struct btrfs_ioctl_qgroup_create_args`.
        unsafe { btrfs_call::<IOC_QGROUP_CREATE, QgroupCreateArgs>(fd, &mut args) }
    }

    fn btrfs_quota_rescan_wait(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        let mut unused = 0u64;
        // SAFETY: BTRFS_IOC_QUOTA_RESCAN_WAIT takes no argument; the kernel ignores the
        // pointer, which points at a harmless zero.
        unsafe { btrfs_call::<IOC_QUOTA_RESCAN_WAIT, u64>(fd, &mut unused) }
    }

    fn syncfs(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        rustix::fs::syncfs(fd).map_err(io::Error::from)
    }

    fn euid(&self) -> u32 {
        rustix::process::geteuid().as_raw()
    }
}
