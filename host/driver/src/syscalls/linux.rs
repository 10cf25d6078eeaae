//! [`LinuxSyscalls`]: the real system calls, through rustix where it has them and `libc`
//! or nix where it does not (`quotactl`, the fork of [`Syscalls::mount_in_dir`]); and the
//! few unprivileged calls that still need `unsafe` (the dedupe ioctl, fcntl record locks,
//! `SIGPIPE`'s disposition, the fork of `storage unshare`). The one module of the workspace
//! allowed `unsafe`: each block says why it is sound.
#![allow(
    unsafe_code,
    reason = "the system-call module: raw ioctls, quotactl, fcntl and fork live here, each block with its SAFETY argument"
)]

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
use super::{mountinfo_has, CloneFlags, RangeOutcome, RecordLock, Syscalls};

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

    fn in_user_namespace(&self) -> bool {
        // The initial namespace maps every ID to itself: `0 0 4294967295`. A kernel without
        // user namespaces has no such file, and no other namespace either.
        std::fs::read_to_string("/proc/self/uid_map")
            .map(|map| !is_identity_map(&map))
            .unwrap_or(false)
    }
}

/// Whether a `/proc/PID/uid_map` maps all 2^32 IDs to themselves in one line.
fn is_identity_map(map: &str) -> bool {
    let lines: Vec<Vec<&str>> = map
        .lines()
        .map(|l| l.split_whitespace().collect())
        .filter(|f: &Vec<&str>| !f.is_empty())
        .collect();
    matches!(lines.as_slice(), [f] if f.as_slice() == ["0", "0", "4294967295"])
}

/// `struct file_dedupe_range` with one `struct file_dedupe_range_info` (linux/fs.h).
#[repr(C)]
#[derive(Default)]
struct FileDedupeRangeOne {
    src_offset: u64,
    src_length: u64,
    dest_count: u16,
    reserved1: u16,
    reserved2: u32,
    dest_fd: i64,
    dest_offset: u64,
    bytes_deduped: u64,
    status: i32,
    reserved: u32,
}

/// `_IOWR(0x94, 54, struct file_dedupe_range)`: the header is 24 bytes.
const FIDEDUPERANGE: Opcode = 0xC018_9436;
/// `FILE_DEDUPE_RANGE_DIFFERS`.
const FILE_DEDUPE_RANGE_DIFFERS: i32 = 1;

/// `ioctl(FIDEDUPERANGE)`: asks the kernel to make `len` bytes at `offset` of `dst` share
/// the extents of the same range of `src`, if the bytes are equal. An `Err` is the call's
/// own failure (`EOPNOTSUPP` on a filesystem without reflinks); the destination's answer is
/// the [`RangeOutcome`].
pub fn dedupe_range(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    offset: u64,
    len: u64,
) -> io::Result<RangeOutcome> {
    use std::os::fd::AsRawFd;
    let mut arg = FileDedupeRangeOne {
        src_offset: offset,
        src_length: len,
        dest_count: 1,
        dest_fd: i64::from(dst.as_raw_fd()),
        dest_offset: offset,
        ..Default::default()
    };
    // SAFETY: `FileDedupeRangeOne` lays out a `struct file_dedupe_range` followed by exactly
    // the one `struct file_dedupe_range_info` its `dest_count` announces, so the kernel reads
    // and writes only within `arg`, which lives for the call; the destination descriptor in
    // it is borrowed for the call.
    unsafe {
        ioctl(
            src,
            Updater::<FIDEDUPERANGE, FileDedupeRangeOne>::new(&mut arg),
        )
    }?;
    Ok(match arg.status {
        0 => RangeOutcome::Deduped(arg.bytes_deduped),
        FILE_DEDUPE_RANGE_DIFFERS => RangeOutcome::Differs,
        negative => RangeOutcome::Refused(Errno::from_raw_os_error(negative.saturating_neg())),
    })
}

/// `fcntl(F_SETLKW)` on the whole file `fd`: takes, changes or drops the process's record
/// lock (POSIX locks belong to the process, not to the descriptor), waiting while another
/// process holds a conflicting one. An interrupted wait fails with `EINTR`, for the caller to
/// retry.
pub fn set_record_lock_wait(fd: BorrowedFd<'_>, lock: RecordLock) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let kind = match lock {
        RecordLock::Read => libc::F_RDLCK,
        RecordLock::Write => libc::F_WRLCK,
        RecordLock::Unlock => libc::F_UNLCK,
    };
    // SAFETY: `struct flock` is plain integers (and, on some architectures, padding), for
    // which all zeros is a valid value.
    let mut flock: libc::flock = unsafe { std::mem::zeroed() };
    // The lock kinds and SEEK_SET are small constants that fit the C `short` fields.
    flock.l_type = kind as libc::c_short;
    flock.l_whence = libc::SEEK_SET as libc::c_short;
    // Start 0 and length 0: the whole file, however long it grows.
    flock.l_start = 0;
    flock.l_len = 0;
    // SAFETY: F_SETLKW takes a pointer to a `struct flock`, which `flock` is, initialised and
    // alive for the whole call; the kernel only reads it. `fd` is borrowed for the call.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETLKW, &flock) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Gives `SIGPIPE` its default disposition back (the Rust runtime ignores it), so that
