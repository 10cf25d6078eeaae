//! Sharing the extents of identical files (upstream's `internal/dedup`, behind
//! `storage dedup`).
//!
//! [`dedup_dirs`] walks layer directories, groups regular files by a [`HashMethod`] and asks
//! the kernel (`FIDEDUPERANGE`) to make each later file of a group share the extents of an
//! earlier one. The kernel compares the bytes itself and refuses ranges that differ, so a
//! weak hash (`size`) only costs wasted calls, never wrong data. As upstream:
//! - empty files and further links of an already seen inode are skipped;
//! - the result counts the bytes the kernel reports deduplicated, which includes extents
//!   already shared by an earlier run;
//! - a filesystem without reflinks (`EOPNOTSUPP`: tmpfs, ext4) ends the walk quietly with
//!   what was counted so far; any other failure on one file is logged and the file skipped.
//!
//! Files are reached through directory handles: every directory is opened relative to its
//! parent without following symlinks, and a file is reopened later by its path beneath the
//! walked root (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`), so a symlink in a
//! layer can never point the ioctl outside it. The ioctl itself sits behind [`Deduper`], so
//! the grouping logic is tested without a reflink filesystem.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use sha2::Digest;

/// How files are grouped as candidates for sharing (`--hash-method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HashMethod {
    /// CRC-64 (ECMA, as Go's `hash/crc64`) of the content: upstream's default.
    #[default]
    Crc,
    /// The file size alone; the kernel's byte comparison does the rest.
    Size,
    /// SHA-256 of the content.
    Sha256,
}

impl HashMethod {
    /// Parses upstream's names: `crc`, `size`, `sha256`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "crc" => Some(HashMethod::Crc),
            "size" => Some(HashMethod::Size),
            "sha256" => Some(HashMethod::Sha256),
            _ => None,
        }
    }
}

/// What a dedup run achieved (upstream's `DedupResult`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DedupResult {
    /// Bytes the kernel reported as shared, earlier runs' sharing included.
    pub deduped: u64,
}

pub use crate::syscalls::RangeOutcome;

/// The `FIDEDUPERANGE` ioctl, one source range against one destination.
pub trait Deduper {
    /// Shares `len` bytes at `offset` of `src` with the same range of `dst`. An `Err` is the
    /// ioctl's own failure (`EOPNOTSUPP` when the filesystem has no reflinks).
    fn dedupe_range(
        &self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        offset: u64,
        len: u64,
    ) -> Result<RangeOutcome, Errno>;
}

/// The real ioctl.
#[derive(Debug, Clone, Copy, Default)]
pub struct KernelDeduper;

impl Deduper for KernelDeduper {
    fn dedupe_range(
        &self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        offset: u64,
        len: u64,
    ) -> Result<RangeOutcome, Errno> {
        crate::syscalls::dedupe_range(src, dst, offset, len)
            .map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::IO))
    }
}

/// Why sharing one pair of files stopped.
enum PairError {
    /// The filesystem has no reflinks: the whole run ends.
    NotSupported,
    /// This pair failed; other candidates may still work.
    Failed(String),
}

/// Shares as much of `dst` with `src` as the kernel allows, looping over the kernel's
/// per-call cap; returns the bytes shared.
fn dedup_pair(deduper: &dyn Deduper, src: &File, dst: &File, size: u64) -> Result<u64, PairError> {
    let mut done = 0u64;
    while done < size {
        match deduper.dedupe_range(src.as_fd(), dst.as_fd(), done, size - done) {
            Ok(RangeOutcome::Deduped(0)) | Ok(RangeOutcome::Differs) => break,
            Ok(RangeOutcome::Deduped(n)) => done += n,
            Ok(RangeOutcome::Refused(e)) => {
                if done == 0 {
                    return Err(PairError::Failed(e.to_string()));
                }
                break;
            }
            Err(e) if e == Errno::OPNOTSUPP => return Err(PairError::NotSupported),
            Err(e) => return Err(PairError::Failed(e.to_string())),
        }
    }
    Ok(done)
}

/// A file seen earlier: which root, and its path beneath it.
#[derive(Debug, Clone)]
struct Seen {
    root: usize,
    rel: PathBuf,
}

