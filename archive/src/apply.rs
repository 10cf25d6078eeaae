//! Applying an uncompressed layer tar to a tree (containers/storage's `UnpackLayer`).
//!
//! What can go wrong: a malformed stream ([`ArchiveError::InvalidHeader`],
//! [`ArchiveError::UnexpectedEof`]); a name or hard-link target outside the tree, or a symlink
//! whose relative target climbs out of it, as Go checks ([`ArchiveError::PathEscape`]); entries
//! refused by policy: archive-supplied `trusted.overlay.*` / `user.overlay.*` xattrs, which
//! would forge overlay state ([`ArchiveError::Refused`]); unknown entry types
//! ([`ArchiveError::Unsupported`]); filesystem failures ([`ArchiveError::Fs`]).
//!
//! Everything real images are made of is applied: device nodes and fifos (device nodes are
//! skipped where they cannot be made, in a user namespace, as upstream does), every xattr
//! but overlay's own (file capabilities included), sparse files of every tar format with
//! their holes kept (upstream writes them dense), names that are not UTF-8.

use crate::error::ArchiveError;
use crate::fs::{EntryMetadata, FileKind, FsErrorKind, FsWrite, Timestamp};
use crate::idmap::IdMapping;
use crate::path_set::PathSet;
use crate::paths::{base_name, clean_below, clean_entry_path, display, join, parent};
use crate::tar_stream::{EntryKind, TarEntries, TarEntryHeader, TarStreamReader};

/// Prefix of whiteout entries.
pub const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// Prefix of AUFS metadata entries.
pub const WHITEOUT_META_PREFIX: &[u8] = b".wh..wh.";
/// Name of the opaque-directory marker entry.
pub const WHITEOUT_OPAQUE: &[u8] = b".wh..wh..opq";
/// The overlay opaque xattr for a privileged mount.
pub const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// The overlay opaque xattr for a rootless (`userxattr`) mount.
pub const OVERLAY_OPAQUE_USER_XATTR: &str = "user.overlay.opaque";
/// The xattr where a forced mode keeps the archive's owner and mode (containers/storage's
/// `user.containers.override_stat`).
pub const OVERRIDE_STAT_XATTR: &str = "user.containers.override_stat";

/// How deletions and opaque directories are represented in the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhiteoutFormat {
    /// Whiteouts are applied: `.wh.<name>` removes, `.wh..wh..opq` empties (vfs, btrfs, naive).
    #[default]
    Aufs,
    /// Whiteouts become overlay markers: char device 0:0 and the opaque xattr (overlay upper dirs).
    Overlay,
}

/// Options of [`apply_layer`].
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Whiteout representation.
    pub whiteout_format: WhiteoutFormat,
    /// In the overlay format, mark opaque dirs with `user.overlay.opaque` (rootless) instead of
    /// `trusted.overlay.opaque`.
    pub rootless_overlay: bool,
    /// Owner mapping container → host.
    pub id_mapping: IdMapping,
    /// When set, files and dirs get this mode and their archive owner/mode go to
    /// [`OVERRIDE_STAT_XATTR`].
    pub force_mask: Option<u32>,
    /// Ignore failures of lchown (rootless without enough subordinate IDs).
    pub ignore_chown_errors: bool,
    /// Skip device nodes: in a user namespace the kernel refuses them (upstream's `inUserns`).
    pub skip_device_nodes: bool,
}

/// Applies the layer tar read from `input` to the tree of `fs`; returns the sum of the entries'
/// size fields, as Go's `UnpackLayer` does.
pub fn apply_layer<F: FsWrite>(
    fs: &mut F,
    input: &mut F::Input,
    opts: &ApplyOptions,
) -> Result<u64, ArchiveError> {
    apply_entries(fs, &mut TarStreamReader::new(input), opts)
}

