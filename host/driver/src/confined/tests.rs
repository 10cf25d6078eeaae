//! Tests of confined trees: hostile archives stay inside, round trips through the archive
//! logic, the kernel reads our overlay format.

#![allow(clippy::unwrap_used)]

use super::trees::ReadDir;
use super::*;
use crate::idmap::IdMappings;
use crate::ChangeKind;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use storage_archive::fs::{FsRead, FsWrite};
use storage_archive::tar_stream::{EntryKind, TarStreamReader};
use storage_archive::WhiteoutFormat;
use storage_archive::{ApplyOptions, ArchiveError, DiffOptions, OverlayOptions};

/// A layer dir and a sibling "outside" dir in one temp dir (removed on drop).
struct Sandbox {
    _tmp: tempfile::TempDir,
    layer: PathBuf,
    outside: PathBuf,
}

fn sandbox() -> Sandbox {
    let tmp = tempfile::tempdir().unwrap();
    let layer = tmp.path().join("layer");
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&layer).unwrap();
    std::fs::create_dir(&outside).unwrap();
    Sandbox {
        _tmp: tmp,
        layer,
        outside,
    }
}

fn header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(1_600_000_000);
    h
}

fn add_file(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
    let mut h = header(tar::EntryType::Regular, data.len() as u64, 0o644);
    b.append_data(&mut h, name, data).unwrap();
}

fn add_dir(b: &mut tar::Builder<Vec<u8>>, name: &str) {
    let mut h = header(tar::EntryType::Directory, 0, 0o755);
    b.append_data(&mut h, name, io::empty()).unwrap();
}

fn add_link(b: &mut tar::Builder<Vec<u8>>, kind: tar::EntryType, name: &str, target: &str) {
    let mut h = header(kind, 0, 0o777);
    h.set_link_name_literal(target).unwrap();
    // Raw name bytes: the builder would refuse hostile names.
    let bytes = h.as_old_mut();
    bytes.name = [0; 100];
    bytes.name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_cksum();
    b.append(&h, io::empty()).unwrap();
}

/// A regular-file entry with a raw (unchecked) name.
fn add_raw_file(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
    let mut h = header(tar::EntryType::Regular, data.len() as u64, 0o644);
    let old = h.as_old_mut();
    old.name = [0; 100];
    old.name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_cksum();
    b.append(&h, data).unwrap();
}

fn apply(dir: &Path, tar: &[u8], format: WhiteoutFormat) -> Result<u64, ArchiveError> {
    let opts = ApplyOptions {
        whiteout_format: format,
        ..Default::default()
    };
    apply_tar(dir, &mut &tar[..], &opts)
}

fn outside_is_empty(s: &Sandbox) -> bool {
    std::fs::read_dir(&s.outside).unwrap().next().is_none()
        && std::fs::read_dir(s.layer.parent().unwrap())
            .unwrap()
            .count()
            == 2
}

fn assert_one_line(err: &ArchiveError) {
    let msg = err.to_string();
    assert!(!msg.is_empty() && !msg.contains('\n'), "{msg:?}");
}

/// Found by fuzz/host_calls: owner 4294967295 (-1) from an archive or a guest tripped
/// rustix's debug assertion. It means "unchanged", as for Go's `os.Lchown`.
#[test]
fn owner_4294967295_leaves_the_owner_unchanged() {
    let s = sandbox();
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind) in [
        ("d", tar::EntryType::Directory),
        ("f", tar::EntryType::Regular),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(0);
        h.set_mode(0o755);
        h.set_uid(u64::from(u32::MAX));
        h.set_gid(u64::from(u32::MAX));
        b.append_data(&mut h, name, io::empty()).unwrap();
    }
    apply(&s.layer, &b.into_inner().unwrap(), WhiteoutFormat::Aufs).unwrap();
    let me = (
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    );
    for name in ["d", "f"] {
        let meta = std::fs::symlink_metadata(s.layer.join(name)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), me, "{name}");
    }
    let mut dir: ConfinedDir<dyn Read, dyn Write> = ConfinedDir::open(&s.layer).unwrap();
    dir.lchown(b"f", u32::MAX, u32::MAX).unwrap();
    let meta = std::fs::symlink_metadata(s.layer.join("f")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), me);
}