/// The walk's state across every root.
struct Run<'a> {
    roots: &'a [PathBuf],
    method: HashMethod,
    deduper: &'a dyn Deduper,
    groups: HashMap<Vec<u8>, Vec<Seen>>,
    visited: HashSet<(u64, u64)>,
    result: DedupResult,
}

/// Reports a file that could not be looked at, and goes on (upstream logs these).
fn skip(path: &Path, what: &str, err: impl std::fmt::Display) {
    log::debug!("dedup: {what} {}: {err}", path.display());
}

/// Opens a directory beneath `dir` without following a symlink at `name`.
fn open_dir_at(dir: BorrowedFd<'_>, name: &Path) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Opens a file of a walked root by its path beneath it, refusing every symlink.
fn open_beneath(root: &Path, rel: &Path, flags: OFlags) -> Result<File, Errno> {
    let root_fd = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let fd = crate::confined::openat_beneath(
        &root_fd,
        rel.as_os_str().as_bytes(),
        flags | OFlags::NOFOLLOW,
        0,
        crate::confined::Symlinks::Refused,
    )?;
    Ok(File::from(fd))
}

/// The grouping key of a file's content.
fn content_key(method: HashMethod, file: &mut File, size: u64) -> std::io::Result<Vec<u8>> {
    match method {
        HashMethod::Size => Ok(size.to_string().into_bytes()),
        HashMethod::Crc => {
            let mut digest = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Xz);
            read_all(file, |chunk| digest.update(chunk))?;
            Ok(digest.finalize().to_be_bytes().to_vec())
        }
        HashMethod::Sha256 => {
            let mut hasher = sha2::Sha256::new();
            read_all(file, |chunk| hasher.update(chunk))?;
            Ok(hasher.finalize().to_vec())
        }
    }
}

fn read_all(file: &mut File, mut sink: impl FnMut(&[u8])) -> std::io::Result<()> {
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        sink(&buf[..n]);
    }
}

impl Run<'_> {
    /// Walks one directory (its fd, its path beneath root `root`).
    fn walk_dir(&mut self, root: usize, dir: &OwnedFd, rel: &Path) -> Result<(), PairError> {
        let full = self.roots[root].join(rel);
        let mut entries: Vec<(std::ffi::OsString, FileType)> = Vec::new();
        let reader = match rustix::fs::Dir::read_from(dir) {
            Ok(r) => r,
            Err(e) => {
                skip(&full, "failed to read", e);
                return Ok(());
            }
        };
        for entry in reader {
            match entry {
                Ok(e) => {
                    let name = std::ffi::OsStr::from_bytes(e.file_name().to_bytes());
                    if name == "." || name == ".." {
                        continue;
                    }
                    entries.push((name.to_os_string(), e.file_type()));
                }
                Err(e) => {
                    skip(&full, "failed to read", e);
                    break;
                }
            }
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, kind) in entries {
            let child_rel = rel.join(&name);
            let kind = if kind == FileType::Unknown {
                match rustix::fs::statat(dir, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => FileType::from_raw_mode(st.st_mode),
                    Err(e) => {
                        skip(&full.join(&name), "failed to stat", e);
                        continue;
                    }
                }
            } else {
                kind
            };
            match kind {
                FileType::Directory => match open_dir_at(dir.as_fd(), Path::new(&name)) {
                    Ok(sub) => self.walk_dir(root, &sub, &child_rel)?,
                    Err(e) => skip(&full.join(&name), "failed to open", e),
                },
                FileType::RegularFile => self.file(root, dir, &name, child_rel)?,
                _ => {}
            }
        }
        Ok(())
    }

    /// Handles one regular file: group it, or share it with an earlier one of its group.
    fn file(
        &mut self,
        root: usize,
        dir: &OwnedFd,
        name: &std::ffi::OsStr,
        rel: PathBuf,
    ) -> Result<(), PairError> {
        let path = self.roots[root].join(&rel);
        let fd = match rustix::fs::openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(e) => {
                skip(&path, "failed to open", e);
                return Ok(());
            }
        };
        let st = match rustix::fs::fstat(&fd) {
            Ok(st) => st,
            Err(e) => {
                skip(&path, "failed to stat", e);
                return Ok(());
            }
        };
        let size = st.st_size as u64;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile || size == 0 {
            return Ok(());
        }
        if !self.visited.insert((st.st_dev, st.st_ino)) {
            return Ok(());
        }
        let mut file = File::from(fd);
        let key = match content_key(self.method, &mut file, size) {
            Ok(k) => k,
            Err(e) => {
                skip(&path, "failed to get checksum of", e);
                return Ok(());
            }
        };
        let Some(candidates) = self.groups.get(&key).cloned() else {
            self.groups.insert(key, vec![Seen { root, rel }]);
            return Ok(());
        };
        let dst = match rustix::fs::openat(
            dir,
            name,
            OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => File::from(fd),
            Err(e) => {
                skip(&path, "failed to open for deduplication", e);
                return Ok(());
            }
        };
        let mut shared = 0u64;
        for src in &candidates {
            let src_path = self.roots[src.root].join(&src.rel);
            let src_file = match open_beneath(&self.roots[src.root], &src.rel, OFlags::RDONLY) {
                Ok(f) => f,
                Err(e) => {
                    skip(&src_path, "failed to open", e);
                    continue;
                }
            };
            match dedup_pair(self.deduper, &src_file, &dst, size) {
                Ok(0) => {}
                Ok(n) => {
                    log::debug!(
                        "Deduped {:?} -> {:?} ({n} bytes)",
                        src_path.display(),
                        path.display()
                    );
                    shared = n;
                    break;
                }
                Err(PairError::NotSupported) => return Err(PairError::NotSupported),
                Err(PairError::Failed(e)) => {
                    log::debug!("Failed to deduplicate: {e}");
                }
            }
        }
        if shared == 0 {
            if let Some(group) = self.groups.get_mut(&key) {
                group.push(Seen { root, rel });
            }
        }
        self.result.deduped += shared;
        Ok(())
    }
}

