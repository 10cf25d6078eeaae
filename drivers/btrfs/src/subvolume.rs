//! Subvolumes by path: create, snapshot, and delete with every subvolume nested inside
//! (upstream's `subvolDelete` walk), through the btrfs ioctls of the driver's [`Syscalls`].

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use storage_driver::syscalls::btrfs::FIRST_FREE_OBJECTID;
use storage_driver::syscalls::Syscalls;

/// Opens a directory for an ioctl (read-only, not following a final symlink).
fn open_dir(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| annotate(e, "opening", path))
}

/// `e` with what was being done to which path (`e` kept as the source, its kind kept).
fn annotate(e: io::Error, what: impl Into<String>, path: &Path) -> io::Error {
    io::Error::new(
        e.kind(),
        PathError {
            what: what.into(),
            path: path.to_path_buf(),
            source: Box::new(e),
        },
    )
}

/// What was being done to which path, and the error it failed with.
#[derive(Debug)]
struct PathError {
    what: String,
    path: PathBuf,
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl std::fmt::Display for PathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: ", self.what, self.path.display())?;
        match self.source.downcast_ref::<io::Error>() {
            Some(e) => f.write_str(&storage_archive::error::os_error_text(e)),
            None => write!(f, "{}", self.source),
        }
    }
}

impl std::error::Error for PathError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// Whether `path` is the root of a subvolume (its inode is `BTRFS_FIRST_FREE_OBJECTID`);
/// a missing path is not one.
pub fn is_subvolume(path: &Path) -> io::Result<bool> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) => Ok(meta.is_dir() && meta.ino() == FIRST_FREE_OBJECTID),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Creates the empty subvolume `dir/name`.
pub fn create(sys: &dyn Syscalls, dir: &Path, name: &OsStr) -> io::Result<()> {
    let parent = open_dir(dir)?;
    sys.btrfs_subvol_create(parent.as_fd(), name)
        .map_err(|e| annotate(e, "creating btrfs subvolume", &dir.join(name)))
}

/// Creates `dir/name` as a writable snapshot of the subvolume `source`.
pub fn snapshot(sys: &dyn Syscalls, source: &Path, dir: &Path, name: &OsStr) -> io::Result<()> {
    let src = open_dir(source)?;
    let dest = open_dir(dir)?;
    sys.btrfs_snapshot(src.as_fd(), dest.as_fd(), name)
        .map_err(|e| {
            annotate(
                e,
                format!("snapshotting {} as", source.display()),
                &dir.join(name),
            )
        })
}

/// The subvolume (and level-0 qgroup) ID of the subvolume at `path`.
pub fn id_of(sys: &dyn Syscalls, path: &Path) -> io::Result<u64> {
    sys.btrfs_subvolume_id(open_dir(path)?.as_fd())
        .map_err(|e| annotate(e, "looking up subvolume", path))
}

/// Deletes the subvolume `dir/name` and every subvolume nested in it, deepest first.
/// With `quota`, the qgroup of each deleted subvolume is destroyed too (a failure there
/// is only reported: the subvolume is gone either way).
pub fn delete(sys: &dyn Syscalls, dir: &Path, name: &OsStr, quota: bool) -> io::Result<()> {
    let path = dir.join(name);
    delete_nested(sys, &path, quota)?;
    if quota {
        match id_of(sys, &path).and_then(|id| Ok((id, open_dir(dir)?))) {
            Ok((id, parent)) => {
                if let Err(e) = sys.btrfs_qgroup_destroy(parent.as_fd(), id) {
                    log::debug!("btrfs: destroying qgroup 0/{id} of {}: {e}", path.display());
                }
            }
            Err(e) => log::debug!("btrfs: looking up the qgroup of {}: {e}", path.display()),
        }
    }
    let parent = open_dir(dir)?;
    sys.btrfs_subvol_destroy(parent.as_fd(), name)
        .map_err(|e| annotate(e, "destroying btrfs subvolume", &path))
}

/// Deletes the subvolumes found anywhere beneath `path` (not `path` itself).
fn delete_nested(sys: &dyn Syscalls, path: &Path, quota: bool) -> io::Result<()> {
    let entries = match std::fs::read_dir(path) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(annotate(e, "reading", path)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| annotate(e, "reading", path))?;
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if !kind.is_dir() {
            continue;
        }
        let child = entry.path();
        if is_subvolume(&child)? {
            delete(sys, path, &entry.file_name(), quota)?;
        } else {
            delete_nested(sys, &child, quota)?;
        }
    }
    Ok(())
}

