//! The archive crate's filesystem traits over the directory and stream resources the host
//! lends: each trait method is one call of the WIT function of the same name (the batched
//! metadata methods, of the `entries` interface).

use std::io::{self, Read, Write};

use storage_archive::fs::{
    DirEntry, EntryMetadata, FileKind, FileStat, FsError, FsErrorKind, FsRead, FsResult, FsWrite,
    SparseMap, Timestamp,
};

use crate::bindings::storage::plugin::entries;
use crate::bindings::storage::plugin::filesystem::Directory;
use crate::bindings::storage::plugin::streams::{InputStream, OutputStream};
use crate::convert;

/// A lent directory seen through the archive crate's traits.
pub struct GuestDir<'a> {
    dir: &'a Directory,
}

impl<'a> GuestDir<'a> {
    /// Wraps a lent directory.
    pub fn new(dir: &'a Directory) -> Self {
        GuestDir { dir }
    }
}

/// The lent input stream as `Read`. It never reads ahead: the host's
/// `write-file-from-input` continues exactly where the archive logic stopped reading.
pub struct GuestInput<'a> {
    stream: &'a InputStream,
}

impl<'a> GuestInput<'a> {
    /// Wraps a lent input stream.
    pub fn new(stream: &'a InputStream) -> Self {
        GuestInput { stream }
    }
}

impl Read for GuestInput<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let bytes = self
            .stream
            .read(buf.len() as u64)
            .map_err(|e| io::Error::other(convert::fs_error(e)))?;
        // The host never returns more than asked; guard anyway rather than panic.
        let n = bytes.len().min(buf.len());
        buf[..n].copy_from_slice(&bytes[..n]);
        Ok(n)
    }
}

/// Bytes collected before one host call: tar headers are 512 bytes, a call per header would
/// dominate the cost of small files.
const OUTPUT_BUFFER: usize = 64 * 1024;

/// The lent output stream as `Write`, buffered; the buffer is flushed before every host fast
/// path so the bytes stay in order.
pub struct GuestOutput<'a> {
    stream: &'a OutputStream,
    buffer: Vec<u8>,
}

impl<'a> GuestOutput<'a> {
    /// Wraps a lent output stream.
    pub fn new(stream: &'a OutputStream) -> Self {
        GuestOutput {
            stream,
            buffer: Vec::with_capacity(OUTPUT_BUFFER),
        }
    }
}

impl Write for GuestOutput<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.buffer.len() + buf.len() > OUTPUT_BUFFER {
            self.flush()?;
        }
        if buf.len() >= OUTPUT_BUFFER {
            self.stream
                .write(buf)
                .map_err(|e| io::Error::other(convert::fs_error(e)))?;
        } else {
            self.buffer.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buffer.is_empty() {
            self.stream
                .write(&self.buffer)
                .map_err(|e| io::Error::other(convert::fs_error(e)))?;
            self.buffer.clear();
        }
        Ok(())
    }
}

fn flush_error(e: io::Error) -> FsError {
    FsError::new(FsErrorKind::Other, format!("flush output: {e}"))
}

impl<'a> FsRead for GuestDir<'a> {
    type Output = GuestOutput<'a>;

    fn lstat(&mut self, path: &[u8]) -> FsResult<Option<FileStat>> {
        self.dir
            .lstat(path)
            .map(|st| st.map(convert::file_stat))
            .map_err(convert::fs_error)
    }

    fn read_dir(&mut self, path: &[u8]) -> FsResult<Vec<DirEntry>> {
        self.dir
            .read_dir(path)
            .map(|entries| entries.into_iter().map(convert::dir_entry).collect())
            .map_err(convert::fs_error)
    }

    fn readlink(&mut self, path: &[u8]) -> FsResult<Vec<u8>> {
        self.dir.readlink(path).map_err(convert::fs_error)
    }

    fn read_file(&mut self, path: &[u8], offset: u64, buf: &mut [u8]) -> FsResult<usize> {
        let bytes = self
            .dir
            .read_file(path, offset, buf.len() as u64)
            .map_err(convert::fs_error)?;
        let n = bytes.len().min(buf.len());
        buf[..n].copy_from_slice(&bytes[..n]);
        Ok(n)
    }

    fn copy_file_to_output(
        &mut self,
        path: &[u8],
        len: u64,
        out: &mut Self::Output,
    ) -> FsResult<()> {
        out.flush().map_err(flush_error)?;
        self.dir
            .copy_file_to_output(path, len, out.stream)
            .map_err(convert::fs_error)
    }

