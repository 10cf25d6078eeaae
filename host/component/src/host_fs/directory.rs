//! The `filesystem` interface's directory resource: every call resolved beneath the lent
//! directory, changes refused in one lent read-only.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;

use rustix::fs::OFlags;
use storage_archive::fs::{FsRead, FsWrite};
use wasmtime::component::Resource;

use super::convert::{
    error_to_wit, io_error, kind_from_wit, kind_to_wit, other_error, stat_to_wit, time_from_wit,
};
use super::{check_path, FsResult, HostState, LentDir, LentInput, LentOutput, MAX_OPENED_DIRS};
use crate::bindings::storage::plugin::{filesystem, types};

impl filesystem::HostDirectory for HostState {
    fn lstat(&mut self, h: Resource<LentDir>, path: Vec<u8>) -> FsResult<Option<types::FileStat>> {
        let d = self.dir(&h, &path)?;
        d.confined
            .lstat(&path)
            .map(|st| st.map(stat_to_wit))
            .map_err(error_to_wit)
    }

    fn read_dir(&mut self, h: Resource<LentDir>, path: Vec<u8>) -> FsResult<Vec<types::DirEntry>> {
        let d = self.dir(&h, &path)?;
        d.confined
            .read_dir(&path)
            .map(|entries| {
                entries
                    .into_iter()
                    .map(|e| types::DirEntry {
                        name: e.name,
                        kind: kind_to_wit(e.kind),
                        ino: e.ino,
                    })
                    .collect()
            })
            .map_err(error_to_wit)
    }

    fn readlink(&mut self, h: Resource<LentDir>, path: Vec<u8>) -> FsResult<Vec<u8>> {
        self.dir(&h, &path)?
            .confined
            .readlink(&path)
            .map_err(error_to_wit)
    }

    fn read_file(
        &mut self,
        h: Resource<LentDir>,
        path: Vec<u8>,
        offset: u64,
        len: u64,
    ) -> FsResult<Vec<u8>> {
        let mut buf = vec![0u8; len.min(1 << 20) as usize];
        let n = self
            .dir(&h, &path)?
            .confined
            .read_file(&path, offset, &mut buf)
            .map_err(error_to_wit)?;
        buf.truncate(n);
        Ok(buf)
    }

    fn copy_file_to_output(
        &mut self,
        h: Resource<LentDir>,
        path: Vec<u8>,
        len: u64,
        out: Resource<LentOutput>,
    ) -> FsResult<()> {
        check_path(&path)?;
        self.with_output(&h, &out, |d, w| {
            d.confined
                .copy_file_to_output(&path, len, w)
                .map_err(error_to_wit)
        })
    }

    fn get_xattr(
        &mut self,
        h: Resource<LentDir>,
        path: Vec<u8>,
        name: String,
    ) -> FsResult<Option<Vec<u8>>> {
        self.dir(&h, &path)?
            .confined
            .get_xattr(&path, &name)
            .map_err(error_to_wit)
    }

    fn list_xattrs(&mut self, h: Resource<LentDir>, path: Vec<u8>) -> FsResult<Vec<String>> {
        self.dir(&h, &path)?
            .confined
            .list_xattrs(&path)
            .map_err(error_to_wit)
    }

    fn mkdir(&mut self, h: Resource<LentDir>, path: Vec<u8>, mode: u32) -> FsResult<()> {
        self.writable_dir(&h, &path)?
            .confined
            .mkdir(&path, mode)
            .map_err(error_to_wit)
    }

    fn write_file_from_input(
        &mut self,
        h: Resource<LentDir>,
        path: Vec<u8>,
        mode: u32,
        len: u64,
        input: Resource<LentInput>,
    ) -> FsResult<()> {
        self.with_input(&h, &path, &input, |dir, reader| {
            dir.confined
                .write_file_from_input(&path, mode, len, reader)
                .map_err(error_to_wit)
        })
    }

