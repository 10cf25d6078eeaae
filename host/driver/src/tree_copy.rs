//! Whole trees copied and removed beneath confined directories, host-side, by several
//! threads: the components' `copy-tree` and `remove-all` fast paths (the vfs driver's new
//! layer is a copy of its parent, its removal a recursive delete) and btrfs's copy of a
//! parent no snapshot can reach.
//!
//! A copy keeps what upstream's `drivers/copy.DirCopy` (vfs's `dirCopy`) keeps: owners,
//! modes, access and modification times (directories' set last, once their entries exist),
//! hard links within the tree, symlinks as stored, device nodes (skipped where the kernel
//! refuses them, as upstream skips them rootless), fifos and sockets, and the xattrs upstream
//! copies (`security.capability`, `user.*`, `trusted.overlay.opaque`). Regular files are
//! reflinked (`FICLONE`) where the filesystem can, else copied in the kernel
//! (`copy_file_range`), else through a buffer; the first refusal of either is remembered for
//! the rest of the copy, as upstream does.
//!
//! Confinement: the two tops (`from`, and the parent of `to`) are resolved beneath their
//! roots as every confined path is ([`openat_beneath`], symlinks on the way resolved in the
//! root); below them every entry is reached from its directory's descriptor by one name
//! with `O_NOFOLLOW`/`AT_SYMLINK_NOFOLLOW`, and a directory handed to another thread is
//! reopened beneath its top with symlinks refused, so nothing outside the tops is read or
//! changed whatever the trees hold.
//!
//! Work is shared by directory: a thread lists a directory, copies (or removes) its files
//! and queues its subdirectories for any thread. At most [`MAX_THREADS`].

use std::collections::HashMap;
use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat, Timespec, Timestamps};
use rustix::io::Errno;
use storage_archive::fs::{FsError, FsErrorKind, FsResult};

use crate::confined::{fs_error, io_error, openat_beneath, ConfinedDir, Symlinks};
use crate::syscalls::Syscalls;

/// The most threads a copy or removal uses (fewer on a machine with fewer CPUs).
pub const MAX_THREADS: usize = 4;

/// The xattrs upstream's copy keeps besides `user.*` (`drivers/copy.doCopyXattrs`).
const KEPT_XATTRS: [&str; 2] = ["security.capability", "trusted.overlay.opaque"];

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if dir.is_empty() {
        return name.to_vec();
    }
    let mut path = Vec::with_capacity(dir.len() + 1 + name.len());
    path.extend_from_slice(dir);
    path.push(b'/');
    path.extend_from_slice(name);
    path
}

/// Splits a clean relative path into its parent ("" for a top-level name) and last component.
fn split(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|b| *b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (b"", path),
    }
}

fn os(path: &[u8]) -> &OsStr {
    OsStr::from_bytes(path)
}

fn shown(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

/// An OS error on `path` during `what`.
fn at(e: Errno, what: &str, path: &[u8]) -> FsError {
    let mut err = fs_error(e, what);
    err.message = format!("{what} {:?}: {}", shown(path), err.message);
    err
}

/// Refuses a path that is not clean and relative (empty allowed: the root itself).
fn check_clean(path: &[u8]) -> FsResult<()> {
    let bad = path.contains(&0)
        || (!path.is_empty()
            && path
                .split(|b| *b == b'/')
                .any(|c| c.is_empty() || c == b"." || c == b".."));
    if bad {
        return Err(FsError::new(
            FsErrorKind::PathEscape,
            format!("path {:?} is not a clean relative path", shown(path)),
        ));
    }
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_THREADS)
}

/// A queue of jobs shared by `threads` threads: each job may queue more; the first error
/// stops every thread and is returned.
struct Pool<J> {
    state: Mutex<PoolState<J>>,
    wake: Condvar,
}

struct PoolState<J> {
    jobs: Vec<J>,
    /// Jobs being worked on: the pool is done when none is queued nor busy.
    busy: usize,
    failed: Option<FsError>,
}

