//! [`SubvolumeGetter`]: reads a layer's files by path without `get`, for re-creating an
//! imported archive from tar-split. A subvolume holds the layer's whole tree, so a path is
//! looked up in it alone. Every open is confined to the subvolume (the toolkit's
//! [`openat_beneath`], `RESOLVE_IN_ROOT`), so a path from a tar-split file cannot leave the
//! layer.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use rustix::fd::OwnedFd;
use rustix::fs::{FileType, OFlags};
use storage_driver::confined::{openat_beneath, Symlinks};
use storage_driver::{DriverError, DriverResult, FileGetter};

/// Opens regular files of one subvolume by path.
#[derive(Debug)]
pub struct SubvolumeGetter {
    root: OwnedFd,
}

impl SubvolumeGetter {
    /// A getter over the layer tree at `dir`.
    pub fn open(dir: &Path) -> DriverResult<Self> {
        let root = File::open(dir)
            .map_err(|e| DriverError::io(format!("opening {}", dir.display()), e))?;
        Ok(SubvolumeGetter { root: root.into() })
    }

    /// Opens `path` (relative, `/`-separated bytes) if it is a regular file.
    fn open_regular(&self, path: &[u8]) -> DriverResult<Box<dyn Read + '_>> {
        let shown = String::from_utf8_lossy(path).into_owned();
        let relative: Vec<u8> = path
            .split(|b| *b == b'/')
            .filter(|c| !c.is_empty() && *c != b".")
            .collect::<Vec<_>>()
            .join(&b'/');
        if relative.is_empty() {
            return Err(not_found(&shown));
        }
        // Non-blocking, so a fifo cannot hang the reader; no final symlink followed.
        let fd = openat_beneath(
            &self.root,
            &relative,
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOFOLLOW,
            0,
            Symlinks::InRoot,
        )
        .map_err(|e| match e {
            rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR => not_found(&shown),
            other => DriverError::io(format!("opening {shown:?} in the layer"), other.into()),
        })?;
        let st = rustix::fs::fstat(&fd)
            .map_err(|e| DriverError::io(format!("stat of {shown:?}"), e.into()))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(not_found(&shown));
        }
        Ok(Box::new(File::from(fd)))
    }
}

/// The error for a path that is not a regular file of the layer.
fn not_found(path: &str) -> DriverError {
    DriverError::io(
        format!("file {path:?} not found in the layer"),
        io::Error::from(io::ErrorKind::NotFound),
    )
}

impl FileGetter for SubvolumeGetter {
    fn get(&mut self, path: &[u8]) -> DriverResult<Box<dyn Read + '_>> {
        self.open_regular(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    fn read(getter: &mut SubvolumeGetter, path: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        getter.get(path).ok()?.read_to_end(&mut out).ok()?;
        Some(out)
    }

    #[test]
    fn reads_regular_files_confined_to_the_layer() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let layer = tmp.path().join("layer");
        std::fs::create_dir_all(layer.join("etc")).expect("mkdir");
        std::fs::write(layer.join("etc/hostname"), "box\n").expect("write");
        std::fs::write(layer.join(OsStr::from_bytes(b"caf\xe9")), "latin1").expect("write");
        std::fs::write(tmp.path().join("secret"), "outside").expect("write");
        std::os::unix::fs::symlink("/secret", layer.join("abs")).expect("symlink");
        let mut g = SubvolumeGetter::open(&layer).expect("open");
        assert_eq!(
            read(&mut g, b"etc/hostname").as_deref(),
            Some(&b"box\n"[..])
        );
        assert_eq!(
            read(&mut g, b"/./etc//hostname").as_deref(),
            Some(&b"box\n"[..])
        );
        assert_eq!(read(&mut g, b"caf\xe9").as_deref(), Some(&b"latin1"[..]));
        assert_eq!(read(&mut g, b"../secret"), None, "confined");
        assert_eq!(read(&mut g, b"abs"), None, "a symlink is not followed");
        assert_eq!(read(&mut g, b"etc"), None, "a directory is not a file");
        assert_eq!(read(&mut g, b"nope"), None);
        assert_eq!(read(&mut g, b""), None);
    }
}
