//! The host side of the `types`, `streams` and `filesystem` interfaces: what a guest can touch.
//!
//! A lent directory is a [`ConfinedDir`]: every path the guest names is resolved beneath it
//! (`openat2` with `RESOLVE_IN_ROOT`, the last component never followed), so `../`, absolute
//! paths and symlinks planted by the guest cannot reach outside. The methods that mirror the
//! archive traits delegate to it one to one; the driver extras below resolve the same way.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use storage_archive::fs::{self as afs, FsRead, FsWrite};
use wasmtime::component::{Resource, ResourceTable};

use super::bindings::storage::plugin::{entries, filesystem, streams, types};
use super::limits::PluginLimiter;
use storage_driver::confined::ConfinedDir;

/// A stream the host reads file contents from (the layer tar).
pub type InputReader = dyn Read + Send;
/// A stream the host writes tar bytes to.
pub type OutputWriter = dyn Write + Send;

type Confined = ConfinedDir<InputReader, OutputWriter>;

/// What a Store holds: the guest's resources and its limiter.
pub struct HostState {
    /// Lent directories and streams, by handle.
    pub table: ResourceTable,
    /// Memory limit of the guest.
    pub limiter: PluginLimiter,
    /// Directories the guest opened itself (`open-dir`) and still holds: each holds two file
    /// descriptors of the host, so their number is bounded.
    opened_dirs: usize,
    /// The other driver homes a driver component may ask for (`homes` interface).
    pub homes: DriverHomes,
}

/// The driver homes of a store beyond the driver's own (spec §2.1, §2.6).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriverHomes {
    /// `<imagestore>/<driver>` of a split store: lent writable.
    pub image_home: Option<PathBuf>,
    /// `<store>/<driver>` of each additional read-only image store that exists: lent
    /// read-only.
    pub read_only_homes: Vec<PathBuf>,
}

/// How many directories a guest may hold open through `open-dir` at once.
pub const MAX_OPENED_DIRS: usize = 256;

/// A directory lent to the guest.
pub struct LentDir {
    confined: Confined,
    /// The same directory as an `O_PATH` handle, for the driver extras.
    root: OwnedFd,
    display: PathBuf,
    /// Opened by the guest through `open-dir` (counted against [`MAX_OPENED_DIRS`]).
    opened_by_guest: bool,
    /// Lent for reading only (a read-only image store's home): every change is refused.
    read_only: bool,
}

impl LentDir {
    /// Opens `path` to lend it.
    pub fn open(path: &Path) -> io::Result<Self> {
        let root = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Self::from_fd(root, path.to_path_buf())
    }

    /// Lends the directory `root` (already resolved); the confined handle is opened through
    /// the fd itself, so nothing is looked up by path again.
    fn from_fd(root: OwnedFd, display: PathBuf) -> io::Result<Self> {
        let proc = PathBuf::from(format!("/proc/self/fd/{}", root.as_raw_fd()));
        let confined = ConfinedDir::open(&proc)?;
        Ok(LentDir {
            confined,
            root,
            display,
            opened_by_guest: false,
            read_only: false,
        })
    }

    /// Opens `path` to lend it for reading only.
    pub fn open_read_only(path: &Path) -> io::Result<Self> {
        let mut dir = Self::open(path)?;
        dir.read_only = true;
        Ok(dir)
    }

    /// The confined handle, for the host's own walks.
    pub(crate) fn confined_mut(&mut self) -> &mut Confined {
        &mut self.confined
    }

    /// A second, independent handle on the same directory (for a copy within one directory).
    fn duplicate(&self) -> io::Result<Self> {
        let mut dir = Self::from_fd(self.root.try_clone()?, self.display.clone())?;
        dir.read_only = self.read_only;
        Ok(dir)
    }

    /// The directory, for messages.
    pub fn path(&self) -> &Path {
        &self.display
    }

    /// Opens `path` beneath the root with `flags`, never following the last component.
    pub(crate) fn open_beneath(
        &self,
        path: &[u8],
        flags: OFlags,
        mode: u32,
    ) -> Result<OwnedFd, types::FsError> {
        storage_driver::confined::open_beneath(&self.root, path, flags, mode).map_err(error_to_wit)
    }
}

/// The layer tar, or any input, lent to the guest.
pub struct LentInput {
    /// `None` only while a host fast path is copying from it.
    reader: Option<Box<InputReader>>,
}

impl LentInput {
    /// Lends `reader`.
    pub fn new(reader: Box<InputReader>) -> Self {
        LentInput {
            reader: Some(reader),
        }
    }
}