impl<J: Send> Pool<J> {
    fn run(first: J, work: impl Fn(J, &dyn Fn(J)) -> FsResult<()> + Sync) -> FsResult<()> {
        let pool = Pool {
            state: Mutex::new(PoolState {
                jobs: vec![first],
                busy: 0,
                failed: None,
            }),
            wake: Condvar::new(),
        };
        let push = |job: J| {
            lock(&pool.state).jobs.push(job);
            pool.wake.notify_one();
        };
        let worker = || pool.work(&work, &push);
        std::thread::scope(|scope| {
            for _ in 1..threads() {
                scope.spawn(worker);
            }
            worker();
        });
        let failed = lock(&pool.state).failed.take();
        failed.map_or(Ok(()), Err)
    }

    fn work(&self, work: &(impl Fn(J, &dyn Fn(J)) -> FsResult<()> + Sync), push: &dyn Fn(J)) {
        loop {
            let job = {
                let mut state = lock(&self.state);
                loop {
                    if state.failed.is_some() {
                        return;
                    }
                    if let Some(job) = state.jobs.pop() {
                        state.busy += 1;
                        break job;
                    }
                    if state.busy == 0 {
                        return;
                    }
                    state = self
                        .wake
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            };
            let result = work(job, push);
            let mut state = lock(&self.state);
            state.busy -= 1;
            if let Err(e) = result {
                state.failed.get_or_insert(e);
            }
            if state.failed.is_some() || (state.busy == 0 && state.jobs.is_empty()) {
                self.wake.notify_all();
            }
        }
    }
}

/// The entries of the directory `dir` (never `.` or `..`), with their types as listed.
fn list(dir: &OwnedFd, path: &[u8]) -> FsResult<Vec<(CString, FileType)>> {
    let mut buf: Vec<u8> = Vec::with_capacity(32 * 1024);
    let mut reader = rustix::fs::RawDir::new(dir, buf.spare_capacity_mut());
    let mut entries = Vec::new();
    while let Some(entry) = reader.next() {
        let entry = entry.map_err(|e| at(e, "read dir", path))?;
        let name = entry.file_name();
        if name.to_bytes() == b"." || name.to_bytes() == b".." {
            continue;
        }
        entries.push((name.to_owned(), entry.file_type()));
    }
    Ok(entries)
}

fn open_dir_at(dir: BorrowedFd<'_>, name: &CStr, path: &[u8]) -> FsResult<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| at(e, "open dir", path))
}

/// The directory `path` beneath `top`, reached without following any symlink.
fn open_dir_beneath(top: &OwnedFd, path: &[u8]) -> FsResult<OwnedFd> {
    openat_beneath(
        top,
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW,
        0,
        Symlinks::Refused,
    )
    .map_err(|e| at(e, "open dir", path))
}

fn times(st: &Stat) -> Timestamps {
    Timestamps {
        last_access: Timespec {
            tv_sec: st.st_atime as _,
            tv_nsec: st.st_atime_nsec as _,
        },
        last_modification: Timespec {
            tv_sec: st.st_mtime as _,
            tv_nsec: st.st_mtime_nsec as _,
        },
    }
}

/// The names of the xattrs upstream's copy keeps, from a `*listxattr` call.
fn kept_xattrs(listxattr: impl Fn(&mut [u8]) -> rustix::io::Result<usize>) -> Vec<CString> {
    let mut small = [0u8; 256];
    let listed = match listxattr(&mut small) {
        Ok(n) => small[..n].to_vec(),
        Err(Errno::RANGE) => {
            // Larger than the first guess: ask for the size, then read (a list is at most
            // 64 KiB, XATTR_LIST_MAX).
            let mut big = vec![0u8; 64 * 1024];
            match listxattr(&mut big) {
                Ok(n) => {
                    big.truncate(n);
                    big
                }
                Err(_) => Vec::new(),
            }
        }
        // Unsupported by the filesystem: nothing to keep (upstream ignores ENOTSUP).
        Err(_) => Vec::new(),
    };
    listed
        .split(|b| *b == 0)
        .filter(|n| n.starts_with(b"user.") || KEPT_XATTRS.iter().any(|k| k.as_bytes() == *n))
        .filter_map(|n| CString::new(n).ok())
        .collect()
}

/// The value of one xattr from a `*getxattr` call; `None` if it went away.
fn xattr_value(
    getxattr: impl Fn(&mut [u8]) -> rustix::io::Result<usize>,
    name: &CStr,
    path: &[u8],
) -> FsResult<Option<Vec<u8>>> {
    let mut value = vec![0u8; 64 * 1024];
    match getxattr(&mut value) {
        Ok(n) => {
            value.truncate(n);
            Ok(Some(value))
        }
        Err(Errno::NODATA) | Err(Errno::OPNOTSUPP) => Ok(None),
        Err(e) => Err(at(e, &format!("getxattr {}", name.to_string_lossy()), path)),
    }
}

/// A setxattr refused because the destination cannot hold that namespace (or a symlink's
/// user xattrs): the copy is still the tree.
fn tolerated(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error().map(Errno::from_raw_os_error),
        Some(Errno::OPNOTSUPP | Errno::PERM | Errno::ACCESS)
    )
}