/// [`apply_layer`] over entries someone else may have parsed ([`TarEntries`]): payload is
/// copied from the entries' input.
pub fn apply_entries<F: FsWrite, E: TarEntries<Input = F::Input>>(
    fs: &mut F,
    reader: &mut E,
    opts: &ApplyOptions,
) -> Result<u64, ArchiveError> {
    let mut state = ApplyState {
        opts,
        unpacked: PathSet::new(),
        made_dirs: PathSet::new(),
        dirs: Vec::new(),
        size: 0,
        ensured_dir: None,
    };
    while let Some(entry) = reader.next_entry()? {
        state.size = state.size.saturating_add(entry.size);
        state.apply_entry(fs, reader, entry)?;
    }
    // Directory times last: creating their children changed them.
    for (path, atime, mtime) in &state.dirs {
        fs.set_times(path, *atime, *mtime)
            .map_err(|e| ArchiveError::fs("set times of", path, e))?;
    }
    Ok(state.size)
}

struct ApplyState<'a> {
    opts: &'a ApplyOptions,
    /// In the AUFS format, the paths this archive named (an opaque marker keeps them) whose
    /// directory it did not make: 16 bytes each, only for entries put into directories the
    /// layer found (a base layer's are its top-level entries).
    unpacked: PathSet,
    /// In the AUFS format, the directories this archive made, for an entry or as a missing
    /// parent: everything beneath one is this archive's, so its entries need no record and an
    /// opaque marker keeps it whole. One record a directory.
    made_dirs: PathSet,
    /// Directories whose times are restored at the end.
    dirs: Vec<(Vec<u8>, Timestamp, Timestamp)>,
    size: u64,
    /// The parent directory the last entry was created in, known to exist until something is
    /// removed: consecutive entries of one directory (the common case) skip checking it.
    ensured_dir: Option<Vec<u8>>,
}

