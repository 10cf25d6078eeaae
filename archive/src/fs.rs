//! The filesystem interface the archive logic works through.
//!
//! Every method is shaped to become one WIT function: arguments and results are byte strings,
//! strings, integers and plain records, no Rust-only types. Paths are relative to the tree the
//! implementation was lent, `/`-separated, already cleaned by the archive logic (no `.`/`..`
//! components, no leading `/`; an empty path is the root). Only the *last* component is never
//! followed when it is a symlink; resolving the parents (through symlinks, confined to the tree)
//! is the implementation's job, and leaving the tree must fail with [`FsErrorKind::PathEscape`].
//!
//! File contents never pass through the archive logic: the implementation copies them between
//! its own stream types ([`FsWrite::Input`], [`FsRead::Output`]) and the files.

use std::io::{Read, Write};

pub use crate::tar_parser::sparse::{SparseMap, SparseRegion};

/// What kind of object a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FileKind {
    /// A regular file.
    Regular,
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A named pipe.
    Fifo,
    /// A socket.
    Socket,
}

/// A timestamp: seconds since the epoch and nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    /// Seconds since the epoch.
    pub secs: i64,
    /// Nanoseconds, below 1e9.
    pub nanos: u32,
}

/// What `lstat` tells about a path (the link itself for symlinks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStat {
    /// The kind of object.
    pub kind: FileKind,
    /// Permission bits including setuid, setgid and sticky (`0o7777` mask).
    pub mode: u32,
    /// Owner (host IDs).
    pub uid: u32,
    /// Group (host IDs).
    pub gid: u32,
    /// Size in bytes.
    pub size: u64,
    /// Disk usage in 512-byte blocks.
    pub blocks: u64,
    /// Modification time.
    pub mtime: Timestamp,
    /// Access time.
    pub atime: Timestamp,
    /// Device of the filesystem holding it.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Number of hard links.
    pub nlink: u64,
    /// Device major number (devices only).
    pub rdev_major: u32,
    /// Device minor number (devices only).
    pub rdev_minor: u32,
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The name (one component, never `.` or `..`).
    pub name: Vec<u8>,
    /// Its kind.
    pub kind: FileKind,
    /// Its inode number.
    pub ino: u64,
}

/// Why a filesystem operation failed, as a category the archive logic can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsErrorKind {
    /// The path (or a parent) does not exist.
    NotFound,
    /// The path already exists.
    AlreadyExists,
    /// The directory is not empty.
    NotEmpty,
    /// A parent is not a directory.
    NotADirectory,
    /// Resolving the path would leave the tree.
    PathEscape,
    /// The operation is not permitted.
    PermissionDenied,
    /// The filesystem does not support the operation (e.g. xattrs).
    Unsupported,
    /// The input stream ended before the announced length.
    UnexpectedEof,
    /// Anything else.
    Other,
}

/// A failed filesystem operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FsError {
    /// The category.
    pub kind: FsErrorKind,
    /// The OS error number, 0 if none.
    pub errno: i32,
    /// A human-readable description.
    pub message: String,
}

impl FsError {
    /// An error of `kind` with a message.
    pub fn new(kind: FsErrorKind, message: impl Into<String>) -> Self {
        FsError {
            kind,
            errno: 0,
            message: message.into(),
        }
    }
}

/// Result of a filesystem operation.
pub type FsResult<T> = Result<T, FsError>;

/// What an applied entry ends up with after it was created (Go's `createTarFile` tail): its
/// owner, extended attributes, mode and times, set in that order by
/// [`FsWrite::set_metadata`] and [`FsWrite::create_file_with_metadata`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EntryMetadata {
    /// Owner (host IDs).
    pub uid: u32,
    /// Group (host IDs).
    pub gid: u32,
    /// A failed chown is ignored (rootless without enough subordinate IDs).
    pub ignore_chown_errors: bool,
    /// Extended attributes to set; a filesystem without xattrs ([`FsErrorKind::Unsupported`])
    /// is not an error.
    pub xattrs: Vec<(String, Vec<u8>)>,
    /// Permission bits to set, or none to leave them (symlinks have none).
    pub mode: Option<u32>,
    /// Access time.
    pub atime: Timestamp,
    /// Modification time.
    pub mtime: Timestamp,
}

/// Prefixes an error's message with the operation that failed, for the composed methods.
fn during(op: &str) -> impl FnOnce(FsError) -> FsError + '_ {
    move |mut e| {
        e.message = format!("{op}: {}", e.message);
        e
    }
}

/// Read-only access to a tree.
pub trait FsRead {
    /// The stream file contents are copied to (a host resource in a component).
    type Output: Write + ?Sized;