/// The output tar, or any output, lent to the guest.
pub struct LentOutput {
    /// `None` only while a host fast path is copying into it.
    writer: Option<Box<OutputWriter>>,
}

impl LentOutput {
    /// Lends `writer`.
    pub fn new(writer: Box<OutputWriter>) -> Self {
        LentOutput {
            writer: Some(writer),
        }
    }

    /// Takes the writer back after the call.
    pub fn into_writer(self) -> Option<Box<OutputWriter>> {
        self.writer
    }
}

// ---- conversions ----

fn kind_to_wit(kind: afs::FileKind) -> types::FileKind {
    match kind {
        afs::FileKind::Regular => types::FileKind::Regular,
        afs::FileKind::Directory => types::FileKind::Directory,
        afs::FileKind::Symlink => types::FileKind::Symlink,
        afs::FileKind::CharDevice => types::FileKind::CharDevice,
        afs::FileKind::BlockDevice => types::FileKind::BlockDevice,
        afs::FileKind::Fifo => types::FileKind::Fifo,
        afs::FileKind::Socket => types::FileKind::Socket,
    }
}

fn kind_from_wit(kind: types::FileKind) -> afs::FileKind {
    match kind {
        types::FileKind::Regular => afs::FileKind::Regular,
        types::FileKind::Directory => afs::FileKind::Directory,
        types::FileKind::Symlink => afs::FileKind::Symlink,
        types::FileKind::CharDevice => afs::FileKind::CharDevice,
        types::FileKind::BlockDevice => afs::FileKind::BlockDevice,
        types::FileKind::Fifo => afs::FileKind::Fifo,
        types::FileKind::Socket => afs::FileKind::Socket,
    }
}

fn time_to_wit(t: afs::Timestamp) -> types::Timestamp {
    types::Timestamp {
        secs: t.secs,
        nanos: t.nanos,
    }
}

fn time_from_wit(t: types::Timestamp) -> afs::Timestamp {
    afs::Timestamp {
        secs: t.secs,
        nanos: t.nanos,
    }
}

fn metadata_from_wit(meta: entries::EntryMetadata) -> afs::EntryMetadata {
    afs::EntryMetadata {
        uid: meta.uid,
        gid: meta.gid,
        ignore_chown_errors: meta.ignore_chown_errors,
        xattrs: meta.xattrs,
        mode: meta.mode,
        atime: time_from_wit(meta.atime),
        mtime: time_from_wit(meta.mtime),
    }
}

fn stat_to_wit(st: afs::FileStat) -> types::FileStat {
    types::FileStat {
        kind: kind_to_wit(st.kind),
        mode: st.mode,
        uid: st.uid,
        gid: st.gid,
        size: st.size,
        blocks: st.blocks,
        mtime: time_to_wit(st.mtime),
        atime: time_to_wit(st.atime),
        dev: st.dev,
        ino: st.ino,
        nlink: st.nlink,
        rdev_major: st.rdev_major,
        rdev_minor: st.rdev_minor,
    }
}

/// Archive filesystem error → WIT error.
pub fn error_to_wit(e: afs::FsError) -> types::FsError {
    use afs::FsErrorKind as K;
    let kind = match e.kind {
        K::NotFound => types::FsErrorKind::NotFound,
        K::AlreadyExists => types::FsErrorKind::AlreadyExists,
        K::NotEmpty => types::FsErrorKind::NotEmpty,
        K::NotADirectory => types::FsErrorKind::NotADirectory,
        K::PathEscape => types::FsErrorKind::PathEscape,
        K::PermissionDenied => types::FsErrorKind::PermissionDenied,
        K::Unsupported => types::FsErrorKind::Unsupported,
        K::UnexpectedEof => types::FsErrorKind::UnexpectedEof,
        K::Other => types::FsErrorKind::Other,
    };
    types::FsError {
        kind,
        errno: e.errno,
        message: e.message,
    }
}

/// WIT error → archive filesystem error.
pub fn error_from_wit(e: types::FsError) -> afs::FsError {
    use types::FsErrorKind as K;
    let kind = match e.kind {
        K::NotFound => afs::FsErrorKind::NotFound,
        K::AlreadyExists => afs::FsErrorKind::AlreadyExists,
        K::NotEmpty => afs::FsErrorKind::NotEmpty,
        K::NotADirectory => afs::FsErrorKind::NotADirectory,
        K::PathEscape => afs::FsErrorKind::PathEscape,
        K::PermissionDenied => afs::FsErrorKind::PermissionDenied,
        K::Unsupported => afs::FsErrorKind::Unsupported,
        K::UnexpectedEof => afs::FsErrorKind::UnexpectedEof,
        K::Other => afs::FsErrorKind::Other,
    };
    afs::FsError {
        kind,
        errno: e.errno,
        message: e.message,
    }
}

