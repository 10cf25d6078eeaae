//! Hostile archives through `import-layer` and `applydiff`: each must fail with one line on
//! stderr, leave the store exactly as it was, and touch nothing outside it (a failed command
//! leaves the store as it was; hostile-archive hardening).
//!
//! The `tar` crate refuses to write most of these, so the headers are written by hand.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::harness::{gzip, id, tar_of, Scratch};

/// A ustar header block (plus payload and padding) written byte by byte.
struct RawEntry<'a> {
    name: &'a str,
    kind: u8,
    link: &'a str,
    data: &'a [u8],
    dev: (u32, u32),
}

impl RawEntry<'_> {
    fn bytes(&self) -> Vec<u8> {
        let mut h = [0u8; 512];
        put(&mut h[0..100], self.name.as_bytes());
        put(&mut h[100..108], b"0000644\0");
        put(&mut h[108..116], b"0000000\0");
        put(&mut h[116..124], b"0000000\0");
        put(
            &mut h[124..136],
            format!("{:011o}\0", self.data.len()).as_bytes(),
        );
        put(&mut h[136..148], b"14524052000\0");
        h[156] = self.kind;
        put(&mut h[157..257], self.link.as_bytes());
        put(&mut h[257..265], b"ustar\x0000");
        put(&mut h[329..337], format!("{:07o}\0", self.dev.0).as_bytes());
        put(&mut h[337..345], format!("{:07o}\0", self.dev.1).as_bytes());
        // The checksum is computed with its own field read as spaces.
        h[148..156].fill(b' ');
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        put(&mut h[148..156], format!("{sum:06o}\0 ").as_bytes());
        let mut out = h.to_vec();
        out.extend_from_slice(self.data);
        out.resize(out.len().div_ceil(512) * 512, 0);
        out
    }
}

fn put(field: &mut [u8], value: &[u8]) {
    assert!(value.len() <= field.len(), "{value:?} does not fit");
    field[..value.len()].copy_from_slice(value);
}

fn entry<'a>(name: &'a str, kind: u8, link: &'a str, data: &'a [u8]) -> RawEntry<'a> {
    RawEntry {
        name,
        kind,
        link,
        data,
        dev: (0, 0),
    }
}

fn device(name: &str, kind: u8, major: u32, minor: u32) -> RawEntry<'_> {
    RawEntry {
        dev: (major, minor),
        ..entry(name, kind, "", b"")
    }
}