    /// Status of `path` without following a final symlink; `None` if it does not exist.
    fn lstat(&mut self, path: &[u8]) -> FsResult<Option<FileStat>>;
    /// All entries of a directory (without `.` and `..`), in no particular order.
    fn read_dir(&mut self, path: &[u8]) -> FsResult<Vec<DirEntry>>;
    /// Target of a symlink.
    fn readlink(&mut self, path: &[u8]) -> FsResult<Vec<u8>>;
    /// Reads up to `buf.len()` bytes of a regular file at `offset`; 0 at its end.
    fn read_file(&mut self, path: &[u8], offset: u64, buf: &mut [u8]) -> FsResult<usize>;
    /// Copies exactly `len` bytes of a regular file to `out` (fails if the file is shorter).
    fn copy_file_to_output(
        &mut self,
        path: &[u8],
        len: u64,
        out: &mut Self::Output,
    ) -> FsResult<()>;
    /// Value of an extended attribute (no follow); `None` if absent.
    fn get_xattr(&mut self, path: &[u8], name: &str) -> FsResult<Option<Vec<u8>>>;
    /// Names of the extended attributes (no follow); empty where unsupported.
    fn list_xattrs(&mut self, path: &[u8]) -> FsResult<Vec<String>>;
}

/// Read-write access to a tree.
pub trait FsWrite: FsRead {
    /// The stream file contents are copied from (a host resource in a component).
    type Input: Read + ?Sized;

    /// Creates a directory (the parent must exist).
    fn mkdir(&mut self, path: &[u8], mode: u32) -> FsResult<()>;
    /// Creates a regular file (replacing nothing: it must not exist) and copies exactly `len`
    /// bytes from `input` into it.
    fn write_file_from_input(
        &mut self,
        path: &[u8],
        mode: u32,
        len: u64,
        input: &mut Self::Input,
    ) -> FsResult<()>;
    /// Creates a symlink at `path` pointing to `target` (stored as is).
    fn symlink(&mut self, target: &[u8], path: &[u8]) -> FsResult<()>;
    /// Creates a hard link at `path` to the existing `target` (both relative to the tree).
    fn hardlink(&mut self, target: &[u8], path: &[u8]) -> FsResult<()>;
    /// Creates a device node.
    fn mknod(
        &mut self,
        path: &[u8],
        kind: FileKind,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> FsResult<()>;
    /// Creates a named pipe.
    fn mkfifo(&mut self, path: &[u8], mode: u32) -> FsResult<()>;
    /// Changes owner and group (no follow).
    fn lchown(&mut self, path: &[u8], uid: u32, gid: u32) -> FsResult<()>;
    /// Changes permission bits (`0o7777`); never called on symlinks.
    fn chmod(&mut self, path: &[u8], mode: u32) -> FsResult<()>;
    /// Sets an extended attribute (no follow).
    fn set_xattr(&mut self, path: &[u8], name: &str, value: &[u8]) -> FsResult<()>;
    /// Removes an extended attribute (no follow); absent is not an error.
    fn remove_xattr(&mut self, path: &[u8], name: &str) -> FsResult<()>;
    /// Sets access and modification times (no follow).
    fn set_times(&mut self, path: &[u8], atime: Timestamp, mtime: Timestamp) -> FsResult<()>;
    /// Removes a file, symlink, node or empty directory.
    fn remove(&mut self, path: &[u8]) -> FsResult<()>;
    /// Removes a path and everything beneath it; missing is not an error.
    fn remove_all(&mut self, path: &[u8]) -> FsResult<()>;
    /// Sets owner, xattrs, mode (when given) and times of `path`, in that order, never
    /// following a final symlink. The default makes one call per item; an implementation
    /// where calls are dear (a component's host boundary) does it in one.
    fn set_metadata(&mut self, path: &[u8], meta: &EntryMetadata) -> FsResult<()> {
        if let Err(e) = self.lchown(path, meta.uid, meta.gid) {
            if !meta.ignore_chown_errors {
                return Err(during("lchown")(e));
            }
        }
        for (name, value) in &meta.xattrs {
            match self.set_xattr(path, name, value) {
                Err(e) if e.kind != FsErrorKind::Unsupported => {
                    return Err(during("setxattr")(e));
                }
                _ => {}
            }
        }
        if let Some(mode) = meta.mode {
            self.chmod(path, mode).map_err(during("chmod"))?;
        }
        self.set_times(path, meta.atime, meta.mtime)
            .map_err(during("set times"))
    }

    /// Creates the regular file `path` (which must not exist: [`FsErrorKind::AlreadyExists`]
    /// otherwise, with nothing read from `input`) with `create_mode`, fills it with the next
    /// `len` bytes of `input` and then sets `meta` as [`FsWrite::set_metadata`] does.
    fn create_file_with_metadata(
        &mut self,
        path: &[u8],
        create_mode: u32,
        len: u64,
        input: &mut Self::Input,
        meta: &EntryMetadata,
    ) -> FsResult<()> {
        self.write_file_from_input(path, create_mode, len, input)?;
        self.set_metadata(path, meta)
    }

    /// Creates the regular file `path` (which must not exist, as for
    /// [`FsWrite::create_file_with_metadata`]) with holes: each region of `map`, in order, is
    /// filled with the next bytes of `input` (as many as the regions' lengths add up to), the
    /// rest up to `map.real_size` stays a hole; then sets `meta` as
    /// [`FsWrite::set_metadata`] does.
    fn create_sparse_file_with_metadata(
        &mut self,
        path: &[u8],
        create_mode: u32,
        map: &SparseMap,
        input: &mut Self::Input,
        meta: &EntryMetadata,
    ) -> FsResult<()>;

    /// Renames `from` to `to`, replacing `to` if it is a file or an empty directory.
    fn rename(&mut self, from: &[u8], to: &[u8]) -> FsResult<()>;
}
