//! The `copy-tree` fast path: a whole tree copied by the host between lent directories,
//! regular files reflinked (`FICLONE`) where the filesystem can and copied in the kernel
//! (`copy_file_range`) otherwise. Both sides resolve every path beneath their own directory,
//! so neither the source nor the destination can name anything outside.

use std::collections::BTreeMap;
use std::fs::File;

use rustix::fs::OFlags;
use storage_archive::fs::{FileKind, FileStat, FsRead, FsWrite};

use super::bindings::storage::plugin::types;
use super::host_fs::{error_to_wit, LentDir};

type FsResult<T> = Result<T, types::FsError>;

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

fn not_found(path: &[u8]) -> types::FsError {
    types::FsError {
        kind: types::FsErrorKind::NotFound,
        errno: 0,
        message: format!(
            "copy-tree: {:?} does not exist",
            String::from_utf8_lossy(path)
        ),
    }
}

/// Copies the tree at `from` in `src` to the new path `to` in `dst`, keeping owners, modes,
/// times, xattrs and hard links (within the copied tree).
pub fn copy_tree(src: &mut LentDir, from: &[u8], dst: &mut LentDir, to: &[u8]) -> FsResult<()> {
    let mut copier = Copier {
        src,
        dst,
        links: BTreeMap::new(),
    };
    copier.copy(from, to)
}

struct Copier<'a> {
    src: &'a mut LentDir,
    dst: &'a mut LentDir,
    /// The first destination path of each multiply-linked source inode.
    links: BTreeMap<(u64, u64), Vec<u8>>,
}

impl Copier<'_> {
    fn copy(&mut self, from: &[u8], to: &[u8]) -> FsResult<()> {
        let st = self
            .src
            .confined_mut()
            .lstat(from)
            .map_err(error_to_wit)?
            .ok_or_else(|| not_found(from))?;
        match st.kind {
            FileKind::Directory => {
                self.dst
                    .confined_mut()
                    .mkdir(to, 0o700)
                    .map_err(error_to_wit)?;
                let mut entries = self
                    .src
                    .confined_mut()
                    .read_dir(from)
                    .map_err(error_to_wit)?;
                entries.sort_by(|a, b| a.name.cmp(&b.name));
                for entry in entries {
                    self.copy(&join(from, &entry.name), &join(to, &entry.name))?;
                }
            }
            FileKind::Regular => {
                if st.nlink > 1 {
                    if let Some(first) = self.links.get(&(st.dev, st.ino)) {
                        // The metadata is the inode's: already set through the first link.
                        return self
                            .dst
                            .confined_mut()
                            .hardlink(first, to)
                            .map_err(error_to_wit);
                    }
                    self.links.insert((st.dev, st.ino), to.to_vec());
                }
                self.copy_file(from, to)?;
            }
            FileKind::Symlink => {
                let target = self
                    .src
                    .confined_mut()
                    .readlink(from)
                    .map_err(error_to_wit)?;
                self.dst
                    .confined_mut()
                    .symlink(&target, to)
                    .map_err(error_to_wit)?;
            }
            FileKind::CharDevice | FileKind::BlockDevice => self
                .dst
                .confined_mut()
                .mknod(to, st.kind, st.mode, st.rdev_major, st.rdev_minor)
                .map_err(error_to_wit)?,
            FileKind::Fifo => self
                .dst
                .confined_mut()
                .mkfifo(to, st.mode)
                .map_err(error_to_wit)?,
            // A socket is a live endpoint, not content: upstream's copies skip them too.
            FileKind::Socket => return Ok(()),
        }
        self.copy_metadata(from, to, &st)
    }

    /// Reflinks the file, or copies its bytes in the kernel when the filesystem cannot.
    fn copy_file(&mut self, from: &[u8], to: &[u8]) -> FsResult<()> {
        let source = self.src.open_beneath(from, OFlags::RDONLY, 0)?;
        let target =
            self.dst
                .open_beneath(to, OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL, 0o600)?;
        if rustix::fs::ioctl_ficlone(&target, &source).is_ok() {
            return Ok(());
        }
        let mut source = File::from(source);
        let mut target = File::from(target);
        std::io::copy(&mut source, &mut target)
            .map(|_| ())
            .map_err(|e| super::host_fs::io_error(e, "copy-tree"))
    }

    /// Owner, xattrs, mode (after the owner: chown clears setuid) and times (after the
    /// children, which change a directory's mtime).
    fn copy_metadata(&mut self, from: &[u8], to: &[u8], st: &FileStat) -> FsResult<()> {
        let dst = self.dst.confined_mut();
        dst.lchown(to, st.uid, st.gid).map_err(error_to_wit)?;
        for name in self
            .src
            .confined_mut()
            .list_xattrs(from)
            .map_err(error_to_wit)?
        {
            let value = self
                .src
                .confined_mut()
                .get_xattr(from, &name)
                .map_err(error_to_wit)?;
            if let Some(value) = value {
                let dst = self.dst.confined_mut();
                match dst.set_xattr(to, &name, &value) {
                    Ok(()) => {}
                    // The destination filesystem may not take this namespace (or a symlink's
                    // user xattrs): the copy is still the tree.
                    Err(e)
                        if matches!(
                            e.kind,
                            storage_archive::fs::FsErrorKind::Unsupported
                                | storage_archive::fs::FsErrorKind::PermissionDenied
                        ) => {}
                    Err(e) => return Err(error_to_wit(e)),
                }
            }
        }
        let dst = self.dst.confined_mut();
        if st.kind != FileKind::Symlink {
            dst.chmod(to, st.mode).map_err(error_to_wit)?;
        }
        dst.set_times(to, st.atime, st.mtime).map_err(error_to_wit)
    }
}
