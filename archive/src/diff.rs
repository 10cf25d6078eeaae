//! Producing layer tars: of a whole tree, of a list of changes (naive diff) and of an overlay
//! upper dir, plus the diff sizes. Entries are written as containers/storage's `tarAppender`
//! does (headers from lstat, hardlinks by inode, `security.capability` and `user.*` xattrs as
//! `SCHILY.xattr.*`, directories with a trailing `/`, owners mapped host→container).

use std::collections::{BTreeMap, BTreeSet};

use crate::apply::{WHITEOUT_OPAQUE, WHITEOUT_PREFIX};
use crate::changes::{
    changes_naive, is_opaque_dir, is_overlay_whiteout, opaque_dir_replaces_a_lower_one,
    sort_changes, walk_tree, Change, ChangeKind, OverlayOptions,
};
use crate::error::ArchiveError;
use crate::fs::{FileKind, FileStat, FsRead, Timestamp};
use crate::idmap::IdMapping;
use crate::paths::{base_name, join, parent};
use crate::tar_writer::{round_to_second, write_header, write_padding, write_trailer, OutHeader};

/// Options of the tar writers.
#[derive(Debug, Clone, Default)]
pub struct DiffOptions {
    /// Owner mapping; files are written with container IDs.
    pub id_mapping: IdMapping,
    /// The time stamped on deletion whiteouts (Go uses "now"; a component has no clock).
    pub now: Timestamp,
    /// Owner names by host UID, written as uname like Go's `tar.FileInfoHeader` does.
    pub user_names: BTreeMap<u32, Vec<u8>>,
    /// Group names by host GID, written as gname.
    pub group_names: BTreeMap<u32, Vec<u8>>,
}