fn other_error(message: impl Into<String>) -> types::FsError {
    types::FsError {
        kind: types::FsErrorKind::Other,
        errno: 0,
        message: message.into(),
    }
}

fn errno_error(e: rustix::io::Errno, what: &str) -> types::FsError {
    use rustix::io::Errno;
    let kind = match e {
        Errno::NOENT => types::FsErrorKind::NotFound,
        Errno::EXIST => types::FsErrorKind::AlreadyExists,
        Errno::NOTEMPTY => types::FsErrorKind::NotEmpty,
        Errno::NOTDIR => types::FsErrorKind::NotADirectory,
        Errno::XDEV => types::FsErrorKind::PathEscape,
        Errno::PERM | Errno::ACCESS => types::FsErrorKind::PermissionDenied,
        Errno::OPNOTSUPP | Errno::NOSYS => types::FsErrorKind::Unsupported,
        _ => types::FsErrorKind::Other,
    };
    types::FsError {
        kind,
        errno: e.raw_os_error(),
        message: format!("{what}: {}", io::Error::from(e)),
    }
}

pub(crate) fn io_error(e: io::Error, what: &str) -> types::FsError {
    match e.raw_os_error() {
        Some(raw) => errno_error(rustix::io::Errno::from_raw_os_error(raw), what),
        None => other_error(format!("{what}: {e}")),
    }
}

/// Handles are checked by the component model before the host sees them, so a missing entry is
/// a host bug; the guest still gets an error, never a panic.
fn missing(e: wasmtime::component::ResourceTableError) -> types::FsError {
    other_error(format!("invalid handle: {e}"))
}

type FsResult<T> = Result<T, types::FsError>;

/// Refuses a path the archive traits never produce: absolute, or with an empty, `.` or `..`
/// component, or a NUL byte. The confined directory resolves parents beneath itself, but the
/// last component goes to `*at` calls as is, and `..` there would name the parent of the lent
/// directory: the guest is not trusted to have cleaned its paths.
pub fn check_path(path: &[u8]) -> FsResult<()> {
    if path.is_empty() {
        return Ok(());
    }
    let bad = path.contains(&0)
        || path
            .split(|b| *b == b'/')
            .any(|c| c.is_empty() || c == b"." || c == b"..");
    if bad {
        return Err(types::FsError {
            kind: types::FsErrorKind::PathEscape,
            errno: 0,
            message: format!(
                "path {:?} is not a clean relative path",
                String::from_utf8_lossy(path)
            ),
        });
    }
    Ok(())
}

impl HostState {
    /// A state with an empty table.
    pub fn new(limiter: PluginLimiter) -> Self {
        HostState {
            table: ResourceTable::new(),
            limiter,
            opened_dirs: 0,
            homes: DriverHomes::default(),
        }
    }

    /// The lent directory of `handle` for a change at `path`: refused in a read-only one.
    fn writable_dir(&mut self, handle: &Resource<LentDir>, path: &[u8]) -> FsResult<&mut LentDir> {
        let d = self.dir(handle, path)?;
        if d.read_only {
            return Err(types::FsError {
                kind: types::FsErrorKind::PermissionDenied,
                errno: rustix::io::Errno::ROFS.raw_os_error(),
                message: format!("{} is lent read-only", d.display.display()),
            });
        }
        Ok(d)
    }

    /// Lends `path` (read-only when asked) as a new handle.
    fn lend(&mut self, path: &Path, read_only: bool) -> FsResult<Resource<LentDir>> {
        let dir = if read_only {
            LentDir::open_read_only(path)
        } else {
            LentDir::open(path)
        }
        .map_err(|e| io_error(e, &format!("open {}", path.display())))?;
        self.table
            .push(dir)
            .map_err(|e| other_error(format!("too many handles: {e}")))
    }

    /// The lent directory of `handle`, after checking the `path` about to be used in it.
    fn dir(&mut self, handle: &Resource<LentDir>, path: &[u8]) -> FsResult<&mut LentDir> {
        check_path(path)?;
        self.table.get_mut(handle).map_err(missing)
    }

