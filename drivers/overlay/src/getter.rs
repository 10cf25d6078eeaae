//! [`DiffDirGetter`]: reads a layer's files by path without mounting it, by looking in
//! its diff directory and then in its lowers' diff directories, top-down, as the overlay
//! would. A whiteout hides the path (and everything under a whited-out directory); an
//! opaque directory hides what lower layers have under it.
//!
//! Every open is confined to the diff directory it looks in (the toolkit's
//! [`openat_beneath`], `RESOLVE_IN_ROOT`), so a path from a tar-split file cannot leave the
//! layer, and what is returned is a regular file: a fifo where a changed layer had a file
//! never blocks an open.

use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;

use rustix::fd::OwnedFd;
use rustix::fs::{FileType, OFlags};
use storage_driver::confined::{open_regular_at, openat_beneath, Symlinks};
use storage_driver::{DriverError, DriverResult, FileGetter};

/// What one diff directory says about a path.
enum Lookup {
    /// The file is here.
    Found(File),
    /// The path (or an ancestor) is whited out here: lower layers must not be consulted.
    Hidden,
    /// Not here; lower layers may have it.
    Absent,
}

/// Finds files of a layer in its diff directory and its lowers' diff directories.
#[derive(Debug)]
pub struct DiffDirGetter {
    /// Diff directories, the layer's own first.
    dirs: Vec<PathBuf>,
    /// Whiteouts are `.wh.<name>` files (mount_program) instead of 0:0 character devices.
    aufs_whiteouts: bool,
    /// The layer's own diff directory, opened on first use.
    top: Option<OwnedFd>,
}

impl DiffDirGetter {
    /// A getter over `dirs`, topmost first.
    pub fn new(dirs: Vec<PathBuf>, aufs_whiteouts: bool) -> Self {
        DiffDirGetter {
            dirs,
            aufs_whiteouts,
            top: None,
        }
    }
}

fn open_in(root: &OwnedFd, path: &[u8], flags: OFlags) -> io::Result<OwnedFd> {
    openat_beneath(root, path, flags | OFlags::NOFOLLOW, 0, Symlinks::InRoot)
        .map_err(io::Error::from)
}

fn is_whiteout_device(fd: &OwnedFd) -> io::Result<bool> {
    let st = rustix::fs::fstat(fd)?;
    Ok(FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice && st.st_rdev == 0)
}

fn is_opaque(root: &OwnedFd, dir: &[u8]) -> bool {
    let Ok(fd) = open_in(root, dir, OFlags::RDONLY | OFlags::DIRECTORY) else {
        return false;
    };
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|name| {
            let mut buf = [0u8; 4];
            matches!(rustix::fs::fgetxattr(&fd, *name, &mut buf), Ok(1) if buf[0] == b'y')
        })
}

fn not_found(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR))
}

impl DiffDirGetter {
    /// Looks `components` up in one diff directory.
    fn lookup(&self, dir: &PathBuf, components: &[&[u8]]) -> io::Result<(Lookup, bool)> {
        let root: OwnedFd = File::open(dir)?.into();
        let mut opaque_above = false;
        for depth in 1..=components.len() {
            let prefix = components[..depth].join(&b'/');
            if self.aufs_whiteouts {
                let parent = components[..depth - 1].join(&b'/');
                let mut marker = parent.clone();
                if !marker.is_empty() {
                    marker.push(b'/');
                }
                marker.extend_from_slice(b".wh.");
                marker.extend_from_slice(components[depth - 1]);
                if open_in(&root, &marker, OFlags::PATH).is_ok() {
                    return Ok((Lookup::Hidden, false));
                }
            }
            match open_in(&root, &prefix, OFlags::PATH) {
                Ok(fd) => {
                    if is_whiteout_device(&fd)? {
                        return Ok((Lookup::Hidden, false));
                    }
                }
                Err(e) if not_found(&e) => return Ok((Lookup::Absent, opaque_above)),
                Err(e) => return Err(e),
            }
            if depth < components.len() && is_opaque(&root, &prefix) {
                opaque_above = true;
            }
        }
        let (name, parents) = components
            .split_last()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        let parent = open_in(
            &root,
            &parents.join(&b'/'),
            OFlags::PATH | OFlags::DIRECTORY,
        )?;
        let file = open_regular_at(&parent, name).map_err(io::Error::other)?;
        Ok((Lookup::Found(file), opaque_above))
    }
}

