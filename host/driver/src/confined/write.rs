//! [`FsWrite`] for [`ConfinedDir`]: creating, filling, re-owning, linking and removing
//! entries, each path resolved beneath the root and its last component never followed.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::path::Path;

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;
use storage_archive::fs::{
    EntryMetadata, FileKind, FsError, FsErrorKind, FsRead, FsResult, FsWrite, SparseMap, Timestamp,
};

use super::errors::{fs_error, io_error};
use super::{os, ConfinedDir};
use crate::syscalls::Syscalls;

/// Copies the next `len` bytes of `input` into the new `file` through `buf`; returns how many
/// there were.
///
/// Not `io::copy`: with a `File` writer it first `fstat`s the file to look for a faster kernel
/// copy, which an input that is not a file never gets; one wasted system call per file of a
/// layer. Small files (the many) take one read and one write.
fn copy_into<I: Read + ?Sized>(
    input: &mut I,
    len: u64,
    file: &mut File,
    buf: &mut Vec<u8>,
) -> FsResult<u64> {
    const SIZE: usize = 64 * 1024;
    if buf.len() < SIZE {
        buf.resize(SIZE, 0);
    }
    let mut copied = 0u64;
    while copied < len {
        let want = usize::try_from(len - copied).map_or(buf.len(), |left| left.min(buf.len()));
        let n = match input.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_error(e, "read")),
        };
        file.write_all(&buf[..n])
            .map_err(|e| io_error(e, "write"))?;
        copied += n as u64;
    }
    Ok(copied)
}

/// Access and modification times for `utimensat`/`futimens`.
fn timestamps(atime: Timestamp, mtime: Timestamp) -> rustix::fs::Timestamps {
    let spec = |t: Timestamp| rustix::fs::Timespec {
        tv_sec: t.secs,
        tv_nsec: i64::from(t.nanos),
    };
    rustix::fs::Timestamps {
        last_access: spec(atime),
        last_modification: spec(mtime),
    }
}

impl<I: ?Sized, O: ?Sized> ConfinedDir<I, O> {
    /// Creates the regular file `path` (exclusively, never through a final symlink) with
    /// `mode` and fills it with the next `len` bytes of `input`.
    fn create_filled(&mut self, path: &[u8], mode: u32, len: u64, input: &mut I) -> FsResult<File>
    where
        I: Read,
    {
        let (dir, name) = self.parent(path)?;
        let fd = rustix::fs::openat(
            &dir,
            os(name),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_bits_truncate(mode),
        )
        .map_err(|e| fs_error(e, "create"))?;
        let mut file = File::from(fd);
        let copied = copy_into(input, len, &mut file, &mut self.copy_buf)?;
        if copied != len {
            return Err(FsError::new(
                FsErrorKind::UnexpectedEof,
                format!("input ended after {copied} of {len} bytes"),
            ));
        }
        Ok(file)
    }
}

impl<I: Read + ?Sized, O: Write + ?Sized> FsWrite for ConfinedDir<I, O> {
    type Input = I;

    fn mkdir(&mut self, path: &[u8], mode: u32) -> FsResult<()> {
        let (dir, name) = self.parent(path)?;
        rustix::fs::mkdirat(&dir, os(name), Mode::from_bits_truncate(mode))
            .map_err(|e| fs_error(e, "mkdir"))
    }

    fn write_file_from_input(
        &mut self,
        path: &[u8],
        mode: u32,
        len: u64,
        input: &mut I,
    ) -> FsResult<()> {
        self.create_filled(path, mode, len, input).map(drop)
    }

    /// One parent lookup for the whole of it; the mode is set only after checking that the
    /// entry is not a symlink (`fchmodat` would follow it).
    fn set_metadata(&mut self, path: &[u8], meta: &EntryMetadata) -> FsResult<()> {
        let (dir, name) = self.parent(path)?;
        if let Err(e) = self.sys.chown_at(
            dir.as_fd(),
            Path::new(os(name)),
            owner(meta.uid),
            owner(meta.gid),
            AtFlags::SYMLINK_NOFOLLOW,
        ) {
            if !meta.ignore_chown_errors {
                return Err(io_error(e, "lchown"));
            }
        }
        if !meta.xattrs.is_empty() {
            let proc = Self::proc_path(&dir, name);
            for (key, value) in &meta.xattrs {
                match self.sys.lset_xattr(&proc, key, value) {
                    Err(e) if e.raw_os_error() != Some(libc::EOPNOTSUPP) => {
                        return Err(io_error(e, "setxattr"))
                    }
                    _ => {}
                }
            }
        }
        if let Some(mode) = meta.mode {
            let st = rustix::fs::statat(&dir, os(name), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| fs_error(e, "lstat"))?;
            if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Symlink {
                return Err(FsError::new(FsErrorKind::Unsupported, "chmod of a symlink"));
            }
            rustix::fs::chmodat(
                &dir,
                os(name),
                Mode::from_bits_truncate(mode),
                AtFlags::empty(),
            )
            .map_err(|e| fs_error(e, "chmod"))?;
        }
        rustix::fs::utimensat(
            &dir,
            os(name),
            &timestamps(meta.atime, meta.mtime),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| fs_error(e, "utimensat"))
    }