/// Found by fuzz/host_calls: a component made a fifo and read it, and the host call
/// blocked in open(2) for good (past the component's deadline); a device node would have
/// been opened and read raw. Reads take regular files only (a symlink is not followed).
#[test]
fn reads_refuse_fifos_and_devices() {
    let s = sandbox();
    let mut dir: ConfinedDir<dyn Read, dyn Write> = ConfinedDir::open(&s.layer).unwrap();
    dir.mkfifo(b"fifo", 0o644).unwrap();
    dir.mknod(b"null", FileKind::CharDevice, 0o644, 1, 3)
        .unwrap();
    std::fs::write(s.layer.join("file"), b"content").unwrap();
    std::os::unix::fs::symlink("file", s.layer.join("link")).unwrap();
    // A writer with data waiting: were the fifo opened, the read would return it rather
    // than block, and the test would fail instead of hanging.
    let mut writer = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(s.layer.join("fifo"))
        .unwrap();
    writer.write_all(b"fifo data").unwrap();
    let mut buf = [0u8; 64];
    for name in [&b"fifo"[..], b"null", b"link"] {
        let err = dir.read_file(name, 0, &mut buf).unwrap_err();
        assert!(err.message.contains("not a regular file"), "{err}");
        let mut out: Vec<u8> = Vec::new();
        let err = dir.copy_file_to_output(name, 1, &mut out).unwrap_err();
        assert!(err.message.contains("not a regular file"), "{err}");
    }
    assert_eq!(dir.read_file(b"file", 0, &mut buf).unwrap(), 7);
    assert_eq!(&buf[..7], b"content");
    let mut out: Vec<u8> = Vec::new();
    dir.copy_file_to_output(b"file", 7, &mut out).unwrap();
    assert_eq!(out, b"content");
}

#[test]
fn hostile_dotdot_name() {
    let s = sandbox();
    let mut b = tar::Builder::new(Vec::new());
    add_raw_file(&mut b, "../outside/pwned", b"x");
    let err = apply(&s.layer, &b.into_inner().unwrap(), WhiteoutFormat::Aufs).unwrap_err();
    assert!(matches!(err, ArchiveError::PathEscape(_)), "{err}");
    assert_one_line(&err);
    assert!(outside_is_empty(&s));
}

#[test]
fn hostile_absolute_name() {
    let s = sandbox();
    let mut b = tar::Builder::new(Vec::new());
    let target = format!("{}/pwned", s.outside.display());
    add_raw_file(&mut b, &target, b"x");
    let err = apply(&s.layer, &b.into_inner().unwrap(), WhiteoutFormat::Aufs).unwrap_err();
    assert!(matches!(err, ArchiveError::PathEscape(_)), "{err}");
    assert_one_line(&err);
    assert!(outside_is_empty(&s));
}

#[test]
fn hostile_symlink_then_write_through() {
    let s = sandbox();
    // An absolute symlink to the outside dir, then a file beneath it: resolved in the
    // layer's root, the write cannot reach the real outside dir.
    let mut b = tar::Builder::new(Vec::new());
    add_link(
        &mut b,
        tar::EntryType::Symlink,
        "evil",
        &s.outside.display().to_string(),
    );
    add_raw_file(&mut b, "evil/pwned", b"x");
    let result = apply(&s.layer, &b.into_inner().unwrap(), WhiteoutFormat::Aufs);
    if let Err(err) = &result {
        assert_one_line(err);
    }
    assert!(outside_is_empty(&s));
    // A relative symlink climbing out is refused outright, as Go does.
    let s = sandbox();
    let mut b = tar::Builder::new(Vec::new());
    add_link(&mut b, tar::EntryType::Symlink, "up", "../outside");
    add_raw_file(&mut b, "up/pwned", b"x");
    let err = apply(&s.layer, &b.into_inner().unwrap(), WhiteoutFormat::Aufs).unwrap_err();
    assert!(matches!(err, ArchiveError::PathEscape(_)), "{err}");
    assert!(outside_is_empty(&s));
}