impl ApplyState<'_> {
    fn apply_entry<F: FsWrite, E: TarEntries<Input = F::Input>>(
        &mut self,
        fs: &mut F,
        reader: &mut E,
        entry: TarEntryHeader,
    ) -> Result<(), ArchiveError> {
        if entry.kind == EntryKind::PaxGlobal {
            return Ok(());
        }
        let path = clean_entry_path(&entry.path)?;
        if path.is_empty() && entry.kind != EntryKind::Directory {
            // Go would remove the whole tree to put a file in its place.
            return Err(ArchiveError::Refused {
                path: entry.path.clone(),
                reason: "the layer root can only be a directory".into(),
            });
        }
        if path.is_empty() && self.opts.whiteout_format == WhiteoutFormat::Overlay {
            // Upstream applies overlay layers with `archive.Unpack`, which skips the root
            // entry: an upper directory keeps the mode and owner the driver gave it.
            return Ok(());
        }
        let base = base_name(&path).to_vec();
        let dir = parent(&path).to_vec();
        if !path.is_empty() && self.ensured_dir.as_deref() != Some(dir.as_slice()) {
            self.ensure_dir_all(fs, &dir)?;
            self.ensured_dir = Some(dir.clone());
        }
        if base.starts_with(WHITEOUT_PREFIX) {
            self.ensured_dir = None; // a whiteout removes things
            return self.apply_whiteout(fs, &entry, &dir, &base);
        }
        check_xattrs(&entry)?;
        let (uid, gid) = self
            .opts
            .id_mapping
            .to_host(entry.uid, entry.gid)
            .ok_or_else(|| ArchiveError::Refused {
                path: entry.path.clone(),
                reason: format!(
                    "owner {}:{} has no mapping to a host ID",
                    entry.uid, entry.gid
                ),
            })?;
        let mode = entry.mode & 0o7777;
        let create_mode = match (self.opts.force_mask, entry.kind) {
            (Some(mask), EntryKind::Regular | EntryKind::Directory) => mask,
            _ => mode,
        };
        if entry.kind == EntryKind::Regular {
            // The common case in one filesystem call: create (exclusively), fill, then owner,
            // xattrs, mode and times. Something already there is removed and the call retried.
            let meta = self.metadata(&entry, uid, gid, Some(create_mode))?;
            let len = reader.payload_remaining();
            let create = |fs: &mut F, reader: &mut E| match &entry.sparse {
                None => {
                    fs.create_file_with_metadata(&path, create_mode, len, reader.input_mut(), &meta)
                }
                Some(map) => fs.create_sparse_file_with_metadata(
                    &path,
                    create_mode,
                    map,
                    reader.input_mut(),
                    &meta,
                ),
            };
            let mut created = create(fs, reader);
            if matches!(&created, Err(e) if e.kind == FsErrorKind::AlreadyExists) {
                self.ensured_dir = None;
                fs.remove_all(&path)
                    .map_err(|e| ArchiveError::fs("remove", &path, e))?;
                created = create(fs, reader);
            }
            created.map_err(|e| {
                if e.kind == FsErrorKind::UnexpectedEof {
                    ArchiveError::UnexpectedEof
                } else {
                    ArchiveError::fs("create", &path, e)
                }
            })?;
            reader.payload_consumed(len);
            self.remember_unpacked(&path, false);
            return Ok(());
        }
        let mut existing = fs
            .lstat(&path)
            .map_err(|e| ArchiveError::fs("lstat", &path, e))?;
        if let Some(found) = &existing {
            let merge = found.kind == FileKind::Directory && entry.kind == EntryKind::Directory;
            if !merge {
                self.ensured_dir = None;
                fs.remove_all(&path)
                    .map_err(|e| ArchiveError::fs("remove", &path, e))?;
                existing = None;
            }
        }
        let mut made_dir = false;
        match entry.kind {
            EntryKind::Directory => {
                // The root exists already; only its metadata applies.
                if !path.is_empty() && existing.is_none() {
                    fs.mkdir(&path, create_mode)
                        .map_err(|e| ArchiveError::fs("mkdir", &path, e))?;
                    made_dir = true;
                }
            }
            EntryKind::Regular => {} // created above, with its metadata
            EntryKind::Symlink => {
                // Go's check: a relative target must not climb out of the tree lexically.
                if !entry.link_name.starts_with(b"/")
                    && clean_below(&dir, &entry.link_name).is_none()
                {
                    return Err(ArchiveError::PathEscape(format!(
                        "{} -> {}",
                        display(&entry.path),
                        display(&entry.link_name)
                    )));
                }
                fs.symlink(&entry.link_name, &path)
                    .map_err(|e| ArchiveError::fs("symlink", &path, e))?;
            }
            EntryKind::Link => {
                let target = clean_entry_path(&entry.link_name).map_err(|_| {
                    ArchiveError::PathEscape(format!(
                        "{} => {}",
                        display(&entry.path),
                        display(&entry.link_name)
                    ))
                })?;
                fs.hardlink(&target, &path)
                    .map_err(|e| ArchiveError::fs("link", &path, e))?;
            }
            EntryKind::Fifo => {
                fs.mkfifo(&path, mode)
                    .map_err(|e| ArchiveError::fs("mkfifo", &path, e))?;
            }
            EntryKind::Char | EntryKind::Block => {
                if self.opts.skip_device_nodes {
                    return Ok(());
                }
                let kind = if entry.kind == EntryKind::Char {
                    FileKind::CharDevice
                } else {
                    FileKind::BlockDevice
                };
                fs.mknod(&path, kind, mode, entry.dev_major, entry.dev_minor)
                    .map_err(|e| ArchiveError::fs("mknod", &path, e))?;
            }
            EntryKind::Other(flag) => {
                return Err(ArchiveError::Unsupported {
                    path: entry.path.clone(),
                    reason: format!("unhandled tar header type {:?}", flag as char),
                });
            }
            EntryKind::PaxGlobal => return Ok(()),
        }
        self.apply_metadata(fs, &entry, &path, uid, gid, create_mode)?;
        if entry.kind == EntryKind::Directory {
            let (atime, mtime) = entry_times(&entry);
            self.dirs.push((path.clone(), atime, mtime));
        }
        self.remember_unpacked(&path, made_dir);
        Ok(())
    }

    /// Notes a path this archive named (`made_dir`: a directory it made for it), for the AUFS
    /// opaque markers that must keep it; the overlay format marks opaque directories with an
    /// xattr and needs no list.
    fn remember_unpacked(&mut self, path: &[u8], made_dir: bool) {
        if self.opts.whiteout_format != WhiteoutFormat::Aufs {
            return;
        }
        if made_dir {
            self.made_dirs.insert(path);
        }
        if !self.made_dirs.contains(parent(path)) {
            self.unpacked.insert(path);
        }
    }

    /// Creates the missing directories of `dir` (mode 0755), like Go's `MkdirAll` of the
    /// parent, noting the ones it makes (AUFS format).
    fn ensure_dir_all<F: FsWrite>(&mut self, fs: &mut F, dir: &[u8]) -> Result<(), ArchiveError> {
        if dir.is_empty()
            || fs
                .lstat(dir)
                .map_err(|e| ArchiveError::fs("lstat", dir, e))?
                .is_some()
        {
            return Ok(());
        }
        self.ensure_dir_all(fs, parent(dir))?;
        fs.mkdir(dir, 0o755)
            .map_err(|e| ArchiveError::fs("mkdir", dir, e))?;
        if self.opts.whiteout_format == WhiteoutFormat::Aufs {
            self.made_dirs.insert(dir);
        }
        Ok(())
    }

    /// Owner, xattrs, mode and times of a created entry (Go's `createTarFile` tail).
    fn apply_metadata<F: FsWrite>(
        &self,
        fs: &mut F,
        entry: &TarEntryHeader,
        path: &[u8],
        uid: u32,
        gid: u32,
        mode: u32,
    ) -> Result<(), ArchiveError> {
        // A hard link to a symlink is a symlink: no chmod, times without following.
        let is_symlink = match entry.kind {
            EntryKind::Symlink => true,
            EntryKind::Link => fs
                .lstat(path)
                .map_err(|e| ArchiveError::fs("lstat", path, e))?
                .is_some_and(|st| st.kind == FileKind::Symlink),
            _ => false,
        };
        let meta = self.metadata(entry, uid, gid, (!is_symlink).then_some(mode))?;
        fs.set_metadata(path, &meta)
            .map_err(|e| ArchiveError::fs("set metadata of", path, e))
    }

    /// The metadata an entry ends up with: its owner (mapped), its xattrs but SELinux labels
    /// (they come from the runtime, as in Go's `xattrsToIgnore`), with a forced mode the
    /// archive's owner and mode in [`OVERRIDE_STAT_XATTR`], `mode` and its times.
    fn metadata(
        &self,
        entry: &TarEntryHeader,
        uid: u32,
        gid: u32,
        mode: Option<u32>,
    ) -> Result<EntryMetadata, ArchiveError> {
        let mut xattrs: Vec<(String, Vec<u8>)> = entry
            .xattrs
            .iter()
            .filter(|(name, _)| name != "security.selinux")
            .cloned()
            .collect();
        if let (Some(_), EntryKind::Regular | EntryKind::Directory) =
            (self.opts.force_mask, entry.kind)
        {
            let value = format!("{}:{}:0{:o}", entry.uid, entry.gid, entry.mode & 0o7777);
            xattrs.push((OVERRIDE_STAT_XATTR.to_string(), value.into_bytes()));
        }
        let (atime, mtime) = entry_times(entry);
        Ok(EntryMetadata {
            uid,
            gid,
            ignore_chown_errors: self.opts.ignore_chown_errors,
            xattrs,
            mode,
            atime,
            mtime,
        })
    }

    fn apply_whiteout<F: FsWrite>(
        &mut self,
        fs: &mut F,
        entry: &TarEntryHeader,
        dir: &[u8],
        base: &[u8],
    ) -> Result<(), ArchiveError> {
        let overlay = self.opts.whiteout_format == WhiteoutFormat::Overlay;
        if base == WHITEOUT_OPAQUE {
            if fs
                .lstat(dir)
                .map_err(|e| ArchiveError::fs("lstat", dir, e))?
                .is_none()
            {
                return Err(ArchiveError::fs(
                    "lstat",
                    dir,
                    crate::fs::FsError::new(FsErrorKind::NotFound, "opaque marker without its dir"),
                ));
            }
            if overlay {
                let name = if self.opts.rootless_overlay {
                    OVERLAY_OPAQUE_USER_XATTR
                } else {
                    OVERLAY_OPAQUE_XATTR
                };
                return fs
                    .set_xattr(dir, name, b"y")
                    .map_err(|e| ArchiveError::fs("setxattr", dir, e));
            }
            return self.remove_not_unpacked(fs, dir);
        }
        if base.starts_with(WHITEOUT_META_PREFIX) {
            return Ok(()); // AUFS metadata (e.g. `.wh..wh.plnk`) is not extracted
        }
        let target = join(dir, &base[WHITEOUT_PREFIX.len()..]);
        fs.remove_all(&target)
            .map_err(|e| ArchiveError::fs("remove", &target, e))?;
        if overlay {
            let (uid, gid) = self
                .opts
                .id_mapping
                .to_host(entry.uid, entry.gid)
                .ok_or_else(|| ArchiveError::Refused {
                    path: entry.path.clone(),
                    reason: format!("owner {}:{} has no host mapping", entry.uid, entry.gid),
                })?;
            fs.mknod(&target, FileKind::CharDevice, 0, 0, 0)
                .map_err(|e| ArchiveError::fs("mknod", &target, e))?;
            if let Err(e) = fs.lchown(&target, uid, gid) {
                if !self.opts.ignore_chown_errors {
                    return Err(ArchiveError::fs("lchown", &target, e));
                }
            }
        }
        Ok(())
    }

    /// AUFS opaque marker: removes everything beneath `dir` this archive did not create.
    fn remove_not_unpacked<F: FsWrite>(&self, fs: &mut F, dir: &[u8]) -> Result<(), ArchiveError> {
        if self.made_dirs.contains(dir) {
            return Ok(()); // all of it is this archive's
        }
        let children = fs
            .read_dir(dir)
            .map_err(|e| ArchiveError::fs("read dir", dir, e))?;
        for child in children {
            let path = join(dir, &child.name);
            if self.made_dirs.contains(&path) {
                continue;
            }
            if !self.unpacked.contains(&path) {
                fs.remove_all(&path)
                    .map_err(|e| ArchiveError::fs("remove", &path, e))?;
            } else if child.kind == FileKind::Directory {
                self.remove_not_unpacked(fs, &path)?;
            }
        }
        Ok(())
    }
}

