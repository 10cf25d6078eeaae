//! `ConfinedDir`: a directory handle that implements the archive crate's filesystem traits
//! with every path resolved beneath it, and the path-level wrappers drivers call
//! ([`apply_tar`], [`write_tar`], [`write_naive_diff`], [`write_overlay_diff`],
//! [`changes_naive`], [`changes_overlay`], [`diff_size_naive`], [`tree_size`]).
//!
//! Confinement: the parent of every path is opened with `openat2(RESOLVE_IN_ROOT |
//! RESOLVE_NO_MAGICLINKS)`, so symlinks in it (absolute or `..`) resolve as if the directory
//! were `/` (Go applies layers in a chroot: same semantics) and can never reach outside; the last
//! component is then used with `*at` calls that do not follow it (`AT_SYMLINK_NOFOLLOW`,
//! `O_NOFOLLOW`). Xattrs go through `/proc/self/fd/<parent>/<name>` with the `l*xattr` calls.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::marker::PhantomData;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use storage_archive::fs::{
    DirEntry, EntryMetadata, FileKind, FileStat, FsError, FsErrorKind, FsRead, FsResult, FsWrite,
    SparseMap, Timestamp,
};
use storage_archive::{
    ApplyOptions, ArchiveError, DiffOptions, IdMapping, IdRange, OverlayOptions,
};

use crate::idmap::IdMappings;
use crate::{Change, ChangeKind};

/// A directory lent to the archive logic; `I` and `O` are the stream types it copies file
/// contents from and to.
pub struct ConfinedDir<I: ?Sized, O: ?Sized> {
    root: OwnedFd,
    display: PathBuf,
    /// The last parent directory opened, reused while entries of one directory are applied
    /// (saves most openat2 calls); dropped by every operation that removes or renames, since
    /// those can change what a path resolves to.
    last_parent: Option<(Vec<u8>, Arc<OwnedFd>)>,
    /// The buffer file contents are copied through, made once (zeroing a new one for every
    /// file of a layer costs as much as a copy).
    copy_buf: Vec<u8>,
    _streams: PhantomData<fn(&mut I, &mut O)>,
}

/// Maps an OS error to the archive crate's error categories.
fn fs_error(errno: Errno, what: &str) -> FsError {
    let kind = match errno {
        Errno::NOENT => FsErrorKind::NotFound,
        Errno::EXIST => FsErrorKind::AlreadyExists,
        Errno::NOTEMPTY => FsErrorKind::NotEmpty,
        Errno::NOTDIR => FsErrorKind::NotADirectory,
        // openat2 reports an escape (RESOLVE_BENEATH) or a magic link with EXDEV / ELOOP.
        Errno::XDEV => FsErrorKind::PathEscape,
        Errno::PERM | Errno::ACCESS => FsErrorKind::PermissionDenied,
        Errno::OPNOTSUPP | Errno::NOSYS => FsErrorKind::Unsupported,
        _ => FsErrorKind::Other,
    };
    FsError {
        kind,
        errno: errno.raw_os_error(),
        message: format!("{what}: {}", io::Error::from(errno)),
    }
}

fn io_error(e: io::Error, what: &str) -> FsError {
    match e.raw_os_error() {
        Some(raw) => fs_error(Errno::from_raw_os_error(raw), what),
        None if e.kind() == io::ErrorKind::UnexpectedEof => {
            FsError::new(FsErrorKind::UnexpectedEof, format!("{what}: {e}"))
        }
        None => FsError::new(FsErrorKind::Other, format!("{what}: {e}")),
    }
}

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

fn os(path: &[u8]) -> &std::ffi::OsStr {
    std::ffi::OsStr::from_bytes(path)
}

/// Splits a cleaned relative path into (parent, last component); the root is (".", ".").
fn split(path: &[u8]) -> (&[u8], &[u8]) {
    if path.is_empty() {
        return (b".", b".");
    }
    match path.iter().rposition(|b| *b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (b".", path),
    }
}

fn kind_of(file_type: rustix::fs::FileType) -> FileKind {
    use rustix::fs::FileType as T;
    match file_type {
        T::Directory => FileKind::Directory,
        T::Symlink => FileKind::Symlink,
        T::CharacterDevice => FileKind::CharDevice,
        T::BlockDevice => FileKind::BlockDevice,
        T::Fifo => FileKind::Fifo,
        T::Socket => FileKind::Socket,
        _ => FileKind::Regular,
    }
}

/// Opens `path` beneath `root` with `flags` (and `mode`, when creating), never through a
/// final symlink nor a magic link, `root` being `/` to every symlink on the way
/// (`openat2` with `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`). The empty path is `root`.
pub fn open_beneath(
    root: &impl rustix::fd::AsFd,
    path: &[u8],
    flags: OFlags,
    mode: u32,
) -> FsResult<OwnedFd> {
    let path = if path.is_empty() { &b"."[..] } else { path };
    rustix::fs::openat2(
        root,
        os(path),
        flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_bits_truncate(mode),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(|e| fs_error(e, "open"))
}

impl<I: ?Sized, O: ?Sized> ConfinedDir<I, O> {
    /// Opens `path` (which must be a directory) as the root of a confined tree.
    pub fn open(path: &Path) -> io::Result<Self> {
        let root = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(ConfinedDir {
            root,
            display: path.to_path_buf(),
            last_parent: None,
            copy_buf: Vec::new(),
            _streams: PhantomData,
        })
    }

    /// The directory this handle was opened on (for messages).
    pub fn path(&self) -> &Path {
        &self.display
    }

    /// Opens the parent directory of `path` beneath the root and returns it with the last
    /// component.
    fn parent<'p>(&mut self, path: &'p [u8]) -> FsResult<(Arc<OwnedFd>, &'p [u8])> {
        let (dir, name) = split(path);
        // The parent is resolved in the root, but the last component is used as is by the *at
        // calls: a `..` (or `.`, or nothing) there would name something else than the entry,
        // possibly above the root. Callers are supposed to clean paths; a guest might not.
        let bad_name = name.is_empty() || name == b".." || (name == b"." && !path.is_empty());
        if bad_name || path.contains(&0) {
            return Err(FsError::new(
                FsErrorKind::PathEscape,
                format!(
                    "path {:?} is not a clean relative path",
                    String::from_utf8_lossy(path)
                ),
            ));
        }
        if let Some((cached, fd)) = &self.last_parent {
            if cached.as_slice() == dir {
                return Ok((Arc::clone(fd), name));
            }
        }
        let fd = Arc::new(
            rustix::fs::openat2(
                &self.root,
                os(dir),
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
            )
            .map_err(|e| fs_error(e, "resolve parent"))?,
        );
        self.last_parent = Some((dir.to_vec(), Arc::clone(&fd)));
        Ok((fd, name))
    }

    /// Forgets the cached parent: the tree's shape is about to change.
    fn forget_parent(&mut self) {
        self.last_parent = None;
    }

    /// `/proc/self/fd/<parent>/<name>` for the l*xattr calls (the parent stays open meanwhile).
    fn proc_path(parent: &Arc<OwnedFd>, name: &[u8]) -> PathBuf {
        use std::os::fd::AsRawFd;
        let mut p = PathBuf::from(format!("/proc/self/fd/{}", parent.as_raw_fd()));
        p.push(os(name));
        p
    }

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

    /// Opens `path` beneath the root with `flags` (and `mode`, when creating), never through
    /// a final symlink nor a magic link, the root being `/` to every symlink on the way: the
    /// one confined open of the toolkit.
    pub fn open_beneath(&self, path: &[u8], flags: OFlags, mode: u32) -> FsResult<OwnedFd> {
        open_beneath(&self.root, path, flags, mode)
    }

    /// Opens an existing regular file beneath the root for reading, never following a final
    /// symlink (see [`open_regular_for_reading`]).
    fn open_file(&mut self, path: &[u8]) -> FsResult<File> {
        let (dir, name) = self.parent(path)?;
        let fd = rustix::fs::openat(
            &dir,
            os(name),
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| fs_error(e, "open"))?;
        open_regular_for_reading(&fd)
    }
}