#[test]
fn hostile_symlink_dir_created_beforehand() {
    // A symlink already in the tree (e.g. from a parent layer) pointing outside.
    let s = sandbox();
    std::os::unix::fs::symlink(&s.outside, s.layer.join("evil")).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    add_raw_file(&mut b, "evil/pwned", b"x");
    add_raw_file(&mut b, "evil/sub/pwned", b"x");
    let result = apply(&s.layer, &b.into_inner().unwrap(), WhiteoutFormat::Aufs);
    if let Err(err) = &result {
        assert_one_line(err);
    }
    assert!(std::fs::read_dir(&s.outside).unwrap().next().is_none());
}

#[test]
fn hostile_hardlink_out() {
    let s = sandbox();
    std::fs::write(s.outside.join("secret"), b"s").unwrap();
    let mut b = tar::Builder::new(Vec::new());
    add_link(&mut b, tar::EntryType::Link, "passwd", "../../etc/passwd");
    let err = apply(&s.layer, &b.into_inner().unwrap(), WhiteoutFormat::Aufs).unwrap_err();
    assert!(matches!(err, ArchiveError::PathEscape(_)), "{err}");
    assert_one_line(&err);
    assert!(!s.layer.join("passwd").exists());
    // Through a symlink to the outside: resolved in the root, so it finds nothing.
    let s = sandbox();
    std::fs::write(s.outside.join("secret"), b"s").unwrap();
    std::os::unix::fs::symlink(&s.outside, s.layer.join("out")).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    add_link(&mut b, tar::EntryType::Link, "stolen", "out/secret");
    let err = apply(&s.layer, &b.into_inner().unwrap(), WhiteoutFormat::Aufs).unwrap_err();
    assert_one_line(&err);
    assert!(!s.layer.join("stolen").exists());
}

#[test]
fn device_nodes_are_made_as_archived() {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    // Real root filesystems carry /dev/null and friends; upstream makes them as root.
    for (kind, major, minor) in [(tar::EntryType::Char, 1, 3), (tar::EntryType::Block, 7, 0)] {
        let s = sandbox();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = header(kind, 0, 0o640);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        h.set_uid(5);
        h.set_gid(6);
        b.append_data(&mut h, "dev", io::empty()).unwrap();
        apply(&s.layer, &b.into_inner().unwrap(), WhiteoutFormat::Overlay).unwrap();
        let meta = std::fs::symlink_metadata(s.layer.join("dev")).unwrap();
        let is_kind = if kind == tar::EntryType::Char {
            meta.file_type().is_char_device()
        } else {
            meta.file_type().is_block_device()
        };
        assert!(is_kind, "{kind:?}");
        assert_eq!(meta.rdev(), rustix::fs::makedev(major, minor));
        assert_eq!(
            (meta.mode() & 0o7777, meta.uid(), meta.gid()),
            (0o640, 5, 6)
        );
    }
}

#[test]
fn hostile_overlay_xattr() {
    for name in ["trusted.overlay.opaque", "user.overlay.opaque"] {
        let s = sandbox();
        let mut b = tar::Builder::new(Vec::new());
        let key = format!("SCHILY.xattr.{name}");
        b.append_pax_extensions([(key.as_str(), &b"y"[..])])
            .unwrap();
        add_dir(&mut b, "d/");
        let err = apply(&s.layer, &b.into_inner().unwrap(), WhiteoutFormat::Overlay).unwrap_err();
        assert!(matches!(err, ArchiveError::Refused { .. }), "{err}");
        assert_one_line(&err);
        assert!(!s.layer.join("d").exists());
    }
}

