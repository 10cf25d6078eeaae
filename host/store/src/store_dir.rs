//! A directory of the store held open: the graph root's and run root's record directories
//! (`overlay-layers`, `overlay-images`, ...), whose JSON and lock files are opened, written
//! and renamed relative to the handle, never by walking the path again.
//!
//! The path is kept for messages only. Once open, a directory that is renamed, or a path
//! component that is swapped for a symlink, does not redirect the store's writes: every file
//! is named by one component under the handle (`openat`, `renameat`, `fstatat`).

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

/// An open directory of the store, and the path it was opened by (for messages).
#[derive(Debug)]
pub struct StoreDir {
    fd: OwnedFd,
    path: PathBuf,
}

/// A file of a store directory: the directory's handle and one name under it.
#[derive(Debug, Clone)]
pub struct DirFile {
    dir: std::sync::Arc<StoreDir>,
    name: String,
}

impl StoreDir {
    /// Opens the directory at `path`.
    pub fn open(path: &Path) -> io::Result<StoreDir> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(StoreDir {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// Creates the directory at `path` and its missing parents, readable by the owner only
    /// (as upstream does), and opens it.
    pub fn create(path: &Path) -> io::Result<StoreDir> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)?;
        Self::open(path)
    }

    /// The path the directory was opened by.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of `name` in the directory, for messages.
    pub fn path_of(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The directory's device and inode: what identifies it however it is spelled.
    pub fn identity(&self) -> io::Result<(u64, u64)> {
        let st = rustix::fs::fstat(&self.fd)?;
        Ok((st.st_dev, st.st_ino))
    }

    /// Opens `name` with `flags` (`CLOEXEC` added), creating it with `mode` when `flags`
    /// say so.
    pub fn open_file(&self, name: &str, flags: OFlags, mode: u32) -> io::Result<File> {
        let fd = rustix::fs::openat(
            &self.fd,
            one_component(name)?,
            flags | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        )?;
        Ok(File::from(fd))
    }

    /// A new file in this directory that has no name, open for reading and writing: it
    /// lives on the directory's filesystem and vanishes when closed (`O_TMPFILE`; where the
    /// filesystem lacks it, a file made under a random name and unlinked at once).
    pub fn temp_file(&self) -> io::Result<File> {
        match rustix::fs::openat(
            &self.fd,
            ".",
            OFlags::RDWR | OFlags::TMPFILE | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        ) {
            Ok(fd) => Ok(File::from(fd)),
            // EOPNOTSUPP: not on this filesystem; EISDIR: a kernel without O_TMPFILE
            // (which reads it as O_DIRECTORY); EINVAL: flags it does not take.
            Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL) => self.named_temp_file(),
            Err(e) => Err(e.into()),
        }
    }

    /// [`StoreDir::temp_file`] without `O_TMPFILE`: made under a free random name, then
    /// unlinked.
    fn named_temp_file(&self) -> io::Result<File> {
        const TRIES: usize = 16;
        for _ in 0..TRIES {
            let name = format!(".tmp-{:016x}", rand::random::<u64>());
            let flags = OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW;
            match self.open_file(&name, flags, 0o600) {
                Ok(file) => {
                    self.remove_file(&name)?;
                    return Ok(file);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "no free temporary name in {} after {TRIES} tries",
                self.path.display()
            ),
        ))
    }

    /// Reads the whole of `name` into `data` (cleared first); `false` when there is no such
    /// file.
    pub fn read_into(&self, name: &str, data: &mut Vec<u8>) -> io::Result<bool> {
        data.clear();
        let mut file = match self.open_file(name, OFlags::RDONLY, 0) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        if let Ok(meta) = file.metadata() {
            data.reserve(usize::try_from(meta.len()).unwrap_or(0));
        }
        file.read_to_end(data)?;
        Ok(true)
    }

    /// The modification time of `name`, if it exists.
    pub fn modified(&self, name: &str) -> Option<SystemTime> {
        let st = rustix::fs::statat(&self.fd, one_component(name).ok()?, AtFlags::empty()).ok()?;
        let since_epoch = std::time::Duration::new(
            u64::try_from(st.st_mtime).ok()?,
            u32::try_from(st.st_mtime_nsec).ok()?,
        );
        SystemTime::UNIX_EPOCH.checked_add(since_epoch)
    }

    /// Whether `name` exists (through a symlink, as `Path::exists`).
    pub fn exists(&self, name: &str) -> bool {
        one_component(name)
            .and_then(|name| Ok(rustix::fs::statat(&self.fd, name, AtFlags::empty())?))
            .is_ok()
    }

