//! `ConfinedDir`: a directory handle that implements the archive crate's filesystem traits
//! with every path resolved beneath it, and the path-level wrappers drivers call
//! ([`apply_tar`], [`apply_parsed_tar`], [`write_tar`], [`write_naive_diff`], [`write_overlay_diff`],
//! [`changes_naive`], [`changes_overlay`], [`diff_size_naive`], [`tree_size`]).
//!
//! Confinement: the parent of every path is opened with `openat2(RESOLVE_IN_ROOT |
//! RESOLVE_NO_MAGICLINKS)`, so symlinks in it (absolute or `..`) resolve as if the directory
//! were `/` (Go applies layers in a chroot: same semantics) and can never reach outside; the last
//! component is then used with `*at` calls that do not follow it (`AT_SYMLINK_NOFOLLOW`,
//! `O_NOFOLLOW`). Xattrs go through `/proc/self/fd/<parent>/<name>` with the `l*xattr` calls.
//! [`openat_beneath`] is the one `openat2` of the workspace: every confined open, here and in
//! the drivers, the store's walks and the CLI, goes through it.
//!
//! One module per concern: this one holds the handle, path resolution and the confined open;
//! `errors` maps OS errors to the archive crate's, `read` and `write` implement its
//! filesystem traits, `trees` the path-level wrappers.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::{io, marker::PhantomData};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use storage_archive::fs::{FileKind, FsError, FsErrorKind, FsResult};

mod errors;
mod read;
mod trees;
mod write;

use crate::syscalls::Syscalls;
pub use errors::{fs_error, io_error};
pub use trees::{
    apply_options, apply_parsed_tar, apply_tar, changes_naive, changes_overlay, diff_options,
    diff_size_naive, id_mapping, to_host_changes, tree_size, write_naive_diff, write_overlay_diff,
    write_tar, ParentTree,
};

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
    /// The privileged calls (owners, device nodes, xattrs) are made through this.
    sys: Arc<dyn Syscalls>,
    _streams: PhantomData<fn(&mut I, &mut O)>,
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

/// What a symlink met on the way to a path beneath a root does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Symlinks {
    /// It resolves as if the root were `/` (`RESOLVE_IN_ROOT`): an absolute target or `..`
    /// stays inside. Layers are applied this way (Go applies them in a chroot).
    InRoot,
    /// It is refused with `ELOOP` (`RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`): for walks that
    /// must see the tree exactly as it is.
    Refused,
}

/// Opens `path` beneath `root` with `flags` (and `mode`, when creating), never through a
/// magic link, symlinks on the way treated as `symlinks` says; whether a final symlink is
/// followed is up to `O_NOFOLLOW` in `flags`. The empty path is `root`. The one `openat2`
/// of the workspace: every confined open goes through here.
pub fn openat_beneath(
    root: impl AsFd,
    path: &[u8],
    flags: OFlags,
    mode: u32,
    symlinks: Symlinks,
) -> rustix::io::Result<OwnedFd> {
    let path = if path.is_empty() { &b"."[..] } else { path };
    let resolve = match symlinks {
        Symlinks::InRoot => ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        Symlinks::Refused => {
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS
        }
    };
    rustix::fs::openat2(
        root,
        os(path),
        flags | OFlags::CLOEXEC,
        Mode::from_bits_truncate(mode),
        resolve,
    )
}

/// Opens `path` beneath `root` with `flags` (and `mode`, when creating), never through a
/// final symlink nor a magic link, `root` being `/` to every symlink on the way
/// (`openat2` with `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`). The empty path is `root`.
pub fn open_beneath(root: &impl AsFd, path: &[u8], flags: OFlags, mode: u32) -> FsResult<OwnedFd> {
    openat_beneath(root, path, flags | OFlags::NOFOLLOW, mode, Symlinks::InRoot)
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
            sys: crate::syscalls::real(),
            _streams: PhantomData,
        })
    }

    /// The same handle making its privileged calls (owners, device nodes, xattrs) through
    /// `sys` instead of the real ones: how a test applies a layer without root.
    pub fn with_syscalls(mut self, sys: Arc<dyn Syscalls>) -> Self {
        self.sys = sys;
        self
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
            openat_beneath(
                &self.root,
                dir,
                OFlags::PATH | OFlags::DIRECTORY,
                0,
                Symlinks::InRoot,
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

    /// Opens `path` beneath the root with `flags` (and `mode`, when creating), never through
    /// a final symlink nor a magic link, the root being `/` to every symlink on the way: the
    /// one confined open of the toolkit.
    pub fn open_beneath(&self, path: &[u8], flags: OFlags, mode: u32) -> FsResult<OwnedFd> {
        open_beneath(&self.root, path, flags, mode)
    }

    /// Opens an existing regular file beneath the root for reading, never following a final
    /// symlink (see [`open_regular_at`]); the files of one directory share one lookup of
    /// their parent.
    pub fn open_regular(&mut self, path: &[u8]) -> FsResult<File> {
        let (dir, name) = self.parent(path)?;
        open_regular_at(&dir, name)
    }
}

/// Opens the regular file `name` of the directory `dir` for reading, never following it if
/// it is a symlink; anything else is refused before it is opened. Opening is not harmless for
/// what a tree may hold (a component can make device nodes and fifos): opening a device calls
/// its driver (a disk is then read raw, a watchdog starts counting), and opening a fifo waits
/// for a writer, which would hold a component's host call past its deadline. So `name` is
/// looked at first (`O_PATH`), opened by name (non-blocking, not followed) only once it showed
/// a regular file, and the file opened must be the inode looked at: only something swapped in
/// between those two calls, by whoever can write the directory, would be opened (and then
/// refused). Reopening the `O_PATH` descriptor through `/proc/self/fd` instead cost a third
/// of reading a small file.
pub fn open_regular_at(dir: impl AsFd, name: &[u8]) -> FsResult<File> {
    let looked = rustix::fs::openat(
        &dir,
        os(name),
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| fs_error(e, "open"))?;
    let seen = regular_status(&looked)?;
    let fd = rustix::fs::openat(
        &dir,
        os(name),
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| fs_error(e, "open"))?;
    let opened = rustix::fs::fstat(&fd).map_err(|e| fs_error(e, "fstat"))?;
    if (opened.st_dev, opened.st_ino) != (seen.st_dev, seen.st_ino) {
        return Err(FsError::new(
            FsErrorKind::Other,
            "replaced while it was being opened",
        ));
    }
    Ok(File::from(fd))
}

/// The status of what `fd` names, if it is a regular file.
fn regular_status(fd: &OwnedFd) -> FsResult<rustix::fs::Stat> {
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
    Ok(st)
}

#[cfg(test)]
mod go_compat_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
#[path = "double_tests.rs"]
mod without_root;