/// Shares the extents of identical regular files found under `dirs` (each walked without
/// following symlinks), with the kernel's `FIDEDUPERANGE`.
pub fn dedup_dirs(dirs: &[PathBuf], method: HashMethod) -> DedupResult {
    dedup_dirs_with(dirs, method, &KernelDeduper)
}

/// [`dedup_dirs`] with another [`Deduper`] (tests).
pub fn dedup_dirs_with(dirs: &[PathBuf], method: HashMethod, deduper: &dyn Deduper) -> DedupResult {
    let mut run = Run {
        roots: dirs,
        method,
        deduper,
        groups: HashMap::new(),
        visited: HashSet::new(),
        result: DedupResult::default(),
    };
    for (index, dir) in dirs.iter().enumerate() {
        log::debug!("Deduping directory {}", dir.display());
        let fd = match rustix::fs::open(
            dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(e) => {
                skip(dir, "failed to open", e);
                continue;
            }
        };
        match run.walk_dir(index, &fd, Path::new("")) {
            Ok(()) => {}
            // No reflinks here: stop quietly with what was counted (as upstream).
            Err(PairError::NotSupported) => break,
            Err(PairError::Failed(_)) => {}
        }
    }
    run.result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::os::fd::AsRawFd;

    /// Compares the two files' bytes like the kernel does and records the calls.
    #[derive(Default)]
    struct Comparing {
        calls: RefCell<Vec<(u64, u64)>>,
        cap: Option<u64>,
        unsupported: bool,
    }

    fn read_fd(fd: BorrowedFd<'_>) -> Vec<u8> {
        std::fs::read(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("read through fd")
    }

    impl Deduper for Comparing {
        fn dedupe_range(
            &self,
            src: BorrowedFd<'_>,
            dst: BorrowedFd<'_>,
            offset: u64,
            len: u64,
        ) -> Result<RangeOutcome, Errno> {
            self.calls.borrow_mut().push((offset, len));
            if self.unsupported {
                return Err(Errno::OPNOTSUPP);
            }
            let (a, b) = (read_fd(src), read_fd(dst));
            let len = self.cap.map_or(len, |c| c.min(len));
            let range = offset as usize..(offset + len) as usize;
            if b.len() < range.end || a.get(range.clone()) != b.get(range) {
                return Ok(RangeOutcome::Differs);
            }
            Ok(RangeOutcome::Deduped(len))
        }
    }

    fn tree(files: &[(&str, &[u8])]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, content) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, content).expect("write");
        }
        dir
    }

    #[test]
    fn identical_files_across_layers_are_shared_once_each() {
        let a = tree(&[("x", b"same bytes"), ("d/y", b"other"), ("empty", b"")]);
        let b = tree(&[("x", b"same bytes"), ("z", b"OTHER"), ("empty", b"")]);
        let c = tree(&[("deep/er/x", b"same bytes")]);
        let dirs = vec![a.path().into(), b.path().into(), c.path().into()];
        for method in [HashMethod::Crc, HashMethod::Sha256, HashMethod::Size] {
            let d = Comparing::default();
            let r = dedup_dirs_with(&dirs, method, &d);
            assert_eq!(r.deduped, 20, "{method:?}");
        }
        // size groups "other" and "OTHER" too: the comparison refuses, nothing counted.
        let d = Comparing::default();
        dedup_dirs_with(&dirs, HashMethod::Size, &d);
        assert_eq!(d.calls.borrow().len(), 3);
        let d = Comparing::default();
        dedup_dirs_with(&dirs, HashMethod::Sha256, &d);
        assert_eq!(d.calls.borrow().len(), 2);
    }

    #[test]
    fn a_refused_file_joins_its_group_as_a_source() {
        // Same size, three contents: with `size`, the third matches the second.
        let a = tree(&[("1", b"aaaa"), ("2", b"bbbb"), ("3", b"bbbb")]);
        let d = Comparing::default();
        let r = dedup_dirs_with(&[a.path().into()], HashMethod::Size, &d);
        assert_eq!(r.deduped, 4);
        assert_eq!(d.calls.borrow().len(), 3, "2 vs 1, 3 vs 1, 3 vs 2");
    }

    #[test]
    fn partial_answers_are_continued_to_the_end() {
        let a = tree(&[("1", b"0123456789"), ("2", b"0123456789")]);
        let d = Comparing {
            cap: Some(4),
            ..Default::default()
        };
        let r = dedup_dirs_with(&[a.path().into()], HashMethod::Crc, &d);
        assert_eq!(r.deduped, 10);
        assert_eq!(*d.calls.borrow(), vec![(0, 10), (4, 6), (8, 2)]);
    }

    #[test]
    fn no_reflinks_stops_quietly() {
        let a = tree(&[("1", b"abc"), ("2", b"abc"), ("3", b"abc")]);
        let b = tree(&[("1", b"abc")]);
        let d = Comparing {
            unsupported: true,
            ..Default::default()
        };
        let r = dedup_dirs_with(&[a.path().into(), b.path().into()], HashMethod::Crc, &d);
        assert_eq!(r.deduped, 0);
        assert_eq!(d.calls.borrow().len(), 1, "the first refusal ends the run");
    }

    #[test]
    fn hard_links_and_symlinks_are_not_candidates() {
        let a = tree(&[("1", b"abc")]);
        std::fs::hard_link(a.path().join("1"), a.path().join("2")).expect("link");
        std::os::unix::fs::symlink(a.path().join("1"), a.path().join("3")).expect("symlink");
        let d = Comparing::default();
        let r = dedup_dirs_with(&[a.path().into()], HashMethod::Crc, &d);
        assert_eq!(r.deduped, 0);
        assert!(d.calls.borrow().is_empty());
    }

    #[test]
    fn kernel_ioctl_on_a_filesystem_without_reflinks() {
        // /dev/shm is tmpfs: no remap_file_range, so the ioctl itself says EOPNOTSUPP.
        let Ok(dir) = tempfile::tempdir_in("/dev/shm") else {
            return;
        };
        std::fs::write(dir.path().join("1"), b"abc").expect("write");
        std::fs::write(dir.path().join("2"), b"abc").expect("write");
        let src = File::open(dir.path().join("1")).expect("open");
        let dst = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join("2"))
            .expect("open");
        let r = KernelDeduper.dedupe_range(src.as_fd(), dst.as_fd(), 0, 3);
        assert_eq!(r, Err(Errno::OPNOTSUPP));
        let r = dedup_dirs(&[dir.path().into()], HashMethod::Crc);
        assert_eq!(r.deduped, 0);
    }

    #[test]
    fn hash_method_names() {
        assert_eq!(HashMethod::parse("crc"), Some(HashMethod::Crc));
        assert_eq!(HashMethod::parse("size"), Some(HashMethod::Size));
        assert_eq!(HashMethod::parse("sha256"), Some(HashMethod::Sha256));
        assert_eq!(HashMethod::parse("md5"), None);
        assert_eq!(HashMethod::default(), HashMethod::Crc);
    }
}