/// Copies the contents of the layer tree `src` into the empty directory `dst` (owners,
/// modes, times, xattrs; regular files reflinked where the filesystem can), then gives
/// `dst` the owner and permissions of `src`. For a parent no snapshot can reach (a
/// read-only store on another filesystem).
pub fn copy_contents(sys: &dyn Syscalls, src: &Path, dst: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::PermissionsExt;
    use storage_driver::confined::ConfinedDir;
    use storage_driver::tree_copy::copy_tree;

    let mut from: ConfinedDir<dyn io::Read, dyn io::Write> = ConfinedDir::open(src)?;
    let mut to: ConfinedDir<dyn io::Read, dyn io::Write> = ConfinedDir::open(dst)?;
    for entry in std::fs::read_dir(src).map_err(|e| annotate(e, "reading", src))? {
        let name = entry.map_err(|e| annotate(e, "reading", src))?.file_name();
        copy_tree(&mut from, name.as_bytes(), &mut to, name.as_bytes()).map_err(|e| {
            io::Error::other(PathError {
                what: "copying".into(),
                path: src.join(&name),
                source: Box::new(e),
            })
        })?;
    }
    let meta = std::fs::symlink_metadata(src).map_err(|e| annotate(e, "stat of", src))?;
    sys.chown(dst, meta.uid(), meta.gid())
        .map_err(|e| annotate(e, "chown", dst))?;
    std::fs::set_permissions(dst, std::fs::Permissions::from_mode(meta.mode() & 0o7777))
        .map_err(|e| annotate(e, "chmod", dst))
}

#[cfg(test)]
mod without_root {
    use super::*;
    use std::path::PathBuf;
    use storage_driver::syscalls::{Call, RecordingSyscalls};

    fn setup() -> (tempfile::TempDir, PathBuf, RecordingSyscalls) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = std::fs::canonicalize(tmp.path())
            .expect("resolve")
            .join("subvolumes");
        std::fs::create_dir(&dir).expect("mkdir");
        (tmp, dir, RecordingSyscalls::new())
    }

    #[test]
    fn layers_are_made_and_snapshotted_by_name_in_their_directory() {
        let (_tmp, dir, sys) = setup();
        create(&sys, &dir, OsStr::new("base")).expect("create");
        snapshot(&sys, &dir.join("base"), &dir, OsStr::new("child")).expect("snapshot");
        assert_eq!(
            sys.calls(),
            vec![
                Call::BtrfsSubvolCreate {
                    dir: dir.clone(),
                    name: "base".into()
                },
                Call::BtrfsSnapshot {
                    source: dir.join("base"),
                    dir: dir.clone(),
                    name: "child".into()
                },
            ]
        );
        assert_eq!(id_of(&sys, &dir.join("child")).expect("id"), 257);
    }

    /// With quotas, the subvolume's qgroup (its own ID) goes before the subvolume; a qgroup
    /// that cannot be destroyed does not keep the subvolume.
    #[test]
    fn deleting_with_quotas_destroys_the_qgroup_then_the_subvolume() {
        let (_tmp, dir, sys) = setup();
        create(&sys, &dir, OsStr::new("layer")).expect("create");
        sys.fail_when(
            |c| matches!(c, Call::BtrfsQgroupDestroy { .. }),
            libc::ENOENT,
        );
        sys.take_calls();
        delete(&sys, &dir, OsStr::new("layer"), true).expect("delete");
        assert_eq!(
            sys.calls(),
            vec![
                Call::BtrfsSubvolumeId {
                    path: dir.join("layer")
                },
                Call::BtrfsQgroupDestroy {
                    path: dir.clone(),
                    qgroupid: 256
                },
                Call::BtrfsSubvolDestroy {
                    dir: dir.clone(),
                    name: "layer".into()
                },
            ]
        );
        assert!(!dir.join("layer").exists());
    }

    #[test]
    fn deleting_without_quotas_asks_for_no_qgroup() {
        let (_tmp, dir, sys) = setup();
        create(&sys, &dir, OsStr::new("layer")).expect("create");
        sys.take_calls();
        delete(&sys, &dir, OsStr::new("layer"), false).expect("delete");
        assert_eq!(
            sys.calls(),
            vec![Call::BtrfsSubvolDestroy {
                dir,
                name: "layer".into()
            }]
        );
    }

    #[test]
    fn a_failed_destroy_is_the_error_with_the_path() {
        let (_tmp, dir, sys) = setup();
        create(&sys, &dir, OsStr::new("layer")).expect("create");
        sys.fail_when(
            |c| matches!(c, Call::BtrfsSubvolDestroy { .. }),
            libc::EPERM,
        );
        let err = delete(&sys, &dir, OsStr::new("layer"), false).expect_err("refused");
        assert!(
            err.to_string().starts_with(&format!(
                "destroying btrfs subvolume {}",
                dir.join("layer").display()
            )),
            "{err}"
        );
    }
}