    /// Replaces `name` with `data` so that a reader sees the old content or the new, never
    /// a mix (upstream's `ioutils.AtomicWriteFile`): a temp file in the directory, mode
    /// 0600, renamed over it. With `durable`, the data and then the directory are flushed
    /// and each flush checked (volatile files skip it, as upstream does, because they are
    /// meant to vanish on a crash anyway).
    pub fn write_atomic(&self, name: &str, data: &[u8], durable: bool) -> io::Result<()> {
        one_component(name)?;
        let tmp = format!(
            ".{name}.tmp{}-{}",
            std::process::id(),
            rand::random::<u32>()
        );
        let point = |step: &str| {
            crate::crash_point::crash_point_with(|| format!("atomic-write:{name}:{step}"))
        };
        let result = (|| {
            let mut file = self.open_file(
                &tmp,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW,
                0o600,
            )?;
            file.write_all(data)?;
            if durable {
                file.sync_all()?;
            }
            point("before-rename");
            self.rename(&tmp, self, name)?;
            point("after-rename");
            if durable {
                self.sync()?;
            }
            Ok(())
        })();
        if result.is_err() {
            // The write's error is the one to report; a temp file that stays is only garbage
            // (no reader opens it). After a successful rename there is none to remove.
            match rustix::fs::unlinkat(&self.fd, tmp.as_str(), AtFlags::empty()) {
                Err(e) if e != rustix::io::Errno::NOENT => {
                    log::debug!("removing {}: {e}", self.path_of(&tmp).display());
                }
                _ => {}
            }
        }
        result
    }

