//! Fixtures of the conformance corpus ([`super`]): source trees the test builds on disk, the
//! archives real tools make of them (GNU tar, bsdtar, busybox, Python's tarfile, Go's
//! archive/tar through podman and skopeo), and a raw reader of tar headers that says what an
//! archive really carries (so a test notices when a tool stops writing the feature it is
//! meant to exercise). Nothing is downloaded: every archive comes from a tool on this
//! machine, and a test is skipped (with a line saying so) only when that tool is missing.

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rustix::fs::{FileType, Mode, Timespec, Timestamps, XattrFlags, CWD};

/// `security.capability` for `cap_net_raw+ep`, as `setcap cap_net_raw+ep` writes it as root
/// outside a user namespace: VFS_CAP_REVISION_2 with the effective flag, permitted bit 13.
pub const CAP_NET_RAW_EP: [u8; 20] = [
    0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00,
];

/// A non-UTF-8 (Latin-1) file name: "café" as an old archive spells it.
pub const LATIN1_NAME: &[u8] = b"caf\xe9";

/// The sparse files of the source tree (with `Features::sparse`).
pub const SPARSE_FILES: &[&str] = &[
    "sparse/holes.bin",
    "sparse/all-hole.bin",
    "sparse/tail.bin",
    "sparse/many.bin",
];

/// What a source tree holds beyond plain files, directories, links, fifos, owners, modes,
/// `user.*` xattrs and odd (UTF-8) names, which every tree has.
#[derive(Debug, Clone, Copy)]
pub struct Features {
    /// Character and block device nodes.
    pub devices: bool,
    /// Files with holes (`SPARSE_FILES`).
    pub sparse: bool,
    /// A file with `security.capability` (cap_net_raw+ep).
    pub capability: bool,
    /// A file name that is not UTF-8 (`LATIN1_NAME`).
    pub latin1: bool,
}

impl Features {
    /// Everything.
    pub const FULL: Features = Features {
        devices: true,
        sparse: true,
        capability: true,
        latin1: true,
    };
    /// Only what every importer handled before issue #9: no device nodes, holes,
    /// capabilities or non-UTF-8 names (the baseline that checks the comparison itself).
    pub const PLAIN: Features = Features {
        devices: false,
        sparse: false,
        capability: false,
        latin1: false,
    };
}

/// Why a test cannot run here: a tool it needs is missing.
#[derive(Debug)]
pub struct Skip(pub String);

/// The path of `program` when it is on `PATH`.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// `program` on `PATH`, or a [`Skip`] naming the Debian package that has it.
pub fn need(program: &str, package: &str) -> Result<PathBuf, Skip> {
    which(program).ok_or_else(|| {
        Skip(format!(
            "{program} is not installed (Debian package {package})"
        ))
    })
}

