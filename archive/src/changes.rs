//! Changes between a layer and its parent: the naive comparison of two trees
//! (containers/storage's `ChangesDirs`) and the overlay-native walk of an upper dir
//! (`OverlayChanges`).

use std::collections::{BTreeMap, BTreeSet};

use crate::error::ArchiveError;
use crate::fs::{FileKind, FileStat, FsRead, Timestamp};
use crate::idmap::IdMapping;
use crate::paths::{join, parent};

/// What happened to a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeKind {
    /// Exists in both, different content or metadata.
    Modify,
    /// Exists only in the layer.
    Add,
    /// Exists only in the parent.
    Delete,
}

/// One changed path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Change {
    /// Path relative to the layer root, `/`-separated, never empty.
    pub path: Vec<u8>,
    /// What happened.
    pub kind: ChangeKind,
}

/// The xattr that marks a capability set.
const CAPABILITY_XATTR: &str = "security.capability";

/// Sorts changes by path, as Go's `changesByPath` (callers of `Changes` and `ExportChanges`).
pub fn sort_changes(changes: &mut [Change]) {
    changes.sort_by(|a, b| a.path.cmp(&b.path));
}

/// One file of a tree, with what the comparison looks at.
struct Node {
    stat: FileStat,
    capability: Option<Vec<u8>>,
    user_xattrs: BTreeMap<String, Vec<u8>>,
    target: Vec<u8>,
    children: BTreeMap<Vec<u8>, Node>,
    added: bool,
}

/// Changes of `layer` relative to `parent` (`None` = an empty parent), in tree-walk order
/// (sort with [`sort_changes`] before exporting). Owners are compared as container IDs, each
/// side mapped host→container with the mapping its layer is stored with (`mapping` for
/// `layer`, `parent_mapping` for the parent), as Go's `statDifferent`: a layer re-owned for
/// another mapping has not changed its files.
pub fn changes_naive<L: FsRead, P: FsRead>(
    layer: &mut L,
    parent_fs: Option<&mut P>,
    mapping: &IdMapping,
    parent_mapping: &IdMapping,
) -> Result<Vec<Change>, ArchiveError> {
    let mappings = Mappings {
        new: mapping,
        old: parent_mapping,
    };
    let mapping = &mappings;
    let mut new_root = load_node(layer, b"")?.ok_or_else(missing_root)?;
    let mut changes = Vec::new();
    match parent_fs {
        Some(parent_fs) => {
            let mut old_root = load_node(parent_fs, b"")?.ok_or_else(missing_root)?;
            let same_dev = new_root.stat.dev == old_root.stat.dev;
            walk_pair(
                layer,
                parent_fs,
                b"",
                &mut new_root,
                &mut old_root,
                same_dev,
            )?;
            add_changes(&mut new_root, Some(&old_root), b"", mapping, &mut changes);
        }
        None => {
            walk_single(layer, b"", &mut new_root)?;
            let empty = Node {
                stat: new_root.stat.clone(),
                capability: None,
                user_xattrs: BTreeMap::new(),
                target: Vec::new(),
                children: BTreeMap::new(),
                added: false,
            };
            add_changes(&mut new_root, Some(&empty), b"", mapping, &mut changes);
        }
    }
    Ok(changes)
}

fn missing_root() -> ArchiveError {
    ArchiveError::fs(
        "lstat",
        b"",
        crate::fs::FsError::new(crate::fs::FsErrorKind::NotFound, "tree root is missing"),
    )
}

fn load_node<F: FsRead>(fs: &mut F, path: &[u8]) -> Result<Option<Node>, ArchiveError> {
    let Some(stat) = fs
        .lstat(path)
        .map_err(|e| ArchiveError::fs("lstat", path, e))?
    else {
        return Ok(None);
    };
    let mut node = Node {
        capability: None,
        user_xattrs: BTreeMap::new(),
        target: Vec::new(),
        children: BTreeMap::new(),
        added: false,
        stat,
    };
    if node.stat.kind == FileKind::Symlink {
        node.target = fs
            .readlink(path)
            .map_err(|e| ArchiveError::fs("readlink", path, e))?;
    }
    let names = fs
        .list_xattrs(path)
        .map_err(|e| ArchiveError::fs("listxattr", path, e))?;
    for name in names {
        if name == CAPABILITY_XATTR || name.starts_with("user.") {
            let value = fs
                .get_xattr(path, &name)
                .map_err(|e| ArchiveError::fs("getxattr", path, e))?;
            if let Some(value) = value {
                if name == CAPABILITY_XATTR {
                    node.capability = Some(value);
                } else {
                    node.user_xattrs.insert(name, value);
                }
            }
        }
    }
    Ok(Some(node))
}