/// `/proc/self/fd/<dir>/<name>`, for the `l*xattr` calls on what has no descriptor of its
/// own (symlinks, nodes).
fn proc_path(dir: BorrowedFd<'_>, name: &CStr) -> PathBuf {
    let mut p = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    p.push(OsStr::from_bytes(name.to_bytes()));
    p
}

/// What a thread finds for a multiply-linked source inode.
enum Link {
    /// Another thread is copying it.
    Copying,
    /// Copied to this path (relative to the destination top).
    Done(Vec<u8>),
    /// Its copy failed (the whole copy is failing).
    Failed,
}

/// One tree copy: the two tops and what the threads share.
struct Copier<'a> {
    sys: &'a dyn Syscalls,
    src_top: OwnedFd,
    dst_top: OwnedFd,
    /// Whether `FICLONE` and `copy_file_range` are still worth trying.
    clone: AtomicBool,
    range: AtomicBool,
    links: Mutex<HashMap<(u64, u64), Link>>,
    linked: Condvar,
    /// Directories below the top and their times, set once every entry exists.
    dir_times: Mutex<Vec<(Vec<u8>, Timestamps)>>,
}

/// Copies the tree at `from` beneath `src_root` to the new path `to` beneath `dst_root`
/// (whose parent must exist), keeping what upstream's vfs copy keeps (see the module doc).
/// `from` may be empty (the root itself); `to` may not.
pub fn copy_tree_at(
    sys: &dyn Syscalls,
    src_root: BorrowedFd<'_>,
    from: &[u8],
    dst_root: BorrowedFd<'_>,
    to: &[u8],
) -> FsResult<()> {
    check_clean(from)?;
    check_clean(to)?;
    if to.is_empty() {
        return Err(FsError::new(
            FsErrorKind::AlreadyExists,
            "copy-tree: the destination is the root",
        ));
    }
    let (to_parent, to_name) = split(to);
    let to_name = CString::new(to_name).map_err(|_| FsError::new(FsErrorKind::Other, "NUL"))?;
    let dst_parent = openat_beneath(
        dst_root,
        to_parent,
        OFlags::PATH | OFlags::DIRECTORY,
        0,
        Symlinks::InRoot,
    )
    .map_err(|e| at(e, "resolve", to_parent))?;
    // The source's directory and name; the root itself is `.` of itself.
    let (src_parent, from_name) = if from.is_empty() {
        (
            openat_beneath(
                src_root,
                b"",
                OFlags::PATH | OFlags::DIRECTORY,
                0,
                Symlinks::InRoot,
            )
            .map_err(|e| at(e, "open", from))?,
            c".".to_owned(),
        )
    } else {
        let (parent, name) = split(from);
        (
            openat_beneath(
                src_root,
                parent,
                OFlags::PATH | OFlags::DIRECTORY,
                0,
                Symlinks::InRoot,
            )
            .map_err(|e| at(e, "resolve", parent))?,
            CString::new(name).map_err(|_| FsError::new(FsErrorKind::Other, "NUL"))?,
        )
    };
    let st = rustix::fs::statat(&src_parent, &*from_name, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| at(e, "lstat", from))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        // One entry: no hard link within it to keep.
        let copier = Copier::new(sys, src_parent.try_clone(), dst_parent.try_clone())?;
        return copier.copy_entry(
            src_parent.as_fd(),
            &from_name,
            dst_parent.as_fd(),
            &to_name,
            None,
            FileType::Unknown,
            &|_| {},
        );
    }
    let src_top = open_dir_at(src_parent.as_fd(), &from_name, from)?;
    rustix::fs::mkdirat(&dst_parent, &*to_name, Mode::from_raw_mode(0o700))
        .map_err(|e| at(e, "mkdir", to))?;
    let dst_top = open_dir_at(dst_parent.as_fd(), &to_name, to)?;
    let copier = Copier::new(sys, Ok(src_top), Ok(dst_top))?;
    let top_st = rustix::fs::fstat(&copier.src_top).map_err(|e| at(e, "fstat", from))?;
    copier.owner_xattrs_mode(copier.src_top.as_fd(), copier.dst_top.as_fd(), &top_st, to)?;
    Pool::run(Vec::new(), |dir: Vec<u8>, push| copier.copy_dir(&dir, push))?;
    copier.set_dir_times()?;
    rustix::fs::futimens(&copier.dst_top, &times(&top_st)).map_err(|e| at(e, "utimensat", to))
}

