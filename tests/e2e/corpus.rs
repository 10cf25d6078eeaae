//! Conformance corpus (issue #9): archives made here by the real tools (GNU tar in every
//! format and sparse flavour, bsdtar, busybox, Python's tarfile, Go's archive/tar through
//! podman and skopeo, a debootstrap-style root filesystem), each imported with
//! `import-layer` into a scratch store of ours and one of the reference binary (upstream
//! 1.60) on this suite's driver, then compared: the layer trees entry by entry (type,
//! mode, owner, size, content, mtime with nanoseconds, symlink target, xattrs, device
//! numbers, hard-link groups), the layer records (digests, sizes, uidset/gidset), and
//! `diff -u`, which must give back the input archive byte for byte.
//!
//! Where we do better than upstream on purpose the test asserts our answer and says so:
//! sparse entries keep their holes on disk with us (upstream writes them dense, and its
//! `diff -u` of them is not the input), and old GNU sparse archives (typeflag `S`), which
//! upstream 1.60 refuses (`unhandled tar header type 83`), import
//! with us; their tree is then compared with GNU tar's own extraction.
//!
//! Differences a test tolerates, because upstream itself is not deterministic there: the
//! mtime of the layer's root (upstream skips the archive's `.` entry, so the root keeps the
//! time the driver made it) and of directories the archive has no entry for (made at import
//! time); `trusted.overlay.*` and `user.overlay.*` xattrs (driver state); sizes of
//! directories; access and change times; inode numbers.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::harness::{id, layer_dir, Scratch};

#[path = "corpus_fixtures.rs"]
mod fixtures;

use fixtures::{Entry, Features, Skip};

// ---------------------------------------------------------------------------------------
// The reference binary
// ---------------------------------------------------------------------------------------

/// The reference binary: `$STORAGE_REFERENCE`, else /work/shared/reference/containers-storage,
/// else `<repo>/../shared/reference/containers-storage`, else Debian's
/// /usr/bin/containers-storage (1.43, older).
fn reference() -> Result<PathBuf, Skip> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let candidates: Vec<PathBuf> = std::env::var_os("STORAGE_REFERENCE")
        .map(PathBuf::from)
        .into_iter()
        .chain([
            PathBuf::from("/work/shared/reference/containers-storage"),
            repo.join("../shared/reference/containers-storage"),
            PathBuf::from("/usr/bin/containers-storage"),
        ])
        .collect();
    let found = candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| {
        Skip("no reference binary ($STORAGE_REFERENCE, /work/shared/reference/containers-storage, \
              /usr/bin/containers-storage from Debian package containers-storage)"
            .into())
    })?;
    eprintln!("reference binary: {}", found.display());
    Ok(found)
}

/// Runs `f` unless a tool it needs is missing, in which case the test says so and passes.
fn unless_missing(test: &str, f: impl FnOnce() -> Result<(), Skip>) {
    if let Err(Skip(why)) = f() {
        eprintln!("{test}: skipped: {why}");
    }
}

// ---------------------------------------------------------------------------------------
// Snapshots of a layer's tree
// ---------------------------------------------------------------------------------------

/// One path of a layer as the filesystem has it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    kind: char,
    /// Permission bits with set-ID and sticky bits.
    mode: u32,
    uid: u32,
    gid: u32,
    /// Regular files: size and SHA-256 of the content.
    size: Option<u64>,
    content: Option<String>,
    /// (seconds, nanoseconds); `None` where upstream's own value is not reproducible.
    mtime: Option<(i64, i64)>,
    target: Option<Vec<u8>>,
    xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    rdev: Option<(u32, u32)>,
    /// Every path of the layer sharing this inode, when there is more than one.
    links: Vec<Vec<u8>>,
    /// Bytes allocated on disk (`st_blocks * 512`): not compared, used for holes.
    allocated: u64,
}

/// Every path below `root` (and `root` itself as the empty path).
fn snapshot(root: &Path) -> BTreeMap<Vec<u8>, Node> {
    let mut nodes = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), Vec<Vec<u8>>> = BTreeMap::new();
    walk(root, Vec::new(), &mut nodes, &mut inodes);
    for names in inodes.values().filter(|n| n.len() > 1) {
        for name in names {
            nodes.get_mut(name).unwrap().links = names.clone();
        }
    }
    nodes
}