/// A tar of raw entries with its two zero blocks at the end.
fn raw_tar(entries: &[RawEntry<'_>]) -> Vec<u8> {
    let mut out: Vec<u8> = entries.iter().flat_map(RawEntry::bytes).collect();
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// A header that claims `size` bytes of payload, followed by none of them.
fn claims_size(name: &str, size: u64) -> Vec<u8> {
    let mut h = entry(name, b'0', "", b"").bytes();
    put(&mut h[124..136], format!("{size:011o}\0").as_bytes());
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    put(&mut h[148..156], format!("{sum:06o}\0 ").as_bytes());
    h.extend_from_slice(&[0u8; 1024]);
    h
}

/// A PAX record (`LEN KEY=VALUE\n`); its length counts its own digits.
fn pax_record(key: &str, value: &str) -> String {
    let record = format!("{key}={value}\n");
    let mut len = record.len() + 2;
    while format!("{len} {record}").len() != len {
        len = format!("{len} {record}").len();
    }
    format!("{len} {record}")
}

/// A PAX extended header carrying one `SCHILY.xattr.NAME=y` record, then a directory.
fn xattr_dir(xattr: &str) -> Vec<u8> {
    let pax = pax_record(&format!("SCHILY.xattr.{xattr}"), "y");
    raw_tar(&[
        entry("PaxHeaders/d", b'x', "", pax.as_bytes()),
        entry("d/", b'5', "", b""),
    ])
}

/// A harmless ustar name overridden by a hostile PAX `path` record.
fn pax_path(path: &str) -> Vec<u8> {
    let pax = pax_record("path", path);
    raw_tar(&[
        entry("PaxHeaders/f", b'x', "", pax.as_bytes()),
        entry("harmless", b'0', "", b"pwned"),
    ])
}

/// A harmless ustar name overridden by a hostile GNU long name (`././@LongLink`).
fn gnu_long_name(path: &str) -> Vec<u8> {
    let mut name = path.as_bytes().to_vec();
    name.push(0);
    raw_tar(&[
        entry("././@LongLink", b'L', "", &name),
        entry("harmless", b'0', "", b"pwned"),
    ])
}

/// Bytes that are neither a tar nor a compressed stream (no zero block, no magic), with
/// newlines and control bytes where a header's fields are parsed, so an error message that
/// quotes them unescaped would spill onto several lines.
fn junk() -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    let mut out: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    out[0] = b'j';
    for i in (0..512).step_by(7) {
        out[i + 1] = b'\n';
    }
    out
}

/// One hostile archive.
struct Case {
    name: &'static str,
    tar: Vec<u8>,
    /// The very first entry is the hostile one, so applying it to an existing layer must
    /// not change anything at all.
    hostile_first: bool,
}

/// Paths outside the store that the archives aim at.
struct Targets {
    /// A directory next to the store holding only the canary.
    outside: PathBuf,
    canary: PathBuf,
}

impl Targets {
    fn new(s: &Scratch) -> Targets {
        let outside = s.dir().join("outside");
        std::fs::create_dir(&outside).unwrap();
        let canary = outside.join("canary");
        std::fs::write(&canary, b"canary").unwrap();
        Targets { outside, canary }
    }

    /// `outside/<leaf>` as an absolute path without its leading `/`.
    fn rel(&self, leaf: &str) -> String {
        let p = self.outside.join(leaf).display().to_string();
        p.trim_start_matches('/').to_string()
    }
}

fn cases(t: &Targets) -> Vec<Case> {
    // Enough `..` to reach `/` from any layer dir; more stop there.
    let climb = "../".repeat(12);
    let pwned = t.rel("pwned");
    let climb_pwned = format!("{climb}{pwned}");
    let abs_pwned = format!("/{pwned}");
    let outside_abs = t.outside.display().to_string();
    let climb_canary = format!("{climb}{}", t.rel("canary"));
    let mut truncated = tar_of(&[("big", &[7u8; 10_000])]);
    truncated.truncate(512 + 3000);
    let case = |name, tar, hostile_first| Case {
        name,
        tar,
        hostile_first,
    };
    vec![
        case(
            "dotdot",
            raw_tar(&[entry("../escape", b'0', "", b"pwned")]),
            true,
        ),
        case(
            "dotdot-climb",
            raw_tar(&[entry(&climb_pwned, b'0', "", b"pwned")]),
            true,
        ),
        case(
            "absolute",
            raw_tar(&[entry(&abs_pwned, b'0', "", b"pwned")]),
            true,
        ),
        case(
            "pax-path-dotdot",
            pax_path(&format!("{climb}{}", t.rel("pax"))),
            true,
        ),
        case(
            "gnu-long-name-absolute",
            gnu_long_name(&format!("/{}", t.rel("gnu"))),
            true,
        ),
        case(
            "symlink-then-write",
            raw_tar(&[
                entry("link", b'2', &outside_abs, b""),
                entry("link/pwned", b'0', "", b"pwned"),
            ]),
            false,
        ),
        case(
            "symlink-climbing",
            raw_tar(&[
                entry("up", b'2', &climb[..climb.len() - 1], b""),
                entry(&format!("up/{pwned}"), b'0', "", b"pwned"),
            ]),
            true,
        ),
        case(
            "hardlink-passwd",
            raw_tar(&[entry("pw", b'1', "../../etc/passwd", b"")]),
            true,
        ),
        case(
            "hardlink-canary",
            raw_tar(&[entry("c", b'1', &climb_canary, b"")]),
            true,
        ),
        case(
            "whiteout-of-dotdot",
            raw_tar(&[entry(".wh...", b'0', "", b"")]),
            true,
        ),
        case(
            "whiteout-of-dotdot-in-dir",
            raw_tar(&[entry("etc/.wh...", b'0', "", b"")]),
            true,
        ),
        case(
            "whiteout-of-dot",
            raw_tar(&[entry("etc/.wh..", b'0', "", b"")]),
            true,
        ),
        case(
            "gzip-dotdot",
            gzip(&raw_tar(&[entry(&climb_pwned, b'0', "", b"pwned")])),
            true,
        ),
        case(
            "duplicate-path-over-symlink",
            raw_tar(&[
                entry("s", b'2', &t.canary.display().to_string(), b""),
                entry("s", b'0', "", b"pwned"),
            ]),
            false,
        ),
        case(
            "pax-linkpath",
            raw_tar(&[
                entry(
                    "PaxHeaders/l",
                    b'x',
                    "",
                    pax_record("linkpath", &climb_canary).as_bytes(),
                ),
                entry("l", b'1', "harmless", b""),
            ]),
            true,
        ),
        case(
            "symlink-loop",
            raw_tar(&[
                entry("loop1", b'2', "loop2", b""),
                entry("loop2", b'2', "loop1", b""),
                entry("loop1/x", b'0', "", b"pwned"),
            ]),
            false,
        ),
        case(
            "root-as-file",
            raw_tar(&[entry(".", b'0', "", b"pwned")]),
            true,
        ),
        // The file is created before its payload turns out missing, as for "truncated".
        case("huge-size-claim", claims_size("big", (8 << 30) - 1), false),
        case(
            "trusted-overlay-xattr",
            xattr_dir("trusted.overlay.opaque"),
            true,
        ),
        case("user-overlay-xattr", xattr_dir("user.overlay.opaque"), true),
        case("truncated", truncated, false),
        case("junk", junk(), true),
        case("gzip-junk", gzip(&junk()), true),
    ]
}

/// Everything below `dir` (not following symlinks): path → kind, size, link target, and
/// the contents of small files.
fn tree(dir: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries {
            let path = e.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let what = if meta.is_symlink() {
                format!("link -> {}", std::fs::read_link(&path).unwrap().display())
            } else if meta.is_dir() {
                walk(root, &path, out);
                format!("dir {:o}", meta.mode())
            } else if meta.is_file() && meta.len() < 4096 {
                let data = std::fs::read(&path).unwrap();
                format!(
                    "file {:o} nlink {} {:?}",
                    meta.mode(),
                    meta.nlink(),
                    String::from_utf8_lossy(&data)
                )
            } else {
                format!("other {:o} {} bytes", meta.mode(), meta.len())
            };
            out.insert(rel, what);
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// What must not change when a hostile archive is refused.
#[derive(Debug, PartialEq)]
struct Snapshot {
    layers_json: String,
    /// The driver's home, layer contents included.
    driver: BTreeMap<String, String>,
    /// `overlay-layers/`: records, tar-splits, big data.
    layer_data: BTreeMap<String, String>,
    outside: BTreeMap<String, String>,
    passwd: (u64, u64, i64),
}

impl Snapshot {
    fn take(s: &Scratch, t: &Targets) -> Snapshot {
        let passwd = std::fs::metadata("/etc/passwd").unwrap();
        let mut layer_data = tree(&s.graph().join(format!("{}-layers", crate::DRIVER)));
        // The lock's last-writer token changes on every write attempt, by design.
        layer_data.remove("layers.lock");
        Snapshot {
            layers_json: s.ok(&["layers", "-j"]),
            driver: tree(&driver_home(s)),
            layer_data,
            outside: tree(&t.outside),
            passwd: (passwd.nlink(), passwd.len(), passwd.mtime()),
        }
    }
}

/// The driver's home, for the drivers whose layout is known here (the vfs component's home
/// is compared as overlay's absent one: empty).
fn driver_home(s: &Scratch) -> PathBuf {
    match crate::DRIVER {
        "btrfs" => s.graph().join("btrfs"),
        _ => s.graph().join("overlay"),
    }
}

/// Whether a test that looks at a layer's files on disk applies: overlay's and btrfs's
/// layouts are known.
fn layout_known(test: &str) -> bool {
    crate::DRIVER == "btrfs" || crate::harness::overlay_only(test)
}

/// A store with one imported layer, plus the targets outside it.
fn prepared() -> (Scratch, Targets, String) {
    let s = Scratch::new();
    let t = Targets::new(&s);
    let base = s.import_layer(
        &["--id", &id("base"), "-n", "base"],
        &tar_of(&[
            ("etc/", b""),
            ("etc/passwd", b"layer's own\n"),
            ("a", b"orig"),
        ]),
    );
    (s, t, base)
}

fn assert_refused(what: &str, o: &crate::harness::Output) {
    assert_ne!(o.code, 0, "{what}: accepted: {o:?}");
    assert_eq!(o.out(), "", "{what}: wrote to stdout");
    assert_eq!(o.stderr.lines().count(), 1, "{what}: {:?}", o.stderr);
    assert!(o.stderr.ends_with('\n'), "{what}: {:?}", o.stderr);
}

#[test]
fn import_of_a_hostile_archive_fails_and_changes_nothing() {
    let (s, t, base) = prepared();
    for case in cases(&t) {
        let before = Snapshot::take(&s, &t);
        let o = s.run_with_input(&["import-layer", "-n", case.name], &case.tar);
        assert_refused(case.name, &o);
        assert_eq!(
            Snapshot::take(&s, &t),
            before,
            "{}: store changed",
            case.name
        );
        // And with the base layer as parent (a lower dir is then in play).
        let o = s.run_with_input(&["import-layer", &base], &case.tar);
        assert_refused(case.name, &o);
        assert_eq!(
            Snapshot::take(&s, &t),
            before,
            "{}: store changed",
            case.name
        );
    }
    assert_eq!(std::fs::read(&t.canary).unwrap(), b"canary");
    assert_eq!(s.ok(&["layers", "-q"]), format!("{base}\n"));
    assert_eq!(s.ok(&["check", "-q"]), "");
}

/// Device nodes are not hostile: a real root filesystem has `/dev/null` and friends, and
/// upstream creates them as root (a char 0:0 is then an overlay whiteout, as there). They
/// import, and `diff` gives the archive back.
#[test]
fn device_nodes_import_and_diff_back() {
    let s = Scratch::new();
    let tar = raw_tar(&[
        device("null", b'3', 1, 3),
        device("sda", b'4', 8, 0),
        device("gone", b'3', 0, 0),
    ]);
    let layer = s.import_layer(&[], &tar);
    let o = s.run(&["diff", "-u", &layer]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stdout == tar, "diff differs from the imported archive");
    assert_eq!(s.ok(&["check", "-q"]), "");
}

#[test]
fn applydiff_of_a_hostile_archive_fails() {
    if !layout_known("applydiff_of_a_hostile_archive_fails") {
        return;
    }
    let (s, t, base) = prepared();
    let layer_diff = crate::harness::layer_dir(&s.graph(), crate::DRIVER, &base);
    let tar_split = s
        .graph()
        .join(format!("{}-layers", crate::DRIVER))
        .join(format!("{base}.tar-split.gz"));
    let original_tar_split = std::fs::read(&tar_split).unwrap();
    let original_diff = s.run(&["diff", "-u", &base]);
    assert_eq!(original_diff.code, 0, "{original_diff:?}");
    for case in cases(&t) {
        let before = Snapshot::take(&s, &t);
        let content = tree(&layer_diff);
        let o = s.run_with_input(&["applydiff", &base], &case.tar);
        assert_refused(case.name, &o);
        let after = Snapshot::take(&s, &t);
        assert_eq!(after.layers_json, before.layers_json, "{}", case.name);
        assert_eq!(after.outside, before.outside, "{}", case.name);
        assert_eq!(after.passwd, before.passwd, "{}", case.name);
        assert_eq!(
            std::fs::read(&tar_split).unwrap(),
            original_tar_split,
            "{}: tar-split replaced",
            case.name
        );
        if case.hostile_first {
            assert_eq!(tree(&layer_diff), content, "{}: layer changed", case.name);
            assert_eq!(after, before, "{}: store changed", case.name);
        }
    }
    assert_eq!(std::fs::read(layer_diff.join("a")).unwrap(), b"orig");
    assert_eq!(std::fs::read(&t.canary).unwrap(), b"canary");
    // The layer still re-creates the archive it was imported from, byte for byte.
    assert_eq!(s.run(&["diff", "-u", &base]).stdout, original_diff.stdout);
}

#[test]
fn replacing_links_never_writes_through_them() {
    if !layout_known("replacing_links_never_writes_through_them") {
        return;
    }
    // Legal archives that a naive extractor (open with O_TRUNC, link following symlinks)
    // would turn against the canary: they must apply, and the canary stay as it was. One
    // archive may not name a path twice (tar-split refuses duplicates), so the replacing
    // entries come in a second archive applied to the same layer.
    let (s, t, _) = prepared();
    let canary = t.canary.display().to_string();
    let first = raw_tar(&[
        entry("s", b'2', &canary, b""),
        // A hard link to a symlink to the canary links the symlink, not the canary.
        entry("t", b'2', &canary, b""),
        entry("h", b'1', "t", b""),
        entry("orig", b'0', "", b"orig"),
        entry("alias", b'1', "orig", b""),
    ]);
    let second = raw_tar(&[
        // A file where a symlink to the canary is.
        entry("s", b'0', "", b"pwned"),
        // A file where a hard link is: the other name keeps its content.
        entry("alias", b'0', "", b"pwned"),
    ]);
    let before = tree(&t.outside);
    let l = s.import_layer(&[], &first);
    s.ok_with_input(&["applydiff", &l], &second);

    assert_eq!(tree(&t.outside), before);
    assert_eq!(std::fs::read(&t.canary).unwrap(), b"canary");
    assert_eq!(std::fs::metadata(&t.canary).unwrap().nlink(), 1);
    let diff = crate::harness::layer_dir(&s.graph(), crate::DRIVER, &l);
    assert_eq!(std::fs::read(diff.join("s")).unwrap(), b"pwned");
    assert!(!std::fs::symlink_metadata(diff.join("s"))
        .unwrap()
        .is_symlink());
    assert!(std::fs::symlink_metadata(diff.join("h"))
        .unwrap()
        .is_symlink());
    assert_eq!(std::fs::read_link(diff.join("h")).unwrap(), t.canary);
    assert_eq!(std::fs::read(diff.join("orig")).unwrap(), b"orig");
    assert_eq!(std::fs::read(diff.join("alias")).unwrap(), b"pwned");
}

/// A path named twice far apart: GNU tar's `--append` adds `d/f0` again after 17 000 other
/// entries, more than tar-split keeps in memory, so the repeat is found when the spilled paths
/// are merged at the end. The import fails in one line naming it, as for a repeat close by,
/// and leaves the store as it was.
#[test]
fn a_path_repeated_far_apart_is_refused_and_leaves_nothing() {
    let (s, t, base) = prepared();
    let work = tempfile::tempdir().unwrap();
    std::fs::create_dir(work.path().join("d")).unwrap();
    for i in 0..17_000 {
        std::fs::write(work.path().join(format!("d/f{i}")), b"").unwrap();
    }
    let archive = work.path().join("layer.tar");
    for (mode, what) in [("-cf", "d"), ("-rf", "d/f0")] {
        let status = std::process::Command::new("tar")
            .arg("-C")
            .arg(work.path())
            .arg(mode)
            .arg(&archive)
            .arg(what)
            .status()
            .unwrap();
        assert!(status.success(), "tar {mode} {what}");
    }
    let tar = std::fs::read(&archive).unwrap();
    let before = Snapshot::take(&s, &t);
    let o = s.run_with_input(&["import-layer", &base], &tar);
    assert_refused("repeated far apart", &o);
    assert!(
        o.stderr
            .contains("duplicates of file paths not supported: \"d/f0\""),
        "{}",
        o.stderr
    );
    assert_eq!(Snapshot::take(&s, &t), before, "store changed");
    assert_eq!(s.ok(&["layers", "-q"]), format!("{base}\n"));
}
