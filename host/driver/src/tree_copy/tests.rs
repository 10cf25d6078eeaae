//! Copies and removals of trees made by real tools (`mknod`, `mkfifo`, `ln`, `chown`,
//! `touch`, python's socket and xattr calls), compared entry by entry with the source and
//! with GNU `cp -a`'s copy of it. Run as root (owners, device nodes, trusted xattrs).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;

fn sh(script: &str, dir: &Path) {
    let out = Command::new("sh")
        .arg("-ec")
        .arg(script)
        .current_dir(dir)
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A version-2 `security.capability` value: `cap_net_bind_service` permitted and effective.
const CAPABILITY: &str =
    r"\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";

/// Makes the source tree with real tools. Access times are an hour ahead, so that reading a
/// file or listing a directory (relatime) leaves them as they were.
fn make_source(src: &Path) {
    std::fs::create_dir_all(src).unwrap();
    sh(
        &format!(
            r#"
mkdir -p a/b empty deep/1/2/3/4/5/6/7/8/9
head -c 300000 /dev/urandom > a/file
printf hi > a/b/small
: > zero
ln a/file a/b/link
ln a/file hl
ln -s ../../etc/passwd a/sym
ln -s /etc abs
chown -h 1002:1003 abs
mknod null c 1 3
mknod -m 620 blk b 7 200
mkfifo -m 640 fifo
python3 -c "import socket; socket.socket(socket.AF_UNIX).bind('sock')"
python3 - <<'PY'
import os
os.setxattr('a/b', 'user.note', b'kept')
os.setxattr('a/file', 'user.x', b'1')
os.setxattr('a/b/small', 'security.capability', b"{CAPABILITY}")
os.setxattr('a', 'trusted.overlay.opaque', b'y')
os.setxattr('a', 'trusted.other', b'not upstream')
PY
for i in $(seq 1 300); do printf $i > deep/1/2/f$i; done
chown 1000:1000 a/file
chmod 4755 a/file
chown 1000:1001 a/b
chmod 750 a/b
chmod 1777 empty
chmod 2710 deep/1
chown 7:8 null sock
touch -h -m -d '2001-02-03 04:05:06.123456789' abs a/sym
find . -exec touch -h -m -d '2001-02-03 04:05:06.123456789' {{}} +
find . -exec touch -h -a -d '+1 hour' {{}} +
"#
        ),
        src,
    );
}

/// One entry as upstream's copy keeps it; hard links as the first path of their inode.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    kind: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: (i64, i64),
    atime: (i64, i64),
    rdev: u64,
    target: Option<PathBuf>,
    contents: Option<Vec<u8>>,
    xattrs: BTreeMap<String, Vec<u8>>,
    link_of: Option<PathBuf>,
}

fn kept(name: &str) -> bool {
    name.starts_with("user.") || KEPT_XATTRS.contains(&name)
}

/// `root/rel`, without the trailing slash `join` adds for an empty `rel`.
fn full(root: &Path, rel: &Path) -> PathBuf {
    if rel.as_os_str().is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    }
}

fn describe(root: &Path, keep: impl Fn(&str) -> bool) -> BTreeMap<PathBuf, Entry> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<u64, PathBuf> = BTreeMap::new();
    let mut paths = vec![PathBuf::new()];
    let mut all = Vec::new();
    while let Some(rel) = paths.pop() {
        let path = full(root, &rel);
        let md = std::fs::symlink_metadata(&path).unwrap();
        if md.is_dir() {
            for e in std::fs::read_dir(&path).unwrap() {
                paths.push(rel.join(e.unwrap().file_name()));
            }
        }
        all.push(rel);
    }
    all.sort();
    for rel in all {
        let path = full(root, &rel);
        let md = std::fs::symlink_metadata(&path).unwrap();
        let ft = md.file_type();
        let kind = match () {
            _ if ft.is_dir() => "dir",
            _ if ft.is_file() => "file",
            _ if ft.is_symlink() => "symlink",
            _ if ft.is_socket() => "socket",
            _ if ft.is_fifo() => "fifo",
            _ if ft.is_char_device() => "char",
            _ => "block",
        };
        let link_of = if ft.is_file() && md.nlink() > 1 {
            let first = inodes.entry(md.ino()).or_insert_with(|| rel.clone());
            (*first != rel).then(|| first.clone())
        } else {
            None
        };
        let mut xattrs = BTreeMap::new();
        let mut names = vec![0u8; 4096];
        let n = rustix::fs::llistxattr(&path, &mut names[..]).unwrap_or(0);
        for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
            let name = String::from_utf8(name.to_vec()).unwrap();
            if keep(&name) {
                let mut value = vec![0u8; 4096];
                let len = rustix::fs::lgetxattr(&path, name.as_str(), &mut value[..]).unwrap();
                value.truncate(len);
                xattrs.insert(name, value);
            }
        }
        out.insert(
            rel,
            Entry {
                kind,
                // A symlink's mode is always 0777.
                mode: md.mode() & 0o7777,
                uid: md.uid(),
                gid: md.gid(),
                size: if ft.is_dir() { 0 } else { md.size() },
                mtime: (md.mtime(), md.mtime_nsec()),
                atime: (md.atime(), md.atime_nsec()),
                rdev: md.rdev(),
                target: ft.is_symlink().then(|| std::fs::read_link(&path).unwrap()),
                contents: ft.is_file().then(|| std::fs::read(&path).unwrap()),
                xattrs,
                link_of,
            },
        );
    }
    out
}