impl<'a> Copier<'a> {
    fn new(
        sys: &'a dyn Syscalls,
        src_top: std::io::Result<OwnedFd>,
        dst_top: std::io::Result<OwnedFd>,
    ) -> FsResult<Self> {
        Ok(Copier {
            sys,
            src_top: src_top.map_err(|e| io_error(e, "dup"))?,
            dst_top: dst_top.map_err(|e| io_error(e, "dup"))?,
            clone: AtomicBool::new(true),
            range: AtomicBool::new(true),
            links: Mutex::new(HashMap::new()),
            linked: Condvar::new(),
            dir_times: Mutex::new(Vec::new()),
        })
    }

    /// Copies the entries of the directory `dir` (relative to both tops, already made),
    /// queueing its subdirectories.
    fn copy_dir(&self, dir: &[u8], push: &dyn Fn(Vec<u8>)) -> FsResult<()> {
        let src = open_dir_beneath(&self.src_top, dir)?;
        let dst = open_dir_beneath(&self.dst_top, dir)?;
        for (name, kind) in list(&src, dir)? {
            self.copy_entry(
                src.as_fd(),
                &name,
                dst.as_fd(),
                &name,
                Some(dir),
                kind,
                push,
            )?;
        }
        Ok(())
    }

    /// Copies the entry `name` of `src_dir` to `dst_name` in `dst_dir`; `dir` is where both
    /// are relative to the tops (`None` for a lone top entry); a directory is made and queued.
    #[allow(clippy::too_many_arguments, reason = "both sides of one entry")]
    fn copy_entry(
        &self,
        src_dir: BorrowedFd<'_>,
        name: &CStr,
        dst_dir: BorrowedFd<'_>,
        dst_name: &CStr,
        dir: Option<&[u8]>,
        kind: FileType,
        push: &dyn Fn(Vec<u8>),
    ) -> FsResult<()> {
        let path = join(dir.unwrap_or_default(), dst_name.to_bytes());
        match kind {
            FileType::RegularFile => return self.copy_file(src_dir, name, dst_dir, dst_name, dir),
            FileType::Directory => {
                let src = open_dir_at(src_dir, name, &path)?;
                let st = rustix::fs::fstat(&src).map_err(|e| at(e, "fstat", &path))?;
                rustix::fs::mkdirat(dst_dir, dst_name, Mode::from_raw_mode(0o700))
                    .map_err(|e| at(e, "mkdir", &path))?;
                let dst = open_dir_at(dst_dir, dst_name, &path)?;
                self.owner_xattrs_mode(src.as_fd(), dst.as_fd(), &st, &path)?;
                lock(&self.dir_times).push((path.clone(), times(&st)));
                push(path);
                return Ok(());
            }
            _ => {}
        }
        let st = rustix::fs::statat(src_dir, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| at(e, "lstat", &path))?;
        let kind = FileType::from_raw_mode(st.st_mode);
        match kind {
            // Listed without a type (or changed since): now known.
            FileType::RegularFile | FileType::Directory => {
                return self.copy_entry(src_dir, name, dst_dir, dst_name, dir, kind, push)
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(src_dir, name, Vec::new())
                    .map_err(|e| at(e, "readlink", &path))?;
                rustix::fs::symlinkat(&*target, dst_dir, dst_name)
                    .map_err(|e| at(e, "symlink", &path))?;
            }
            FileType::CharacterDevice
            | FileType::BlockDevice
            | FileType::Fifo
            | FileType::Socket => {
                let made = self.sys.mknod_at(
                    dst_dir,
                    Path::new(os(dst_name.to_bytes())),
                    kind,
                    st.st_mode & 0o7777,
                    st.st_rdev,
                );
                match made {
                    Ok(()) => {}
                    // Upstream skips device nodes where it cannot make them (rootless).
                    Err(e)
                        if matches!(kind, FileType::CharacterDevice | FileType::BlockDevice)
                            && e.raw_os_error() == Some(Errno::PERM.raw_os_error()) =>
                    {
                        return Ok(())
                    }
                    Err(e) => return Err(io_at(e, "mknod", &path)),
                }
            }
            FileType::Unknown => {
                return Err(FsError::new(
                    FsErrorKind::Unsupported,
                    format!("copy-tree: {:?} is of an unknown type", shown(&path)),
                ))
            }
        }
        // A symlink or a node: its metadata by name, never following it.
        self.sys
            .chown_at(
                dst_dir,
                Path::new(os(dst_name.to_bytes())),
                Some(st.st_uid),
                Some(st.st_gid),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| io_at(e, "lchown", &path))?;
        let (src_proc, dst_proc) = (proc_path(src_dir, name), proc_path(dst_dir, dst_name));
        for xattr in kept_xattrs(|buf| rustix::fs::llistxattr(&src_proc, buf)) {
            let value = xattr_value(
                |buf| rustix::fs::lgetxattr(&src_proc, &*xattr, buf),
                &xattr,
                &path,
            )?;
            if let Some(value) = value {
                self.set_xattr(
                    |name, v| self.sys.lset_xattr(&dst_proc, name, v),
                    &xattr,
                    &value,
                    &path,
                )?;
            }
        }
        if kind != FileType::Symlink {
            // Made just now by this copy; fchmodat follows a symlink, so check it is none.
            let now = rustix::fs::statat(dst_dir, dst_name, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| at(e, "lstat", &path))?;
            if FileType::from_raw_mode(now.st_mode) != kind {
                return Err(FsError::new(
                    FsErrorKind::Other,
                    format!("copy-tree: {:?} changed while copied", shown(&path)),
                ));
            }
            rustix::fs::chmodat(
                dst_dir,
                dst_name,
                Mode::from_raw_mode(st.st_mode & 0o7777),
                AtFlags::empty(),
            )
            .map_err(|e| at(e, "chmod", &path))?;
        }
        rustix::fs::utimensat(dst_dir, dst_name, &times(&st), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| at(e, "utimensat", &path))
    }