#[test]
fn hostile_truncated_and_junk() {
    let s = sandbox();
    let mut b = tar::Builder::new(Vec::new());
    add_file(&mut b, "big", &[7u8; 5000]);
    let data = b.into_inner().unwrap();
    let err = apply(&s.layer, &data[..512 + 3000], WhiteoutFormat::Aufs).unwrap_err();
    assert!(matches!(err, ArchiveError::UnexpectedEof), "{err}");
    assert_one_line(&err);

    let s = sandbox();
    let err = apply(&s.layer, &[0x5a; 4096], WhiteoutFormat::Aufs).unwrap_err();
    assert!(matches!(err, ArchiveError::InvalidHeader(_)), "{err}");
    assert_one_line(&err);
    assert!(std::fs::read_dir(&s.layer).unwrap().next().is_none());
}

/// A tar exercising most entry kinds.
fn rich_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    add_dir(&mut b, "etc/");
    add_file(&mut b, "etc/hosts", b"127.0.0.1 localhost\n");
    b.append_pax_extensions([("SCHILY.xattr.user.note", &b"hi"[..])])
        .unwrap();
    add_file(&mut b, "etc/with-xattr", b"x");
    add_link(&mut b, tar::EntryType::Symlink, "etc/link", "hosts");
    add_link(&mut b, tar::EntryType::Link, "etc/hard", "etc/hosts");
    let mut h = header(tar::EntryType::Fifo, 0, 0o600);
    b.append_data(&mut h, "fifo", io::empty()).unwrap();
    add_file(&mut b, "nested/deep/file", b"auto parents");
    b.into_inner().unwrap()
}

/// (path, kind, link name, xattrs) of an entry read back.
type Listed = (String, EntryKind, Vec<u8>, Vec<(String, Vec<u8>)>);

fn entries(tar: &[u8]) -> Vec<Listed> {
    let mut r = TarStreamReader::new(tar);
    let mut out = Vec::new();
    while let Some(e) = r.next_entry().unwrap() {
        out.push((
            String::from_utf8(e.path).unwrap(),
            e.kind,
            e.link_name,
            e.xattrs,
        ));
    }
    out
}

#[test]
fn apply_then_tree_tar_round_trip() {
    let s = sandbox();
    let data = rich_tar();
    let size = apply(&s.layer, &data, WhiteoutFormat::Aufs).unwrap();
    assert_eq!(size, 20 + 1 + 12);
    let hosts = s.layer.join("etc/hosts");
    assert_eq!(std::fs::read(&hosts).unwrap(), b"127.0.0.1 localhost\n");
    let meta = std::fs::metadata(&hosts).unwrap();
    assert_eq!(meta.mtime(), 1_600_000_000);
    assert_eq!(meta.nlink(), 2);
    assert_eq!(
        std::fs::metadata(s.layer.join("etc")).unwrap().mtime(),
        1_600_000_000,
        "dir mtime restored after its children"
    );
    assert!(std::fs::symlink_metadata(s.layer.join("fifo"))
        .unwrap()
        .file_type()
        .is_fifo());

    let mut out = Vec::new();
    write_tar(&s.layer, &mut out, &DiffOptions::default()).unwrap();
    let got = entries(&out);
    let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "etc/",
            "etc/hard",
            "etc/hosts",
            "etc/link",
            "etc/with-xattr",
            "fifo",
            "nested/",
            "nested/deep/",
            "nested/deep/file"
        ]
    );
    // The first name of the inode carries the data, the second is a hard link to it.
    assert_eq!(got[1].1, EntryKind::Regular);
    assert_eq!(
        (got[2].1, got[2].2.as_slice()),
        (EntryKind::Link, &b"etc/hard"[..])
    );
    assert_eq!(
        (got[3].1, got[3].2.as_slice()),
        (EntryKind::Symlink, &b"hosts"[..])
    );
    assert_eq!(got[4].3, vec![("user.note".to_string(), b"hi".to_vec())]);

    // And the tar applies again to an identical tree.
    let again = sandbox();
    apply(&again.layer, &out, WhiteoutFormat::Aufs).unwrap();
    let mut out2 = Vec::new();
    write_tar(&again.layer, &mut out2, &DiffOptions::default()).unwrap();
    assert_eq!(out, out2);
}