fn open_root(path: &Path) -> OwnedFd {
    rustix::fs::open(path, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap()
}

fn copy(src_root: &Path, from: &str, dst_root: &Path, to: &str) -> FsResult<()> {
    let sys = crate::syscalls::real();
    copy_tree_at(
        &*sys,
        open_root(src_root).as_fd(),
        from.as_bytes(),
        open_root(dst_root).as_fd(),
        to.as_bytes(),
    )
}

#[test]
fn a_copy_keeps_what_upstream_keeps_and_matches_cp_a() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("lent/src");
    make_source(&src);
    let before = describe(&src, kept);
    assert!(before.len() > 300, "{}", before.len());
    let kinds: std::collections::BTreeSet<_> = before.values().map(|e| e.kind).collect();
    assert_eq!(kinds.len(), 7, "every kind of entry: {kinds:?}");

    copy(
        &tmp.path().join("lent"),
        "src",
        &tmp.path().join("lent"),
        "copy",
    )
    .unwrap();
    let ours = describe(&tmp.path().join("lent/copy"), kept);
    for (path, entry) in &before {
        assert_eq!(ours.get(path), Some(entry), "{path:?}");
    }
    assert_eq!(ours.len(), before.len());

    // GNU cp -a makes the same tree (it keeps every xattr: compared on upstream's set).
    sh("cp -a lent/src cp", tmp.path());
    assert_eq!(describe(&tmp.path().join("cp"), kept), ours);

    // What upstream does not copy is not copied; the hard links share one inode.
    let copied = tmp.path().join("lent/copy");
    let mut buf = [0u8; 64];
    assert!(rustix::fs::lgetxattr(copied.join("a"), "trusted.other", &mut buf[..]).is_err());
    let ino = |p: &str| std::fs::metadata(copied.join(p)).unwrap().ino();
    assert_eq!(ino("a/file"), ino("hl"));
    assert_eq!(ino("a/file"), ino("a/b/link"));
    assert_ne!(
        ino("a/file"),
        std::fs::metadata(src.join("a/file")).unwrap().ino()
    );
    assert!(std::fs::symlink_metadata(copied.join("sock"))
        .unwrap()
        .file_type()
        .is_socket());
    // The source is as it was.
    assert_eq!(describe(&src, kept), before);
}

#[test]
fn a_copy_of_the_root_a_file_and_into_an_existing_path() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_source(&src);
    let before = describe(&src, kept);
    let dst = tmp.path().join("dst");
    std::fs::create_dir(&dst).unwrap();

    // The lent directory itself.
    copy(&src, "", &dst, "whole").unwrap();
    assert_eq!(describe(&dst.join("whole"), kept), before);
    // One file: its contents and metadata.
    copy(&src, "a/file", &dst, "one").unwrap();
    let one = &describe(&dst.join("one"), kept)[&PathBuf::new()];
    let file = &before[Path::new("a/file")];
    assert_eq!(
        (
            one.mode,
            one.uid,
            one.mtime,
            one.atime,
            &one.contents,
            &one.xattrs
        ),
        (
            0o4755,
            1000,
            file.mtime,
            file.atime,
            &file.contents,
            &file.xattrs
        )
    );
    // The destination must not exist.
    let err = copy(&src, "a", &dst, "whole").unwrap_err();
    assert_eq!(err.kind, FsErrorKind::AlreadyExists, "{}", err.message);
    let err = copy(&src, "missing", &dst, "new").unwrap_err();
    assert_eq!(err.kind, FsErrorKind::NotFound, "{}", err.message);
    assert!(!dst.join("new").exists());
}

