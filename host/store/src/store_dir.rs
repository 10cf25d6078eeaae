//! A directory of the store held open: the graph root's and run root's record directories
//! (`overlay-layers`, `overlay-images`, ...), whose JSON and lock files are opened, written
//! and renamed relative to the handle, never by walking the path again.
//!
//! The path is kept for messages only. Once open, a directory that is renamed, or a path
//! component that is swapped for a symlink, does not redirect the store's writes: every file
//! is named by one component under the handle (`openat`, `renameat`, `fstatat`).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rustix::fs::{AtFlags, Mode, OFlags};

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

    /// The names in the directory (`.` and `..` left out).
    pub fn names(&self) -> io::Result<Vec<std::ffi::OsString>> {
        use std::os::unix::ffi::OsStrExt;
        let mut dir = rustix::fs::Dir::read_from(&self.fd)?;
        let mut names = Vec::new();
        while let Some(entry) = dir.read() {
            let name = entry?.file_name().to_bytes().to_vec();
            if name != b"." && name != b".." {
                names.push(std::ffi::OsStr::from_bytes(&name).to_os_string());
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
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
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
}