/// writing to a closed pipe ends the process quietly, as it does a C or Go program.
pub fn default_sigpipe() -> io::Result<()> {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: `signal` is unsafe because an installed handler runs at any point of any
    // thread; SIG_DFL installs no handler, so no code of ours can run in signal context.
    unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) }
        .map(drop)
        .map_err(io::Error::from)
}

/// A child made by [`fork_unshared`]: it has entered its new namespaces (or failed to) and
/// waits for [`UnsharedChild::release`] before it runs its command.
#[derive(Debug)]
pub struct UnsharedChild {
    /// Its process ID (to write its `/proc/PID/uid_map`, to wait for it).
    pub pid: nix::unistd::Pid,
    /// Read end: one byte from the child, 0 when `unshare` succeeded.
    ready: OwnedFd,
    /// Write end: one byte to the child, 0 to run the command; closed once written.
    go: Option<OwnedFd>,
}

impl UnsharedChild {
    /// Waits until the child has tried to enter its namespaces: whether it did.
    pub fn wait_unshared(&self) -> bool {
        let mut byte = [1u8; 1];
        matches!(nix::unistd::read(self.ready.as_fd(), &mut byte), Ok(1)) && byte[0] == 0
    }

    /// Lets the child run its command (`run`), or makes it exit with status 1. Only the
    /// first call counts.
    pub fn release(&mut self, run: bool) {
        if let Some(go) = self.go.take() {
            // A child that is gone cannot read the byte; waiting for it tells the caller.
            let _ = nix::unistd::write(go.as_fd(), &[if run { 0 } else { 1 }]);
        }
    }
}

/// The NULL-terminated array of pointers `execve` takes for `strings`, valid while they are.
fn exec_array(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// Forks a child that enters new namespaces (`unshare(2)` with `flags`), reports whether it
/// could, waits for [`UnsharedChild::release`] and then runs `argv` (searched in `PATH`) with
/// the environment `env` (`KEY=value` strings): the parent, which keeps its privilege in the
/// outer namespaces, writes the child's ID maps in between. A command that cannot be run
/// ends the child with status 127 (the shell's "command not found"); a failed `unshare` or
/// a refusal, with status 1.
pub fn fork_unshared(
    flags: CloneFlags,
    argv: &[CString],
    env: &[CString],
) -> io::Result<UnsharedChild> {
    use nix::fcntl::OFlag;
    use nix::unistd::ForkResult;

    let Some(program) = argv.first() else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "no command"));
    };
    // execve's NULL-terminated arrays, built before the fork: the child must not allocate.
    let argv_ptrs = exec_array(argv);
    let env_ptrs = exec_array(env);
    // Close-on-exec: the command does not inherit the handshake's pipes.
    let (ready_r, ready_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(io::Error::from)?;
    let (go_r, go_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(io::Error::from)?;
    // SAFETY: after fork in a threaded process only async-signal-safe calls are allowed. The
    // child makes only system calls (close, unshare, write, read, execve, _exit) on what was
    // allocated before the fork (the pipes, `argv`, `env`), and never returns into Rust code.
    match unsafe { nix::unistd::fork() }.map_err(io::Error::from)? {
        ForkResult::Child => {
            drop(ready_r);
            drop(go_w);
            let status = match nix::sched::unshare(flags) {
                Ok(()) => 0u8,
                Err(_) => 1u8,
            };
            let _ = nix::unistd::write(ready_w.as_fd(), &[status]);
            let mut byte = [1u8; 1];
            let code = if status == 0
                && matches!(nix::unistd::read(go_r.as_fd(), &mut byte), Ok(1))
                && byte[0] == 0
            {
                // SAFETY: `program` and every pointer of the two arrays point at
                // NUL-terminated strings of `argv` and `env`, which outlive the call, and
                // both arrays end with a null pointer. It returns only when the command
                // could not be run.
                unsafe { libc::execvpe(program.as_ptr(), argv_ptrs.as_ptr(), env_ptrs.as_ptr()) };
                127
            } else {
                1
            };
            // SAFETY: _exit ends the child at once, without running the parent's
            // destructors, atexit handlers or buffer flushes, which must not run twice.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => Ok(UnsharedChild {
            pid: child,
            ready: ready_r,
            go: Some(go_w),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::is_identity_map;

    #[test]
    fn only_the_whole_identity_is_the_initial_namespace() {
        assert!(is_identity_map("         0          0 4294967295\n"));
        // A rootless command's namespace: the user at 0, the subordinate range after it.
        assert!(!is_identity_map("0 1000 1\n1 100000 65536\n"));
        // `unshare -r`: only the user, at 0.
        assert!(!is_identity_map("0 1000 1\n"));
        assert!(!is_identity_map("0 0 65536\n"));
    }
}