#[test]
fn copies_and_removals_stay_inside_their_roots() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret"), b"secret").unwrap();
    let lent = tmp.path().join("lent");
    std::fs::create_dir_all(lent.join("tree/d")).unwrap();
    std::os::unix::fs::symlink(&outside, lent.join("tree/d/out")).unwrap();
    std::os::unix::fs::symlink("../../../outside", lent.join("tree/up")).unwrap();
    std::os::unix::fs::symlink(&outside, lent.join("escape")).unwrap();

    // Symlinks in the tree are copied as links, never followed.
    copy(&lent, "tree", &lent, "copy").unwrap();
    assert_eq!(
        std::fs::read_link(lent.join("copy/d/out")).unwrap(),
        outside
    );
    // A final symlink is copied as one; a symlink on the way resolves inside the root,
    // where nothing is.
    copy(&lent, "escape", &lent, "copy2").unwrap();
    assert_eq!(std::fs::read_link(lent.join("copy2")).unwrap(), outside);
    let err = copy(&lent, "escape/secret", &lent, "stolen").unwrap_err();
    assert_eq!(err.kind, FsErrorKind::NotFound, "{}", err.message);
    let err = copy(&lent, "tree", &lent, "escape/planted").unwrap_err();
    assert_eq!(err.kind, FsErrorKind::NotFound, "{}", err.message);
    assert!(!lent.join("stolen").exists());
    for bad in ["../outside", "tree/../..", "/tmp", "tree//d"] {
        let err = copy(&lent, bad, &lent, "x").unwrap_err();
        assert_eq!(err.kind, FsErrorKind::PathEscape, "{bad}: {}", err.message);
        let err = remove_tree_at(open_root(&lent).as_fd(), bad.as_bytes()).unwrap_err();
        assert_eq!(err.kind, FsErrorKind::PathEscape, "{bad}: {}", err.message);
    }

    // Removal removes the links, not what they point to.
    let root = open_root(&lent);
    remove_tree_at(root.as_fd(), b"copy").unwrap();
    remove_tree_at(root.as_fd(), b"tree").unwrap();
    remove_tree_at(root.as_fd(), b"escape/secret").unwrap();
    assert!(!lent.join("copy").exists() && !lent.join("tree").exists());
    assert_eq!(std::fs::read(outside.join("secret")).unwrap(), b"secret");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
    assert_eq!(
        remove_tree_at(root.as_fd(), b"").unwrap_err().kind,
        FsErrorKind::PermissionDenied
    );
}

#[test]
fn a_removal_takes_everything_and_missing_is_no_error() {
    let tmp = tempfile::tempdir().unwrap();
    let lent = tmp.path().join("lent");
    make_source(&lent.join("layer"));
    // A directory nobody may write or enter, and one file alone.
    sh("mkdir -p layer/locked/inner && touch layer/locked/inner/f && chmod 0 layer/locked/inner layer/locked && touch alone", &lent);
    let root = open_root(&lent);
    remove_tree_at(root.as_fd(), b"layer").unwrap();
    remove_tree_at(root.as_fd(), b"alone").unwrap();
    remove_tree_at(root.as_fd(), b"layer").unwrap();
    remove_tree_at(root.as_fd(), b"missing/below").unwrap();
    assert_eq!(std::fs::read_dir(&lent).unwrap().count(), 0);
}

#[test]
fn the_confined_dir_form_copies_the_same_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_source(&src.join("layer"));
    let before = describe(&src.join("layer"), kept);
    let dst = tmp.path().join("dst");
    std::fs::create_dir(&dst).unwrap();
    let mut from: ConfinedDir<dyn Read, dyn Write> = ConfinedDir::open(&src).unwrap();
    let mut to: ConfinedDir<dyn Read, dyn Write> = ConfinedDir::open(&dst).unwrap();
    copy_tree(&mut from, b"layer", &mut to, b"copy").unwrap();
    assert_eq!(describe(&dst.join("copy"), kept), before);
}