fn list_sorted<F: FsRead>(
    fs: &mut F,
    dir: &[u8],
) -> Result<BTreeMap<Vec<u8>, crate::fs::DirEntry>, ArchiveError> {
    Ok(fs
        .read_dir(dir)
        .map_err(|e| ArchiveError::fs("read dir", dir, e))?
        .into_iter()
        .map(|e| (e.name.clone(), e))
        .collect())
}

fn walk_single<F: FsRead>(fs: &mut F, dir: &[u8], node: &mut Node) -> Result<(), ArchiveError> {
    for name in list_sorted(fs, dir)?.into_keys() {
        let path = join(dir, &name);
        if let Some(mut child) = load_node(fs, &path)? {
            if child.stat.kind == FileKind::Directory {
                walk_single(fs, &path, &mut child)?;
            }
            node.children.insert(name, child);
        }
    }
    Ok(())
}

/// Loads both trees below `dir`, skipping entries with the same inode on the same device (a
/// snapshot shares them, so they cannot differ).
fn walk_pair<L: FsRead, P: FsRead>(
    layer: &mut L,
    parent_fs: &mut P,
    dir: &[u8],
    new: &mut Node,
    old: &mut Node,
    same_dev: bool,
) -> Result<(), ArchiveError> {
    let new_entries = list_sorted(layer, dir)?;
    let old_entries = if old.stat.kind == FileKind::Directory {
        list_sorted(parent_fs, dir)?
    } else {
        BTreeMap::new()
    };
    for (name, entry) in &new_entries {
        let path = join(dir, name);
        if let Some(old_entry) = old_entries.get(name) {
            if same_dev && old_entry.ino == entry.ino {
                continue;
            }
        }
        let Some(mut new_child) = load_node(layer, &path)? else {
            continue;
        };
        let old_child = if old_entries.contains_key(name) {
            load_node(parent_fs, &path)?
        } else {
            None
        };
        match old_child {
            Some(mut old_child) => {
                if new_child.stat.kind == FileKind::Directory {
                    walk_pair(
                        layer,
                        parent_fs,
                        &path,
                        &mut new_child,
                        &mut old_child,
                        same_dev,
                    )?;
                }
                old.children.insert(name.clone(), old_child);
            }
            None => {
                if new_child.stat.kind == FileKind::Directory {
                    walk_single(layer, &path, &mut new_child)?;
                }
            }
        }
        new.children.insert(name.clone(), new_child);
    }
    for name in old_entries.keys() {
        if new_entries.contains_key(name) {
            continue;
        }
        let path = join(dir, name);
        if let Some(old_child) = load_node(parent_fs, &path)? {
            old.children.insert(name.clone(), old_child);
        }
    }
    Ok(())
}

/// Go's `sameFsTime`: equal, or equal seconds when either side lacks nanoseconds.
pub fn same_fs_time(a: Timestamp, b: Timestamp) -> bool {
    a == b || (a.secs == b.secs && (a.nanos == 0 || b.nanos == 0))
}

/// The mappings of the two sides of a naive comparison.
struct Mappings<'a> {
    new: &'a IdMapping,
    old: &'a IdMapping,
}

impl Mappings<'_> {
    /// The owners compared, as Go's `statDifferent`: the new side in container IDs when its
    /// mapping knows it, and then the old side too when its mapping does; host IDs else.
    fn owners(&self, old: &FileStat, new: &FileStat) -> ((u32, u32), (u32, u32)) {
        let (mut old_ids, mut new_ids) = ((old.uid, old.gid), (new.uid, new.gid));
        if let Some(mapped) = self.new.to_container(new.uid, new.gid) {
            new_ids = mapped;
            if let Some(mapped) = self.old.to_container(old.uid, old.gid) {
                old_ids = mapped;
            }
        }
        (old_ids, new_ids)
    }
}

fn stat_different(old: &FileStat, new: &FileStat, mappings: &Mappings<'_>) -> bool {
    let (old_ids, new_ids) = mappings.owners(old, new);
    old.kind != new.kind
        || old.mode != new.mode
        || old_ids != new_ids
        || (old.rdev_major, old.rdev_minor) != (new.rdev_major, new.rdev_minor)
        || !same_fs_time(old.mtime, new.mtime)
        || (old.kind != FileKind::Directory && old.size != new.size)
}