    /// Everything on the descriptor of the new file: no path is resolved again after the
    /// exclusive, no-follow create.
    fn create_file_with_metadata(
        &mut self,
        path: &[u8],
        create_mode: u32,
        len: u64,
        input: &mut I,
        meta: &EntryMetadata,
    ) -> FsResult<()> {
        let file = self.create_filled(path, create_mode, len, input)?;
        file_metadata(self.sys.as_ref(), &file, meta)
    }

    /// As `create_file_with_metadata`, the regions written at their offsets and the file's
    /// length set last, so the holes between them take no room.
    fn create_sparse_file_with_metadata(
        &mut self,
        path: &[u8],
        create_mode: u32,
        map: &SparseMap,
        input: &mut I,
        meta: &EntryMetadata,
    ) -> FsResult<()> {
        let mut file = self.create_filled(path, create_mode, 0, input)?;
        for region in &map.regions {
            file.seek(SeekFrom::Start(region.offset))
                .map_err(|e| io_error(e, "seek"))?;
            let copied = copy_into(input, region.length, &mut file, &mut self.copy_buf)?;
            if copied != region.length {
                return Err(FsError::new(
                    FsErrorKind::UnexpectedEof,
                    "input ended inside a data region of a sparse file",
                ));
            }
        }
        file.set_len(map.real_size)
            .map_err(|e| io_error(e, "truncate"))?;
        file_metadata(self.sys.as_ref(), &file, meta)
    }

    fn symlink(&mut self, target: &[u8], path: &[u8]) -> FsResult<()> {
        let (dir, name) = self.parent(path)?;
        rustix::fs::symlinkat(os(target), &dir, os(name)).map_err(|e| fs_error(e, "symlink"))
    }

    fn hardlink(&mut self, target: &[u8], path: &[u8]) -> FsResult<()> {
        let (target_dir, target_name) = self.parent(target)?;
        let (dir, name) = self.parent(path)?;
        rustix::fs::linkat(
            &target_dir,
            os(target_name),
            &dir,
            os(name),
            AtFlags::empty(),
        )
        .map_err(|e| fs_error(e, "link"))
    }