    /// Runs `f` with the writable directory (after checking `path`) and the reader of an
    /// input stream, both taken from the table (the reader is put back afterwards, whatever
    /// `f` returns).
    fn with_input<T>(
        &mut self,
        dir: &Resource<LentDir>,
        path: &[u8],
        input: &Resource<LentInput>,
        f: impl FnOnce(&mut LentDir, &mut InputReader) -> FsResult<T>,
    ) -> FsResult<T> {
        let mut reader = self
            .table
            .get_mut(input)
            .map_err(missing)?
            .reader
            .take()
            .ok_or_else(|| other_error("input stream busy"))?;
        let result = match self.writable_dir(dir, path) {
            Ok(d) => f(d, &mut *reader),
            Err(e) => Err(e),
        };
        if let Ok(i) = self.table.get_mut(input) {
            i.reader = Some(reader);
        }
        result
    }

    /// Runs `f` with the directory and the writer of an output stream, both taken from the
    /// table (the writer is put back afterwards, whatever `f` returns).
    fn with_output<T>(
        &mut self,
        dir: &Resource<LentDir>,
        out: &Resource<LentOutput>,
        f: impl FnOnce(&mut LentDir, &mut OutputWriter) -> FsResult<T>,
    ) -> FsResult<T> {
        let mut writer = self
            .table
            .get_mut(out)
            .map_err(missing)?
            .writer
            .take()
            .ok_or_else(|| other_error("output stream busy"))?;
        let result = match self.table.get_mut(dir) {
            Ok(d) => f(d, &mut *writer),
            Err(e) => Err(missing(e)),
        };
        if let Ok(o) = self.table.get_mut(out) {
            o.writer = Some(writer);
        }
        result
    }
}

impl types::Host for HostState {}

impl super::bindings::storage::plugin::archive_types::Host for HostState {}

impl streams::Host for HostState {}

impl streams::HostInputStream for HostState {
    fn read(&mut self, handle: Resource<LentInput>, max: u64) -> FsResult<Vec<u8>> {
        let input = self.table.get_mut(&handle).map_err(missing)?;
        let reader = input
            .reader
            .as_mut()
            .ok_or_else(|| other_error("input stream busy"))?;
        // A guest asking for gigabytes gets a bounded chunk: its memory is the host's too.
        let max = max.min(1 << 20) as usize;
        let mut buf = vec![0u8; max];
        let mut filled = 0;
        // Fill as much as asked (a short read would make the guest loop more), stopping at EOF.
        while filled < max {
            match reader.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_error(e, "read input")),
            }
        }
        buf.truncate(filled);
        Ok(buf)
    }

    fn drop(&mut self, handle: Resource<LentInput>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        Ok(())
    }
}

impl streams::HostOutputStream for HostState {
    fn write(&mut self, handle: Resource<LentOutput>, bytes: Vec<u8>) -> FsResult<()> {
        let output = self.table.get_mut(&handle).map_err(missing)?;
        let writer = output
            .writer
            .as_mut()
            .ok_or_else(|| other_error("output stream busy"))?;
        writer
            .write_all(&bytes)
            .map_err(|e| io_error(e, "write output"))
    }

    fn drop(&mut self, handle: Resource<LentOutput>) -> wasmtime::Result<()> {
        // The host keeps its own handle to the output until the call ends: only the guest's
        // reference goes away here.
        if handle.owned() {
            self.table.delete(handle)?;
        }
        Ok(())
    }
}

impl filesystem::Host for HostState {}

impl entries::Host for HostState {
    fn set_metadata(
        &mut self,
        h: Resource<LentDir>,
        path: Vec<u8>,
        meta: entries::EntryMetadata,
    ) -> FsResult<()> {
        self.writable_dir(&h, &path)?
            .confined
            .set_metadata(&path, &metadata_from_wit(meta))
            .map_err(error_to_wit)
    }

    fn create_file_with_metadata(
        &mut self,
        h: Resource<LentDir>,
        path: Vec<u8>,
        create_mode: u32,
        len: u64,
        input: Resource<LentInput>,
        meta: entries::EntryMetadata,
    ) -> FsResult<()> {
        let meta = metadata_from_wit(meta);
        self.with_input(&h, &path, &input, |dir, reader| {
            dir.confined
                .create_file_with_metadata(&path, create_mode, len, reader, &meta)
                .map_err(error_to_wit)
        })
    }