#[test]
fn aufs_whiteouts_and_naive_diff() {
    let lower = sandbox();
    let mut b = tar::Builder::new(Vec::new());
    add_file(&mut b, "keep", b"k");
    add_file(&mut b, "del", b"d");
    add_file(&mut b, "odir/old", b"o");
    apply(&lower.layer, &b.into_inner().unwrap(), WhiteoutFormat::Aufs).unwrap();

    // The child layer starts as a copy of the parent (as vfs does).
    let upper = sandbox();
    let mut copy = Vec::new();
    write_tar(&lower.layer, &mut copy, &DiffOptions::default()).unwrap();
    apply(&upper.layer, &copy, WhiteoutFormat::Aufs).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    add_file(&mut b, ".wh.del", b"");
    add_dir(&mut b, "odir/");
    add_file(&mut b, "odir/new", b"n");
    add_file(&mut b, "odir/.wh..wh..opq", b"");
    add_file(&mut b, ".wh..wh.plnk", b"");
    apply(&upper.layer, &b.into_inner().unwrap(), WhiteoutFormat::Aufs).unwrap();
    assert!(!upper.layer.join("del").exists());
    assert!(!upper.layer.join("odir/old").exists());
    assert!(upper.layer.join("odir/new").exists());
    assert!(upper.layer.join("keep").exists());
    assert!(!upper.layer.join(".wh..wh.plnk").exists());

    let none = IdMappings::default();
    let lower_tree = ParentTree {
        path: &lower.layer,
        mappings: &none,
    };
    let changes = changes_naive(&upper.layer, &none, Some(lower_tree)).unwrap();
    let mut listed: Vec<(String, ChangeKind)> = changes
        .into_iter()
        .map(|c| (String::from_utf8(c.path).unwrap(), c.kind))
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        vec![
            ("/del".to_string(), ChangeKind::Delete),
            ("/odir".to_string(), ChangeKind::Modify),
            ("/odir/new".to_string(), ChangeKind::Add),
            ("/odir/old".to_string(), ChangeKind::Delete),
        ]
    );
    let size = diff_size_naive(&upper.layer, &none, Some(lower_tree)).unwrap();
    assert_eq!(size, 1);

    let mut out = Vec::new();
    write_naive_diff(
        &upper.layer,
        Some(lower_tree),
        &mut out,
        &DiffOptions::default(),
    )
    .unwrap();
    let names: Vec<String> = entries(&out).into_iter().map(|e| e.0).collect();
    // Sorted by changed path (Go's changesByPath), so `old`'s whiteout follows `new`.
    assert_eq!(names, vec![".wh.del", "odir/", "odir/new", "odir/.wh.old"]);

    // Applying the diff on a copy of the parent gives the child's tree.
    let replay = sandbox();
    apply(&replay.layer, &copy, WhiteoutFormat::Aufs).unwrap();
    apply(&replay.layer, &out, WhiteoutFormat::Aufs).unwrap();
    let upper_tree = ParentTree {
        path: &upper.layer,
        mappings: &none,
    };
    let replayed = changes_naive(&replay.layer, &none, Some(upper_tree)).unwrap();
    assert_eq!(replayed, vec![]);
}

