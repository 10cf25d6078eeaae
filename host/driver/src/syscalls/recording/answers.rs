//! How [`RecordingSyscalls`] answers each call: recorded, then answered from the model
//! (see the parent module).

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::mount::{MountAttrFlags, MountFlags, MountPropagationFlags, UnmountFlags};

use super::{at_path, einval, path_of, placeholder_fd, shown, Context, RecordingSyscalls, State};
use crate::syscalls::call::Call;
use crate::syscalls::xfs::{FsDiskQuota, FsXattr, ProjectQuotaCmd};
use crate::syscalls::{escape_mountinfo, Syscalls};

impl Syscalls for RecordingSyscalls {
    fn mount(
        &self,
        source: &str,
        target: &Path,
        fstype: &str,
        flags: MountFlags,
        data: Option<&OsStr>,
    ) -> io::Result<()> {
        let mut state = self.record(Call::Mount {
            source: source.to_string(),
            target: target.to_path_buf(),
            fstype: fstype.to_string(),
            flags,
            data: data.map(OsStr::to_os_string),
        })?;
        state.mount(target, fstype, source);
        Ok(())
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
        let mut state = self.record(Call::MountInDir {
            dir: dir.to_path_buf(),
            source: source.to_string(),
            target: target.to_path_buf(),
            fstype: fstype.to_string(),
            flags,
            data: data.to_os_string(),
        })?;
        state.mount(&dir.join(target), fstype, source);
        Ok(())
    }

    fn bind_mount(&self, source: &Path, target: &Path) -> io::Result<()> {
        let mut state = self.record(Call::BindMount {
            source: source.to_path_buf(),
            target: target.to_path_buf(),
        })?;
        let shown = source.display().to_string();
        state.mount(target, "none", &shown);
        Ok(())
    }

    fn remount(&self, target: &Path, flags: MountFlags, data: &str) -> io::Result<()> {
        let state = self.record(Call::Remount {
            target: target.to_path_buf(),
            flags,
            data: data.to_string(),
        })?;
        if state.is_mounted(target) {
            Ok(())
        } else {
            Err(einval())
        }
    }

    fn set_propagation(&self, target: &Path, propagation: MountPropagationFlags) -> io::Result<()> {
        let state = self.record(Call::SetPropagation {
            target: target.to_path_buf(),
            propagation,
        })?;
        if state.is_mounted(target) {
            Ok(())
        } else {
            Err(einval())
        }
    }

    fn unmount(&self, target: &Path, flags: UnmountFlags) -> io::Result<()> {
        let mut state = self.record(Call::Unmount {
            target: target.to_path_buf(),
            flags,
        })?;
        match state.mounts.iter().rposition(|m| m.target == target) {
            Some(at) => {
                state.mounts.remove(at);
                Ok(())
            }
            None => Err(einval()),
        }
    }

    fn is_mount_point(&self, path: &Path) -> io::Result<bool> {
        let state = self.lock();
        Ok(state.is_mounted(path) || crate::syscalls::mountinfo_has(&state.mountinfo, path))
    }

    fn mountinfo(&self) -> io::Result<String> {
        let state = self.lock();
        let mut text = state.mountinfo.clone();
        for (n, m) in state.mounts.iter().enumerate() {
            let id = 1000 + n;
            text.push_str(&format!(
                "{id} 1 0:{id} / {} rw - {} {} rw\n",
                escape_mountinfo(&m.target),
                m.fstype,
                m.source.replace(' ', "\\040"),
            ));
        }
        Ok(text)
    }

    fn fsopen(&self, fstype: &str) -> io::Result<OwnedFd> {
        let mut state = self.record(Call::Fsopen {
            fstype: fstype.to_string(),
        })?;
        let fd = placeholder_fd()?;
        state.contexts.insert(
            fd.as_raw_fd(),
            Context {
                fstype: fstype.to_string(),
                source: "none".to_string(),
            },
        );
        Ok(fd)
    }

    fn fsconfig_set_string(&self, fs: BorrowedFd<'_>, key: &str, value: &OsStr) -> io::Result<()> {
        let mut state = self.record(Call::FsconfigSetString {
            key: key.to_string(),
            value: value.to_os_string(),
        })?;
        if key == "source" {
            if let Some(context) = state.contexts.get_mut(&fs.as_raw_fd()) {
                context.source = value.to_string_lossy().into_owned();
            }
        }
        Ok(())
    }