    fn get_xattr(&mut self, path: &[u8], name: &str) -> FsResult<Option<Vec<u8>>> {
        self.dir.get_xattr(path, name).map_err(convert::fs_error)
    }

    fn list_xattrs(&mut self, path: &[u8]) -> FsResult<Vec<String>> {
        self.dir.list_xattrs(path).map_err(convert::fs_error)
    }
}

impl<'a> FsWrite for GuestDir<'a> {
    type Input = GuestInput<'a>;

    fn mkdir(&mut self, path: &[u8], mode: u32) -> FsResult<()> {
        self.dir.mkdir(path, mode).map_err(convert::fs_error)
    }

    fn write_file_from_input(
        &mut self,
        path: &[u8],
        mode: u32,
        len: u64,
        input: &mut Self::Input,
    ) -> FsResult<()> {
        self.dir
            .write_file_from_input(path, mode, len, input.stream)
            .map_err(convert::fs_error)
    }

    fn set_metadata(&mut self, path: &[u8], meta: &EntryMetadata) -> FsResult<()> {
        entries::set_metadata(self.dir, path, &convert::wit_entry_metadata(meta))
            .map_err(convert::fs_error)
    }

    fn create_file_with_metadata(
        &mut self,
        path: &[u8],
        create_mode: u32,
        len: u64,
        input: &mut Self::Input,
        meta: &EntryMetadata,
    ) -> FsResult<()> {
        entries::create_file_with_metadata(
            self.dir,
            path,
            create_mode,
            len,
            input.stream,
            &convert::wit_entry_metadata(meta),
        )
        .map_err(convert::fs_error)
    }

    fn create_sparse_file_with_metadata(
        &mut self,
        path: &[u8],
        create_mode: u32,
        map: &SparseMap,
        input: &mut Self::Input,
        meta: &EntryMetadata,
    ) -> FsResult<()> {
        entries::create_sparse_file_with_metadata(
            self.dir,
            path,
            create_mode,
            &convert::wit_sparse_map(map),
            input.stream,
            &convert::wit_entry_metadata(meta),
        )
        .map_err(convert::fs_error)
    }

    fn symlink(&mut self, target: &[u8], path: &[u8]) -> FsResult<()> {
        self.dir.symlink(target, path).map_err(convert::fs_error)
    }

    fn hardlink(&mut self, target: &[u8], path: &[u8]) -> FsResult<()> {
        self.dir.hardlink(target, path).map_err(convert::fs_error)
    }

    fn mknod(
        &mut self,
        path: &[u8],
        kind: FileKind,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> FsResult<()> {
        self.dir
            .mknod(path, convert::wit_file_kind(kind), mode, major, minor)
            .map_err(convert::fs_error)
    }

    fn mkfifo(&mut self, path: &[u8], mode: u32) -> FsResult<()> {
        self.dir.mkfifo(path, mode).map_err(convert::fs_error)
    }

    fn lchown(&mut self, path: &[u8], uid: u32, gid: u32) -> FsResult<()> {
        self.dir.lchown(path, uid, gid).map_err(convert::fs_error)
    }

    fn chmod(&mut self, path: &[u8], mode: u32) -> FsResult<()> {
        self.dir.chmod(path, mode).map_err(convert::fs_error)
    }

    fn set_xattr(&mut self, path: &[u8], name: &str, value: &[u8]) -> FsResult<()> {
        self.dir
            .set_xattr(path, name, value)
            .map_err(convert::fs_error)
    }

    fn remove_xattr(&mut self, path: &[u8], name: &str) -> FsResult<()> {
        self.dir.remove_xattr(path, name).map_err(convert::fs_error)
    }

    fn set_times(&mut self, path: &[u8], atime: Timestamp, mtime: Timestamp) -> FsResult<()> {
        self.dir
            .set_times(
                path,
                convert::wit_timestamp(atime),
                convert::wit_timestamp(mtime),
            )
            .map_err(convert::fs_error)
    }

    fn remove(&mut self, path: &[u8]) -> FsResult<()> {
        self.dir.remove(path).map_err(convert::fs_error)
    }

    fn remove_all(&mut self, path: &[u8]) -> FsResult<()> {
        self.dir.remove_all(path).map_err(convert::fs_error)
    }

    fn rename(&mut self, from: &[u8], to: &[u8]) -> FsResult<()> {
        self.dir.rename(from, to).map_err(convert::fs_error)
    }
}