    fn set_xattr(
        &self,
        set: impl Fn(&str, &[u8]) -> std::io::Result<()>,
        name: &CStr,
        value: &[u8],
        path: &[u8],
    ) -> FsResult<()> {
        let name = name.to_string_lossy();
        match set(&name, value) {
            Ok(()) => Ok(()),
            Err(e) if tolerated(&e) => Ok(()),
            Err(e) => Err(io_at(e, &format!("setxattr {name}"), path)),
        }
    }

    /// Owner, the kept xattrs and mode (after the owner: chown clears setuid) of the open
    /// `dst`, from the open `src`.
    fn owner_xattrs_mode(
        &self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        st: &Stat,
        path: &[u8],
    ) -> FsResult<()> {
        self.sys
            .fchown(dst, Some(st.st_uid), Some(st.st_gid))
            .map_err(|e| io_at(e, "lchown", path))?;
        for xattr in kept_xattrs(|buf| rustix::fs::flistxattr(src, buf)) {
            let value = xattr_value(|buf| rustix::fs::fgetxattr(src, &*xattr, buf), &xattr, path)?;
            if let Some(value) = value {
                self.set_xattr(
                    |name, v| self.sys.fset_xattr(dst, name, v),
                    &xattr,
                    &value,
                    path,
                )?;
            }
        }
        rustix::fs::fchmod(dst, Mode::from_raw_mode(st.st_mode & 0o7777))
            .map_err(|e| at(e, "chmod", path))
    }