    fn fsconfig_set_flag(&self, _fs: BorrowedFd<'_>, key: &str) -> io::Result<()> {
        self.plain(Call::FsconfigSetFlag {
            key: key.to_string(),
        })
    }

    fn fsconfig_create(&self, _fs: BorrowedFd<'_>) -> io::Result<()> {
        self.plain(Call::FsconfigCreate)
    }

    fn fsmount(&self, fs: BorrowedFd<'_>, attrs: MountAttrFlags) -> io::Result<OwnedFd> {
        let mut state = self.record(Call::Fsmount { attrs })?;
        let context = state
            .contexts
            .get(&fs.as_raw_fd())
            .cloned()
            .ok_or_else(einval)?;
        let fd = placeholder_fd()?;
        state.contexts.insert(fd.as_raw_fd(), context);
        Ok(fd)
    }

    fn move_mount(&self, mount: BorrowedFd<'_>, target: &Path) -> io::Result<()> {
        let mut state = self.record(Call::MoveMount {
            target: target.to_path_buf(),
        })?;
        let context = state
            .contexts
            .get(&mount.as_raw_fd())
            .cloned()
            .ok_or_else(einval)?;
        state.mount(target, &context.fstype, &context.source);
        Ok(())
    }

    fn chown_at(
        &self,
        dir: BorrowedFd<'_>,
        path: &Path,
        uid: Option<u32>,
        gid: Option<u32>,
        flags: AtFlags,
    ) -> io::Result<()> {
        self.plain(Call::Chown {
            path: at_path(dir, path),
            uid,
            gid,
            follow: !flags.contains(AtFlags::SYMLINK_NOFOLLOW),
        })
    }

    fn fchown(&self, fd: BorrowedFd<'_>, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
        self.plain(Call::Fchown {
            path: path_of(fd),
            uid,
            gid,
        })
    }

    fn chmod(&self, path: &Path, mode: u32) -> io::Result<()> {
        self.plain(Call::Chmod {
            path: shown(path),
            mode,
        })
    }