#[test]
fn overlay_whiteouts_round_trip() {
    let lower = sandbox();
    let mut b = tar::Builder::new(Vec::new());
    add_file(&mut b, "del", b"d");
    add_file(&mut b, "odir/old", b"o");
    add_dir(&mut b, "plain/");
    apply(&lower.layer, &b.into_inner().unwrap(), WhiteoutFormat::Aufs).unwrap();

    let upper = sandbox();
    let mut b = tar::Builder::new(Vec::new());
    add_file(&mut b, ".wh.del", b"");
    add_dir(&mut b, "odir/");
    add_file(&mut b, "odir/.wh..wh..opq", b"");
    add_file(&mut b, "odir/n", b"new");
    add_dir(&mut b, "fresh/");
    add_file(&mut b, "fresh/.wh..wh..opq", b"");
    apply(
        &upper.layer,
        &b.into_inner().unwrap(),
        WhiteoutFormat::Overlay,
    )
    .unwrap();

    let wh = std::fs::symlink_metadata(upper.layer.join("del")).unwrap();
    assert!(wh.file_type().is_char_device());
    assert_eq!(wh.rdev(), 0);
    let mut fs: ReadDir<'_> = ConfinedDir::open(&upper.layer).unwrap();
    assert_eq!(
        fs.get_xattr(b"odir", "trusted.overlay.opaque").unwrap(),
        Some(b"y".to_vec())
    );
    assert!(!upper.layer.join("odir/.wh..wh..opq").exists());

    let lowers = vec![lower.layer.clone()];
    let overlay = OverlayOptions::default();
    let changes = changes_overlay(&upper.layer, &lowers, &overlay).unwrap();
    let listed: Vec<(String, ChangeKind)> = changes
        .into_iter()
        .map(|c| (String::from_utf8(c.path).unwrap(), c.kind))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("/del".to_string(), ChangeKind::Delete),
            ("/fresh".to_string(), ChangeKind::Add),
            ("/odir".to_string(), ChangeKind::Delete),
            ("/odir/n".to_string(), ChangeKind::Add),
        ]
    );

    let mut out = Vec::new();
    write_overlay_diff(
        &upper.layer,
        &lowers,
        &mut out,
        &DiffOptions::default(),
        &overlay,
    )
    .unwrap();
    let got = entries(&out);
    let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
    // `fresh` is opaque but no lower has it: no marker.
    assert_eq!(
        names,
        vec![".wh.del", "fresh/", "odir/", "odir/.wh..wh..opq", "odir/n"]
    );
    assert!(got.iter().all(|e| e.3.is_empty()), "no overlay xattr leaks");
    assert_eq!(tree_size(&upper.layer).unwrap(), 3);

    // Applying that diff in the AUFS format onto the lower gives the merged view.
    let merged = sandbox();
    let mut copy = Vec::new();
    write_tar(&lower.layer, &mut copy, &DiffOptions::default()).unwrap();
    apply(&merged.layer, &copy, WhiteoutFormat::Aufs).unwrap();
    apply(&merged.layer, &out, WhiteoutFormat::Aufs).unwrap();
    assert!(!merged.layer.join("del").exists());
    assert!(!merged.layer.join("odir/old").exists());
    assert_eq!(std::fs::read(merged.layer.join("odir/n")).unwrap(), b"new");
    assert!(merged.layer.join("plain").is_dir());
}

/// Unmounts on drop, so a failing assertion never leaves a mount behind.
struct MountGuard(PathBuf);