    /// Creates (0700; an existing one is fine) and opens the directory `name` in this one,
    /// never through a symlink.
    pub fn create_dir(&self, name: &str) -> io::Result<StoreDir> {
        match rustix::fs::mkdirat(&self.fd, one_component(name)?, Mode::from_raw_mode(0o700)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
        self.open_dir(name)
    }

    /// Opens the directory `name` in this one, never through a symlink.
    pub fn open_dir(&self, name: &str) -> io::Result<StoreDir> {
        let fd = rustix::fs::openat(
            &self.fd,
            one_component(name)?,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(StoreDir {
            fd,
            path: self.path_of(name),
        })
    }

    /// Opens `name` to read; `None` when there is no such file.
    pub fn open_existing(&self, name: &str) -> io::Result<Option<File>> {
        match self.open_file(name, OFlags::RDONLY, 0) {
            Ok(file) => Ok(Some(file)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Opens the directory `name` in this one; `None` when there is no such directory.
    pub fn open_existing_dir(&self, name: &str) -> io::Result<Option<StoreDir>> {
        match self.open_dir(name) {
            Ok(dir) => Ok(Some(dir)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The size of the file `name` (through a symlink, as `std::fs::metadata`).
    pub fn size_of(&self, name: &str) -> io::Result<u64> {
        let st = rustix::fs::statat(&self.fd, one_component(name)?, AtFlags::empty())?;
        Ok(u64::try_from(st.st_size).unwrap_or(0))
    }

    /// Copies the file `name` to `to_name` in `to` (0600, replacing what was there), never
    /// through a symlink at either end.
    pub fn copy_file(&self, name: &str, to: &StoreDir, to_name: &str) -> io::Result<u64> {
        let mut from = self.open_file(name, OFlags::RDONLY | OFlags::NOFOLLOW, 0)?;
        let mut copy = to.open_file(
            to_name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW,
            0o600,
        )?;
        io::copy(&mut from, &mut copy)
    }

    /// Removes `name` and, when it is a directory, everything below it, never following a
    /// symlink; a missing one is fine. Any name the directory lists will do (also one that
    /// is not UTF-8).
    pub fn remove_all(&self, name: impl AsRef<OsStr>) -> io::Result<()> {
        let name = one_os_component(name.as_ref())?;
        storage_driver::tree_copy::remove_tree_at(self.fd.as_fd(), name.as_bytes()).map_err(|e| {
            match e.errno {
                0 => io::Error::other(e),
                errno => io::Error::new(io::Error::from_raw_os_error(errno).kind(), e),
            }
        })
    }

    /// Whether `name` is a directory (a symlink to one is not).
    pub fn is_dir(&self, name: impl AsRef<OsStr>) -> bool {
        one_os_component(name.as_ref())
            .and_then(|name| {
                Ok(rustix::fs::statat(
                    &self.fd,
                    name,
                    AtFlags::SYMLINK_NOFOLLOW,
                )?)
            })
            .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)
    }

    /// The names in the directory (`.` and `..` left out).
    pub fn names(&self) -> io::Result<Vec<std::ffi::OsString>> {
        let mut dir = rustix::fs::Dir::read_from(&self.fd)?;
        let mut names = Vec::new();
        while let Some(entry) = dir.read() {
            let name = entry?.file_name().to_bytes().to_vec();
            if name != b"." && name != b".." {
                names.push(OsStr::from_bytes(&name).to_os_string());
            }
        }
        Ok(names)
    }

    /// Removes the file `name`; a missing one is fine.
    pub fn remove_file(&self, name: &str) -> io::Result<()> {
        match rustix::fs::unlinkat(&self.fd, one_component(name)?, AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Renames `name` to `to_name` in `to`, replacing what was there.
    pub fn rename(&self, name: &str, to: &StoreDir, to_name: &str) -> io::Result<()> {
        rustix::fs::renameat(
            &self.fd,
            one_component(name)?,
            &to.fd,
            one_component(to_name)?,
        )?;
        Ok(())
    }

    /// Flushes the directory's entries to disk (a rename or a new file in it).
    pub fn sync(&self) -> io::Result<()> {
        rustix::fs::fsync(&self.fd)?;
        Ok(())
    }
}

impl AsFd for StoreDir {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl DirFile {
    /// The file `name` of `dir`.
    pub fn new(dir: std::sync::Arc<StoreDir>, name: impl Into<String>) -> DirFile {
        DirFile {
            dir,
            name: name.into(),
        }
    }

    /// The file at `path`, its directory created (with its parents, 0700) and opened.
    pub fn create_at(path: &Path) -> io::Result<DirFile> {
        let (parent, name) = split_path(path)?;
        let dir = StoreDir::create(parent)?;
        Ok(DirFile::new(std::sync::Arc::new(dir), name))
    }

    /// The directory.
    pub fn dir(&self) -> &StoreDir {
        &self.dir
    }

    /// The directory, to share.
    pub fn shared_dir(&self) -> &std::sync::Arc<StoreDir> {
        &self.dir
    }

    /// The file's name in its directory.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file's path, for messages.
    pub fn path(&self) -> PathBuf {
        self.dir.path_of(&self.name)
    }

    /// The file `name` of the same directory.
    pub fn sibling(&self, name: impl Into<String>) -> DirFile {
        DirFile::new(std::sync::Arc::clone(&self.dir), name)
    }
}

/// The directory and the file name of `path` (a UTF-8 name: the store names its files).
pub fn split_path(path: &Path) -> io::Result<(&Path, &str)> {
    let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} does not end in a UTF-8 file name", path.display()),
        )
    })?;
    Ok((path.parent().unwrap_or(Path::new(".")), name))
}

/// `name` if it is one path component (the store names its files; a `/` would leave the
/// directory the handle holds).
fn one_component(name: &str) -> io::Result<&str> {
    one_os_component(OsStr::new(name)).map(|_| name)
}

/// `name` if it is one path component, for names the directory itself lists.
fn one_os_component(name: &OsStr) -> io::Result<&OsStr> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes == b"." || bytes == b".." || bytes.contains(&b'/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a file name"),
        ));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replaces_whole_file_with_mode_0600_and_no_leftovers() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = StoreDir::create(&tmp.path().join("sub")).expect("create");
        assert!(!dir.exists("x.json"));
        dir.write_atomic("x.json", b"[1]", true).expect("write");
        dir.write_atomic("x.json", b"[2,3]", false).expect("write");
        let path = tmp.path().join("sub/x.json");
        assert_eq!(std::fs::read(&path).expect("read"), b"[2,3]");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            std::fs::read_dir(tmp.path().join("sub"))
                .expect("ls")
                .count(),
            1,
            "temp files left behind"
        );
        let mut data = Vec::new();
        assert!(dir.read_into("x.json", &mut data).expect("read"));
        assert_eq!(data, b"[2,3]");
        assert!(!dir.read_into("missing.json", &mut data).expect("read"));
        assert!(data.is_empty());
        assert_eq!(
            dir.modified("x.json"),
            std::fs::metadata(&path).and_then(|m| m.modified()).ok()
        );
        assert_eq!(dir.modified("missing.json"), None);
    }

    /// Files are named under the handle: a directory renamed after it was opened still
    /// gets the writes, and nothing appears at its old path.
    #[test]
    fn writes_follow_the_handle_not_the_path() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = StoreDir::create(&tmp.path().join("a")).expect("create");
        std::fs::rename(tmp.path().join("a"), tmp.path().join("b")).expect("rename");
        std::fs::create_dir(tmp.path().join("a")).expect("mkdir");
        dir.write_atomic("x.json", b"[]", true).expect("write");
        assert!(tmp.path().join("b/x.json").exists());
        assert!(!tmp.path().join("a/x.json").exists());
    }

    #[test]
    fn subdirectories_renames_and_removals_stay_under_the_handle() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = StoreDir::create(tmp.path()).expect("create");
        let sub = dir.create_dir("staging").expect("mkdir");
        assert!(dir.create_dir("staging").is_ok(), "an existing one is fine");
        sub.write_atomic("a", b"1", false).expect("write");
        assert_eq!(
            sub.names().expect("ls"),
            vec![std::ffi::OsString::from("a")]
        );
        sub.rename("a", &dir, "b").expect("rename");
        assert_eq!(std::fs::read(tmp.path().join("b")).expect("read"), b"1");
        dir.remove_file("b").expect("remove");
        dir.remove_file("b").expect("a missing file is fine");
        // A symlink is not a directory to open.
        std::os::unix::fs::symlink("/", tmp.path().join("link")).expect("symlink");
        assert!(dir.open_dir("link").is_err());
        assert!(dir.create_dir("link").is_err());
    }