    /// Copies a regular file, or links it to the copy of its inode made earlier.
    fn copy_file(
        &self,
        src_dir: BorrowedFd<'_>,
        name: &CStr,
        dst_dir: BorrowedFd<'_>,
        dst_name: &CStr,
        dir: Option<&[u8]>,
    ) -> FsResult<()> {
        let path = join(dir.unwrap_or_default(), dst_name.to_bytes());
        // NONBLOCK: were it a fifo by now, the open must not wait for a writer.
        let src = rustix::fs::openat(
            src_dir,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| at(e, "open", &path))?;
        let st = rustix::fs::fstat(&src).map_err(|e| at(e, "fstat", &path))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(FsError::new(
                FsErrorKind::Other,
                format!("copy-tree: {:?} changed while copied", shown(&path)),
            ));
        }
        let key = (st.st_dev, st.st_ino);
        let tracked = st.st_nlink > 1 && dir.is_some();
        if tracked {
            if let Some(first) = self.claim(key)? {
                return self.link(&first, dst_dir, dst_name, &path);
            }
        }
        let result = self.copy_regular(File::from(src), dst_dir, dst_name, &st, &path);
        if tracked {
            let mut links = lock(&self.links);
            links.insert(
                key,
                if result.is_ok() {
                    Link::Done(path)
                } else {
                    Link::Failed
                },
            );
            self.linked.notify_all();
        }
        result
    }

    /// `None` if this thread is to copy the inode `key` (now marked as being copied), else
    /// the path its copy has (waiting for another thread to finish it).
    fn claim(&self, key: (u64, u64)) -> FsResult<Option<Vec<u8>>> {
        let mut links = lock(&self.links);
        loop {
            match links.get(&key) {
                None => {
                    links.insert(key, Link::Copying);
                    return Ok(None);
                }
                Some(Link::Done(first)) => return Ok(Some(first.clone())),
                Some(Link::Failed) => {
                    return Err(FsError::new(
                        FsErrorKind::Other,
                        "copy-tree: the copy of a hard-linked file failed",
                    ))
                }
                Some(Link::Copying) => {
                    links = self
                        .linked
                        .wait(links)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
    }

    /// Links `dst_name` in `dst_dir` to the copy at `first` (relative to the destination top).
    fn link(
        &self,
        first: &[u8],
        dst_dir: BorrowedFd<'_>,
        dst_name: &CStr,
        path: &[u8],
    ) -> FsResult<()> {
        let (parent, last) = split(first);
        let parent_fd = open_dir_beneath(&self.dst_top, parent)?;
        rustix::fs::linkat(&parent_fd, os(last), dst_dir, dst_name, AtFlags::empty())
            .map_err(|e| at(e, "link", path))
    }

    fn copy_regular(
        &self,
        mut src: File,
        dst_dir: BorrowedFd<'_>,
        dst_name: &CStr,
        st: &Stat,
        path: &[u8],
    ) -> FsResult<()> {
        let dst = rustix::fs::openat(
            dst_dir,
            dst_name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| at(e, "create", path))?;
        let mut dst = File::from(dst);
        self.copy_contents(&mut src, &mut dst, st.st_size as u64, path)?;
        self.owner_xattrs_mode(src.as_fd(), dst.as_fd(), st, path)?;
        rustix::fs::futimens(&dst, &times(st)).map_err(|e| at(e, "utimensat", path))
    }

    /// The bytes: a reflink, else a kernel copy, else a buffer (each refusal remembered).
    fn copy_contents(
        &self,
        src: &mut File,
        dst: &mut File,
        size: u64,
        path: &[u8],
    ) -> FsResult<()> {
        if size == 0 {
            return Ok(());
        }
        if self.clone.load(Ordering::Relaxed) {
            match rustix::fs::ioctl_ficlone(&*dst, &*src) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    self.clone.store(false, Ordering::Relaxed);
                    if e == Errno::XDEV {
                        self.range.store(false, Ordering::Relaxed);
                    }
                }
            }
        }
        let mut left = size;
        if self.range.load(Ordering::Relaxed) {
            while left > 0 {
                let chunk = usize::try_from(left).unwrap_or(usize::MAX).min(1 << 30);
                match rustix::fs::copy_file_range(&*src, None, &*dst, None, chunk) {
                    // The file is shorter than it was: copied what there is.
                    Ok(0) => return Ok(()),
                    Ok(n) => left = left.saturating_sub(n as u64),
                    Err(Errno::XDEV | Errno::NOSYS | Errno::INVAL | Errno::OPNOTSUPP) => {
                        self.range.store(false, Ordering::Relaxed);
                        break;
                    }
                    Err(Errno::INTR) => {}
                    Err(e) => return Err(at(e, "copy", path)),
                }
            }
            if left == 0 {
                return Ok(());
            }
        }
        // Both file offsets are where the kernel copy stopped.
        std::io::copy(&mut src.take(left), dst)
            .map(|_| ())
            .map_err(|e| io_at(e, "copy", path))
    }

    /// The times of every directory below the top, now that nothing more is made in them.
    fn set_dir_times(&self) -> FsResult<()> {
        let dirs = std::mem::take(&mut *lock(&self.dir_times));
        for (path, ts) in dirs {
            let dir = open_dir_beneath(&self.dst_top, &path)?;
            rustix::fs::futimens(&dir, &ts).map_err(|e| at(e, "utimensat", &path))?;
        }
        Ok(())
    }
}