impl Drop for MountGuard {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// The kernel reads what the overlay format wrote: the whiteout hides a lower file and the
/// opaque dir hides the lower dir's content.
#[test]
fn overlay_format_is_understood_by_the_kernel() {
    let lower = sandbox();
    let mut b = tar::Builder::new(Vec::new());
    add_file(&mut b, "del", b"d");
    add_file(&mut b, "keep", b"k");
    add_file(&mut b, "odir/old", b"o");
    apply(&lower.layer, &b.into_inner().unwrap(), WhiteoutFormat::Aufs).unwrap();
    let upper = sandbox();
    let mut b = tar::Builder::new(Vec::new());
    add_file(&mut b, ".wh.del", b"");
    add_dir(&mut b, "odir/");
    add_file(&mut b, "odir/.wh..wh..opq", b"");
    add_file(&mut b, "odir/new", b"n");
    apply(
        &upper.layer,
        &b.into_inner().unwrap(),
        WhiteoutFormat::Overlay,
    )
    .unwrap();

    let merged = upper.outside.clone();
    let options = format!(
        "lowerdir={}:{}",
        upper.layer.display(),
        lower.layer.display()
    );
    let mounted = nix::mount::mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        nix::mount::MsFlags::MS_RDONLY,
        Some(options.as_str()),
    );
    if let Err(e) = mounted {
        // No overlay support here (not root, or in a container without it).
        eprintln!("overlay mount unavailable, kernel check skipped: {e}");
        return;
    }
    let _guard = MountGuard(merged.clone());
    let mut names: Vec<String> = std::fs::read_dir(&merged)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec!["keep", "odir"]);
    let odir: Vec<String> = std::fs::read_dir(merged.join("odir"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(odir, vec!["new"]);
}

#[test]
fn id_mapping_applies_to_owners() {
    let s = sandbox();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = header(tar::EntryType::Regular, 1, 0o640);
    h.set_uid(5);
    h.set_gid(6);
    b.append_data(&mut h, "f", &b"x"[..]).unwrap();
    let data = b.into_inner().unwrap();
    let mappings = IdMappings {
        uids: vec![crate::idmap::IdMap {
            container_id: 0,
            host_id: 100_000,
            size: 65536,
        }],
        gids: vec![crate::idmap::IdMap {
            container_id: 0,
            host_id: 200_000,
            size: 65536,
        }],
    };
    let opts = ApplyOptions {
        id_mapping: id_mapping(&mappings),
        ..Default::default()
    };
    apply_tar(&s.layer, &mut &data[..], &opts).unwrap();
    let meta = std::fs::symlink_metadata(s.layer.join("f")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (100_005, 200_006));
    assert_eq!(meta.mode() & 0o7777, 0o640);

    let mut out = Vec::new();
    let diff_opts = DiffOptions {
        id_mapping: id_mapping(&mappings),
        ..Default::default()
    };
    write_tar(&s.layer, &mut out, &diff_opts).unwrap();
    let mut r = TarStreamReader::new(&out[..]);
    let e = r.next_entry().unwrap().unwrap();
    assert_eq!((e.uid, e.gid), (5, 6));

    // An owner outside the mapping is refused.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = header(tar::EntryType::Regular, 0, 0o640);
    h.set_uid(70_000);
    b.append_data(&mut h, "g", io::empty()).unwrap();
    let data = b.into_inner().unwrap();
    let err = apply_tar(&s.layer, &mut &data[..], &opts).unwrap_err();
    assert!(matches!(err, ArchiveError::Refused { .. }), "{err}");
}

#[test]
fn unclean_paths_from_a_guest_are_refused() {
    let s = sandbox();
    std::fs::write(s.outside.join("secret"), b"s").unwrap();
    let mut fs: ReadDir<'_> = ConfinedDir::open(&s.layer).unwrap();
    for path in [
        &b".."[..],
        b"a/..",
        b"../outside/secret",
        b"x/",
        b"a/.",
        b"a\0b",
    ] {
        let err = fs.set_xattr(path, "user.x", b"1").unwrap_err();
        assert!(
            matches!(err.kind, FsErrorKind::PathEscape | FsErrorKind::NotFound),
            "{path:?}: {err:?}"
        );
        assert!(fs.remove(path).is_err(), "{path:?}");
    }
    // `..` inside the parent part is clamped at the root, never above it.
    assert!(fs.lstat(b"../../outside/secret").unwrap().is_none());
    assert!(s.outside.join("secret").exists());
    let mut out = Vec::new();
    let mut w: &mut dyn Write = &mut out;
    assert!(fs
        .copy_file_to_output(b"../outside/secret", 1, &mut w)
        .is_err());
}

#[test]
fn duplicates_replace_files_and_merge_dirs() {
    let s = sandbox();
    let mut b = tar::Builder::new(Vec::new());
    add_file(&mut b, "x", b"first");
    add_file(&mut b, "x", b"second");
    add_dir(&mut b, "d/");
    add_file(&mut b, "d/child", b"c");
    let mut h = header(tar::EntryType::Directory, 0, 0o700);
    b.append_data(&mut h, "d/", io::empty()).unwrap();
    apply(&s.layer, &b.into_inner().unwrap(), WhiteoutFormat::Aufs).unwrap();
    assert_eq!(std::fs::read(s.layer.join("x")).unwrap(), b"second");
    assert!(s.layer.join("d/child").exists());
    let mode = std::fs::metadata(s.layer.join("d")).unwrap().mode();
    assert_eq!(mode & 0o7777, 0o700);
}