/// Opens for reading the file an `O_PATH` descriptor names, if it is a regular file; anything
/// else is refused before it is opened. Opening is not harmless for what a tree may hold
/// (a component can make device nodes and fifos): opening a device calls its driver (a disk
/// is then read raw, a watchdog starts counting), and opening a fifo waits for a writer, which
/// would hold a component's host call past its deadline. The file is reopened through
/// `/proc/self/fd`, so what was checked is what is opened.
pub fn open_regular_for_reading(fd: &OwnedFd) -> FsResult<File> {
    use std::os::fd::AsRawFd;
    let st = rustix::fs::fstat(fd).map_err(|e| fs_error(e, "fstat"))?;
    let file_type = rustix::fs::FileType::from_raw_mode(st.st_mode);
    if file_type != rustix::fs::FileType::RegularFile {
        return Err(FsError::new(
            FsErrorKind::Other,
            format!(
                "not a regular file ({:?}): not opened for reading",
                kind_of(file_type)
            ),
        ));
    }
    let reopened = rustix::fs::open(
        format!("/proc/self/fd/{}", fd.as_raw_fd()).as_str(),
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| fs_error(e, "open"))?;
    Ok(File::from(reopened))
}

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
        let file = self.open_file(path)?;
        file.read_at(buf, offset).map_err(|e| io_error(e, "read"))
    }

    fn copy_file_to_output(&mut self, path: &[u8], len: u64, out: &mut O) -> FsResult<()> {
        let file = self.open_file(path)?;
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
        if let Err(e) = rustix::fs::chownat(
            &dir,
            os(name),
            owner_uid(meta.uid),
            owner_gid(meta.gid),
            AtFlags::SYMLINK_NOFOLLOW,
        ) {
            if !meta.ignore_chown_errors {
                return Err(fs_error(e, "lchown"));
            }
        }
        if !meta.xattrs.is_empty() {
            let proc = Self::proc_path(&dir, name);
            for (key, value) in &meta.xattrs {
                match rustix::fs::lsetxattr(&proc, key, value, rustix::fs::XattrFlags::empty()) {
                    Ok(()) | Err(Errno::OPNOTSUPP) => {}
                    Err(e) => return Err(fs_error(e, "setxattr")),
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
        file_metadata(&file, meta)
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
        file_metadata(&file, meta)
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
        rustix::fs::mknodat(
            &dir,
            os(name),
            file_type,
            Mode::from_bits_truncate(mode),
            rustix::fs::makedev(major, minor),
        )
        .map_err(|e| fs_error(e, "mknod"))
    }

    fn mkfifo(&mut self, path: &[u8], mode: u32) -> FsResult<()> {
        self.mknod(path, FileKind::Fifo, mode, 0, 0)
    }

    fn lchown(&mut self, path: &[u8], uid: u32, gid: u32) -> FsResult<()> {
        let (dir, name) = self.parent(path)?;
        rustix::fs::chownat(
            &dir,
            os(name),
            owner_uid(uid),
            owner_gid(gid),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| fs_error(e, "lchown"))
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
        rustix::fs::lsetxattr(&proc, name, value, rustix::fs::XattrFlags::empty())
            .map_err(|e| fs_error(e, "setxattr"))
    }

    fn remove_xattr(&mut self, path: &[u8], name: &str) -> FsResult<()> {
        let (dir, last) = self.parent(path)?;
        let proc = Self::proc_path(&dir, last);
        match rustix::fs::lremovexattr(&proc, name) {
            Ok(()) | Err(Errno::NODATA) => Ok(()),
            Err(e) => Err(fs_error(e, "removexattr")),
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
fn owner_uid(uid: u32) -> Option<rustix::fs::Uid> {
    (uid != u32::MAX).then(|| rustix::fs::Uid::from_raw(uid))
}

/// [`owner_uid`] for groups.
fn owner_gid(gid: u32) -> Option<rustix::fs::Gid> {
    (gid != u32::MAX).then(|| rustix::fs::Gid::from_raw(gid))
}

/// Owner, xattrs, mode and times of a file just created, set on its descriptor.
fn file_metadata(file: &File, meta: &EntryMetadata) -> FsResult<()> {
    if let Err(e) = rustix::fs::fchown(file, owner_uid(meta.uid), owner_gid(meta.gid)) {
        if !meta.ignore_chown_errors {
            return Err(fs_error(e, "lchown"));
        }
    }
    for (key, value) in &meta.xattrs {
        match rustix::fs::fsetxattr(file, key, value, rustix::fs::XattrFlags::empty()) {
            Ok(()) | Err(Errno::OPNOTSUPP) => {}
            Err(e) => return Err(fs_error(e, "setxattr")),
        }
    }
    if let Some(mode) = meta.mode {
        rustix::fs::fchmod(file, Mode::from_bits_truncate(mode))
            .map_err(|e| fs_error(e, "chmod"))?;
    }
    rustix::fs::futimens(file, &timestamps(meta.atime, meta.mtime))
        .map_err(|e| fs_error(e, "utimensat"))
}

/// Converts the host's ID mappings into the archive crate's.
pub fn id_mapping(mappings: &IdMappings) -> IdMapping {
    let ranges = |maps: &[crate::idmap::IdMap]| {
        maps.iter()
            .map(|m| IdRange {
                container_id: m.container_id,
                host_id: m.host_id,
                size: m.size,
            })
            .collect()
    };
    IdMapping {
        uids: ranges(&mappings.uids),
        gids: ranges(&mappings.gids),
    }
}

/// Apply options from a driver's `ApplyDiffOpts` and the whiteout format it wants
/// (`rootless_overlay`: mark opaque dirs with `user.overlay.opaque`).
pub fn apply_options(
    opts: &crate::ApplyDiffOpts,
    whiteout_format: storage_archive::WhiteoutFormat,
    rootless_overlay: bool,
) -> ApplyOptions {
    ApplyOptions {
        whiteout_format,
        rootless_overlay,
        id_mapping: id_mapping(&opts.id_mappings),
        force_mask: opts.force_mask,
        ignore_chown_errors: opts.ignore_chown_errors,
        skip_device_nodes: crate::idmap::running_in_user_namespace(),
    }
}

/// Diff options for `mappings` the way Go fills tar headers on this host: whiteouts stamped
/// with the current time, owner and group names looked up in `/etc/passwd` and `/etc/group`.
pub fn diff_options(mappings: &IdMappings) -> DiffOptions {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    DiffOptions {
        id_mapping: id_mapping(mappings),
        now: Timestamp {
            secs: i64::try_from(now.as_secs()).unwrap_or(i64::MAX),
            nanos: now.subsec_nanos(),
        },
        user_names: id_names(Path::new("/etc/passwd")),
        group_names: id_names(Path::new("/etc/group")),
    }
}

/// `name:x:id:...` lines of a passwd/group file as id → name; empty if unreadable.
fn id_names(path: &Path) -> std::collections::BTreeMap<u32, Vec<u8>> {
    let Ok(text) = std::fs::read(path) else {
        return Default::default();
    };
    let mut names = std::collections::BTreeMap::new();
    for line in text.split(|b| *b == b'\n') {
        let mut fields = line.split(|b| *b == b':');
        let (Some(name), Some(_), Some(id)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        let id = std::str::from_utf8(id)
            .ok()
            .and_then(|s| s.parse::<u32>().ok());
        if let (Some(id), false) = (id, name.is_empty()) {
            // The first entry for an ID wins, as getpwuid returns it.
            names.entry(id).or_insert_with(|| name.to_vec());
        }
    }
    names
}

type ReadDir<'a> = ConfinedDir<dyn Read + 'a, dyn Write + 'a>;

fn open_dir<'a>(path: &Path) -> Result<ReadDir<'a>, ArchiveError> {
    ConfinedDir::open(path).map_err(|e| ArchiveError::Fs {
        op: "open",
        path: path.as_os_str().as_bytes().to_vec(),
        source: io_error(e, "open"),
    })
}

/// The archive crate's changes as the driver interface's (paths absolute).
pub fn to_host_changes(changes: Vec<storage_archive::Change>) -> Vec<Change> {
    changes
        .into_iter()
        .map(|c| Change {
            path: [&b"/"[..], &c.path].concat(),
            kind: match c.kind {
                storage_archive::ChangeKind::Add => ChangeKind::Add,
                storage_archive::ChangeKind::Modify => ChangeKind::Modify,
                storage_archive::ChangeKind::Delete => ChangeKind::Delete,
            },
        })
        .collect()
}

/// Applies an uncompressed layer tar to the directory `dir`; returns the sum of entry sizes.
pub fn apply_tar(
    dir: &Path,
    input: &mut dyn Read,
    opts: &ApplyOptions,
) -> Result<u64, ArchiveError> {
    let mut fs = open_dir(dir)?;
    storage_archive::apply_layer(&mut fs, input, opts)
}

/// Writes a tar of the whole tree at `dir` (a layer without parent).
pub fn write_tar(dir: &Path, out: &mut dyn Write, opts: &DiffOptions) -> Result<(), ArchiveError> {
    let mut fs = open_dir(dir)?;
    storage_archive::write_tree_tar(&mut fs, out, opts)
}

/// Writes the naive diff of `layer` against `parent` (whole tree when `None`).
pub fn write_naive_diff(
    layer: &Path,
    parent: Option<ParentTree<'_>>,
    out: &mut dyn Write,
    opts: &DiffOptions,
) -> Result<(), ArchiveError> {
    let mut layer_fs = open_dir(layer)?;
    let mut parent_fs = parent.map(|p| open_dir(p.path)).transpose()?;
    let parent_mapping = id_mapping(parent.map_or(&IdMappings::default(), |p| p.mappings));
    storage_archive::write_diff_naive(
        &mut layer_fs,
        parent_fs.as_mut(),
        &parent_mapping,
        out,
        opts,
    )
}

/// The tree a naive comparison is taken against, and the ID mappings its layer is stored
/// with (each side's owners are read with its own).
#[derive(Debug, Clone, Copy)]
pub struct ParentTree<'a> {
    /// Where the parent's tree is.
    pub path: &'a Path,
    /// The parent layer's ID mappings.
    pub mappings: &'a IdMappings,
}

/// Writes the overlay-native diff of the upper dir `upper`; `lowers` topmost first.
pub fn write_overlay_diff(
    upper: &Path,
    lowers: &[PathBuf],
    out: &mut dyn Write,
    opts: &DiffOptions,
    overlay: &OverlayOptions,
) -> Result<(), ArchiveError> {
    let mut upper_fs = open_dir(upper)?;
    let mut lower_fs = lowers
        .iter()
        .map(|p| open_dir(p))
        .collect::<Result<Vec<_>, _>>()?;
    storage_archive::write_overlay_diff(&mut upper_fs, &mut lower_fs, out, opts, overlay)
}

/// Naive changes of `layer` against `parent` (every path is an Add when `None`), in walk order.
pub fn changes_naive(
    layer: &Path,
    mapping: &IdMappings,
    parent: Option<ParentTree<'_>>,
) -> Result<Vec<Change>, ArchiveError> {
    let mut layer_fs = open_dir(layer)?;
    let mut parent_fs = parent.map(|p| open_dir(p.path)).transpose()?;
    let parent_mapping = id_mapping(parent.map_or(&IdMappings::default(), |p| p.mappings));
    let changes = storage_archive::changes_naive(
        &mut layer_fs,
        parent_fs.as_mut(),
        &id_mapping(mapping),
        &parent_mapping,
    )?;
    Ok(to_host_changes(changes))
}

/// Changes recorded in an overlay upper dir; `lowers` topmost first.
pub fn changes_overlay(
    upper: &Path,
    lowers: &[PathBuf],
    overlay: &OverlayOptions,
) -> Result<Vec<Change>, ArchiveError> {
    let mut upper_fs = open_dir(upper)?;
    let mut lower_fs = lowers
        .iter()
        .map(|p| open_dir(p))
        .collect::<Result<Vec<_>, _>>()?;
    let changes = storage_archive::changes_overlay(&mut upper_fs, &mut lower_fs, overlay)?;
    Ok(to_host_changes(changes))
}

/// Naive diff size of `layer` against `parent`.
pub fn diff_size_naive(
    layer: &Path,
    mapping: &IdMappings,
    parent: Option<ParentTree<'_>>,
) -> Result<u64, ArchiveError> {
    let mut layer_fs = open_dir(layer)?;
    let mut parent_fs = parent.map(|p| open_dir(p.path)).transpose()?;
    let parent_mapping = id_mapping(parent.map_or(&IdMappings::default(), |p| p.mappings));
    storage_archive::diff_size_naive(
        &mut layer_fs,
        parent_fs.as_mut(),
        &id_mapping(mapping),
        &parent_mapping,
    )
}

/// Size of the tree at `dir` (overlay diff size: st_size of non-dirs, each inode once).
pub fn tree_size(dir: &Path) -> Result<u64, ArchiveError> {
    let mut fs = open_dir(dir)?;
    storage_archive::tree_size(&mut fs)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    use storage_archive::tar_stream::{EntryKind, TarStreamReader};
    use storage_archive::WhiteoutFormat;

    /// A layer dir and a sibling "outside" dir in one temp dir (removed on drop).
    struct Sandbox {
        _tmp: tempfile::TempDir,
        layer: PathBuf,
        outside: PathBuf,
    }

    fn sandbox() -> Sandbox {
        let tmp = tempfile::tempdir().unwrap();
        let layer = tmp.path().join("layer");
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&layer).unwrap();
        std::fs::create_dir(&outside).unwrap();
        Sandbox {
            _tmp: tmp,
            layer,
            outside,
        }
    }

    fn header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(mode);
        h.set_mtime(1_600_000_000);
        h
    }

    fn add_file(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
        let mut h = header(tar::EntryType::Regular, data.len() as u64, 0o644);
        b.append_data(&mut h, name, data).unwrap();
    }

    fn add_dir(b: &mut tar::Builder<Vec<u8>>, name: &str) {
        let mut h = header(tar::EntryType::Directory, 0, 0o755);
        b.append_data(&mut h, name, io::empty()).unwrap();
    }

    fn add_link(b: &mut tar::Builder<Vec<u8>>, kind: tar::EntryType, name: &str, target: &str) {
        let mut h = header(kind, 0, 0o777);
        h.set_link_name_literal(target).unwrap();
        // Raw name bytes: the builder would refuse hostile names.
        let bytes = h.as_old_mut();
        bytes.name = [0; 100];
        bytes.name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        b.append(&h, io::empty()).unwrap();
    }

    /// A regular-file entry with a raw (unchecked) name.
    fn add_raw_file(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
        let mut h = header(tar::EntryType::Regular, data.len() as u64, 0o644);
        let old = h.as_old_mut();
        old.name = [0; 100];
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        b.append(&h, data).unwrap();
    }

    fn apply(dir: &Path, tar: &[u8], format: WhiteoutFormat) -> Result<u64, ArchiveError> {
        let opts = ApplyOptions {
            whiteout_format: format,
            ..Default::default()
        };
        apply_tar(dir, &mut &tar[..], &opts)
    }

    fn outside_is_empty(s: &Sandbox) -> bool {
        std::fs::read_dir(&s.outside).unwrap().next().is_none()
            && std::fs::read_dir(s.layer.parent().unwrap())
                .unwrap()
                .count()
                == 2
    }

    fn assert_one_line(err: &ArchiveError) {
        let msg = err.to_string();
        assert!(!msg.is_empty() && !msg.contains('\n'), "{msg:?}");
    }

    /// Found by fuzz/host_calls: owner 4294967295 (-1) from an archive or a guest tripped
    /// rustix's debug assertion. It means "unchanged", as for Go's `os.Lchown`.
    #[test]
    fn owner_4294967295_leaves_the_owner_unchanged() {
        let s = sandbox();
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind) in [
            ("d", tar::EntryType::Directory),
            ("f", tar::EntryType::Regular),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_size(0);
            h.set_mode(0o755);
            h.set_uid(u64::from(u32::MAX));
            h.set_gid(u64::from(u32::MAX));
            b.append_data(&mut h, name, io::empty()).unwrap();
        }
        apply(&s.layer, &b.into_inner().unwrap(), WhiteoutFormat::Aufs).unwrap();
        let me = (
            rustix::process::geteuid().as_raw(),
            rustix::process::getegid().as_raw(),
        );
        for name in ["d", "f"] {
            let meta = std::fs::symlink_metadata(s.layer.join(name)).unwrap();
            assert_eq!((meta.uid(), meta.gid()), me, "{name}");
        }
        let mut dir: ConfinedDir<dyn Read, dyn Write> = ConfinedDir::open(&s.layer).unwrap();
        dir.lchown(b"f", u32::MAX, u32::MAX).unwrap();
        let meta = std::fs::symlink_metadata(s.layer.join("f")).unwrap();
        assert_eq!((meta.uid(), meta.gid()), me);
    }

    /// Found by fuzz/host_calls: a component made a fifo and read it, and the host call
    /// blocked in open(2) for good (past the component's deadline); a device node would have
    /// been opened and read raw. Reads take regular files only.
    #[test]
    fn reads_refuse_fifos_and_devices() {
        let s = sandbox();
        let mut dir: ConfinedDir<dyn Read, dyn Write> = ConfinedDir::open(&s.layer).unwrap();
        dir.mkfifo(b"fifo", 0o644).unwrap();
        dir.mknod(b"null", FileKind::CharDevice, 0o644, 1, 3)
            .unwrap();
        std::fs::write(s.layer.join("file"), b"content").unwrap();
        // A writer with data waiting: were the fifo opened, the read would return it rather
        // than block, and the test would fail instead of hanging.
        let mut writer = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(s.layer.join("fifo"))
            .unwrap();
        writer.write_all(b"fifo data").unwrap();
        let mut buf = [0u8; 64];
        for name in [&b"fifo"[..], b"null"] {
            let err = dir.read_file(name, 0, &mut buf).unwrap_err();
            assert!(err.message.contains("not a regular file"), "{err}");
            let mut out: Vec<u8> = Vec::new();
            let err = dir.copy_file_to_output(name, 1, &mut out).unwrap_err();
            assert!(err.message.contains("not a regular file"), "{err}");
        }
        assert_eq!(dir.read_file(b"file", 0, &mut buf).unwrap(), 7);
        assert_eq!(&buf[..7], b"content");
        let mut out: Vec<u8> = Vec::new();
        dir.copy_file_to_output(b"file", 7, &mut out).unwrap();
        assert_eq!(out, b"content");
    }

    #[test]
    fn hostile_dotdot_name() {
        let s = sandbox();
        let mut b = tar::Builder::new(Vec::new());
        add_raw_file(&mut b, "../outside/pwned", b"x");
        let err = apply(&s.layer, &b.into_inner().unwrap(), WhiteoutFormat::Aufs).unwrap_err();
        assert!(matches!(err, ArchiveError::PathEscape(_)), "{err}");
        assert_one_line(&err);
        assert!(outside_is_empty(&s));
    }

    #[test]
    fn hostile_absolute_name() {
        let s = sandbox();
        let mut b = tar::Builder::new(Vec::new());
        let target = format!("{}/pwned", s.outside.display());
        add_raw_file(&mut b, &target, b"x");
        let err = apply(&s.layer, &b.into_inner().unwrap(), WhiteoutFormat::Aufs).unwrap_err();
        assert!(matches!(err, ArchiveError::PathEscape(_)), "{err}");
        assert_one_line(&err);
        assert!(outside_is_empty(&s));
    }

    #[test]
    fn hostile_symlink_then_write_through() {
        let s = sandbox();
        // An absolute symlink to the outside dir, then a file beneath it: resolved in the
        // layer's root, the write cannot reach the real outside dir.
        let mut b = tar::Builder::new(Vec::new());
        add_link(
            &mut b,
            tar::EntryType::Symlink,
            "evil",
            &s.outside.display().to_string(),
        );
        add_raw_file(&mut b, "evil/pwned", b"x");
        let result = apply(&s.layer, &b.into_inner().unwrap(), WhiteoutFormat::Aufs);
        if let Err(err) = &result {
            assert_one_line(err);
        }
        assert!(outside_is_empty(&s));
        // A relative symlink climbing out is refused outright, as Go does.
        let s = sandbox();
        let mut b = tar::Builder::new(Vec::new());
        add_link(&mut b, tar::EntryType::Symlink, "up", "../outside");
        add_raw_file(&mut b, "up/pwned", b"x");
        let err = apply(&s.layer, &b.into_inner().unwrap(), WhiteoutFormat::Aufs).unwrap_err();
        assert!(matches!(err, ArchiveError::PathEscape(_)), "{err}");
        assert!(outside_is_empty(&s));
    }

    #[test]
    fn hostile_symlink_dir_created_beforehand() {
        // A symlink already in the tree (e.g. from a parent layer) pointing outside.
        let s = sandbox();
        std::os::unix::fs::symlink(&s.outside, s.layer.join("evil")).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        add_raw_file(&mut b, "evil/pwned", b"x");
        add_raw_file(&mut b, "evil/sub/pwned", b"x");
        let result = apply(&s.layer, &b.into_inner().unwrap(), WhiteoutFormat::Aufs);
        if let Err(err) = &result {
            assert_one_line(err);
        }
        assert!(std::fs::read_dir(&s.outside).unwrap().next().is_none());
    }

    #[test]
    fn hostile_hardlink_out() {
        let s = sandbox();
        std::fs::write(s.outside.join("secret"), b"s").unwrap();
        let mut b = tar::Builder::new(Vec::new());
        add_link(&mut b, tar::EntryType::Link, "passwd", "../../etc/passwd");
        let err = apply(&s.layer, &b.into_inner().unwrap(), WhiteoutFormat::Aufs).unwrap_err();
        assert!(matches!(err, ArchiveError::PathEscape(_)), "{err}");
        assert_one_line(&err);
        assert!(!s.layer.join("passwd").exists());
        // Through a symlink to the outside: resolved in the root, so it finds nothing.
        let s = sandbox();
        std::fs::write(s.outside.join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(&s.outside, s.layer.join("out")).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        add_link(&mut b, tar::EntryType::Link, "stolen", "out/secret");
        let err = apply(&s.layer, &b.into_inner().unwrap(), WhiteoutFormat::Aufs).unwrap_err();
        assert_one_line(&err);
        assert!(!s.layer.join("stolen").exists());
    }

    #[test]
    fn device_nodes_are_made_as_archived() {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        // Real root filesystems carry /dev/null and friends; upstream makes them as root.
        for (kind, major, minor) in [(tar::EntryType::Char, 1, 3), (tar::EntryType::Block, 7, 0)] {
            let s = sandbox();
            let mut b = tar::Builder::new(Vec::new());
            let mut h = header(kind, 0, 0o640);
            h.set_device_major(major).unwrap();
            h.set_device_minor(minor).unwrap();
            h.set_uid(5);
            h.set_gid(6);
            b.append_data(&mut h, "dev", io::empty()).unwrap();
            apply(&s.layer, &b.into_inner().unwrap(), WhiteoutFormat::Overlay).unwrap();
            let meta = std::fs::symlink_metadata(s.layer.join("dev")).unwrap();
            let is_kind = if kind == tar::EntryType::Char {
                meta.file_type().is_char_device()
            } else {
                meta.file_type().is_block_device()
            };
            assert!(is_kind, "{kind:?}");
            assert_eq!(meta.rdev(), rustix::fs::makedev(major, minor));
            assert_eq!(
                (meta.mode() & 0o7777, meta.uid(), meta.gid()),
                (0o640, 5, 6)
            );
        }
    }

    #[test]
    fn hostile_overlay_xattr() {
        for name in ["trusted.overlay.opaque", "user.overlay.opaque"] {
            let s = sandbox();
            let mut b = tar::Builder::new(Vec::new());
            let key = format!("SCHILY.xattr.{name}");
            b.append_pax_extensions([(key.as_str(), &b"y"[..])])
                .unwrap();
            add_dir(&mut b, "d/");
            let err =
                apply(&s.layer, &b.into_inner().unwrap(), WhiteoutFormat::Overlay).unwrap_err();
            assert!(matches!(err, ArchiveError::Refused { .. }), "{err}");
            assert_one_line(&err);
            assert!(!s.layer.join("d").exists());
        }
    }

    #[test]
    fn hostile_truncated_and_junk() {
        let s = sandbox();
        let mut b = tar::Builder::new(Vec::new());
        add_file(&mut b, "big", &[7u8; 5000]);
        let data = b.into_inner().unwrap();
        let err = apply(&s.layer, &data[..512 + 3000], WhiteoutFormat::Aufs).unwrap_err();
        assert!(matches!(err, ArchiveError::UnexpectedEof), "{err}");
        assert_one_line(&err);

        let s = sandbox();
        let err = apply(&s.layer, &[0x5a; 4096], WhiteoutFormat::Aufs).unwrap_err();
        assert!(matches!(err, ArchiveError::InvalidHeader(_)), "{err}");
        assert_one_line(&err);
        assert!(std::fs::read_dir(&s.layer).unwrap().next().is_none());
    }

    /// A tar exercising most entry kinds.
    fn rich_tar() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        add_dir(&mut b, "etc/");
        add_file(&mut b, "etc/hosts", b"127.0.0.1 localhost\n");
        b.append_pax_extensions([("SCHILY.xattr.user.note", &b"hi"[..])])
            .unwrap();
        add_file(&mut b, "etc/with-xattr", b"x");
        add_link(&mut b, tar::EntryType::Symlink, "etc/link", "hosts");
        add_link(&mut b, tar::EntryType::Link, "etc/hard", "etc/hosts");
        let mut h = header(tar::EntryType::Fifo, 0, 0o600);
        b.append_data(&mut h, "fifo", io::empty()).unwrap();
        add_file(&mut b, "nested/deep/file", b"auto parents");
        b.into_inner().unwrap()
    }

    /// (path, kind, link name, xattrs) of an entry read back.
    type Listed = (String, EntryKind, Vec<u8>, Vec<(String, Vec<u8>)>);

    fn entries(tar: &[u8]) -> Vec<Listed> {
        let mut r = TarStreamReader::new(tar);
        let mut out = Vec::new();
        while let Some(e) = r.next_entry().unwrap() {
            out.push((
                String::from_utf8(e.path).unwrap(),
                e.kind,
                e.link_name,
                e.xattrs,
            ));
        }
        out
    }

    #[test]
    fn apply_then_tree_tar_round_trip() {
        let s = sandbox();
        let data = rich_tar();
        let size = apply(&s.layer, &data, WhiteoutFormat::Aufs).unwrap();
        assert_eq!(size, 20 + 1 + 12);
        let hosts = s.layer.join("etc/hosts");
        assert_eq!(std::fs::read(&hosts).unwrap(), b"127.0.0.1 localhost\n");
        let meta = std::fs::metadata(&hosts).unwrap();
        assert_eq!(meta.mtime(), 1_600_000_000);
        assert_eq!(meta.nlink(), 2);
        assert_eq!(
            std::fs::metadata(s.layer.join("etc")).unwrap().mtime(),
            1_600_000_000,
            "dir mtime restored after its children"
        );
        assert!(std::fs::symlink_metadata(s.layer.join("fifo"))
            .unwrap()
            .file_type()
            .is_fifo());

        let mut out = Vec::new();
        write_tar(&s.layer, &mut out, &DiffOptions::default()).unwrap();
        let got = entries(&out);
        let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "etc/",
                "etc/hard",
                "etc/hosts",
                "etc/link",
                "etc/with-xattr",
                "fifo",
                "nested/",
                "nested/deep/",
                "nested/deep/file"
            ]
        );
        // The first name of the inode carries the data, the second is a hard link to it.
        assert_eq!(got[1].1, EntryKind::Regular);
        assert_eq!(
            (got[2].1, got[2].2.as_slice()),
            (EntryKind::Link, &b"etc/hard"[..])
        );
        assert_eq!(
            (got[3].1, got[3].2.as_slice()),
            (EntryKind::Symlink, &b"hosts"[..])
        );
        assert_eq!(got[4].3, vec![("user.note".to_string(), b"hi".to_vec())]);

        // And the tar applies again to an identical tree.
        let again = sandbox();
        apply(&again.layer, &out, WhiteoutFormat::Aufs).unwrap();
        let mut out2 = Vec::new();
        write_tar(&again.layer, &mut out2, &DiffOptions::default()).unwrap();
        assert_eq!(out, out2);
    }

    #[test]
    fn aufs_whiteouts_and_naive_diff() {
        let lower = sandbox();
        let mut b = tar::Builder::new(Vec::new());
        add_file(&mut b, "keep", b"k");
        add_file(&mut b, "del", b"d");
        add_file(&mut b, "odir/old", b"o");
        apply(&lower.layer, &b.into_inner().unwrap(), WhiteoutFormat::Aufs).unwrap();

        // The child layer starts as a copy of the parent (as vfs does).
        let upper = sandbox();
        let mut copy = Vec::new();
        write_tar(&lower.layer, &mut copy, &DiffOptions::default()).unwrap();
        apply(&upper.layer, &copy, WhiteoutFormat::Aufs).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        add_file(&mut b, ".wh.del", b"");
        add_dir(&mut b, "odir/");
        add_file(&mut b, "odir/new", b"n");
        add_file(&mut b, "odir/.wh..wh..opq", b"");
        add_file(&mut b, ".wh..wh.plnk", b"");
        apply(&upper.layer, &b.into_inner().unwrap(), WhiteoutFormat::Aufs).unwrap();
        assert!(!upper.layer.join("del").exists());
        assert!(!upper.layer.join("odir/old").exists());
        assert!(upper.layer.join("odir/new").exists());
        assert!(upper.layer.join("keep").exists());
        assert!(!upper.layer.join(".wh..wh.plnk").exists());

        let none = IdMappings::default();
        let lower_tree = ParentTree {
            path: &lower.layer,
            mappings: &none,
        };
        let changes = changes_naive(&upper.layer, &none, Some(lower_tree)).unwrap();
        let mut listed: Vec<(String, ChangeKind)> = changes
            .into_iter()
            .map(|c| (String::from_utf8(c.path).unwrap(), c.kind))
            .collect();
        listed.sort();
        assert_eq!(
            listed,
            vec![
                ("/del".to_string(), ChangeKind::Delete),
                ("/odir".to_string(), ChangeKind::Modify),
                ("/odir/new".to_string(), ChangeKind::Add),
                ("/odir/old".to_string(), ChangeKind::Delete),
            ]
        );
        let size = diff_size_naive(&upper.layer, &none, Some(lower_tree)).unwrap();
        assert_eq!(size, 1);

        let mut out = Vec::new();
        write_naive_diff(
            &upper.layer,
            Some(lower_tree),
            &mut out,
            &DiffOptions::default(),
        )
        .unwrap();
        let names: Vec<String> = entries(&out).into_iter().map(|e| e.0).collect();
        // Sorted by changed path (Go's changesByPath), so `old`'s whiteout follows `new`.
        assert_eq!(names, vec![".wh.del", "odir/", "odir/new", "odir/.wh.old"]);

        // Applying the diff on a copy of the parent gives the child's tree.
        let replay = sandbox();
        apply(&replay.layer, &copy, WhiteoutFormat::Aufs).unwrap();
        apply(&replay.layer, &out, WhiteoutFormat::Aufs).unwrap();
        let upper_tree = ParentTree {
            path: &upper.layer,
            mappings: &none,
        };
        let replayed = changes_naive(&replay.layer, &none, Some(upper_tree)).unwrap();
        assert_eq!(replayed, vec![]);
    }

    #[test]
    fn overlay_whiteouts_round_trip() {
        let lower = sandbox();
        let mut b = tar::Builder::new(Vec::new());
        add_file(&mut b, "del", b"d");
        add_file(&mut b, "odir/old", b"o");
        add_dir(&mut b, "plain/");
        apply(&lower.layer, &b.into_inner().unwrap(), WhiteoutFormat::Aufs).unwrap();

        let upper = sandbox();
        let mut b = tar::Builder::new(Vec::new());
        add_file(&mut b, ".wh.del", b"");
        add_dir(&mut b, "odir/");
        add_file(&mut b, "odir/.wh..wh..opq", b"");
        add_file(&mut b, "odir/n", b"new");
        add_dir(&mut b, "fresh/");
        add_file(&mut b, "fresh/.wh..wh..opq", b"");
        apply(
            &upper.layer,
            &b.into_inner().unwrap(),
            WhiteoutFormat::Overlay,
        )
        .unwrap();

        let wh = std::fs::symlink_metadata(upper.layer.join("del")).unwrap();
        assert!(wh.file_type().is_char_device());
        assert_eq!(wh.rdev(), 0);
        let mut fs: ReadDir<'_> = ConfinedDir::open(&upper.layer).unwrap();
        assert_eq!(
            fs.get_xattr(b"odir", "trusted.overlay.opaque").unwrap(),
            Some(b"y".to_vec())
        );
        assert!(!upper.layer.join("odir/.wh..wh..opq").exists());

        let lowers = vec![lower.layer.clone()];
        let overlay = OverlayOptions::default();
        let changes = changes_overlay(&upper.layer, &lowers, &overlay).unwrap();
        let listed: Vec<(String, ChangeKind)> = changes
            .into_iter()
            .map(|c| (String::from_utf8(c.path).unwrap(), c.kind))
            .collect();
        assert_eq!(
            listed,
            vec![
                ("/del".to_string(), ChangeKind::Delete),
                ("/fresh".to_string(), ChangeKind::Add),
                ("/odir".to_string(), ChangeKind::Delete),
                ("/odir/n".to_string(), ChangeKind::Add),
            ]
        );

        let mut out = Vec::new();
        write_overlay_diff(
            &upper.layer,
            &lowers,
            &mut out,
            &DiffOptions::default(),
            &overlay,
        )
        .unwrap();
        let got = entries(&out);
        let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
        // `fresh` is opaque but no lower has it: no marker.
        assert_eq!(
            names,
            vec![".wh.del", "fresh/", "odir/", "odir/.wh..wh..opq", "odir/n"]
        );
        assert!(got.iter().all(|e| e.3.is_empty()), "no overlay xattr leaks");
        assert_eq!(tree_size(&upper.layer).unwrap(), 3);

        // Applying that diff in the AUFS format onto the lower gives the merged view.
        let merged = sandbox();
        let mut copy = Vec::new();
        write_tar(&lower.layer, &mut copy, &DiffOptions::default()).unwrap();
        apply(&merged.layer, &copy, WhiteoutFormat::Aufs).unwrap();
        apply(&merged.layer, &out, WhiteoutFormat::Aufs).unwrap();
        assert!(!merged.layer.join("del").exists());
        assert!(!merged.layer.join("odir/old").exists());
        assert_eq!(std::fs::read(merged.layer.join("odir/n")).unwrap(), b"new");
        assert!(merged.layer.join("plain").is_dir());
    }

    /// Unmounts on drop, so a failing assertion never leaves a mount behind.
    struct MountGuard(PathBuf);

    impl Drop for MountGuard {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        }
    }

    /// The kernel reads what the overlay format wrote: the whiteout hides a lower file and the
    /// opaque dir hides the lower dir's content.
    #[test]
    fn overlay_format_is_understood_by_the_kernel() {
        let lower = sandbox();
        let mut b = tar::Builder::new(Vec::new());
        add_file(&mut b, "del", b"d");
        add_file(&mut b, "keep", b"k");
        add_file(&mut b, "odir/old", b"o");
        apply(&lower.layer, &b.into_inner().unwrap(), WhiteoutFormat::Aufs).unwrap();
        let upper = sandbox();
        let mut b = tar::Builder::new(Vec::new());
        add_file(&mut b, ".wh.del", b"");
        add_dir(&mut b, "odir/");
        add_file(&mut b, "odir/.wh..wh..opq", b"");
        add_file(&mut b, "odir/new", b"n");
        apply(
            &upper.layer,
            &b.into_inner().unwrap(),
            WhiteoutFormat::Overlay,
        )
        .unwrap();

        let merged = upper.outside.clone();
        let options = format!(
            "lowerdir={}:{}",
            upper.layer.display(),
            lower.layer.display()
        );
        let mounted = nix::mount::mount(
            Some("overlay"),
            &merged,
            Some("overlay"),
            nix::mount::MsFlags::MS_RDONLY,
            Some(options.as_str()),
        );
        if let Err(e) = mounted {
            // No overlay support here (not root, or in a container without it).
            eprintln!("overlay mount unavailable, kernel check skipped: {e}");
            return;
        }
        let _guard = MountGuard(merged.clone());
        let mut names: Vec<String> = std::fs::read_dir(&merged)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, vec!["keep", "odir"]);
        let odir: Vec<String> = std::fs::read_dir(merged.join("odir"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(odir, vec!["new"]);
    }

    #[test]
    fn id_mapping_applies_to_owners() {
        let s = sandbox();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = header(tar::EntryType::Regular, 1, 0o640);
        h.set_uid(5);
        h.set_gid(6);
        b.append_data(&mut h, "f", &b"x"[..]).unwrap();
        let data = b.into_inner().unwrap();
        let mappings = IdMappings {
            uids: vec![crate::idmap::IdMap {
                container_id: 0,
                host_id: 100_000,
                size: 65536,
            }],
            gids: vec![crate::idmap::IdMap {
                container_id: 0,
                host_id: 200_000,
                size: 65536,
            }],
        };
        let opts = ApplyOptions {
            id_mapping: id_mapping(&mappings),
            ..Default::default()
        };
        apply_tar(&s.layer, &mut &data[..], &opts).unwrap();
        let meta = std::fs::symlink_metadata(s.layer.join("f")).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (100_005, 200_006));
        assert_eq!(meta.mode() & 0o7777, 0o640);

        let mut out = Vec::new();
        let diff_opts = DiffOptions {
            id_mapping: id_mapping(&mappings),
            ..Default::default()
        };
        write_tar(&s.layer, &mut out, &diff_opts).unwrap();
        let mut r = TarStreamReader::new(&out[..]);
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!((e.uid, e.gid), (5, 6));

        // An owner outside the mapping is refused.
        let mut b = tar::Builder::new(Vec::new());
        let mut h = header(tar::EntryType::Regular, 0, 0o640);
        h.set_uid(70_000);
        b.append_data(&mut h, "g", io::empty()).unwrap();
        let data = b.into_inner().unwrap();
        let err = apply_tar(&s.layer, &mut &data[..], &opts).unwrap_err();
        assert!(matches!(err, ArchiveError::Refused { .. }), "{err}");
    }

    #[test]
    fn unclean_paths_from_a_guest_are_refused() {
        let s = sandbox();
        std::fs::write(s.outside.join("secret"), b"s").unwrap();
        let mut fs: ReadDir<'_> = ConfinedDir::open(&s.layer).unwrap();
        for path in [
            &b".."[..],
            b"a/..",
            b"../outside/secret",
            b"x/",
            b"a/.",
            b"a\0b",
        ] {
            let err = fs.set_xattr(path, "user.x", b"1").unwrap_err();
            assert!(
                matches!(err.kind, FsErrorKind::PathEscape | FsErrorKind::NotFound),
                "{path:?}: {err:?}"
            );
            assert!(fs.remove(path).is_err(), "{path:?}");
        }
        // `..` inside the parent part is clamped at the root, never above it.
        assert!(fs.lstat(b"../../outside/secret").unwrap().is_none());
        assert!(s.outside.join("secret").exists());
        let mut out = Vec::new();
        let mut w: &mut dyn Write = &mut out;
        assert!(fs
            .copy_file_to_output(b"../outside/secret", 1, &mut w)
            .is_err());
    }

    #[test]
    fn duplicates_replace_files_and_merge_dirs() {
        let s = sandbox();
        let mut b = tar::Builder::new(Vec::new());
        add_file(&mut b, "x", b"first");
        add_file(&mut b, "x", b"second");
        add_dir(&mut b, "d/");
        add_file(&mut b, "d/child", b"c");
        let mut h = header(tar::EntryType::Directory, 0, 0o700);
        b.append_data(&mut h, "d/", io::empty()).unwrap();
        apply(&s.layer, &b.into_inner().unwrap(), WhiteoutFormat::Aufs).unwrap();
        assert_eq!(std::fs::read(s.layer.join("x")).unwrap(), b"second");
        assert!(s.layer.join("d/child").exists());
        let mode = std::fs::metadata(s.layer.join("d")).unwrap().mode();
        assert_eq!(mode & 0o7777, 0o700);
    }
}
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod go_compat_tests {
    use super::*;
    use std::process::Command;

    /// Runs the Go CLI on a private vfs store; `None` when it is not installed.
    fn go_cli(root: &Path, args: &[&str]) -> Option<Vec<u8>> {
        let out = Command::new("containers-storage")
            .arg("--graph")
            .arg(root.join("g"))
            .arg("--run")
            .arg(root.join("r"))
            .args(["--storage-driver", "vfs"])
            .args(args)
            .output()
            .ok()?;
        assert!(out.status.success(), "{args:?}: {:?}", out);
        Some(out.stdout)
    }

    /// Our tar of a whole tree is byte-identical to what the Go implementation's naive diff
    /// of the same vfs layer writes.
    #[test]
    fn tree_tar_matches_go_byte_for_byte() {
        let tmp = tempfile::tempdir().unwrap();
        let Some(created) = go_cli(tmp.path(), &["create-layer"]) else {
            return; // the Go CLI is not installed here
        };
        let id = String::from_utf8(created).unwrap();
        let id = id.split_whitespace().last().unwrap().to_string();
        let dir = tmp.path().join("g/vfs/dir").join(&id);
        let mut fs: ReadDir<'_> = ConfinedDir::open(&dir).unwrap();
        let mut input: &[u8] = b"hello\n";
        let long = format!("{}/{}", "l".repeat(120), "f".repeat(60));
        let very_long = "v".repeat(180);
        fs.mkdir(b"sub", 0o750).unwrap();
        fs.mkdir("l".repeat(120).as_bytes(), 0o755).unwrap();
        for name in [&b"file"[..], long.as_bytes(), very_long.as_bytes()] {
            let mut input: &[u8] = b"data";
            fs.write_file_from_input(name, 0o644, 4, &mut input)
                .unwrap();
        }
        fs.write_file_from_input(b"sub/x", 0o4755, 6, &mut input)
            .unwrap();
        fs.set_xattr(b"file", "user.k", b"v").unwrap();
        fs.hardlink(b"file", b"hard").unwrap();
        fs.symlink(b"file", b"link").unwrap();
        fs.mkfifo(b"fifo", 0o600).unwrap();
        let t = Timestamp {
            secs: 1_600_000_000,
            nanos: 700_000_000,
        };
        for p in [&b"file"[..], b"sub/x", b"link", b"fifo", b"sub"] {
            fs.set_times(p, t, t).unwrap();
        }
        let go_tar = go_cli(tmp.path(), &["diff", &id]).unwrap();
        let mut ours = Vec::new();
        write_tar(&dir, &mut ours, &diff_options(&IdMappings::default())).unwrap();
        assert!(go_tar == ours, "tar bytes differ from Go's");
    }
}