/// Rejects archive xattrs that would forge overlay state.
fn check_xattrs(entry: &TarEntryHeader) -> Result<(), ArchiveError> {
    for (name, _) in &entry.xattrs {
        if name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.") {
            return Err(ArchiveError::Refused {
                path: entry.path.clone(),
                reason: format!("archive xattr {name} is reserved for overlay"),
            });
        }
    }
    Ok(())
}

/// Access and modification time of an entry; Go uses the mtime when the atime is older.
fn entry_times(entry: &TarEntryHeader) -> (Timestamp, Timestamp) {
    let mtime = Timestamp {
        secs: entry.mtime.0,
        nanos: entry.mtime.1,
    };
    let atime = entry
        .atime
        .map(|(secs, nanos)| Timestamp { secs, nanos })
        .filter(|a| *a >= mtime)
        .unwrap_or(mtime);
    (atime, mtime)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::FsRead;
    use crate::memfs::MemFs;
    use std::io::Cursor;

    fn tar_of(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Cursor<Vec<u8>> {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        Cursor::new(b.into_inner().unwrap())
    }

    fn file(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(100);
        b.append_data(&mut h, name, data).unwrap();
    }

    fn dir(b: &mut tar::Builder<Vec<u8>>, name: &str, mode: u32) {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(mode);
        h.set_mtime(200);
        b.append_data(&mut h, name, std::io::empty()).unwrap();
    }

    fn apply(
        fs: &mut MemFs,
        input: Cursor<Vec<u8>>,
        opts: &ApplyOptions,
    ) -> Result<u64, ArchiveError> {
        let mut input = input;
        apply_layer(fs, &mut input, opts)
    }

    #[test]
    fn creates_parents_and_restores_dir_times() {
        let mut fs = MemFs::new(1, 10);
        let input = tar_of(|b| {
            dir(b, "a/", 0o750);
            file(b, "a/b/c", b"xyz");
        });
        let size = apply(&mut fs, input, &ApplyOptions::default()).unwrap();
        assert_eq!(size, 3);
        let a = fs.node(b"a").unwrap();
        assert_eq!((a.stat.mode, a.stat.mtime.secs), (0o750, 200));
        assert_eq!(fs.node(b"a/b").unwrap().stat.mode, 0o755);
        assert_eq!(fs.node(b"a/b/c").unwrap().data, b"xyz");
        assert_eq!(fs.node(b"a/b/c").unwrap().stat.mtime.secs, 100);
    }

    #[test]
    fn the_root_entry_applies_except_to_overlay_upper_dirs() {
        for (format, expected) in [
            (WhiteoutFormat::Aufs, 0o711),
            (WhiteoutFormat::Overlay, 0o555),
        ] {
            let mut fs = MemFs::new(1, 10);
            fs.chmod(b"", 0o555).unwrap();
            let input = tar_of(|b| dir(b, "./", 0o711));
            let opts = ApplyOptions {
                whiteout_format: format,
                ..Default::default()
            };
            apply(&mut fs, input, &opts).unwrap();
            assert_eq!(fs.node(b"").unwrap().stat.mode, expected, "{format:?}");
        }
    }

    #[test]
    fn aufs_opaque_keeps_only_entries_of_this_tar() {
        let mut fs = MemFs::new(1, 10);
        fs.put_dir(b"d", 1);
        fs.put_file(b"d/old", b"o", 1);
        fs.put_dir(b"d/sub", 1);
        fs.put_file(b"d/sub/old", b"o", 1);
        let input = tar_of(|b| {
            dir(b, "d/", 0o755);
            file(b, "d/new", b"n");
            dir(b, "d/sub/", 0o755);
            file(b, "d/.wh..wh..opq", b"");
        });
        apply(&mut fs, input, &ApplyOptions::default()).unwrap();
        assert!(fs.node(b"d/new").is_some());
        assert!(fs.node(b"d/sub").is_some(), "recreated by this tar");
        assert!(fs.node(b"d/old").is_none());
        assert!(fs.node(b"d/sub/old").is_none());
    }

    #[test]
    fn aufs_opaque_keeps_what_this_tar_made_beneath_it() {
        let mut fs = MemFs::new(1, 10);
        fs.put_dir(b"d", 1);
        fs.put_file(b"d/old", b"o", 1);
        fs.put_dir(b"d/kept", 1);
        fs.put_file(b"d/kept/old", b"o", 1);
        fs.put_file(b"d/kept/renamed", b"o", 1);
        let input = tar_of(|b| {
            dir(b, "d/", 0o755);
            dir(b, "d/new/", 0o755);
            file(b, "d/new/a", b"a");
            // Parents the tar does not name: made, so this tar's.
            file(b, "d/new/deep/er/b", b"b");
            file(b, "d/implied/c", b"c");
            dir(b, "d/kept/", 0o755);
            file(b, "d/kept/renamed", b"n");
            // A directory of this tar replaced by a file of it.
            dir(b, "d/gone/", 0o755);
            file(b, "d/gone/x", b"x");
            file(b, "d/.wh.gone", b"");
            file(b, "d/gone", b"f");
            file(b, "d/.wh..wh..opq", b"");
            // An opaque marker of a directory this tar made removes nothing.
            file(b, "d/new/.wh..wh..opq", b"");
        });
        apply(&mut fs, input, &ApplyOptions::default()).unwrap();
        for kept in [
            &b"d/new/a"[..],
            b"d/new/deep/er/b",
            b"d/implied/c",
            b"d/kept/renamed",
            b"d/gone",
        ] {
            assert!(fs.node(kept).is_some(), "{}", String::from_utf8_lossy(kept));
        }
        assert!(fs.node(b"d/old").is_none());
        assert!(fs.node(b"d/kept/old").is_none());
        assert!(fs.node(b"d/gone/x").is_none());
    }

    #[test]
    fn overlay_format_markers_and_rootless_xattr() {
        let mut fs = MemFs::new(1, 10);
        let input = tar_of(|b| {
            dir(b, "o/", 0o755);
            file(b, "o/.wh..wh..opq", b"");
            file(b, "o/.wh.gone", b"");
        });
        let opts = ApplyOptions {
            whiteout_format: WhiteoutFormat::Overlay,
            rootless_overlay: true,
            ..Default::default()
        };
        apply(&mut fs, input, &opts).unwrap();
        let o = fs.node(b"o").unwrap();
        assert_eq!(o.xattrs.get(OVERLAY_OPAQUE_USER_XATTR).unwrap(), b"y");
        assert!(!o.xattrs.contains_key(OVERLAY_OPAQUE_XATTR));
        let wh = fs.node(b"o/gone").unwrap();
        assert_eq!(wh.stat.kind, FileKind::CharDevice);
        assert_eq!((wh.stat.rdev_major, wh.stat.rdev_minor), (0, 0));
        assert!(fs.node(b"o/.wh.gone").is_none());
    }

    #[test]
    fn force_mask_records_the_archive_mode() {
        let mut fs = MemFs::new(1, 10);
        let input = tar_of(|b| {
            let mut h = tar::Header::new_ustar();
            h.set_size(1);
            h.set_mode(0o4755);
            h.set_uid(3);
            h.set_gid(4);
            b.append_data(&mut h, "suid", &b"x"[..]).unwrap();
        });
        let opts = ApplyOptions {
            force_mask: Some(0o700),
            ..Default::default()
        };
        apply(&mut fs, input, &opts).unwrap();
        let node = fs.node(b"suid").unwrap();
        assert_eq!(node.stat.mode, 0o700);
        assert_eq!(node.xattrs.get(OVERRIDE_STAT_XATTR).unwrap(), b"3:4:04755");
    }

    #[test]
    fn chown_errors_can_be_ignored() {
        let mut fs = MemFs::new(1, 10);
        fs.deny_chown = true;
        let input = tar_of(|b| file(b, "f", b"x"));
        let err = apply(&mut fs.clone(), input.clone(), &ApplyOptions::default()).unwrap_err();
        assert!(
            matches!(&err, ArchiveError::Fs { source, .. } if source.message.starts_with("lchown")),
            "{err}"
        );
        let opts = ApplyOptions {
            ignore_chown_errors: true,
            ..Default::default()
        };
        apply(&mut fs, input, &opts).unwrap();
        assert!(fs.node(b"f").is_some());
    }

    #[test]
    fn non_directory_root_entry_is_refused() {
        let mut fs = MemFs::new(1, 10);
        fs.put_file(b"keep", b"k", 1);
        let input = tar_of(|b| {
            let mut h = tar::Header::new_ustar();
            h.set_size(0);
            h.set_mode(0o644);
            let old = h.as_old_mut();
            old.name[..2].copy_from_slice(b"./");
            old.linkflag = [b'0'];
            h.set_cksum();
            b.append(&h, std::io::empty()).unwrap();
        });
        let err = apply(&mut fs, input, &ApplyOptions::default()).unwrap_err();
        assert!(matches!(err, ArchiveError::Refused { .. }), "{err}");
        assert!(fs.lstat(b"keep").unwrap().is_some());
    }

    #[test]
    fn whiteout_of_a_missing_path_is_fine_and_meta_entries_ignored() {
        let mut fs = MemFs::new(1, 10);
        let input = tar_of(|b| {
            file(b, ".wh.nothing", b"");
            file(b, ".wh..wh.plnk", b"");
        });
        let size = apply(&mut fs, input, &ApplyOptions::default()).unwrap();
        assert_eq!(size, 0);
        assert_eq!(fs.paths.len(), 1, "only the root");
    }
}