/// Go's `FileInfo.addChanges`, with children visited in name order.
fn add_changes(
    info: &mut Node,
    old: Option<&Node>,
    path: &[u8],
    mapping: &Mappings<'_>,
    changes: &mut Vec<Change>,
) {
    let size_at_entry = changes.len();
    if old.is_none() {
        changes.push(Change {
            path: path.to_vec(),
            kind: ChangeKind::Add,
        });
        info.added = true;
    }
    let is_dir = info.stat.kind == FileKind::Directory;
    let mut old_children: BTreeSet<&Vec<u8>> = BTreeSet::new();
    if let (Some(old), true) = (old, is_dir) {
        old_children.extend(old.children.keys());
    }
    for (name, new_child) in info.children.iter_mut() {
        let child_path = join(path, name);
        let old_child = if old_children.remove(name) {
            old.and_then(|o| o.children.get(name))
        } else {
            None
        };
        if let Some(old_child) = old_child {
            if stat_different(&old_child.stat, &new_child.stat, mapping)
                || old_child.capability != new_child.capability
                || old_child.target != new_child.target
                || old_child.user_xattrs != new_child.user_xattrs
            {
                changes.push(Change {
                    path: child_path.clone(),
                    kind: ChangeKind::Modify,
                });
                new_child.added = true;
            }
        }
        add_changes(new_child, old_child, &child_path, mapping, changes);
    }
    for name in old_children {
        changes.push(Change {
            path: join(path, name),
            kind: ChangeKind::Delete,
        });
    }
    // A dir with changes inside is recorded (before them) so its metadata travels too.
    if changes.len() > size_at_entry && is_dir && !info.added && !path.is_empty() {
        changes.insert(
            size_at_entry,
            Change {
                path: path.to_vec(),
                kind: ChangeKind::Modify,
            },
        );
    }
}

/// Options of the overlay-native walk.
#[derive(Debug, Clone, Copy, Default)]
pub struct OverlayOptions {
    /// Opaque dirs are marked with `user.overlay.opaque` (rootless) instead of
    /// `trusted.overlay.opaque`.
    pub rootless: bool,
}

impl OverlayOptions {
    /// The opaque xattr name in use.
    pub fn opaque_xattr(&self) -> &'static str {
        if self.rootless {
            crate::apply::OVERLAY_OPAQUE_USER_XATTR
        } else {
            crate::apply::OVERLAY_OPAQUE_XATTR
        }
    }
}

/// True if `stat` is an overlay whiteout (char device 0:0).
pub fn is_overlay_whiteout(stat: &FileStat) -> bool {
    stat.kind == FileKind::CharDevice && stat.rdev_major == 0 && stat.rdev_minor == 0
}

/// True if the dir at `path` carries the opaque xattr `y`.
pub fn is_opaque_dir<F: FsRead>(
    fs: &mut F,
    path: &[u8],
    opts: &OverlayOptions,
) -> Result<bool, ArchiveError> {
    let value = fs
        .get_xattr(path, opts.opaque_xattr())
        .map_err(|e| ArchiveError::fs("getxattr", path, e))?;
    Ok(value.as_deref() == Some(b"y"))
}

/// Changes recorded in an overlay upper dir (Go's `OverlayChanges`), lowers topmost first.
///
/// As upstream's `changes` with `overlayDeletedFile` and `overlayLowerContainsWhiteout`: a
/// whiteout device is a deletion; an opaque directory is a deletion when the first lower
/// layer that knows the path has something other than a whiteout there; anything else is an
/// addition unless the first lower layer that has the path (before any that whites it or
/// one of its ancestors out) has it, when it is a modification, or nothing at all for a
/// directory whose size, mode and time are the same. Every ancestor of an addition or a
/// deletion not listed yet is listed as modified, outermost first.
pub fn changes_overlay<U: FsRead, L: FsRead>(
    upper: &mut U,
    lowers: &mut [L],
    opts: &OverlayOptions,
) -> Result<Vec<Change>, ArchiveError> {
    let mut walk = Vec::new();
    walk_tree(upper, b"", &mut walk)?;
    let mut changes = Vec::new();
    let mut changed_dirs: BTreeSet<Vec<u8>> = BTreeSet::new();
    for (path, stat) in walk {
        let deleted = if is_overlay_whiteout(&stat) {
            true
        } else if stat.kind == FileKind::Directory && is_opaque_dir(upper, &path, opts)? {
            opaque_dir_replaces_a_lower_one(lowers, &path)?
        } else {
            false
        };
        let kind = if deleted {
            ChangeKind::Delete
        } else {
            match kind_against_lowers(lowers, &path, &stat)? {
                Some(kind) => kind,
                None => continue, // an unchanged dir, only a parent of changes
            }
        };
        if stat.kind == FileKind::Directory {
            changed_dirs.insert(path.clone());
        }
        if matches!(kind, ChangeKind::Add | ChangeKind::Delete) {
            let mut tail = Vec::new();
            let mut dir = parent(&path);
            while !dir.is_empty() {
                if changed_dirs.insert(dir.to_vec()) {
                    tail.push(Change {
                        path: dir.to_vec(),
                        kind: ChangeKind::Modify,
                    });
                }
                dir = parent(dir);
            }
            changes.extend(tail.into_iter().rev());
        }
        changes.push(Change { path, kind });
    }
    Ok(changes)
}