    fn mknod(
        &mut self,
        path: &[u8],
        kind: FileKind,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> FsResult<()> {
        let file_type = match kind {
            FileKind::CharDevice => rustix::fs::FileType::CharacterDevice,
            FileKind::BlockDevice => rustix::fs::FileType::BlockDevice,
            FileKind::Fifo => rustix::fs::FileType::Fifo,
            other => {
                return Err(FsError::new(
                    FsErrorKind::Unsupported,
                    format!("mknod of a {other:?}"),
                ))
            }
        };
        let (dir, name) = self.parent(path)?;
        self.sys
            .mknod_at(
                dir.as_fd(),
                Path::new(os(name)),
                file_type,
                mode & 0o7777,
                rustix::fs::makedev(major, minor),
            )
            .map_err(|e| io_error(e, "mknod"))
    }

    fn mkfifo(&mut self, path: &[u8], mode: u32) -> FsResult<()> {
        self.mknod(path, FileKind::Fifo, mode, 0, 0)
    }

    fn lchown(&mut self, path: &[u8], uid: u32, gid: u32) -> FsResult<()> {
        let (dir, name) = self.parent(path)?;
        self.sys
            .chown_at(
                dir.as_fd(),
                Path::new(os(name)),
                owner(uid),
                owner(gid),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| io_error(e, "lchown"))
    }

    fn chmod(&mut self, path: &[u8], mode: u32) -> FsResult<()> {
        let (dir, name) = self.parent(path)?;
        // fchmodat follows a final symlink: refuse one instead of changing its target.
        let st = rustix::fs::statat(&dir, os(name), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| fs_error(e, "lstat"))?;
        if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Symlink {
            return Err(FsError::new(FsErrorKind::Unsupported, "chmod of a symlink"));
        }
        rustix::fs::chmodat(
            &dir,
            os(name),
            Mode::from_bits_truncate(mode),
            AtFlags::empty(),
        )
        .map_err(|e| fs_error(e, "chmod"))
    }

    fn set_xattr(&mut self, path: &[u8], name: &str, value: &[u8]) -> FsResult<()> {
        let (dir, last) = self.parent(path)?;
        let proc = Self::proc_path(&dir, last);
        self.sys
            .lset_xattr(&proc, name, value)
            .map_err(|e| io_error(e, "setxattr"))
    }

    fn remove_xattr(&mut self, path: &[u8], name: &str) -> FsResult<()> {
        let (dir, last) = self.parent(path)?;
        let proc = Self::proc_path(&dir, last);
        match self.sys.lremove_xattr(&proc, name) {
            Err(e) if e.raw_os_error() != Some(libc::ENODATA) => Err(io_error(e, "removexattr")),
            _ => Ok(()),
        }
    }

    fn set_times(&mut self, path: &[u8], atime: Timestamp, mtime: Timestamp) -> FsResult<()> {
        let (dir, name) = self.parent(path)?;
        let times = timestamps(atime, mtime);
        rustix::fs::utimensat(&dir, os(name), &times, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| fs_error(e, "utimensat"))
    }

    fn remove(&mut self, path: &[u8]) -> FsResult<()> {
        if path.is_empty() {
            return Err(FsError::new(
                FsErrorKind::PermissionDenied,
                "remove of the root",
            ));
        }
        self.forget_parent();
        let (dir, name) = self.parent(path)?;
        self.forget_parent();
        match rustix::fs::unlinkat(&dir, os(name), AtFlags::empty()) {
            Err(Errno::ISDIR) => rustix::fs::unlinkat(&dir, os(name), AtFlags::REMOVEDIR)
                .map_err(|e| fs_error(e, "rmdir")),
            other => other.map_err(|e| fs_error(e, "unlink")),
        }
    }

    fn remove_all(&mut self, path: &[u8]) -> FsResult<()> {
        if path.is_empty() {
            return Err(FsError::new(
                FsErrorKind::PermissionDenied,
                "remove of the root",
            ));
        }
        let Some(stat) = self.lstat(path)? else {
            return Ok(());
        };
        if stat.kind == FileKind::Directory {
            for child in self.read_dir(path)? {
                let mut child_path = path.to_vec();
                child_path.push(b'/');
                child_path.extend_from_slice(&child.name);
                self.remove_all(&child_path)?;
            }
        }
        match self.remove(path) {
            Err(e) if e.kind == FsErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    fn rename(&mut self, from: &[u8], to: &[u8]) -> FsResult<()> {
        self.forget_parent();
        let (from_dir, from_name) = self.parent(from)?;
        let (to_dir, to_name) = self.parent(to)?;
        self.forget_parent();
        rustix::fs::renameat(&from_dir, os(from_name), &to_dir, os(to_name))
            .map_err(|e| fs_error(e, "rename"))
    }
}

/// An owner ID as chown takes it. `u32::MAX` is `(uid_t)-1`, which the kernel reads as "leave
/// it as it is": what Go's `os.Lchown` passes for an archive's owner 4294967295, and what this
/// does too (rustix refuses to wrap -1, with a debug assertion that a guest or an archive
/// could otherwise trip).
fn owner(id: u32) -> Option<u32> {
    (id != u32::MAX).then_some(id)
}

/// Owner, xattrs, mode and times of a file just created, set on its descriptor.
fn file_metadata(sys: &dyn Syscalls, file: &File, meta: &EntryMetadata) -> FsResult<()> {
    if let Err(e) = sys.fchown(file.as_fd(), owner(meta.uid), owner(meta.gid)) {
        if !meta.ignore_chown_errors {
            return Err(io_error(e, "lchown"));
        }
    }
    for (key, value) in &meta.xattrs {
        match sys.fset_xattr(file.as_fd(), key, value) {
            Err(e) if e.raw_os_error() != Some(libc::EOPNOTSUPP) => {
                return Err(io_error(e, "setxattr"))
            }
            _ => {}
        }
    }
    if let Some(mode) = meta.mode {
        rustix::fs::fchmod(file, Mode::from_bits_truncate(mode))
            .map_err(|e| fs_error(e, "chmod"))?;
    }
    rustix::fs::futimens(file, &timestamps(meta.atime, meta.mtime))
        .map_err(|e| fs_error(e, "utimensat"))
}