/// Writes a tar of the whole tree (every path below the root, pre-order, sorted).
pub fn write_tree_tar<F: FsRead>(
    fs: &mut F,
    out: &mut F::Output,
    opts: &DiffOptions,
) -> Result<(), ArchiveError> {
    let mut walk = Vec::new();
    walk_tree(fs, b"", &mut walk)?;
    let mut appender = Appender::new(opts);
    for (path, stat) in walk {
        appender.add(fs, &path, &stat, out, None::<&mut OverlayCtx<'_, F>>)?;
    }
    write_trailer(out)
}

/// Writes a tar of `changes` of `layer` (Go's `ExportChanges`): deletions as `.wh.<name>`
/// entries, everything else as the layer's current entry.
pub fn write_changes_tar<F: FsRead>(
    layer: &mut F,
    changes: &[Change],
    out: &mut F::Output,
    opts: &DiffOptions,
) -> Result<(), ArchiveError> {
    let mut sorted = changes.to_vec();
    sort_changes(&mut sorted);
    let mut appender = Appender::new(opts);
    for change in &sorted {
        match change.kind {
            ChangeKind::Delete => {
                let mut name = WHITEOUT_PREFIX.to_vec();
                name.extend_from_slice(base_name(&change.path));
                let header = OutHeader {
                    name: join(parent(&change.path), &name),
                    typeflag: b'0',
                    mtime: round_to_second(opts.now.secs, opts.now.nanos),
                    ..Default::default()
                };
                write_header(out, &header)?;
            }
            ChangeKind::Add | ChangeKind::Modify => {
                let Some(stat) = layer
                    .lstat(&change.path)
                    .map_err(|e| ArchiveError::fs("lstat", &change.path, e))?
                else {
                    continue; // vanished since the changes were computed, as Go tolerates
                };
                appender.add(
                    layer,
                    &change.path,
                    &stat,
                    out,
                    None::<&mut OverlayCtx<'_, F>>,
                )?;
            }
        }
    }
    write_trailer(out)
}

/// Naive diff: a tar of the whole layer when there is no parent, else of its changes (the
/// parent's owners read with `parent_mapping`, the layer's and the tar's with
/// `opts.id_mapping`).
pub fn write_diff_naive<L: FsRead, P: FsRead>(
    layer: &mut L,
    parent_fs: Option<&mut P>,
    parent_mapping: &IdMapping,
    out: &mut L::Output,
    opts: &DiffOptions,
) -> Result<(), ArchiveError> {
    match parent_fs {
        None => write_tree_tar(layer, out, opts),
        Some(parent_fs) => {
            let changes = changes_naive(layer, Some(parent_fs), &opts.id_mapping, parent_mapping)?;
            write_changes_tar(layer, &changes, out, opts)
        }
    }
}

/// Overlay-native diff: a tar of the upper dir with whiteout devices turned back into `.wh.`
/// files and opaque dirs followed by a `.wh..wh..opq` marker when some lower has the dir.
pub fn write_overlay_diff<U: FsRead, L: FsRead>(
    upper: &mut U,
    lowers: &mut [L],
    out: &mut U::Output,
    opts: &DiffOptions,
    overlay: &OverlayOptions,
) -> Result<(), ArchiveError> {
    let mut walk = Vec::new();
    walk_tree(upper, b"", &mut walk)?;
    let mut appender = Appender::new(opts);
    for (path, stat) in walk {
        let mut ctx = OverlayCtx {
            lowers: &mut *lowers,
            opts: overlay,
        };
        appender.add(upper, &path, &stat, out, Some(&mut ctx))?;
    }
    write_trailer(out)
}

/// Naive diff size: lstat sizes of added/modified non-directories, hardlinked inodes once.
pub fn diff_size_naive<L: FsRead, P: FsRead>(
    layer: &mut L,
    parent_fs: Option<&mut P>,
    mapping: &IdMapping,
    parent_mapping: &IdMapping,
) -> Result<u64, ArchiveError> {
    let changes = changes_naive(layer, parent_fs, mapping, parent_mapping)?;
    let mut seen = BTreeSet::new();
    let mut size = 0u64;
    for change in changes {
        if change.kind == ChangeKind::Delete {
            continue;
        }
        if let Some(stat) = layer
            .lstat(&change.path)
            .map_err(|e| ArchiveError::fs("lstat", &change.path, e))?
        {
            if stat.kind != FileKind::Directory && seen.insert((stat.dev, stat.ino)) {
                size = size.saturating_add(stat.size);
            }
        }
    }
    Ok(size)
}

/// Size of a tree as containers/storage's `directory.Size`: st_size of non-directories, each
/// inode once.
///
/// The walk keeps one directory listing per level it is in and the inodes of files with
/// more than one link (an inode of one link cannot be met twice): its memory follows the
/// tree's depth, its widest directory and its hard links, not its number of files (Go
/// keeps every inode).
pub fn tree_size<F: FsRead>(fs: &mut F) -> Result<u64, ArchiveError> {
    let mut linked = BTreeSet::new();
    let mut size = 0u64;
    add_tree_size(fs, b"", &mut linked, &mut size)?;
    Ok(size)
}

fn add_tree_size<F: FsRead>(
    fs: &mut F,
    dir: &[u8],
    linked: &mut BTreeSet<u64>,
    size: &mut u64,
) -> Result<(), ArchiveError> {
    let entries = fs
        .read_dir(dir)
        .map_err(|e| ArchiveError::fs("read dir", dir, e))?;
    for entry in entries {
        let path = join(dir, &entry.name);
        let Some(stat) = fs
            .lstat(&path)
            .map_err(|e| ArchiveError::fs("lstat", &path, e))?
        else {
            continue; // vanished while walking
        };
        if stat.kind == FileKind::Directory {
            add_tree_size(fs, &path, linked, size)?;
        } else if stat.nlink <= 1 || linked.insert(stat.ino) {
            *size = size.saturating_add(stat.size);
        }
    }
    Ok(())
}

struct OverlayCtx<'a, L> {
    lowers: &'a mut [L],
    opts: &'a OverlayOptions,
}

/// Go's `tarAppender`: remembers inodes already written for hardlinks.
struct Appender<'a> {
    opts: &'a DiffOptions,
    seen: BTreeMap<(u64, u64), Vec<u8>>,
}

impl<'a> Appender<'a> {
    fn new(opts: &'a DiffOptions) -> Self {
        Appender {
            opts,
            seen: BTreeMap::new(),
        }
    }