    fn mknod_at(
        &self,
        dir: BorrowedFd<'_>,
        path: &Path,
        kind: FileType,
        mode: u32,
        dev: u64,
    ) -> io::Result<()> {
        let _state = self.record(Call::Mknod {
            path: at_path(dir, path),
            kind,
            mode,
            dev,
        })?;
        // Where the node would be, an empty file (`EEXIST` as for a node).
        rustix::fs::openat(
            dir,
            path,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode & 0o777),
        )
        .map(drop)
        .map_err(io::Error::from)
    }

    fn lget_xattr(&self, path: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
        let path = shown(path);
        let state = self.record(Call::GetXattr {
            path: path.clone(),
            name: name.to_string(),
        })?;
        Ok(state.xattrs.get(&(path, name.to_string())).cloned())
    }

    fn lset_xattr(&self, path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
        self.set_xattr(shown(path), name, value)
    }

    fn fset_xattr(&self, fd: BorrowedFd<'_>, name: &str, value: &[u8]) -> io::Result<()> {
        self.set_xattr(path_of(fd), name, value)
    }

    fn lremove_xattr(&self, path: &Path, name: &str) -> io::Result<()> {
        let path = shown(path);
        let mut state = self.record(Call::RemoveXattr {
            path: path.clone(),
            name: name.to_string(),
        })?;
        match state.xattrs.remove(&(path, name.to_string())) {
            Some(_) => Ok(()),
            None => Err(io::Error::from_raw_os_error(libc::ENODATA)),
        }
    }

    fn fs_get_xattr(&self, dir: BorrowedFd<'_>) -> io::Result<FsXattr> {
        let dir = path_of(dir);
        let state = self.record(Call::FsGetXattr { dir: dir.clone() })?;
        Ok(state.fs_xattrs.get(&dir).copied().unwrap_or_default())
    }

    fn fs_set_xattr(&self, dir: BorrowedFd<'_>, attr: &FsXattr) -> io::Result<()> {
        let dir = path_of(dir);
        let mut state = self.record(Call::FsSetXattr {
            dir: dir.clone(),
            attr: *attr,
        })?;
        state.fs_xattrs.insert(dir, *attr);
        Ok(())
    }

    fn project_quotactl(
        &self,
        cmd: ProjectQuotaCmd,
        device: &Path,
        id: u32,
        quota: &mut FsDiskQuota,
    ) -> io::Result<()> {
        let mut state = self.record(Call::ProjectQuotactl {
            cmd,
            device: device.to_path_buf(),
            id,
            quota: *quota,
        })?;
        match cmd {
            ProjectQuotaCmd::SetLimits => {
                state.project_limits.insert(id, *quota);
            }
            ProjectQuotaCmd::GetQuota => {
                *quota = state
                    .project_limits
                    .get(&id)
                    .copied()
                    .unwrap_or(FsDiskQuota {
                        id,
                        ..FsDiskQuota::default()
                    });
            }
        }
        Ok(())
    }

    fn btrfs_subvol_create(&self, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
        let path = path_of(dir);
        let mut state = self.record(Call::BtrfsSubvolCreate {
            dir: path.clone(),
            name: name.to_os_string(),
        })?;
        new_subvolume(&mut state, dir, &path, name)
    }

    fn btrfs_snapshot(
        &self,
        source: BorrowedFd<'_>,
        dir: BorrowedFd<'_>,
        name: &OsStr,
    ) -> io::Result<()> {
        let path = path_of(dir);
        let mut state = self.record(Call::BtrfsSnapshot {
            source: path_of(source),
            dir: path.clone(),
            name: name.to_os_string(),
        })?;
        new_subvolume(&mut state, dir, &path, name)
    }

    fn btrfs_subvol_destroy(&self, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
        let path = path_of(dir);
        let mut state = self.record(Call::BtrfsSubvolDestroy {
            dir: path.clone(),
            name: name.to_os_string(),
        })?;
        let subvolume = path.join(name);
        state.subvolumes.remove(&subvolume);
        std::fs::remove_dir_all(&subvolume)
    }

    fn btrfs_subvolume_id(&self, fd: BorrowedFd<'_>) -> io::Result<u64> {
        let path = path_of(fd);
        let state = self.record(Call::BtrfsSubvolumeId { path: path.clone() })?;
        // Not a subvolume of the model: as for a directory on another filesystem.
        state
            .subvolumes
            .get(&path)
            .copied()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOTTY))
    }

    fn btrfs_quota_enable(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        let mut state = self.record(Call::BtrfsQuotaEnable { path: path_of(fd) })?;
        state.btrfs_quota = true;
        Ok(())
    }

    fn btrfs_quota_enabled(&self, fd: BorrowedFd<'_>) -> io::Result<bool> {
        let state = self.record(Call::BtrfsQuotaEnabled { path: path_of(fd) })?;
        Ok(state.btrfs_quota)
    }

    fn btrfs_qgroup_limit(&self, fd: BorrowedFd<'_>, bytes: u64) -> io::Result<()> {
        self.plain(Call::BtrfsQgroupLimit {
            path: path_of(fd),
            bytes,
        })
    }

    fn btrfs_qgroup_destroy(&self, fd: BorrowedFd<'_>, qgroupid: u64) -> io::Result<()> {
        self.plain(Call::BtrfsQgroupDestroy {
            path: path_of(fd),
            qgroupid,
        })
    }

    fn btrfs_quota_rescan_wait(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        self.plain(Call::BtrfsQuotaRescanWait { path: path_of(fd) })
    }

    fn syncfs(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        self.plain(Call::Syncfs { path: path_of(fd) })
    }

    fn euid(&self) -> u32 {
        self.lock().euid
    }

    fn in_user_namespace(&self) -> bool {
        self.lock().user_namespace
    }
}

/// The model's subvolume `name` of `dir` (at `path`): a directory with the next ID.
fn new_subvolume(
    state: &mut State,
    dir: BorrowedFd<'_>,
    path: &Path,
    name: &OsStr,
) -> io::Result<()> {
    rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o755))?;
    let id = 256 + state.subvolumes.len() as u64;
    state.subvolumes.insert(path.join(name), id);
    Ok(())
}