/// Runs `cmd`, which must succeed; returns its standard output.
pub fn run_ok(mut cmd: Command) -> Vec<u8> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("starting {shown}: {e}"));
    assert!(
        out.status.success(),
        "{shown} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The path `dir/rel` where `rel` is bytes (names need not be UTF-8).
pub fn join(dir: &Path, rel: &[u8]) -> PathBuf {
    dir.join(OsStr::from_bytes(rel))
}

// ---------------------------------------------------------------------------------------
// Source trees
// ---------------------------------------------------------------------------------------

/// One thing to make in a source tree.
enum Make<'a> {
    Dir,
    File(&'a [u8]),
    Symlink(&'a [u8]),
    /// A hard link to the given (earlier) path.
    Hard(&'a [u8]),
    Fifo,
    Char(u32, u32),
    Block(u32, u32),
    /// A file of the given size with data at the given offsets (holes elsewhere).
    Sparse(u64, &'a [(u64, u64)]),
}

/// How one path of a source tree is made and what it carries.
struct Item<'a> {
    path: &'a [u8],
    make: Make<'a>,
    mode: u32,
    owner: (u32, u32),
    xattrs: &'a [(&'a str, &'a [u8])],
    /// Seconds of the modification time; `None`: the tree's running clock.
    mtime: Option<i64>,
}

const fn item<'a>(path: &'a [u8], make: Make<'a>, mode: u32) -> Item<'a> {
    Item {
        path,
        make,
        mode,
        owner: (0, 0),
        xattrs: &[],
        mtime: None,
    }
}

/// Builds the corpus source tree in the empty directory `root`.
///
/// Every entry gets a fixed modification time with nanoseconds (1700000000 + its index,
/// .123456789 + its index) so archives that keep them (PAX) carry them, except `etc/epoch`
/// (time 0), `etc/y2100` (after 2038) and `wide/y2286` (beyond 11 octal digits).
/// `wide/` holds what the ustar format cannot carry (names over 255 bytes, a link target
/// over 100 bytes, IDs over 2097151, times over 8^11): ustar archives leave it out.
pub fn build_tree(root: &Path, features: Features) {
    let long_dir = [b'd'; 120];
    let long_file = [b'f'; 120];
    let mut long_path = b"wide/".to_vec();
    long_path.extend_from_slice(&long_dir);
    let long_dir_path = long_path.clone();
    long_path.push(b'/');
    long_path.extend_from_slice(&long_file);
    let mut long_target = b"../".to_vec();
    long_target.extend_from_slice(&long_path);
    // A path over 100 bytes whose last component fits ustar's name field and the rest its
    // prefix field: ustar splits it, GNU formats use a long-name entry.
    let deep_a = [b'a'; 60];
    let deep_b = [b'b'; 60];
    let mut deep_dir = b"deep/".to_vec();
    deep_dir.extend_from_slice(&deep_a);
    let mut deep_dir2 = deep_dir.clone();
    deep_dir2.push(b'/');
    deep_dir2.extend_from_slice(&deep_b);
    let mut deep_file = deep_dir2.clone();
    deep_file.extend_from_slice(b"/file-beyond-one-hundred-bytes.txt");
    let mut latin1 = b"odd/".to_vec();
    latin1.extend_from_slice(LATIN1_NAME);
    let mut latin1_link = b"odd/to-".to_vec();
    latin1_link.extend_from_slice(LATIN1_NAME);

    let many: Vec<(u64, u64)> = (0..40).map(|i| (i * 65536 + 4096, 512)).collect();

    let mut items: Vec<Item> = vec![
        item(b"etc", Make::Dir, 0o755),
        item(b"etc/hostname", Make::File(b"corpus\n"), 0o644),
        item(b"etc/empty", Make::File(b""), 0o644),
        Item {
            owner: (0, 42),
            ..item(
                b"etc/shadow",
                Make::File(b"root:*:19000:0:99999:7:::\n"),
                0o640,
            )
        },
        Item {
            mtime: Some(0),
            ..item(b"etc/epoch", Make::File(b"1970\n"), 0o644)
        },
        Item {
            mtime: Some(4_102_444_800),
            ..item(b"etc/y2100", Make::File(b"2100\n"), 0o644)
        },
        Item {
            owner: (1000, 1000),
            ..item(b"home", Make::Dir, 0o755)
        },
        Item {
            owner: (1000, 1000),
            ..item(b"home/user", Make::Dir, 0o750)
        },
        Item {
            owner: (1000, 1000),
            xattrs: &[
                ("user.comment", b"a note"),
                ("user.binary", b"\x00\xff\x80\x01binary"),
            ],
            ..item(b"home/user/notes.txt", Make::File(b"notes\n"), 0o600)
        },
        Item {
            owner: (1000, 100),
            ..item(b"home/user/.hidden", Make::File(b"dot\n"), 0o644)
        },
        item(b"dirs", Make::Dir, 0o755),
        item(b"dirs/empty", Make::Dir, 0o700),
        item(b"dirs/sticky", Make::Dir, 0o1777),
        Item {
            owner: (0, 100),
            ..item(b"dirs/setgid", Make::Dir, 0o2775)
        },
        Item {
            xattrs: &[("user.dir", b"yes"), ("user.empty", b"")],
            ..item(b"dirs/with-xattr", Make::Dir, 0o755)
        },
        // Mode 0000 with children: the children are made first (root needs no permission
        // anyway), the mode is set after them.
        item(b"dirs/locked", Make::Dir, 0o000),
        item(b"dirs/locked/inside", Make::File(b"locked in\n"), 0o644),
        item(b"dirs/locked/sub", Make::Dir, 0o755),
        item(b"bin", Make::Dir, 0o755),
        item(b"bin/suid", Make::File(b"#!/bin/sh\n"), 0o4755),
        Item {
            owner: (0, 5),
            ..item(b"bin/sgid", Make::File(b"#!/bin/sh\n"), 0o2755)
        },
        item(b"bin/suid-sgid", Make::File(b"#!/bin/sh\n"), 0o6755),
        item(b"bin/exec-only", Make::File(b"#!/bin/sh\n"), 0o111),
        item(b"links", Make::Dir, 0o755),
        item(b"links/target.txt", Make::File(b"target\n"), 0o644),
        item(b"links/rel", Make::Symlink(b"target.txt"), 0o777),
        item(b"links/abs", Make::Symlink(b"/etc/hostname"), 0o777),
        item(b"links/dangling", Make::Symlink(b"no/such/file"), 0o777),
        item(b"links/dir-link", Make::Symlink(b"../etc"), 0o777),
        Item {
            xattrs: &[("user.linked", b"three names")],
            ..item(
                b"links/hard1",
                Make::File(b"one inode, three names\n"),
                0o644,
            )
        },
        item(b"links/hard2", Make::Hard(b"links/hard1"), 0o644),
        item(b"etc/hard-across", Make::Hard(b"links/hard1"), 0o644),
        item(b"bin/suid-link", Make::Hard(b"bin/suid"), 0o4755),
        item(b"special", Make::Dir, 0o755),
        item(b"special/fifo", Make::Fifo, 0o644),
        item(b"special/fifo-private", Make::Fifo, 0o600),
        item(b"odd", Make::Dir, 0o755),
        item(b"odd/with space", Make::File(b"space\n"), 0o644),
        item(b"odd/tab\tname", Make::File(b"tab\n"), 0o644),
        item(b"odd/line\nbreak", Make::File(b"newline\n"), 0o644),
        item("odd/ünïcödé-日本".as_bytes(), Make::File(b"utf-8\n"), 0o644),
        item(b"odd/-leading-dash", Make::File(b"dash\n"), 0o644),
        item(b"odd/back\\slash", Make::File(b"backslash\n"), 0o644),
        item(b"odd/quote\"s'", Make::File(b"quotes\n"), 0o644),
        item(b"odd/=equals=", Make::File(b"equals\n"), 0o644),
        item(b"deep", Make::Dir, 0o755),
        item(&deep_dir, Make::Dir, 0o755),
        item(&deep_dir2, Make::Dir, 0o755),
        item(&deep_file, Make::File(b"deep\n"), 0o644),
        item(b"wide", Make::Dir, 0o755),
        item(&long_dir_path, Make::Dir, 0o755),
        item(&long_path, Make::File(b"long name\n"), 0o644),
        item(b"wide/long-target", Make::Symlink(&long_target), 0o777),
        Item {
            owner: (3_000_000, 3_000_001),
            ..item(b"wide/big-ids", Make::File(b"ids\n"), 0o644)
        },
        Item {
            mtime: Some(10_000_000_000),
            ..item(b"wide/y2286", Make::File(b"2286\n"), 0o644)
        },
    ];
    if features.latin1 {
        items.push(item(&latin1, Make::File(b"latin-1\n"), 0o644));
        items.push(item(&latin1_link, Make::Symlink(LATIN1_NAME), 0o777));
    }
    if features.capability {
        items.push(Item {
            xattrs: &[("security.capability", &CAP_NET_RAW_EP)],
            ..item(b"bin/ping", Make::File(b"\x7fELF not really\n"), 0o755)
        });
    }
    if features.devices {
        items.extend([
            item(b"special/null", Make::Char(1, 3), 0o666),
            item(b"special/zero", Make::Char(1, 5), 0o666),
            Item {
                owner: (0, 5),
                ..item(b"special/tty", Make::Char(5, 0), 0o666)
            },
            Item {
                owner: (0, 6),
                ..item(b"special/loop0", Make::Block(7, 0), 0o660)
            },
            Item {
                owner: (0, 6),
                ..item(b"special/sda1", Make::Block(8, 1), 0o660)
            },
            item(b"special/null-link", Make::Hard(b"special/null"), 0o666),
        ]);
    }
    if features.sparse {
        items.extend([
            item(b"sparse", Make::Dir, 0o755),
            item(
                b"sparse/holes.bin",
                Make::Sparse(
                    4 << 20,
                    &[(0, 4096), (1 << 20, 8192), ((3 << 20) + 100, 10)],
                ),
                0o644,
            ),
            item(b"sparse/all-hole.bin", Make::Sparse(1 << 20, &[]), 0o644),
            item(
                b"sparse/tail.bin",
                Make::Sparse(2 << 20, &[((2 << 20) - 4096, 4096)]),
                0o644,
            ),
        ]);
    }
    build(root, &items, &many, features.sparse);
}

/// Makes `items` under `root`, then owners, modes, xattrs and times (directories last,
/// deepest first, so making their children does not move their times).
fn build(root: &Path, items: &[Item], many: &[(u64, u64)], with_many: bool) {
    let mut all: Vec<(Vec<u8>, Option<&Item>)> =
        items.iter().map(|i| (i.path.to_vec(), Some(i))).collect();
    if with_many {
        all.push((b"sparse/many.bin".to_vec(), None));
    }
    for (path, it) in &all {
        let p = join(root, path);
        match it.map(|i| &i.make) {
            None => make_sparse(&p, 40 * 65536, many),
            Some(Make::Dir) => std::fs::create_dir(&p).unwrap(),
            Some(Make::File(data)) => std::fs::write(&p, data).unwrap(),
            Some(Make::Symlink(target)) => {
                std::os::unix::fs::symlink(OsStr::from_bytes(target), &p).unwrap()
            }
            Some(Make::Hard(to)) => std::fs::hard_link(join(root, to), &p).unwrap(),
            Some(Make::Fifo) => {
                rustix::fs::mknodat(CWD, &p, FileType::Fifo, Mode::from_raw_mode(0o600), 0).unwrap()
            }
            Some(Make::Char(ma, mi)) => rustix::fs::mknodat(
                CWD,
                &p,
                FileType::CharacterDevice,
                Mode::from_raw_mode(0o600),
                rustix::fs::makedev(*ma, *mi),
            )
            .unwrap(),
            Some(Make::Block(ma, mi)) => rustix::fs::mknodat(
                CWD,
                &p,
                FileType::BlockDevice,
                Mode::from_raw_mode(0o600),
                rustix::fs::makedev(*ma, *mi),
            )
            .unwrap(),
            Some(Make::Sparse(size, data)) => make_sparse(&p, *size, data),
        }
    }
    // Owners before modes (chown clears set-ID bits) and capabilities after both (chown
    // clears them too).
    for (path, it) in &all {
        let Some(it) = it else { continue };
        if matches!(it.make, Make::Hard(_)) {
            continue;
        }
        let p = join(root, path);
        std::os::unix::fs::lchown(&p, Some(it.owner.0), Some(it.owner.1)).unwrap();
        if !matches!(it.make, Make::Symlink(_)) {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(it.mode)).unwrap();
        }
        for (name, value) in it.xattrs {
            rustix::fs::lsetxattr(&p, *name, value, XattrFlags::empty())
                .unwrap_or_else(|e| panic!("setting {name} on {}: {e}", p.display()));
        }
    }
    let mut order: Vec<(usize, &Vec<u8>, Option<&Item>)> = all
        .iter()
        .enumerate()
        .map(|(i, (p, it))| (i, p, *it))
        .collect();
    // Non-directories first, then directories deepest first.
    order.sort_by_key(|(i, p, it)| {
        let dir = matches!(it.map(|i| &i.make), Some(Make::Dir));
        let depth = p.iter().filter(|&&b| b == b'/').count();
        (dir, std::cmp::Reverse(if dir { depth } else { 0 }), *i)
    });
    for (index, path, it) in order {
        let seconds = it
            .and_then(|i| i.mtime)
            .unwrap_or(1_700_000_000 + index as i64);
        let nanos = if it.and_then(|i| i.mtime).is_some() {
            0
        } else {
            123_456_789 + index as i64
        };
        set_mtime(&join(root, path), seconds, nanos);
    }
    set_mtime(root, 1_699_999_999, 987_654_321);
}

/// Sets a path's access and modification times without following a symlink.
pub fn set_mtime(path: &Path, seconds: i64, nanos: i64) {
    let t = Timespec {
        tv_sec: seconds,
        tv_nsec: nanos,
    };
    rustix::fs::utimensat(
        CWD,
        path,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap_or_else(|e| panic!("setting the times of {}: {e}", path.display()));
}

/// A file of `size` bytes with `len` bytes of data (a repeated letter per extent) at each
/// `(offset, len)` and holes elsewhere (`truncate -s` then writes at offsets).
fn make_sparse(path: &Path, size: u64, data: &[(u64, u64)]) {
    let f = std::fs::File::create(path).unwrap();
    f.set_len(size).unwrap();
    for (i, (offset, len)) in data.iter().enumerate() {
        let byte = b'A' + (i % 26) as u8;
        f.write_all_at(&vec![byte; *len as usize], *offset).unwrap();
    }
}

/// Builds a root filesystem the way debootstrap leaves one (`debootstrap --variant=minbase`
/// needs a mirror, so it is made by hand): usrmerge symlinks, `/dev` nodes, `/run/initctl`,
/// set-ID programs, a capability, hard-linked binaries, the usual directory modes and
/// group owners.
pub fn build_rootfs(root: &Path) {
    let items: Vec<Item> = vec![
        item(b"usr", Make::Dir, 0o755),
        item(b"usr/bin", Make::Dir, 0o755),
        item(b"usr/sbin", Make::Dir, 0o755),
        item(b"usr/lib", Make::Dir, 0o755),
        item(b"bin", Make::Symlink(b"usr/bin"), 0o777),
        item(b"sbin", Make::Symlink(b"usr/sbin"), 0o777),
        item(b"lib", Make::Symlink(b"usr/lib"), 0o777),
        item(b"usr/bin/sh", Make::Symlink(b"dash"), 0o777),
        item(b"usr/bin/dash", Make::File(b"\x7fELF dash\n"), 0o755),
        item(b"usr/bin/perl", Make::File(b"\x7fELF perl\n"), 0o755),
        item(b"usr/bin/perl5.36.0", Make::Hard(b"usr/bin/perl"), 0o755),
        item(b"usr/bin/passwd", Make::File(b"\x7fELF passwd\n"), 0o4755),
        item(b"usr/bin/su", Make::File(b"\x7fELF su\n"), 0o4755),
        Item {
            owner: (0, 42),
            ..item(b"usr/bin/chage", Make::File(b"\x7fELF chage\n"), 0o2755)
        },
        Item {
            owner: (0, 5),
            ..item(b"usr/bin/wall", Make::File(b"\x7fELF wall\n"), 0o2755)
        },
        Item {
            xattrs: &[("security.capability", &CAP_NET_RAW_EP)],
            ..item(b"usr/bin/ping", Make::File(b"\x7fELF ping\n"), 0o755)
        },
        item(b"usr/lib/os-release", Make::File(b"ID=debian\n"), 0o644),
        item(b"etc", Make::Dir, 0o755),
        item(
            b"etc/os-release",
            Make::Symlink(b"../usr/lib/os-release"),
            0o777,
        ),
        item(
            b"etc/passwd",
            Make::File(b"root:x:0:0:root:/root:/bin/sh\n"),
            0o644,
        ),
        Item {
            owner: (0, 42),
            ..item(
                b"etc/shadow",
                Make::File(b"root:*:19000:0:99999:7:::\n"),
                0o640,
            )
        },
        item(b"dev", Make::Dir, 0o755),
        item(b"dev/null", Make::Char(1, 3), 0o666),
        item(b"dev/zero", Make::Char(1, 5), 0o666),
        item(b"dev/full", Make::Char(1, 7), 0o666),
        item(b"dev/random", Make::Char(1, 8), 0o666),
        item(b"dev/urandom", Make::Char(1, 9), 0o666),
        Item {
            owner: (0, 5),
            ..item(b"dev/tty", Make::Char(5, 0), 0o666)
        },
        Item {
            owner: (0, 5),
            ..item(b"dev/console", Make::Char(5, 1), 0o600)
        },
        item(b"dev/ptmx", Make::Char(5, 2), 0o666),
        Item {
            owner: (0, 6),
            ..item(b"dev/loop0", Make::Block(7, 0), 0o660)
        },
        Item {
            owner: (0, 6),
            ..item(b"dev/sda", Make::Block(8, 0), 0o660)
        },
        item(b"dev/fd", Make::Symlink(b"/proc/self/fd"), 0o777),
        item(b"dev/stdin", Make::Symlink(b"/proc/self/fd/0"), 0o777),
        item(b"dev/pts", Make::Dir, 0o755),
        item(b"dev/shm", Make::Dir, 0o1777),
        item(b"run", Make::Dir, 0o755),
        item(b"run/initctl", Make::Fifo, 0o600),
        item(b"root", Make::Dir, 0o700),
        item(b"tmp", Make::Dir, 0o1777),
        item(b"var", Make::Dir, 0o755),
        Item {
            owner: (0, 8),
            ..item(b"var/mail", Make::Dir, 0o2775)
        },
        item(b"var/tmp", Make::Dir, 0o1777),
        Item {
            owner: (0, 4),
            ..item(b"var/log", Make::Dir, 0o755)
        },
        Item {
            owner: (0, 43),
            ..item(b"var/log/wtmp", Make::File(b""), 0o664)
        },
        item(b"proc", Make::Dir, 0o555),
        item(b"sys", Make::Dir, 0o555),
    ];
    build(root, &items, &[], false);
}

// ---------------------------------------------------------------------------------------
// Archive writers
// ---------------------------------------------------------------------------------------

/// GNU tar of `src` in `format` (`gnu`, `oldgnu`, `posix`, `ustar`) with `extra` options;
/// xattrs (all of them) in the posix format, which is the only one that carries them;
/// `wide/` left out of ustar, which cannot carry it.
pub fn gnu_tar(src: &Path, format: &str, extra: &[&str]) -> Result<Vec<u8>, Skip> {
    let tar = need("tar", "tar")?;
    let mut cmd = Command::new(tar);
    cmd.arg(format!("--format={format}"))
        .args(["--numeric-owner", "--sort=name"])
        .args(extra);
    if format == "posix" {
        cmd.args(["--xattrs", "--xattrs-include=*"]);
    }
    if format == "ustar" {
        cmd.arg("--exclude=./wide");
    }
    cmd.arg("-cf").arg("-").arg("-C").arg(src).arg(".");
    Ok(run_ok(cmd))
}

/// bsdtar (libarchive) of `src` in `format` (`pax`, `gnutar`); it reads xattrs by default
/// and writes files with holes as sparse entries in pax.
pub fn bsdtar(src: &Path, format: &str) -> Result<Vec<u8>, Skip> {
    let bsdtar = need("bsdtar", "libarchive-tools")?;
    let mut cmd = Command::new(bsdtar);
    cmd.args(["--format", format, "--numeric-owner", "-cf", "-", "-C"])
        .arg(src)
        .arg(".");
    Ok(run_ok(cmd))
}

/// `busybox tar` of `src`.
pub fn busybox_tar(src: &Path) -> Result<Vec<u8>, Skip> {
    let busybox = need("busybox", "busybox")?;
    let mut cmd = Command::new(busybox);
    cmd.args(["tar", "-cf", "-", "-C"]).arg(src).arg(".");
    Ok(run_ok(cmd))
}

/// The Python program that writes the tarfile archives: the source tree through
/// `TarFile.add`, then members only a program writes: IDs over 2097151, times 0, after
/// 2038 and beyond 11 octal digits, a non-UTF-8 name, a mode-0000 directory with children,
/// and (PAX only) xattrs as `SCHILY.xattr.*` records, `security.capability` included.
const PYTHON_WRITER: &str = r#"
import io, sys, tarfile
src, fmt, out = sys.argv[1], sys.argv[2], sys.argv[3]
form = {"gnu": tarfile.GNU_FORMAT, "pax": tarfile.PAX_FORMAT}[fmt]
cap = bytes([1, 0, 0, 2, 0, 0x20] + [0] * 14).decode("ascii")
with tarfile.open(out, "w", format=form, encoding="utf-8", errors="surrogateescape") as t:
    t.add(src, arcname=".", recursive=True)
    def add(name, kind=tarfile.REGTYPE, data=b"", mode=0o644, uid=0, gid=0, mtime=1700000000, pax=None, link=""):
        m = tarfile.TarInfo(name)
        m.type, m.mode, m.uid, m.gid, m.mtime, m.linkname = kind, mode, uid, gid, mtime, link
        m.size = len(data) if kind == tarfile.REGTYPE else 0
        if pax:
            m.pax_headers = pax
        t.addfile(m, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    add("py", tarfile.DIRTYPE, mode=0o755)
    add("py/big-ids", data=b"ids\n", uid=3000000, gid=3000001)
    add("py/uid-2097152", data=b"one past 7 octal digits\n", uid=2097152, gid=2097152)
    add("py/epoch", data=b"1970\n", mtime=0)
    add("py/y2100", data=b"2100\n", mtime=4102444800)
    add("py/y2286", data=b"2286\n", mtime=10000000000)
    add("py/before-1970", data=b"1969\n", mtime=-86400)
    add("py/caf\udce9", data=b"latin-1 name\n")
    add("py/locked", tarfile.DIRTYPE, mode=0)
    add("py/locked/child", data=b"inside a mode-0000 directory\n")
    add("py/locked/sub", tarfile.DIRTYPE, mode=0o755)
    add("py/locked/sub/grandchild", data=b"deeper\n")
    if form == tarfile.PAX_FORMAT:
        add("py/xattrs", data=b"xattrs\n", pax={
            "SCHILY.xattr.user.origin": "python tarfile",
            "SCHILY.xattr.user.empty": "",
        })
        add("py/ping", data=b"ping\n", mode=0o755, pax={"SCHILY.xattr.security.capability": cap})
        add("py/nanos", data=b"nanos\n", pax={"mtime": "1700000000.5"})
"#;

/// Python's tarfile of `src` in `format` (`gnu` or `pax`) plus the members of
/// [`PYTHON_WRITER`].
pub fn python_tarfile(src: &Path, format: &str, work: &Path) -> Result<Vec<u8>, Skip> {
    let python = need("python3", "python3")?;
    let out = work.join(format!("python-{format}.tar"));
    let mut cmd = Command::new(python);
    cmd.arg("-c")
        .arg(PYTHON_WRITER)
        .arg(src)
        .arg(format)
        .arg(&out);
    run_ok(cmd);
    Ok(std::fs::read(&out).unwrap())
}

/// gzip-decompresses `data` when it starts with the gzip magic.
pub fn gunzip_if_needed(data: Vec<u8>) -> Vec<u8> {
    if data.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&data[..]), &mut out).unwrap();
        out
    } else {
        data
    }
}

/// Pipes `tar -c` of `src` into `tar -x` in `dest`, keeping owners, modes, xattrs, devices,
/// hard links and holes: a copy of the tree into a mounted container.
pub fn copy_tree(src: &Path, dest: &Path) {
    let packed = {
        let mut cmd = Command::new("tar");
        cmd.args([
            "--format=posix",
            "--xattrs",
            "--xattrs-include=*",
            "--sparse",
            "--numeric-owner",
            "-cf",
            "-",
            "-C",
        ])
        .arg(src)
        .arg(".");
        run_ok(cmd)
    };
    extract_with_gnu_tar(&packed, dest);
}

/// `tar -x` of `archive` in `dest` as root: owners, modes, xattrs, devices, holes kept.
pub fn extract_with_gnu_tar(archive: &[u8], dest: &Path) {
    let mut child = Command::new("tar")
        .args([
            "--xattrs",
            "--xattrs-include=*",
            "--numeric-owner",
            "--same-owner",
            "-xpf",
            "-",
            "-C",
        ])
        .arg(dest)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting tar -x");
    let mut input = child.stdin.take().unwrap();
    let data = archive.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(
        out.status.success(),
        "tar -x failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------------------
// Reading what an archive carries
// ---------------------------------------------------------------------------------------

/// How an entry's holes are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sparse {
    /// Old GNU: typeflag `S`, the map in the header and `extension` more blocks.
    OldGnu {
        /// Sparse-map continuation blocks after the header.
        extension: usize,
    },
    /// PAX GNU.sparse 0.0 (`GNU.sparse.offset`/`numbytes` pairs).
    Pax00,
    /// PAX GNU.sparse 0.1 (`GNU.sparse.map`).
    Pax01,
    /// PAX GNU.sparse 1.0 (the map at the start of the data).
    Pax10,
}

/// One entry of an archive as its headers say (PAX, long-name and sparse records applied).
#[derive(Debug, Clone)]
pub struct Entry {
    /// The path without a leading `./` or `/` and without a trailing `/`; empty for the root.
    pub name: Vec<u8>,
    /// The typeflag of the entry's own header.
    pub typeflag: u8,
    /// The link target (hard or symbolic).
    pub link: Vec<u8>,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
    /// The size of the file (the real size for a sparse one).
    pub size: u64,
    /// The PAX records that applied to it, in order (keys repeat in GNU.sparse 0.0).
    pub pax: Vec<(Vec<u8>, Vec<u8>)>,
    /// How its holes are written, if it is sparse.
    pub sparse: Option<Sparse>,
}

impl Entry {
    /// The value of the last PAX record `key`.
    pub fn pax(&self, key: &str) -> Option<&[u8]> {
        self.pax
            .iter()
            .rev()
            .find(|(k, _)| k == key.as_bytes())
            .map(|(_, v)| v.as_slice())
    }

    /// Whether the entry is a directory.
    pub fn is_dir(&self) -> bool {
        self.typeflag == b'5'
    }
}

/// A numeric header field: octal, or base-256 when its first byte has the high bit.
fn number(field: &[u8]) -> u64 {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        field[1..]
            .iter()
            .fold(u64::from(field[0] & 0x7f), |n, &b| (n << 8) | u64::from(b))
    } else {
        let digits: Vec<u8> = field
            .iter()
            .copied()
            .skip_while(|&b| b == b' ')
            .take_while(|&b| (b'0'..=b'7').contains(&b))
            .collect();
        if digits.is_empty() {
            0
        } else {
            u64::from_str_radix(std::str::from_utf8(&digits).unwrap(), 8).unwrap()
        }
    }
}

/// A NUL-terminated header field.
fn cstr(field: &[u8]) -> Vec<u8> {
    field.iter().copied().take_while(|&b| b != 0).collect()
}

/// PAX records `LEN key=value\n`.
fn pax_records(mut data: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(space) = data.iter().position(|&b| b == b' ') {
        let Ok(len) = std::str::from_utf8(&data[..space])
            .unwrap_or("")
            .parse::<usize>()
        else {
            break;
        };
        if len == 0 || len > data.len() {
            break;
        }
        let record = &data[space + 1..len - 1];
        if let Some(eq) = record.iter().position(|&b| b == b'=') {
            out.push((record[..eq].to_vec(), record[eq + 1..].to_vec()));
        }
        data = &data[len..];
    }
    out
}

/// `name` without leading `/` and `./` and without trailing `/`; `.` is the empty root.
pub fn normalize(name: &[u8]) -> Vec<u8> {
    let mut n = name;
    loop {
        if let Some(rest) = n.strip_prefix(b"./") {
            n = rest;
        } else if let Some(rest) = n.strip_prefix(b"/") {
            n = rest;
        } else {
            break;
        }
    }
    while let Some(rest) = n.strip_suffix(b"/") {
        n = rest;
    }
    if n == b"." {
        n = b"";
    }
    n.to_vec()
}

fn pad(size: u64) -> usize {
    (size as usize).div_ceil(512) * 512
}

/// The entries of an uncompressed tar, from its raw headers.
pub fn scan(tar: &[u8]) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut pos = 0;
    let mut pax: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut long_name: Option<Vec<u8>> = None;
    let mut long_link: Option<Vec<u8>> = None;
    while pos + 512 <= tar.len() {
        let h = &tar[pos..pos + 512];
        if h.iter().all(|&b| b == 0) {
            break;
        }
        let sum: u64 = h
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u64::from(b)
                }
            })
            .sum();
        assert_eq!(sum, number(&h[148..156]), "bad header checksum at {pos}");
        let typeflag = h[156];
        let header_size = number(&h[124..136]);
        pos += 512;
        let data = |pos: usize, size: u64| &tar[pos..pos + size as usize];
        match typeflag {
            b'x' => {
                pax.extend(pax_records(data(pos, header_size)));
                pos += pad(header_size);
                continue;
            }
            b'g' => {
                pos += pad(header_size);
                continue;
            }
            b'L' => {
                long_name = Some(cstr(data(pos, header_size)));
                pos += pad(header_size);
                continue;
            }
            b'K' => {
                long_link = Some(cstr(data(pos, header_size)));
                pos += pad(header_size);
                continue;
            }
            _ => {}
        }
        let mut sparse = None;
        let mut size = header_size;
        if typeflag == b'S' {
            size = number(&h[483..495]);
            let mut extension = 0;
            let mut more = h[482] != 0;
            while more {
                more = tar[pos + 504] != 0;
                pos += 512;
                extension += 1;
            }
            sparse = Some(Sparse::OldGnu { extension });
        }
        let record = |key: &str| {
            pax.iter()
                .rev()
                .find(|(k, _)| k == key.as_bytes())
                .map(|(_, v)| v.clone())
        };
        let record_number = |key: &str| {
            record(key).map(|v| {
                std::str::from_utf8(&v)
                    .unwrap()
                    .split('.')
                    .next()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()
            })
        };
        let ustar = &h[257..263] == b"ustar\0";
        let prefix = cstr(&h[345..500]);
        let mut name = if let Some(p) = record("path") {
            p
        } else if let Some(l) = long_name.take() {
            l
        } else if ustar && !prefix.is_empty() {
            let mut p = prefix;
            p.push(b'/');
            p.extend_from_slice(&cstr(&h[0..100]));
            p
        } else {
            cstr(&h[0..100])
        };
        let link = record("linkpath")
            .or(long_link.take())
            .unwrap_or_else(|| cstr(&h[157..257]));
        let data_size = record_number("size").unwrap_or(header_size);
        if typeflag != b'S' {
            size = data_size;
        }
        match (record("GNU.sparse.major"), record("GNU.sparse.minor")) {
            (Some(ma), Some(mi)) if ma == b"1" && mi == b"0" => {
                sparse = Some(Sparse::Pax10);
                name = record("GNU.sparse.name").unwrap_or(name);
                size = record_number("GNU.sparse.realsize").unwrap_or(size);
            }
            _ if record("GNU.sparse.map").is_some() => {
                sparse = Some(Sparse::Pax01);
                name = record("GNU.sparse.name").unwrap_or(name);
                size = record_number("GNU.sparse.size").unwrap_or(size);
            }
            _ if record("GNU.sparse.offset").is_some() => {
                sparse = Some(Sparse::Pax00);
                name = record("GNU.sparse.name").unwrap_or(name);
                size = record_number("GNU.sparse.size").unwrap_or(size);
            }
            _ => {}
        }
        entries.push(Entry {
            name: normalize(&name),
            typeflag,
            link,
            uid: record_number("uid").unwrap_or_else(|| number(&h[108..116])),
            gid: record_number("gid").unwrap_or_else(|| number(&h[116..124])),
            size,
            pax: std::mem::take(&mut pax),
            sparse,
        });
        // Hard links, symlinks, devices, fifos and directories carry no data (a size on
        // them is ignored by readers, as Go's is).
        if matches!(typeflag, b'0' | b'\0' | b'7' | b'S') {
            pos += pad(data_size);
        }
    }
    entries
}