    fn add<F: FsRead, L: FsRead>(
        &mut self,
        fs: &mut F,
        path: &[u8],
        stat: &FileStat,
        out: &mut F::Output,
        overlay: Option<&mut OverlayCtx<'_, L>>,
    ) -> Result<(), ArchiveError> {
        let (typeflag, type_bits) = match stat.kind {
            FileKind::Regular => (b'0', 0o100000),
            FileKind::Directory => (b'5', 0o040000),
            FileKind::Symlink => (b'2', 0o120000),
            FileKind::CharDevice => (b'3', 0o020000),
            FileKind::BlockDevice => (b'4', 0o060000),
            FileKind::Fifo => (b'6', 0o010000),
            FileKind::Socket => return Ok(()), // tar cannot hold sockets; Go skips them too
        };
        let mut name = path.to_vec();
        if stat.kind == FileKind::Directory {
            name.push(b'/');
        }
        let mut header = OutHeader {
            name,
            typeflag,
            mode: type_bits | (stat.mode & 0o7777),
            uid: stat.uid,
            gid: stat.gid,
            size: if stat.kind == FileKind::Regular {
                stat.size
            } else {
                0
            },
            // containers/storage's FileInfoHeader truncates to the second (whiteouts, written
            // without a format, are rounded by Go's writer instead).
            mtime: stat.mtime.secs,
            ..Default::default()
        };
        header.uname = self
            .opts
            .user_names
            .get(&stat.uid)
            .cloned()
            .unwrap_or_default();
        header.gname = self
            .opts
            .group_names
            .get(&stat.gid)
            .cloned()
            .unwrap_or_default();
        if stat.kind == FileKind::Symlink {
            header.link_name = fs
                .readlink(path)
                .map_err(|e| ArchiveError::fs("readlink", path, e))?;
        }
        if matches!(stat.kind, FileKind::CharDevice | FileKind::BlockDevice) {
            header.dev_major = stat.rdev_major;
            header.dev_minor = stat.rdev_minor;
        }
        let names = fs
            .list_xattrs(path)
            .map_err(|e| ArchiveError::fs("listxattr", path, e))?;
        for xattr in names {
            let exported = xattr == "security.capability"
                || (xattr.starts_with("user.") && !xattr.starts_with("user.overlay."));
            if !exported {
                continue;
            }
            if let Some(value) = fs
                .get_xattr(path, &xattr)
                .map_err(|e| ArchiveError::fs("getxattr", path, e))?
            {
                header.xattrs.push((xattr, value));
            }
        }
        header.xattrs.sort();
        if stat.kind != FileKind::Directory && stat.nlink > 1 {
            match self.seen.get(&(stat.dev, stat.ino)) {
                Some(first) => {
                    header.typeflag = b'1';
                    header.link_name = first.clone();
                    header.size = 0;
                }
                None => {
                    self.seen.insert((stat.dev, stat.ino), header.name.clone());
                }
            }
        }
        let whiteout_device = is_overlay_whiteout(stat);
        // Whiteouts were made by the kernel or by us with host owners already right for them.
        if !whiteout_device && !base_name(path).starts_with(WHITEOUT_PREFIX) {
            let (uid, gid) = self
                .opts
                .id_mapping
                .to_container(stat.uid, stat.gid)
                .ok_or_else(|| ArchiveError::Refused {
                    path: path.to_vec(),
                    reason: format!("host owner {}:{} has no container ID", stat.uid, stat.gid),
                })?;
            header.uid = uid;
            header.gid = gid;
        }
        let mut opaque_marker = None;
        if let Some(ctx) = overlay {
            if whiteout_device {
                let mut wh = WHITEOUT_PREFIX.to_vec();
                wh.extend_from_slice(base_name(path));
                header.name = join(parent(path), &wh);
                header.mode = 0;
                header.typeflag = b'0';
                header.size = 0;
                header.dev_major = 0;
                header.dev_minor = 0;
            } else if stat.kind == FileKind::Directory
                && is_opaque_dir(fs, path, ctx.opts)?
                && opaque_dir_replaces_a_lower_one(ctx.lowers, path)?
            {
                opaque_marker = Some(OutHeader {
                    name: join(path, WHITEOUT_OPAQUE),
                    typeflag: b'0',
                    mode: header.mode & 0o777,
                    uid: header.uid,
                    gid: header.gid,
                    mtime: header.mtime,
                    uname: header.uname.clone(),
                    gname: header.gname.clone(),
                    ..Default::default()
                });
            }
        }
        write_header(out, &header)?;
        if header.typeflag == b'0' && header.size > 0 {
            fs.copy_file_to_output(path, header.size, out)
                .map_err(|e| ArchiveError::fs("read", path, e))?;
            write_padding(out, header.size)?;
        }
        if let Some(marker) = opaque_marker {
            write_header(out, &marker)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::FsWrite;
    use crate::memfs::MemFs;
    use crate::tar_stream::{EntryKind, TarStreamReader};

    #[test]
    fn tree_size_counts_each_inode_once_and_no_directory() {
        let mut fs = MemFs::new(1, 10);
        fs.put_file(b"a", b"abc", 1);
        fs.put_dir(b"d", 1);
        fs.put_dir(b"d/e", 1);
        fs.put_file(b"d/e/c", b"12", 1);
        fs.hardlink(b"a", b"d/e/a-again").unwrap();
        fs.hardlink(b"a", b"d/a-third").unwrap();
        fs.symlink(b"a-target", b"d/s").unwrap();
        assert_eq!(tree_size(&mut fs).unwrap(), 3 + 2 + 8);
    }

    fn read_back(data: &[u8]) -> Vec<(String, EntryKind, u32, i64, Vec<u8>)> {
        let mut r = TarStreamReader::new(data);
        let mut out = Vec::new();
        while let Some(e) = r.next_entry().unwrap() {
            let mut payload = vec![0u8; r.payload_remaining() as usize];
            let mut filled = 0;
            while filled < payload.len() {
                filled += r.read_payload(&mut payload[filled..]).unwrap();
            }
            out.push((
                String::from_utf8(e.path).unwrap(),
                e.kind,
                e.mode,
                e.mtime.0,
                payload,
            ));
        }
        out
    }

    #[test]
    fn changes_tar_has_whiteouts_stamped_now_and_hardlinks() {
        let mut old = MemFs::new(1, 100);
        old.put_file(b"gone", b"g", 1);
        let mut new = MemFs::new(2, 500);
        new.put_file(b"f", b"data", 1_000_000_000);
        new.hardlink(b"f", b"g").unwrap();
        let opts = DiffOptions {
            now: Timestamp {
                secs: 42,
                nanos: 600_000_000,
            },
            ..Default::default()
        };
        let mut out: Vec<u8> = Vec::new();
        write_diff_naive(
            &mut new,
            Some(&mut old),
            &IdMapping::default(),
            &mut out,
            &opts,
        )
        .unwrap();
        let got = read_back(&out);
        assert_eq!(got.len(), 3);
        assert_eq!(
            (got[0].0.as_str(), got[0].1, got[0].4.as_slice()),
            ("f", EntryKind::Regular, &b"data"[..])
        );
        assert_eq!(got[0].2, 0o100644, "mode carries the file-type bits");
        assert_eq!((got[1].0.as_str(), got[1].1), ("g", EntryKind::Link));
        assert_eq!(
            (got[2].0.as_str(), got[2].2, got[2].3),
            (".wh.gone", 0, 43),
            "whiteout: mode 0, mtime now rounded"
        );
        assert_eq!(
            diff_size_naive(
                &mut new,
                Some(&mut old),
                &IdMapping::default(),
                &IdMapping::default()
            )
            .unwrap(),
            4
        );
    }

    #[test]
    fn overlay_diff_converts_markers() {
        let mut lower = MemFs::new(1, 100);
        lower.put_dir(b"odir", 1);
        let mut upper = MemFs::new(2, 500);
        upper.mknod(b"del", FileKind::CharDevice, 0, 0, 0).unwrap();
        upper.put_dir(b"odir", 1);
        upper
            .set_xattr(b"odir", "trusted.overlay.opaque", b"y")
            .unwrap();
        upper
            .set_xattr(b"odir", "user.overlay.origin", b"x")
            .unwrap();
        upper.set_xattr(b"odir", "user.keep", b"1").unwrap();
        upper.put_dir(b"lonely", 1);
        upper
            .set_xattr(b"lonely", "trusted.overlay.opaque", b"y")
            .unwrap();
        let mut out: Vec<u8> = Vec::new();
        let mut lowers = vec![lower];
        write_overlay_diff(
            &mut upper,
            &mut lowers,
            &mut out,
            &DiffOptions::default(),
            &OverlayOptions::default(),
        )
        .unwrap();
        let names: Vec<String> = read_back(&out).into_iter().map(|e| e.0).collect();
        assert_eq!(
            names,
            vec![".wh.del", "lonely/", "odir/", "odir/.wh..wh..opq"]
        );
        let mut r = TarStreamReader::new(&out[..]);
        r.next_entry().unwrap();
        r.next_entry().unwrap();
        let odir = r.next_entry().unwrap().unwrap();
        assert_eq!(odir.xattrs, vec![("user.keep".to_string(), b"1".to_vec())]);
        assert_eq!(tree_size(&mut upper).unwrap(), 0);
    }
}