    fn create_sparse_file_with_metadata(
        &mut self,
        h: Resource<LentDir>,
        path: Vec<u8>,
        create_mode: u32,
        layout: types::SparseMap,
        input: Resource<LentInput>,
        meta: entries::EntryMetadata,
    ) -> FsResult<()> {
        let meta = metadata_from_wit(meta);
        let map = afs::SparseMap {
            real_size: layout.real_size,
            regions: layout
                .regions
                .into_iter()
                .map(|r| afs::SparseRegion {
                    offset: r.offset,
                    length: r.length,
                })
                .collect(),
        };
        self.with_input(&h, &path, &input, |dir, reader| {
            dir.confined
                .create_sparse_file_with_metadata(&path, create_mode, &map, reader, &meta)
                .map_err(error_to_wit)
        })
    }
}

impl super::bindings::driver::storage::plugin::homes::Host for HostState {
    fn image_home(&mut self) -> Option<Resource<LentDir>> {
        let path = self.homes.image_home.clone()?;
        // A home that cannot be opened is as good as none: the driver then finds no layer
        // there, and says so.
        self.lend(&path, false).ok()
    }

    fn read_only_homes(&mut self) -> Vec<Resource<LentDir>> {
        let paths = self.homes.read_only_homes.clone();
        paths
            .iter()
            .filter_map(|p| self.lend(p, true).ok())
            .collect()
    }
}

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
        self.writable_dir(&h, &path)?
            .confined
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
        self.writable_dir(&h, &path)?
            .confined
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
        self.writable_dir(&h, &path)?
            .confined
            .remove_all(&path)
            .map_err(error_to_wit)
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
            let fd = d.open_beneath(&path, OFlags::PATH, 0)?;
            let mut file =
                storage_driver::confined::open_regular_for_reading(&fd).map_err(error_to_wit)?;
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
        // The source gets a handle of its own: the destination may be the same directory.
        let mut source = self
            .dir(&h, &from)?
            .duplicate()
            .map_err(|e| io_error(e, "copy-tree"))?;
        let target = self.writable_dir(&dest, &to)?;
        storage_driver::tree_copy::copy_tree(
            source.confined_mut(),
            &from,
            target.confined_mut(),
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

#[cfg(test)]
mod read_only_tests {
    use super::*;
    use crate::bindings::driver::storage::plugin::homes::Host as _;
    use filesystem::HostDirectory as _;

    fn state(homes: DriverHomes) -> HostState {
        let mut state = HostState::new(PluginLimiter::new(&Default::default()));
        state.homes = homes;
        state
    }

    #[test]
    fn read_only_homes_refuse_every_change_and_allow_reads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ro, image) = (dir.path().join("ro"), dir.path().join("image"));
        for d in [&ro, &image] {
            std::fs::create_dir_all(d.join("dir/layer")).expect("mkdir");
        }
        std::fs::write(ro.join("dir/layer/f"), b"ro").expect("write");
        let mut st = state(DriverHomes {
            image_home: Some(image.clone()),
            read_only_homes: vec![ro.clone(), dir.path().join("missing")],
        });
        let homes = st.read_only_homes();
        assert_eq!(homes.len(), 1, "a home that cannot be opened is left out");
        let h = Resource::<LentDir>::new_own(homes[0].rep());
        let read = st
            .read_file(
                Resource::new_borrow(h.rep()),
                b"dir/layer/f".to_vec(),
                0,
                10,
            )
            .expect("reads are allowed");
        assert_eq!(read, b"ro");
        let refused = [
            st.mkdir(Resource::new_borrow(h.rep()), b"dir/new".to_vec(), 0o755),
            st.remove_all(Resource::new_borrow(h.rep()), b"dir/layer".to_vec()),
            st.lchown(Resource::new_borrow(h.rep()), b"dir/layer/f".to_vec(), 1, 1),
            st.create_file(
                Resource::new_borrow(h.rep()),
                b"dir/x".to_vec(),
                0o644,
                b"x".to_vec(),
            ),
        ];
        for r in refused {
            let e = r.expect_err("refused");
            assert_eq!(
                e.kind,
                types::FsErrorKind::PermissionDenied,
                "{}",
                e.message
            );
        }
        // A directory opened beneath a read-only one is read-only too.
        let sub = st
            .open_dir(Resource::new_borrow(h.rep()), b"dir".to_vec())
            .expect("open-dir");
        assert!(st
            .mkdir(Resource::new_borrow(sub.rep()), b"new".to_vec(), 0o755)
            .is_err());
        assert!(ro.join("dir/layer/f").exists() && !ro.join("dir/new").exists());
        // The image store's home is lent writable.
        let image_home = st.image_home().expect("image home");
        st.mkdir(
            Resource::new_borrow(image_home.rep()),
            b"dir/made".to_vec(),
            0o755,
        )
        .expect("writable");
        assert!(image.join("dir/made").is_dir());
    }
}