    #[test]
    fn names_with_more_than_one_component_are_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = StoreDir::create(tmp.path()).expect("create");
        for name in ["", ".", "..", "../x", "a/b"] {
            let err = dir.write_atomic(name, b"x", false).expect_err(name);
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{name}");
        }
    }

    /// Unnamed files (the tar-split's spill) are made under the handle, on its filesystem.
    #[test]
    fn temp_files_live_in_the_directory_without_a_name() {
        use std::io::{Seek, SeekFrom};
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = StoreDir::create(&tmp.path().join("store")).expect("create");
        // Renamed after it was opened: the files are still made under the handle.
        std::fs::rename(tmp.path().join("store"), tmp.path().join("moved")).expect("rename");
        let before = rustix::fs::fstat(&dir).expect("fstat").st_nlink;
        for mut file in [
            dir.temp_file().expect("O_TMPFILE"),
            dir.named_temp_file().expect("named, then unlinked"),
        ] {
            file.write_all(b"spilled").expect("write");
            file.seek(SeekFrom::Start(0)).expect("seek");
            let mut back = String::new();
            file.read_to_string(&mut back).expect("read");
            assert_eq!(back, "spilled");
            let st = rustix::fs::fstat(&file).expect("fstat");
            assert_eq!(st.st_nlink, 0, "no name");
            assert_eq!(st.st_dev, rustix::fs::fstat(&dir).expect("fstat").st_dev);
        }
        assert_eq!(
            std::fs::read_dir(tmp.path().join("moved"))
                .expect("ls")
                .count(),
            0
        );
        assert_eq!(rustix::fs::fstat(&dir).expect("fstat").st_nlink, before);
    }

    /// What the store removes, copies and measures is named under the handle, and a
    /// symlink is never followed out of it.
    #[test]
    fn removes_copies_and_measures_under_the_handle() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(outside.join("keep")).expect("mkdir");
        std::fs::write(outside.join("keep/file"), b"kept").expect("write");
        let dir = StoreDir::create(&tmp.path().join("store")).expect("create");
        let tree = tmp.path().join("store/tree");
        std::fs::create_dir_all(tree.join("a/b")).expect("mkdir");
        std::fs::write(tree.join("a/b/f"), b"x").expect("write");
        std::os::unix::fs::symlink(&outside, tree.join("a/link")).expect("symlink");
        std::os::unix::fs::symlink(&outside, tmp.path().join("store/link")).expect("symlink");

        assert!(dir.is_dir("tree"));
        assert!(!dir.is_dir("link"), "a symlink to a directory is not one");
        assert!(!dir.is_dir("missing"));
        dir.remove_all("tree").expect("remove");
        assert!(!tree.exists());
        dir.remove_all("link").expect("remove");
        assert!(std::fs::read(outside.join("keep/file")).is_ok_and(|d| d == b"kept"));
        dir.remove_all("missing").expect("a missing one is fine");
        assert!(dir.remove_all("..").is_err());
        assert!(dir.remove_all("a/b").is_err());

        dir.write_atomic("from", b"12345", false).expect("write");
        let other = dir.create_dir("sub").expect("mkdir");
        assert_eq!(dir.copy_file("from", &other, "to").expect("copy"), 5);
        assert_eq!(other.size_of("to").expect("size"), 5);
        let mut data = Vec::new();
        assert!(other.read_into("to", &mut data).expect("read"));
        assert_eq!(data, b"12345");
        assert!(dir.open_existing("nothing").expect("open").is_none());
        assert!(dir.open_existing("from").expect("open").is_some());
        assert!(dir.open_existing_dir("nothing").expect("open").is_none());
        assert!(dir.open_existing_dir("sub").expect("open").is_some());
        std::os::unix::fs::symlink(outside.join("keep/file"), tmp.path().join("store/sub/ln"))
            .expect("symlink");
        assert!(
            dir.copy_file("from", &other, "ln").is_err(),
            "copied through a symlink"
        );
        assert!(std::fs::read(outside.join("keep/file")).is_ok_and(|d| d == b"kept"));
    }
}