fn io_at(e: std::io::Error, what: &str, path: &[u8]) -> FsError {
    let mut err = io_error(e, what);
    err.message = format!("{what} {:?}: {}", shown(path), err.message);
    err
}

/// Removes `path` beneath `root` and everything below it; missing is not an error. The
/// parent is resolved as every confined path is; below it nothing is followed.
pub fn remove_tree_at(root: BorrowedFd<'_>, path: &[u8]) -> FsResult<()> {
    check_clean(path)?;
    if path.is_empty() {
        return Err(FsError::new(
            FsErrorKind::PermissionDenied,
            "remove of the root",
        ));
    }
    let (parent, name) = split(path);
    let parent_fd = match openat_beneath(
        root,
        parent,
        OFlags::PATH | OFlags::DIRECTORY,
        0,
        Symlinks::InRoot,
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT | Errno::NOTDIR) => return Ok(()),
        Err(e) => return Err(at(e, "resolve", parent)),
    };
    match rustix::fs::unlinkat(&parent_fd, os(name), AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => return Ok(()),
        Err(Errno::ISDIR) => {}
        Err(e) => return Err(at(e, "unlink", path)),
    }
    let top = match rustix::fs::openat(
        &parent_fd,
        os(name),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(at(e, "open dir", path)),
    };
    // Everything but directories, by all threads; then the directories, deepest first.
    let dirs = Mutex::new(Vec::new());
    Pool::run(Vec::new(), |dir: Vec<u8>, push| {
        let fd = open_dir_beneath(&top, &dir)?;
        for (entry, kind) in list(&fd, &dir)? {
            let child = || join(&dir, entry.to_bytes());
            if kind != FileType::Directory {
                match rustix::fs::unlinkat(&fd, &*entry, AtFlags::empty()) {
                    Ok(()) | Err(Errno::NOENT) => continue,
                    // Listed without a type: a directory after all.
                    Err(Errno::ISDIR) => {}
                    Err(e) => return Err(at(e, "unlink", &child())),
                }
            }
            lock(&dirs).push(child());
            push(child());
        }
        Ok(())
    })?;
    let mut dirs = dirs.into_inner().unwrap_or_else(PoisonError::into_inner);
    // Deeper paths are longer than their parents: the longest first empties every parent
    // before it is removed.
    dirs.sort_unstable_by_key(|d| std::cmp::Reverse(d.len()));
    for dir in dirs {
        let (parent, last) = split(&dir);
        let parent_fd = open_dir_beneath(&top, parent)?;
        match rustix::fs::unlinkat(&parent_fd, os(last), AtFlags::REMOVEDIR) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(e) => return Err(at(e, "rmdir", &dir)),
        }
    }
    drop(top);
    match rustix::fs::unlinkat(&parent_fd, os(name), AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(at(e, "rmdir", path)),
    }
}

/// Copies the tree at `from` in `src` to the new path `to` in `dst` (see [`copy_tree_at`]).
pub fn copy_tree<I: Read + ?Sized, O: Write + ?Sized>(
    src: &mut ConfinedDir<I, O>,
    from: &[u8],
    dst: &mut ConfinedDir<I, O>,
    to: &[u8],
) -> FsResult<()> {
    let flags = OFlags::PATH | OFlags::DIRECTORY;
    let src_root = src.open_beneath(b"", flags, 0)?;
    let dst_root = dst.open_beneath(b"", flags, 0)?;
    let sys = crate::syscalls::real();
    copy_tree_at(&*sys, src_root.as_fd(), from, dst_root.as_fd(), to)
}

#[cfg(test)]
mod tests;