/// Whether `path` in `lower` is a whiteout (a 0:0 character device).
fn whiteout_at<L: FsRead>(lower: &mut L, path: &[u8]) -> Result<bool, ArchiveError> {
    Ok(lower
        .lstat(path)
        .map_err(|e| ArchiveError::fs("lstat", path, e))?
        .is_some_and(|st| is_overlay_whiteout(&st)))
}

/// Whether a lower layer whites out one of the ancestors of `path`.
fn ancestor_whited_out<L: FsRead>(lower: &mut L, path: &[u8]) -> Result<bool, ArchiveError> {
    let mut dir = parent(path);
    while !dir.is_empty() {
        if whiteout_at(lower, dir)? {
            return Ok(true);
        }
        dir = parent(dir);
    }
    Ok(false)
}

/// Upstream's `overlayDeletedFile` for an opaque directory: it deletes what a lower layer
/// had there, unless the first layer that has the path has a whiteout (it was already gone).
pub fn opaque_dir_replaces_a_lower_one<L: FsRead>(
    lowers: &mut [L],
    path: &[u8],
) -> Result<bool, ArchiveError> {
    for lower in lowers.iter_mut() {
        if let Some(st) = lower
            .lstat(path)
            .map_err(|e| ArchiveError::fs("lstat", path, e))?
        {
            return Ok(!is_overlay_whiteout(&st));
        }
        if ancestor_whited_out(lower, path)? {
            return Ok(false);
        }
    }
    Ok(false)
}

/// Upstream's layer scan for a path of the upper layer that is not a deletion: `None` for
/// a directory the lower layers have the same.
fn kind_against_lowers<L: FsRead>(
    lowers: &mut [L],
    path: &[u8],
    stat: &FileStat,
) -> Result<Option<ChangeKind>, ArchiveError> {
    for lower in lowers.iter_mut() {
        if whiteout_at(lower, path)? || ancestor_whited_out(lower, path)? {
            return Ok(Some(ChangeKind::Add));
        }
        if let Some(st) = lower
            .lstat(path)
            .map_err(|e| ArchiveError::fs("lstat", path, e))?
        {
            let both_dirs = st.kind == FileKind::Directory && stat.kind == FileKind::Directory;
            if both_dirs
                && st.size == stat.size
                && st.mode == stat.mode
                && same_fs_time(st.mtime, stat.mtime)
            {
                return Ok(None);
            }
            return Ok(Some(ChangeKind::Modify));
        }
    }
    Ok(Some(ChangeKind::Add))
}