fn walk(
    path: &Path,
    rel: Vec<u8>,
    nodes: &mut BTreeMap<Vec<u8>, Node>,
    inodes: &mut BTreeMap<(u64, u64), Vec<Vec<u8>>>,
) {
    let meta =
        std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()));
    let ft = meta.file_type();
    let kind = if ft.is_dir() {
        'd'
    } else if ft.is_file() {
        'f'
    } else if ft.is_symlink() {
        'l'
    } else if ft.is_char_device() {
        'c'
    } else if ft.is_block_device() {
        'b'
    } else if ft.is_fifo() {
        'p'
    } else {
        's'
    };
    let (size, content) = if kind == 'f' {
        let data = std::fs::read(path).unwrap();
        (Some(meta.len()), Some(hex(&Sha256::digest(&data))))
    } else {
        (None, None)
    };
    let target = (kind == 'l').then(|| {
        std::fs::read_link(path)
            .unwrap()
            .as_os_str()
            .as_bytes()
            .to_vec()
    });
    let rdev = matches!(kind, 'c' | 'b').then(|| {
        let d = meta.rdev();
        (rustix::fs::major(d), rustix::fs::minor(d))
    });
    if kind != 'd' && meta.nlink() > 1 {
        inodes
            .entry((meta.dev(), meta.ino()))
            .or_default()
            .push(rel.clone());
    }
    nodes.insert(
        rel.clone(),
        Node {
            kind,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            size,
            content,
            mtime: Some((meta.mtime(), meta.mtime_nsec())),
            target,
            xattrs: xattrs(path),
            rdev,
            links: Vec::new(),
            allocated: meta.blocks() * 512,
        },
    );
    if kind == 'd' {
        let mut children: Vec<_> = std::fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        children.sort();
        for child in children {
            let mut r = rel.clone();
            if !r.is_empty() {
                r.push(b'/');
            }
            r.extend_from_slice(child.as_bytes());
            walk(&path.join(&child), r, nodes, inodes);
        }
    }
}

/// All xattrs of `path` (not following a symlink) but the overlay driver's own state.
fn xattrs(path: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut out = BTreeMap::new();
    // The `_query` calls ask for sizes (rustix reads an empty buffer as empty).
    let len = rustix::fs::llistxattr_query(path).unwrap_or(0);
    if len == 0 {
        return out;
    }
    let mut list = vec![0u8; len];
    let len = rustix::fs::llistxattr(path, &mut list[..]).unwrap();
    for name in list[..len].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        if name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.") {
            continue;
        }
        let cname = std::ffi::OsStr::from_bytes(name);
        let size = rustix::fs::lgetxattr_query(path, cname).unwrap();
        let mut value = vec![0u8; size];
        let size = rustix::fs::lgetxattr(path, cname, &mut value[..]).unwrap();
        value.truncate(size);
        out.insert(name.to_vec(), value);
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

/// A path for a message: printable ASCII as is, other bytes escaped.
fn show(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        "<layer root>".into()
    } else {
        bytes.escape_ascii().to_string()
    }
}

/// A value for a message, quoted, other bytes than printable ASCII escaped.
fn value(bytes: &[u8]) -> String {
    format!("\"{}\"", bytes.escape_ascii())
}

/// Forgets the mtimes upstream does not take from the archive: the layer root's and those
/// of directories the archive has no entry for.
fn forget_unreproducible_times(nodes: &mut BTreeMap<Vec<u8>, Node>, entries: &[Entry]) {
    let named: BTreeSet<&[u8]> = entries.iter().map(|e| e.name.as_slice()).collect();
    for (path, node) in nodes.iter_mut() {
        if path.is_empty() || (node.kind == 'd' && !named.contains(path.as_slice())) {
            node.mtime = None;
        }
    }
}

/// A deliberate difference (README, "Where we differ"): upstream's `Chtimes` sets an mtime
/// before 1970 or after 2262-04-11 (past Go's nanosecond range) to the epoch; we keep the
/// archive's, as tar does. Where upstream has the epoch and ours is such a time, ours is
/// taken as right, and the difference is reported on stderr.
fn accept_kept_times(
    ours: &BTreeMap<Vec<u8>, Node>,
    theirs: &mut BTreeMap<Vec<u8>, Node>,
    name: &str,
) {
    const GO_MAX_SECS: i64 = i64::MAX / 1_000_000_000;
    for (path, t) in theirs.iter_mut() {
        let Some(kept) = ours.get(path).and_then(|o| o.mtime) else {
            continue;
        };
        if t.mtime == Some((0, 0)) && (kept.0 < 0 || kept.0 > GO_MAX_SECS) {
            eprintln!(
                "{name}: {}: mtime {kept:?} kept; upstream set it to the epoch",
                show(path)
            );
            t.mtime = Some(kept);
        }
    }
}