/// Opens `components` beneath `root` if it is a regular file there (confined, no final
/// symlink; non-blocking so a fifo cannot hang us). One confined open and a status, the
/// cost of the fast path that tar-split reassembly takes for every file: a device node put
/// where the layer had a file is opened (its driver's open runs) before it is refused, which
/// [`open_regular_at`], two system calls more a file, would avoid.
fn open_regular(root: &OwnedFd, components: &[&[u8]]) -> Option<File> {
    let fd = open_in(
        root,
        &components.join(&b'/'),
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY,
    )
    .ok()?;
    let st = rustix::fs::fstat(&fd).ok()?;
    (FileType::from_raw_mode(st.st_mode) == FileType::RegularFile).then(|| File::from(fd))
}

impl FileGetter for DiffDirGetter {
    fn get(&mut self, path: &[u8]) -> DriverResult<Box<dyn Read + '_>> {
        let components: Vec<&[u8]> = path
            .split(|b| *b == b'/')
            .filter(|c| !c.is_empty() && *c != b".")
            .collect();
        let shown = String::from_utf8_lossy(path);
        let missing = || {
            DriverError::io(
                format!("file {shown:?} not found in the layer"),
                io::Error::from(io::ErrorKind::NotFound),
            )
        };
        if components.is_empty() {
            return Err(missing());
        }
        // Fast path: a regular file in the layer's own diff directory is what the overlay
        // shows, whatever lies below; tar-split reassembly of an imported layer only ever
        // asks for such files. One confined open instead of a walk per component.
        if self.top.is_none() {
            self.top = self
                .dirs
                .first()
                .and_then(|d| File::open(d).ok())
                .map(OwnedFd::from);
        }
        if let Some(file) = self
            .top
            .as_ref()
            .and_then(|top| open_regular(top, &components))
        {
            return Ok(Box::new(file));
        }
        for dir in &self.dirs {
            let (found, opaque) = self.lookup(dir, &components).map_err(|e| {
                DriverError::io(format!("opening {shown:?} in {}", dir.display()), e)
            })?;
            match found {
                Lookup::Found(file) => return Ok(Box::new(file)),
                Lookup::Hidden => return Err(missing()),
                Lookup::Absent if opaque => return Err(missing()),
                Lookup::Absent => {}
            }
        }
        Err(missing())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(getter: &mut DiffDirGetter, path: &str) -> Option<String> {
        let mut s = String::new();
        getter
            .get(path.as_bytes())
            .ok()?
            .read_to_string(&mut s)
            .ok()?;
        Some(s)
    }

    /// Makes a node of `kind` at `path` (0600).
    fn mknod(path: &std::path::Path, kind: FileType, dev: rustix::fs::Dev) {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            path,
            kind,
            rustix::fs::Mode::from_raw_mode(0o600),
            dev,
        )
        .unwrap_or_else(|e| panic!("mknod {}: {e}", path.display()));
    }

    #[test]
    fn top_down_with_whiteouts_and_escapes() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (top, low) = (tmp.path().join("top"), tmp.path().join("low"));
        for d in [&top, &low] {
            std::fs::create_dir_all(d.join("dir")).expect("mkdir");
        }
        std::fs::write(low.join("a"), "low a").expect("write");
        std::fs::write(low.join("b"), "low b").expect("write");
        std::fs::write(low.join("dir/c"), "low c").expect("write");
        std::fs::write(top.join("a"), "top a").expect("write");
        std::fs::write(tmp.path().join("secret"), "outside").expect("write");
        mknod(&top.join("b"), FileType::CharacterDevice, 0); // a whiteout (needs root)
        std::fs::create_dir_all(&low).expect("dir");
        let mut g = DiffDirGetter::new(vec![top.clone(), low.clone()], false);
        assert_eq!(read(&mut g, "a").as_deref(), Some("top a"));
        assert_eq!(read(&mut g, "/dir/c").as_deref(), Some("low c"));
        assert_eq!(read(&mut g, "b"), None, "whited out");
        assert_eq!(read(&mut g, "../secret"), None, "confined");
        assert_eq!(read(&mut g, "nope"), None);
        // A fifo or a device where a file is asked for is refused, not opened (the fifo
        // would block the open; the device's driver would be called).
        mknod(&top.join("fifo"), FileType::Fifo, 0);
        mknod(
            &low.join("null"),
            FileType::CharacterDevice,
            rustix::fs::makedev(1, 3),
        );
        for name in ["fifo", "null"] {
            let err = g.get(name.as_bytes()).err().expect("refused");
            assert!(err.to_string().contains("not a regular file"), "{err}");
        }

        // AUFS-style whiteouts when a mount program is used.
        std::fs::write(top.join("dir/.wh.c"), "").expect("write");
        let mut aufs = DiffDirGetter::new(vec![top, low], true);
        assert_eq!(read(&mut aufs, "dir/c"), None);
        assert_eq!(read(&mut aufs, "a").as_deref(), Some("top a"));
    }
}