    fn symlink(&mut self, h: Resource<LentDir>, target: Vec<u8>, path: Vec<u8>) -> FsResult<()> {
        self.writable_dir(&h, &path)?
            .confined
            .symlink(&target, &path)
            .map_err(error_to_wit)
    }

    fn hardlink(&mut self, h: Resource<LentDir>, target: Vec<u8>, path: Vec<u8>) -> FsResult<()> {
        check_path(&target)?;
        self.writable_dir(&h, &path)?
            .confined
            .hardlink(&target, &path)
            .map_err(error_to_wit)
    }

    fn mknod(
        &mut self,
        h: Resource<LentDir>,
        path: Vec<u8>,
        kind: types::FileKind,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> FsResult<()> {
        let dir = self.writable_dir(&h, &path)?;
        super::rules::check_device_node(
            &path,
            kind,
            major,
            minor,
            storage_driver::idmap::running_in_user_namespace(),
        )?;
        dir.confined
            .mknod(&path, kind_from_wit(kind), mode, major, minor)
            .map_err(error_to_wit)
    }

    fn mkfifo(&mut self, h: Resource<LentDir>, path: Vec<u8>, mode: u32) -> FsResult<()> {
        self.writable_dir(&h, &path)?
            .confined
            .mkfifo(&path, mode)
            .map_err(error_to_wit)
    }

    fn lchown(&mut self, h: Resource<LentDir>, path: Vec<u8>, uid: u32, gid: u32) -> FsResult<()> {
        self.writable_dir(&h, &path)?
            .confined
            .lchown(&path, uid, gid)
            .map_err(error_to_wit)
    }

    fn chmod(&mut self, h: Resource<LentDir>, path: Vec<u8>, mode: u32) -> FsResult<()> {
        self.writable_dir(&h, &path)?
            .confined
            .chmod(&path, mode)
            .map_err(error_to_wit)
    }

    fn set_xattr(
        &mut self,
        h: Resource<LentDir>,
        path: Vec<u8>,
        name: String,
        value: Vec<u8>,
    ) -> FsResult<()> {
        let dir = self.writable_dir(&h, &path)?;
        super::rules::check_xattr(&path, &name, &value, || {
            Ok(dir
                .confined
                .lstat(&path)
                .map_err(error_to_wit)?
                .is_some_and(|st| st.kind == storage_archive::fs::FileKind::Directory))
        })?;
        dir.confined
            .set_xattr(&path, &name, &value)
            .map_err(error_to_wit)
    }

    fn remove_xattr(&mut self, h: Resource<LentDir>, path: Vec<u8>, name: String) -> FsResult<()> {
        self.writable_dir(&h, &path)?
            .confined
            .remove_xattr(&path, &name)
            .map_err(error_to_wit)
    }

    fn set_times(
        &mut self,
        h: Resource<LentDir>,
        path: Vec<u8>,
        atime: types::Timestamp,
        mtime: types::Timestamp,
    ) -> FsResult<()> {
        self.writable_dir(&h, &path)?
            .confined
            .set_times(&path, time_from_wit(atime), time_from_wit(mtime))
            .map_err(error_to_wit)
    }

    fn remove(&mut self, h: Resource<LentDir>, path: Vec<u8>) -> FsResult<()> {
        self.writable_dir(&h, &path)?
            .confined
            .remove(&path)
            .map_err(error_to_wit)
    }

    fn remove_all(&mut self, h: Resource<LentDir>, path: Vec<u8>) -> FsResult<()> {
        // Host-side, by directory descriptors and several threads: a layer is removed in one
        // call, not one per entry.
        let d = self.writable_dir(&h, &path)?;
        let removed = storage_driver::tree_copy::remove_tree_at(d.root.as_fd(), &path);
        // The confined handle may hold a directory of the removed tree open as its cached
        // parent: a fresh one resolves paths again.
        d.reopen_confined().map_err(|e| io_error(e, "remove-all"))?;
        removed.map_err(error_to_wit)
    }

    fn rename(&mut self, h: Resource<LentDir>, from: Vec<u8>, to: Vec<u8>) -> FsResult<()> {
        check_path(&to)?;
        self.writable_dir(&h, &from)?
            .confined
            .rename(&from, &to)
            .map_err(error_to_wit)
    }

    fn open_dir(&mut self, h: Resource<LentDir>, path: Vec<u8>) -> FsResult<Resource<LentDir>> {
        if self.opened_dirs >= MAX_OPENED_DIRS {
            return Err(other_error(format!(
                "open-dir: more than {MAX_OPENED_DIRS} directories open at once"
            )));
        }
        let d = self.dir(&h, &path)?;
        let fd = d.open_beneath(&path, OFlags::PATH | OFlags::DIRECTORY, 0)?;
        let display = d.display.join(std::ffi::OsStr::new(
            &String::from_utf8_lossy(&path).into_owned(),
        ));
        let read_only = d.read_only;
        let mut lent = LentDir::from_fd(fd, display).map_err(|e| io_error(e, "open-dir"))?;
        lent.opened_by_guest = true;
        lent.read_only = read_only;
        let handle = self
            .table
            .push(lent)
            .map_err(|e| other_error(format!("too many handles: {e}")))?;
        self.opened_dirs += 1;
        Ok(handle)
    }

    fn create_file(
        &mut self,
        h: Resource<LentDir>,
        path: Vec<u8>,
        mode: u32,
        contents: Vec<u8>,
    ) -> FsResult<()> {
        let fd = self.writable_dir(&h, &path)?.open_beneath(
            &path,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL,
            mode,
        )?;
        File::from(fd)
            .write_all(&contents)
            .map_err(|e| io_error(e, "write"))
    }

    fn copy_range_to_output(
        &mut self,
        h: Resource<LentDir>,
        path: Vec<u8>,
        offset: u64,
        len: u64,
        out: Resource<LentOutput>,
    ) -> FsResult<()> {
        check_path(&path)?;
        self.with_output(&h, &out, |d, w| {
            let mut file = d.confined.open_regular(&path).map_err(error_to_wit)?;
            file.seek(SeekFrom::Start(offset))
                .map_err(|e| io_error(e, "seek"))?;
            let copied = io::copy(&mut file.take(len), w).map_err(|e| io_error(e, "copy"))?;
            if copied != len {
                return Err(types::FsError {
                    kind: types::FsErrorKind::UnexpectedEof,
                    errno: 0,
                    message: format!("file ended after {copied} of {len} bytes"),
                });
            }
            Ok(())
        })
    }

    fn copy_tree(
        &mut self,
        h: Resource<LentDir>,
        from: Vec<u8>,
        dest: Resource<LentDir>,
        to: Vec<u8>,
    ) -> FsResult<()> {
        // The source's root on a descriptor of its own: the destination may be the same
        // directory, and both are borrowed from the table.
        let source = self
            .dir(&h, &from)?
            .root
            .try_clone()
            .map_err(|e| io_error(e, "copy-tree"))?;
        let target = self.writable_dir(&dest, &to)?;
        let sys = storage_driver::syscalls::real();
        storage_driver::tree_copy::copy_tree_at(
            &*sys,
            source.as_fd(),
            &from,
            target.root.as_fd(),
            &to,
        )
        .map_err(error_to_wit)
    }

    fn drop(&mut self, handle: Resource<LentDir>) -> wasmtime::Result<()> {
        // Only handles the guest owns are dropped by it: those of `open-dir`, and the lower
        // directories lent by value for one call (which the counter never included).
        if self.table.delete(handle)?.opened_by_guest {
            self.opened_dirs = self.opened_dirs.saturating_sub(1);
        }
        Ok(())
    }
}
