//! A whole tree copied between confined directories (the components' `copy-tree` fast
//! path, and btrfs's copy of a parent no snapshot can reach): regular files reflinked
//! (`FICLONE`) where the filesystem can and copied in the kernel (`copy_file_range`)
//! otherwise. Both sides resolve every path beneath their own directory, so neither the
//! source nor the destination can name anything outside.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};

use rustix::fs::OFlags;
use storage_archive::fs::{FileKind, FileStat, FsError, FsErrorKind, FsRead, FsResult, FsWrite};

use crate::confined::ConfinedDir;

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

fn not_found(path: &[u8]) -> FsError {
    FsError::new(
        FsErrorKind::NotFound,
        format!(
            "copy-tree: {:?} does not exist",
            String::from_utf8_lossy(path)
        ),
    )
}

/// Copies the tree at `from` in `src` to the new path `to` in `dst`, keeping owners, modes,
/// times, xattrs and hard links (within the copied tree).
pub fn copy_tree<I: Read + ?Sized, O: Write + ?Sized>(
    src: &mut ConfinedDir<I, O>,
    from: &[u8],
    dst: &mut ConfinedDir<I, O>,
    to: &[u8],
) -> FsResult<()> {
    let mut copier = Copier {
        src,
        dst,
        links: BTreeMap::new(),
    };
    copier.copy(from, to)
}

struct Copier<'a, I: ?Sized, O: ?Sized> {
    src: &'a mut ConfinedDir<I, O>,
    dst: &'a mut ConfinedDir<I, O>,
    /// The first destination path of each multiply-linked source inode.
    links: BTreeMap<(u64, u64), Vec<u8>>,
}

impl<I: Read + ?Sized, O: Write + ?Sized> Copier<'_, I, O> {
    fn copy(&mut self, from: &[u8], to: &[u8]) -> FsResult<()> {
        let st = self.src.lstat(from)?.ok_or_else(|| not_found(from))?;
        match st.kind {
            FileKind::Directory => {
                self.dst.mkdir(to, 0o700)?;
                let mut entries = self.src.read_dir(from)?;
                entries.sort_by(|a, b| a.name.cmp(&b.name));
                for entry in entries {
                    self.copy(&join(from, &entry.name), &join(to, &entry.name))?;
                }
            }
            FileKind::Regular => {
                if st.nlink > 1 {
                    if let Some(first) = self.links.get(&(st.dev, st.ino)) {
                        // The metadata is the inode's: already set through the first link.
                        return self.dst.hardlink(first, to);
                    }
                    self.links.insert((st.dev, st.ino), to.to_vec());
                }
                self.copy_file(from, to)?;
            }
            FileKind::Symlink => {
                let target = self.src.readlink(from)?;
                self.dst.symlink(&target, to)?;
            }
            FileKind::CharDevice | FileKind::BlockDevice => {
                self.dst
                    .mknod(to, st.kind, st.mode, st.rdev_major, st.rdev_minor)?
            }
            FileKind::Fifo => self.dst.mkfifo(to, st.mode)?,
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
            .map_err(|e| FsError {
                kind: FsErrorKind::Other,
                errno: e.raw_os_error().unwrap_or(0),
                message: format!("copy-tree: {e}"),
            })
    }

    /// Owner, xattrs, mode (after the owner: chown clears setuid) and times (after the
    /// children, which change a directory's mtime).
    fn copy_metadata(&mut self, from: &[u8], to: &[u8], st: &FileStat) -> FsResult<()> {
        let dst = &mut *self.dst;
        dst.lchown(to, st.uid, st.gid)?;
        for name in self.src.list_xattrs(from)? {
            let value = self.src.get_xattr(from, &name)?;
            if let Some(value) = value {
                let dst = &mut *self.dst;
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
                    Err(e) => return Err(e),
                }
            }
        }
        let dst = &mut *self.dst;
        if st.kind != FileKind::Symlink {
            dst.chmod(to, st.mode)?;
        }
        dst.set_times(to, st.atime, st.mtime)
    }
}