/// The differences between two snapshots, one line each.
fn compare_trees(
    ours: &BTreeMap<Vec<u8>, Node>,
    theirs: &BTreeMap<Vec<u8>, Node>,
    them: &str,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (path, t) in theirs {
        let Some(o) = ours.get(path) else {
            problems.push(format!(
                "{}: missing in ours ({them} has a {})",
                show(path),
                t.kind
            ));
            continue;
        };
        let mut field = |name: &str, a: String, b: String| {
            if a != b {
                problems.push(format!("{}: {name}: ours {a}, {them} {b}", show(path)));
            }
        };
        field("type", o.kind.to_string(), t.kind.to_string());
        field("mode", format!("{:04o}", o.mode), format!("{:04o}", t.mode));
        field(
            "owner",
            format!("{}:{}", o.uid, o.gid),
            format!("{}:{}", t.uid, t.gid),
        );
        field("size", format!("{:?}", o.size), format!("{:?}", t.size));
        field(
            "content",
            format!("{:?}", o.content),
            format!("{:?}", t.content),
        );
        if o.mtime.is_some() && t.mtime.is_some() {
            field("mtime", format!("{:?}", o.mtime), format!("{:?}", t.mtime));
        }
        field(
            "symlink target",
            o.target.as_deref().map(value).unwrap_or_default(),
            t.target.as_deref().map(value).unwrap_or_default(),
        );
        let xa = |x: &BTreeMap<Vec<u8>, Vec<u8>>| {
            x.iter()
                .map(|(k, v)| format!("{}={}", k.escape_ascii(), value(v)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        field("xattrs", xa(&o.xattrs), xa(&t.xattrs));
        field("rdev", format!("{:?}", o.rdev), format!("{:?}", t.rdev));
        let ls = |l: &[Vec<u8>]| l.iter().map(|p| show(p)).collect::<Vec<_>>().join(" = ");
        field("hard links", ls(&o.links), ls(&t.links));
    }
    for (path, o) in ours {
        if !theirs.contains_key(path) {
            problems.push(format!("{}: only in ours (a {})", show(path), o.kind));
        }
    }
    problems
}

// ---------------------------------------------------------------------------------------
// Importing and comparing
// ---------------------------------------------------------------------------------------

/// The layer ID both stores use.
fn layer_id() -> String {
    id("corpus")
}

/// The record fields that come from the archive.
const RECORD_FIELDS: &[&str] = &[
    "compressed-diff-digest",
    "compressed-size",
    "diff-digest",
    "diff-size",
    "compression",
    "uidset",
    "gidset",
];

fn record(s: &Scratch) -> serde_json::Value {
    let out = s.run(&["layer", "-j", &layer_id()]);
    assert_eq!(out.code, 0, "layer -j: {out:?}");
    out.json()[0].clone()
}

/// The sorted distinct owners of the archive's entries (whiteouts excluded), as upstream
/// records them in `uidset`/`gidset`.
fn idsets(entries: &[Entry]) -> (serde_json::Value, serde_json::Value) {
    let whiteout = |e: &&Entry| {
        e.name
            .rsplit(|&b| b == b'/')
            .next()
            .is_some_and(|base| base.starts_with(b".wh."))
    };
    let uids: BTreeSet<u64> = entries
        .iter()
        .filter(|e| !whiteout(e))
        .map(|e| e.uid)
        .collect();
    let gids: BTreeSet<u64> = entries
        .iter()
        .filter(|e| !whiteout(e))
        .map(|e| e.gid)
        .collect();
    (serde_json::json!(uids), serde_json::json!(gids))
}

/// Where two byte strings first differ, for a message.
fn first_difference(a: &[u8], b: &[u8]) -> String {
    let at = a
        .iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    format!(
        "{} bytes against {}, first difference at byte {at} (header block {})",
        a.len(),
        b.len(),
        at / 512
    )
}

/// Imports `tar` into a fresh store of `binary`; the error line when it fails.
fn import(s: &Scratch, tar: &[u8]) -> Result<(), String> {
    let out = s.run_with_input(&["import-layer", "--id", &layer_id()], tar);
    if out.code == 0 {
        Ok(())
    } else {
        Err(format!("exit {}: {}", out.code, out.stderr.trim_end()))
    }
}

/// An archive of the corpus and what to expect of it.
struct Case<'a> {
    /// Names the archive in messages.
    name: &'a str,
    tar: Vec<u8>,
    /// Upstream 1.60 refuses it: compare our tree with GNU tar's extraction instead.
    upstream_refuses: bool,
    /// Import its gzip form (so the record's compressed digest, size and compression
    /// differ from the uncompressed ones).
    gzip: bool,
}

/// Imports the case into ours and the reference binary's store on this suite's driver and
/// asserts that they agree (module docs), listing every difference found.
fn conform(case: Case) -> Result<(), Skip> {
    let reference = reference()?;
    let entries = fixtures::scan(&case.tar);
    let name = format!("{} on {}", case.name, crate::DRIVER);
    let ours = Scratch::new();
    let theirs = Scratch::with_binary(&reference, crate::DRIVER);
    let input = if case.gzip {
        crate::harness::gzip(&case.tar)
    } else {
        case.tar.clone()
    };
    let upstream = import(&theirs, &input);
    let imported = import(&ours, &input);
    match (&upstream, case.upstream_refuses) {
        (Err(e), false) => panic!("{name}: the reference binary refused the archive: {e}"),
        (Err(e), true) => eprintln!(
            "{name}: upstream refuses this archive, as expected ({e}); ours must import it"
        ),
        (Ok(()), true) => eprintln!("{name}: upstream now imports this archive"),
        (Ok(()), false) => {}
    }
    if let Err(e) = imported {
        panic!("{name}: our import-layer failed: {e}");
    }

    let mut problems = Vec::new();
    let ours_dir = layer_dir(&ours.graph(), crate::DRIVER, &layer_id());
    let mut our_nodes = snapshot(&ours_dir);
    forget_unreproducible_times(&mut our_nodes, &entries);

    // The record.
    let our_record = record(&ours);
    let expect = |field: &str, want: serde_json::Value, problems: &mut Vec<String>| {
        if our_record[field] != want {
            problems.push(format!(
                "record {field}: ours {}, the archive's {want}",
                our_record[field]
            ));
        }
    };
    expect("diff-digest", sha256(&case.tar).into(), &mut problems);
    expect("diff-size", case.tar.len().into(), &mut problems);
    expect(
        "compressed-diff-digest",
        sha256(&input).into(),
        &mut problems,
    );
    expect("compressed-size", input.len().into(), &mut problems);

    if upstream.is_ok() {
        let their_record = record(&theirs);
        for field in RECORD_FIELDS {
            if our_record[field] != their_record[field] {
                problems.push(format!(
                    "record {field}: ours {}, upstream {}",
                    our_record[field], their_record[field]
                ));
            }
        }
        let theirs_dir = layer_dir(&theirs.graph(), crate::DRIVER, &layer_id());
        let mut their_nodes = snapshot(&theirs_dir);
        forget_unreproducible_times(&mut their_nodes, &entries);
        accept_kept_times(&our_nodes, &mut their_nodes, &name);
        problems.extend(compare_trees(&our_nodes, &their_nodes, "upstream"));
        for e in entries.iter().filter(|e| e.sparse.is_some()) {
            if let Some(n) = their_nodes.get(&e.name) {
                eprintln!(
                    "{name}: upstream wrote sparse {} with {} of {} bytes allocated",
                    show(&e.name),
                    n.allocated,
                    e.size
                );
            }
        }
    } else {
        let (uidset, gidset) = idsets(&entries);
        expect("uidset", uidset, &mut problems);
        expect("gidset", gidset, &mut problems);
        let extracted = tempfile::tempdir().unwrap();
        fixtures::extract_with_gnu_tar(&case.tar, extracted.path());
        let mut tar_nodes = snapshot(extracted.path());
        forget_unreproducible_times(&mut tar_nodes, &entries);
        // GNU tar applies the archive's `.` entry to the root, upstream does not: the root
        // is left out of this comparison.
        tar_nodes.remove(&Vec::new());
        let mut ours_without_root = our_nodes.clone();
        ours_without_root.remove(&Vec::new());
        problems.extend(compare_trees(&ours_without_root, &tar_nodes, "GNU tar -x"));
    }

    // Holes: ours keeps them (upstream writes sparse entries dense).
    for e in entries.iter().filter(|e| e.sparse.is_some()) {
        match our_nodes.get(&e.name) {
            Some(n) if n.allocated >= e.size && e.size > 0 => problems.push(format!(
                "{}: sparse entry ({:?}) written dense by ours: {} of {} bytes allocated",
                show(&e.name),
                e.sparse.unwrap(),
                n.allocated,
                e.size
            )),
            Some(_) => {}
            None => problems.push(format!("{}: sparse entry missing in ours", show(&e.name))),
        }
    }

    // `diff -u` gives the archive back byte for byte.
    let our_diff = ours.run(&["diff", "-u", &layer_id()]);
    if our_diff.code != 0 {
        problems.push(format!("diff -u failed: {}", our_diff.stderr.trim_end()));
    } else if our_diff.stdout != case.tar {
        problems.push(format!(
            "diff -u is not the input archive: {}",
            first_difference(&our_diff.stdout, &case.tar)
        ));
    }
    if upstream.is_ok() {
        let their_diff = theirs.run(&["diff", "-u", &layer_id()]);
        let same = their_diff.code == 0 && their_diff.stdout == case.tar;
        let sparse = entries.iter().any(|e| e.sparse.is_some());
        if !same && !sparse {
            problems.push(format!(
                "upstream's diff -u is not the input archive either (the test's premise): {}",
                first_difference(&their_diff.stdout, &case.tar)
            ));
        } else if !same {
            eprintln!(
                "{name}: upstream's diff -u is not the input archive ({}); ours must be",
                first_difference(&their_diff.stdout, &case.tar)
            );
        }
    }

    assert!(
        problems.is_empty(),
        "{name}: {} difference(s):\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// What the archives must carry (so a tool change cannot quietly drop a feature)
// ---------------------------------------------------------------------------------------

fn has(entries: &[Entry], what: &str, pred: impl Fn(&Entry) -> bool) {
    assert!(
        entries.iter().any(pred),
        "the archive has no {what}: the fixture no longer exercises it"
    );
}

fn has_devices(entries: &[Entry]) {
    has(entries, "character device", |e| e.typeflag == b'3');
    has(entries, "block device", |e| e.typeflag == b'4');
}

fn has_fifo_links(entries: &[Entry]) {
    has(entries, "fifo", |e| e.typeflag == b'6');
    has(entries, "hard link", |e| {
        e.typeflag == b'1' && !e.link.is_empty()
    });
    has(entries, "symlink", |e| e.typeflag == b'2');
}

fn has_latin1(entries: &[Entry]) {
    has(entries, "non-UTF-8 name", |e| {
        std::str::from_utf8(&e.name).is_err()
    });
}

fn has_capability(entries: &[Entry]) {
    has(entries, "security.capability xattr", |e| {
        e.pax("SCHILY.xattr.security.capability") == Some(&fixtures::CAP_NET_RAW_EP[..])
    });
    has(entries, "user.* xattr", |e| {
        e.pax
            .iter()
            .any(|(k, _)| k.starts_with(b"SCHILY.xattr.user."))
    });
}

fn has_sparse(entries: &[Entry], kind: fn(fixtures::Sparse) -> bool, what: &str) {
    has(entries, what, |e| e.sparse.is_some_and(kind));
    for path in fixtures::SPARSE_FILES {
        has(entries, &format!("sparse entry for {path}"), |e| {
            e.name == path.as_bytes() && e.sparse.is_some()
        });
    }
}

/// A source tree with `features` in a new temporary directory.
fn tree(features: Features) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    fixtures::build_tree(&src, features);
    dir
}

fn src(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("src")
}

// ---------------------------------------------------------------------------------------
// The corpus: GNU tar
// ---------------------------------------------------------------------------------------

/// GNU tar of the full tree in `format` (no holes: `--sparse` is off, sparse files are
/// stored dense).
fn gnu_full(format: &str, name: &str) {
    unless_missing(name, || {
        let dir = tree(Features::FULL);
        let tar = fixtures::gnu_tar(&src(&dir), format, &[])?;
        let entries = fixtures::scan(&tar);
        has_devices(&entries);
        has_fifo_links(&entries);
        has_latin1(&entries);
        if format == "posix" {
            has_capability(&entries);
        }
        conform(Case {
            name,
            tar,
            upstream_refuses: false,
            gzip: false,
        })
    });
}

#[test]
fn gnu_tar_gnu() {
    gnu_full("gnu", "GNU tar --format=gnu");
}

#[test]
fn gnu_tar_oldgnu() {
    gnu_full("oldgnu", "GNU tar --format=oldgnu");
}

#[test]
fn gnu_tar_posix() {
    gnu_full("posix", "GNU tar --format=posix --xattrs");
}

#[test]
fn gnu_tar_ustar() {
    gnu_full("ustar", "GNU tar --format=ustar");
}

/// The baseline: what every importer handled before issue #9 (no devices, holes,
/// capabilities or non-UTF-8 names), in the four formats.
fn gnu_plain(format: &str, name: &str) {
    unless_missing(name, || {
        let dir = tree(Features::PLAIN);
        let tar = fixtures::gnu_tar(&src(&dir), format, &[])?;
        has_fifo_links(&fixtures::scan(&tar));
        conform(Case {
            name,
            tar,
            upstream_refuses: false,
            gzip: false,
        })
    });
}

#[test]
fn gnu_tar_gnu_plain() {
    gnu_plain("gnu", "GNU tar --format=gnu, plain tree");
}

#[test]
fn gnu_tar_oldgnu_plain() {
    gnu_plain("oldgnu", "GNU tar --format=oldgnu, plain tree");
}

#[test]
fn gnu_tar_posix_plain() {
    gnu_plain("posix", "GNU tar --format=posix --xattrs, plain tree");
}

#[test]
fn gnu_tar_ustar_plain() {
    gnu_plain("ustar", "GNU tar --format=ustar, plain tree");
}

/// `tar --sparse --format=posix --sparse-version=V`: PAX sparse entries.
fn gnu_pax_sparse(version: &str, kind: fn(fixtures::Sparse) -> bool, name: &str) {
    unless_missing(name, || {
        let dir = tree(Features::FULL);
        let tar = fixtures::gnu_tar(
            &src(&dir),
            "posix",
            &["--sparse", &format!("--sparse-version={version}")],
        )?;
        let entries = fixtures::scan(&tar);
        has_sparse(&entries, kind, &format!("PAX sparse {version} entry"));
        has_capability(&entries);
        has_devices(&entries);
        conform(Case {
            name,
            tar,
            upstream_refuses: false,
            gzip: false,
        })
    });
}

#[test]
fn gnu_tar_sparse_pax_1_0() {
    gnu_pax_sparse(
        "1.0",
        |s| s == fixtures::Sparse::Pax10,
        "GNU tar --sparse --format=posix (GNU.sparse 1.0)",
    );
}

#[test]
fn gnu_tar_sparse_pax_0_1() {
    gnu_pax_sparse(
        "0.1",
        |s| s == fixtures::Sparse::Pax01,
        "GNU tar --sparse --format=posix --sparse-version=0.1",
    );
}

#[test]
fn gnu_tar_sparse_pax_0_0() {
    gnu_pax_sparse(
        "0.0",
        |s| s == fixtures::Sparse::Pax00,
        "GNU tar --sparse --format=posix --sparse-version=0.0",
    );
}

/// `tar --sparse --format=gnu`: old GNU sparse entries (typeflag `S`), one with sparse-map
/// continuation blocks. Upstream 1.60 refuses them; ours must import them, and the tree is
/// compared with GNU tar's extraction.
#[test]
fn gnu_tar_sparse_old_gnu() {
    let name = "GNU tar --sparse --format=gnu (old GNU sparse, typeflag S)";
    unless_missing(name, || {
        let dir = tree(Features::FULL);
        let tar = fixtures::gnu_tar(&src(&dir), "gnu", &["--sparse"])?;
        let entries = fixtures::scan(&tar);
        has_sparse(
            &entries,
            |s| matches!(s, fixtures::Sparse::OldGnu { .. }),
            "old GNU sparse entry",
        );
        has(
            &entries,
            "old GNU sparse entry with continuation blocks",
            |e| matches!(e.sparse, Some(fixtures::Sparse::OldGnu { extension }) if extension > 0),
        );
        conform(Case {
            name,
            tar,
            upstream_refuses: true,
            gzip: false,
        })
    });
}

// ---------------------------------------------------------------------------------------
// bsdtar, busybox
// ---------------------------------------------------------------------------------------

#[test]
fn bsdtar_pax() {
    let name = "bsdtar --format pax";
    unless_missing(name, || {
        let dir = tree(Features::FULL);
        let tar = fixtures::bsdtar(&src(&dir), "pax")?;
        let entries = fixtures::scan(&tar);
        has_sparse(
            &entries,
            |s| s == fixtures::Sparse::Pax10,
            "PAX sparse 1.0 entry",
        );
        has_capability(&entries);
        has_devices(&entries);
        has_latin1(&entries);
        conform(Case {
            name,
            tar,
            upstream_refuses: false,
            gzip: false,
        })
    });
}

#[test]
fn bsdtar_gnutar() {
    let name = "bsdtar --format gnutar";
    unless_missing(name, || {
        let dir = tree(Features::FULL);
        let tar = fixtures::bsdtar(&src(&dir), "gnutar")?;
        let entries = fixtures::scan(&tar);
        has_devices(&entries);
        has_fifo_links(&entries);
        has_latin1(&entries);
        conform(Case {
            name,
            tar,
            upstream_refuses: false,
            gzip: true,
        })
    });
}

#[test]
fn busybox_tar() {
    let name = "busybox tar";
    unless_missing(name, || {
        let dir = tree(Features::FULL);
        let tar = fixtures::busybox_tar(&src(&dir))?;
        let entries = fixtures::scan(&tar);
        has_devices(&entries);
        has_fifo_links(&entries);
        has_latin1(&entries);
        conform(Case {
            name,
            tar,
            upstream_refuses: false,
            gzip: false,
        })
    });
}

// ---------------------------------------------------------------------------------------
// Python's tarfile
// ---------------------------------------------------------------------------------------

fn python(format: &str, name: &str) {
    unless_missing(name, || {
        let dir = tree(Features::FULL);
        let tar = fixtures::python_tarfile(&src(&dir), format, dir.path())?;
        let entries = fixtures::scan(&tar);
        has_devices(&entries);
        has_fifo_links(&entries);
        has_latin1(&entries);
        has(&entries, "uid above 2097151", |e| e.uid > 2_097_151);
        has(&entries, "mode-0000 directory", |e| {
            e.is_dir() && e.name == b"py/locked"
        });
        if format == "pax" {
            has_capability(&entries);
        }
        conform(Case {
            name,
            tar,
            upstream_refuses: false,
            gzip: true,
        })
    });
}

#[test]
fn python_tarfile_gnu() {
    python("gnu", "Python tarfile GNU_FORMAT");
}

#[test]
fn python_tarfile_pax() {
    python("pax", "Python tarfile PAX_FORMAT");
}

// ---------------------------------------------------------------------------------------
// Go's archive/tar, as podman and skopeo write it
// ---------------------------------------------------------------------------------------

/// Runs podman on `store` (root, run root and temporary files all under it).
fn podman(store: &Scratch, podman: &Path, args: &[&str]) -> Vec<u8> {
    let tmp = store.dir().join("podman-tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let mut cmd = Command::new(podman);
    cmd.arg("--root")
        .arg(store.graph())
        .arg("--runroot")
        .arg(store.run_root())
        .arg("--tmpdir")
        .arg(&tmp)
        .args([
            "--storage-driver",
            "overlay",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "none",
        ])
        .args(args);
    fixtures::run_ok(cmd)
}

/// The layer Go's archive/tar writes for a container holding `src`: podman imports an
/// empty image, creates a container, the tree is copied into its mount, `podman commit`
/// has containers/storage's Go code (pkg/archive on archive/tar) write the container's
/// diff, and `skopeo copy` takes that layer out of the store into an OCI layout. The store
/// is a scratch store of the reference binary's layout (the reference binary shuts it down
/// when the test ends).
fn go_layer(src: &Path, reference: &Path) -> Result<Vec<u8>, Skip> {
    let podman_bin = fixtures::need("podman", "podman")?;
    let skopeo = fixtures::need("skopeo", "skopeo")?;
    fixtures::need("tar", "tar")?;
    let store = Scratch::with_binary(reference, "overlay");
    let empty = store.dir().join("empty.tar");
    std::fs::write(&empty, [0u8; 1024]).unwrap();
    podman(
        &store,
        &podman_bin,
        &[
            "import",
            "-q",
            &empty.display().to_string(),
            "localhost/corpus-base:v1",
        ],
    );
    podman(
        &store,
        &podman_bin,
        &[
            "create",
            "--net",
            "none",
            "--name",
            "corpus",
            "localhost/corpus-base:v1",
            "/none",
        ],
    );
    let mount = podman(&store, &podman_bin, &["mount", "corpus"]);
    let mount = PathBuf::from(String::from_utf8(mount).unwrap().trim());
    fixtures::copy_tree(src, &mount);
    podman(&store, &podman_bin, &["umount", "corpus"]);
    podman(
        &store,
        &podman_bin,
        &["commit", "-q", "corpus", "localhost/corpus-go:v1"],
    );
    let layout = store.dir().join("oci");
    let mut cmd = Command::new(skopeo);
    cmd.arg("copy")
        .arg("-q")
        .arg(format!(
            "containers-storage:[overlay@{}+{}]localhost/corpus-go:v1",
            store.graph().display(),
            store.run_root().display()
        ))
        .arg(format!("oci:{}:corpus", layout.display()));
    fixtures::run_ok(cmd);
    let blob = |digest: &str| {
        std::fs::read(
            layout
                .join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:")),
        )
        .unwrap()
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    let top = layers.last().unwrap()["digest"].as_str().unwrap();
    Ok(fixtures::gunzip_if_needed(blob(top)))
}

#[test]
fn go_archive_tar_via_podman_commit() {
    let name = "Go archive/tar (podman commit, skopeo copy)";
    unless_missing(name, || {
        let reference = reference()?;
        let dir = tree(Features::FULL);
        let tar = go_layer(&src(&dir), &reference)?;
        let entries = fixtures::scan(&tar);
        has_devices(&entries);
        has_fifo_links(&entries);
        has_latin1(&entries);
        has_capability(&entries);
        conform(Case {
            name,
            tar,
            upstream_refuses: false,
            gzip: true,
        })
    });
}

// ---------------------------------------------------------------------------------------
// A debootstrap-style root filesystem
// ---------------------------------------------------------------------------------------

#[test]
fn debootstrap_style_rootfs() {
    let name = "debootstrap-style rootfs (tar --numeric-owner)";
    unless_missing(name, || {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        std::fs::create_dir(&root).unwrap();
        fixtures::build_rootfs(&root);
        let tar = fixtures::run_ok({
            let mut cmd = Command::new(fixtures::need("tar", "tar")?);
            cmd.args(["--numeric-owner", "-cf", "-", "-C"])
                .arg(&root)
                .arg(".");
            cmd
        });
        let entries = fixtures::scan(&tar);
        has_devices(&entries);
        has_fifo_links(&entries);
        has(&entries, "setuid file", |e| {
            e.typeflag == b'0' && e.name == b"usr/bin/passwd"
        });
        conform(Case {
            name,
            tar,
            upstream_refuses: false,
            gzip: true,
        })
    });
}

// ---------------------------------------------------------------------------------------
// The comparison itself
// ---------------------------------------------------------------------------------------

/// The reference binary agrees with itself on the richest archive (PAX with sparse
/// entries, devices, capabilities, a non-UTF-8 name): the comparison sees no noise, and
/// the uidset/gidset read from the archive's headers are upstream's.
#[test]
fn comparison_of_the_reference_with_itself_is_clean() {
    unless_missing("comparison of the reference with itself", || {
        let reference = reference()?;
        let dir = tree(Features::FULL);
        let tar = fixtures::gnu_tar(&src(&dir), "posix", &["--sparse"])?;
        let entries = fixtures::scan(&tar);
        let a = Scratch::with_binary(&reference, crate::DRIVER);
        let b = Scratch::with_binary(&reference, crate::DRIVER);
        import(&a, &tar).unwrap();
        import(&b, &tar).unwrap();
        let snap = |s: &Scratch| {
            let mut n = snapshot(&layer_dir(&s.graph(), crate::DRIVER, &layer_id()));
            forget_unreproducible_times(&mut n, &entries);
            n
        };
        let (na, nb) = (snap(&a), snap(&b));
        assert!(na.len() > 50, "{} paths", na.len());
        let problems = compare_trees(&na, &nb, "again");
        assert!(problems.is_empty(), "{problems:#?}");
        let (ra, rb) = (record(&a), record(&b));
        for field in RECORD_FIELDS {
            assert_eq!(ra[field], rb[field], "{field}");
        }
        let (uidset, gidset) = idsets(&entries);
        assert_eq!(ra["uidset"], uidset);
        assert_eq!(ra["gidset"], gidset);
        // Upstream writes sparse entries dense: what `conform` notes for upstream and
        // asserts the opposite of for ours is really seen by the snapshot.
        let mut sparse = 0;
        for e in entries.iter().filter(|e| e.sparse.is_some() && e.size > 0) {
            assert!(
                na[&e.name].allocated >= e.size,
                "{}: {:?}",
                show(&e.name),
                na[&e.name]
            );
            sparse += 1;
        }
        assert_eq!(sparse, fixtures::SPARSE_FILES.len());
        Ok(())
    });
}

/// The comparison notices a change of mode, content, xattr, mtime, owner and a missing
/// path.
#[test]
fn comparison_notices_differences() {
    unless_missing("comparison notices differences", || {
        let reference = reference()?;
        let dir = tree(Features::PLAIN);
        let tar = fixtures::gnu_tar(&src(&dir), "posix", &[])?;
        let entries = fixtures::scan(&tar);
        let a = Scratch::with_binary(&reference, crate::DRIVER);
        import(&a, &tar).unwrap();
        let root = layer_dir(&a.graph(), crate::DRIVER, &layer_id());
        let before = snapshot(&root);
        std::fs::set_permissions(
            root.join("etc/hostname"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        std::fs::write(root.join("etc/empty"), b"x").unwrap();
        rustix::fs::lsetxattr(
            root.join("home/user/notes.txt"),
            "user.comment",
            b"changed",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        fixtures::set_mtime(&root.join("etc/epoch"), 1, 0);
        std::os::unix::fs::lchown(root.join("links/rel"), Some(7), Some(7)).unwrap();
        std::fs::remove_file(root.join("links/hard2")).unwrap();
        let mut after = snapshot(&root);
        forget_unreproducible_times(&mut after, &entries);
        let mut before = before;
        forget_unreproducible_times(&mut before, &entries);
        let problems = compare_trees(&after, &before, "before");
        let joined = problems.join("\n");
        for expected in [
            "etc/hostname: mode: ours 0600, before 0644",
            "etc/empty: size",
            "etc/empty: content",
            "home/user/notes.txt: xattrs",
            "etc/epoch: mtime",
            "links/rel: owner: ours 7:7, before 0:0",
            "links/hard2: missing in ours",
            "links/hard1: hard links",
        ] {
            assert!(joined.contains(expected), "{expected} not in:\n{joined}");
        }
        Ok(())
    });
}
