//! [`FsRead`] for [`ConfinedDir`]: stat, directory listing, links, file contents and
//! xattrs, each path resolved beneath the root and its last component never followed.

use std::io::{self, Read, Write};

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;
use storage_archive::fs::{DirEntry, FileStat, FsError, FsErrorKind, FsRead, FsResult, Timestamp};

use super::errors::{fs_error, io_error};
use super::{kind_of, os, ConfinedDir};

impl<I: ?Sized, O: Write + ?Sized> FsRead for ConfinedDir<I, O> {
    type Output = O;

    fn lstat(&mut self, path: &[u8]) -> FsResult<Option<FileStat>> {
        let (dir, name) = match self.parent(path) {
            Ok(p) => p,
            Err(e) if matches!(e.kind, FsErrorKind::NotFound | FsErrorKind::NotADirectory) => {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        let st = match rustix::fs::statat(&dir, os(name), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) | Err(Errno::NOTDIR) => return Ok(None),
            Err(e) => return Err(fs_error(e, "lstat")),
        };
        Ok(Some(FileStat {
            kind: kind_of(rustix::fs::FileType::from_raw_mode(st.st_mode)),
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            size: st.st_size as u64,
            blocks: st.st_blocks as u64,
            mtime: Timestamp {
                secs: st.st_mtime,
                nanos: st.st_mtime_nsec as u32,
            },
            atime: Timestamp {
                secs: st.st_atime,
                nanos: st.st_atime_nsec as u32,
            },
            dev: st.st_dev,
            ino: st.st_ino,
            nlink: st.st_nlink,
            rdev_major: rustix::fs::major(st.st_rdev),
            rdev_minor: rustix::fs::minor(st.st_rdev),
        }))
    }

    fn read_dir(&mut self, path: &[u8]) -> FsResult<Vec<DirEntry>> {
        let (dir, name) = self.parent(path)?;
        let fd = rustix::fs::openat(
            &dir,
            os(name),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| fs_error(e, "open dir"))?;
        let mut reader = rustix::fs::Dir::read_from(&fd).map_err(|e| fs_error(e, "read dir"))?;
        let mut entries = Vec::new();
        while let Some(entry) = reader.read() {
            let entry = entry.map_err(|e| fs_error(e, "read dir"))?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            entries.push(DirEntry {
                name: name.to_vec(),
                kind: kind_of(entry.file_type()),
                ino: entry.ino(),
            });
        }
        Ok(entries)
    }

    fn readlink(&mut self, path: &[u8]) -> FsResult<Vec<u8>> {
        let (dir, name) = self.parent(path)?;
        let target = rustix::fs::readlinkat(&dir, os(name), Vec::new())
            .map_err(|e| fs_error(e, "readlink"))?;
        Ok(target.into_bytes())
    }

    fn read_file(&mut self, path: &[u8], offset: u64, buf: &mut [u8]) -> FsResult<usize> {
        use std::os::unix::fs::FileExt;
        let file = self.open_regular(path)?;
        file.read_at(buf, offset).map_err(|e| io_error(e, "read"))
    }

    fn copy_file_to_output(&mut self, path: &[u8], len: u64, out: &mut O) -> FsResult<()> {
        let file = self.open_regular(path)?;
        let copied = io::copy(&mut file.take(len), out).map_err(|e| io_error(e, "copy"))?;
        if copied != len {
            return Err(FsError::new(
                FsErrorKind::UnexpectedEof,
                format!("file shrank to {copied} of {len} bytes while copying"),
            ));
        }
        Ok(())
    }

    fn get_xattr(&mut self, path: &[u8], name: &str) -> FsResult<Option<Vec<u8>>> {
        let (dir, last) = self.parent(path)?;
        let proc = Self::proc_path(&dir, last);
        let mut buf = vec![0u8; 64 * 1024];
        match rustix::fs::lgetxattr(&proc, name, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                Ok(Some(buf))
            }
            Err(Errno::NODATA) | Err(Errno::OPNOTSUPP) => Ok(None),
            Err(e) => Err(fs_error(e, "getxattr")),
        }
    }

    fn list_xattrs(&mut self, path: &[u8]) -> FsResult<Vec<String>> {
        let (dir, last) = self.parent(path)?;
        let proc = Self::proc_path(&dir, last);
        let mut buf = vec![0u8; 64 * 1024];
        let n = match rustix::fs::llistxattr(&proc, &mut buf[..]) {
            Ok(n) => n,
            Err(Errno::OPNOTSUPP) => return Ok(Vec::new()),
            Err(e) => return Err(fs_error(e, "listxattr")),
        };
        Ok(buf[..n]
            .split(|b| *b == 0)
            .filter(|n| !n.is_empty())
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .collect())
    }
}