/// Every path below the root in pre-order, names sorted bytewise (Go's `filepath.Walk`).
pub fn walk_tree<F: FsRead>(
    fs: &mut F,
    dir: &[u8],
    out: &mut Vec<(Vec<u8>, FileStat)>,
) -> Result<(), ArchiveError> {
    for name in list_sorted(fs, dir)?.into_keys() {
        let path = join(dir, &name);
        let Some(stat) = fs
            .lstat(&path)
            .map_err(|e| ArchiveError::fs("lstat", &path, e))?
        else {
            continue; // vanished while walking
        };
        let is_dir = stat.kind == FileKind::Directory;
        out.push((path.clone(), stat));
        if is_dir {
            walk_tree(fs, &path, out)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::FsWrite;
    use crate::memfs::MemFs;

    fn listed(changes: &[Change]) -> Vec<(String, ChangeKind)> {
        changes
            .iter()
            .map(|c| (String::from_utf8_lossy(&c.path).into_owned(), c.kind))
            .collect()
    }

    #[test]
    fn naive_add_modify_delete_and_parent_dirs() {
        let mut old = MemFs::new(7, 100);
        old.put_dir(b"d", 5);
        old.put_file(b"d/same", b"s", 5);
        old.put_file(b"d/size", b"1", 5);
        old.put_dir(b"gone", 5);
        old.put_file(b"gone/child", b"c", 5);
        old.put_file(b"top", b"t", 5);
        let mut new = MemFs::new(8, 500); // another device: no inode shortcut
        new.put_dir(b"d", 5);
        new.put_file(b"d/same", b"s", 5);
        new.put_file(b"d/size", b"22", 5);
        new.put_dir(b"d/newdir", 5);
        new.put_file(b"d/newdir/f", b"f", 5);
        new.put_file(b"top", b"t", 5);
        new.set_xattr(b"top", "user.k", b"v").unwrap();

        let changes = changes_naive(
            &mut new,
            Some(&mut old),
            &IdMapping::default(),
            &IdMapping::default(),
        )
        .unwrap();
        assert_eq!(
            listed(&changes),
            vec![
                ("d".to_string(), ChangeKind::Modify),
                ("d/newdir".to_string(), ChangeKind::Add),
                ("d/newdir/f".to_string(), ChangeKind::Add),
                ("d/size".to_string(), ChangeKind::Modify),
                ("top".to_string(), ChangeKind::Modify),
                ("gone".to_string(), ChangeKind::Delete),
            ]
        );
    }

    #[test]
    fn naive_same_inode_on_same_device_is_skipped() {
        let mut old = MemFs::new(7, 100);
        old.put_file(b"shared", b"a", 5);
        let mut new = MemFs::new(7, 100);
        new.put_file(b"shared", b"ab", 9); // same inode number: a snapshot shares it
        let changes = changes_naive(
            &mut new,
            Some(&mut old),
            &IdMapping::default(),
            &IdMapping::default(),
        )
        .unwrap();
        assert!(changes.is_empty(), "{changes:?}");
        let mut other_dev = MemFs::new(8, 100);
        other_dev.put_file(b"shared", b"ab", 9);
        let changes = changes_naive(
            &mut other_dev,
            Some(&mut old),
            &IdMapping::default(),
            &IdMapping::default(),
        )
        .unwrap();
        assert_eq!(
            listed(&changes),
            vec![("shared".into(), ChangeKind::Modify)]
        );
    }

    #[test]
    fn naive_without_parent_adds_everything() {
        let mut new = MemFs::new(8, 500);
        new.put_dir(b"a", 1);
        new.put_file(b"a/b", b"x", 1);
        let changes =
            changes_naive::<_, MemFs>(&mut new, None, &IdMapping::default(), &IdMapping::default())
                .unwrap();
        assert_eq!(
            listed(&changes),
            vec![
                ("a".into(), ChangeKind::Add),
                ("a/b".into(), ChangeKind::Add)
            ]
        );
    }

    #[test]
    fn overlay_changes() {
        let mut lower = MemFs::new(1, 100);
        lower.put_dir(b"same", 5);
        lower.put_dir(b"odir", 5);
        lower.put_file(b"odir/old", b"o", 5);
        lower.put_file(b"del", b"d", 5);
        let mut upper = MemFs::new(2, 500);
        upper.put_dir(b"same", 5); // identical dir: only a parent of a change
        upper.put_file(b"same/new", b"n", 6);
        upper.mknod(b"del", FileKind::CharDevice, 0, 0, 0).unwrap();
        upper.put_dir(b"odir", 6);
        upper
            .set_xattr(b"odir", "trusted.overlay.opaque", b"y")
            .unwrap();
        upper.put_file(b"odir/n", b"n", 6);
        let mut lowers = vec![lower];
        let changes = changes_overlay(&mut upper, &mut lowers, &OverlayOptions::default()).unwrap();
        assert_eq!(
            listed(&changes),
            vec![
                ("del".into(), ChangeKind::Delete),
                ("odir".into(), ChangeKind::Delete),
                ("odir/n".into(), ChangeKind::Add),
                ("same".into(), ChangeKind::Modify),
                ("same/new".into(), ChangeKind::Add),
            ]
        );
        // Rootless: the trusted xattr means nothing, only user.overlay.opaque does.
        let rootless = OverlayOptions { rootless: true };
        let changes = changes_overlay(&mut upper, &mut lowers, &rootless).unwrap();
        assert!(listed(&changes).contains(&("odir".into(), ChangeKind::Modify)));
    }

    /// Upstream's rules when lower layers have whiteouts (bats `changes`, `applydiff`):
    /// a path whited out below (itself or an ancestor) is an addition when it comes back,
    /// an opaque dir over a whiteout deletes nothing, and every ancestor of an addition is
    /// listed as modified, outermost first.
    #[test]
    fn overlay_changes_over_lower_whiteouts() {
        // layer 1: d1/, d2/f, deep/a/ ; layer 2: whiteouts of d1, d2 and deep ;
        // layer 3 (upper): d1/, d2/f, deep/a/b/c, opaque o/ where layer 2 whited o out.
        let mut l1 = MemFs::new(1, 100);
        l1.put_dir(b"d1", 5);
        l1.put_dir(b"d2", 5);
        l1.put_file(b"d2/f", b"x", 5);
        l1.put_dir(b"deep", 5);
        l1.put_dir(b"deep/a", 5);
        let mut l2 = MemFs::new(2, 200);
        for gone in [&b"d1"[..], b"d2", b"deep", b"o"] {
            l2.mknod(gone, FileKind::CharDevice, 0, 0, 0).unwrap();
        }
        let mut upper = MemFs::new(3, 300);
        upper.put_dir(b"d1", 6);
        upper.put_dir(b"d2", 6);
        upper.put_file(b"d2/f", b"y", 6);
        upper.put_dir(b"deep", 6);
        upper.put_dir(b"deep/a", 6);
        upper.put_dir(b"deep/a/b", 6);
        upper.put_file(b"deep/a/b/c", b"c", 6);
        upper.put_dir(b"o", 6);
        upper
            .set_xattr(b"o", "trusted.overlay.opaque", b"y")
            .unwrap();
        let mut lowers = vec![l2, l1];
        let changes = changes_overlay(&mut upper, &mut lowers, &OverlayOptions::default()).unwrap();
        assert_eq!(
            listed(&changes),
            vec![
                ("d1".into(), ChangeKind::Add),
                ("d2".into(), ChangeKind::Add),
                ("d2/f".into(), ChangeKind::Add),
                ("deep".into(), ChangeKind::Add),
                ("deep/a".into(), ChangeKind::Add),
                ("deep/a/b".into(), ChangeKind::Add),
                ("deep/a/b/c".into(), ChangeKind::Add),
                ("o".into(), ChangeKind::Add),
            ]
        );
        // Ancestors of a change deep in an unchanged tree are listed, outermost first.
        let mut lower = MemFs::new(1, 100);
        lower.put_dir(b"x", 5);
        lower.put_dir(b"x/y", 5);
        let mut upper = MemFs::new(2, 200);
        upper.put_dir(b"x", 5);
        upper.put_dir(b"x/y", 5);
        upper.put_file(b"x/y/z", b"z", 6);
        let mut lowers = vec![lower];
        let changes = changes_overlay(&mut upper, &mut lowers, &OverlayOptions::default()).unwrap();
        assert_eq!(
            listed(&changes),
            vec![
                ("x".into(), ChangeKind::Modify),
                ("x/y".into(), ChangeKind::Modify),
                ("x/y/z".into(), ChangeKind::Add),
            ]
        );
    }

    /// Upstream's `statDifferent`: each side's owners in container IDs through its own
    /// mapping, so a layer re-owned for another mapping than its parent's changed nothing.
    #[test]
    fn naive_owners_compare_through_each_sides_mapping() {
        let mapping = |host: u32| IdMapping {
            uids: vec![crate::idmap::IdRange {
                container_id: 0,
                host_id: host,
                size: 10,
            }],
            gids: vec![crate::idmap::IdRange {
                container_id: 0,
                host_id: host,
                size: 10,
            }],
        };
        let mut old = MemFs::new(7, 100);
        old.put_file(b"f", b"x", 5);
        old.lchown(b"f", 300_001, 300_001).unwrap();
        let mut new = MemFs::new(8, 500);
        new.put_file(b"f", b"x", 5);
        new.lchown(b"f", 400_001, 400_001).unwrap();
        let same = changes_naive(
            &mut new,
            Some(&mut old),
            &mapping(400_000),
            &mapping(300_000),
        )
        .unwrap();
        assert!(same.is_empty(), "{same:?}");
        // With one mapping for both, the owner looks changed.
        let one = changes_naive(
            &mut new,
            Some(&mut old),
            &mapping(400_000),
            &mapping(400_000),
        )
        .unwrap();
        assert_eq!(listed(&one), vec![("f".into(), ChangeKind::Modify)]);
    }
}
